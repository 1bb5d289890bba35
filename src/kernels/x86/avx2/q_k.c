/* q_k.c - AVX2 dot products of the K-quants (Q2_K..Q6_K) against Q8_K
 * activations, and the fast Q8_K activation quantizer. Per super-block the
 * weights are unpacked once into eight 32-byte vectors of unsigned quants
 * plus int16 scale vectors, then each of up to 4 activation rows is
 * multiplied with maddubs/madd; offsets and mins (Q2_K, Q3_K's -4, Q4_K,
 * Q5_K, Q6_K's -32) go through the activation's 16-element sums (bsums). */
#include "kernels/x86/avx2/avx2_util.h"
#include "kernels/x86/avx2/kp_panel.h"

#define NRMAX 4
#define QK_K KERN_QK_K

KERN_AI __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Word a of t's low lane in every word of the low lane, word b of t's high
 * lane in the high lane: one pshufb (the scale vectors were built with a
 * scalar load and broadcast per vector before; same values). */
KERN_AI __m256i words_bcast(__m256i t, int a, int b)
{
    return _mm256_shuffle_epi8(t, _mm256_set_m128i(_mm_set1_epi16((short)((2 * b) | (2 * b + 1) << 8)),
                                                   _mm_set1_epi16((short)((2 * a) | (2 * a + 1) << 8))));
}

/* s[v]: w[2v] in the low lane, w[2v+1] in the high lane, for the 16 int16
 * scales w (low lane 0..7, high lane 8..15) */
KERN_AI void scale_pairs16(__m256i w, __m256i s[8])
{
    const __m256i lo = _mm256_permute2x128_si256(w, w, 0x00), hi = _mm256_permute2x128_si256(w, w, 0x11);
    KERN_UNROLL for (int v = 0; v < 4; v++) {
        s[v] = words_bcast(lo, 2 * v, 2 * v + 1);
        s[v + 4] = words_bcast(hi, 2 * v, 2 * v + 1);
    }
}

/* The shared row loop: q[8] unsigned quants, s[8] int16 scale vectors;
 * returns the int32 lanes of sum(scale * q * y). */
KERN_AI __m256i dot8(const __m256i *q, const __m256i *s, const int8_t *y)
{
    __m256i sumi = _mm256_madd_epi16(_mm256_maddubs_epi16(q[0], load256(y)), s[0]);
    KERN_UNROLL for (int j = 1; j < 8; j++)
        sumi = _mm256_add_epi32(
            sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], load256(y + 32 * j)), s[j]));
    return sumi;
}

/* The K-quant kernel around dot8. Per super-block PREP(block, q, s, &m16,
 * &dw, &dmw) unpacks the quants q[8], the int16 scale vectors s[8], the
 * int16 vector m16 of the min/offset term and the block's factors; per
 * activation row ROW(y, q, s, m16, dw, dmw, acc) accumulates: KQ_ROW_MIN
 * subtracts d * min * bsums in float (Q2_K, Q4_K, Q5_K), KQ_ROW_OFF(shift)
 * subtracts a constant offset of 2^shift quants in the integers (Q3_K: 4,
 * Q6_K: 32). DRIVER: KERN_AVX2_DRIVER (vec_dot and a row gemm), or
 * KERN_AVX2_VEC_DOT where the type has batch kernels of its own. */
