/* quant_simple.c - scalar reference for the 32-element block types Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: quantize (ggml's quantize_row_*_ref
 * formulas, so files match llama-quantize bit for bit), dequantize, and the
 * dot products against Q8_0/Q8_1 activations (ggml's generic vec_dot order:
 * integer sums per block, one float multiply-add per block). */
#include <float.h>
#include <math.h>

#include "kernels/kern_impl.h"

#define QK KERN_QK

/* (int)v truncated and clamped to [lo, hi]; NaN gives lo. For the values the
 * formulas produce from finite input this is exactly ggml's cast + MIN, but
 * non-finite input (a bad file) cannot reach an undefined conversion. */
static inline int trunc_clamp(float v, int lo, int hi)
{
    if (!(v >= (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)v;
}

/* roundf(v) as int8 (half away from zero); NaN gives 0 */
static inline int8_t round_i8(float v)
{
    float r = roundf(v);
    if (r != r)
        return 0;
    return (int8_t)(r < -128.f ? -128 : r > 127.f ? 127 : (int)r);
}

/* The value of largest magnitude in a block of QK, with its sign (the first
 * one on ties), as ggml's Q4_0/Q5_0 quantizers pick it. */
static float block_absmax_signed(const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* Minimum and maximum of a block of QK (Q4_1/Q5_1). */
static void block_min_max(const float *x, float *min, float *max)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < lo)
            lo = x[j];
        if (x[j] > hi)
            hi = x[j];
    }
    *min = lo;
    *max = hi;
}

/* ---- Q4_0 */
void kern_ref_from_float_q4_0(const float *x, void *vy, int64_t n)
{
    block_q4_0 *y = vy;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float max = block_absmax_signed(x + i * QK);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_h16(d);
        for (int j = 0; j < QK / 2; j++) {
            float x0 = x[i * QK + j] * id;
            float x1 = x[i * QK + QK / 2 + j] * id;
            int xi0 = trunc_clamp(x0 + 8.5f, 0, 15);
            int xi1 = trunc_clamp(x1 + 8.5f, 0, 15);
            y[i].qs[j] = (uint8_t)((xi0 & 0xF) | (xi1 << 4));
        }
    }
}

