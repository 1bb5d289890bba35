/* repack_q8.c - Q8_0 weights repacked at load in groups of 16 interleaved
 * rows (the layout kern_impl.h describes): the pack, the row dequantizer
 * (for get_rows on a repacked embedding) and the reference gemm over the
 * packed groups, which sums each output exactly as kern_ref_vec_dot_q8_0
 * (ggml's x86 order: 8 lanes of 4-product integer sums, one fmaf per block
 * and lane, hsum_float_8), so repacking changes no bit. The SIMD gemm
 * (x86/avx512/rp_q8_avx512.c) uses this file's pack and row_to_float. */
#include <math.h>
#include <string.h>

#include "kernels/kern_impl.h"

#define R KERN_Q8R_ROWS
#define VEC_BYTES (4 * R) /* one vector: 4 bytes of each row */

size_t kern_q8r_group_bytes(int64_t k)
{
    const size_t nb = (size_t)(k / KERN_QK);
    return (nb + 1) / 2 * KERN_Q8R_PAIR;
}

void kern_q8r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst)
{
    const int64_t nb = k / KERN_QK;
    uint8_t *q = dst;
    memset(dst, 0, kern_q8r_group_bytes(k));
    for (int64_t r = 0; r < R; r++) {
        const block_q8_0 *b = r < n ? (const block_q8_0 *)((const char *)w + (size_t)r * w_stride) : NULL;
        for (int64_t ib = 0; ib < nb; ib++) {
            uint8_t *blk = q + kern_q8r_qoff(ib) + (size_t)r * 4;
            for (int g = 0; g < 8; g++) { /* 4 quants at a time, q ^ 0x80 each */
                uint32_t v = 0;
                if (b)
                    memcpy(&v, b[ib].qs + 4 * g, 4);
                v ^= 0x80808080u;
                memcpy(blk + g * VEC_BYTES, &v, 4);
            }
            if (b)
                memcpy(q + kern_q8r_doff(ib) + 2 * r, &b[ib].d, 2);
        }
    }
}

static inline kern_half d_at(const uint8_t *grp, int64_t ib, int lane)
{
    kern_half h;
    memcpy(&h, grp + kern_q8r_doff(ib) + 2 * lane, 2);
    return h;
}

static inline int8_t q_at(const uint8_t *blk, int lane, int j)
{
    return (int8_t)(blk[(j / 4) * VEC_BYTES + lane * 4 + j % 4] ^ 0x80u);
}

void kern_q8r_row_to_float(const void *grp, int lane, float *dst, int64_t k)
{
    const int64_t nb = k / KERN_QK;
    const uint8_t *q = grp;
    for (int64_t ib = 0; ib < nb; ib++) {
        const float s = kern_f16(d_at(q, ib, lane));
        const uint8_t *blk = q + kern_q8r_qoff(ib);
        for (int j = 0; j < KERN_QK; j++)
            dst[ib * KERN_QK + j] = (float)q_at(blk, lane, j) * s;
    }
}

void kern_ref_q8r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    (void)ws;
    const int64_t nb = k / KERN_QK;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *q = (const uint8_t *)w + (size_t)(r / R) * w_stride;
        const int lr = (int)(r % R);
        for (int64_t b = 0; b < n_batch; b++) {
            const block_q8_0 *xb = (const block_q8_0 *)((const char *)x + (size_t)b * x_stride);
            float lane[8] = {0};
            for (int64_t ib = 0; ib < nb; ib++) {
                const uint8_t *blk = q + kern_q8r_qoff(ib);
                const float m = kern_f16(d_at(q, ib, lr)) * kern_f16(xb[ib].d);
                for (int g = 0; g < 8; g++) {
                    int32_t isum = 0;
                    for (int j = 4 * g; j < 4 * g + 4; j++)
                        isum += (int32_t)q_at(blk, lr, j) * xb[ib].qs[j];
                    lane[g] = fmaf(m, (float)isum, lane[g]);
                }
            }
            const float acc = ((lane[4] + lane[0]) + (lane[6] + lane[2])) + ((lane[5] + lane[1]) + (lane[7] + lane[3]));
            y[(size_t)b * y_stride + (size_t)r] = acc;
        }
    }
}

const struct kern_repack kern_ref_q8_0_rp = {
    .rows = R,
    .group_bytes = kern_q8r_group_bytes,
    .pack = kern_q8r_pack,
    .row_to_float = kern_q8r_row_to_float,
    .gemm = kern_ref_q8r_gemm,
};