#define KQ256_KERN(NAME, BT, PREP, ROW, DRIVER)                                                         \
    KERN_AI void NAME##_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out) \
    {                                                                                              \
        const BT *w = vw;                                                                          \
        const block_q8_K *x[NRMAX];                                                                \
        __m256 acc[NRMAX];                                                                         \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                 \
            x[i] = vx[i];                                                                          \
            acc[i] = _mm256_setzero_ps();                                                          \
        }                                                                                          \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            __m256i q[8], s[8], m16;                                                               \
            float dw, dmw;                                                                         \
            PREP(&w[ib], q, s, &m16, &dw, &dmw);                                                   \
            KERN_UNROLL for (int i = 0; i < nr; i++) ROW(&x[i][ib], q, s, m16, dw, dmw, &acc[i]);  \
        }                                                                                          \
        KERN_UNROLL for (int i = 0; i < nr; i++)                                                   \
            out[i] = avx2_hsum_ps(acc[i]);                                                         \
    }                                                                                              \
    DRIVER(NAME, NAME##_kern, QK_K)

KERN_AI void kq_row_min(const block_q8_K *y, const __m256i *q, const __m256i *s, __m256i m16, float dw, float dmw,
                        __m256 *acc)
{
    const __m256i sumi = dot8(q, s, y->qs);
    const __m256i mm = _mm256_madd_epi16(load256(y->bsums), m16);
    const float dy = y->d;
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy), _mm256_cvtepi32_ps(sumi), *acc);
    *acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmw * dy), _mm256_cvtepi32_ps(mm), *acc);
}

KERN_AI void kq_row_off(const block_q8_K *y, const __m256i *q, const __m256i *s, __m256i m16, float dw, int shift,
                        __m256 *acc)
{
    __m256i sumi = dot8(q, s, y->qs);
    const __m256i off = _mm256_madd_epi16(load256(y->bsums), m16);
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, shift));
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), _mm256_cvtepi32_ps(sumi), *acc);
}

#define KQ_ROW_MIN(Y, Q, S, M16, DW, DMW, ACC) kq_row_min(Y, Q, S, M16, DW, DMW, ACC)
#define KQ_ROW_OFF2(Y, Q, S, M16, DW, DMW, ACC) kq_row_off(Y, Q, S, M16, DW, 2, ACC)
#define KQ_ROW_OFF5(Y, Q, S, M16, DW, DMW, ACC) kq_row_off(Y, Q, S, M16, DW, 5, ACC)

/* ---- Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins (Q5_K
 * adds a fifth bit from qh) */
KERN_AI void k4_prep_scales(const uint8_t *scales, __m256i s[8], __m256i *m16)
{
    const __m128i smv = k4_scales_mins_v(scales);
    const __m128i m8 = _mm_unpackhi_epi64(smv, smv);
    *m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    const __m256i w = _mm256_cvtepu8_epi16(smv);
    const __m256i lo = _mm256_permute2x128_si256(w, w, 0x00);
    KERN_UNROLL for (int j = 0; j < 8; j++)
        s[j] = words_bcast(lo, j, j);
}

KERN_AI void q4_K_prep(const block_q4_K *b, __m256i q[8], __m256i s[8], __m256i *m16, float *dw, float *dmw)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    k4_prep_scales(b->scales, s, m16);
    KERN_UNROLL for (int j = 0; j < 4; j++) {
        const __m256i raw = load256(b->qs + 32 * j);
        q[2 * j] = _mm256_and_si256(raw, m4);
        q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    }
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ256_KERN(q4_K, block_q4_K, q4_K_prep, KQ_ROW_MIN, KERN_AVX2_VEC_DOT)

KERN_AI void q5_K_prep(const block_q5_K *b, __m256i q[8], __m256i s[8], __m256i *m16, float *dw, float *dmw)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    k4_prep_scales(b->scales, s, m16);
    const __m256i hb = load256(b->qh);
    KERN_UNROLL for (int j = 0; j < 4; j++) {
        const __m256i raw = load256(b->qs + 32 * j);
        const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one);
        const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one);
        q[2 * j] = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_slli_epi16(h0, 4));
        q[2 * j + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_slli_epi16(h1, 4));
    }
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ256_KERN(q5_K, block_q5_K, q5_K_prep, KQ_ROW_MIN, KERN_AVX2_VEC_DOT)

