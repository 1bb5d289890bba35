/* q_iq4_avx512.c - AVX-512 (BW, VNNI) dot products of IQ4_NL (x Q8_0) and
 * IQ4_XS (x Q8_K) for vec_dot and decode (n_batch 1), bit for bit the AVX2
 * kernels of q_iq4.c and so the reference's (ggml's AVX2 order).
 * Two 32-blocks share one zmm: the 4-bit indices of both become int8 levels
 * with one vpshufb into the table (block a in bytes 0..31, block b in
 * 32..63), y takes q's sign with one masked subtract, and vpdpbusd(|q|, y)
 * gives per int32 lane the same 4-product sum as AVX2's maddubs + madd (no
 * int16 saturation is possible: |q| <= 127, |y| <= 128). So
 * - IQ4_NL: lanes 0..7 of the float accumulator are AVX2's even-block
 *   accumulator, lanes 8..15 its odd-block one (each fma scaled by its own
 *   block's d_w * d_y); the two halves are added, then summed as AVX2 does;
 * - IQ4_XS: vpmaddubsw then vpdpwssd by the 6-bit scales - 32 (block a's in
 *   the low half, b's in the high one); the halves' int32 sums are added
 *   (exact) before the one fma per super-block, as in AVX2.
 * Decode takes 4 weight rows per pass (one activation load for all, the next
 * rows prefetched in step), like the AVX2 decode kernels. Batches (n_batch
 * >= 2) keep the AVX2 tiles and panels measured on AVX2 (fill captures them):
 * a 512-bit batch tile would need an AVX-512 machine to be measured against.
 * The arithmetic is also checked on AVX2-only machines: test_iq4_emu compiles
 * this file over tests/kernels/avx512_emu.h (each intrinsic in scalar C). */
#include "kernels/x86/avx512/avx512_pair.h"

/* the AVX2 entries of the type (kern_avx512_fill_iq4 captures them) */
static struct {
    kern_gemm_fn gemm;
    kern_gemm_ws_fn gemm_ws;
} g_avx2[2];

KERN_AI __m512i iq4_table512(void)
{
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)kern_iq4nl_values));
}

/* the int8 levels of two 32-blocks from their 16 index bytes each: block a
 * in bytes 0..31 (low nibbles 0..15, high 16..31), block b in 32..63 */
KERN_AI __m512i iq4_levels2(const uint8_t *qa, const uint8_t *qb, __m512i table)
{
    const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)qa));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)qb));
    const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    const __m512i idx =
        _mm512_and_si512(_mm512_srlv_epi64(ab, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(0x0f));
    return _mm512_shuffle_epi8(table, idx);
}

/* y with the sign of q (negated where q < 0): |q| * that = q * y */
KERN_AI __m512i sign_like(__m512i y, __mmask64 qneg)
{
    return _mm512_mask_sub_epi8(y, qneg, _mm512_setzero_si512(), y);
}

