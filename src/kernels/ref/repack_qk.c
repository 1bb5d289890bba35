/* repack_qk.c - Q4_K and Q6_K weights repacked at load in groups of 16
 * interleaved rows (the layouts kern_impl.h describes): the pack (the
 * file's quant bytes moved, not changed; the 6-bit scales and mins spread
 * to one byte each), the row dequantizer (get_rows: the original block is
 * rebuilt and given to to_float, so its bits) and the reference gemm over
 * the packed groups, which defines the order every variant reproduces bit
 * for bit: the K-quant prefill panels' (x86/avx2/panel_k8.c,
 * avx512/panel_k16_avx512.c): per output one accumulator; per super-block
 * the exact integer sum isum of vec_dot, then
 *   acc = fmaf(fl(d * dy), (float)isum, acc)                (Q6_K: isum less
 *                                                            its offset term)
 *   acc = fmaf(-fl(dmin * dy), (float)msum, acc)            (Q4_K only)
 * with msum = sum of min_c * (bsum 2c + bsum 2c+1). The SIMD gemms
 * (x86/avx512/rp_qk_avx512.c; AVX2 keeps views) uses this file's pack and
 * row_to_float. */
#include <math.h>
#include <string.h>

#include "kernels/kern_impl.h"

#define R KERN_QKR_ROWS

size_t kern_q4kr_group_bytes(int64_t k) { return (size_t)(k / KERN_QK_K) * KERN_Q4KR_SB; }
size_t kern_q6kr_group_bytes(int64_t k) { return (size_t)(k / KERN_QK_K) * KERN_Q6KR_SB; }

void kern_q4kr_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst)
{
    const int64_t nsb = k / KERN_QK_K;
    memset(dst, 0, kern_q4kr_group_bytes(k)); /* padded rows: q = 0, scales 0, d = 0 */
    for (int64_t r = 0; r < n && r < R; r++) {
        const block_q4_K *b = (const block_q4_K *)((const char *)w + (size_t)r * w_stride);
        for (int64_t ib = 0; ib < nsb; ib++) {
            uint8_t *s = (uint8_t *)dst + (size_t)ib * KERN_Q4KR_SB;
            for (int v = 0; v < 32; v++) /* vector p * 8 + g: qs[32p + 4g ..] */
                memcpy(s + 64 * v + 4 * r, b[ib].qs + 4 * v, 4);
            for (int c = 0; c < 8; c++) {
                uint8_t sc, m;
                kern_get_scale_min_k4(c, b[ib].scales, &sc, &m);
                s[KERN_Q4KR_SC + 16 * c + r] = sc;
                s[KERN_Q4KR_MN + 32 * (c / 2) + 2 * r + c % 2] = m;
            }
            memcpy(s + KERN_Q4KR_D + 2 * r, &b[ib].d, 2);
            memcpy(s + KERN_Q4KR_DM + 2 * r, &b[ib].dmin, 2);
        }
    }
}

void kern_q6kr_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst)
{
    const int64_t nsb = k / KERN_QK_K;
    /* padded rows: u = 32 (q = 0: high bits 2, so to_float gives +0), scales 0, d = 0 */
    memset(dst, 0, kern_q6kr_group_bytes(k));
    for (int64_t r = n; r < R; r++)
        for (int64_t ib = 0; ib < nsb; ib++)
            for (int v = 0; v < 16; v++)
                memset((uint8_t *)dst + (size_t)ib * KERN_Q6KR_SB + KERN_Q6KR_QHV(v) + 4 * r, 0xAA, 4);
    for (int64_t r = 0; r < n && r < R; r++) {
        const block_q6_K *b = (const block_q6_K *)((const char *)w + (size_t)r * w_stride);
        for (int64_t ib = 0; ib < nsb; ib++) {
            uint8_t *s = (uint8_t *)dst + (size_t)ib * KERN_Q6KR_SB;
            for (int v = 0; v < 32; v++) /* vector p * 8 + g: ql[32p + 4g ..] */
                memcpy(s + KERN_Q6KR_QL(v) + 4 * r, b[ib].ql + 4 * v, 4);
            for (int v = 0; v < 16; v++) /* vector h * 8 + g: qh[32h + 4g ..] */
                memcpy(s + KERN_Q6KR_QHV(v) + 4 * r, b[ib].qh + 4 * v, 4);
            for (int j = 0; j < 16; j++)
                s[KERN_Q6KR_SC + 16 * j + r] = (uint8_t)b[ib].scales[j];
            memcpy(s + KERN_Q6KR_D + 2 * r, &b[ib].d, 2);
        }
    }
}

