/* q_iq4.c - AVX2 dot products of IQ4_NL (x Q8_0) and IQ4_XS (x Q8_K), bit for
 * bit the reference's (ref/quant_iq4.c: ggml's AVX2 order). The 4-bit
 * indices of a 32-block become int8 levels with one pshufb into the 16-entry
 * table (low nibbles -> elements 0..15, high -> 16..31), are multiplied with
 * up to 4 activation rows (|q| maddubs sign(y, q)), and reduced to 8 int32
 * lanes of 4-product sums:
 * - IQ4_NL: one fma per block and lane, even blocks into one accumulator,
 *   odd ones into another; an odd last block in scalar;
 * - IQ4_XS: lanes scaled in integers by each 32-block's 6-bit scale
 *   (pmaddwd), one fma per super-block and lane.
 * Integer sums are exact and every float operation is the reference's, so
 * the results are identical. Compiled with -mavx2 -mfma -mf16c. */
#include "kernels/x86/avx2/avx2_util.h"
#include "kernels/x86/avx2/tile_s8.h"

#define NRMAX 4

/* ---- IQ4_NL x Q8_0 */
KERN_AI void iq4_nl_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out)
{
    const block_iq4_nl *w = vw;
    const block_q8_0 *x[NRMAX];
    __m256 acc1[NRMAX], acc2[NRMAX];
    KERN_UNROLL for (int i = 0; i < nr; i++) {
        x[i] = vx[i];
        acc1[i] = _mm256_setzero_ps();
        acc2[i] = _mm256_setzero_ps();
    }
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        const __m256i q1 = iq4_levels(w[ib].qs), q2 = iq4_levels(w[ib + 1].qs);
        const __m256i a1 = _mm256_sign_epi8(q1, q1), a2 = _mm256_sign_epi8(q2, q2);
        const float d1 = avx2_h2f(w[ib].d), d2 = avx2_h2f(w[ib + 1].d);
        KERN_UNROLL for (int i = 0; i < nr; i++) {
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);
            const __m256i y2 = _mm256_loadu_si256((const __m256i *)x[i][ib + 1].qs);
            const __m256i p1 = avx2_dot_us8(a1, _mm256_sign_epi8(y1, q1));
            const __m256i p2 = avx2_dot_us8(a2, _mm256_sign_epi8(y2, q2));
            acc1[i] = _mm256_fmadd_ps(_mm256_set1_ps(avx2_h2f(x[i][ib].d) * d1), _mm256_cvtepi32_ps(p1), acc1[i]);
            acc2[i] = _mm256_fmadd_ps(_mm256_set1_ps(avx2_h2f(x[i][ib + 1].d) * d2), _mm256_cvtepi32_ps(p2),
                                      acc2[i]);
        }
    }
    KERN_UNROLL for (int i = 0; i < nr; i++)
        out[i] = avx2_hsum_ps(_mm256_add_ps(acc1[i], acc2[i]));
    if (ib < nb) /* odd block count: ggml's scalar tail, one fma */
        KERN_UNROLL for (int i = 0; i < nr; i++) out[i] = iq4_nl_tail(&w[ib], &x[i][ib], out[i]);
}
KERN_AVX2_DRIVER(iq4_nl, iq4_nl_kern, KERN_QK)

/* ---- IQ4_NL decode (gemm with n_batch 1): 4 weight rows per pass against the
 * one activation row, each row with the arithmetic of iq4_nl_kern (even and
 * odd blocks in two accumulators, the same lanes, scales and tail), so the
 * results are bit-identical to vec_dot; the rows' FMA chains overlap, the
 * activation blocks and scales are loaded once for all rows, and the next rows
 * are prefetched in step (4 rows side by side are short runs the hardware
 * prefetcher does not follow). */
