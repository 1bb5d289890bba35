/* q2_avx512.c - AVX-512 VNNI dot products for the remaining quantized types:
 * Q5_0, Q4_1, Q5_1, Q8_0 (pairs of 32-element blocks per vector, groups of 8
 * blocks with vectorized fp16 scales, vpdpbusd on unsigned quants with the
 * offset through sum(y); gemm over two weight rows) and Q2_K, Q3_K, Q5_K
 * (64 unsigned quants per vector, vpmaddubsw + vpdpwssd with 16-bit scale
 * vectors; offsets and mins through the Q8_K bsums). The 32-block types
 * decode 4 weight rows per pass with prefetch (DEC512, avx512_util.h). */
#include "kernels/x86/avx512/avx512_util.h"

#define NRMAX 4

/* ---- 32-element block types: unsigned quants q (0..31), value = q - OFF
 * (Q5_0) or d*q + m (Q4_1, Q5_1). */
/* Q5_0/Q5_1: nibbles | 0x10 where the qh bit is set, two blocks or one */
KERN_AI __m512i q5_pairq(const uint8_t *qa, const uint8_t *qha, const uint8_t *qb, const uint8_t *qhb)
{
    uint32_t h0, h1;
    memcpy(&h0, qha, 4);
    memcpy(&h1, qhb, 4);
    const __mmask64 hm = (__mmask64)h0 | ((__mmask64)h1 << 32);
    return _mm512_or_si512(nib_pair512(qa, qb), _mm512_maskz_mov_epi8(hm, _mm512_set1_epi8(0x10)));
}

KERN_AI __m256i q5_oneq(const uint8_t *qs, const uint8_t *qh)
{
    return _mm256_or_si256(avx2_nibbles(qs), _mm256_and_si256(avx2_bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
}

KERN_AI __m512i q5_0_pairq(const block_q5_0 *w, int64_t ib)
{
    return q5_pairq(w[ib].qs, w[ib].qh, w[ib + 1].qs, w[ib + 1].qh);
}
KERN_AI __m256i q5_0_oneq(const block_q5_0 *w, int64_t ib) { return q5_oneq(w[ib].qs, w[ib].qh); }
KERN_AI __m512i q4_1_pairq(const block_q4_1 *w, int64_t ib) { return nib_pair512(w[ib].qs, w[ib + 1].qs); }
KERN_AI __m256i q4_1_oneq(const block_q4_1 *w, int64_t ib) { return avx2_nibbles(w[ib].qs); }
KERN_AI __m512i q5_1_pairq(const block_q5_1 *w, int64_t ib)
{
    return q5_pairq(w[ib].qs, w[ib].qh, w[ib + 1].qs, w[ib + 1].qh);
}
KERN_AI __m256i q5_1_oneq(const block_q5_1 *w, int64_t ib) { return q5_oneq(w[ib].qs, w[ib].qh); }

/* Q8_0 as unsigned: q + 128 (xor 0x80), the 128 * sum(y) offset shared */
KERN_AI __m512i q8_0_pairq(const block_q8_0 *w, int64_t ib)
{
    return _mm512_xor_si512(pair512(w[ib].qs, w[ib + 1].qs), _mm512_set1_epi8((char)0x80));
}

KERN_AI __m256i q8_0_oneq(const block_q8_0 *w, int64_t ib)
{
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w[ib].qs),
                            _mm256_set1_epi8((char)0x80));
}

/* OFF: subtracted from every quant (0 for the types with a min); HASMIN:
 * add m_w * s_y per block (Q8_1 activations). */
