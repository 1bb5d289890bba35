/* order_avx512.c - llama.cpp's float orders (F32/F16 dot products and gemm,
 * softmax exponentials, SiLU) on AVX-512: x86/order_simd.h over one zmm per
 * 16 lanes. v_expf finishes with scalef and ggml's mask blends, as ggml's
 * AVX-512 build does; the results equal ref/order.c bit for bit. Only the
 * tinyBLAS-order gemm (prefill) and softmax/SiLU are installed; see ORD_SET_VD. */
#include <math.h>

#include "kernels/x86/avx512/avx512_util.h"

typedef __m512 V16;
#define ORD(name) avx512_ord_##name
#define ORD_PUBLIC(name) kern_avx512_##name

KERN_AI V16 v_zero(void) { return _mm512_setzero_ps(); }
KERN_AI V16 v_set1(float f) { return _mm512_set1_ps(f); }
KERN_AI V16 v_ld(const float *p) { return _mm512_loadu_ps(p); }
KERN_AI V16 v_ldh(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
KERN_AI void v_st(float *p, V16 v) { _mm512_storeu_ps(p, v); }
KERN_AI V16 v_add(V16 a, V16 b) { return _mm512_add_ps(a, b); }
KERN_AI V16 v_sub(V16 a, V16 b) { return _mm512_sub_ps(a, b); }
KERN_AI V16 v_mul(V16 a, V16 b) { return _mm512_mul_ps(a, b); }
KERN_AI V16 v_div(V16 a, V16 b) { return _mm512_div_ps(a, b); }
KERN_AI V16 v_fma(V16 a, V16 b, V16 c) { return _mm512_fmadd_ps(a, b, c); }
KERN_AI V16 v_fnma(V16 a, V16 b, V16 c) { return _mm512_fnmadd_ps(a, b, c); }

KERN_AI float v_reduce(V16 v)
{
    const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    const __m128 r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)));
}

KERN_AI V16 v_exp_finish(V16 j, V16 n)
{
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const V16 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d))
        return res;
    const V16 zero = _mm512_setzero_ps();
    const V16 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(d, res, alt);
}

#define ORD_RW 4
#define ORD_RB 4
/* gemm_tb_hx converts weight rows to F32 once for batches of at least this
 * many rows (bench_kernels F16 +hx: the conversion costs ~4.5 activation
 * rows' FMAs) */
#define ORD_FMIN_NB 128

/* The 16 outputs of a full 4 x 4 tinyBLAS tile reduced together: each gets
 * kern_reduce16's tree (h = hi 8 + lo 8, q = hi 4 + lo 4 of h, then
 * (q0 + q2) + (q1 + q3)), formed for all 16 at once by 128-bit and in-lane
 * shuffles (15 adds and 30 shuffles instead of 16 x 8 reduction steps), so
 * every output has v_reduce's bits. a[4 q + p] is weight row p x activation
 * row q; out[4 q + p] its sum. */
KERN_AI void v_reduce16x(const V16 a[16], float out[16])
{
    V16 b[8], c[4], d[2];
    KERN_UNROLL for (int m = 0; m < 8; m++) /* [h of a[2m] | h of a[2m+1]] */
        b[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0xEE),
                             _mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0x44));
    KERN_UNROLL for (int n = 0; n < 4; n++) /* 128-bit lane k: q of a[4n + k] */
        c[n] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * n], b[2 * n + 1], 0xDD),
                             _mm512_shuffle_f32x4(b[2 * n], b[2 * n + 1], 0x88));
    KERN_UNROLL for (int p = 0; p < 2; p++) /* lane k: q0 + q2, q1 + q3 of a[8p + k], then of a[8p + 4 + k] */
        d[p] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * p], c[2 * p + 1], 0x44),
                             _mm512_shuffle_ps(c[2 * p], c[2 * p + 1], 0xEE));
    /* lane 4k + j: the sum of a[k + 4j] */
    const V16 e = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(idx, e));
}
#define ORD_REDUCE16 v_reduce16x
/* The vec_dot-order kernels (decode: one activation row streaming the
 * weights) stay AVX2's, which are bit-identical: zmm loads streamed F32
 * weights from DRAM at 27 GB/s vs 48 GB/s for ymm on this machine
 * (bench_kernels dram, one thread). */
#define ORD_SET_VD 0
#include "kernels/x86/order_simd.h"
