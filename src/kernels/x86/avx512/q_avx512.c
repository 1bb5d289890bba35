/* q_avx512.c - AVX-512 VNNI dot products for the hot types: Q4_0 (two
 * 32-element blocks per 512-bit vector, vpdpbusd; gemm over two weight rows),
 * Q4_K and Q6_K (64 quants per vector: vpmaddubsw then vpdpwssd with a 16-bit
 * scale vector built once per super-block by vpermw), and F16. Weights are
 * unpacked once for up to 4 activation rows (the drivers of avx2_util.h);
 * Q4_0 decode takes 4 weight rows per pass with prefetch (DEC512). */
#include "kernels/x86/avx512/avx512_util.h"

#define NRMAX 4

/* ---- Q4_0 x Q8_0 */
/* the blocks after the last full group of 8: pairs, then one single */
KERN_AI void q4_0_tail(int nr, int64_t nb, int64_t ib, const block_q4_0 *w,
                       const block_q8_0 *const *x, __m512 *acc, __m256 *acc2)
{
    const __m512i eight = _mm512_set1_epi8(8);
    for (; ib + 2 <= nb; ib += 2) {
        const __m512i q = q4_0_pairq(w, ib);
        const float d0 = avx2_h2f(w[ib].d), d1 = avx2_h2f(w[ib + 1].d);
        KERN_UNROLL for (int i = 0; i < nr; i++) {
            const __m512i y = pair512(x[i][ib].qs, x[i][ib + 1].qs);
            const __m512i dp = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y),
                                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, y));
            const __m512 s = scale_pair512(d0 * avx2_h2f(x[i][ib].d), d1 * avx2_h2f(x[i][ib + 1].d));
            acc[i] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(dp), acc[i]);
        }
    }
    if (ib < nb) {
        const __m256i q = avx2_nibbles(w[ib].qs);
        const float d0 = avx2_h2f(w[ib].d);
        KERN_UNROLL for (int i = 0; i < nr; i++) {
            const __m256i y = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);
            const __m256i dp = _mm256_sub_epi32(
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y),
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), y));
            acc2[i] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * avx2_h2f(x[i][ib].d)),
                                      _mm256_cvtepi32_ps(dp), acc2[i]);
        }
    }
}

KERN_AI void q4_0_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out)
{
    const block_q4_0 *w = vw;
    const block_q8_0 *x[NRMAX];
    __m512 acc[NRMAX];
    __m256 acc2[NRMAX];
    KERN_UNROLL for (int i = 0; i < nr; i++) {
        x[i] = vx[i];
        acc[i] = _mm512_setzero_ps();
        acc2[i] = _mm256_setzero_ps();
    }
    const __m512i eight = _mm512_set1_epi8(8);
    int64_t ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        __m512i q[4];
        KERN_UNROLL for (int p = 0; p < 4; p++)
            q[p] = q4_0_pairq(w, ib + 2 * p);
        const __m256 dw = LOAD_D8S(&w[ib]);
        KERN_UNROLL for (int i = 0; i < nr; i++) {
            const __m512 s8 = _mm512_castps256_ps512(_mm256_mul_ps(dw, LOAD_D8S(&x[i][ib])));
            KERN_UNROLL for (int p = 0; p < 4; p++) {
                const __m512i y = pair512(x[i][ib + 2 * p].qs, x[i][ib + 2 * p + 1].qs);
                const __m512i dp =
                    _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q[p], y),
                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, y));
                acc[i] = _mm512_fmadd_ps(bcast_pair(s8, p), _mm512_cvtepi32_ps(dp), acc[i]);
            }
        }
    }
    q4_0_tail(nr, nb, ib, w, x, acc, acc2);
    KERN_UNROLL for (int i = 0; i < nr; i++)
        out[i] = _mm512_reduce_add_ps(acc[i]) + avx2_hsum_ps(acc2[i]);
}

/* Two weight rows x nr activation rows: the activation loads and the
 * offset products are shared; per output the arithmetic equals q4_0_kern. */