/* the low and high 8 lanes added (AVX2's acc1 + acc2), then AVX2's hsum */
KERN_AI float hsum_halves(__m512 v)
{
    return avx2_hsum_ps(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* ---- IQ4_NL x Q8_0 */
/* nw (1..4) weight rows at wp (stride w_stride) against one activation row */
KERN_AI void iq4_nl_dec_kern(int nw, int64_t nb, const char *wp, size_t w_stride, const block_q8_0 *x, float *out)
{
    const block_iq4_nl *w[4];
    __m512 acc[4];
    KERN_UNROLL for (int r = 0; r < nw; r++) {
        w[r] = (const block_iq4_nl *)(const void *)(wp + (size_t)r * w_stride);
        acc[r] = _mm512_setzero_ps();
    }
    const __m512i table = iq4_table512();
    const char *pf = wp + (size_t)nw * w_stride; /* the next rows, read nw times as fast */
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        KERN_UNROLL for (size_t o = 0; o < (size_t)nw * 2 * sizeof(block_iq4_nl); o += 64)
            _mm_prefetch(pf + (size_t)ib * (size_t)nw * sizeof(block_iq4_nl) + o, _MM_HINT_T0);
        const __m512i y = pair512(x[ib].qs, x[ib + 1].qs);
        const float dy0 = avx2_h2f(x[ib].d), dy1 = avx2_h2f(x[ib + 1].d);
        KERN_UNROLL for (int r = 0; r < nw; r++) {
            const __m512i q = iq4_levels2(w[r][ib].qs, w[r][ib + 1].qs, table);
            const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(q),
                                                  sign_like(y, _mm512_movepi8_mask(q)));
            const __m512 d = scale_pair512(dy0 * avx2_h2f(w[r][ib].d), dy1 * avx2_h2f(w[r][ib + 1].d));
            acc[r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc[r]);
        }
    }
    KERN_UNROLL for (int r = 0; r < nw; r++) {
        out[r] = hsum_halves(acc[r]);
        if (ib < nb)
            out[r] = iq4_nl_tail(&w[r][ib], &x[ib], out[r]);
    }
}

/* vec_dot: the decode kernel on one row (its prefetch of the next row is
 * only a hint, never a read) */
static void iq4_nl_vec_dot512(int64_t n, float *s, const void *w, const void *x)
{
    iq4_nl_dec_kern(1, n / KERN_QK, w, 0, x, s);
}

/* ---- IQ4_XS x Q8_K */
/* the 6-bit scales - 32 of 32-blocks ib and ib + 1 as int16 words: block
 * ib's in the low half, ib + 1's in the high one (sh: scales_h >> 2 * ib) */
KERN_AI __m512i iq4_xs_scales2(const block_iq4_xs *b, int ib, unsigned sh)
{
    const uint8_t sl = b->scales_l[ib / 2];
    const __m256i l1 = _mm256_set1_epi16((short)(((sl & 0xf) | ((sh << 4) & 0x30)) - 32));
    const __m256i l2 = _mm256_set1_epi16((short)(((sl >> 4) | ((sh << 2) & 0x30)) - 32));
    return _mm512_inserti64x4(_mm512_castsi256_si512(l1), l2, 1);
}

/* one super-block of one weight row against one activation row: the 8
 * int32 lanes of AVX2's sumi (the two halves added) */
KERN_AI __m256i iq4_xs_sb(const block_iq4_xs *w, const block_q8_K *x, __m512i table)
{
    __m512i sumi = _mm512_setzero_si512();
    unsigned sh = w->scales_h;
    KERN_UNROLL for (int ib = 0; ib < KERN_QK_K / KERN_QK; ib += 2) {
        const __m512i q = iq4_levels2(w->qs + 16 * ib, w->qs + 16 * ib + 16, table);
        const __m512i y = _mm512_loadu_si512((const void *)(x->qs + 32 * ib));
        const __m512i p = _mm512_maddubs_epi16(_mm512_abs_epi8(q), sign_like(y, _mm512_movepi8_mask(q)));
        sumi = _mm512_dpwssd_epi32(sumi, p, iq4_xs_scales2(w, ib, sh));
        sh >>= 4;
    }
    return _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
}

