/* rp_qk.c - the AVX2 gemms over Q4_K and Q6_K weights repacked at load
 * (ops->rp; layouts in kern_impl.h, reference and order in
 * ref/repack_qk.c). A group of 16 rows is two halves of 8 (each 64-byte
 * vector's first and second 32 bytes). and / shift+and give the unsigned
 * quants of elements 4g..4g+3 of a chunk for 8 rows (Q6_K or's in its high
 * bits with one shift and mask); pmaddubsw against a broadcast of 4
 * activation bytes gives each row two pair sums, added in int16 over a run
 * of groups that int16 holds (Q4_K: the chunk's 8, 2 x 15 x 128 x 8 < 2^15;
 * Q6_K: 2, 2 x 63 x 128 x 2 < 2^15), then one pmaddwd by the row's scale
 * (twice in each pair) adds scale x dot into its int32 lane: the exact
 * integer sum of vec_dot. Q4_K's min term is pmaddwd of the rows' min pairs
 * with the activation's 32-element sums; Q6_K's offset, pmaddwd of its
 * scale pairs with the bsum pairs, times 32, is subtracted in the integers.
 * Then the panels' float operations (one accumulator per output), so their
 * bits for every batch size, decode included (test_repack, memcmp). Tiles of
 * 8 rows x up to 4 activation rows over spans of groups small enough to stay
 * in L2 while every tile passes. */
#include "kernels/x86/avx2/avx2_util.h"

#define QKR_NR 4
#define QKR_SPAN_BYTES ((size_t)192 << 10)
#define QKR_PF 2 /* super-blocks prefetched ahead by tiles of several activation rows */

/* per activation row and super-block: the 32-element sums of chunks 2i,
 * 2i + 1 as an int16 pair (Q4_K's min term), and d */
struct qkr_x {
    int32_t bp[4];
    float dx;
    int32_t pad[3];
};

KERN_AI void qkr_prefetch(const uint8_t *s, size_t sb)
{
    for (size_t l = 0; l < sb; l += 64)
        _mm_prefetch((const char *)s + QKR_PF * sb + l, _MM_HINT_T0);
}

/* 8 bytes at p (one per row) as int16 pairs (b, b) or, with p2, (p[r], p2[r]) */
KERN_AI __m256i qkr_pairs_u8(const uint8_t *p)
{
    const __m128i b = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(b, b));
}
KERN_AI __m256i qkr_pairs_i8(const uint8_t *p, const uint8_t *p2)
{
    return _mm256_cvtepi8_epi16(
        _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p), _mm_loadl_epi64((const __m128i *)p2)));
}

/* chunk c (c % 2 a constant where inlined: low or high nibbles) of half h
 * of super-block s into isum[j] */
KERN_AI void q4kr_chunk(int nr, int h, int c, const uint8_t *s, const block_q8_K *const *x, int64_t ib, __m256i *isum)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i s16[QKR_NR];
    KERN_UNROLL for (int g = 0; g < 8; g++)
    {
        const __m256i v = _mm256_load_si256((const __m256i *)(s + 64 * (8 * (c / 2) + g) + 32 * h));
        const __m256i u = _mm256_and_si256(c % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            int32_t y4;
            memcpy(&y4, x[j][ib].qs + 32 * c + 4 * g, 4);
            const __m256i p = _mm256_maddubs_epi16(u, _mm256_set1_epi32(y4));
            s16[j] = g == 0 ? p : _mm256_add_epi16(s16[j], p);
        }
    }
    const __m256i sc = qkr_pairs_u8(s + KERN_Q4KR_SC + 16 * c + 8 * h);
    KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(s16[j], sc));
}