KERN_AI void iq4_nl_dec_kern(int nw, int64_t nb, const char *wp, size_t w_stride, const block_q8_0 *x, float *out)
{
    const block_iq4_nl *w[4];
    __m256 acc1[4], acc2[4];
    KERN_UNROLL for (int r = 0; r < nw; r++) {
        w[r] = (const block_iq4_nl *)(const void *)(wp + (size_t)r * w_stride);
        acc1[r] = _mm256_setzero_ps();
        acc2[r] = _mm256_setzero_ps();
    }
    const char *pf = wp + (size_t)nw * w_stride; /* the next rows, as q_simple.c's DEC_PREFETCH */
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        KERN_UNROLL for (size_t o = 0; o < (size_t)nw * 2 * sizeof(block_iq4_nl); o += 64)
            _mm_prefetch(pf + (size_t)ib * (size_t)nw * sizeof(block_iq4_nl) + o, _MM_HINT_T0);
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)x[ib].qs);
        const __m256i y2 = _mm256_loadu_si256((const __m256i *)x[ib + 1].qs);
        const float dy1 = avx2_h2f(x[ib].d), dy2 = avx2_h2f(x[ib + 1].d);
        KERN_UNROLL for (int r = 0; r < nw; r++) {
            const __m256i q1 = iq4_levels(w[r][ib].qs), q2 = iq4_levels(w[r][ib + 1].qs);
            const __m256i p1 = avx2_dot_us8(_mm256_sign_epi8(q1, q1), _mm256_sign_epi8(y1, q1));
            const __m256i p2 = avx2_dot_us8(_mm256_sign_epi8(q2, q2), _mm256_sign_epi8(y2, q2));
            acc1[r] = _mm256_fmadd_ps(_mm256_set1_ps(dy1 * avx2_h2f(w[r][ib].d)), _mm256_cvtepi32_ps(p1), acc1[r]);
            acc2[r] = _mm256_fmadd_ps(_mm256_set1_ps(dy2 * avx2_h2f(w[r][ib + 1].d)), _mm256_cvtepi32_ps(p2),
                                      acc2[r]);
        }
    }
    KERN_UNROLL for (int r = 0; r < nw; r++) out[r] = avx2_hsum_ps(_mm256_add_ps(acc1[r], acc2[r]));
    if (ib < nb) /* odd block count: ggml's scalar tail, one fma */
        KERN_UNROLL for (int r = 0; r < nw; r++) out[r] = iq4_nl_tail(&w[r][ib], &x[ib], out[r]);
}

static void iq4_nl_dec4(int64_t nb, const char *w, size_t ws, const block_q8_0 *x, float *o)
{
    iq4_nl_dec_kern(4, nb, w, ws, x, o);
}
static void iq4_nl_dec1(int64_t nb, const char *w, size_t ws, const block_q8_0 *x, float *o)
{
    iq4_nl_dec_kern(1, nb, w, ws, x, o);
}

/* ---- IQ4_NL batches (n_batch >= 2): tile_s8.h's 3 x 3 register tile over
 * the levels, in iq4_nl_kern's order: a pass over the even blocks of the
 * pairs into one set of accumulators, a pass over the odd ones into another
 * (the two chains are independent, so two passes give the same bits as one
 * interleaved pass), added before the hsum, and an odd last block's scalar
 * fma. The scales are stored in the order the passes walk them
 * (s8t_row_scales with pairs: even blocks, odd blocks, the last). */
KERN_AI __m256i iq4_nl_lv(const block_iq4_nl *b) { return iq4_levels(b->qs); }
S8T_CORE(iq4_nl, block_iq4_nl, iq4_nl_lv)
KERN_AI void iq4_nl_s8tile(int nr, int nc, int64_t nb, const block_iq4_nl *const *w, const block_q8_0 *const *x,
                           const float *const *dw, const float *const *dy, float *o)
{
    const int64_t np = nb / 2;
    const block_iq4_nl *w1[S8T_R];
    const block_q8_0 *x1[S8T_C];
    const float *dw1[S8T_R], *dy1[S8T_C];
    KERN_UNROLL for (int r = 0; r < nr; r++) {
        w1[r] = w[r] + 1;
        dw1[r] = dw[r] + np;
    }
    KERN_UNROLL for (int c = 0; c < nc; c++) {
        x1[c] = x[c] + 1;
        dy1[c] = dy[c] + np;
    }
    __m256 a1[S8T_R][S8T_C], a2[S8T_R][S8T_C];
    iq4_nl_s8t(nr, nc, np, 2, w, x, dw, dy, a1);
    iq4_nl_s8t(nr, nc, np, 2, w1, x1, dw1, dy1, a2);
    KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) o[r * S8T_C + c] =
        avx2_hsum_ps(_mm256_add_ps(a1[r][c], a2[r][c]));
    if (nb & 1) /* odd block count: ggml's scalar tail, one fma */
        KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) o[r * S8T_C + c] =
            iq4_nl_tail(&w[r][nb - 1], &x[c][nb - 1], o[r * S8T_C + c]);
}
S8T_GEMM(iq4_nl, block_iq4_nl, iq4_nl_s8tile, true)

