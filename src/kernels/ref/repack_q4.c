/* repack_q4.c - Q4_0 and Q5_0 weights repacked at load in groups of 16 interleaved
 * rows (the layout kern_impl.h describes): the pack (the file's nibbles
 * moved, not changed), the row dequantizer (get_rows) and the reference
 * gemm over the packed groups, which defines the order every variant
 * reproduces bit for bit: the Q4_0 panel's (one accumulator per output, one
 * fmaf per block of fl(d_w * d_x) times the exact integer block dot). The
 * SIMD gemms (x86/avx2/rp_q4.c, x86/avx512/rp_q4_avx512.c) use this file's
 * pack and row_to_float. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kern_impl.h"

#define R KERN_Q4R_ROWS
static_assert(offsetof(block_q4_0, d) == 0 && offsetof(block_q5_0, d) == 0, "pack copies d from a block's start");

size_t kern_q4r_group_bytes(int64_t k) { return (size_t)(k / KERN_QK + 1) / 2 * KERN_Q4R_PAIR; }
size_t kern_q5r_group_bytes(int64_t k) { return (size_t)(k / KERN_QK + 1) / 2 * KERN_Q5R_PAIR; }

/* Q5_0 adds each row's fifth bits transposed (byte t, bit g = element
 * 4g + t). A padded row is q = 0 (u = 8: nibbles 8; u = 16: nibbles 0 and
 * every fifth bit), d = 0. */
static void pack(bool five, const void *w, size_t w_stride, int64_t n, int64_t k, void *dst)
{
    const int64_t nb = k / KERN_QK;
    const size_t bsz = five ? sizeof(block_q5_0) : sizeof(block_q4_0);
    uint8_t *q = dst;
    memset(dst, 0, five ? kern_q5r_group_bytes(k) : kern_q4r_group_bytes(k));
    for (int64_t r = 0; r < R; r++) {
        const char *row = r < n ? (const char *)w + (size_t)r * w_stride : NULL;
        for (int64_t ib = 0; ib < nb; ib++) {
            const char *blk = row ? row + (size_t)ib * bsz : NULL;
            const uint8_t *qs = !blk ? NULL : five ? ((const block_q5_0 *)blk)->qs : ((const block_q4_0 *)blk)->qs;
            const size_t qo = five ? kern_q5r_qoff(ib) : kern_q4r_qoff(ib);
            for (int c = 0; c < 4; c++) {
                uint8_t *dst4 = q + qo + (size_t)c * 64 + (size_t)r * 4;
                if (qs)
                    memcpy(dst4, qs + 4 * c, 4);
                else if (!five)
                    memset(dst4, 0x88, 4);
            }
            if (blk) /* d is each block's first field */
                memcpy(q + (five ? kern_q5r_doff(ib) : kern_q4r_doff(ib)) + 2 * r, blk, 2);
            if (five) {
                uint32_t qh = 0xFFFFFFFFu;
                if (blk)
                    memcpy(&qh, ((const block_q5_0 *)blk)->qh, 4);
                uint8_t *h = q + kern_q5r_hoff(ib) + (size_t)r * 4;
                for (int e = 0; e < KERN_QK; e++)
                    if (qh >> e & 1u)
                        h[e % 4] |= (uint8_t)(1u << (e / 4));
            }
        }
    }
}

void kern_q4r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst) { pack(false, w, w_stride, n, k, dst); }
void kern_q5r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst) { pack(true, w, w_stride, n, k, dst); }

/* ---- shared by both layouts (five: Q5_0's, with the fifth bits) */

/* element j (0..31) of block ib, row lane: u = q + 8 (Q4_0) or q + 16 (Q5_0) */
static inline int u_at(bool five, const uint8_t *grp, int64_t ib, int lane, int j)
{
    const size_t qo = five ? kern_q5r_qoff(ib) : kern_q4r_qoff(ib);
    const uint8_t byte = grp[qo + (size_t)((j % 16) / 4) * 64 + (size_t)lane * 4 + (size_t)(j % 4)];
    const int nib = j < 16 ? byte & 0x0F : byte >> 4;
    if (!five)
        return nib;
    const uint8_t hb = grp[kern_q5r_hoff(ib) + (size_t)lane * 4 + (size_t)(j % 4)];
    return nib | ((hb >> (j / 4) & 1) << 4);
}

static inline float d_at(bool five, const uint8_t *grp, int64_t ib, int lane)
{
    kern_half h;
    memcpy(&h, grp + (five ? kern_q5r_doff(ib) : kern_q4r_doff(ib)) + 2 * lane, 2);
    return kern_f16(h);
}

static void row_to_float(bool five, const void *grp, int lane, float *dst, int64_t k)
{
    const int off = five ? 16 : 8;
    const int64_t nb = k / KERN_QK;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float d = d_at(five, grp, ib, lane);
        for (int j = 0; j < KERN_QK; j++) /* to_float's (u - off) * d */
            dst[ib * KERN_QK + j] = (float)(u_at(five, grp, ib, lane, j) - off) * d;
    }
}

static void ref_gemm(bool five, int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                     const void *x, size_t x_stride, float *y, size_t y_stride)
{
    const int off = five ? 16 : 8;
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
                    isum += (u_at(five, q, ib, lr, j) - off) * xb[ib].qs[j];
                const float m = d_at(five, q, ib, lr) * kern_f16(xb[ib].d);
                acc = fmaf(m, (float)isum, acc);
            }
            y[(size_t)b * y_stride + (size_t)r] = acc;
        }
    }
}

void kern_q4r_row_to_float(const void *grp, int lane, float *dst, int64_t k) { row_to_float(false, grp, lane, dst, k); }
void kern_q5r_row_to_float(const void *grp, int lane, float *dst, int64_t k) { row_to_float(true, grp, lane, dst, k); }

void kern_ref_q4r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    ref_gemm(false, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

void kern_ref_q5r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    ref_gemm(true, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

const struct kern_repack kern_ref_q4_0_rp = {R, kern_q4r_group_bytes, kern_q4r_pack, kern_q4r_row_to_float,
                                             kern_ref_q4r_gemm};
const struct kern_repack kern_ref_q5_0_rp = {R, kern_q5r_group_bytes, kern_q5r_pack, kern_q5r_row_to_float,
                                             kern_ref_q5r_gemm};