/* half h (rows 8h..8h+7) of one group x nr (1..QKR_NR) activation rows */
KERN_AI void q4kr_tile(int nr, int h, int64_t nsb, const uint8_t *q, const block_q8_K *const *x,
                       const struct qkr_x *const *xs, __m256 *out)
{
    __m256 acc[QKR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const uint8_t *s = q + (size_t)ib * KERN_Q4KR_SB;
        if (nr > 1 && h == 0 && ib + QKR_PF < nsb)
            qkr_prefetch(s, KERN_Q4KR_SB);
        __m256i isum[QKR_NR];
        KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm256_setzero_si256();
        if (nr == 1) { /* unrolled: each load steps by one super-block, which the
                        * hardware's stride prefetch follows (rolled, one row decoded
                        * tinyllama1b Q4_K_M at 29-33 t/s instead of 39) */
            KERN_UNROLL for (int c = 0; c < 8; c++) q4kr_chunk(nr, h, c, s, x, ib, isum);
        } else {
            KERN_NOUNROLL for (int p = 0; p < 4; p++) /* rolled: it would hoist every weight vector */
            {
                q4kr_chunk(nr, h, 2 * p, s, x, ib, isum);
                q4kr_chunk(nr, h, 2 * p + 1, s, x, ib, isum);
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(s + KERN_Q4KR_D + 16 * h)));
        const __m256 dm = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(s + KERN_Q4KR_DM + 16 * h)));
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            __m256i m = _mm256_setzero_si256();
            KERN_UNROLL for (int i = 0; i < 4; i++) m = _mm256_add_epi32(
                m, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_load_si128((const __m128i *)(s + KERN_Q4KR_MN + 32 * i + 16 * h))),
                                     _mm256_set1_epi32(xs[j][ib].bp[i])));
            const __m256 dy = _mm256_set1_ps(xs[j][ib].dx);
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(isum[j]), acc[j]);
            acc[j] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, dy), _mm256_cvtepi32_ps(m), acc[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

/* the unsigned quants (0..63) of elements 4g..4g+3 of chunk c (= 4 hh + t),
 * 8 rows of half h, from super-block s */
KERN_AI __m256i q6kr_u(const uint8_t *s, int h, int c, int g)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const int hh = c / 4, t = c % 4;
    const __m256i lo = _mm256_load_si256((const __m256i *)(s + 64 * (8 * (2 * hh + t % 2) + g) + 32 * h));
    const __m256i hb = _mm256_load_si256((const __m256i *)(s + KERN_Q6KR_QH + 64 * (8 * hh + g) + 32 * h));
    /* bits 2t, 2t + 1 of each byte to bits 4, 5 */
    const __m256i hi = t == 0 ? _mm256_slli_epi16(hb, 4)
                       : t == 1 ? _mm256_slli_epi16(hb, 2)
                       : t == 2 ? hb
                                : _mm256_srli_epi16(hb, 2);
    return _mm256_or_si256(_mm256_and_si256(t / 2 ? _mm256_srli_epi16(lo, 4) : lo, m4), _mm256_and_si256(hi, m30));
}

#define Q6KR_UBLK 4096 /* bytes of one unpacked super-block of 16 rows: [chunk][g][64] */
/* Batches from here on unpack each span's groups once into the workspace
 * (the tiles would redo the high bits for every 4 activation rows). */
#define Q6KR_PRE_MIN 8

/* chunk c of half h of super-block s (its quants unpacked at pu when pre)
 * into isum[j] */
KERN_AI void q6kr_chunk(int nr, bool pre, int h, int c, const uint8_t *s, const uint8_t *pu,
                        const block_q8_K *const *x, int64_t ib, __m256i *isum)
{
    KERN_UNROLL for (int g0 = 0; g0 < 8; g0 += 2)
    {
        __m256i s16[QKR_NR];
        KERN_UNROLL for (int g = g0; g < g0 + 2; g++)
        {
            const __m256i u =
                pre ? _mm256_load_si256((const __m256i *)(pu + (size_t)ib * Q6KR_UBLK + 64 * (8 * c + g) + 32 * h))
                    : q6kr_u(s, h, c, g);
            KERN_UNROLL for (int j = 0; j < nr; j++)
            {
                int32_t y4;
                memcpy(&y4, x[j][ib].qs + 32 * c + 4 * g, 4);
                const __m256i p = _mm256_maddubs_epi16(u, _mm256_set1_epi32(y4));
                s16[j] = g == g0 ? p : _mm256_add_epi16(s16[j], p);
            }
        }
        const uint8_t *sc8 = s + KERN_Q6KR_SC + 16 * (2 * c + g0 / 4) + 8 * h;
        const __m256i sc = qkr_pairs_i8(sc8, sc8);
        KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(s16[j], sc));
    }
}