void kern_ref_to_float_q4_0(const void *vx, float *y, int64_t n)
{
    const block_q4_0 *x = vx;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = kern_f16(x[i].d);
        for (int j = 0; j < QK / 2; j++) {
            y[i * QK + j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK + j + QK / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- Q4_1 */
void kern_ref_from_float_q4_1(const float *x, void *vy, int64_t n)
{
    block_q4_1 *y = vy;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        float min, max;
        block_min_max(x + i * QK, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_h16(d);
        y[i].m = kern_h16(min);
        for (int j = 0; j < QK / 2; j++) {
            float x0 = (x[i * QK + j] - min) * id;
            float x1 = (x[i * QK + QK / 2 + j] - min) * id;
            int xi0 = trunc_clamp(x0 + 0.5f, 0, 15);
            int xi1 = trunc_clamp(x1 + 0.5f, 0, 15);
            y[i].qs[j] = (uint8_t)((xi0 & 0xF) | (xi1 << 4));
        }
    }
}

void kern_ref_to_float_q4_1(const void *vx, float *y, int64_t n)
{
    const block_q4_1 *x = vx;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = kern_f16(x[i].d), m = kern_f16(x[i].m);
        for (int j = 0; j < QK / 2; j++) {
            y[i * QK + j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[i * QK + j + QK / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* ---- Q5_0 / Q5_1: 5-bit values, low nibbles in qs (element j in the low
 * nibble of qs[j], element j + 16 in its high nibble), fifth bits in qh
 * (bit j for element j). */
static inline void q5_pack(uint8_t *qs, uint32_t *qh, int j, uint32_t u0, uint32_t u1)
{
    qs[j] = (uint8_t)((u0 & 0x0F) | ((u1 & 0x0F) << 4));
    *qh |= ((u0 & 0x10u) >> 4) << (j + 0);
    *qh |= ((u1 & 0x10u) >> 4) << (j + QK / 2);
}

/* The unsigned 5-bit values (0..31) of elements j and j + 16. */
static inline void q5_unpack(const uint8_t *qs, uint32_t qh, int j, int *u0, int *u1)
{
    *u0 = (qs[j] & 0x0F) | (int)(((qh >> (j + 0)) << 4) & 0x10);
    *u1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
}

void kern_ref_from_float_q5_0(const float *x, void *vy, int64_t n)
{
    block_q5_0 *y = vy;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float max = block_absmax_signed(x + i * QK);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_h16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            float x0 = x[i * QK + j] * id;
            float x1 = x[i * QK + QK / 2 + j] * id;
            q5_pack(y[i].qs, &qh, j, (uint32_t)trunc_clamp(x0 + 16.5f, 0, 31),
                    (uint32_t)trunc_clamp(x1 + 16.5f, 0, 31));
        }
        memcpy(y[i].qh, &qh, sizeof qh);
    }
}

void kern_ref_to_float_q5_0(const void *vx, float *y, int64_t n)
{
    const block_q5_0 *x = vx;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = kern_f16(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < QK / 2; j++) {
            int u0, u1;
            q5_unpack(x[i].qs, qh, j, &u0, &u1);
            y[i * QK + j] = (float)(u0 - 16) * d;
            y[i * QK + j + QK / 2] = (float)(u1 - 16) * d;
        }
    }
}

/* ---- Q5_1 */
void kern_ref_from_float_q5_1(const float *x, void *vy, int64_t n)
{
    block_q5_1 *y = vy;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        float min, max;
        block_min_max(x + i * QK, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_h16(d);
        y[i].m = kern_h16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            float x0 = (x[i * QK + j] - min) * id;
            float x1 = (x[i * QK + QK / 2 + j] - min) * id;
            q5_pack(y[i].qs, &qh, j, (uint32_t)trunc_clamp(x0 + 0.5f, 0, 255),
                    (uint32_t)trunc_clamp(x1 + 0.5f, 0, 255));
        }
        memcpy(y[i].qh, &qh, sizeof qh);
    }
}

void kern_ref_to_float_q5_1(const void *vx, float *y, int64_t n)
{
    const block_q5_1 *x = vx;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = kern_f16(x[i].d), m = kern_f16(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < QK / 2; j++) {
            int u0, u1;
            q5_unpack(x[i].qs, qh, j, &u0, &u1);
            y[i * QK + j] = (float)u0 * d + m;
            y[i * QK + j + QK / 2] = (float)u1 * d + m;
        }
    }
}

/* ---- Q8_0 / Q8_1 */
void kern_ref_from_float_q8_0(const float *x, void *vy, int64_t n)
{
    block_q8_0 *y = vy;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[i * QK + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_h16(d);
        for (int j = 0; j < QK; j++)
            y[i].qs[j] = round_i8(x[i * QK + j] * id);
    }
}

void kern_ref_to_float_q8_0(const void *vx, float *y, int64_t n)
{
    const block_q8_0 *x = vx;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = kern_f16(x[i].d);
        for (int j = 0; j < QK; j++)
            y[i * QK + j] = (float)x[i].qs[j] * d;
    }
}

void kern_ref_from_float_q8_1(const float *x, void *vy, int64_t n)
{
    block_q8_1 *y = vy;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[i * QK + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_h16(d);
        int sum = 0;
        for (int j = 0; j < QK / 2; j++) {
            y[i].qs[j] = round_i8(x[i * QK + j] * id);
            y[i].qs[QK / 2 + j] = round_i8(x[i * QK + QK / 2 + j] * id);
            sum += y[i].qs[j] + y[i].qs[QK / 2 + j];
        }
        y[i].s = kern_h16((float)sum * d);
    }
}

void kern_ref_to_float_q8_1(const void *vx, float *y, int64_t n)
{
    const block_q8_1 *x = vx;
    int64_t nb = n / QK;
    for (int64_t i = 0; i < nb; i++) {
        const float d = kern_f16(x[i].d);
        for (int j = 0; j < QK; j++)
            y[i * QK + j] = (float)x[i].qs[j] * d;
    }
}

/* ---- dot products */
void kern_ref_vec_dot_q4_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    int64_t nb = n / QK;
    float sumf = 0;
    for (int64_t ib = 0; ib < nb; ib++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK / 2; j++) {
            const int v0 = (x[ib].qs[j] & 0x0F) - 8;
            const int v1 = (x[ib].qs[j] >> 4) - 8;
            sumi0 += v0 * y[ib].qs[j];
            sumi1 += v1 * y[ib].qs[j + QK / 2];
        }
        sumf += (float)(sumi0 + sumi1) * kern_f16(x[ib].d) * kern_f16(y[ib].d);
    }
    *s = sumf;
}

