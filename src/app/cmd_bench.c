/* cmd_bench.c - `spoke bench MODEL... [-p 512] [-n 128] [-r 3] [-t 2] [--json]`:
 * prefill and decode speed in the shape of llama-bench (same test names
 * ppN / tgN and columns: model, size, params, backend, threads, test, t/s as
 * mean ± sd over the repetitions). Each test runs once as a warm-up first.
 * Prefill evaluates N synthetic tokens from an empty cache in batches of 512;
 * decode evaluates N tokens one at a time from an empty cache. Each record
 * also carries the kernel ISA, the thread count, the read bandwidth given
 * with --membw (GB/s, as measured by ../shared/bench/membw.c) and the peak
 * RSS of the process while that model ran (VmHWM, reset per model through
 * /proc/self/clear_refs where the kernel allows it). */
#include "app/app.h"
#include "app/bench_par.h"
#include "engine/engine.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench_args {
    const char *models[16];
    int n_models;
    int n_prompt, n_gen, reps, threads;
    bool json, kv_f32;
    double membw; /* --membw GB/s (0: not measured) */
    int par[16], n_par; /* --parallel */
    int pp, tg;         /* --pp / --tg of --parallel */
};

static void bench_usage(FILE *fp)
{
    fprintf(fp, "usage: spoke bench MODEL.gguf... [-p 512] [-n 128] [-r 3] [-t THREADS] [--kv-f32] [--json]\n"
                "  -p N   prompt tokens for the prefill test (0 = skip)\n"
                "  -n N   tokens for the decode test (0 = skip)\n"
                "  -r R   repetitions (mean and standard deviation reported)\n"
                "  -t T   threads (default: all CPUs)\n"
                "  --membw GBPS  record the machine's measured read bandwidth (membw.c) with the results\n"
                "  --parallel 1,2,4,8  batched decode: N sequences of --pp prompt tokens (128) + --tg generated (128)\n");
}

static int bench_parse(int argc, char **argv, struct bench_args *a)
{
    memset(a, 0, sizeof(*a));
    a->n_prompt = 512;
    a->n_gen = 128;
    a->reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x;
        int *dst = NULL;
        int64_t lo = 0, hi = 1 << 20;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            bench_usage(stdout);
            return -1;
        } else if (strcmp(o, "-p") == 0 || strcmp(o, "--n-prompt") == 0) {
            dst = &a->n_prompt;
        } else if (strcmp(o, "-n") == 0 || strcmp(o, "--n-gen") == 0) {
            dst = &a->n_gen;
        } else if (strcmp(o, "-r") == 0 || strcmp(o, "--repetitions") == 0) {
            dst = &a->reps;
            lo = 1;
            hi = 1000;
        } else if (strcmp(o, "-t") == 0 || strcmp(o, "--threads") == 0) {
            dst = &a->threads;
            lo = 1;
            hi = 256;
        } else if (strcmp(o, "--json") == 0 || (strcmp(o, "-o") == 0 && v && strcmp(v, "json") == 0)) {
            a->json = true;
            if (strcmp(o, "-o") == 0)
                i++;
            continue;
        } else if (strcmp(o, "--parallel") == 0 || strcmp(o, "-npl") == 0) {
            if (!v || !bench_par_list(v, a->par, (int)SP_ARRAY_LEN(a->par), &a->n_par)) {
                fprintf(stderr, "spoke: bench: --parallel needs a list like 1,2,4,8 (each 1..256)\n");
                return APP_EXIT_USAGE;
            }
            i++;
            continue;
        } else if (strcmp(o, "--pp") == 0) {
            dst = &a->pp;
            lo = 2;
        } else if (strcmp(o, "--tg") == 0) {
            dst = &a->tg;
            lo = 2;
        } else if (strcmp(o, "--membw") == 0) {
            char *end = NULL;
            a->membw = v ? strtod(v, &end) : 0;
            if (!v || end == v || *end || !(a->membw > 0 && a->membw < 1e6)) {
                fprintf(stderr, "spoke: bench: --membw needs a bandwidth in GB/s\n");
                return APP_EXIT_USAGE;
            }
            i++;
            continue;
        } else if (strcmp(o, "--kv-f32") == 0) {
            a->kv_f32 = true;
            continue;
        } else if (o[0] == '-') {
            fprintf(stderr, "spoke: bench: unknown option %s\n", o);
            return APP_EXIT_USAGE;
        } else {
            if (a->n_models >= (int)SP_ARRAY_LEN(a->models)) {
                fprintf(stderr, "spoke: bench: too many models\n");
                return APP_EXIT_USAGE;
            }
            a->models[a->n_models++] = o;
            continue;
        }
        if (!v || !sp_parse_i64(v, lo, hi, &x)) {
            fprintf(stderr, "spoke: bench: option %s needs an integer in %lld..%lld\n", o, (long long)lo,
                    (long long)hi);
            return APP_EXIT_USAGE;
        }
        *dst = (int)x;
        i++;
    }
    if (a->n_models == 0) {
        bench_usage(stderr);
        return APP_EXIT_USAGE;
    }
    return 0;
}

static void mean_sd(const double *v, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static bool first_json = true;

/* Peak resident set of this process in MiB (VmHWM), 0 if unknown. */
static double peak_rss_mib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    while (fp && fgets(line, sizeof(line), fp))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtod(line + 6, NULL);
    if (fp)
        fclose(fp);
    return kib / 1024.0;
}

/* Start a new peak (Linux >= 4.0: "5" resets VmHWM); ignored where unsupported. */
static void peak_rss_reset(void)
{
    FILE *fp = fopen("/proc/self/clear_refs", "w");
    if (fp) {
        fputs("5", fp);
        fclose(fp);
    }
}