static void iq4_nl_gemmd(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t y_stride)
{
    if (n_batch != 1) {
        if (!iq4_nl_gemmt(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride))
            iq4_nl_gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
        return;
    }
    const int64_t nb = k / KERN_QK;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4)
        iq4_nl_dec4(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);
    for (; r < r1; r++)
        iq4_nl_dec1(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);
}

S8P_UNPACKER(iq4_nl, block_iq4_nl, iq4_nl_lv, true)
/* ops->gemm_ws: the same tile from aligned copies, the levels unpacked once per panel (tile_s8.c) */
static void iq4_nl_gemm_ws(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    if (!kern_avx2_s8p_gemm(iq4_nl_s8p_row, true, k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws))
        iq4_nl_gemmd(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

/* ---- IQ4_XS x Q8_K */
KERN_AI void iq4_xs_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out)
{
    const block_iq4_xs *w = vw;
    const block_q8_K *x[NRMAX];
    __m256 acc[NRMAX];
    KERN_UNROLL for (int i = 0; i < nr; i++) {
        x[i] = vx[i];
        acc[i] = _mm256_setzero_ps();
    }
    for (int64_t ibl = 0; ibl < nb; ibl++) {
        __m256i sumi[NRMAX];
        KERN_UNROLL for (int i = 0; i < nr; i++)
            sumi[i] = _mm256_setzero_si256();
        unsigned sh = w[ibl].scales_h;
        for (int ib = 0; ib < KERN_QK_K / KERN_QK; ib += 2) {
            const __m256i q1 = iq4_levels(w[ibl].qs + 16 * ib), q2 = iq4_levels(w[ibl].qs + 16 * ib + 16);
            const __m256i a1 = _mm256_sign_epi8(q1, q1), a2 = _mm256_sign_epi8(q2, q2);
            const uint8_t sl = w[ibl].scales_l[ib / 2];
            const __m256i ls1 = _mm256_set1_epi16((short)(((sl & 0xf) | ((sh << 4) & 0x30)) - 32));
            const __m256i ls2 = _mm256_set1_epi16((short)(((sl >> 4) | ((sh << 2) & 0x30)) - 32));
            sh >>= 4;
            KERN_UNROLL for (int i = 0; i < nr; i++) {
                const __m256i y1 = _mm256_loadu_si256((const __m256i *)(x[i][ibl].qs + 32 * ib));
                const __m256i y2 = _mm256_loadu_si256((const __m256i *)(x[i][ibl].qs + 32 * ib + 32));
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(y1, q1)), ls1);
                const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(a2, _mm256_sign_epi8(y2, q2)), ls2);
                sumi[i] = _mm256_add_epi32(sumi[i], _mm256_add_epi32(p1, p2));
            }
        }
        const float d = avx2_h2f(w[ibl].d);
        KERN_UNROLL for (int i = 0; i < nr; i++)
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[i][ibl].d), _mm256_cvtepi32_ps(sumi[i]), acc[i]);
    }
    KERN_UNROLL for (int i = 0; i < nr; i++)
        out[i] = avx2_hsum_ps(acc[i]);
}
KERN_AVX2_DRIVER(iq4_xs, iq4_xs_kern, KERN_QK_K)

/* ---- IQ4_XS panel gemm (ops->gemm_ws, batches of >= KERN_GEMM_WS_MIN_BATCH):
 * a panel of weight rows is unpacked once into the workspace (per
 * super-block: the 8 x 32 int8 levels, each 32-block's 6-bit scale - 32 as an
 * int16 madd vector, d as a float; the role of q_k.c's kp_* panel), the
 * activation rows are copied beside it as aligned 256-byte quant runs with
 * their d, and tiles of up to 2 weight rows x 4 activation rows run from
 * aligned loads with |q| maddubs sign(y, q), madd by the scale vector, add:
 * the same exact int32 lanes per super-block as iq4_xs_kern, then the same
 * fma(d_w * d_y, lanes, acc) per super-block and the same hsum, so the results
 * are bit-identical to vec_dot. */
struct xsp_sb {
    int8_t q[8][32];   /* levels of the 8 32-blocks */
    int16_t ls[8][16]; /* scale - 32 of each 32-block, in every int16 lane */
    float d;
    uint8_t pad[28];
};
static_assert(sizeof(struct xsp_sb) % 32 == 0, "xsp_sb keeps 32-byte alignment");
struct xsp_act {
    int8_t q[KERN_QK_K];
    float d;
    uint8_t pad[28];
};
static_assert(sizeof(struct xsp_act) % 32 == 0, "xsp_act keeps 32-byte alignment");
/* tile: weight rows x activation rows (2 x 4 measured fastest of 2x3, 2x4, 3x2, 3x3, 3x4, 4x2, 4x3) */
#define XSP_R 2
#define XSP_C 4
#define XSP_MIN_BATCH 16 /* below, the row kernels win (the panel build is not repaid) */
#define XSP_MAX_ROWS 48