/* pre: the quants come unpacked from pu (Q6KR_UBLK per super-block) */
KERN_AI void q6kr_tile(int nr, bool pre, int h, int64_t nsb, const uint8_t *q, const uint8_t *pu,
                       const block_q8_K *const *x, __m256 *out)
{
    __m256 acc[QKR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const uint8_t *s = q + (size_t)ib * KERN_Q6KR_SB;
        if (!pre && nr > 1 && h == 0 && ib + QKR_PF < nsb)
            qkr_prefetch(s, KERN_Q6KR_SB);
        __m256i isum[QKR_NR];
        KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm256_setzero_si256();
        if (nr == 1 && !pre) { /* unrolled, as Q4_K's */
            KERN_UNROLL for (int c = 0; c < 8; c++) q6kr_chunk(nr, pre, h, c, s, pu, x, ib, isum);
        } else {
            KERN_NOUNROLL for (int hh = 0; hh < 2; hh++) /* rolled, as Q4_K's */
            {
                q6kr_chunk(nr, pre, h, 4 * hh, s, pu, x, ib, isum);
                q6kr_chunk(nr, pre, h, 4 * hh + 1, s, pu, x, ib, isum);
                q6kr_chunk(nr, pre, h, 4 * hh + 2, s, pu, x, ib, isum);
                q6kr_chunk(nr, pre, h, 4 * hh + 3, s, pu, x, ib, isum);
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(s + KERN_Q6KR_D + 16 * h)));
        __m256i sp[8]; /* the rows' scale pairs 2i, 2i + 1 */
        KERN_UNROLL for (int i = 0; i < 8; i++) sp[i] =
            qkr_pairs_i8(s + KERN_Q6KR_SC + 32 * i + 8 * h, s + KERN_Q6KR_SC + 32 * i + 16 + 8 * h);
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            __m256i m = _mm256_setzero_si256();
            KERN_UNROLL for (int i = 0; i < 8; i++)
            {
                int32_t b2;
                memcpy(&b2, &x[j][ib].bsums[2 * i], 4);
                m = _mm256_add_epi32(m, _mm256_madd_epi16(sp[i], _mm256_set1_epi32(b2)));
            }
            const __m256i si = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(m, 5));
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[j][ib].d)), _mm256_cvtepi32_ps(si), acc[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

/* groups [g0, g1) unpacked into u (Q6KR_UBLK bytes per super-block) */
static void q6kr_unpack(int64_t nsb, const uint8_t *base, size_t w_stride, int64_t g0, int64_t g1, uint8_t *u)
{
    for (int64_t g = g0; g < g1; g++)
        for (int64_t ib = 0; ib < nsb; ib++) {
            const uint8_t *s = base + (size_t)g * w_stride + (size_t)ib * KERN_Q6KR_SB;
            uint8_t *ub = u + (size_t)((g - g0) * nsb + ib) * Q6KR_UBLK;
            for (int c = 0; c < 8; c++)
                for (int v = 0; v < 8; v++)
                    for (int h = 0; h < 2; h++)
                        _mm256_store_si256((__m256i *)(ub + 64 * (8 * c + v) + 32 * h), q6kr_u(s, h, c, v));
        }
}

typedef void (*qkr_tile_fn)(int h, int64_t nsb, const uint8_t *q, const uint8_t *pu, const block_q8_K *const *x,
                            const struct qkr_x *const *xs, __m256 *out);
#define QKR_TILE_N(N, T, CALL)                                                                                 \
    static void T##_tile_##N(int h, int64_t nsb, const uint8_t *q, const uint8_t *pu, const block_q8_K *const *x, \
                             const struct qkr_x *const *xs, __m256 *out)                                          \
    {                                                                                                             \
        (void)pu;                                                                                                 \
        (void)xs;                                                                                                 \
        CALL;                                                                                                     \
    }
#define QKR_TILES(T, CALL)                                                                                        \
    QKR_TILE_N(1, T, CALL(1))                                                                                     \
    QKR_TILE_N(2, T, CALL(2))                                                                                     \
    QKR_TILE_N(3, T, CALL(3))                                                                                     \
    QKR_TILE_N(4, T, CALL(4))                                                                                     \
    static const qkr_tile_fn T##_tiles[QKR_NR] = {T##_tile_1, T##_tile_2, T##_tile_3, T##_tile_4};
#define Q4KR_CALL(N) q4kr_tile(N, h, nsb, q, x, xs, out)
#define Q6KR_CALL(N) q6kr_tile(N, false, h, nsb, q, pu, x, out)
#define Q6KU_CALL(N) q6kr_tile(N, true, h, nsb, q, pu, x, out)
QKR_TILES(q4kr, Q4KR_CALL)
QKR_TILES(q6kr, Q6KR_CALL)
QKR_TILES(q6ku, Q6KU_CALL)

