/* order.c - scalar reference of llama.cpp's float arithmetic on x86
 * (ggml's AVX-512 build), so spoke's F32/F16 results equal llama.cpp's bit for
 * bit rather than within rounding noise. Each function names the ggml code
 * it reproduces; SIMD variants (x86/) must equal these exactly.
 *
 * - "vec_dot order" (ggml_vec_dot_f32/f16): 4 accumulators of 16 lanes over
 *   64-element steps, reduced (0+2, 1+3), (0+1), then the 16 lanes as a tree
 *   (kern_reduce16). Leftovers: F16 in double; F32 in float, the first
 *   multiple of 8 unfused and the last n % 8 fused (what gcc's vectorised
 *   `sumf += x[i]*y[i]` loop does).
 * - "tinyBLAS order" (llamafile sgemm, used by ggml for batches of >= 2 rows
 *   when the row length is a multiple of 16): one 16-lane FMA accumulator,
 *   then kern_reduce16.
 * - ggml_v_expf (AVX-512 polynomial exp with scalef), the softmax row
 *   (ggml_vec_soft_max_f32) and SiLU row (ggml_vec_silu_f32): 16-wide
 *   chunks use v_expf, tails use expf.
 * - RoPE's rotation (kern_rope_impl in kern_impl.h). */
#include "kernels/kern_impl.h"

float kern_reduce16(const float v[16])
{
    float h[8], q[4];
    for (int i = 0; i < 8; i++)
        h[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++)
        q[i] = h[i + 4] + h[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* 4 x 16 accumulators over the first n & ~63 elements, reduced; x, y are
 * already widened to float by the caller per element (ld). */
#define VD_BODY(LD)                                                              \
    const int64_t np = n & ~(int64_t)63;                                         \
    float acc[4][16];                                                            \
    memset(acc, 0, sizeof acc);                                                  \
    for (int64_t i = 0; i < np; i += 64)                                         \
        for (int j = 0; j < 4; j++)                                              \
            for (int l = 0; l < 16; l++)                                         \
                acc[j][l] = fmaf(LD(x, i + j * 16 + l), LD(y, i + j * 16 + l), acc[j][l]); \
    for (int l = 0; l < 16; l++) {                                               \
        acc[0][l] = acc[0][l] + acc[2][l];                                       \
        acc[1][l] = acc[1][l] + acc[3][l];                                       \
    }                                                                            \
    for (int l = 0; l < 16; l++)                                                 \
        acc[0][l] = acc[0][l] + acc[1][l];

static inline float ld_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
static inline float ld_f16(const void *p, int64_t i) { return kern_f16(((const kern_half *)p)[i]); }

void kern_ref_vec_dot_f32(int64_t n, float *s, const void *x, const void *y)
{
    VD_BODY(ld_f32)
    *s = kern_vd_tail_f32(kern_reduce16(acc[0]), np, n, x, y);
}

void kern_ref_vec_dot_f16(int64_t n, float *s, const void *x, const void *y)
{
    VD_BODY(ld_f16)
    *s = kern_vd_tail_f16(kern_reduce16(acc[0]), np, n, x, y, kern_f16);
}
#undef VD_BODY

/* tinyBLAS order; n must be a multiple of 16 (callers check). */
#define TB_BODY(LD)                                                          \
    float acc[16] = {0};                                                     \
    for (int64_t i = 0; i < n; i += 16)                                      \
        for (int l = 0; l < 16; l++)                                         \
            acc[l] = fmaf(LD(x, i + l), LD(y, i + l), acc[l]);               \
    *s = kern_reduce16(acc);

void kern_ref_vec_dot_tb_f32(int64_t n, float *s, const void *x, const void *y) { TB_BODY(ld_f32) }
void kern_ref_vec_dot_tb_f16(int64_t n, float *s, const void *x, const void *y) { TB_BODY(ld_f16) }
#undef TB_BODY

/* 2^n for integral n in [-192, 192] applied to j with one rounding, like
 * _mm512_scalef_ps: two exact power-of-two factors, the first product exact. */
static float scale_pow2(float j, float n)
{
    const int e = (int)n, e1 = e / 2, e2 = e - e1;
    float f1, f2;
    uint32_t b1 = (uint32_t)(e1 + 127) << 23, b2 = (uint32_t)(e2 + 127) << 23;
    memcpy(&f1, &b1, 4);
    memcpy(&f2, &b2, 4);
    return (j * f1) * f2;
}

float kern_ref_v_expf(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) /* NaN compares false: falls through to NaN */
        return n <= 0.0f ? 0.0f : INFINITY;
    if (isnan(n))
        return j * n;
    return scale_pow2(j, n);
}

double kern_ref_softmax_exp(int64_t n, float *y, const float *x, float max)
{
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 15 < n; i += 16) {
        float v[16];
        for (int l = 0; l < 16; l++)
            y[i + l] = v[l] = kern_ref_v_expf(x[i + l] - max);
        sum += (double)kern_reduce16(v);
    }
    return kern_softmax_tail(i, n, y, x, max, sum);
}

float kern_ref_scale_max_row(float *x, int64_t n, float s)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= s;
        mx = x[i] > mx ? x[i] : mx;
    }
    return mx;
}

void kern_ref_scale_row(float *x, int64_t n, float s)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= s;
}

void kern_ref_silu_row(int64_t n, float *y, const float *x)
{
    int64_t i = 0;
    for (; i + 15 < n; i += 16)
        for (int l = 0; l < 16; l++)
            y[i + l] = x[i + l] / (1.0f + kern_ref_v_expf(0.0f - x[i + l]));
    kern_silu_tail(i, n, y, x);
}

void kern_ref_rope(float *v, const float *cache, int n_rot, bool neox) { kern_rope_impl(v, cache, n_rot, neox); }