/* ---- Q6_K: unsigned 6-bit quants, -32 through bsums */
KERN_AI void q6_K_prep(const block_q6_K *b, __m256i q[8], __m256i s[8], __m256i *m16, float *dw, float *dmw)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const int8_t *sc = b->scales;
    *m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
    KERN_UNROLL for (int c = 0; c < 2; c++) {
        const __m256i l0 = load256(b->ql + 64 * c), l1 = load256(b->ql + 64 * c + 32);
        const __m256i h = load256(b->qh + 32 * c);
        q[4 * c + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
        q[4 * c + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
        q[4 * c + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
        q[4 * c + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
    }
    scale_pairs16(*m16, s);
    *dw = avx2_h2f(b->d);
    *dmw = 0.0f;
}
KQ256_KERN(q6_K, block_q6_K, q6_K_prep, KQ_ROW_OFF5, KERN_AVX2_VEC_DOT)

/* ---- Q2_K: 2-bit quants, 16-element groups with 4-bit scale and min */
KERN_AI void q2_K_prep(const block_q2_K *b, __m256i q[8], __m256i s[8], __m256i *m16, float *dw, float *dmw)
{
    const __m256i m2 = _mm256_set1_epi8(3);
    const uint8_t *sc = b->scales;
    const __m128i s8 = _mm_loadu_si128((const __m128i *)sc);
    *m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
    KERN_UNROLL for (int c = 0; c < 2; c++) {
        const __m256i raw = load256(b->qs + 32 * c);
        q[4 * c + 0] = _mm256_and_si256(raw, m2);
        q[4 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 2), m2);
        q[4 * c + 2] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m2);
        q[4 * c + 3] = _mm256_and_si256(_mm256_srli_epi16(raw, 6), m2);
    }
    scale_pairs16(_mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F))), s);
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ256_KERN(q2_K, block_q2_K, q2_K_prep, KQ_ROW_MIN, KERN_AVX2_DRIVER)

/* ---- Q3_K: unsigned low2 | hbit<<2 in [0,7], -4 through bsums */
KERN_AI void q3_K_prep(const block_q3_K *b, __m256i q[8], __m256i s[8], __m256i *m16, float *dw, float *dmw)
{
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    const __m128i s8 = q3_K_scales_v(b->scales);
    *m16 = _mm256_cvtepi8_epi16(s8);
    const __m256i hm = load256(b->hmask);
    KERN_UNROLL for (int c = 0; c < 2; c++) {
        const __m256i raw = load256(b->qs + 32 * c);
        KERN_UNROLL for (int j = 0; j < 4; j++) {
            const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m2);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * c + j), one);
            q[4 * c + j] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 2));
        }
    }
    scale_pairs16(*m16, s);
    *dw = avx2_h2f(b->d);
    *dmw = 0.0f;
}
KQ256_KERN(q3_K, block_q3_K, q3_K_prep, KQ_ROW_OFF2, KERN_AVX2_DRIVER)

/* ---- decode (n_batch 1): KD_ROWS weight rows against the one activation row
 * per pass, each with the 1-row kernel's PREP and ROW (so its float operations
 * and results are vec_dot's), their chains side by side, and a software
 * prefetch of the next KD_ROWS rows in step with the pass: one row alone is a
 * long sequential run the hardware prefetcher follows, 4 rows side by side are
 * 4 short runs it does not (as q_simple.c's DEC_KERN). */
