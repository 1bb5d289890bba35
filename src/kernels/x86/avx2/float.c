/* float.c - AVX2 BF16 dot products (BF16 by a 16-bit shift), each weight
 * vector loaded once for up to 4 activation rows, the F16 row converters
 * (round to nearest even, identical to the reference) and attention's row
 * scaling (with the running maximum). Tails shorter than 16
 * go scalar. F32/F16 dot products are in order_avx2.c (llama.cpp's order). */
#include "kernels/x86/avx2/avx2_util.h"

#define NRMAX 4

KERN_AI __m256 ld_bf16(const void *p, int64_t i)
{
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
static inline float sc_bf16(const void *p, int64_t i) { return kern_bf16_to_fp32(((const uint16_t *)p)[i]); }

#define FLOAT_KERN(NAME, LD, SC)                                                          \
    KERN_AI void NAME##_kern(int nr, int64_t n, const void *w, const void *const *x,      \
                             float *out)                                                  \
    {                                                                                     \
        __m256 a0[NRMAX], a1[NRMAX];                                                      \
        KERN_UNROLL for (int r = 0; r < nr; r++) {                                                    \
            a0[r] = _mm256_setzero_ps();                                                  \
            a1[r] = _mm256_setzero_ps();                                                  \
        }                                                                                 \
        int64_t i = 0;                                                                    \
        for (; i + 16 <= n; i += 16) {                                                    \
            const __m256 w0 = LD(w, i), w1 = LD(w, i + 8);                                \
            KERN_UNROLL for (int r = 0; r < nr; r++) {                                                \
                a0[r] = _mm256_fmadd_ps(w0, LD(x[r], i), a0[r]);                          \
                a1[r] = _mm256_fmadd_ps(w1, LD(x[r], i + 8), a1[r]);                      \
            }                                                                             \
        }                                                                                 \
        KERN_UNROLL for (int r = 0; r < nr; r++) {                                                    \
            float s = avx2_hsum_ps(_mm256_add_ps(a0[r], a1[r]));                          \
            for (int64_t j = i; j < n; j++)                                               \
                s += SC(w, j) * SC(x[r], j);                                              \
            out[r] = s;                                                                   \
        }                                                                                 \
    }                                                                                     \
    KERN_AVX2_DRIVER(NAME, NAME##_kern, 1)

FLOAT_KERN(bf16, ld_bf16, sc_bf16)

void kern_avx2_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    for (; i < n; i++)
        y[i] = (uint16_t)_cvtss_sh(x[i], 0);
}

void kern_avx2_fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++)
        y[i] = _cvtsh_ss(x[i]);
}

float kern_avx2_scale_max_row(float *x, int64_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        _mm256_storeu_ps(x + i, v);
        vm = _mm256_blendv_ps(vm, v, _mm256_cmp_ps(v, vm, _CMP_GT_OQ)); /* NaN lanes keep vm */
    }
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, vm);
    for (int l = 0; l < 8; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;
    const float t = kern_ref_scale_max_row(x + i, n - i, s); /* the tail */
    return t > mx ? t : mx;
}

void kern_avx2_scale_row(float *x, int64_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    kern_ref_scale_row(x + i, n - i, s);
}

static void quantize_f16(const float *x, void *vy, int64_t n)
{
    kern_avx2_fp32_to_fp16_row(x, vy, n);
}

static void to_float_f16(const void *x, float *y, int64_t n)
{
    kern_avx2_fp16_to_fp32_row(x, y, n);
}

void kern_avx2_fill_float(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_float(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_F16: /* dot products: order_avx2.c */
        ops->quantize_act = quantize_f16;
        ops->to_float = to_float_f16;
        break;
    case GG_TYPE_BF16:
        ops->vec_dot = bf16_vec_dot;
        ops->gemm = bf16_gemm;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX2;
}
