/* quant_iq4.c - scalar reference for the non-linear 4-bit types IQ4_NL (blocks
 * of 32: fp16 scale + 16 bytes of 4-bit indices into a fixed table of 16
 * int8 levels) and IQ4_XS (super-blocks of 256: fp16 scale, eight 6-bit
 * sub-block scales, the same 4-bit indices).
 *
 * Quantizer: ggml's quantize_iq4_nl / quantize_iq4_xs without importance
 * matrix (what llama-quantize runs): per 32-block, weights x^2, a first scale
 * max/127 and a search over 15 inverse scales (itry -7..7), keeping the
 * weighted least-squares scale with the smallest error; IQ4_XS then
 * quantizes the eight scales to 6 bits against -max_scale/32 and re-picks
 * the indices. Every float operation is written in ggml's order (the build
 * fuses nothing), so files match llama-quantize's bit for bit.
 *
 * Dot products in ggml's x86 (AVX2, also run by its AVX-512 builds) order:
 * IQ4_NL x Q8_0: 8 float lanes per accumulator, lane l taking the integer sum
 * of products 4l..4l+3 of a block; even blocks feed one accumulator and odd
 * blocks another (one fma per block and lane), summed lane-wise, then
 * hsum_float_8; an odd last block is added in scalar with one fma.
 * IQ4_XS x Q8_K: per super-block, 8 integer lanes of sum(scale * 4-product
 * sums) over its eight 32-blocks, one fma per super-block and lane into one
 * accumulator, then hsum_float_8. */
#include <math.h>

#include "kernels/kern_impl.h"

#define QK KERN_QK
#define QK_K KERN_QK_K
#define GROUP_MAX_EPS 1e-15f

const int8_t kern_iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* Index of the level nearest to x (ties go up; NaN gives 0). The midpoint
 * test x >= (v[j-1] + v[j]) / 2 is done exactly as x + x >= v[j-1] + v[j]. */
static inline int iq4_best_index(float x)
{
    const int8_t *v = kern_iq4nl_values;
    const float x2 = x + x;
    int idx = 0;
    for (int step = 8; step > 0; step >>= 1) {
        const int j = idx + step;
        if (x2 >= (float)(v[j - 1] + v[j]))
            idx = j;
    }
    return idx;
}

/* Scale of one 32-block by ggml's search (ntry 7, weights x^2); 0 for a
 * block of (near) zeros. */