#define SIMPLE512(NAME, WB, YB, PAIRQ, ONEQ, OFF, HASMIN, MW8, YS8, ONEMS)                              \
    /* the blocks after the last full group of 8, one at a time into acc2 */                        \
    KERN_AI void NAME##_tail(int nr, int64_t nb, int64_t ib, const WB *w, const YB *const *x,        \
                             __m512 *acc, __m256 *acc2)                                            \
    {                                                                                              \
        (void)acc;                                                                                 \
        for (; ib < nb; ib++) {                                                                    \
            const __m256i q = ONEQ(w, ib);                                                         \
            const float d0 = avx2_h2f(w[ib].d);                                                    \
            KERN_UNROLL for (int i = 0; i < nr; i++) {                                             \
                const __m256i y = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);                \
                __m256i dp = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y);                    \
                if (OFF)                                                                           \
                    dp = _mm256_sub_epi32(dp, _mm256_dpbusd_epi32(_mm256_setzero_si256(),          \
                                                                  _mm256_set1_epi8((char)(OFF)), y)); \
                acc2[i] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * avx2_h2f(x[i][ib].d)),              \
                                          _mm256_cvtepi32_ps(dp), acc2[i]);                        \
                if (HASMIN)                                                                        \
                    acc2[i] = _mm256_add_ps(acc2[i], _mm256_setr_ps(ONEMS(w, x[i], ib), 0, 0,      \
                                                                    0, 0, 0, 0, 0));               \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    KERN_AI void NAME##_kern(int nr, int64_t nb, const void *vw, const void *const *vx,   \
                             float *out)                                                  \
    {                                                                                     \
        const WB *w = vw;                                                                 \
        const YB *x[NRMAX];                                                               \
        __m512 acc[NRMAX];                                                                \
        __m256 acc2[NRMAX];                                                               \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                    \
            x[i] = vx[i];                                                                 \
            acc[i] = _mm512_setzero_ps();                                                 \
            acc2[i] = _mm256_setzero_ps();                                                \
        }                                                                                 \
        const __m512i off = _mm512_set1_epi8((char)(OFF));                                        \
        int64_t ib = 0;                                                                   \
        for (; ib + 8 <= nb; ib += 8) {                                                   \
            __m512i q[4];                                                                 \
            KERN_UNROLL for (int p = 0; p < 4; p++)                                                   \
                q[p] = PAIRQ(w, ib + 2 * p);                                              \
            const __m256 dw = LOAD_D8S(&w[ib]);                                             \
            __m256 mw = _mm256_setzero_ps();                                              \
            if (HASMIN)                                                                   \
                mw = MW8(w, ib);                                                          \
            KERN_UNROLL for (int i = 0; i < nr; i++) {                                                \
                const __m512 s8 = _mm512_castps256_ps512(_mm256_mul_ps(dw, LOAD_D8S(&x[i][ib]))); \
                KERN_UNROLL for (int p = 0; p < 4; p++) {                                             \
                    const __m512i y = pair512(x[i][ib + 2 * p].qs, x[i][ib + 2 * p + 1].qs); \
                    __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[p], y);    \
                    if (OFF)                                                              \
                        dp = _mm512_sub_epi32(                                            \
                            dp, _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, y));     \
                    acc[i] = _mm512_fmadd_ps(bcast_pair(s8, p), _mm512_cvtepi32_ps(dp), acc[i]); \
                }                                                                         \
                if (HASMIN)                                                               \
                    acc2[i] = _mm256_fmadd_ps(mw, YS8(x[i], ib), acc2[i]);           \
            }                                                                             \
        }                                                                                 \
        NAME##_tail(nr, nb, ib, w, x, acc, acc2);                                         \
        KERN_UNROLL for (int i = 0; i < nr; i++)                                                      \
            out[i] = _mm512_reduce_add_ps(acc[i]) + avx2_hsum_ps(acc2[i]);                \
    }                                                                                     \
    KERN_AVX2_DRIVER(NAME, NAME##_kern, KERN_QK)

/* Two weight rows x nr activation rows for the SIMPLE512 types (prefill):
 * activation loads, scales and offset products shared; per output the
 * arithmetic of NAME_kern. */
#define SIMPLE512_2(NAME, WB, YB, PAIRQ, ONEQ, OFF, HASMIN, MW8, YS8, ONEMS)              \
    KERN_AI void NAME##_kern2(int nr, int64_t nb, const void *vw0, const void *vw1,       \
                              const void *const *vx, float *out0, float *out1)            \
    {                                                                                     \
        const WB *w[2] = { vw0, vw1 };                                                    \
        const YB *x[NRMAX];                                                               \
        __m512 acc[2][NRMAX];                                                             \
        __m256 acc2[2][NRMAX];                                                            \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                        \
            x[i] = vx[i];                                                                 \
            acc[0][i] = acc[1][i] = _mm512_setzero_ps();                                  \
            acc2[0][i] = acc2[1][i] = _mm256_setzero_ps();                                \
        }                                                                                 \
        const __m512i off = _mm512_set1_epi8((char)(OFF));                                        \
        int64_t ib = 0;                                                                   \
        for (; ib + 8 <= nb; ib += 8) {                                                   \
            __m512i q[2][4];                                                              \
            __m256 dw[2], mw[2];                                                          \
            KERN_UNROLL for (int h = 0; h < 2; h++) {                                     \
                KERN_UNROLL for (int p = 0; p < 4; p++)                                   \
                    q[h][p] = PAIRQ(w[h], ib + 2 * p);                                    \
                dw[h] = LOAD_D8S(&w[h][ib]);                                              \
                mw[h] = _mm256_setzero_ps();                                              \
                if (HASMIN)                                                               \
                    mw[h] = MW8(w[h], ib);                                                \
            }                                                                             \
            KERN_UNROLL for (int i = 0; i < nr; i++) {                                    \
                const __m256 dy = LOAD_D8S(&x[i][ib]);                                    \
                const __m512 s0 = _mm512_castps256_ps512(_mm256_mul_ps(dw[0], dy));       \
                const __m512 s1 = _mm512_castps256_ps512(_mm256_mul_ps(dw[1], dy));       \
                KERN_UNROLL for (int p = 0; p < 4; p++) {                                 \
                    const __m512i y = pair512(x[i][ib + 2 * p].qs, x[i][ib + 2 * p + 1].qs); \
                    __m512i dp0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[0][p], y); \
                    __m512i dp1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[1][p], y); \
                    if (OFF) {                                                            \
                        const __m512i o = _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, y); \
                        dp0 = _mm512_sub_epi32(dp0, o);                                   \
                        dp1 = _mm512_sub_epi32(dp1, o);                                   \
                    }                                                                     \
                    acc[0][i] = _mm512_fmadd_ps(bcast_pair(s0, p), _mm512_cvtepi32_ps(dp0), \
                                                acc[0][i]);                               \
                    acc[1][i] = _mm512_fmadd_ps(bcast_pair(s1, p), _mm512_cvtepi32_ps(dp1), \
                                                acc[1][i]);                               \
                }                                                                         \
                if (HASMIN) {                                                             \
                    const __m256 ys = YS8(x[i], ib);                                      \
                    acc2[0][i] = _mm256_fmadd_ps(mw[0], ys, acc2[0][i]);                  \
                    acc2[1][i] = _mm256_fmadd_ps(mw[1], ys, acc2[1][i]);                  \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        KERN_UNROLL for (int h = 0; h < 2; h++)                                           \
            NAME##_tail(nr, nb, ib, w[h], x, acc[h], acc2[h]);                            \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                        \
            out0[i] = _mm512_reduce_add_ps(acc[0][i]) + avx2_hsum_ps(acc2[0][i]);         \
            out1[i] = _mm512_reduce_add_ps(acc[1][i]) + avx2_hsum_ps(acc2[1][i]);         \
        }                                                                                 \
    }                                                                                     \
    KERN_DRIVER2(NAME, NAME##_kern2, KERN_QK)

/* the min parts: m of 8 weight blocks, s of 8 activation blocks, m*s of one */
#define MW8_M(B, I) LOAD_F8S(&(B)[I], m)
#define YS8_S(B, I) LOAD_F8S(&(B)[I], s)
#define ONEMS_MS(W, X, I) (avx2_h2f((W)[I].m) * avx2_h2f((X)[I].s))
#define MW8_NONE(B, I) _mm256_setzero_ps()
#define ONEMS_NONE(W, X, I) 0.0f

SIMPLE512(q4_1, block_q4_1, block_q8_1, q4_1_pairq, q4_1_oneq, 0, 1, MW8_M, YS8_S, ONEMS_MS)
SIMPLE512_2(q4_1, block_q4_1, block_q8_1, q4_1_pairq, q4_1_oneq, 0, 1, MW8_M, YS8_S, ONEMS_MS)
SIMPLE512(q5_1, block_q5_1, block_q8_1, q5_1_pairq, q5_1_oneq, 0, 1, MW8_M, YS8_S, ONEMS_MS)
SIMPLE512_2(q5_1, block_q5_1, block_q8_1, q5_1_pairq, q5_1_oneq, 0, 1, MW8_M, YS8_S, ONEMS_MS)
SIMPLE512(q5_0, block_q5_0, block_q8_0, q5_0_pairq, q5_0_oneq, 16, 0, MW8_NONE, MW8_NONE,
          ONEMS_NONE)
SIMPLE512_2(q5_0, block_q5_0, block_q8_0, q5_0_pairq, q5_0_oneq, 16, 0, MW8_NONE, MW8_NONE,
            ONEMS_NONE)
SIMPLE512(q8_0, block_q8_0, block_q8_0, q8_0_pairq, q8_0_oneq, 128, 0, MW8_NONE, MW8_NONE,
          ONEMS_NONE)
SIMPLE512_2(q8_0, block_q8_0, block_q8_0, q8_0_pairq, q8_0_oneq, 128, 0, MW8_NONE, MW8_NONE,
            ONEMS_NONE)
DEC512(q4_1, block_q4_1, block_q8_1, q4_1_pairq, 0, 1, MW8_M, YS8_S, q4_1_tail)
DEC512(q5_1, block_q5_1, block_q8_1, q5_1_pairq, 0, 1, MW8_M, YS8_S, q5_1_tail)
DEC512(q5_0, block_q5_0, block_q8_0, q5_0_pairq, 16, 0, DEC512_NOMIN, DEC512_NOMIN, q5_0_tail)
DEC512(q8_0, block_q8_0, block_q8_0, q8_0_pairq, 128, 0, DEC512_NOMIN, DEC512_NOMIN, q8_0_tail)

/* ---- Q5_K: Q4_K plus the 5th bit from qh (bit j of qh[l] for sub-block j) */
KERN_AI void q5_K_prep(const block_q5_K *b, const __m512i idx[4], __m512i q[4], __m512i s[4], __m256i *m16,
                       float *dw, float *dmw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    k4_prep_scales(b->scales, idx, s, m16);
    const __m256i h256 = _mm256_loadu_si256((const __m256i *)b->qh);
    KERN_UNROLL for (int j = 0; j < 4; j++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * j));
        const __m512i lo =
            _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
        const __m512i hb = _mm512_and_si512(srli_halves(h256, 2 * j, 2 * j + 1), one);
        q[j] = _mm512_or_si512(lo, _mm512_slli_epi16(hb, 4));
    }
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ512_KERN(q5_K, block_q5_K, KQ_IDX_HALVES, q5_K_prep, KQ_FACT_MIN)