static void bench_report(const struct bench_args *a, const struct engine_model *m, const char *test, int np, int ng,
                         const double *ts, int n)
{
    struct engine_model_info info;
    engine_model_get_info(m, &info);
    double mean, sd;
    mean_sd(ts, n, &mean, &sd);
    double params = (double)engine_model_n_params(m);
    char desc[96], size[32], par[32], tsb[48];
    snprintf(desc, sizeof(desc), "%s %s %s", info.arch, info.name, engine_model_ftype(m));
    snprintf(size, sizeof(size), "%.2f MiB", (double)info.weight_bytes / 1048576.0);
    if (params >= 1e9)
        snprintf(par, sizeof(par), "%.2f B", params / 1e9);
    else
        snprintf(par, sizeof(par), "%.2f M", params / 1e6);
    snprintf(tsb, sizeof(tsb), "%.2f ± %.2f", mean, sd);
    if (a->json) {
        printf("%s  {\"model\": \"%s\", \"model_type\": \"%s\", \"model_size\": %zu, \"model_n_params\": %.0f, "
               "\"backend\": \"%s\", \"n_threads\": %d, \"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, "
               "\"isa\": \"%s\", \"peak_rss_mib\": %.1f, ",
               first_json ? "" : ",\n", info.name, engine_model_ftype(m), info.weight_bytes, params, info.backend,
               a->threads, test, np, ng, kern_isa_name(kern_isa_best()), peak_rss_mib());
        if (a->membw > 0)
            printf("\"membw_gbs\": %.2f, ", a->membw);
        printf("\"avg_ts\": %.6f, \"stddev_ts\": %.6f, \"samples_ts\": [", mean, sd);
        for (int i = 0; i < n; i++)
            printf("%s%.6f", i ? ", " : "", ts[i]);
        printf("]}");
        first_json = false;
    } else {
        printf("| %-34s | %10s | %10s | %-7s | %7d | %13s | %20s |\n", desc, size, par, "CPU", a->threads, test, tsb);
    }
    fflush(stdout);
}

static int bench_model(struct bench_args *a, const char *path)
{
    struct sp_err err = {0};
    struct engine_model *m = NULL;
    struct engine_ctx *c = NULL;
    int rc = APP_EXIT_OK;
    double ts[1000];
    int n_ctx = SP_MAX(a->n_prompt, a->n_gen) + 16;
    struct engine_load_opts lo = {.path = path, .n_ctx = n_ctx, .n_threads = a->threads, .kv_f32 = a->kv_f32};
    if (engine_model_load(&lo, &m, &err) != SP_OK || engine_ctx_new(m, &c, &err) != SP_OK) {
        rc = app_fail("bench", &err);
        goto out;
    }
    if (a->n_prompt > 0) {
        double ms;
        if (engine_bench_prefill(c, a->n_prompt, &ms, &err) != SP_OK) { /* warm-up */
            rc = app_fail("bench", &err);
            goto out;
        }
        for (int r = 0; r < a->reps; r++) {
            if (engine_bench_prefill(c, a->n_prompt, &ms, &err) != SP_OK) {
                rc = app_fail("bench", &err);
                goto out;
            }
            ts[r] = a->n_prompt * 1000.0 / ms;
        }
        char test[32];
        snprintf(test, sizeof(test), "pp%d", a->n_prompt);
        bench_report(a, m, test, a->n_prompt, 0, ts, a->reps);
    }
    if (a->n_gen > 0) {
        double ms;
        if (engine_bench_decode(c, SP_MIN(a->n_gen, 16), &ms, &err) != SP_OK) { /* warm-up */
            rc = app_fail("bench", &err);
            goto out;
        }
        for (int r = 0; r < a->reps; r++) {
            if (engine_bench_decode(c, a->n_gen, &ms, &err) != SP_OK) {
                rc = app_fail("bench", &err);
                goto out;
            }
            ts[r] = a->n_gen * 1000.0 / ms;
        }
        char test[32];
        snprintf(test, sizeof(test), "tg%d", a->n_gen);
        bench_report(a, m, test, 0, a->n_gen, ts, a->reps);
    }
out:
    engine_ctx_free(c);
    engine_model_free(m);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? APP_EXIT_OK : rc;
    if (a.threads <= 0)
        a.threads = engine_cpu_count();
    if (a.n_par > 0)
        return bench_par_run(a.models, a.n_models, a.par, a.n_par, a.pp > 0 ? a.pp : 128, a.tg > 0 ? a.tg : 128,
                             a.reps, a.threads, a.kv_f32, a.json);
    if (a.json) {
        printf("[\n");
        first_json = true;
    } else {
        printf("| %-34s | %10s | %10s | %-7s | %7s | %13s | %20s |\n", "model", "size", "params", "backend",
               "threads", "test", "t/s");
        printf("| ---------------------------------- | ---------: | ---------: | ------- | ------: | ------------: "
               "| -------------------: |\n");
    }
    fflush(stdout);
    double peak[SP_ARRAY_LEN(a.models)];
    int done = 0;
    for (int i = 0; i < a.n_models && rc == 0; i++, done++) {
        peak_rss_reset();
        rc = bench_model(&a, a.models[i]);
        peak[i] = peak_rss_mib();
    }
    for (int i = 0; i < done && !a.json && rc == 0; i++) { /* below the table, llama-bench style */
        printf("%s%s: peak RSS %.1f MiB, isa %s, %d threads", i ? "" : "\n", a.models[i], peak[i],
               kern_isa_name(kern_isa_best()), a.threads);
        if (a.membw > 0)
            printf(", read bandwidth %.2f GB/s", a.membw);
        printf("\n");
    }
    if (a.json)
        printf("\n]\n");
    return rc;
}
