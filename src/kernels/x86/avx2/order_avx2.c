/* order_avx2.c - llama.cpp's float orders (F32/F16 dot products and gemm,
 * softmax exponentials, SiLU) on AVX2: x86/order_simd.h over a pair of ymm
 * per 16 lanes, so an AVX2-only CPU sums exactly as llama.cpp's AVX-512
 * build. AVX2 has no scalef: j * 2^n is two exact power-of-two products
 * (one rounding, like scalef). Results equal ref/order.c bit for bit. */
#include <math.h>

#include "kernels/x86/avx2/avx2_util.h"

typedef struct {
    __m256 lo, hi;
} V16;
#define ORD(name) avx2_ord_##name
#define ORD_PUBLIC(name) kern_avx2_##name
#define V2(EXPR_LO, EXPR_HI) ((V16){(EXPR_LO), (EXPR_HI)})

KERN_AI V16 v_zero(void) { return V2(_mm256_setzero_ps(), _mm256_setzero_ps()); }
KERN_AI V16 v_set1(float f) { return V2(_mm256_set1_ps(f), _mm256_set1_ps(f)); }
KERN_AI V16 v_ld(const float *p) { return V2(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)); }
KERN_AI V16 v_ldh(const uint16_t *p)
{
    return V2(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
              _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8))));
}
KERN_AI void v_st(float *p, V16 v)
{
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
KERN_AI V16 v_add(V16 a, V16 b) { return V2(_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)); }
KERN_AI V16 v_sub(V16 a, V16 b) { return V2(_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)); }
KERN_AI V16 v_mul(V16 a, V16 b) { return V2(_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)); }
KERN_AI V16 v_div(V16 a, V16 b) { return V2(_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)); }
KERN_AI V16 v_fma(V16 a, V16 b, V16 c)
{
    return V2(_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi));
}
KERN_AI V16 v_fnma(V16 a, V16 b, V16 c)
{
    return V2(_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi));
}

/* kern_reduce16's tree in two steps: h = hi 8 + lo 8, then red_h (q = hi 4 +
 * lo 4 of h, (q0 + q2) + (q1 + q3)) */
KERN_AI float red_h(__m256 h)
{
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    const __m128 r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)));
}
KERN_AI __m256 red_half(V16 v) { return _mm256_add_ps(v.hi, v.lo); }
KERN_AI float v_reduce(V16 v) { return red_h(red_half(v)); }

/* red_h of 8 half-reduced outputs at once, stored to out[0..7]: each lane
 * takes the same adds in the same order as red_h, formed by 128-bit and
 * in-lane shuffles (19 shuffles and adds instead of 8 x 6) */
KERN_AI void red8(const __m256 h[8], float *out)
{
    __m256 q[4], s[2];
    KERN_UNROLL for (int m = 0; m < 4; m++) /* [q of h[2m] | q of h[2m+1]] */
        q[m] = _mm256_add_ps(_mm256_permute2f128_ps(h[2 * m], h[2 * m + 1], 0x31),
                             _mm256_permute2f128_ps(h[2 * m], h[2 * m + 1], 0x20));
    KERN_UNROLL for (int n = 0; n < 2; n++) /* half 0: q0+q2, q1+q3 of h[4n], h[4n+2]; half 1: of h[4n+1], h[4n+3] */
        s[n] = _mm256_add_ps(_mm256_shuffle_ps(q[2 * n], q[2 * n + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(q[2 * n], q[2 * n + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* half 0: outputs 0, 2, 4, 6; half 1: 1, 3, 5, 7 */
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(s[0], s[1], _MM_SHUFFLE(3, 1, 3, 1)));
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* 8 lanes of v_expf's last step: n is integral; |n| > 192 -> 0 or inf by
 * sign (NaN n stays NaN through the product). */
KERN_AI __m256 exp_finish8(__m256 j, __m256 n)
{
    const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192), _CMP_GT_OQ);
    const __m256 nc = _mm256_blendv_ps(n, _mm256_setzero_ps(), big); /* keep the shifts in range */
    const __m256i e = _mm256_cvttps_epi32(nc);
    const __m256i e1 = _mm256_srai_epi32(_mm256_add_epi32(e, _mm256_srli_epi32(e, 31)), 1); /* e / 2 toward 0 */
    const __m256i e2 = _mm256_sub_epi32(e, e1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, bias), 23));
    const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, bias), 23));
    __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, f1), f2);
    res = _mm256_blendv_ps(res, _mm256_mul_ps(j, n), _mm256_cmp_ps(n, n, _CMP_UNORD_Q)); /* NaN */
    const __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                        _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    return _mm256_blendv_ps(res, alt, big);
}

KERN_AI V16 v_exp_finish(V16 j, V16 n) { return V2(exp_finish8(j.lo, n.lo), exp_finish8(j.hi, n.hi)); }

#define ORD_RW 2
#define ORD_RB 2
#define ORD_SET_VD 1
/* gemm_vd_hx streams the weights (decode): a prefetch ORD_VD_PF bytes ahead */
#define ORD_PREFETCH(p) _mm_prefetch((p), _MM_HINT_T0)
/* gemm_tb_hx: weights converted to F32 per block: 2 weight rows x 3
 * activation rows (12 ymm accumulators, 10 loads per 12 FMAs); rows too long
 * for that, from F16: one weight row x 3-4 activation rows (8 ymm
 * accumulators, the activations as memory operands: 2 conversions per 8
 * FMAs), two weight rows for 1-2 activation rows */
#define ORD_FRB 3
#define ORD_FRW 2
/* gemm_tb_hx converts weight rows to F32 once for batches of at least this
 * many rows (bench_kernels F16 +hx: the conversion costs ~4.5 activation
 * rows' FMAs) */
#define ORD_FMIN_NB 32
/* one 16-lane step of that tile, half by half: per half the 2 weight vectors,
 * then each activation vector loaded once for its 2 FMAs (12 accumulators +
 * 3 registers; loading the whole step's activations first spilled) */
#define FSTEP_HALF(H, OFF)                                                                          \
    do {                                                                                           \
        const __m256 w0 = _mm256_loadu_ps((const float *)(const void *)wr[0] + i + (OFF));         \
        const __m256 w1 = _mm256_loadu_ps((const float *)(const void *)wr[rw > 1] + i + (OFF));    \
        KERN_UNROLL for (int q = 0; q < nb; q++)                                                   \
        {                                                                                          \
            const __m256 xq = _mm256_loadu_ps(xr[q] + i + (OFF));                                  \
            acc[0][q].H = _mm256_fmadd_ps(w0, xq, acc[0][q].H);                                    \
            if (rw > 1)                                                                            \
                acc[1][q].H = _mm256_fmadd_ps(w1, xq, acc[1][q].H);                                \
        }                                                                                          \
    } while (0)
#define ORD_FSTEP(rw, nb, wr, xr, i, acc)                                                          \
    do {                                                                                           \
        FSTEP_HALF(lo, 0);                                                                         \
        FSTEP_HALF(hi, 8);                                                                         \
    } while (0)
#define ORD_XRB 4
#define ORD_XRW_OF(nb) ((nb) <= 2 ? 2 : 1)
#define ORD_XRW_MAX 2
#define ORD_XRED_T __m256
#define ORD_XRED_H red_half
#define ORD_XRED_1 red_h
#define ORD_XRED8 red8
#include "kernels/x86/order_simd.h"

/* RoPE: the reference's code, with fmaf as one FMA instruction here */
void kern_avx2_rope(float *v, const float *cache, int n_rot, bool neox) { kern_rope_impl(v, cache, n_rot, neox); }