KERN_AI void q4_0_kern2(int nr, int64_t nb, const void *vw0, const void *vw1,
                        const void *const *vx, float *out0, float *out1)
{
    const block_q4_0 *w[2] = { vw0, vw1 };
    const block_q8_0 *x[NRMAX];
    __m512 acc[2][NRMAX];
    __m256 acc2[2][NRMAX];
    KERN_UNROLL for (int i = 0; i < nr; i++) {
        x[i] = vx[i];
        acc[0][i] = acc[1][i] = _mm512_setzero_ps();
        acc2[0][i] = acc2[1][i] = _mm256_setzero_ps();
    }
    const __m512i eight = _mm512_set1_epi8(8);
    int64_t ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        __m512i q[2][4];
        __m256 dw[2];
        KERN_UNROLL for (int h = 0; h < 2; h++) {
            KERN_UNROLL for (int p = 0; p < 4; p++)
                q[h][p] = q4_0_pairq(w[h], ib + 2 * p);
            dw[h] = LOAD_D8S(&w[h][ib]);
        }
        KERN_UNROLL for (int i = 0; i < nr; i++) {
            const __m256 dy = LOAD_D8S(&x[i][ib]);
            const __m512 s0 = _mm512_castps256_ps512(_mm256_mul_ps(dw[0], dy));
            const __m512 s1 = _mm512_castps256_ps512(_mm256_mul_ps(dw[1], dy));
            KERN_UNROLL for (int p = 0; p < 4; p++) {
                const __m512i y = pair512(x[i][ib + 2 * p].qs, x[i][ib + 2 * p + 1].qs);
                const __m512i o = _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, y);
                const __m512i dp0 =
                    _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q[0][p], y), o);
                const __m512i dp1 =
                    _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q[1][p], y), o);
                acc[0][i] = _mm512_fmadd_ps(bcast_pair(s0, p), _mm512_cvtepi32_ps(dp0), acc[0][i]);
                acc[1][i] = _mm512_fmadd_ps(bcast_pair(s1, p), _mm512_cvtepi32_ps(dp1), acc[1][i]);
            }
        }
    }
    q4_0_tail(nr, nb, ib, w[0], x, acc[0], acc2[0]);
    q4_0_tail(nr, nb, ib, w[1], x, acc[1], acc2[1]);
    KERN_UNROLL for (int i = 0; i < nr; i++) {
        out0[i] = _mm512_reduce_add_ps(acc[0][i]) + avx2_hsum_ps(acc2[0][i]);
        out1[i] = _mm512_reduce_add_ps(acc[1][i]) + avx2_hsum_ps(acc2[1][i]);
    }
}
KERN_AVX2_DRIVER(q4_0, q4_0_kern, KERN_QK)
KERN_DRIVER2(q4_0, q4_0_kern2, KERN_QK)
DEC512(q4_0, block_q4_0, block_q8_0, q4_0_pairq, 8, 0, DEC512_NOMIN, DEC512_NOMIN, q4_0_tail)


/* ---- Q4_K */
KERN_AI void q4_K_prep(const block_q4_K *b, const __m512i idx[4], __m512i q[4], __m512i s[4], __m256i *m16,
                       float *dw, float *dmw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    k4_prep_scales(b->scales, idx, s, m16);
    KERN_UNROLL for (int j = 0; j < 4; j++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * j));
        q[j] = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
    }
    *dw = avx2_h2f(b->d);
    *dmw = avx2_h2f(b->dmin);
}
KQ512_KERN(q4_K, block_q4_K, KQ_IDX_HALVES, q4_K_prep, KQ_FACT_MIN)

/* ---- Q6_K: unsigned 6-bit quants, -32 through bsums */
KERN_AI void q6_K_prep(const block_q6_K *b, const __m512i idx[4], __m512i q[4], __m512i s[4], __m256i *m16,
                       float *dw, float *dmw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
    *m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    const __m512i sc512 = _mm512_zextsi256_si512(*m16);
    KERN_UNROLL for (int c = 0; c < 2; c++) {
        const __m512i l = _mm512_loadu_si512(b->ql + 64 * c);
        const __m256i h256 = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * c));
        q[2 * c] = _mm512_or_si512(_mm512_and_si512(l, m4),
                                   _mm512_slli_epi16(_mm512_and_si512(srli_halves(h256, 0, 2), m2), 4));
        q[2 * c + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                       _mm512_slli_epi16(_mm512_and_si512(srli_halves(h256, 4, 6), m2), 4));
    }
    KERN_UNROLL for (int v = 0; v < 4; v++)
        s[v] = _mm512_permutexvar_epi16(idx[v], sc512);
    *dw = avx2_h2f(b->d);
    *dmw = 0.0f;
}
KQ512_KERN(q6_K, block_q6_K, KQ_IDX_QUARTERS, q6_K_prep, KQ_FACT_OFF32)

void kern_avx512_fill_q(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_q(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_Q4_0:
        ops->vec_dot = q4_0_vec_dot;
        ops->gemm = q4_0_gemmd;
        break;
    case GG_TYPE_Q4_K:
        ops->vec_dot = q4_K_vec_dot;
        ops->gemm = q4_K_gemm;
        break;
    case GG_TYPE_Q6_K:
        ops->vec_dot = q6_K_vec_dot;
        ops->gemm = q6_K_gemm;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX512;
}