#define KD_ROWS 4
#define KQ_DEC(NAME, BT, PREP, ROW)                                                                    \
    KERN_AI void NAME##_dec_kern(int nw, int64_t nb, const char *w, size_t w_stride, const block_q8_K *x, \
                                 float *out)                                                          \
    {                                                                                                 \
        const BT *wr[KD_ROWS];                                                                        \
        __m256 acc[KD_ROWS];                                                                          \
        KERN_UNROLL for (int r = 0; r < nw; r++) {                                                    \
            wr[r] = (const BT *)(const void *)(w + (size_t)r * w_stride);                             \
            acc[r] = _mm256_setzero_ps();                                                             \
        }                                                                                             \
        const char *pf = w + (size_t)nw * w_stride;                                                   \
        for (int64_t ib = 0; ib < nb; ib++) {                                                         \
            KERN_UNROLL for (size_t o = 0; o < (size_t)nw * sizeof(BT); o += 64)                      \
                _mm_prefetch(pf + (size_t)ib * (size_t)nw * sizeof(BT) + o, _MM_HINT_T0);             \
            KERN_NOUNROLL for (int r = 0; r < nw; r++) {                                              \
                __m256i q[8], s[8], m16;                                                              \
                float dw, dmw;                                                                        \
                PREP(&wr[r][ib], q, s, &m16, &dw, &dmw);                                              \
                ROW(&x[ib], q, s, m16, dw, dmw, &acc[r]);                                             \
            }                                                                                         \
        }                                                                                             \
        KERN_UNROLL for (int r = 0; r < nw; r++) out[r] = avx2_hsum_ps(acc[r]);                      \
    }                                                                                                 \
    static void NAME##_dec(int64_t k, int64_t r0, int64_t r1, const void *w, size_t w_stride,         \
                           const void *x, float *y)                                                   \
    {                                                                                                 \
        const int64_t nb = k / QK_K;                                                                  \
        int64_t r = r0;                                                                               \
        for (; r + KD_ROWS <= r1; r += KD_ROWS)                                                       \
            NAME##_dec_kern(KD_ROWS, nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r); \
        for (; r < r1; r++)                                                                           \
            NAME##_dec_kern(1, nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);       \
    }
KQ_DEC(q2_K, block_q2_K, q2_K_prep, KQ_ROW_MIN)
KQ_DEC(q3_K, block_q3_K, q3_K_prep, KQ_ROW_OFF2)
KQ_DEC(q4_K, block_q4_K, q4_K_prep, KQ_ROW_MIN)
KQ_DEC(q5_K, block_q5_K, q5_K_prep, KQ_ROW_MIN)
KQ_DEC(q6_K, block_q6_K, q6_K_prep, KQ_ROW_OFF5)

/* ops->gemm of Q2_K / Q3_K: decode through NAME_dec, batches through the
 * row kernels */
#define KQ_GEMMD(NAME)                                                                                 \
    static void NAME##_gemmd(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,       \
                             size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride) \
    {                                                                                                 \
        if (n_batch == 1)                                                                             \
            NAME##_dec(k, r0, r1, w, w_stride, x, y);                                                 \
        else                                                                                          \
            NAME##_gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);                   \
    }
KQ_GEMMD(q2_K)
KQ_GEMMD(q3_K)

/* ---- batch kernels (gemm for small batches: batched decode): one weight row
 * against up to KB_NR activation rows, chunk-major. Per super-block SBP(b,
 * &st) prepares the scale source and factors, then each 64-weight chunk ch is
 * unpacked by CH(b, &st, ch, q[2], s[2]) into two quant and two scale vectors
 * that every activation row uses at once (the row kernels unpack all eight and
 * keep them live across the rows, more than the 16 ymm registers hold), so
 * each row's int32 sums stay in registers. The super-block's sums then get
 * the row kernel's float operations (kq_fin_min / kq_fin_off): integer sums
 * are exact, so the results are vec_dot's bits. */
#define KB_NR 8
/* super-blocks prefetched ahead (past the row too: the next row follows). A
 * batch's row spends long enough on each super-block that the hardware
 * prefetcher falls behind: in 8 sequences' decode a quarter of Q6_K's time
 * was the first load of each super-block (its scales, at the block's end) */
#define KB_PF 4

/* pshufb controls: word a of the low lane into every word of the low lane,
 * word b of the high lane into the high lane (words_bcast), for the (a, b)
 * pairs the batch kernels use: kb_bc[i] = (i, i) for i < 8 (Q4_K/Q5_K 32-block
 * i), kb_bc[8 + v] = (2v, 2v + 1) for v < 4 (Q6_K) */
