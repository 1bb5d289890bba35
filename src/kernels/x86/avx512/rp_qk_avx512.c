/* rp_qk_avx512.c - the AVX-512 VNNI gemms over Q4_K and Q6_K weights
 * repacked at load (ops->rp; layouts in kern_impl.h, reference and order in
 * ref/repack_qk.c). Vector v of a super-block holds 4 bytes of each of the
 * 16 rows, so and / shift+and give the unsigned quants of elements
 * 4g..4g+3 of a chunk for all 16 rows (Q6_K or's in its two high bits, one
 * shift and mask), and vpdpbusd against a broadcast of 4 activation bytes
 * adds each row's 4-element dot to its lane. Per chunk (Q4_K) or half chunk
 * (Q6_K, whose chain starts from -32 * bsum: the offset in the integers)
 * the sum is multiplied by the rows' scales (vpmulld) into the exact integer
 * sum of the super-block; Q4_K's min term is 4 vpdpwssd of the rows' min
 * pairs with the activation's 32-element sums. Then per output one float
 * accumulator, one FMA with fl(d * dy) (and Q4_K one FNMADD with
 * fl(dmin * dy)): the K-quant panels' bits (the AVX2 and AVX-512 panels',
 * the reference's) for every batch size and row range (test_repack,
 * memcmp). Tiles of 16 rows x up to 8 activation rows over the
 * spans of rp_drive512.h. Uses only intrinsics that
 * tests/kernels/avx512_emu.h emulates (and rp_drive512.h's two asm
 * statements, which it replaces with the same operations). */
#include "kernels/x86/avx512/rp_drive512.h"

#define Q4KR_NR 8
#define Q6KR_NR 8
/* The batched tiles prefetch QKR_PF super-blocks ahead into L2 (T1: with
 * T0 alone the requests held L1's few miss buffers, 2 threads x 4 rows
 * streamed a Q4_K weight at 15 GB/s), and, where kern_dec_pf says (Intel),
 * QKR_PF_DEC ahead into L1 as well; each in parts spread over the
 * super-block's work (avx2_prefetch_part), since one burst of all its lines
 * at the top stalled the core (perf: ~40 % of the 4-row tile's samples on
 * the instruction after the burst). bench_kernels dram, 2 threads, huge
 * pages, Intel Xeon, 4 / 8 activation rows: Q4_K one T1 burst 22-23.5 / 16
 * GB/s, in 4 parts 25-26 / 20-21, with the T0 parts 28.8-29.9 / 21.6-22.5;
 * Q6_K (8 parts) 23-23.5 / 17-18 -> 25.5-26 / 22-23 -> 29.8-30.9 / 24.5-25.4.
 * The one-row tiles: Q4_K's streamed better without on an AMD Zen 4 (the
 * stride prefetcher follows its unrolled loads: 23-25 GB/s on one thread
 * against 18-19 with a burst), so it prefetches (QKR_PF_DEC ahead, into L1,
 * a part per chunk) only where kern_dec_pf says: on the Intel Xeon 2 threads
 * 22.8-23.6 GB/s without, 25.4-26.1 with one burst, 29.7-31.1 in parts.
 * Q6_K's one-row tile: one T1 burst, 4 ahead 15-17, 8 ahead 18-21 (10
 * without); parts gained nothing there. */
#define QKR_PF 8
#define QKR_PF_DEC 2

/* per activation row and super-block: Q4_K struct kern_q4kr_x; Q6_K -32 x
 * each 16-element sum */
struct q6kr_x {
    int32_t off[16];
    float dx;
    int32_t pad[3];
};

/* part `part` of nparts of a batched tile's prefetches ahead of super-block s (see
 * QKR_PF) */
KERN_AI void qkr_prefetch(const uint8_t *s, size_t sb, int part, int nparts)
{
    if (kern_dec_pf)
        avx2_prefetch_part(s + QKR_PF_DEC * sb, sb, true, part, nparts);
    avx2_prefetch_part(s + QKR_PF * sb, sb, false, part, nparts);
}

/* chunk c (c % 2 a constant where inlined: the low or high nibbles) of
 * super-block s into isum[j] */
