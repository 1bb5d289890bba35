/* q_k.c - AVX2 dot products of the K-quants (Q2_K..Q6_K) against Q8_K
 * activations, and the fast Q8_K activation quantizer. Per super-block the
 * weights are unpacked once into eight 32-byte vectors of unsigned quants
 * plus int16 scale vectors, then each of up to 4 activation rows is
 * multiplied with maddubs/madd; offsets and mins (Q2_K, Q3_K's -4, Q4_K,
 * Q5_K, Q6_K's -32) go through the activation's 16-element sums (bsums). */
#include "kernels/x86/avx2/avx2_util.h"

#define NRMAX 4
#define QK_K KERN_QK_K

KERN_AI __m256i scale_pair(int a, int b)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

KERN_AI __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

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
 * Q6_K: 32). */
#define KQ256_KERN(NAME, BT, PREP, ROW)                                                            \
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
    KERN_AVX2_DRIVER(NAME, NAME##_kern, QK_K)

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
    uint8_t sc[16];
    _mm_storeu_si128((__m128i *)sc, smv);
    const __m128i m8 = _mm_unpackhi_epi64(smv, smv);
    *m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    KERN_UNROLL for (int j = 0; j < 8; j++)
        s[j] = _mm256_set1_epi16(sc[j]);
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
KQ256_KERN(q4_K, block_q4_K, q4_K_prep, KQ_ROW_MIN)

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
KQ256_KERN(q5_K, block_q5_K, q5_K_prep, KQ_ROW_MIN)

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
    KERN_UNROLL for (int v = 0; v < 8; v++)
        s[v] = scale_pair(sc[2 * v], sc[2 * v + 1]);
    *dw = avx2_h2f(b->d);
    *dmw = 0.0f;
}
KQ256_KERN(q6_K, block_q6_K, q6_K_prep, KQ_ROW_OFF5)

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
    KERN_UNROLL for (int v = 0; v < 8; v++)
        s[v] = scale_pair(sc[2 * v] & 0xF, sc[2 * v + 1] & 0xF);
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ256_KERN(q2_K, block_q2_K, q2_K_prep, KQ_ROW_MIN)

/* ---- Q3_K: unsigned low2 | hbit<<2 in [0,7], -4 through bsums */
KERN_AI void q3_K_prep(const block_q3_K *b, __m256i q[8], __m256i s[8], __m256i *m16, float *dw, float *dmw)
{
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    const __m128i s8 = q3_K_scales_v(b->scales);
    int8_t sc[16];
    _mm_storeu_si128((__m128i *)sc, s8);
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
    KERN_UNROLL for (int v = 0; v < 8; v++)
        s[v] = scale_pair(sc[2 * v], sc[2 * v + 1]);
    *dw = avx2_h2f(b->d);
    *dmw = 0.0f;
}
KQ256_KERN(q3_K, block_q3_K, q3_K_prep, KQ_ROW_OFF2)

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
        for (int j = 0; j < QK_K; j++) {
            if (x[j] == amax || x[j] == -amax) {
                max = x[j];
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

void kern_avx2_fill_k(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_k(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_Q2_K:
        ops->vec_dot = q2_K_vec_dot;
        ops->gemm = q2_K_gemm;
        break;
    case GG_TYPE_Q3_K:
        ops->vec_dot = q3_K_vec_dot;
        ops->gemm = q3_K_gemm;
        break;
    case GG_TYPE_Q4_K:
        ops->vec_dot = q4_K_vec_dot;
        ops->gemm = q4_K_gemm;
        break;
    case GG_TYPE_Q5_K:
        ops->vec_dot = q5_K_vec_dot;
        ops->gemm = q5_K_gemm;
        break;
    case GG_TYPE_Q6_K:
        ops->vec_dot = q6_K_vec_dot;
        ops->gemm = q6_K_gemm;
        break;
    case GG_TYPE_Q8_K:
        ops->quantize_act = quantize_q8_K;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX2;
}
