/* rp_q4.c - the AVX2 gemms over Q4_0 and Q5_0 weights repacked at load
 * (ops->rp; layouts and order in kern_impl.h, reference in ref/repack_q4.c;
 * Q5_0's fifth bits or'd in with one shift and mask per group). A group
 * of 16 rows is two halves of 8 (each 64-byte vector's first and second 32
 * bytes). Vector c's low nibbles are elements 4c..4c+3 and its high nibbles
 * 16+4c..16+4c+3 of each row, the stored u = q + 8, so and / shift+and give
 * unsigned operands for maddubs against broadcasts of 4 activation bytes;
 * the 8 products are added in int16 (8 x 2 x 15 x 128 < 2^15: exact),
 * widened once, minus 8 * sum(y), then one FMA with fl(d_w * d_x) per
 * block: the AVX2 panel's (q_simple.c) integers and float operations, so
 * its bits, for every batch size, decode included (test_repack, memcmp).
 * Tiles of 8 rows x up to 4 activation rows (one weight vector live at a
 * time: 16 ymm registers), over spans of groups small enough to stay in L2
 * while every tile passes. */
#include "kernels/x86/avx2/avx2_util.h"

_Static_assert(KERN_Q4R_ROWS == 16, "avx2_store_group16 stores groups of 16 rows");

#define Q4R_NR 4                           /* activation rows per tile */
#define Q4R_SPAN_BYTES ((size_t)192 << 10) /* weights per span of groups */
/* pairs of blocks prefetched ahead by tiles of several activation rows
 * (their long blocks keep few loads in flight; rp_q4_avx512.c measured it) */
#define Q4R_PF 4
/* ... and, where kern_dec_pf says (Intel), by the decode tile (one row, both
 * halves): the hardware prefetcher alone streamed a group's pairs at 14-15
 * GB/s on 2 threads (bench_kernels Q4_0 +rp/4K, dram), 6-16 pairs ahead at
 * 22-24 GB/s (Q5_0 13.1 -> 21.9), the 4-row kernel over mapped rows at 21 */
#define Q4R_PF_DEC 6
#define Q4R_UBLK 512   /* bytes of one unpacked Q5_0 block of 16 rows */
/* Q5_0 batches from here on unpack each span once: at n_batch 64 the tiles'
 * own unpacking ran 65.8 GMAC/s against the old panel's 74.5. Not at 8 (8
 * sequences' batched decode, weights from memory): the unpack pass streamed
 * 256 MB at 5-6.5 GB/s on 2 threads, two 4-row tiles at 7.3-8 (L2-resident,
 * 66 against 62 GMAC/s: the memory case wins) */
#define Q5R_PRE_MIN 16

/* the two maddubs operands of vector c of a block (32 bytes: one half):
 * lo = group c (low nibbles), hi = group c + 4 (high nibbles); Q5_0 or's
 * in bit c (lo) and bit c + 4 (hi) of each byte of its fifth bits hv */
KERN_AI void q4r_operands(bool five, __m256i v, __m256i hv, int c, __m256i *lo, __m256i *hi)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m10 = _mm256_set1_epi8(0x10);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (five) {
        *lo = _mm256_or_si256(*lo, _mm256_and_si256(_mm256_slli_epi16(hv, 4 - c), m10));
        *hi = _mm256_or_si256(*hi, _mm256_and_si256(_mm256_srli_epi16(hv, c), m10));
    }
}

/* per activation row and block: 8 (Q5_0 16) x the sum of its 32 int8, and its
 * scale as a float (converted once per row, not per tile and block) */
struct q4r_xs {
    int32_t ys;
    float dx;
};

/* nh halves of one group (nh 1: half h, rows 8h..8h+7; nh 2: both, h
 * ignored, each 64-byte line used whole as it arrives: the decode tile) x nr
 * (1..Q4R_NR / nh) activation rows; out[hh * nr + j]; xs[j][ib]: block ib of
 * activation row j's offset term and scale */