KERN_AI void q4kr_chunk(int nr, int c, const uint8_t *s, const block_q8_K *const *x, int64_t ib, __m512i *isum)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512i u[8];
    KERN_UNROLL for (int g = 0; g < 8; g++)
    {
        const __m512i v = _mm512_load_si512(s + 64 * (8 * (c / 2) + g));
        u[g] = _mm512_and_si512(c % 2 ? _mm512_srli_epi16(v, 4) : v, m4);
    }
    const __m512i sc = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(s + KERN_Q4KR_SC + 16 * c)));
    KERN_UNROLL for (int j = 0; j < nr; j++)
    {
        const int8_t *y = x[j][ib].qs + 32 * c;
        /* few rows: two chains, so one row does not wait 8 dpbusd latencies */
        const __m512i t = nr <= 2 ? _mm512_add_epi32(rp512_dot(_mm512_setzero_si512(), u, y, 0, 4),
                                                     rp512_dot(_mm512_setzero_si512(), u, y, 4, 8))
                                  : rp512_dot(_mm512_setzero_si512(), u, y, 0, 8);
        isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(t, sc));
        if (nr > 1) /* the one-row tile streams memory; its schedule stays the compiler's */
            rp512_pin(&isum[j]);
    }
}

/* one group x nr (1..Q4KR_NR) activation rows: out[j] = its 16 rows' results */
KERN_AI void q4kr_tile(int nr, int64_t nsb, const uint8_t *q, const block_q8_0 *const *xv, const void *const *xsv,
                       __m512 *out)
{
    const block_q8_K *x[Q4KR_NR];
    const struct kern_q4kr_x *xs[Q4KR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++)
    {
        x[j] = (const block_q8_K *)(const void *)xv[j];
        xs[j] = xsv[j];
    }
    __m512 acc[Q4KR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const uint8_t *s = q + (size_t)ib * KERN_Q4KR_SB;
        __m512i isum[Q4KR_NR];
        KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm512_setzero_si512();
        if (nr == 1) { /* unrolled: each load instruction steps by one super-block, which the
                        * hardware's stride prefetcher follows (rolled: 29-33 t/s instead of 39-40,
                        * tinyllama1b Q4_K_M decode) */
            KERN_UNROLL for (int c = 0; c < 8; c++)
            {
                if (kern_dec_pf) /* see QKR_PF_DEC */
                    avx2_prefetch_part(s + QKR_PF_DEC * KERN_Q4KR_SB, KERN_Q4KR_SB, true, c, 8);
                q4kr_chunk(nr, c, s, x, ib, isum);
            }
        } else {
            KERN_NOUNROLL for (int p = 0; p < 4; p++) /* rolled: it would hoist every weight vector */
            {
                /* past the group too: the next group follows */
                qkr_prefetch(s, KERN_Q4KR_SB, p, 4);
                q4kr_chunk(nr, 2 * p, s, x, ib, isum);
                q4kr_chunk(nr, 2 * p + 1, s, x, ib, isum);
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(s + KERN_Q4KR_D)));
        const __m512 dm = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(s + KERN_Q4KR_DM)));
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            __m512i m = _mm512_setzero_si512();
            KERN_UNROLL for (int i = 0; i < 4; i++) m = _mm512_dpwssd_epi32(
                m, _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)(s + KERN_Q4KR_MN + 32 * i))),
                _mm512_set1_epi32(xs[j][ib].bp[i]));
            const __m512 dy = _mm512_set1_ps(xs[j][ib].dx);
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum[j]), acc[j]);
            acc[j] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, dy), _mm512_cvtepi32_ps(m), acc[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

/* the unsigned 6-bit quants of chunk 4h + t (t a constant where inlined)
 * from its ql vector lo and qh vector hb: lo's low (t < 2) or high nibbles,
 * with bits 2t, 2t + 1 of hb moved to bits 4, 5 */
KERN_AI __m512i q6kr_unpack(__m512i lo, __m512i hb, int t)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i hi = t == 0 ? _mm512_slli_epi16(hb, 4)
                       : t == 1 ? _mm512_slli_epi16(hb, 2)
                       : t == 2 ? hb
                                : _mm512_srli_epi16(hb, 2);
    return _mm512_or_si512(_mm512_and_si512(t / 2 ? _mm512_srli_epi16(lo, 4) : lo, m4), _mm512_and_si512(hi, m30));
}

/* chunk c's two half sums t0, t1 times their sub-blocks' scales, added */
KERN_AI __m512i q6kr_scaled(const uint8_t *s, int c, __m512i t0, __m512i t1)
{
    const __m512i sc0 = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(s + KERN_Q6KR_SC + 32 * c)));
    const __m512i sc1 = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(s + KERN_Q6KR_SC + 32 * c + 16)));
    return _mm512_add_epi32(_mm512_mullo_epi32(t0, sc0), _mm512_mullo_epi32(t1, sc1));
}

