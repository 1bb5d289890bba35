/* bench_kernels.c - micro-benchmark of the kernels (not a test): for every
 * weight type and ISA, single-thread decode throughput in GB/s of weight
 * bytes (weights sized to stay in L2, so this is compute speed): vec_dot row
 * by row (the 1-row kernel) and gemm with n_batch 1 (the decode path, which
 * may take several rows per pass; same results), measured back to back; gemm
 * throughput with n_batch 2, 4, 8, 16 and 64 in GMAC/s (the gemm the backend
 * picks: gemm_ws, the panel gemm, from the type's ws_min_batch on, marked p;
 * the row gemm marked r); then, with "dram" as second argument,
 * both decode paths streaming a 64 MB matrix from memory with 1 and 2
 * threads (rows split in halves), best of 15.
 * Usage: bench_kernels [seconds per case] [dram|rows] ("rows": the row gemm
 * at every n_batch, to compare with the panel). */
#include <pthread.h>
#include <time.h>

#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

static const int64_t k_nbatch[] = {2, 4, 8, 16, 64};
#define BENCH_NB ((int)SP_ARRAY_LEN(k_nbatch))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const enum gg_type k_types[] = {
    GG_TYPE_F32,  GG_TYPE_F16,  GG_TYPE_BF16, GG_TYPE_Q4_0, GG_TYPE_Q4_1,
    GG_TYPE_Q5_0, GG_TYPE_Q5_1, GG_TYPE_Q8_0, GG_TYPE_Q2_K, GG_TYPE_Q3_K,
    GG_TYPE_Q4_K, GG_TYPE_Q5_K, GG_TYPE_Q6_K, GG_TYPE_IQ4_NL, GG_TYPE_IQ4_XS,
};

static size_t row_size(enum gg_type t, int64_t k)
{
    switch (t) {
    case GG_TYPE_F32: return (size_t)k * 4;
    case GG_TYPE_F16: case GG_TYPE_BF16: return (size_t)k * 2;
    case GG_TYPE_Q4_0: return (size_t)k / 32 * sizeof(block_q4_0);
    case GG_TYPE_Q4_1: return (size_t)k / 32 * sizeof(block_q4_1);
    case GG_TYPE_Q5_0: return (size_t)k / 32 * sizeof(block_q5_0);
    case GG_TYPE_Q5_1: return (size_t)k / 32 * sizeof(block_q5_1);
    case GG_TYPE_Q8_0: return (size_t)k / 32 * sizeof(block_q8_0);
    case GG_TYPE_Q8_1: return (size_t)k / 32 * sizeof(block_q8_1);
    case GG_TYPE_Q2_K: return (size_t)k / 256 * sizeof(block_q2_K);
    case GG_TYPE_Q3_K: return (size_t)k / 256 * sizeof(block_q3_K);
    case GG_TYPE_Q4_K: return (size_t)k / 256 * sizeof(block_q4_K);
    case GG_TYPE_Q5_K: return (size_t)k / 256 * sizeof(block_q5_K);
    case GG_TYPE_Q6_K: return (size_t)k / 256 * sizeof(block_q6_K);
    case GG_TYPE_Q8_K: return (size_t)k / 256 * sizeof(block_q8_K);
    case GG_TYPE_IQ4_NL: return (size_t)k / 32 * sizeof(block_iq4_nl);
    case GG_TYPE_IQ4_XS: return (size_t)k / 256 * sizeof(block_iq4_xs);
    default: return 0;
    }
}

/* one thread's share of a streaming pass: rows [r0, r1) by vec_dot row by
 * row (the 1-row kernel) or by gemm with n_batch 1 (the decode path) */
struct stream_job {
    const struct kern_type_ops *o;
    int64_t k, r0, r1;
    const char *w;
    size_t wrs, xrs;
    const void *x;
    float *y;
    bool gemv;
};

static void *stream_part(void *arg)
{
    const struct stream_job *j = arg;
    if (j->gemv) {
        j->o->gemm(j->k, j->r0, j->r1, 1, j->w, j->wrs, j->x, j->xrs, j->y, (size_t)j->r1);
    } else {
        for (int64_t i = j->r0; i < j->r1; i++)
            j->o->vec_dot(j->k, &j->y[i], j->w + (size_t)i * j->wrs, j->x);
    }
    return NULL;
}