void kern_ref_vec_dot_q4_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    int64_t nb = n / QK;
    float sumf = 0;
    for (int64_t ib = 0; ib < nb; ib++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi0 += (x[ib].qs[j] & 0x0F) * y[ib].qs[j];
            sumi1 += (x[ib].qs[j] >> 4) * y[ib].qs[j + QK / 2];
        }
        sumf += (kern_f16(x[ib].d) * kern_f16(y[ib].d)) * (float)(sumi0 + sumi1) +
                kern_f16(x[ib].m) * kern_f16(y[ib].s);
    }
    *s = sumf;
}

/* Integer dot of one Q5 block's values (minus off) with 32 int8 activations. */
static int q5_block_dot(const uint8_t *qs, const uint8_t *qhb, const int8_t *y, int off)
{
    uint32_t qh;
    memcpy(&qh, qhb, sizeof qh);
    int sumi0 = 0, sumi1 = 0;
    for (int j = 0; j < QK / 2; j++) {
        int u0, u1;
        q5_unpack(qs, qh, j, &u0, &u1);
        sumi0 += (u0 - off) * y[j];
        sumi1 += (u1 - off) * y[j + QK / 2];
    }
    return sumi0 + sumi1;
}

void kern_ref_vec_dot_q5_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    int64_t nb = n / QK;
    float sumf = 0;
    for (int64_t ib = 0; ib < nb; ib++) {
        const int sumi = q5_block_dot(x[ib].qs, x[ib].qh, y[ib].qs, 16);
        sumf += (kern_f16(x[ib].d) * kern_f16(y[ib].d)) * (float)sumi;
    }
    *s = sumf;
}

void kern_ref_vec_dot_q5_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    int64_t nb = n / QK;
    float sumf = 0;
    for (int64_t ib = 0; ib < nb; ib++) {
        const int sumi = q5_block_dot(x[ib].qs, x[ib].qh, y[ib].qs, 0);
        sumf += (kern_f16(x[ib].d) * kern_f16(y[ib].d)) * (float)sumi +
                kern_f16(x[ib].m) * kern_f16(y[ib].s);
    }
    *s = sumf;
}

/* In ggml's x86 order (ggml_vec_dot_q8_0_q8_0 AVX2, which its AVX-512 build
 * also runs, and tinyBLAS_Q0 for batches): 8 float lanes, lane j taking the
 * integer sum of products 4j..4j+3 of each block, accumulated by
 * fma(dx*dy, sum, lane); then ggml's hsum_float_8. */
void kern_ref_vec_dot_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    int64_t nb = n / QK;
    float acc[8] = {0};
    for (int64_t ib = 0; ib < nb; ib++) {
        const float d = kern_f16(x[ib].d) * kern_f16(y[ib].d);
        for (int l = 0; l < 8; l++) {
            int sumi = 0;
            for (int j = 4 * l; j < 4 * l + 4; j++)
                sumi += x[ib].qs[j] * y[ib].qs[j];
            acc[l] = fmaf(d, (float)sumi, acc[l]);
        }
    }
    float h[4];
    for (int l = 0; l < 4; l++)
        h[l] = acc[l + 4] + acc[l];
    *s = (h[0] + h[2]) + (h[1] + h[3]);
}
