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
#include <math.h>

#include "kernels/x86/avx2/avx2_util.h"
#include "kernels/x86/avx2/tile_s8.h"

#define NRMAX 4

/* the 32 int8 levels of one 32-block from its 16 index bytes */
KERN_AI __m256i iq4_levels(const uint8_t *qs)
{
    /* the 16 index bytes in both lanes, shifted by 0 (low lane) and 4 (high) */
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kern_iq4nl_values));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i idx = _mm256_and_si256(_mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
    return _mm256_shuffle_epi8(table, idx);
}

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
    if (ib < nb) { /* odd block count: ggml's scalar tail, one fma */
        const __m256i q = iq4_levels(w[ib].qs);
        const __m256i a = _mm256_sign_epi8(q, q);
        const float d = avx2_h2f(w[ib].d);
        KERN_UNROLL for (int i = 0; i < nr; i++) {
            const __m256i y = _mm256_loadu_si256((const __m256i *)x[i][ib].qs);
            const int sumi = avx2_hsum_epi32(avx2_dot_us8(a, _mm256_sign_epi8(y, q)));
            out[i] = fmaf(avx2_h2f(x[i][ib].d) * d, (float)sumi, out[i]);
        }
    }
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
    if (ib < nb) { /* odd block count: ggml's scalar tail, one fma */
        const __m256i y = _mm256_loadu_si256((const __m256i *)x[ib].qs);
        const float dy = avx2_h2f(x[ib].d);
        KERN_UNROLL for (int r = 0; r < nw; r++) {
            const __m256i q = iq4_levels(w[r][ib].qs);
            const int sumi = avx2_hsum_epi32(avx2_dot_us8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)));
            out[r] = fmaf(dy * avx2_h2f(w[r][ib].d), (float)sumi, out[r]);
        }
    }
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
    if (nb & 1) { /* odd block count: ggml's scalar tail, one fma */
        const int64_t ib = nb - 1;
        KERN_UNROLL for (int r = 0; r < nr; r++) {
            const __m256i q = iq4_levels(w[r][ib].qs), aq = _mm256_sign_epi8(q, q);
            KERN_UNROLL for (int c = 0; c < nc; c++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)x[c][ib].qs);
                const int sumi = avx2_hsum_epi32(avx2_dot_us8(aq, _mm256_sign_epi8(y, q)));
                o[r * S8T_C + c] = fmaf(dy[c][ib] * dw[r][ib], (float)sumi, o[r * S8T_C + c]);
            }
        }
    }
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

void kern_avx2_fill_iq4(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_iq4(struct kern_type_ops *ops, enum gg_type type)
{
    switch (type) {
    case GG_TYPE_IQ4_NL:
        ops->vec_dot = iq4_nl_vec_dot;
        ops->gemm = iq4_nl_gemmd;
        ops->gemm_ws = iq4_nl_gemm_ws;
        break;
    case GG_TYPE_IQ4_XS:
        ops->vec_dot = iq4_xs_vec_dot;
        ops->gemm = iq4_xs_gemm;
        break;
    default:
        return;
    }
    ops->isa = KERN_ISA_AVX2;
}
