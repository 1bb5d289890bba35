/* bench_kernels.c - micro-benchmark of the kernels (not a test): for every
 * weight type and ISA, single-thread decode throughput in GB/s of weight
 * bytes (weights sized to stay in L2, so this is compute speed): vec_dot row
 * by row (the 1-row kernel) and gemm with n_batch 1 (the decode path, which
 * may take several rows per pass; same results), measured back to back; gemm
 * throughput with n_batch 2, 4, 8, 16 and 64 in GMAC/s (the gemm the backend
 * picks: gemm_ws, the panel gemm, from the type's ws_min_batch on, marked p;
 * the row gemm marked r); then, with "dram" as second argument,
 * both decode paths streaming a 256 MB matrix from memory (8x a 32 MB L3:
 * with 64 MB, passes were partly served from L3 and read faster than
 * membw) with 1 and 2
 * threads (rows split in halves), best of 15.
 * A type with a load-time layout (ops->rp) gets a "+repack" line: its rows
 * packed once, then gemv and every n_batch through rp->gemm (marked k).
 * Usage: bench_kernels [seconds per case] [dram|rows] ("rows": the row gemm
 * at every n_batch, to compare with the panel); BENCH_TYPES=Q8_0,Q4_K
 * measures only those types. */
#include <pthread.h>
#include <time.h>

#include "base/base.h"
#include "kernels/kern_impl.h"
#include "test.h"

static const int64_t k_nbatch[] = {2, 4, 8, 16, 64, 256};
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