static void xsp_build(const block_iq4_xs *w, int64_t nsb, struct xsp_sb *p)
{
    for (int64_t ibl = 0; ibl < nsb; ibl++) {
        unsigned sh = w[ibl].scales_h;
        for (int ib = 0; ib < KERN_QK_K / KERN_QK; ib += 2) {
            const uint8_t sl = w[ibl].scales_l[ib / 2];
            _mm256_store_si256((__m256i *)(void *)p[ibl].q[ib], iq4_levels(w[ibl].qs + 16 * ib));
            _mm256_store_si256((__m256i *)(void *)p[ibl].q[ib + 1], iq4_levels(w[ibl].qs + 16 * ib + 16));
            _mm256_store_si256((__m256i *)(void *)p[ibl].ls[ib],
                               _mm256_set1_epi16((short)(((sl & 0xf) | ((sh << 4) & 0x30)) - 32)));
            _mm256_store_si256((__m256i *)(void *)p[ibl].ls[ib + 1],
                               _mm256_set1_epi16((short)(((sl >> 4) | ((sh << 2) & 0x30)) - 32)));
            sh >>= 4;
        }
        p[ibl].d = avx2_h2f(w[ibl].d);
    }
}

static void xsp_copy_act(const block_q8_K *x, int64_t nsb, struct xsp_act *a)
{
    for (int64_t ibl = 0; ibl < nsb; ibl++) {
        for (int j = 0; j < KERN_QK_K; j += 32)
            _mm256_store_si256((__m256i *)(void *)(a[ibl].q + j),
                               _mm256_loadu_si256((const __m256i *)(const void *)(x[ibl].qs + j)));
        a[ibl].d = x[ibl].d;
    }
}

KERN_AI void xsp_tile(int nr, int nc, int64_t nsb, const struct xsp_sb *const *w, const struct xsp_act *const *x,
                      float *o)
{
    __m256 acc[XSP_R][XSP_C];
    KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t ibl = 0; ibl < nsb; ibl++) {
        __m256i sumi[XSP_R][XSP_C];
        KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) sumi[r][c] =
            _mm256_setzero_si256();
        /* not unrolled: gcc would hoist the loads of all 8 blocks and spill */
        for (int j = 0; j < 8; j++) {
            /* |q| of the rows in registers, q and the scales as memory operands */
            __m256i aq[XSP_R];
            KERN_UNROLL for (int r = 0; r < nr; r++) aq[r] =
                _mm256_abs_epi8(_mm256_load_si256((const __m256i *)(const void *)w[r][ibl].q[j]));
            KERN_UNROLL for (int c = 0; c < nc; c++) {
                const __m256i y = _mm256_load_si256((const __m256i *)(const void *)(x[c][ibl].q + 32 * j));
                KERN_UNROLL for (int r = 0; r < nr; r++) {
                    const __m256i q = _mm256_load_si256((const __m256i *)(const void *)w[r][ibl].q[j]);
                    const __m256i ls = _mm256_load_si256((const __m256i *)(const void *)w[r][ibl].ls[j]);
                    sumi[r][c] = _mm256_add_epi32(
                        sumi[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(y, q)), ls));
                }
            }
        }
        KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) acc[r][c] =
            _mm256_fmadd_ps(_mm256_set1_ps(w[r][ibl].d * x[c][ibl].d), _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
    }
    KERN_UNROLL for (int r = 0; r < nr; r++) KERN_UNROLL for (int c = 0; c < nc; c++) o[r * XSP_C + c] =
        avx2_hsum_ps(acc[r][c]);
}

typedef void (*xsp_tile_fn)(int64_t nsb, const struct xsp_sb *const *w, const struct xsp_act *const *x, float *o);
#define XSP_INST(R, C)                                                                                             \
    static void xsp_t##R##C(int64_t nsb, const struct xsp_sb *const *w, const struct xsp_act *const *x, float *o)  \
    {                                                                                                              \
        xsp_tile(R, C, nsb, w, x, o);                                                                              \
    }
