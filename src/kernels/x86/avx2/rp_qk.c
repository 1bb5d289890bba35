/* rp_qk.c - the AVX2 gemm over Q4_K weights repacked at load (ops->rp),
 * in the layout the AVX-512 gemm reads (kern_impl.h; reference and order in
 * ref/repack_qk.c): a machine without AVX-512 gets the same load-time
 * layout, one sequential stream per group of 16 rows and no per-call
 * unpacking. A group is two halves of 8 rows (each 64-byte vector's first
 * and second 32 bytes), both done per super-block so each line is used
 * whole when it arrives (a pass per half streamed at half the speed).
 * Vector 8p + g's low nibbles are elements 4g..4g+3 of chunk 2p of each
 * row, its high nibbles those of chunk 2p + 1, so and / shift+and give
 * unsigned maddubs operands against broadcasts of 4 activation bytes; a
 * chunk's 8 products add up in int16 (8 x 2 x 15 x 128 < 2^15: exact), and
 * one pmaddwd with the rows' scales (as int16 pairs) widens them into the
 * chunk's scaled sum; the min term is 4 pmaddwd of the rows' min pairs with
 * the activation's 32-element sums. Per super-block, as the AVX-512 tiles
 * and the K-quant panels: one FMA with fl(d * dy), one FNMADD with
 * fl(dmin * dy) into one float accumulator per output, so the same bits for
 * every batch size and row range (test_repack, memcmp). Tiles of 16 rows x
 * up to 4 activation rows over spans of groups small enough to stay in L2
 * while every tile passes. Q6_K keeps its views on AVX2: a gemm over its
 * layout (in git history) lost end to end (docs/PARITY.md). */
#include "kernels/x86/avx2/avx2_util.h"

_Static_assert(KERN_QKR_ROWS == 16, "avx2_store_group16 stores groups of 16 rows");

#define Q4KR2_NR 4                           /* activation rows per tile */
#define Q4KR2_SPAN_BYTES ((size_t)192 << 10) /* weights per span of groups */
/* Tiles of several activation rows prefetch Q4KR2_PF super-blocks ahead
 * into L2 (bench_kernels dram, 2 threads x 4 rows: 15-21 GB/s; into L1,
 * 9-11), in 8 parts spread over the super-block's work (one burst of its 37
 * lines at the top stalled on L1's miss buffers, as on AVX-512: 15.1-15.2
 * -> 21.6-21.7 GB/s on an Intel Xeon). The one-row tile streams on the
 * hardware prefetcher alone where kern_dec_pf is false (one thread 23 GB/s
 * against 19 with a burst on an AMD Zen 4), else Q4KR2_PF_DEC ahead into
 * L1, a part per chunk: 2 threads 22.7-23.4 -> 25.6-26.2 GB/s (Intel Xeon). */
#define Q4KR2_PF 4
#define Q4KR2_PF_DEC 2

/* chunk c (c % 2 a constant where inlined: the low or high nibbles) of
 * super-block s, half h, into isum[j] */
KERN_AI void q4kr2_chunk(int nr, int c, int h, const uint8_t *s, const block_q8_K *const *x, int64_t ib,
                         __m256i *isum)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    /* weight vector outer, activation rows inner: one unpacked vector live
     * at a time (all 8 of them and 4 chains overflowed the 16 registers) */
    __m256i t[Q4KR2_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) t[j] = _mm256_setzero_si256();
    KERN_UNROLL for (int g = 0; g < 8; g++)
    {
        const __m256i v = _mm256_load_si256((const __m256i *)(s + 64 * (8 * (c / 2) + g) + 32 * h));
        const __m256i u = _mm256_and_si256(c % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            int32_t y4;
            memcpy(&y4, x[j][ib].qs + 32 * c + 4 * g, 4);
            t[j] = _mm256_add_epi16(t[j], _mm256_maddubs_epi16(u, _mm256_set1_epi32(y4)));
            avx2_pin(&t[j]); /* a chain, not a tree (avx2_pin) */
        }
    }
    /* the 8 rows' scales of chunk c, each as an int16 pair (sc, sc) */
    const __m256i sc32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + KERN_Q4KR_SC + 16 * c + 8 * h)));
    const __m256i sc = _mm256_or_si256(sc32, _mm256_slli_epi32(sc32, 16));
    KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(t[j], sc));
}

/* one group (both halves: out[2 * j + h] = rows 8h..8h+7) x nr
 * (1..Q4KR2_NR) activation rows; a super-block's halves back to back, so
 * each 64-byte line is used whole when it arrives */