/* ---- Q2_K: 2-bit quants, 16-element groups with 4-bit scale and min.
 * Vector v (elements 64v..64v+63) = chunk v/2, shifts 4*(v%2) and +2. */
KERN_AI void q2_K_prep(const block_q2_K *b, const __m512i idx[4], __m512i q[4], __m512i s[4], __m256i *m16,
                       float *dw, float *dmw)
{
    const __m512i m2 = _mm512_set1_epi8(3);
    const __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
    const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
    *m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
    const __m512i sc512 = _mm512_zextsi256_si512(sc16);
    KERN_UNROLL for (int c = 0; c < 2; c++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        q[2 * c] = _mm512_and_si512(srli_halves(raw, 0, 2), m2);
        q[2 * c + 1] = _mm512_and_si512(srli_halves(raw, 4, 6), m2);
    }
    KERN_UNROLL for (int v = 0; v < 4; v++)
        s[v] = _mm512_permutexvar_epi16(idx[v], sc512);
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ512_KERN(q2_K, block_q2_K, KQ_IDX_QUARTERS, q2_K_prep, KQ_FACT_MIN)

/* ---- Q3_K: unsigned low2 | hbit<<2 (0..7), -4 through bsums.
 * Vector v: chunk c = v/2, shift pairs (0,2)/(4,6); hmask bits 4c+2(v%2)+{0,1}. */
KERN_AI void q3_K_prep(const block_q3_K *b, const __m512i idx[4], __m512i q[4], __m512i s[4], __m256i *m16,
                       float *dw, float *dmw)
{
    const __m512i m2 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
    *m16 = _mm256_cvtepi8_epi16(q3_K_scales_v(b->scales));
    const __m512i sc512 = _mm512_zextsi256_si512(*m16);
    const __m256i hm256 = _mm256_loadu_si256((const __m256i *)b->hmask);
    KERN_UNROLL for (int c = 0; c < 2; c++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        KERN_UNROLL for (int h = 0; h < 2; h++) {
            const int v = 2 * c + h; /* low bits: shifts 4h, 4h+2; hmask bits 2v, 2v+1 */
            const __m512i lo = _mm512_and_si512(srli_halves(raw, 4 * h, 4 * h + 2), m2);
            const __m512i hb = _mm512_and_si512(srli_halves(hm256, 2 * v, 2 * v + 1), one);
            q[v] = _mm512_or_si512(lo, _mm512_slli_epi16(hb, 2));
        }
    }
    KERN_UNROLL for (int v = 0; v < 4; v++)
        s[v] = _mm512_permutexvar_epi16(idx[v], sc512);
    *dw = avx2_h2f(b->d);
    *dmw = 0.0f;
}
KQ512_KERN(q3_K, block_q3_K, KQ_IDX_QUARTERS, q3_K_prep, KQ_FACT_OFF4)

void kern_avx512_fill_q2(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_q2(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_Q4_1:
        ops->vec_dot = q4_1_vec_dot;
        ops->gemm = q4_1_gemmd;
        break;
    case GG_TYPE_Q5_0:
        ops->vec_dot = q5_0_vec_dot;
        ops->gemm = q5_0_gemmd;
        break;
    case GG_TYPE_Q8_0:
        ops->vec_dot = q8_0_vec_dot;
        ops->gemm = q8_0_gemmd;
        break;
    case GG_TYPE_Q5_1:
        ops->vec_dot = q5_1_vec_dot;
        ops->gemm = q5_1_gemmd;
        break;
    case GG_TYPE_Q2_K:
        ops->vec_dot = q2_K_vec_dot;
        ops->gemm = q2_K_gemm;
        break;
    case GG_TYPE_Q3_K:
        ops->vec_dot = q3_K_vec_dot;
        ops->gemm = q3_K_gemm;
        break;
    case GG_TYPE_Q5_K:
        ops->vec_dot = q5_K_vec_dot;
        ops->gemm = q5_K_gemm;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX512;
}