KERN_AI void q4r_tile(int nr, int nh, bool five, bool pre, int h, int64_t nb, const uint8_t *q, const uint8_t *pu,
                      const block_q8_0 *const *x, const struct q4r_xs *const *xs, __m256 *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t pair = five ? KERN_Q5R_PAIR : KERN_Q4R_PAIR, pfd = kern_dec_pf ? Q4R_PF_DEC * pair : 0;
    __m256 acc[Q4R_NR];
    KERN_UNROLL for (int j = 0; j < nh * nr; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const size_t qo = five ? kern_q5r_qoff(ib) : kern_q4r_qoff(ib);
        if (!pre && nr > 1 && (ib & 1) == 0 && ib + 2 * Q4R_PF < nb) /* see Q4R_PF */
            avx2_prefetch_part(q + qo + Q4R_PF * pair, pair, true, 0, 1);
        if (nh == 2 && pfd && (ib & 1) == 0) /* see Q4R_PF_DEC */
            avx2_prefetch_part(q + qo + pfd, pair, true, 0, 1);
        KERN_UNROLL for (int hh = 0; hh < nh; hh++)
        {
            const int hv_ = nh == 2 ? hh : h;
            const uint8_t *p = q + qo + 32 * hv_;
            /* Q4_0: the 8 products of a block in one int16 sum (8 x 2 x 15 x 128 < 2^15);
             * Q5_0: the low and the high groups in two (4 x 2 x 31 x 128 < 2^15) */
            __m256i s16[Q4R_NR], t16[Q4R_NR];
            KERN_UNROLL for (int j = 0; j < nr; j++) s16[j] = t16[j] = _mm256_setzero_si256();
            const __m256i hv = five && !pre
                                   ? _mm256_load_si256((const __m256i *)(q + kern_q5r_hoff(ib) + 32 * hv_))
                                   : _mm256_setzero_si256();
            KERN_UNROLL for (int c = 0; c < 4; c++)
            {
                __m256i lo, hi;
                if (pre) { /* unpacked once per span (q4r_unpack) */
                    lo = _mm256_load_si256((const __m256i *)(pu + (size_t)ib * Q4R_UBLK + 64 * c + 32 * hv_));
                    hi = _mm256_load_si256((const __m256i *)(pu + (size_t)ib * Q4R_UBLK + 64 * (c + 4) + 32 * hv_));
                } else {
                    q4r_operands(five, _mm256_load_si256((const __m256i *)(p + 64 * c)), hv, c, &lo, &hi);
                }
                KERN_UNROLL for (int j = 0; j < nr; j++)
                {
                    int32_t ylo, yhi;
                    memcpy(&ylo, x[j][ib].qs + 4 * c, 4);
                    memcpy(&yhi, x[j][ib].qs + 16 + 4 * c, 4);
                    s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(ylo)));
                    if (five)
                        t16[j] = _mm256_add_epi16(t16[j], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(yhi)));
                    else
                        s16[j] = _mm256_add_epi16(s16[j], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(yhi)));
                    avx2_pin(&s16[j]);
                    if (five)
                        avx2_pin(&t16[j]);
                }
            }
            const __m256 dw = _mm256_cvtph_ps(
                _mm_load_si128((const __m128i *)(q + (five ? kern_q5r_doff(ib) : kern_q4r_doff(ib)) + 16 * hv_)));
            KERN_UNROLL for (int j = 0; j < nr; j++)
            {
                __m256i s32 = _mm256_madd_epi16(s16[j], ones);
                if (five)
                    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(t16[j], ones));
                const __m256i si = _mm256_sub_epi32(s32, _mm256_set1_epi32(xs[j][ib].ys));
                acc[hh * nr + j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(&xs[j][ib].dx)),
                                                   _mm256_cvtepi32_ps(si), acc[hh * nr + j]);
            }
        }
    }
    KERN_UNROLL for (int j = 0; j < nh * nr; j++) out[j] = acc[j];
}

