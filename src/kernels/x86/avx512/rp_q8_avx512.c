/* rp_q8_avx512.c - the AVX-512 VNNI gemm over Q8_0 weights repacked at load
 * (ops->rp; layout and order in kern_impl.h, reference in
 * ref/repack_q8.c). A group holds 16 interleaved rows, so vector g of a
 * block is elements 4g..4g+3 of each of the 16 rows, stored as u = q + 128:
 * one vpdpbusd against a broadcast of the activation's 4 bytes, started from
 * -128 * their sum, leaves in each row's lane the exact integer that ggml's
 * x86 Q8_0 dot keeps in its lane g; the 8 lanes are 8 accumulators here,
 * one FMA per block with fl(d_w * d_x) each, and the final hsum_float_8 tree
 * is done on whole vectors: vec_dot's bits (the reference and AVX2 kernels',
 * ggml's) for every batch size and row range (test_repack, memcmp). A
 * group is one sequential stream (scales beside their quants), which the
 * hardware prefetcher follows in decode: software prefetch 4, 8 or 16 blocks
 * ahead streamed 256 MB slower (bench_kernels dram: 2 threads 25-28 GB/s
 * against 28-33 without); tiles of 2-3 rows prefetch (QR_PF). Batches take tiles of 16 rows x up to 3 activation rows
 * (24 accumulators) over spans of groups small enough to stay in L2 while
 * every tile passes. Uses only intrinsics
 * that tests/kernels/avx512_emu.h emulates (test_repack runs this file over
 * it on AVX2 machines; rp_drive512.h's asm is replaced there). */
#include "kernels/x86/avx512/rp_drive512.h"

#define QR_NR 3                           /* activation rows per tile */
/* pairs of blocks prefetched ahead by tiles of several activation rows
 * (their long blocks keep few loads in flight; rp_q4_avx512.c measured it) */
#define QR_PF 2

/* per activation row and block: -128 * the sum of each 4 bytes, and d_x */
struct qr_x {
    int32_t c[8];
    float dx;
};

/* one group x nr (1..QR_NR) activation rows: out[j] = its 16 rows' results */
KERN_AI void qr_tile(int nr, int64_t nb, const uint8_t *q, const block_q8_0 *const *x, const void *const *xsv,
                     __m512 *out)
{
    const struct qr_x *xs[QR_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) xs[j] = xsv[j];
    __m512 acc[QR_NR][8];
    KERN_UNROLL for (int j = 0; j < nr; j++) KERN_UNROLL for (int g = 0; g < 8; g++) acc[j][g] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *p = q + kern_q8r_qoff(ib);
        if (nr > 1 && (ib & 1) == 0 && ib + 2 * QR_PF < nb) /* see QR_PF */
            avx2_prefetch_part(p + QR_PF * KERN_Q8R_PAIR, KERN_Q8R_PAIR, true, 0, 1);
        const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + kern_q8r_doff(ib))));
        __m512 m[QR_NR];
        KERN_UNROLL for (int j = 0; j < nr; j++) m[j] = _mm512_mul_ps(dw, _mm512_set1_ps(xs[j][ib].dx));
        KERN_UNROLL for (int g = 0; g < 8; g++)
        {
            const __m512i v = _mm512_load_si512(p + 64 * g);
            KERN_UNROLL for (int j = 0; j < nr; j++)
            {
                int32_t y4;
                memcpy(&y4, x[j][ib].qs + 4 * g, 4);
                const __m512i s = _mm512_dpbusd_epi32(_mm512_set1_epi32(xs[j][ib].c[g]), v, _mm512_set1_epi32(y4));
                acc[j][g] = _mm512_fmadd_ps(m[j], _mm512_cvtepi32_ps(s), acc[j][g]);
            }
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) /* hsum_float_8: ((0+4)+(2+6))+((1+5)+(3+7)) */
        out[j] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[j][4], acc[j][0]), _mm512_add_ps(acc[j][6], acc[j][2])),
                               _mm512_add_ps(_mm512_add_ps(acc[j][5], acc[j][1]), _mm512_add_ps(acc[j][7], acc[j][3])));
}

#define QR_TILE_N(N)                                                                                     \
    static void qr_tile_##N(int64_t nb, const uint8_t *q, const block_q8_0 *const *x, const void *const *xs, \
                            __m512 *out)                                                                 \
    {                                                                                                    \
        qr_tile(N, nb, q, x, xs, out);                                                                   \
    }
QR_TILE_N(1)
QR_TILE_N(2)
QR_TILE_N(3)
static const rp512_tile_fn qr_tiles[QR_NR] = {qr_tile_1, qr_tile_2, qr_tile_3};

static void qr_sums(int64_t nb, const block_q8_0 *x, void *xsv)
{
    struct qr_x *xs = xsv;
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)x[ib].qs);
        const __m256i s4 = avx2_dot_us8(ones8, yv); /* sums of 4 */
        _mm256_storeu_si256((__m256i *)xs[ib].c, _mm256_mullo_epi32(s4, _mm256_set1_epi32(-128)));
        xs[ib].dx = avx2_h2f(x[ib].d);
    }
}

static const struct rp512_kind q8r_kind = {KERN_QK, QR_NR, sizeof(struct qr_x), qr_sums, qr_tiles, kern_ref_q8r_gemm};

static void q8r_gemm512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    rp512_gemm(&q8r_kind, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);
}

static const struct kern_repack q8r_avx512 = {
    .rows = KERN_Q8R_ROWS,
    .group_bytes = kern_q8r_group_bytes,
    .pack = kern_q8r_pack,
    .row_to_float = kern_q8r_row_to_float,
    .gemm = q8r_gemm512,
};

/* Q8_0 on AVX-512: weights are repacked at load (the backend's bind). */
void kern_avx512_fill_repack(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_repack(struct kern_type_ops *ops, enum gg_type type)
{
    if (type == GG_TYPE_Q8_0)
        ops->rp = &q8r_avx512;
}