static void qkr_gemm(bool six, int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                     const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    const int64_t nsb = k / KERN_QK_K;
    if ((size_t)nsb * QKR_NR * sizeof(struct qkr_x) > KERN_GEMM_WS_BYTES || r0 % KERN_QKR_ROWS != 0) {
        (six ? kern_ref_q6kr_gemm : kern_ref_q4kr_gemm)(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride,
                                                        ws);
        return;
    }
    const qkr_tile_fn *tiles = six ? q6kr_tiles : q4kr_tiles;
    const uint8_t *base = w;
    struct qkr_x *xsum = ws;
    const int64_t g0 = r0 / KERN_QKR_ROWS, g1 = (r1 + KERN_QKR_ROWS - 1) / KERN_QKR_ROWS;
    int64_t span = n_batch == 1 ? g1 - g0 : SP_MAX((int64_t)1, (int64_t)(QKR_SPAN_BYTES / w_stride));
    /* Q6_K batches: each span's groups unpacked once after the sums */
    const size_t xs_bytes = ((size_t)nsb * QKR_NR * sizeof(struct qkr_x) + 63) / 64 * 64;
    const int64_t ucap = (int64_t)((KERN_GEMM_WS_BYTES - xs_bytes) / ((size_t)nsb * Q6KR_UBLK));
    const bool pre = six && n_batch >= Q6KR_PRE_MIN && ucap >= 1;
    uint8_t *ubuf = (uint8_t *)ws + xs_bytes;
    if (pre) {
        span = SP_MIN(span, ucap);
        tiles = q6ku_tiles;
    }
    for (int64_t s0 = g0; s0 < g1; s0 += span) {
        const int64_t s1 = SP_MIN(g1, s0 + span);
        if (pre)
            q6kr_unpack(nsb, base, w_stride, s0, s1, ubuf);
        for (int64_t b = 0; b < n_batch; b += QKR_NR) {
            const int64_t nr = SP_MIN((int64_t)QKR_NR, n_batch - b);
            const block_q8_K *xp[QKR_NR];
            const struct qkr_x *xsp[QKR_NR];
            for (int64_t j = 0; j < nr; j++) {
                xp[j] = (const block_q8_K *)((const char *)x + (size_t)(b + j) * x_stride);
                struct qkr_x *xj = xsum + j * nsb;
                for (int64_t ib = 0; ib < nsb; ib++) {
                    const int16_t *bs = xp[j][ib].bsums;
                    for (int i = 0; i < 4; i++) {
                        const uint32_t lo = (uint16_t)(bs[4 * i] + bs[4 * i + 1]);
                        const uint32_t hi = (uint16_t)(bs[4 * i + 2] + bs[4 * i + 3]);
                        xj[ib].bp[i] = (int32_t)(lo | hi << 16);
                    }
                    xj[ib].dx = xp[j][ib].d;
                }
                xsp[j] = xj;
            }
            for (int64_t g = s0; g < s1; g++)
                for (int h = 0; h < 2; h++) {
                    const int64_t rr = g * KERN_QKR_ROWS + 8 * h, nv = SP_MIN((int64_t)8, r1 - rr);
                    if (nv <= 0)
                        break;
                    __m256 o[QKR_NR];
                    tiles[nr - 1](h, nsb, base + (size_t)g * w_stride, ubuf + (size_t)((g - s0) * nsb) * Q6KR_UBLK, xp,
                                  xsp, o);
                    for (int64_t j = 0; j < nr; j++)
                        avx2_store_n(y + (size_t)(b + j) * y_stride + (size_t)rr, o[j], nv);
                }
        }
    }
}

static void q4kr_gemm_avx2(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    qkr_gemm(false, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static void q6kr_gemm_avx2(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    qkr_gemm(true, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static const struct kern_repack q4kr_avx2 = {
    .rows = KERN_QKR_ROWS,
    .group_bytes = kern_q4kr_group_bytes,
    .pack = kern_q4kr_pack,
    .row_to_float = kern_q4kr_row_to_float,
    .gemm = q4kr_gemm_avx2,
};

static const struct kern_repack q6kr_avx2 = {
    .rows = KERN_QKR_ROWS,
    .group_bytes = kern_q6kr_group_bytes,
    .pack = kern_q6kr_pack,
    .row_to_float = kern_q6kr_row_to_float,
    .gemm = q6kr_gemm_avx2,
};

/* Q4_K and Q6_K on AVX2: weights are repacked at load (the backend's bind). */
void kern_avx2_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_Q4_K)
        ops->rp = &q4kr_avx2;
    else if (type == GG_TYPE_Q6_K)
        ops->rp = &q6kr_avx2;
}