#define KB_W(a) (char)(2 * (a)), (char)(2 * (a) + 1)
#define KB_W8(a) KB_W(a), KB_W(a), KB_W(a), KB_W(a), KB_W(a), KB_W(a), KB_W(a), KB_W(a)
static const char kb_bc[12][32] __attribute__((aligned(32))) = {
    {KB_W8(0), KB_W8(0)}, {KB_W8(1), KB_W8(1)}, {KB_W8(2), KB_W8(2)}, {KB_W8(3), KB_W8(3)},
    {KB_W8(4), KB_W8(4)}, {KB_W8(5), KB_W8(5)}, {KB_W8(6), KB_W8(6)}, {KB_W8(7), KB_W8(7)},
    {KB_W8(0), KB_W8(1)}, {KB_W8(2), KB_W8(3)}, {KB_W8(4), KB_W8(5)}, {KB_W8(6), KB_W8(7)},
};
KERN_AI __m256i kb_bcast(__m256i src, int i)
{
    return _mm256_shuffle_epi8(src, _mm256_load_si256((const __m256i *)kb_bc[i]));
}

struct kb_st {
    __m256i src[2]; /* scale sources: int16 scales, layout per type */
    __m256i m16; /* min / offset multipliers of the bsums */
    float dw, dmw;
};

KERN_AI void kq_fin_min(const block_q8_K *y, __m256i sumi, const struct kb_st *st, __m256 *acc)
{
    const __m256i mm = _mm256_madd_epi16(load256(y->bsums), st->m16);
    const float dy = y->d;
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(st->dw * dy), _mm256_cvtepi32_ps(sumi), *acc);
    *acc = _mm256_fnmadd_ps(_mm256_set1_ps(st->dmw * dy), _mm256_cvtepi32_ps(mm), *acc);
}

KERN_AI void kq_fin_off5(const block_q8_K *y, __m256i sumi, const struct kb_st *st, __m256 *acc)
{
    const __m256i off = _mm256_madd_epi16(load256(y->bsums), st->m16);
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 5));
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(st->dw * y->d), _mm256_cvtepi32_ps(sumi), *acc);
}