static float iq4_block_scale(const float *xb)
{
    const int8_t *v = kern_iq4nl_values;
    float weight[QK];
    float amax = 0, max = 0;
    for (int j = 0; j < QK; ++j) {
        weight[j] = xb[j] * xb[j];
        const float ax = fabsf(xb[j]);
        if (ax > amax) {
            amax = ax;
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS)
        return 0;
    float d = -max / (float)v[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < QK; ++j) {
        const float q = (float)v[iq4_best_index(id * xb[j])];
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; ++itry) {
        id = (float)(itry + v[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < QK; ++j) {
            const float q = (float)v[iq4_best_index(id * xb[j])];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Indices of one 32-block for inverse scale id, packed as ggml does: element
 * j in the low nibble of qs[j], element j + 16 in its high nibble. */
static void iq4_pack_block(const float *xb, float id, uint8_t *qs)
{
    for (int j = 0; j < QK / 2; ++j)
        qs[j] = (uint8_t)(iq4_best_index(id * xb[j]) | (iq4_best_index(id * xb[j + QK / 2]) << 4));
}

/* ---- IQ4_NL */
void kern_ref_from_float_iq4_nl(const float *x, void *vy, int64_t n)
{
    block_iq4_nl *y = vy;
    for (int64_t i = 0; i < n / QK; i++) {
        const float *xb = x + i * QK;
        const float d = iq4_block_scale(xb);
        y[i].d = kern_h16(d);
        iq4_pack_block(xb, d != 0.0f ? 1 / d : 0.0f, y[i].qs);
    }
}

void kern_ref_to_float_iq4_nl(const void *vx, float *y, int64_t n)
{
    const block_iq4_nl *x = vx;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = kern_f16(x[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            y[i * QK + j] = d * (float)kern_iq4nl_values[x[i].qs[j] & 0xf];
            y[i * QK + j + QK / 2] = d * (float)kern_iq4nl_values[x[i].qs[j] >> 4];
        }
    }
}

/* ---- IQ4_XS */

/* The 6-bit scale of sub-block ib, minus 32. */
static inline int iq4_xs_scale(const block_iq4_xs *b, int ib)
{
    const int lo = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf;
    const int hi = (b->scales_h >> (2 * ib)) & 3;
    return (lo | (hi << 4)) - 32;
}

void kern_ref_from_float_iq4_xs(const float *x, void *vy, int64_t n)
{
    block_iq4_xs *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *xs = x + i * QK_K;
        float scales[QK_K / QK];
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < QK_K / QK; ++ib) {
            scales[ib] = iq4_block_scale(xs + ib * QK);
            const float abs_d = fabsf(scales[ib]);
            if (abs_d > amax_scale) {
                amax_scale = abs_d;
                max_scale = scales[ib];
            }
        }
        const float d = -max_scale / 32;
        const float id = d != 0.0f ? 1 / d : 0.0f;
        y[i].d = kern_h16(d);
        y[i].scales_h = 0;
        memset(y[i].scales_l, 0, sizeof y[i].scales_l);
        for (int ib = 0; ib < QK_K / QK; ++ib) {
            int l = kern_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * (float)l;
            iq4_pack_block(xs + ib * QK, dl != 0.0f ? 1 / dl : 0.0f, y[i].qs + ib * (QK / 2));
            l += 32;
            y[i].scales_l[ib / 2] |= (uint8_t)((l & 0xf) << (4 * (ib % 2)));
            y[i].scales_h |= (uint16_t)((l >> 4) << (2 * ib));
        }
    }
}

void kern_ref_to_float_iq4_xs(const void *vx, float *y, int64_t n)
{
    const block_iq4_xs *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = kern_f16(x[i].d);
        for (int ib = 0; ib < QK_K / QK; ++ib) {
            const float dl = d * (float)iq4_xs_scale(&x[i], ib);
            const uint8_t *qs = x[i].qs + ib * (QK / 2);
            float *yb = y + i * QK_K + ib * QK;
            for (int j = 0; j < QK / 2; ++j) {
                yb[j] = dl * (float)kern_iq4nl_values[qs[j] & 0xf];
                yb[j + QK / 2] = dl * (float)kern_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

/* ---- dot products */

/* The 8 lane sums of one 32-block: lane l = sum of products 4l..4l+3. */
static inline void iq4_lanes(const uint8_t *qs, const int8_t *q8, int32_t lanes[8])
{
    for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int j = 4 * l; j < 4 * l + 4; j++) {
            const int nib = j < QK / 2 ? qs[j] & 0xf : qs[j - QK / 2] >> 4;
            s += kern_iq4nl_values[nib] * q8[j];
        }
        lanes[l] = s;
    }
}

static inline float hsum_float_8(const float acc[8])
{
    float h[4];
    for (int l = 0; l < 4; l++)
        h[l] = acc[l + 4] + acc[l];
    return (h[0] + h[2]) + (h[1] + h[3]);
}

void kern_ref_vec_dot_iq4_nl(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_iq4_nl *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK;
    float acc1[8] = {0}, acc2[8] = {0};
    int32_t lanes[8];
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        const float d1 = kern_f16(y[ib].d) * kern_f16(x[ib].d);
        iq4_lanes(x[ib].qs, y[ib].qs, lanes);
        for (int l = 0; l < 8; l++)
            acc1[l] = fmaf(d1, (float)lanes[l], acc1[l]);
        const float d2 = kern_f16(y[ib + 1].d) * kern_f16(x[ib + 1].d);
        iq4_lanes(x[ib + 1].qs, y[ib + 1].qs, lanes);
        for (int l = 0; l < 8; l++)
            acc2[l] = fmaf(d2, (float)lanes[l], acc2[l]);
    }
    for (int l = 0; l < 8; l++)
        acc1[l] = acc1[l] + acc2[l];
    float sumf = hsum_float_8(acc1);
    if (ib < nb) { /* odd block count */
        const float d = kern_f16(y[ib].d) * kern_f16(x[ib].d);
        iq4_lanes(x[ib].qs, y[ib].qs, lanes);
        int32_t sumi = 0;
        for (int l = 0; l < 8; l++)
            sumi += lanes[l];
        sumf = fmaf(d, (float)sumi, sumf);
    }
    *s = sumf;
}

void kern_ref_vec_dot_iq4_xs(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_iq4_xs *x = vx;
    const block_q8_K *y = vy;
    float acc[8] = {0};
    int32_t lanes[8];
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum[8] = {0};
        for (int ib = 0; ib < QK_K / QK; ib++) {
            const int ls = iq4_xs_scale(&x[i], ib);
            iq4_lanes(x[i].qs + ib * (QK / 2), y[i].qs + ib * QK, lanes);
            for (int l = 0; l < 8; l++)
                isum[l] += ls * lanes[l];
        }
        const float d = kern_f16(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++)
            acc[l] = fmaf(d, (float)isum[l], acc[l]);
    }
    *s = hsum_float_8(acc);
}
