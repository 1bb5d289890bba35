/* bench_par.c - `spoke bench MODEL --parallel 1,2,4,8`: batched decode in
 * the shape of llama-batched-bench. For each N: N sequences of PP synthetic
 * prompt tokens are prefilled together, then each generates TG tokens greedily
 * (TG - 1 steps of N tokens, every step one pass over the weights). Columns:
 * prefill t/s (N*PP / prefill time), aggregate decode t/s (tokens of all
 * sequences per second), per-sequence decode t/s, and the aggregate as a
 * multiple of N = 1 measured in the same run (the ratio that carries over
 * between noisy machines). Mean over the repetitions after one warm-up. */
#include "app/app.h"
#include "app/bench_par.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

bool bench_par_list(const char *s, int *n, int cap, int *count)
{
    *count = 0;
    while (*s) {
        int64_t v = 0;
        const char *p = s;
        while (*p >= '0' && *p <= '9' && v <= 256)
            v = v * 10 + (*p++ - '0');
        if (p == s || v < 1 || v > 256 || *count >= cap || (*p && *p != ','))
            return false;
        n[(*count)++] = (int)v;
        s = *p ? p + 1 : p;
        if (*p && !*s)
            return false;
    }
    return *count > 0;
}

int bench_par_run(const char *const *models, int n_models, const int *n, int count, int pp, int tg, int reps,
                  int threads, bool kv_f32, bool json)
{
    int max_n = 1;
    for (int i = 0; i < count; i++)
        max_n = SP_MAX(max_n, n[i]);
    if (json)
        printf("[\n");
    else
        printf("| %-40s | %7s | %3s | %4s | %4s | %12s | %14s | %12s | %8s |\n"
               "| ---------------------------------------- | ------: | --: | ---: | ---: | -----------: | "
               "-------------: | -----------: | -------: |\n",
               "model", "threads", "N", "PP", "TG", "prefill t/s", "decode t/s", "per seq t/s", "x N=1");
    fflush(stdout);
    bool first = true;
    for (int mi = 0; mi < n_models; mi++) {
        struct sp_err err = {0};
        struct engine_model *m = NULL;
        struct engine_load_opts lo = {.path = models[mi], .n_ctx = pp + tg + 32, .n_threads = threads,
                                      .n_parallel = max_n, .kv_f32 = kv_f32};
        if (engine_model_load(&lo, &m, &err) != SP_OK)
            return app_fail("bench", &err);
        struct engine_model_info info;
        engine_model_get_info(m, &info);
        char desc[128];
        snprintf(desc, sizeof desc, "%s %s %s", info.arch, info.name, engine_model_ftype(m));
        double base = 0;
        for (int i = 0; i < count; i++) {
            struct engine_bench_par r;
            double pf = 0, dc = 0;
            if (engine_bench_parallel(m, n[i], pp, SP_MIN(tg, 8), &r, &err) != SP_OK) { /* warm-up */
                engine_model_free(m);
                return app_fail("bench", &err);
            }
            for (int k = 0; k < reps; k++) {
                if (engine_bench_parallel(m, n[i], pp, tg, &r, &err) != SP_OK) {
                    engine_model_free(m);
                    return app_fail("bench", &err);
                }
                pf += (double)n[i] * pp * 1000.0 / r.prefill_ms;
                dc += (double)r.n_decoded * 1000.0 / r.decode_ms;
            }
            pf /= reps;
            dc /= reps;
            if (n[i] == 1)
                base = dc;
            if (json) {
                printf("%s  {\"model\": \"%s\", \"model_type\": \"%s\", \"n_threads\": %d, \"n_parallel\": %d, "
                       "\"n_prompt\": %d, \"n_gen\": %d, \"prefill_ts\": %.3f, \"decode_ts\": %.3f, "
                       "\"decode_ts_per_seq\": %.3f}",
                       first ? "" : ",\n", info.name, engine_model_ftype(m), threads, n[i], pp, tg, pf, dc, dc / n[i]);
                first = false;
            } else {
                char ratio[16] = "-";
                if (base > 0)
                    snprintf(ratio, sizeof ratio, "%.2f", dc / base);
                printf("| %-40s | %7d | %3d | %4d | %4d | %12.2f | %14.2f | %12.2f | %8s |\n", desc, threads, n[i],
                       pp, tg, pf, dc, dc / n[i], ratio);
            }
            fflush(stdout);
        }
        engine_model_free(m);
    }
    if (json)
        printf("\n]\n");
    return APP_EXIT_OK;
}
