/* order_avx2build.c - scalar reference of the float orders of ggml's AVX2
 * build (8-lane vectors), the second order next to ref/order.c's AVX-512
 * build. llama.cpp traced on an AVX2-only CPU (../shared/models/arch) sums
 * in these orders, and spoke reproduces those traces bit for bit when
 * SPOKE_ORDER=avx2 selects them (dispatch.c; docs/PARITY.md). Each function
 * names the ggml code it reproduces:
 *
 * - vec_dot (ggml_vec_dot_f32/f16 with GGML_F32_STEP 32, GGML_F32_EPR 8): 4
 *   accumulators of 8 lanes over 32-element steps, reduced (0+2, 1+3),
 *   (0+1), then GGML_F32x8_REDUCE: t = lo + hi (4 lanes), two hadds, i.e.
 *   (t0+t1) + (t2+t3). Tails as ref/order.c (F32 in float, F16 in double);
 *   the traced models have no row length that leaves one.
 * - tinyBLAS (llamafile sgemm with KN = 8, __m256): one 8-lane FMA
 *   accumulator over k (a multiple of 8), then hsum(__m256): h = hi + lo,
 *   (h0+h2) + (h1+h3).
 * - ggml_v_expf (AVX2 polynomial: result fma(j, k, k) with k = 2^n built
 *   from the exponent bits, a scaled path past |n| > 126), used in 8-wide
 *   chunks by ggml_vec_soft_max_f32 (each chunk summed as hsum and added to
 *   a double) and ggml_vec_silu_f32 / ggml_vec_swiglu_f32 (x / (1 + e^-x));
 *   tails use expf. */
#include "kernels/kern_impl.h"

/* GGML_F32x8_REDUCE's last step (lo + hi, then two _mm_hadd_ps). */
static float reduce8_hadd(const float a[8])
{
    float t[4];
    for (int i = 0; i < 4; i++)
        t[i] = a[i] + a[i + 4];
    return (t[0] + t[1]) + (t[2] + t[3]);
}

/* sgemm.cpp's hsum(__m256) and the softmax chunk sum (hi + lo, movehl, movehdup). */
static float reduce8_hsum(const float a[8])
{
    float h[4];
    for (int i = 0; i < 4; i++)
        h[i] = a[i + 4] + a[i];
    return (h[0] + h[2]) + (h[1] + h[3]);
}

static inline float ld_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
static inline float ld_f16(const void *p, int64_t i) { return kern_f16(((const kern_half *)p)[i]); }

/* 4 x 8 accumulators over the first n & ~31 elements, reduced to one value. */
#define VD8_BODY(LD)                                                                     \
    const int64_t np = n & ~(int64_t)31;                                                 \
    float acc[4][8];                                                                     \
    memset(acc, 0, sizeof acc);                                                          \
    for (int64_t i = 0; i < np; i += 32)                                                 \
        for (int j = 0; j < 4; j++)                                                      \
            for (int l = 0; l < 8; l++)                                                  \
                acc[j][l] = fmaf(LD(x, i + j * 8 + l), LD(y, i + j * 8 + l), acc[j][l]); \
    for (int l = 0; l < 8; l++) {                                                        \
        acc[0][l] = acc[0][l] + acc[2][l];                                               \
        acc[1][l] = acc[1][l] + acc[3][l];                                               \
    }                                                                                    \
    for (int l = 0; l < 8; l++)                                                          \
        acc[0][l] = acc[0][l] + acc[1][l];

void kern_ref256_vec_dot_f32(int64_t n, float *s, const void *x, const void *y)
{
    VD8_BODY(ld_f32)
    *s = kern_vd_tail_f32(reduce8_hadd(acc[0]), np, n, x, y);
}

void kern_ref256_vec_dot_f16(int64_t n, float *s, const void *x, const void *y)
{
    VD8_BODY(ld_f16)
    *s = kern_vd_tail_f16(reduce8_hadd(acc[0]), np, n, x, y, kern_f16);
}
#undef VD8_BODY

/* tinyBLAS order; n must be a multiple of 8 (kern_pick_gemm checks). */
#define TB8_BODY(LD)                                           \
    float acc[8] = {0};                                        \
    for (int64_t i = 0; i < n; i += 8)                         \
        for (int l = 0; l < 8; l++)                            \
            acc[l] = fmaf(LD(x, i + l), LD(y, i + l), acc[l]); \
    *s = reduce8_hsum(acc);

void kern_ref256_vec_dot_tb_f32(int64_t n, float *s, const void *x, const void *y) { TB8_BODY(ld_f32) }
void kern_ref256_vec_dot_tb_f16(int64_t n, float *s, const void *x, const void *y) { TB8_BODY(ld_f16) }
#undef TB8_BODY

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float kern_ref256_v_expf(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f_bits(z) << 23;
    const float k = bits_f(e + f_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, 0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) /* NaN compares false: the fast path, as the movemask test */
        return fmaf(j, k, k);
    if (fabsf(n) > 192.0f)
        return n <= 0.0f ? 0.0f : INFINITY;
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f(g + 0x7f000000u), s2 = bits_f(e - g);
    return fmaf(s2, j, s2) * s1;
}

double kern_ref256_softmax_exp(int64_t n, float *y, const float *x, float max)
{
    double sum = 0.0;
    int64_t i = 0;
    for (; i + 7 < n; i += 8) {
        float v[8];
        for (int l = 0; l < 8; l++)
            y[i + l] = v[l] = kern_ref256_v_expf(x[i + l] - max);
        sum += (double)reduce8_hsum(v);
    }
    return kern_softmax_tail(i, n, y, x, max, sum);
}

void kern_ref256_silu_row(int64_t n, float *y, const float *x)
{
    int64_t i = 0;
    for (; i + 7 < n; i += 8)
        for (int l = 0; l < 8; l++)
            y[i + l] = x[i + l] / (1.0f + kern_ref256_v_expf(0.0f - x[i + l]));
    kern_silu_tail(i, n, y, x);
}