/* seconds for one pass over nrows rows split across nth (1 or 2) threads */
static double stream_pass(struct stream_job job, int64_t nrows, int nth)
{
    struct stream_job part[2] = {job, job};
    part[0].r0 = 0;
    part[0].r1 = nth == 2 ? nrows / 2 : nrows;
    part[1].r0 = part[0].r1;
    part[1].r1 = nrows;
    double a = now_s();
    pthread_t t;
    bool started = nth == 2 && pthread_create(&t, NULL, stream_part, &part[1]) == 0;
    stream_part(&part[0]);
    if (started)
        pthread_join(t, NULL);
    else if (nth == 2)
        stream_part(&part[1]);
    return now_s() - a;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 0.3;
    const bool rows_only = argc > 2 && strcmp(argv[2], "rows") == 0; /* the row gemm at every n_batch */
    const int64_t k = 2048, rows = 64, nbatch = 64;
    void *ws = sp_aligned_alloc(64, KERN_GEMM_WS_BYTES);
    float *f = sp_malloc((size_t)k * 4);
    for (int64_t i = 0; i < k; i++)
        f[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    printf("%-6s %-7s %12s %10s | gemm GMAC/s by n_batch, the kernel the backend picks (r: rows, p: panel)\n",
           "type", "isa", "vec_dot GB/s", "gemv GB/s");
    for (size_t ti = 0; ti < SP_ARRAY_LEN(k_types); ti++) {
        const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, k_types[ti]);
        const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, r->vec_dot_type);
        size_t wrs = row_size(k_types[ti], k), xrs = row_size(r->vec_dot_type, k);
        char *w = sp_malloc(wrs * rows), *x = sp_malloc(xrs * nbatch);
        float *y = sp_malloc(sizeof(float) * rows * nbatch);
        for (int64_t i = 0; i < rows; i++)
            r->from_float(f, w + i * wrs, k);
        for (int64_t b = 0; b < nbatch; b++)
            ra->quantize_act(f, x + b * xrs, k);
        for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
            const struct kern_type_ops *o = kern_ops_isa((enum kern_isa)isa, k_types[ti]);
            if (!o)
                continue;
            /* best of many short trials, the cases interleaved: the machine
             * is shared and noisy */
            double best[2 + BENCH_NB] = {0};
            for (size_t i = 0; i < SP_ARRAY_LEN(best); i++)
                best[i] = 1e30;
            double t0 = now_s();
            while (now_s() - t0 < secs) {
                double a = now_s();
                for (int64_t i = 0; i < rows; i++)
                    o->vec_dot(k, &y[i], w + i * wrs, x);
                double b = now_s();
                o->gemm(k, 0, rows, 1, w, wrs, x, xrs, y, rows);
                double c = now_s();
                best[0] = SP_MIN(best[0], b - a);
                best[1] = SP_MIN(best[1], c - b);
                for (int i = 0; i < BENCH_NB; i++) {
                    const int64_t n = k_nbatch[i];
                    double d = now_s();
                    if (!rows_only && kern_use_ws(o, n))
                        o->gemm_ws(k, 0, rows, n, w, wrs, x, xrs, y, rows, ws);
                    else
                        kern_pick_gemm(o, rows, k, n)(k, 0, rows, n, w, wrs, x, xrs, y, rows);
                    best[2 + i] = SP_MIN(best[2 + i], now_s() - d);
                }
            }
            printf("%-6s %-7s %12.2f %10.2f |", gg_type_name(k_types[ti]), kern_isa_name((enum kern_isa)isa),
                   (double)(wrs * rows) / best[0] / 1e9, (double)(wrs * rows) / best[1] / 1e9);
            for (int i = 0; i < BENCH_NB; i++)
                printf(" %3lld:%6.2f%c", (long long)k_nbatch[i],
                       (double)(k * rows * k_nbatch[i]) / best[2 + i] / 1e9,
                       !rows_only && kern_use_ws(o, k_nbatch[i]) ? 'p' : 'r');
            printf("\n");
        }
        sp_free(w);
        sp_free(x);
        sp_free(y);
    }
    if (argc > 2 && strcmp(argv[2], "dram") == 0) {
        printf("\n%-6s %-7s %12s %12s %12s %12s   (GB/s streaming 64 MB of weights, k=2048; compare the 2-thread "
               "columns with ../shared/bench/membw -t 2)\n",
               "type", "isa", "vec_dot 1t", "gemv 1t", "vec_dot 2t", "gemv 2t");
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_types); ti++) {
            const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, k_types[ti]);
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, r->vec_dot_type);
            size_t wrs = row_size(k_types[ti], k), xrs = row_size(r->vec_dot_type, k);
            int64_t nrows = (int64_t)((64u << 20) / wrs);
            char *w = sp_malloc(wrs * (size_t)nrows), *x = sp_malloc(xrs);
            float *y = sp_malloc(sizeof(float) * (size_t)nrows);
            r->from_float(f, w, k);
            for (int64_t i = 1; i < nrows; i++)
                memcpy(w + (size_t)i * wrs, w, wrs);
            ra->quantize_act(f, x, k);
            for (int isa = 1; isa < KERN_ISA_COUNT; isa++) {
                const struct kern_type_ops *o = kern_ops_isa((enum kern_isa)isa, k_types[ti]);
                if (!o)
                    continue;
                /* best of 15 passes per variant, the variants interleaved */
                double best[4] = {1e30, 1e30, 1e30, 1e30};
                struct stream_job job = {o, k, 0, 0, w, wrs, xrs, x, y, false};
                for (int rep = 0; rep < 15; rep++) {
                    for (int v = 0; v < 4; v++) {
                        job.gemv = v % 2 == 1;
                        double t = stream_pass(job, nrows, v < 2 ? 1 : 2);
                        best[v] = t < best[v] ? t : best[v];
                    }
                }
                const double bytes = (double)(wrs * (size_t)nrows);
                printf("%-6s %-7s %12.2f %12.2f %12.2f %12.2f\n", gg_type_name(k_types[ti]),
                       kern_isa_name((enum kern_isa)isa), bytes / best[0] / 1e9, bytes / best[1] / 1e9,
                       bytes / best[2] / 1e9, bytes / best[3] / 1e9);
            }
            sp_free(w);
            sp_free(x);
            sp_free(y);
        }
    }
    sp_free(f);
    sp_aligned_free(ws);
    return 0;
}