#define KB_KERN(NAME, BT, SBP, CH, FIN)                                                                 \
    KERN_AI void NAME##_kb(int nr, int64_t nb, const void *vw, const void *const *vx, float *out)       \
    {                                                                                                  \
        const BT *w = vw;                                                                              \
        const block_q8_K *x[KB_NR];                                                                    \
        __m256 acc[KB_NR];                                                                             \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                     \
            x[i] = vx[i];                                                                              \
            acc[i] = _mm256_setzero_ps();                                                              \
        }                                                                                              \
        for (int64_t ib = 0; ib < nb; ib++) {                                                          \
            for (size_t l = 0; l < sizeof(BT); l += 64) /* see KB_PF */                                \
                _mm_prefetch((const char *)&w[ib + KB_PF] + l, _MM_HINT_T0);                           \
            struct kb_st st;                                                                           \
            SBP(&w[ib], &st);                                                                          \
            __m256i sumi[KB_NR];                                                                       \
            KERN_UNROLL for (int i = 0; i < nr; i++) sumi[i] = _mm256_setzero_si256();                 \
            KERN_NOUNROLL for (int ch = 0; ch < 4; ch++) {                                             \
                __m256i q[2], sc[2];                                                                   \
                CH(&w[ib], &st, ch, q, sc);                                                            \
                KERN_UNROLL for (int i = 0; i < nr; i++) {                                             \
                    const int8_t *yq = x[i][ib].qs + 64 * ch;                                          \
                    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q[0], load256(yq)), sc[0]); \
                    const __m256i p1 =                                                                 \
                        _mm256_madd_epi16(_mm256_maddubs_epi16(q[1], load256(yq + 32)), sc[1]);        \
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_add_epi32(p0, p1));                     \
                    avx2_pin(&sumi[i]);                                                                \
                }                                                                                      \
            }                                                                                          \
            KERN_UNROLL for (int i = 0; i < nr; i++) FIN(&x[i][ib], sumi[i], &st, &acc[i]);            \
        }                                                                                              \
        KERN_UNROLL for (int i = 0; i < nr; i++)                                                       \
            out[i] = avx2_hsum_ps(acc[i]);                                                             \
    }                                                                                                  \
    static void NAME##_kb_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,      \
                               size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride) \
    {                                                                                                  \
        if (n_batch == 1) {                                                                            \
            NAME##_dec(k, r0, r1, w, w_stride, x, y);                                                  \
            return;                                                                                    \
        }                                                                                              \
        const int64_t nb = k / QK_K;                                                                   \
        for (int64_t b = 0; b < n_batch; b += KB_NR) {                                                 \
            const int64_t nr = n_batch - b < KB_NR ? n_batch - b : KB_NR;                              \
            const void *xp[KB_NR];                                                                     \
            for (int64_t i = 0; i < nr; i++)                                                           \
                xp[i] = (const char *)x + (size_t)(b + i) * x_stride;                                  \
            for (int64_t r = r0; r < r1; r++) {                                                        \
                const void *wr = (const char *)w + (size_t)r * w_stride;                               \
                float o[KB_NR];                                                                        \
                switch (nr) {                                                                          \
                case 1: NAME##_kb(1, nb, wr, xp, o); break;                                            \
                case 2: NAME##_kb(2, nb, wr, xp, o); break;                                            \
                case 3: NAME##_kb(3, nb, wr, xp, o); break;                                            \
                case 4: NAME##_kb(4, nb, wr, xp, o); break;                                            \
                case 5: NAME##_kb(5, nb, wr, xp, o); break;                                            \
                case 6: NAME##_kb(6, nb, wr, xp, o); break;                                            \
                case 7: NAME##_kb(7, nb, wr, xp, o); break;                                            \
                default: NAME##_kb(8, nb, wr, xp, o); break;                                           \
                }                                                                                      \
                for (int64_t i = 0; i < nr; i++)                                                       \
                    y[(size_t)(b + i) * y_stride + (size_t)r] = o[i];                                  \
            }                                                                                          \
        }                                                                                              \
    }

/* Q4_K / Q5_K: lo = the 8 int16 scales in both lanes; chunk ch = 32-blocks
 * 2ch, 2ch+1 */
KERN_AI void k4_sbp(const uint8_t *scales, kern_half d, kern_half dmin, struct kb_st *st)
{
    const __m128i smv = k4_scales_mins_v(scales);
    const __m128i m8 = _mm_unpackhi_epi64(smv, smv);
    st->m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    const __m256i w = _mm256_cvtepu8_epi16(smv);
    st->src[0] = _mm256_permute2x128_si256(w, w, 0x00);
    st->dw = avx2_h2f(d);
    st->dmw = avx2_h2f(dmin);
}
KERN_AI void q4_K_sbp(const block_q4_K *b, struct kb_st *st) { k4_sbp(b->scales, b->d, b->dmin, st); }
KERN_AI void q4_K_ch(const block_q4_K *b, const struct kb_st *st, int ch, __m256i q[2], __m256i s[2])
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i raw = load256(b->qs + 32 * ch);
    q[0] = _mm256_and_si256(raw, m4);
    q[1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    s[0] = kb_bcast(st->src[0], 2 * ch);
    s[1] = kb_bcast(st->src[0], 2 * ch + 1);
}
KB_KERN(q4_K, block_q4_K, q4_K_sbp, q4_K_ch, kq_fin_min)

KERN_AI void q5_K_sbp(const block_q5_K *b, struct kb_st *st) { k4_sbp(b->scales, b->d, b->dmin, st); }
KERN_AI void q5_K_ch(const block_q5_K *b, const struct kb_st *st, int ch, __m256i q[2], __m256i s[2])
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i raw = load256(b->qs + 32 * ch), hb = load256(b->qh);
    const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * ch), one);
    const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * ch + 1), one);
    q[0] = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_slli_epi16(h0, 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_slli_epi16(h1, 4));
    s[0] = kb_bcast(st->src[0], 2 * ch);
    s[1] = kb_bcast(st->src[0], 2 * ch + 1);
}
KB_KERN(q5_K, block_q5_K, q5_K_sbp, q5_K_ch, kq_fin_min)

