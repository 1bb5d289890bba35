/* rp_q4_avx512.c - the AVX-512 VNNI gemms over Q4_0 and Q5_0 weights
 * repacked at load (ops->rp; layouts and order in kern_impl.h, reference
 * in ref/repack_q4.c). Vector c of a block holds 4 bytes of each of the 16
 * rows: its low nibbles are elements 4c..4c+3 and its high nibbles
 * 16+4c..16+4c+3, the stored u = q + 8, so and / shift+and give the two
 * dpbusd operands (Q5_0: or'd with the fifth bits, one shift and mask per
 * group, u = q + 16). Per activation row and block, 8 vpdpbusd against
 * broadcasts of 4 activation bytes, started from -OFF * sum(y), leave each
 * row's exact integer block dot in its lane, then one FMA with
 * fl(d_w * d_x): the Q4_0 panel's bits (the AVX2 and AVX-512 panels', the
 * reference's) for every batch size and row range (test_repack, memcmp).
 * Decode splits each block's integer dot into two chains (exact); batches
 * take tiles of 16 rows x up to 8 activation rows over spans of groups small
 * enough to stay in L2. Uses only intrinsics that tests/kernels/avx512_emu.h
 * emulates (and rp_drive512.h's two asm statements, which it replaces). */
#include "kernels/x86/avx512/rp_drive512.h"

#define Q4R_NR 8                           /* activation rows per tile */
/* Pairs of blocks to prefetch ahead when a tile has several activation
 * rows: its many dpbusd per block keep few loads in flight, and batched
 * decode (weights from memory, 8 rows) stalled on them (perf: a third of the
 * tile's samples at the scale load). One row prefetches Q4R_PF_DEC pairs
 * ahead, only where kern_dec_pf says: on an AMD Zen 4 it streamed Q5_0 faster in
 * bench_kernels dram (2 threads 19.4 -> 21.4-24.7 GB/s) but decoded
 * smol135m Q4_K_M (mostly Q5_0) slower end to end (tg128 152-162 against
 * 177-198 t/s, alternating 3x); on an Intel Xeon faster in both (Q4_0 dram
 * 17-20 -> 22-26 GB/s; tinyllama1b Q4_0 tg128 27.0/30.3 -> 35.5/37.2,
 * smol135m Q4_K_M 211/238 -> 258/288 t/s). */
#define Q4R_PF 4
#define Q4R_PF_DEC 6

/* per activation row and block: -8 * sum(y) and d_x */
struct q4r_x {
    int32_t ys;
    float dx;
};