typedef void (*q4r_tile_fn)(int h, int64_t nb, const uint8_t *q, const uint8_t *pu, const block_q8_0 *const *x,
                            const struct q4r_xs *const *xs, __m256 *out);
#define Q4R_TILE_N(N, FIVE, PRE, T)                                                                      \
    static void T##_tile_##N(int h, int64_t nb, const uint8_t *q, const uint8_t *pu,                     \
                             const block_q8_0 *const *x, const struct q4r_xs *const *xs, __m256 *out)    \
    {                                                                                                    \
        q4r_tile(N, 1, FIVE, PRE, h, nb, q, pu, x, xs, out);                                             \
    }
#define Q4R_TILES(FIVE, PRE, T)                                                                          \
    Q4R_TILE_N(1, FIVE, PRE, T)                                                                          \
    Q4R_TILE_N(2, FIVE, PRE, T)                                                                          \
    Q4R_TILE_N(3, FIVE, PRE, T)                                                                          \
    Q4R_TILE_N(4, FIVE, PRE, T)                                                                          \
    static const q4r_tile_fn T##_tiles[Q4R_NR] = {T##_tile_1, T##_tile_2, T##_tile_3, T##_tile_4};
Q4R_TILES(false, false, q4r)
Q4R_TILES(true, false, q5r)
Q4R_TILES(true, true, q5u)

/* one activation row over both halves of a group (decode) */
static void q4r_tile_both(int h, int64_t nb, const uint8_t *q, const uint8_t *pu, const block_q8_0 *const *x,
                          const struct q4r_xs *const *xs, __m256 *out)
{
    q4r_tile(1, 2, false, false, h, nb, q, pu, x, xs, out);
}
static void q5r_tile_both(int h, int64_t nb, const uint8_t *q, const uint8_t *pu, const block_q8_0 *const *x,
                          const struct q4r_xs *const *xs, __m256 *out)
{
    q4r_tile(1, 2, true, false, h, nb, q, pu, x, xs, out);
}

/* Q5_0 groups [g0, g1) unpacked into u (Q4R_UBLK bytes per block: vector g
 * = group g's u = q + 16 of the 16 rows, as the tile forms them) */
static void q4r_unpack(int64_t nb, const uint8_t *base, size_t w_stride, int64_t g0, int64_t g1, uint8_t *u)
{
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *q = base + (size_t)g * w_stride;
        for (int64_t ib = 0; ib < nb; ib++) {
            uint8_t *ub = u + (size_t)((g - g0) * nb + ib) * Q4R_UBLK;
            for (int h = 0; h < 2; h++) {
                const __m256i hv = _mm256_load_si256((const __m256i *)(q + kern_q5r_hoff(ib) + 32 * h));
                for (int c = 0; c < 4; c++) {
                    __m256i lo, hi;
                    q4r_operands(true, _mm256_load_si256((const __m256i *)(q + kern_q5r_qoff(ib) + 64 * c + 32 * h)),
                                 hv, c, &lo, &hi);
                    _mm256_store_si256((__m256i *)(ub + 64 * c + 32 * h), lo);
                    _mm256_store_si256((__m256i *)(ub + 64 * (c + 4) + 32 * h), hi);
                }
            }
        }
    }
}