/* chunk c = 4h + t (t a constant where inlined) of super-block s into isum[j] */
KERN_AI void q6kr_chunk(int nr, int c, const uint8_t *s, const block_q8_K *const *x, const struct q6kr_x *const *xs,
                        int64_t ib, __m512i *isum)
{
    const int h = c / 4, t = c % 4;
    __m512i u[8];
    KERN_UNROLL for (int g = 0; g < 8; g++) u[g] =
        q6kr_unpack(_mm512_load_si512(s + KERN_Q6KR_QL(8 * (2 * h + t % 2) + g)),
                    _mm512_load_si512(s + KERN_Q6KR_QHV(8 * h + g)), t);
    KERN_UNROLL for (int j = 0; j < nr; j++)
    {
        const int8_t *y = x[j][ib].qs + 32 * c;
        const __m512i t0 = rp512_dot(_mm512_set1_epi32(xs[j][ib].off[2 * c]), u, y, 0, 4);
        const __m512i t1 = rp512_dot(_mm512_set1_epi32(xs[j][ib].off[2 * c + 1]), u, y, 4, 8);
        isum[j] = _mm512_add_epi32(isum[j], q6kr_scaled(s, c, t0, t1));
        rp512_pin(&isum[j]);
    }
}

/* one activation row: super-block s's exact integer sum, each weight vector
 * loaded once (ql p 2h, 2h + 1 and qh h give chunks 4h..4h + 3) in the
 * layout's order. Through the chunk function (every vector loaded by several
 * chunks, about 130 load instructions per super-block) one row streamed at
 * 10 GB/s from memory (bench_kernels dram, one thread; Q4_K 24); with
 * this and prefetch, 18-21. */
KERN_AI __m512i q6kr_sb1(const uint8_t *s, const int8_t *y, const struct q6kr_x *xs)
{
    __m512i isum = _mm512_setzero_si512();
    KERN_UNROLL for (int h = 0; h < 2; h++)
    {
        __m512i a[4][2];
        KERN_UNROLL for (int t = 0; t < 4; t++)
        {
            a[t][0] = _mm512_set1_epi32(xs->off[2 * (4 * h + t)]);
            a[t][1] = _mm512_set1_epi32(xs->off[2 * (4 * h + t) + 1]);
        }
        KERN_UNROLL for (int g = 0; g < 8; g++)
        {
            const __m512i l0 = _mm512_load_si512(s + KERN_Q6KR_QL(8 * (2 * h) + g));
            const __m512i hb = _mm512_load_si512(s + KERN_Q6KR_QHV(8 * h + g));
            const __m512i l1 = _mm512_load_si512(s + KERN_Q6KR_QL(8 * (2 * h + 1) + g));
            KERN_UNROLL for (int t = 0; t < 4; t++)
            {
                int32_t y4;
                memcpy(&y4, y + 32 * (4 * h + t) + 4 * g, 4);
                a[t][g / 4] =
                    _mm512_dpbusd_epi32(a[t][g / 4], q6kr_unpack(t % 2 ? l1 : l0, hb, t), _mm512_set1_epi32(y4));
            }
        }
        KERN_UNROLL for (int t = 0; t < 4; t++) isum =
            _mm512_add_epi32(isum, q6kr_scaled(s, 4 * h + t, a[t][0], a[t][1]));
    }
    return isum;
}

KERN_AI void q6kr_tile(int nr, int64_t nsb, const uint8_t *q, const block_q8_0 *const *xv, const void *const *xsv,
                       __m512 *out)
{
    const block_q8_K *x[Q6KR_NR];
    const struct q6kr_x *xs[Q6KR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++)
    {
        x[j] = (const block_q8_K *)(const void *)xv[j];
        xs[j] = xsv[j];
    }
    __m512 acc[Q6KR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nsb; ib++) {
        const uint8_t *s = q + (size_t)ib * KERN_Q6KR_SB;
        if (nr == 1)
            avx2_prefetch_part(s + QKR_PF * KERN_Q6KR_SB, KERN_Q6KR_SB, false, 0, 1);
        __m512i isum[Q6KR_NR];
        KERN_UNROLL for (int j = 0; j < nr; j++) isum[j] = _mm512_setzero_si512();
        if (nr == 1) {
            isum[0] = q6kr_sb1(s, x[0][ib].qs, &xs[0][ib]);
        } else {
            KERN_NOUNROLL for (int h = 0; h < 2; h++) /* rolled, as Q4_K's */
            {
                KERN_UNROLL for (int t = 0; t < 4; t++) /* t a constant in q6kr_chunk */
                {
                    qkr_prefetch(s, KERN_Q6KR_SB, 4 * h + t, 8);
                    q6kr_chunk(nr, 4 * h + t, s, x, xs, ib, isum);
                }
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(s + KERN_Q6KR_D)));
        KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] =
            _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xs[j][ib].dx)), _mm512_cvtepi32_ps(isum[j]), acc[j]);
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

