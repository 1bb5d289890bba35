/* panel_avx512.c - the AVX-512 VNNI panel gemm (ops->gemm_ws, prefill) of
 * Q4_0 and Q5_0: AVX2's two-order panel (q_simple.c) widened to 16 weight
 * rows per register. A group of 16 weight rows is unpacked once per call
 * into unsigned quants u = q + OFF (OFF 8 or 16) interleaved in 4-byte units
 * (vector g of a block holds elements 4g..4g+3 of each of the 16 rows); per
 * block and activation row the 8 vpdpbusd against broadcasts of 4
 * activation bytes, started from -OFF * sum(y), leave every row's exact
 * integer block dot in one lane, then one FMA with fl(d_w * d_x). The same
 * integers and float operations as the AVX2 panel, so the same bits
 * (test_kernels compares them by memcmp); the float order differs from
 * vec_dot's as AVX2's does (docs/PARITY.md). The row gemm the AVX-512 fill
 * chose stays for batches below the panel's and for rows too long for the
 * workspace. */
#include "kernels/x86/avx512/avx512_pair.h" /* not avx512_util.h: test_panel_emu emulates what this file uses */

#define P0_ROWS 16
#define P0_NR 8                        /* activation rows per tile */
#define P0_XS_BYTES ((size_t)24 << 10) /* end of the workspace: per activation row and block */
#define P0_MIN_BATCH 16                /* bench_kernels: 8 rows ran faster on the row gemm */

struct p0_blk {
    uint8_t v[8][64]; /* vector g: rows 0..15, 4 bytes each */
    float d[16];      /* the rows' scales */
};
static_assert(sizeof(struct p0_blk) % 64 == 0, "p0_blk keeps 64-byte alignment");

/* per activation row and block: -OFF * sum(y), and d_x as float */
struct p0_x {
    int32_t ys;
    float dx;
};

typedef void (*p0_unpack_fn)(const void *blk, uint8_t u[32], float *d);

static void q4_0_unpack16(const void *vb, uint8_t u[32], float *d)
{
    const block_q4_0 *b = vb;
    _mm256_storeu_si256((__m256i *)u, avx2_nibbles(b->qs));
    *d = avx2_h2f(b->d);
}

static void q5_0_unpack16(const void *vb, uint8_t u[32], float *d)
{
    const block_q5_0 *b = vb;
    /* value + 16 = nibble | (bit << 4) */
    const __m256i hb = _mm256_and_si256(avx2_bits_to_bytes(b->qh), _mm256_set1_epi8(0x10));
    _mm256_storeu_si256((__m256i *)u, _mm256_or_si256(avx2_nibbles(b->qs), hb));
    *d = avx2_h2f(b->d);
}

static void p0_build(p0_unpack_fn unpack, size_t bsz, const char *const *rows, int64_t nb,
                     struct p0_blk *p)
{
    for (int64_t ib = 0; ib < nb; ib++) {
        for (int r = 0; r < P0_ROWS; r++) {
            uint8_t u[32];
            unpack(rows[r] + (size_t)ib * bsz, u, &p[ib].d[r]);
            for (int g = 0; g < 8; g++)
                memcpy(&p[ib].v[g][4 * r], &u[4 * g], 4);
        }
    }
}

/* 16 panel rows x nr (1..P0_NR) activation rows: out[j] = the 16 rows'
 * results for activation row j. */
KERN_AI void p0_tile(int nr, int64_t nb, const struct p0_blk *p, const block_q8_0 *const *x,
                     const struct p0_x *const *xs, __m512 *out)
{
    __m512 acc[P0_NR];
    KERN_UNROLL for (int j = 0; j < nr; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i v[8];
        KERN_UNROLL for (int g = 0; g < 8; g++) v[g] = _mm512_load_si512(p[ib].v[g]);
        const __m512 dw = _mm512_load_ps(p[ib].d);
        KERN_UNROLL for (int j = 0; j < nr; j++)
        {
            const int8_t *q = x[j][ib].qs;
            __m512i s = _mm512_set1_epi32(xs[j][ib].ys);
            KERN_UNROLL for (int g = 0; g < 8; g++)
            {
                int32_t y4;
                memcpy(&y4, q + 4 * g, 4);
                s = _mm512_dpbusd_epi32(s, v[g], _mm512_set1_epi32(y4));
            }
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xs[j][ib].dx)),
                                     _mm512_cvtepi32_ps(s), acc[j]);
        }
    }
    KERN_UNROLL for (int j = 0; j < nr; j++) out[j] = acc[j];
}

typedef void (*p0_tile_fn)(int64_t nb, const struct p0_blk *p, const block_q8_0 *const *x,
                           const struct p0_x *const *xs, __m512 *out);
#define P0_TILE_N(N)                                                                               \
    static void p0_tile_##N(int64_t nb, const struct p0_blk *p, const block_q8_0 *const *x,        \
                            const struct p0_x *const *xs, __m512 *out)                             \
    {                                                                                              \
        p0_tile(N, nb, p, x, xs, out);                                                             \
    }
