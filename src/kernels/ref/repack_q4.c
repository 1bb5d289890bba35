/* repack_q4.c - Q4_0 and Q5_0 weights repacked at load in groups of 16 interleaved
 * rows (the layout kern_impl.h describes): the pack (the file's nibbles
 * moved, not changed), the row dequantizer (get_rows) and the reference
 * gemm over the packed groups, which defines the order every variant
 * reproduces bit for bit: the Q4_0 panel's (one accumulator per output, one
 * fmaf per block of fl(d_w * d_x) times the exact integer block dot). The
 * SIMD gemms (x86/avx2/rp_q4.c, x86/avx512/rp_q4_avx512.c) use this file's
 * pack and row_to_float. */
#include <math.h>
#include <string.h>

#include "kernels/kern_impl.h"

#define R KERN_Q4R_ROWS

size_t kern_q4r_group_bytes(int64_t k)
{
    const size_t nb = (size_t)(k / KERN_QK);
    return (nb + 1) / 2 * KERN_Q4R_PAIR;
}

void kern_q4r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst)
{
    const int64_t nb = k / KERN_QK;
    uint8_t *q = dst;
    memset(dst, 0, kern_q4r_group_bytes(k));
    for (int64_t r = 0; r < R; r++) {
        const block_q4_0 *b = r < n ? (const block_q4_0 *)((const char *)w + (size_t)r * w_stride) : NULL;
        for (int64_t ib = 0; ib < nb; ib++) {
            for (int c = 0; c < 4; c++) { /* a padded row: q = 0 (nibbles 8), d = 0 */
                uint8_t *dst4 = q + kern_q4r_qoff(ib) + (size_t)c * 64 + (size_t)r * 4;
                if (b)
                    memcpy(dst4, b[ib].qs + 4 * c, 4);
                else
                    memset(dst4, 0x88, 4);
            }
            if (b)
                memcpy(q + kern_q4r_doff(ib) + 2 * r, &b[ib].d, 2);
        }
    }
}

/* element j (0..31) of block ib, row lane: the stored nibble (q + 8) */
static inline int nib_at(const uint8_t *grp, int64_t ib, int lane, int j)
{
    const uint8_t byte = grp[kern_q4r_qoff(ib) + (size_t)((j % 16) / 4) * 64 + (size_t)lane * 4 + (size_t)(j % 4)];
    return j < 16 ? byte & 0x0F : byte >> 4;
}

static inline float d_at(const uint8_t *grp, int64_t ib, int lane)
{
    kern_half h;
    memcpy(&h, grp + kern_q4r_doff(ib) + 2 * lane, 2);
    return kern_f16(h);
}

void kern_q4r_row_to_float(const void *grp, int lane, float *dst, int64_t k)
{
    const int64_t nb = k / KERN_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float d = d_at(grp, ib, lane);
        for (int j = 0; j < KERN_QK; j++) /* to_float's (q - 8) * d */
            dst[ib * KERN_QK + j] = (float)(nib_at(grp, ib, lane, j) - 8) * d;
    }
}

void kern_ref_q4r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    const int64_t nb = k / KERN_QK;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *q = (const uint8_t *)w + (size_t)(r / R) * w_stride;
        const int lr = (int)(r % R);
        for (int64_t b = 0; b < n_batch; b++) {
            const block_q8_0 *xb = (const block_q8_0 *)((const char *)x + (size_t)b * x_stride);
            float acc = 0.0f;
            for (int64_t ib = 0; ib < nb; ib++) {
                int32_t isum = 0;
                for (int j = 0; j < KERN_QK; j++)
                    isum += (nib_at(q, ib, lr, j) - 8) * xb[ib].qs[j];
                const float m = d_at(q, ib, lr) * kern_f16(xb[ib].d);
                acc = fmaf(m, (float)isum, acc);
            }
            y[(size_t)b * y_stride + (size_t)r] = acc;
        }
    }
}

/* ---- Q5_0: the same nibbles, plus each row's fifth bits transposed
 * (byte t, bit g = element 4g + t), u = q + 16 */

size_t kern_q5r_group_bytes(int64_t k)
{
    const size_t nb = (size_t)(k / KERN_QK);
    return (nb + 1) / 2 * KERN_Q5R_PAIR;
}

void kern_q5r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst)
{
    const int64_t nb = k / KERN_QK;
    uint8_t *q = dst;
    memset(dst, 0, kern_q5r_group_bytes(k));
    for (int64_t r = 0; r < R; r++) {
        const block_q5_0 *b = r < n ? (const block_q5_0 *)((const char *)w + (size_t)r * w_stride) : NULL;
        for (int64_t ib = 0; ib < nb; ib++) {
            uint32_t qh = 0xFFFFFFFFu; /* a padded row: u = 16 (q = 0), d = 0 */
            for (int c = 0; c < 4; c++) {
                uint8_t *dst4 = q + kern_q5r_qoff(ib) + (size_t)c * 64 + (size_t)r * 4;
                if (b)
                    memcpy(dst4, b[ib].qs + 4 * c, 4);
            }
            if (b) {
                memcpy(&qh, b[ib].qh, 4);
                memcpy(q + kern_q5r_doff(ib) + 2 * r, &b[ib].d, 2);
            }
            uint8_t *h = q + kern_q5r_hoff(ib) + (size_t)r * 4;
            for (int e = 0; e < KERN_QK; e++)
                if (qh >> e & 1u)
                    h[e % 4] |= (uint8_t)(1u << (e / 4));
        }
    }
}

/* element j (0..31) of block ib, row lane: u = q + 16 */
static inline int u5_at(const uint8_t *grp, int64_t ib, int lane, int j)
{
    const uint8_t byte = grp[kern_q5r_qoff(ib) + (size_t)((j % 16) / 4) * 64 + (size_t)lane * 4 + (size_t)(j % 4)];
    const uint8_t hb = grp[kern_q5r_hoff(ib) + (size_t)lane * 4 + (size_t)(j % 4)];
    return (j < 16 ? byte & 0x0F : byte >> 4) | ((hb >> (j / 4) & 1) << 4);
}

static inline float d5_at(const uint8_t *grp, int64_t ib, int lane)
{
    kern_half h;
    memcpy(&h, grp + kern_q5r_doff(ib) + 2 * lane, 2);
    return kern_f16(h);
}

void kern_q5r_row_to_float(const void *grp, int lane, float *dst, int64_t k)
{
    const int64_t nb = k / KERN_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float d = d5_at(grp, ib, lane);
        for (int j = 0; j < KERN_QK; j++) /* to_float's (u - 16) * d */
            dst[ib * KERN_QK + j] = (float)(u5_at(grp, ib, lane, j) - 16) * d;
    }
}

void kern_ref_q5r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    const int64_t nb = k / KERN_QK;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *q = (const uint8_t *)w + (size_t)(r / R) * w_stride;
        const int lr = (int)(r % R);
        for (int64_t b = 0; b < n_batch; b++) {
            const block_q8_0 *xb = (const block_q8_0 *)((const char *)x + (size_t)b * x_stride);
            float acc = 0.0f;
            for (int64_t ib = 0; ib < nb; ib++) {
                int32_t isum = 0;
                for (int j = 0; j < KERN_QK; j++)
                    isum += (u5_at(q, ib, lr, j) - 16) * xb[ib].qs[j];
                acc = fmaf(d5_at(q, ib, lr) * kern_f16(xb[ib].d), (float)isum, acc);
            }
            y[(size_t)b * y_stride + (size_t)r] = acc;
        }
    }
}