XSP_INST(1, 1)
XSP_INST(1, 2)
XSP_INST(1, 3)
XSP_INST(1, 4)
XSP_INST(2, 1)
XSP_INST(2, 2)
XSP_INST(2, 3)
XSP_INST(2, 4)

/* The panel driver; false when XSP_R weight rows and XSP_C activation rows
 * of k do not fit the workspace (the caller then uses the row kernels). */
static bool xsp_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride, const void *x,
                     size_t x_stride, float *y, size_t y_stride, void *ws)
{
    static const xsp_tile_fn tiles[XSP_R][XSP_C] = {{xsp_t11, xsp_t12, xsp_t13, xsp_t14},
                                                    {xsp_t21, xsp_t22, xsp_t23, xsp_t24}};
    const int64_t nsb = k / KERN_QK_K;
    const size_t wrb = (size_t)nsb * sizeof(struct xsp_sb), xrb = (size_t)nsb * sizeof(struct xsp_act);
    int64_t tile = (int64_t)((24u << 10) / xrb) / XSP_C * XSP_C;
    tile = tile < XSP_C ? XSP_C : tile > 24 ? 24 : tile;
    int64_t prow = (size_t)tile * xrb < KERN_GEMM_WS_BYTES ? (int64_t)((KERN_GEMM_WS_BYTES - (size_t)tile * xrb) / wrb)
                                                           : 0;
    prow = prow > XSP_MAX_ROWS ? XSP_MAX_ROWS : prow;
    if (prow < XSP_R)
        return false;
    struct xsp_act *const xa = ws;
    struct xsp_sb *const wa = (struct xsp_sb *)(void *)((char *)ws + (size_t)tile * xrb);
    for (int64_t p0 = r0; p0 < r1; p0 += prow) {
        const int64_t np = r1 - p0 < prow ? r1 - p0 : prow;
        for (int64_t i = 0; i < np; i++)
            xsp_build((const block_iq4_xs *)(const void *)((const char *)w + (size_t)(p0 + i) * w_stride), nsb,
                      wa + i * nsb);
        for (int64_t b0 = 0; b0 < n_batch; b0 += tile) {
            const int64_t b1 = n_batch - b0 < tile ? n_batch : b0 + tile;
            for (int64_t b = b0; b < b1; b++)
                xsp_copy_act((const block_q8_K *)(const void *)((const char *)x + (size_t)b * x_stride), nsb,
                             xa + (b - b0) * nsb);
            const int64_t nrg = (np + XSP_R - 1) / XSP_R, ncg = (b1 - b0 + XSP_C - 1) / XSP_C;
            for (int64_t r = 0, gr = 0; gr < nrg; gr++) {
                const int nr = (int)(np / nrg + (gr < np % nrg));
                const struct xsp_sb *wp[XSP_R];
                for (int i = 0; i < nr; i++)
                    wp[i] = wa + (r + i) * nsb;
                for (int64_t b = b0, gc = 0; gc < ncg; gc++) {
                    const int nc = (int)((b1 - b0) / ncg + (gc < (b1 - b0) % ncg));
                    const struct xsp_act *xp[XSP_C];
                    float o[XSP_R * XSP_C];
                    for (int j = 0; j < nc; j++)
                        xp[j] = xa + (b + j - b0) * nsb;
                    tiles[nr - 1][nc - 1](nsb, wp, xp, o);
                    for (int j = 0; j < nc; j++)
                        for (int i = 0; i < nr; i++)
                            y[(size_t)(b + j) * y_stride + (size_t)(p0 + r + i)] = o[i * XSP_C + j];
                    b += nc;
                }
                r += nr;
            }
        }
    }
    return true;
}

static void iq4_xs_gemm_ws(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t y_stride, void *ws)
{
    if (n_batch < XSP_MIN_BATCH || !xsp_gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws))
        iq4_xs_gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);
}

void kern_avx2_fill_iq4(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_iq4(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_IQ4_NL:
        ops->vec_dot = iq4_nl_vec_dot;
        ops->gemm = iq4_nl_gemmd;
        ops->gemm_ws = iq4_nl_gemm_ws;
        ops->ws_exact = true; /* vec_dot's bits: decode rows may take it */
        break;
    case GG_TYPE_IQ4_XS:
        ops->vec_dot = iq4_xs_vec_dot;
        ops->gemm = iq4_xs_gemm;
        ops->gemm_ws = iq4_xs_gemm_ws;
        ops->ws_exact = true;
        ops->ws_min_batch = XSP_MIN_BATCH;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX2;
}