/* Q6_K: lo = the 16 int16 scales (low lane 0..7, high lane 8..15 as in
 * scale_pairs16's input); chunk ch = 32-blocks 2ch, 2ch+1 of q6_K_prep */
KERN_AI void q6_K_sbp(const block_q6_K *b, struct kb_st *st)
{
    st->m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    st->src[0] = _mm256_permute2x128_si256(st->m16, st->m16, 0x00);
    st->src[1] = _mm256_permute2x128_si256(st->m16, st->m16, 0x11);
    st->dw = avx2_h2f(b->d);
    st->dmw = 0.0f;
}
KERN_AI void q6_K_ch(const block_q6_K *b, const struct kb_st *st, int ch, __m256i q[2], __m256i s[2])
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const int c = ch >> 1, hi = ch & 1; /* 128-half, which nibble */
    const __m256i l0 = load256(b->ql + 64 * c), l1 = load256(b->ql + 64 * c + 32);
    const __m256i h = _mm256_srli_epi16(load256(b->qh + 32 * c), 4 * hi);
    const __m256i n0 = hi ? _mm256_srli_epi16(l0, 4) : l0, n1 = hi ? _mm256_srli_epi16(l1, 4) : l1;
    q[0] = _mm256_or_si256(_mm256_and_si256(n0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(n1, m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
    /* 32-block v = 2ch + t uses scales 2v (low lane) and 2v+1 (high lane):
     * words 2(v mod 4), 2(v mod 4) + 1 of the low (v < 4) or high scale half */
    s[0] = kb_bcast(st->src[c], 8 + 2 * hi);
    s[1] = kb_bcast(st->src[c], 9 + 2 * hi);
}
KB_KERN(q6_K, block_q6_K, q6_K_sbp, q6_K_ch, kq_fin_off5)

/* ---- the unpacked super-blocks (struct kp_sb, kp_panel.h) that the
 * prefill panels build from: panel_k8.c here, avx512/panel_k16_avx512.c */
/* Unpack nsb super-blocks of one weight row with PREP; `shift` > 0 marks an
 * offset type (the term uses d and mc = m16 << shift), 0 a min type (dmin). */
#define KP_BUILD(NAME, BT, PREP, SHIFT)                                                   \
    static void NAME##_kp_build(const void *vw, struct kp_sb *p, int64_t nsb)           \
    {                                                                                    \
        const BT *w = vw;                                                                \
        for (int64_t ib = 0; ib < nsb; ib++) {                                           \
            __m256i q[8], s[8], m16;                                                     \
            float dw, dmw;                                                               \
            PREP(&w[ib], q, s, &m16, &dw, &dmw);                                         \
            KERN_UNROLL for (int j = 0; j < 8; j++) {                                    \
                _mm256_store_si256((__m256i *)(p[ib].q + 32 * j), q[j]);                 \
                _mm256_store_si256((__m256i *)p[ib].sc[j], s[j]);                        \
            }                                                                            \
            _mm256_store_si256((__m256i *)p[ib].mc, _mm256_slli_epi16(m16, SHIFT));      \
            p[ib].d = dw;                                                                \
            p[ib].dm = (SHIFT) ? dw : dmw;                                               \
        }                                                                                \
    }
KP_BUILD(q2_K, block_q2_K, q2_K_prep, 0)
KP_BUILD(q3_K, block_q3_K, q3_K_prep, 2)
KP_BUILD(q4_K, block_q4_K, q4_K_prep, 0)
KP_BUILD(q5_K, block_q5_K, q5_K_prep, 0)
KP_BUILD(q6_K, block_q6_K, q6_K_prep, 5)

/* ---- Q8_K activation quantizer (same results as the reference) */
static void quantize_q8_K(const float *x, void *vy, int64_t n)
{
    block_q8_K *y = vy;
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    for (int64_t ib = 0; ib < n / QK_K; ib++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(signbit, _mm256_loadu_ps(x + j)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (amax == 0.0f) {
            memset(&y[ib], 0, sizeof y[ib]);
            continue;
        }
        float max = amax; /* the first element of largest magnitude, with its sign */
        const __m256 am = _mm256_set1_ps(amax);
        for (int j = 0; j < QK_K; j += 8) {
            const int hit = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_andnot_ps(signbit, _mm256_loadu_ps(x + j)), am, _CMP_EQ_OQ));
            if (hit) {
                max = x[j + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), mul));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), mul));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), mul));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), mul));
            i0 = _mm256_min_epi32(i0, lim);
            i1 = _mm256_min_epi32(i1, lim);
            i2 = _mm256_min_epi32(i2, lim);
            i3 = _mm256_min_epi32(i3, lim);
            i0 = _mm256_packs_epi32(i0, i1);
            i2 = _mm256_packs_epi32(i2, i3);
            i0 = _mm256_packs_epi16(i0, i2);
            i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[ib].qs + j), i0);
            /* 16-element sums: maddubs with ones gives int16 pair sums */
            const __m256i p = _mm256_maddubs_epi16(_mm256_set1_epi8(1), i0);
            const __m256i s32 = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
            /* s32 lanes 0..3 = elements 0..15, lanes 4..7 = 16..31 */
            int32_t t[8];
            _mm256_storeu_si256((__m256i *)t, s32);
            y[ib].bsums[j / 16] = (int16_t)(t[0] + t[1] + t[2] + t[3]);
            y[ib].bsums[j / 16 + 1] = (int16_t)(t[4] + t[5] + t[6] + t[7]);
        }
        y[ib].d = 1 / iscale;
    }
}