/* BENCH_TYPES=Q8_0,Q4_K limits the types measured */
static bool skip_type(enum gg_type t)
{
    const char *e = getenv("BENCH_TYPES");
    if (!e || !*e)
        return false;
    const char *name = gg_type_name(t);
    const size_t n = strlen(name);
    for (const char *p = e; (p = strstr(p, name)) != NULL; p += n)
        if ((p == e || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return false;
    return true;
}

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
    const char *packed; /* gemv over the repacked rows (o->rp) */
    size_t grp;
    void *ws;
    int64_t nb; /* activation rows of the repacked gemm (x holds them xrs apart, y nrows apart) */
    int64_t nrows;
};

static void *stream_part(void *arg)
{
    const struct stream_job *j = arg;
    if (j->packed) {
        j->o->rp->gemm(j->k, j->r0, j->r1, j->nb, j->packed, j->grp, j->x, j->xrs, j->y, (size_t)j->nrows, j->ws);
    } else if (j->gemv) {
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
    part[0].r1 = nth == 2 ? nrows / 32 * 16 : nrows; /* whole groups of 16 (repacked) */
    part[1].r0 = part[0].r1;
    part[1].r1 = nrows;
    double a = now_s();
    pthread_t t;
    if (job.ws)
        part[1].ws = (char *)job.ws + KERN_GEMM_WS_BYTES;
    bool started = nth == 2 && pthread_create(&t, NULL, stream_part, &part[1]) == 0;
    stream_part(&part[0]);
    if (started)
        pthread_join(t, NULL);
    else if (nth == 2)
        stream_part(&part[1]);
    return now_s() - a;
}

#if defined(__x86_64__)
#include <immintrin.h>
#if defined(__clang__)
#define BENCH_UNROLL _Pragma("unroll")
#else
#define BENCH_UNROLL _Pragma("GCC unroll 16")
#endif
/* The core's ceilings, to read the kernels' numbers against: 12 independent
 * chains of the int8 step every quantized kernel is built from (maddubs, madd
 * with 16-bit scales, add: 32 multiply-adds), of maddubs alone, and of F32
 * FMAs (8 multiply-adds). GMAC/s on one thread. */
__attribute__((target("avx2,fma"), noinline)) static void peak_rates(double secs, double out[3])
{
    const int64_t iters = 1 << 16;
    BENCH_UNROLL for (int kind = 0; kind < 3; kind++) {
        double best = 1e30, t0 = now_s();
        __m256i ai[12], q = _mm256_set1_epi8(3), y = _mm256_set1_epi8(5), sc = _mm256_set1_epi16(1);
        __m256 af[12], fx = _mm256_set1_ps(1.0f), fy = _mm256_set1_ps(1e-9f);
        for (int a = 0; a < 12; a++) {
            ai[a] = _mm256_set1_epi32(a);
            af[a] = _mm256_set1_ps((float)a);
        }
        while (now_s() - t0 < secs) {
            double a0 = now_s();
            for (int64_t i = 0; i < iters; i++) {
                /* an empty asm with the operands keeps the compiler from
                 * folding the loop-invariant products */
                __asm__ volatile("" : "+x"(q), "+x"(y), "+x"(fx));
                /* each chain feeds its own multiply (nothing to hoist);
                 * 12 chains hide the latency, so the ports set the rate */
                BENCH_UNROLL for (int a = 0; a < 12; a++) {
                    if (kind == 0)
                        ai[a] = _mm256_add_epi32(ai[a], _mm256_madd_epi16(_mm256_maddubs_epi16(ai[a], y), sc));
                    else if (kind == 1)
                        ai[a] = _mm256_add_epi16(_mm256_maddubs_epi16(ai[a], y), q);
                    else
                        af[a] = _mm256_fmadd_ps(af[a], fx, fy);
                }
            }
            best = SP_MIN(best, now_s() - a0);
        }
        __m256i si = ai[0];
        __m256 sf = af[0];
        for (int a = 1; a < 12; a++) {
            si = _mm256_xor_si256(si, ai[a]);
            sf = _mm256_add_ps(sf, af[a]);
        }
        __asm__ volatile("" : : "x"(si), "x"(sf));
        out[kind] = (double)iters * 12 * (kind == 2 ? 8 : 32) / best / 1e9;
    }
}
#endif

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 0.3;
    const bool rows_only = argc > 2 && strcmp(argv[2], "rows") == 0; /* the row gemm at every n_batch */
    /* BENCH_K: the row length (default 2048; a multiple of 64; types whose
     * blocks do not divide it are skipped), e.g. 5632 for a 1B model's
     * ffn_down, whose batch of activation rows outgrows L1, or 64 with
     * BENCH_ROWS=512 for attention's K.q over an F16 cache */
    const char *ke = getenv("BENCH_K"), *re = getenv("BENCH_ROWS");
    const long long kv = ke ? atoll(ke) : 0, rv = re ? atoll(re) : 0;
    const int64_t k = kv >= 64 && kv % 64 == 0 && kv <= (1 << 20) ? kv : 2048;
    const int64_t rows = rv >= 4 && rv % 4 == 0 && rv <= (1 << 16) ? rv : 64, nbatch = 256;
    void *ws = sp_aligned_alloc(64, KERN_GEMM_WS_BYTES);
    float *f = sp_malloc((size_t)k * 4);
    for (int64_t i = 0; i < k; i++)
        f[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
#if defined(__x86_64__)
    if (kern_isa_best() >= KERN_ISA_AVX2) {
        double pk[3];
        peak_rates(secs, pk);
        printf("peak (one thread, GMAC/s): int8 maddubs+madd+add %.1f, maddubs alone %.1f, f32 fma %.1f\n\n", pk[0],
               pk[1], pk[2]);
    }
#endif
    printf("%-6s %-7s %12s %10s | gemm GMAC/s by n_batch, the kernel the backend picks (r: rows, p: panel)\n",
           "type", "isa", "vec_dot GB/s", "gemv GB/s");
    for (size_t ti = 0; ti < SP_ARRAY_LEN(k_types); ti++) {
        size_t krow;
        if (skip_type(k_types[ti]) || !gg_row_size(k_types[ti], k, &krow))
            continue;
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
            if (o->gemm_tb_hx) { /* F16 weights, the activations as F32 halves (attention, F16 prefill) */
                float *hx = sp_malloc(sizeof(float) * (size_t)k * (size_t)nbatch);
                for (int64_t b = 0; b < nbatch; b++)
                    kern_round_fp16_row(f, hx + b * k, k);
                double hbest[BENCH_NB], hgemv = 1e30;
                for (int i = 0; i < BENCH_NB; i++)
                    hbest[i] = 1e30;
                t0 = now_s();
                while (now_s() - t0 < secs) {
                    if (o->gemm_hx) { /* decode: one row in vec_dot order */
                        double d = now_s();
                        o->gemm_hx(k, 0, rows, 1, w, wrs, hx, (size_t)k * 4, y, rows);
                        hgemv = SP_MIN(hgemv, now_s() - d);
                    }
                    for (int i = 0; i < BENCH_NB; i++) {
                        const int64_t n = k_nbatch[i];
                        double d = now_s();
                        o->gemm_tb_hx(k, 0, rows, n, w, wrs, hx, (size_t)k * 4, y, rows);
                        hbest[i] = SP_MIN(hbest[i], now_s() - d);
                    }
                }
                if (o->gemm_hx)
                    printf("%-6s %-7s %12s %10.2f |", gg_type_name(k_types[ti]), "+hx", "",
                           (double)(wrs * rows) / hgemv / 1e9);
                else
                    printf("%-6s %-7s %12s %10s |", gg_type_name(k_types[ti]), "+hx", "", "");
                for (int i = 0; i < BENCH_NB; i++)
                    printf(" %3lld:%6.2f%c", (long long)k_nbatch[i],
                           (double)(k * rows * k_nbatch[i]) / hbest[i] / 1e9, 'h');
                printf("\n");
                sp_free(hx);
            }
            if (o->rp) { /* the load-time layout: gemv and every batch through rp->gemm */
                const size_t gb = o->rp->group_bytes(k);
                const int64_t ng = (rows + o->rp->rows - 1) / o->rp->rows;
                char *pk = sp_aligned_alloc(64, gb * (size_t)ng);
                for (int64_t g = 0; g < ng; g++)
                    o->rp->pack(w + (size_t)(g * o->rp->rows) * wrs, wrs, SP_MIN((int64_t)o->rp->rows, rows - g * o->rp->rows),
                                k, pk + (size_t)g * gb);
                double bp[1 + BENCH_NB];
                for (size_t i = 0; i < SP_ARRAY_LEN(bp); i++)
                    bp[i] = 1e30;
                t0 = now_s();
                while (now_s() - t0 < secs)
                    for (int i = 0; i <= BENCH_NB; i++) {
                        const int64_t n = i == 0 ? 1 : k_nbatch[i - 1];
                        double d = now_s();
                        o->rp->gemm(k, 0, rows, n, pk, gb, x, xrs, y, rows, ws);
                        bp[i] = SP_MIN(bp[i], now_s() - d);
                    }
                printf("%-6s %-7s %12s %10.2f |", gg_type_name(k_types[ti]), "+repack", "",
                       (double)(wrs * rows) / bp[0] / 1e9);
                for (int i = 0; i < BENCH_NB; i++)
                    printf(" %3lld:%6.2f%c", (long long)k_nbatch[i],
                           (double)(k * rows * k_nbatch[i]) / bp[1 + i] / 1e9, 'k');
                printf("\n");
                sp_aligned_free(pk);
            }
        }
        sp_free(w);
        sp_free(x);
        sp_free(y);
    }
    if (argc > 2 && strcmp(argv[2], "dram") == 0) {
        printf("\n%-6s %-7s %12s %12s %12s %12s   (GB/s streaming 256 MB of weights, rows of BENCH_K; compare the "
               "2-thread "
               "columns with ../shared/bench/membw -t 2)\n",
               "type", "isa", "vec_dot 1t", "gemv 1t", "vec_dot 2t", "gemv 2t");
        for (size_t ti = 0; ti < SP_ARRAY_LEN(k_types); ti++) {
            size_t krow;
            if (skip_type(k_types[ti]) || !gg_row_size(k_types[ti], k, &krow))
                continue;
            const struct kern_type_ops *r = kern_ops_isa(KERN_ISA_REF, k_types[ti]);
            const struct kern_type_ops *ra = kern_ops_isa(KERN_ISA_REF, r->vec_dot_type);
            size_t wrs = row_size(k_types[ti], k), xrs = row_size(r->vec_dot_type, k);
            int64_t nrows = (int64_t)((256u << 20) / wrs);
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
                struct stream_job job = {o, k, 0, 0, w, wrs, xrs, x, y, false, NULL, 0, NULL, 1, nrows};
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
                if (o->rp) { /* gemv over the repacked copy (the old rows freed first: RAM) */
                    const size_t gb = o->rp->group_bytes(k);
                    const int64_t ng = (nrows + o->rp->rows - 1) / o->rp->rows;
                    /* the copy twice: on 4 KiB pages and from sp_huge_alloc (2 MiB THP, as
                     * the cpu device binds it), timed interleaved */
                    char *pks[2] = {sp_aligned_alloc(64, gb * (size_t)ng), sp_huge_alloc(gb * (size_t)ng)};
                    void *ws2 = sp_aligned_alloc(64, 2 * KERN_GEMM_WS_BYTES);
                    for (int h = 0; h < 2; h++)
                        for (int64_t g = 0; pks[h] && g < ng; g++)
                            o->rp->pack(w + (size_t)(g * o->rp->rows) * wrs, wrs,
                                        SP_MIN((int64_t)o->rp->rows, nrows - g * o->rp->rows), k,
                                        pks[h] + (size_t)g * gb);
                    /* n_batch 1 (gemv) with 1 and 2 threads, then 4 and 8 activation rows
                     * (batched decode) with 2 threads: weights streamed once per call */
                    static const int64_t pnb[] = {1, 1, 4, 8};
                    double bp[2][4] = {{1e30, 1e30, 1e30, 1e30}, {1e30, 1e30, 1e30, 1e30}};
                    char *x8 = sp_malloc(xrs * 8);
                    float *y8 = sp_malloc(sizeof(float) * 8 * (size_t)nrows);
                    for (int j = 0; j < 8; j++)
                        memcpy(x8 + (size_t)j * xrs, x, xrs);
                    for (int rep = 0; pks[0] && pks[1] && ws2 && rep < 15; rep++)
                        for (int h = 0; h < 2; h++)
                            for (int v = 0; v < 4; v++) {
                                struct stream_job pj = {o, k, 0, 0, w, wrs, xrs, x8, y8, true, pks[h], gb, ws2, pnb[v], nrows};
                                double t = stream_pass(pj, nrows, v == 0 ? 1 : 2);
                                bp[h][v] = t < bp[h][v] ? t : bp[h][v];
                            }
                    for (int h = 0; h < 2; h++)
                        printf("%-6s %-7s %12s %12.2f %12s %12.2f   (repacked gemv%s; 2t n_batch 4: %.2f, 8: %.2f)\n",
                               gg_type_name(k_types[ti]), h ? "+rp/2M" : "+rp/4K", "", bytes / bp[h][0] / 1e9, "",
                               bytes / bp[h][1] / 1e9, h ? ", huge pages" : "", bytes / bp[h][2] / 1e9,
                               bytes / bp[h][3] / 1e9);
                    sp_free(x8);
                    sp_free(y8);
                    sp_aligned_free(pks[0]);
                    sp_huge_free(pks[1]);
                    sp_aligned_free(ws2);
                }
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