static void q4r_gemm(bool five, int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                     const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    const int64_t nb = k / KERN_QK, off = five ? 16 : 8;
    const q4r_tile_fn *tiles = five ? q5r_tiles : q4r_tiles;
    if ((size_t)nb * Q4R_NR * sizeof(struct q4r_xs) > KERN_GEMM_WS_BYTES || r0 % KERN_Q4R_ROWS != 0) {
        (five ? kern_ref_q5r_gemm : kern_ref_q4r_gemm)(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
        return;
    }
    const uint8_t *base = w;
    struct q4r_xs *xsum = ws;
    const int64_t g0 = r0 / KERN_Q4R_ROWS, g1 = (r1 + KERN_Q4R_ROWS - 1) / KERN_Q4R_ROWS;
    int64_t span = n_batch == 1 ? g1 - g0 : SP_MAX((int64_t)1, (int64_t)(Q4R_SPAN_BYTES / w_stride));
    /* Q5_0 batches: each span's groups unpacked once after the sums (the
     * tiles would redo the fifth bits for every 4 activation rows) */
    const size_t ys_bytes = ((size_t)nb * Q4R_NR * sizeof(struct q4r_xs) + 63) / 64 * 64;
    const int64_t ucap = (int64_t)((KERN_GEMM_WS_BYTES - ys_bytes) / ((size_t)nb * Q4R_UBLK));
    const bool pre = five && n_batch >= Q5R_PRE_MIN && ucap >= 1;
    uint8_t *ubuf = (uint8_t *)ws + ys_bytes;
    if (pre) {
        span = SP_MIN(span, ucap);
        tiles = q5u_tiles;
    }
    for (int64_t s0 = g0; s0 < g1; s0 += span) {
        const int64_t s1 = SP_MIN(g1, s0 + span);
        if (pre)
            q4r_unpack(nb, base, w_stride, s0, s1, ubuf);
        for (int64_t b = 0; b < n_batch; b += Q4R_NR) {
            const int64_t nr = SP_MIN((int64_t)Q4R_NR, n_batch - b);
            const block_q8_0 *xp[Q4R_NR];
            const struct q4r_xs *ysp[Q4R_NR];
            for (int64_t j = 0; j < nr; j++) {
                xp[j] = (const block_q8_0 *)((const char *)x + (size_t)(b + j) * x_stride);
                struct q4r_xs *yj = xsum + j * nb;
                for (int64_t ib = 0; ib < nb; ib++) {
                    yj[ib].ys = (int32_t)off * avx2_sum_i8x32(xp[j][ib].qs);
                    yj[ib].dx = avx2_h2f(xp[j][ib].d);
                }
                ysp[j] = yj;
            }
            for (int64_t g = s0; g < s1; g++) {
                if (nr == 1 && !pre) { /* decode: both halves in one pass over the group */
                    __m256 o[2];
                    (five ? q5r_tile_both : q4r_tile_both)(0, nb, base + (size_t)g * w_stride, NULL, xp, ysp, o);
                    avx2_store_group16(1, g, r1, y + (size_t)b * y_stride, y_stride, o);
                    continue;
                }
                for (int h = 0; h < 2; h++) {
                    const int64_t rr = g * KERN_Q4R_ROWS + 8 * h, nv = SP_MIN((int64_t)8, r1 - rr);
                    if (nv <= 0)
                        break;
                    __m256 o[Q4R_NR];
                    tiles[nr - 1](h, nb, base + (size_t)g * w_stride, ubuf + (size_t)((g - s0) * nb) * Q4R_UBLK, xp,
                                  ysp, o);
                    for (int64_t j = 0; j < nr; j++)
                        avx2_store_n(y + (size_t)(b + j) * y_stride + (size_t)rr, o[j], nv);
                }
            }
        }
    }
}

static void q4r_gemm_avx2(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    q4r_gemm(false, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static void q5r_gemm_avx2(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                          const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    q4r_gemm(true, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static const struct kern_repack q5r_avx2 = {
    .rows = KERN_Q4R_ROWS,
    .group_bytes = kern_q5r_group_bytes,
    .pack = kern_q5r_pack,
    .row_to_float = kern_q5r_row_to_float,
    .gemm = q5r_gemm_avx2,
};

static const struct kern_repack q4r_avx2 = {
    .rows = KERN_Q4R_ROWS,
    .group_bytes = kern_q4r_group_bytes,
    .pack = kern_q4r_pack,
    .row_to_float = kern_q4r_row_to_float,
    .gemm = q4r_gemm_avx2,
};

/* Q4_0 on AVX2: weights are repacked at load (the backend's bind). */
void kern_avx2_fill_repack(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_repack(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_Q4_0)
        ops->rp = &q4r_avx2;
    else if (type == GG_TYPE_Q5_0)
        ops->rp = &q5r_avx2;
}