/* one group x nr (1..Q4R_NR) activation rows: out[j] = its 16 rows' results */
KERN_AI void q4r_tile(int nr, bool five, int64_t nb, const uint8_t *q, const block_q8_0 *const *x,
                      const void *const *xsv, __m512 *out)
{
    const struct q4r_x *xs[Q4R_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) xs[j] = xsv[j];
    const __m512i m4 = _mm512_set1_epi8(0x0F), m10 = _mm512_set1_epi8(0x10);
    const size_t pair = five ? KERN_Q5R_PAIR : KERN_Q4R_PAIR, pfd = kern_dec_pf ? Q4R_PF_DEC * pair : 0;
    __m512 acc[Q4R_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *p = q + (five ? kern_q5r_qoff(ib) : kern_q4r_qoff(ib));
        if (nr > 1 && (ib & 1) == 0 && ib + 2 * Q4R_PF < nb) /* see Q4R_PF */
            avx2_prefetch_part(p + Q4R_PF * pair, pair, true, 0, 1);
        if (nr == 1 && pfd && (ib & 1) == 0) /* see Q4R_PF_DEC */
            avx2_prefetch_part(p + pfd, pair, true, 0, 1);
        __m512i u[8];
        KERN_UNROLL for (int c = 0; c < 4; c++)
        {
            const __m512i v = _mm512_load_si512(p + 64 * c);
            u[c] = _mm512_and_si512(v, m4);
            u[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        if (five) { /* group g's fifth bits: bit g of each byte, moved to bit 4 */
            const __m512i h = _mm512_load_si512(q + kern_q5r_hoff(ib));
            u[0] = _mm512_or_si512(u[0], _mm512_and_si512(_mm512_slli_epi16(h, 4), m10));
            u[1] = _mm512_or_si512(u[1], _mm512_and_si512(_mm512_slli_epi16(h, 3), m10));
            u[2] = _mm512_or_si512(u[2], _mm512_and_si512(_mm512_slli_epi16(h, 2), m10));
            u[3] = _mm512_or_si512(u[3], _mm512_and_si512(_mm512_slli_epi16(h, 1), m10));
            u[4] = _mm512_or_si512(u[4], _mm512_and_si512(h, m10));
            u[5] = _mm512_or_si512(u[5], _mm512_and_si512(_mm512_srli_epi16(h, 1), m10));
            u[6] = _mm512_or_si512(u[6], _mm512_and_si512(_mm512_srli_epi16(h, 2), m10));
            u[7] = _mm512_or_si512(u[7], _mm512_and_si512(_mm512_srli_epi16(h, 3), m10));
        }
        const __m512 dw = _mm512_cvtph_ps(
            _mm256_load_si256((const __m256i *)(q + (five ? kern_q5r_doff(ib) : kern_q4r_doff(ib)))));
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            const int8_t *y = x[j][ib].qs;
            const __m512i ys = _mm512_set1_epi32(xs[j][ib].ys);
            /* few rows: two chains, so one row does not wait 8 dpbusd latencies */
            const __m512i s = nr <= 2 ? _mm512_add_epi32(rp512_dot(ys, u, y, 0, 4), rp512_dot(_mm512_setzero_si512(), u, y, 4, 8))
                                      : rp512_dot(ys, u, y, 0, 8);
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xs[j][ib].dx)), _mm512_cvtepi32_ps(s), acc[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

#define Q4R_TILE_N(N, FIVE, T)                                                                           \
    static void T##_tile_##N(int64_t nb, const uint8_t *q, const block_q8_0 *const *x, const void *const *xs,  \
                             __m512 *out)                                                                 \
    {                                                                                                     \
        q4r_tile(N, FIVE, nb, q, x, xs, out);                                                             \
    }
#define Q4R_TILES(FIVE, T)                                                                                \
    Q4R_TILE_N(1, FIVE, T)                                                                                \
    Q4R_TILE_N(2, FIVE, T)                                                                                \
    Q4R_TILE_N(3, FIVE, T)                                                                                \
    Q4R_TILE_N(4, FIVE, T)                                                                                \
    Q4R_TILE_N(5, FIVE, T)                                                                                \
    Q4R_TILE_N(6, FIVE, T)                                                                                \
    Q4R_TILE_N(7, FIVE, T)                                                                                \
    Q4R_TILE_N(8, FIVE, T)                                                                                \
    static const rp512_tile_fn T##_tiles[Q4R_NR] = {T##_tile_1, T##_tile_2, T##_tile_3, T##_tile_4,       \
                                                   T##_tile_5, T##_tile_6, T##_tile_7, T##_tile_8};
Q4R_TILES(false, q4r)
Q4R_TILES(true, q5r)

KERN_AI void q4r_sums_off(int off, int64_t nb, const block_q8_0 *x, void *xsv)
{
    struct q4r_x *xs = xsv;
    for (int64_t ib = 0; ib < nb; ib++) {
        xs[ib].ys = -off * avx2_sum_i8x32(x[ib].qs);
        xs[ib].dx = avx2_h2f(x[ib].d);
    }
}

static void q4r_sums(int64_t nb, const block_q8_0 *x, void *xs) { q4r_sums_off(8, nb, x, xs); }
static void q5r_sums(int64_t nb, const block_q8_0 *x, void *xs) { q4r_sums_off(16, nb, x, xs); }

static const struct rp512_kind q4r_kind = {KERN_QK, Q4R_NR, sizeof(struct q4r_x), q4r_sums, q4r_tiles, kern_ref_q4r_gemm};
static const struct rp512_kind q5r_kind = {KERN_QK, Q4R_NR, sizeof(struct q4r_x), q5r_sums, q5r_tiles, kern_ref_q5r_gemm};

static void q4r_gemm512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    rp512_gemm(&q4r_kind, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static void q5r_gemm512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    rp512_gemm(&q5r_kind, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static const struct kern_repack q4r_avx512 = {
    .rows = KERN_Q4R_ROWS,
    .group_bytes = kern_q4r_group_bytes,
    .pack = kern_q4r_pack,
    .row_to_float = kern_q4r_row_to_float,
    .gemm = q4r_gemm512,
};

static const struct kern_repack q5r_avx512 = {
    .rows = KERN_Q4R_ROWS,
    .group_bytes = kern_q5r_group_bytes,
    .pack = kern_q5r_pack,
    .row_to_float = kern_q5r_row_to_float,
    .gemm = q5r_gemm512,
};

/* Q4_0 and Q5_0 on AVX-512: weights are repacked at load (the backend's bind). */
void kern_avx512_fill_repack_q4(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_repack_q4(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_Q4_0)
        ops->rp = &q4r_avx512;
    else if (type == GG_TYPE_Q5_0)
        ops->rp = &q5r_avx512;
}