KERN_AI void q4kr2_tile(int nr, int64_t nsb, const uint8_t *q, const block_q8_K *const *x,
                        const struct kern_q4kr_x *const *xs, __m256 *out)
{
    __m256 acc[2 * Q4KR2_NR];
    KERN_UNROLL for (int j = 0; j < 2 * nr; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const uint8_t *s = q + (size_t)ib * KERN_Q4KR_SB;
        KERN_NOUNROLL for (int h = 0; h < 2; h++)
        {
            __m256i isum[Q4KR2_NR];
            KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm256_setzero_si256();
            if (nr == 1) { /* unrolled: each load steps by a super-block (the stride prefetcher follows) */
                KERN_UNROLL for (int c = 0; c < 8; c++)
                {
                    if (kern_dec_pf) /* see Q4KR2_PF_DEC */
                        avx2_prefetch_part(s + Q4KR2_PF_DEC * KERN_Q4KR_SB, KERN_Q4KR_SB, true, 8 * h + c, 16);
                    q4kr2_chunk(nr, c, h, s, x, ib, isum);
                }
            } else {
                KERN_NOUNROLL for (int p = 0; p < 4; p++)
                {
                    /* past the group too: the next group follows */
                    avx2_prefetch_part(s + Q4KR2_PF * KERN_Q4KR_SB, KERN_Q4KR_SB, false, 4 * h + p, 8);
                    q4kr2_chunk(nr, 2 * p, h, s, x, ib, isum);
                    q4kr2_chunk(nr, 2 * p + 1, h, s, x, ib, isum);
                }
            }
            const __m256 d = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(s + KERN_Q4KR_D + 16 * h)));
            const __m256 dm = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(s + KERN_Q4KR_DM + 16 * h)));
            KERN_UNROLL for (int j = 0; j < nr; j++)
            {
                __m256i m = _mm256_setzero_si256();
                KERN_UNROLL for (int i = 0; i < 4; i++) m = _mm256_add_epi32(
                    m, _mm256_madd_epi16(_mm256_cvtepu8_epi16(
                                             _mm_load_si128((const __m128i *)(s + KERN_Q4KR_MN + 32 * i + 16 * h))),
                                         _mm256_set1_epi32(xs[j][ib].bp[i])));
                const __m256 dy = _mm256_set1_ps(xs[j][ib].dx);
                __m256 a = acc[2 * j + h];
                a = _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(isum[j]), a);
                acc[2 * j + h] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, dy), _mm256_cvtepi32_ps(m), a);
            }
        }
    }
    KERN_UNROLL for (int j = 0; j < 2 * nr; j++) out[j] = acc[j];
}

typedef void (*q4kr2_tile_fn)(int64_t nsb, const uint8_t *q, const block_q8_K *const *x,
                              const struct kern_q4kr_x *const *xs, __m256 *out);
#define Q4KR2_TILE_N(N)                                                                                    \
    static void q4kr2_tile_##N(int64_t nsb, const uint8_t *q, const block_q8_K *const *x,                  \
                               const struct kern_q4kr_x *const *xs, __m256 *out)                              \
    {                                                                                                      \
        q4kr2_tile(N, nsb, q, x, xs, out);                                                                 \
    }
Q4KR2_TILE_N(1)
Q4KR2_TILE_N(2)
Q4KR2_TILE_N(3)
Q4KR2_TILE_N(4)
static const q4kr2_tile_fn q4kr2_tiles[Q4KR2_NR] = {q4kr2_tile_1, q4kr2_tile_2, q4kr2_tile_3, q4kr2_tile_4};

static void q4kr_gemm_avx2(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    const int64_t nsb = k / KERN_QK_K;
    if ((size_t)nsb * Q4KR2_NR * sizeof(struct kern_q4kr_x) > KERN_GEMM_WS_BYTES || r0 % KERN_QKR_ROWS != 0) {
        kern_ref_q4kr_gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
        return;
    }
    const uint8_t *base = w;
    struct kern_q4kr_x *sums = ws;
    const int64_t g0 = r0 / KERN_QKR_ROWS, g1 = (r1 + KERN_QKR_ROWS - 1) / KERN_QKR_ROWS;
    const int64_t span = n_batch == 1 ? g1 - g0 : SP_MAX((int64_t)1, (int64_t)(Q4KR2_SPAN_BYTES / w_stride));
    /* every row's sums once when they fit (else per tile, for each span), as rp_drive512.h */
    const bool once = (size_t)nsb * (size_t)n_batch * sizeof(struct kern_q4kr_x) <= KERN_GEMM_WS_BYTES;
    for (int64_t b = 0; once && b < n_batch; b++)
        avx2_q4kr_sums(nsb, (const block_q8_K *)(const void *)((const char *)x + (size_t)b * x_stride),
                       sums + b * nsb);
    for (int64_t s0 = g0; s0 < g1; s0 += span) {
        const int64_t s1 = SP_MIN(g1, s0 + span);
        for (int64_t b = 0; b < n_batch; b += Q4KR2_NR) {
            const int64_t nr = SP_MIN((int64_t)Q4KR2_NR, n_batch - b);
            const block_q8_K *xp[Q4KR2_NR];
            const struct kern_q4kr_x *xsp[Q4KR2_NR];
            for (int64_t j = 0; j < nr; j++) {
                struct kern_q4kr_x *xs = sums + (once ? b + j : j) * nsb;
                xp[j] = (const block_q8_K *)(const void *)((const char *)x + (size_t)(b + j) * x_stride);
                if (!once)
                    avx2_q4kr_sums(nsb, xp[j], xs);
                xsp[j] = xs;
            }
            for (int64_t g = s0; g < s1; g++) {
                __m256 o[2 * Q4KR2_NR];
                q4kr2_tiles[nr - 1](nsb, base + (size_t)g * w_stride, xp, xsp, o);
                avx2_store_group16(nr, g, r1, y + (size_t)b * y_stride, y_stride, o);
            }
        }
    }
}

static const struct kern_repack q4kr_avx2 = {
    .rows = KERN_QKR_ROWS,
    .group_bytes = kern_q4kr_group_bytes,
    .pack = kern_q4kr_pack,
    .row_to_float = kern_q4kr_row_to_float,
    .gemm = q4kr_gemm_avx2,
};

/* Q4_K on AVX2: weights are repacked at load (the backend's bind). */
void kern_avx2_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_Q4_K)
        ops->rp = &q4kr_avx2;
}