/* the original block of super-block ib, row lane */
static void q4k_block(const uint8_t *grp, int64_t ib, int lane, block_q4_K *b)
{
    const uint8_t *s = grp + (size_t)ib * KERN_Q4KR_SB;
    uint8_t sc[8], m[8];
    for (int v = 0; v < 32; v++)
        memcpy(b->qs + 4 * v, s + 64 * v + 4 * lane, 4);
    for (int c = 0; c < 8; c++) {
        sc[c] = s[KERN_Q4KR_SC + 16 * c + lane];
        m[c] = s[KERN_Q4KR_MN + 32 * (c / 2) + 2 * lane + c % 2];
    }
    for (int j = 0; j < 4; j++) { /* kern_get_scale_min_k4's packing */
        b->scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        b->scales[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        b->scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
    memcpy(&b->d, s + KERN_Q4KR_D + 2 * lane, 2);
    memcpy(&b->dmin, s + KERN_Q4KR_DM + 2 * lane, 2);
}

static void q6k_block(const uint8_t *grp, int64_t ib, int lane, block_q6_K *b)
{
    const uint8_t *s = grp + (size_t)ib * KERN_Q6KR_SB;
    for (int v = 0; v < 32; v++)
        memcpy(b->ql + 4 * v, s + KERN_Q6KR_QL(v) + 4 * lane, 4);
    for (int v = 0; v < 16; v++)
        memcpy(b->qh + 4 * v, s + KERN_Q6KR_QHV(v) + 4 * lane, 4);
    for (int j = 0; j < 16; j++)
        b->scales[j] = (int8_t)s[KERN_Q6KR_SC + 16 * j + lane];
    memcpy(&b->d, s + KERN_Q6KR_D + 2 * lane, 2);
}

void kern_q4kr_row_to_float(const void *grp, int lane, float *dst, int64_t k)
{
    for (int64_t ib = 0; ib < k / KERN_QK_K; ib++) {
        block_q4_K b;
        q4k_block(grp, ib, lane, &b);
        kern_ref_to_float_q4_K(&b, dst + ib * KERN_QK_K, KERN_QK_K);
    }
}

void kern_q6kr_row_to_float(const void *grp, int lane, float *dst, int64_t k)
{
    for (int64_t ib = 0; ib < k / KERN_QK_K; ib++) {
        block_q6_K b;
        q6k_block(grp, ib, lane, &b);
        kern_ref_to_float_q6_K(&b, dst + ib * KERN_QK_K, KERN_QK_K);
    }
}

/* one output: packed row lane of the group at grp against activation row x */
static float q4k_dot(const uint8_t *grp, int lane, int64_t nsb, const block_q8_K *x)
{
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nsb; ib++) {
        block_q4_K b;
        q4k_block(grp, ib, lane, &b);
        int32_t isum = 0, msum = 0;
        for (int c = 0; c < 8; c++) {
            uint8_t sc, m;
            kern_get_scale_min_k4(c, b.scales, &sc, &m);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
                const uint8_t byte = b.qs[32 * (c / 2) + l];
                dot += (c % 2 ? byte >> 4 : byte & 0xF) * x[ib].qs[32 * c + l];
            }
            isum += sc * dot;
            msum += m * (x[ib].bsums[2 * c] + x[ib].bsums[2 * c + 1]);
        }
        const float dd = kern_f16(b.d) * x[ib].d, dm = kern_f16(b.dmin) * x[ib].d;
        acc = fmaf(dd, (float)isum, acc);
        acc = fmaf(-dm, (float)msum, acc);
    }
    return acc;
}

static float q6k_dot(const uint8_t *grp, int lane, int64_t nsb, const block_q8_K *x)
{
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nsb; ib++) {
        block_q6_K b;
        q6k_block(grp, ib, lane, &b);
        int32_t isum = 0;
        for (int c = 0; c < 8; c++) { /* chunk c = 4h + s */
            const int h = c / 4, s = c % 4;
            for (int half = 0; half < 2; half++) {
                int32_t dot = 0;
                for (int l = 16 * half; l < 16 * half + 16; l++) {
                    const uint8_t lo = b.ql[64 * h + 32 * (s % 2) + l];
                    const int u = (s / 2 ? lo >> 4 : lo & 0xF) | ((b.qh[32 * h + l] >> (2 * s) & 3) << 4);
                    dot += (u - 32) * x[ib].qs[32 * c + l];
                }
                isum += b.scales[2 * c + half] * dot;
            }
        }
        acc = fmaf(kern_f16(b.d) * x[ib].d, (float)isum, acc);
    }
    return acc;
}

static void ref_gemm(bool six, int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                     const void *x, size_t x_stride, float *y, size_t y_stride)
{
    const int64_t nsb = k / KERN_QK_K;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *grp = (const uint8_t *)w + (size_t)(r / R) * w_stride;
        for (int64_t b = 0; b < n_batch; b++) {
            const block_q8_K *xb = (const block_q8_K *)((const char *)x + (size_t)b * x_stride);
            y[(size_t)b * y_stride + (size_t)r] = six ? q6k_dot(grp, (int)(r % R), nsb, xb)
                                                      : q4k_dot(grp, (int)(r % R), nsb, xb);
        }
    }
}

void kern_ref_q4kr_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    ref_gemm(false, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

void kern_ref_q6kr_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    ref_gemm(true, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

const struct kern_repack kern_ref_q4_K_rp = {R, kern_q4kr_group_bytes, kern_q4kr_pack, kern_q4kr_row_to_float,
                                             kern_ref_q4kr_gemm};
const struct kern_repack kern_ref_q6_K_rp = {R, kern_q6kr_group_bytes, kern_q6kr_pack, kern_q6kr_row_to_float,
                                             kern_ref_q6kr_gemm};