KERN_AI void iq4_xs_dec_kern(int nw, int64_t nb, const char *wp, size_t w_stride, const block_q8_K *x, float *out)
{
    const block_iq4_xs *w[4];
    __m256 acc[4];
    KERN_UNROLL for (int r = 0; r < nw; r++) {
        w[r] = (const block_iq4_xs *)(const void *)(wp + (size_t)r * w_stride);
        acc[r] = _mm256_setzero_ps();
    }
    const __m512i table = iq4_table512();
    const char *pf = wp + (size_t)nw * w_stride;
    for (int64_t ibl = 0; ibl < nb; ibl++) {
        KERN_UNROLL for (size_t o = 0; o < (size_t)nw * sizeof(block_iq4_xs); o += 64)
            _mm_prefetch(pf + (size_t)ibl * (size_t)nw * sizeof(block_iq4_xs) + o, _MM_HINT_T0);
        KERN_UNROLL for (int r = 0; r < nw; r++) {
            const __m256i sumi = iq4_xs_sb(&w[r][ibl], &x[ibl], table);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(avx2_h2f(w[r][ibl].d) * x[ibl].d), _mm256_cvtepi32_ps(sumi),
                                     acc[r]);
        }
    }
    KERN_UNROLL for (int r = 0; r < nw; r++) out[r] = avx2_hsum_ps(acc[r]);
}

static void iq4_xs_vec_dot512(int64_t n, float *s, const void *w, const void *x)
{
    iq4_xs_dec_kern(1, n / KERN_QK_K, w, 0, x, s);
}

/* ---- gemm: decode 4 rows per pass here, batches on the AVX2 entries */
#define IQ4_GEMM512(NAME, SLOT, XT, BLK)                                                                          \
    static void NAME##_dec4(int64_t nb, const char *w, size_t ws, const XT *x, float *o)                        \
    {                                                                                                            \
        NAME##_dec_kern(4, nb, w, ws, x, o);                                                                     \
    }                                                                                                            \
    static void NAME##_dec1(int64_t nb, const char *w, size_t ws, const XT *x, float *o)                        \
    {                                                                                                            \
        NAME##_dec_kern(1, nb, w, ws, x, o);                                                                     \
    }                                                                                                            \
    static void NAME##_gemm512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride, \
                               const void *x, size_t x_stride, float *y, size_t y_stride)                       \
    {                                                                                                            \
        if (n_batch != 1) {                                                                                      \
            g_avx2[SLOT].gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);                        \
            return;                                                                                              \
        }                                                                                                        \
        const int64_t nb = k / (BLK);                                                                            \
        int64_t r = r0;                                                                                          \
        for (; r + 4 <= r1; r += 4)                                                                              \
            NAME##_dec4(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);                         \
        for (; r < r1; r++)                                                                                      \
            NAME##_dec1(nb, (const char *)w + (size_t)r * w_stride, w_stride, x, y + r);                         \
    }                                                                                                            \
    static void NAME##_gemm_ws512(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,            \
                                  size_t w_stride, const void *x, size_t x_stride, float *y, size_t y_stride,    \
                                  void *ws)                                                                      \
    {                                                                                                            \
        g_avx2[SLOT].gemm_ws(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride, ws);                     \
    }
IQ4_GEMM512(iq4_nl, 0, block_q8_0, KERN_QK)
IQ4_GEMM512(iq4_xs, 1, block_q8_K, KERN_QK_K)

/* Called by kern_avx512_fill with the type's AVX2 entry (kept for batches;
 * its panel too, through a wrapper, so dispatch.c keeps a panel gemm). */
void kern_avx512_fill_iq4(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_iq4(struct kern_type_ops *ops, enum gg_type type)
{
    const int slot = type == GG_TYPE_IQ4_NL ? 0 : type == GG_TYPE_IQ4_XS ? 1 : -1;
    if (slot < 0 || ops->isa != KERN_ISA_AVX2 || !ops->gemm || !ops->gemm_ws)
        return;
    g_avx2[slot].gemm = ops->gemm;
    g_avx2[slot].gemm_ws = ops->gemm_ws;
    ops->vec_dot = slot == 0 ? iq4_nl_vec_dot512 : iq4_xs_vec_dot512;
    ops->gemm = slot == 0 ? iq4_nl_gemm512 : iq4_xs_gemm512;
    ops->gemm_ws = slot == 0 ? iq4_nl_gemm_ws512 : iq4_xs_gemm_ws512;
    ops->isa = KERN_ISA_AVX512;
}
