/* float.c - scalar reference for the float types: exact fp16/bf16
 * conversion (round to nearest even, NaN kept quiet), F32/F16/BF16 row
 * conversion, their dot products (double accumulation, as ggml's scalar
 * path), the float helpers, and the generic rows x batch gemm. */
#include <math.h>

#include "kernels/kern_impl.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kern_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / nan */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: man * 2^-24 is exact in float */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t kern_fp32_to_fp16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* nan: keep quiet, keep top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below the smallest normal half (2^-14): subnormal */
        if (a < 0x33000000u) /* < 2^-25: rounds to zero (2^-25 ties to even 0) */
            return sign;
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* half subnormal = m >> (shift) with 13+... */
        /* value = m * 2^(e-150); half units 2^-24 -> q = m * 2^(e-126) */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal */
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* round to nearest even at bit 13 */
    r -= 0x38000000u;                          /* rebias 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

float kern_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t kern_fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: force quiet */
        return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* ---- rows */
void kern_ref_to_float_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void kern_ref_from_float_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void kern_ref_to_float_f16(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = kern_fp16_to_fp32(h[i]);
}

void kern_ref_from_float_f16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = kern_fp32_to_fp16(src[i]);
}

void kern_ref_to_float_bf16(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = kern_bf16_to_fp32(h[i]);
}

void kern_ref_from_float_bf16(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = kern_fp32_to_bf16(src[i]);
}

/* ---- dot products (F32/F16 in llama.cpp's order: ref/order.c; BF16 in
 * double, like ggml's scalar path) */
void kern_ref_vec_dot_bf16(int64_t n, float *s, const void *x, const void *y)
{
    const uint16_t *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(kern_bf16_to_fp32(a[i]) * kern_bf16_to_fp32(b[i]));
    *s = (float)sum;
}

void kern_gemm_generic(kern_vec_dot_fn vec_dot, int64_t k, int64_t r0, int64_t r1,
                       int64_t n_batch, const void *w, size_t w_stride, const void *x,
                       size_t x_stride, float *y, size_t y_stride)
{
    for (int64_t r = r0; r < r1; r++) {
        const char *wr = (const char *)w + (size_t)r * w_stride;
        for (int64_t b = 0; b < n_batch; b++) {
            const char *xb = (const char *)x + (size_t)b * x_stride;
            vec_dot(k, &y[(size_t)b * y_stride + (size_t)r], wr, xb);
        }
    }
}
