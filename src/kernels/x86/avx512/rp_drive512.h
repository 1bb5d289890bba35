/* rp_drive512.h - the loop the AVX-512 gemms over repacked weights share
 * (rp_q8_avx512.c, rp_q4_avx512.c, rp_qk_avx512.c; include only from files
 * compiled with the AVX-512 flags): the kind's per-row block sums into the
 * workspace (every row's once when they fit, else per tile), then per span
 * of 16-row groups small enough to stay in L2, per tile of activation rows,
 * its tile kernel on every group of the span, the 16 results of each stored
 * under a mask (a short last group). A decode call (1 row) is one span.
 * Ranges or rows beyond the contract (r0 not a whole group, a tile's sums
 * that outgrow the workspace) go to the kind's reference gemm, same bits. */
#ifndef SPOKE_KERN_RP_DRIVE512_H
#define SPOKE_KERN_RP_DRIVE512_H

#include "kernels/x86/avx512/avx512_pair.h"

#define RP512_ROWS 16
#define RP512_MAX_NR 8
#define RP512_SPAN_BYTES ((size_t)192 << 10) /* weights per span of groups */

/* The register pin of avx2_pin for a zmm: the integer sums that run through
 * it stay a chain (gcc 12 reassociated Q6_K's per-chunk additions into a
 * tree and spilled every chunk's two half sums). Empty over the emulator of
 * the tests, whose vectors are not registers: arithmetic is the same. */
#ifdef SPOKE_TEST_AVX512_EMU_H
#define rp512_pin(v) ((void)(v))
#else
KERN_AI void rp512_pin(__m512i *v) { __asm__("" : "+v"(*v)); }
#endif

/* one group at q x n activation rows (x[j], their sums xs[j]): out[j] */
typedef void (*rp512_tile_fn)(int64_t nb, const uint8_t *q, const block_q8_0 *const *x, const void *const *xs,
                              __m512 *out);

/* 4 activation bytes as the asm's memory operand (byte-aligned: Q8_0's
 * blocks put them at any even address) */
struct rp512_y4 {
    int8_t b[4];
};

/* s plus the 4-element dots of vectors u[g0..g1) (16 rows of unsigned
 * quants) with the broadcast activation bytes y[4g..4g+3] */
KERN_AI __m512i rp512_dot(__m512i s, const __m512i *u, const int8_t *y, int g0, int g1)
{
    KERN_UNROLL for (int g = g0; g < g1; g++)
    {
#ifdef SPOKE_TEST_AVX512_EMU_H
        int32_t y4;
        memcpy(&y4, y + 4 * g, 4);
        s = _mm512_dpbusd_epi32(s, u[g], _mm512_set1_epi32(y4));
#else
        /* the broadcast folded into the instruction ({1to16}), which gcc 12
         * does not do for the intrinsics: one instruction instead of a
         * broadcast load and the dot (bench_kernels Q4_K n_batch 8: +2-3 %) */
        const struct rp512_y4 *y4 = (const struct rp512_y4 *)(const void *)(y + 4 * g);
        __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(u[g]), "m"(*y4));
#endif
    }
    return s;
}

struct rp512_kind {
    int qk;                                                 /* elements per block (32, or 256: x is block_q8_K) */
    int nr;                                                 /* activation rows per tile (<= RP512_MAX_NR) */
    size_t xs_bytes;                                        /* sums per activation row and block */
    void (*sums)(int64_t nb, const block_q8_0 *x, void *xs); /* one row's sums (x: block_q8_K when qk is 256) */
    const rp512_tile_fn *tiles;                             /* tiles[n - 1]: n activation rows */
    kern_gemm_ws_fn ref;
};

static inline void rp512_gemm(const struct rp512_kind *kd, int64_t k, int64_t r0, int64_t r1, int64_t n_batch,
                              const void *w, size_t w_stride, const void *x, size_t x_stride, float *y,
                              size_t y_stride, void *ws)
{
    const int64_t nb = k / kd->qk;
    if ((size_t)nb * (size_t)kd->nr * kd->xs_bytes > KERN_GEMM_WS_BYTES || r0 % RP512_ROWS != 0) {
        kd->ref(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
        return;
    }
    const uint8_t *base = w;
    const int64_t g0 = r0 / RP512_ROWS, g1 = (r1 + RP512_ROWS - 1) / RP512_ROWS;
    const int64_t span = n_batch == 1 ? g1 - g0 : SP_MAX((int64_t)1, (int64_t)(RP512_SPAN_BYTES / w_stride));
    /* every row's sums once when they fit (else per tile, for each span) */
    const bool once = (size_t)nb * (size_t)n_batch * kd->xs_bytes <= KERN_GEMM_WS_BYTES;
    for (int64_t b = 0; once && b < n_batch; b++)
        kd->sums(nb, (const block_q8_0 *)((const char *)x + (size_t)b * x_stride),
                 (char *)ws + (size_t)(b * nb) * kd->xs_bytes);
    for (int64_t s0 = g0; s0 < g1; s0 += span) {
        const int64_t s1 = SP_MIN(g1, s0 + span);
        for (int64_t b = 0; b < n_batch; b += kd->nr) {
            const int64_t nr = SP_MIN((int64_t)kd->nr, n_batch - b);
            const block_q8_0 *xp[RP512_MAX_NR];
            const void *xsp[RP512_MAX_NR];
            for (int64_t j = 0; j < nr; j++) {
                void *xs = (char *)ws + (size_t)((once ? b + j : j) * nb) * kd->xs_bytes;
                xp[j] = (const block_q8_0 *)((const char *)x + (size_t)(b + j) * x_stride); /* or block_q8_K */
                if (!once)
                    kd->sums(nb, xp[j], xs);
                xsp[j] = xs;
            }
            for (int64_t g = s0; g < s1; g++) {
                __m512 o[RP512_MAX_NR];
                kd->tiles[nr - 1](nb, base + (size_t)g * w_stride, xp, xsp, o);
                const int64_t nv = SP_MIN((int64_t)RP512_ROWS, r1 - g * RP512_ROWS);
                for (int64_t j = 0; j < nr; j++)
                    _mm512_mask_storeu_ps(y + (size_t)(b + j) * y_stride + (size_t)(g * RP512_ROWS),
                                          (__mmask16)((1u << nv) - 1), o[j]);
            }
        }
    }
}

#endif