bool kern_avx2_kp_type(enum gg_type type, struct kp_type *t)
{
    static const struct {
        enum gg_type type;
        kp_build_fn build;
        size_t bsz;
        bool off;
    } types[KP_NTYPES] = {{GG_TYPE_Q2_K, q2_K_kp_build, sizeof(block_q2_K), false},
                          {GG_TYPE_Q3_K, q3_K_kp_build, sizeof(block_q3_K), true},
                          {GG_TYPE_Q4_K, q4_K_kp_build, sizeof(block_q4_K), false},
                          {GG_TYPE_Q5_K, q5_K_kp_build, sizeof(block_q5_K), false},
                          {GG_TYPE_Q6_K, q6_K_kp_build, sizeof(block_q6_K), true}};
    for (int i = 0; i < KP_NTYPES; i++) {
        if (types[i].type == type) {
            *t = (struct kp_type){i, types[i].build, types[i].bsz, types[i].off};
            return true;
        }
    }
    return false;
}

void kern_avx2_fill_k(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_k(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_Q2_K:
        ops->vec_dot = q2_K_vec_dot;
        ops->gemm = q2_K_gemmd;
        break;
    case GG_TYPE_Q3_K:
        ops->vec_dot = q3_K_vec_dot;
        ops->gemm = q3_K_gemmd;
        break;
    case GG_TYPE_Q4_K:
        ops->vec_dot = q4_K_vec_dot;
        ops->gemm = q4_K_kb_gemm;
        break;
    case GG_TYPE_Q5_K:
        ops->vec_dot = q5_K_vec_dot;
        ops->gemm = q5_K_kb_gemm;
        break;
    case GG_TYPE_Q6_K:
        ops->vec_dot = q6_K_vec_dot;
        ops->gemm = q6_K_kb_gemm;
        break;
    case GG_TYPE_Q8_K:
        ops->quantize_act = quantize_q8_K;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX2;
}