P0_TILE_N(1)
P0_TILE_N(2)
P0_TILE_N(3)
P0_TILE_N(4)
P0_TILE_N(5)
P0_TILE_N(6)
P0_TILE_N(7)
P0_TILE_N(8)
static const p0_tile_fn p0_tiles[P0_NR] = {p0_tile_1, p0_tile_2, p0_tile_3, p0_tile_4,
                                           p0_tile_5, p0_tile_6, p0_tile_7, p0_tile_8};

/* false when one group of 16 rows of k does not fit the workspace */
static bool p0_gemm(p0_unpack_fn unpack, size_t bsz, int off, int64_t k, int64_t r0, int64_t r1,
                    int64_t n_batch, const void *w, size_t w_stride, const void *x, size_t x_stride,
                    float *y, size_t y_stride, void *ws)
{
    const int64_t nb = k / KERN_QK;
    const size_t grp_bytes = (size_t)nb * sizeof(struct p0_blk);
    if ((size_t)nb * P0_NR * sizeof(struct p0_x) > P0_XS_BYTES)
        return false;
    const int64_t ngrp = (int64_t)((KERN_GEMM_WS_BYTES - P0_XS_BYTES) / grp_bytes);
    if (ngrp < 1)
        return false;
    struct p0_blk *panel = ws;
    struct p0_x *xsum = (struct p0_x *)((char *)ws + KERN_GEMM_WS_BYTES - P0_XS_BYTES);
    for (int64_t p0 = r0; p0 < r1; p0 += ngrp * P0_ROWS) {
        const int64_t np = SP_MIN(ngrp * P0_ROWS, r1 - p0), ng = (np + P0_ROWS - 1) / P0_ROWS;
        for (int64_t gi = 0; gi < ng; gi++) {
            const char *rows[P0_ROWS];
            for (int r = 0; r < P0_ROWS; r++) /* a short last group repeats its last row */
                rows[r] =
                    (const char *)w + (size_t)(p0 + SP_MIN(gi * P0_ROWS + r, np - 1)) * w_stride;
            p0_build(unpack, bsz, rows, nb, panel + gi * nb);
        }
        for (int64_t b = 0; b < n_batch; b += P0_NR) {
            const int64_t nr = SP_MIN(P0_NR, n_batch - b);
            const block_q8_0 *xp[P0_NR];
            const struct p0_x *xsp[P0_NR];
            for (int64_t j = 0; j < nr; j++) {
                xp[j] = (const block_q8_0 *)((const char *)x + (size_t)(b + j) * x_stride);
                struct p0_x *xj = xsum + j * nb;
                xsp[j] = xj;
                for (int64_t ib = 0; ib < nb; ib++) {
                    xj[ib].ys = -off * avx2_sum_i8x32(xp[j][ib].qs);
                    xj[ib].dx = avx2_h2f(xp[j][ib].d);
                }
            }
            for (int64_t gi = 0; gi < ng; gi++) {
                __m512 o[P0_NR];
                p0_tiles[nr - 1](nb, panel + gi * nb, xp, xsp, o);
                const int64_t rr = p0 + gi * P0_ROWS, nv = SP_MIN(P0_ROWS, np - gi * P0_ROWS);
                const __mmask16 m = (__mmask16)((1u << nv) - 1);
                for (int64_t j = 0; j < nr; j++)
                    _mm512_mask_storeu_ps(y + (size_t)(b + j) * y_stride + (size_t)rr, m, o[j]);
            }
        }
    }
    return true;
}

/* the row gemm of each type, for what the panel does not take */
static kern_gemm_fn g_rows[2];

static void q4_0_gemm_ws512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,
                            size_t w_stride, const void *x, size_t x_stride, float *y,
                            size_t y_stride, void *ws)
{
    if (!p0_gemm(q4_0_unpack16, sizeof(block_q4_0), 8, k, r0, r1, n_batch, w, w_stride, x, x_stride,
                 y, y_stride, ws))
        g_rows[0](k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

static void q5_0_gemm_ws512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,
                            size_t w_stride, const void *x, size_t x_stride, float *y,
                            size_t y_stride, void *ws)
{
    if (!p0_gemm(q5_0_unpack16, sizeof(block_q5_0), 16, k, r0, r1, n_batch, w, w_stride, x,
                 x_stride, y, y_stride, ws))
        g_rows[1](k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

/* Called last by kern_avx512_fill, with the row gemm the other AVX-512
 * fills chose. */
void kern_avx512_fill_panel(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_panel(struct kern_type_ops *ops, enum gg_type type)
{
    const int slot = type == GG_TYPE_Q4_0 ? 0 : type == GG_TYPE_Q5_0 ? 1 : -1;
    if (slot < 0 || !ops->gemm)
        return;
    g_rows[slot] = ops->gemm;
    ops->gemm_ws = slot == 0 ? q4_0_gemm_ws512 : q5_0_gemm_ws512;
    ops->ws_exact = false; /* AVX2's panel order (docs/PARITY.md) */
    ops->ws_min_batch = P0_MIN_BATCH;
    ops->isa = KERN_ISA_AVX512;
}