#define QKR_TILE_N(N, T)                                                                                     \
    static void T##_tile_##N(int64_t nb, const uint8_t *q, const block_q8_0 *const *x, const void *const *xs, \
                             __m512 *out)                                                                     \
    {                                                                                                         \
        T##_tile(N, nb, q, x, xs, out);                                                                       \
    }
QKR_TILE_N(1, q4kr)
QKR_TILE_N(2, q4kr)
QKR_TILE_N(3, q4kr)
QKR_TILE_N(4, q4kr)
QKR_TILE_N(5, q4kr)
QKR_TILE_N(6, q4kr)
QKR_TILE_N(7, q4kr)
QKR_TILE_N(8, q4kr)
QKR_TILE_N(1, q6kr)
QKR_TILE_N(2, q6kr)
QKR_TILE_N(3, q6kr)
QKR_TILE_N(4, q6kr)
QKR_TILE_N(5, q6kr)
QKR_TILE_N(6, q6kr)
QKR_TILE_N(7, q6kr)
QKR_TILE_N(8, q6kr)
static const rp512_tile_fn q4kr_tiles[Q4KR_NR] = {q4kr_tile_1, q4kr_tile_2, q4kr_tile_3, q4kr_tile_4,
                                                  q4kr_tile_5, q4kr_tile_6, q4kr_tile_7, q4kr_tile_8};
static const rp512_tile_fn q6kr_tiles[Q6KR_NR] = {q6kr_tile_1, q6kr_tile_2, q6kr_tile_3,
                                                  q6kr_tile_4, q6kr_tile_5, q6kr_tile_6, q6kr_tile_7, q6kr_tile_8};

static void q4kr_sums(int64_t nsb, const block_q8_0 *xv, void *xsv)
{
    avx2_q4kr_sums(nsb, (const block_q8_K *)(const void *)xv, xsv);
}

static void q6kr_sums(int64_t nsb, const block_q8_0 *xv, void *xsv)
{
    const block_q8_K *x = (const block_q8_K *)(const void *)xv;
    struct q6kr_x *xs = xsv;
    const __m256i m32 = _mm256_set1_epi32(-32);
    for (int64_t ib = 0; ib < nsb; ib++) { /* off[j] = -32 * bsums[j], 8 at a time (the scalar loop
                                             was a quarter of Q6_K's prefill time: per tile, per span) */
        for (int h = 0; h < 2; h++) {
            const __m256i b = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(x[ib].bsums + 8 * h)));
            _mm256_storeu_si256((__m256i *)(xs[ib].off + 8 * h), _mm256_mullo_epi32(b, m32));
        }
        xs[ib].dx = x[ib].d;
    }
}

static const struct rp512_kind q4kr_kind = {KERN_QK_K, Q4KR_NR, sizeof(struct kern_q4kr_x), q4kr_sums, q4kr_tiles,
                                            kern_ref_q4kr_gemm};
static const struct rp512_kind q6kr_kind = {KERN_QK_K, Q6KR_NR, sizeof(struct q6kr_x), q6kr_sums, q6kr_tiles,
                                            kern_ref_q6kr_gemm};

static void q4kr_gemm512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    rp512_gemm(&q4kr_kind, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static void q6kr_gemm512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    rp512_gemm(&q6kr_kind, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static const struct kern_repack q4kr_avx512 = {
    .rows = KERN_QKR_ROWS,
    .group_bytes = kern_q4kr_group_bytes,
    .pack = kern_q4kr_pack,
    .row_to_float = kern_q4kr_row_to_float,
    .gemm = q4kr_gemm512,
};

static const struct kern_repack q6kr_avx512 = {
    .rows = KERN_QKR_ROWS,
    .group_bytes = kern_q6kr_group_bytes,
    .pack = kern_q6kr_pack,
    .row_to_float = kern_q6kr_row_to_float,
    .gemm = q6kr_gemm512,
};

/* Q4_K and Q6_K on AVX-512: weights are repacked at load (the backend's bind). */
void kern_avx512_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_repack_qk(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_Q4_K)
        ops->rp = &q4kr_avx512;
    else if (type == GG_TYPE_Q6_K)
        ops->rp = &q6kr_avx512;
}
