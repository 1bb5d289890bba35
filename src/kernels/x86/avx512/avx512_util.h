/* avx512_util.h - inline helpers shared by the AVX-512 kernels (include
 * only from files compiled with the AVX-512 flags). */
#ifndef SPOKE_KERN_AVX512_UTIL_H
#define SPOKE_KERN_AVX512_UTIL_H

#include "kernels/x86/avx512/avx512_pair.h"


/* the fp16 scales d of 8 consecutive blocks (any block type with d first) */

/* bytes [0, n) of a 64-byte window as a load mask (n clamped to 0..64) */
KERN_AI __mmask64 bytes_mask(int n)
{
    return n >= 64 ? ~(__mmask64)0 : n <= 0 ? (__mmask64)0 : (((__mmask64)1 << n) - 1);
}

/* 8 fp16 values at base + b*bs (b = 0..7; bs even, 18..36 bytes), reading
 * only the avail bytes from base (masked loads): word gathers (vpermt2w)
 * from 2 or 4 zmm loads, then converted to 8 floats. */
KERN_AI __m256 load_h8_strided(const void *base, int bs, int avail)
{
    const char *p = base;
    const int wpb = bs / 2; /* words per block */
    const __m512i idx_lo = _mm512_zextsi128_si512(_mm_setr_epi16(
        (short)(0 * wpb), (short)(1 * wpb), (short)(2 * wpb), (short)(3 * wpb), (short)(4 * wpb),
        (short)(5 * wpb), (short)(6 * wpb), (short)(7 * wpb)));
    const __m512i z0 = _mm512_maskz_loadu_epi8(bytes_mask(avail), p);
    const __m512i z1 = _mm512_maskz_loadu_epi8(bytes_mask(avail - 64), p + 64);
    __m512i r = _mm512_permutex2var_epi16(z0, idx_lo, z1);
    if (7 * wpb >= 64) { /* words beyond the first 128 bytes */
        const __m512i z2 = _mm512_maskz_loadu_epi8(bytes_mask(avail - 128), p + 128);
        const __m512i z3 = _mm512_maskz_loadu_epi8(bytes_mask(avail - 192), p + 192);
        const __m512i r2 =
            _mm512_permutex2var_epi16(z2, _mm512_sub_epi16(idx_lo, _mm512_set1_epi16(64)), z3);
        /* words with index >= 64 come from r2 */
        const __mmask32 hi = _mm512_cmpge_epi16_mask(idx_lo, _mm512_set1_epi16(64)) & 0xFF;
        r = _mm512_mask_mov_epi16(r, hi, r2);
    }
    return _mm256_cvtph_ps(_mm512_castsi512_si128(r));
}
/* d (first field) of 8 blocks starting at block pointer B */
#define LOAD_D8S(B) load_h8_strided((B), (int)sizeof(*(B)), 8 * (int)sizeof(*(B)))
/* another fp16 field F of 8 blocks */
#define LOAD_F8S(B, F)                                                                      \
    load_h8_strided(&(B)->F, (int)sizeof(*(B)),                                             \
                    8 * (int)sizeof(*(B)) - (int)((const char *)&(B)->F - (const char *)(B)))

/* lanes 0..7 <- s[2p], lanes 8..15 <- s[2p+1] */
KERN_AI __m512 bcast_pair(__m512 s8, int p)
{
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1), 1);
    return _mm512_permutexvar_ps(idx, s8);
}

/* Decode (n_batch 1) for the 32-block types of q_avx512.c / q2_avx512.c:
 * DEC512_ROWS weight rows against the one activation row per pass. Every
 * output keeps its 1-row kernel's (NAME_kern, nr 1) operations: the same
 * pair products and offset, fl(dw * dy) per block, one FMA per block pair
 * into its own 16-lane accumulator, the type's own tail (TAIL, NAME_kern's)
 * and the same final reductions, so the results are vec_dot's bits. Shared
 * per pass: the activation pairs, their offset products and scales. Rows
 * are contiguous, so the next nw rows are prefetched in step with this
 * pass's progress (nw rows read side by side are nw short runs that the
 * hardware prefetcher does not follow; the AVX2 DEC_KERN measured the same);
 * prefetches past the matrix's end are harmless. */
#define DEC512_ROWS 4
#define DEC512_NOMIN(B, I) _mm256_setzero_ps()
/* Rows [r0, r1) of a decode in passes of DEC512_ROWS, 2 and 1 rows:
 * FN(nw, nb, first row, w_stride, x, outputs) */
#define DEC512_PASSES(FN, NB, W, W_STRIDE, X, Y, R0, R1)                                          \
    do {                                                                                           \
        int64_t r_ = (R0);                                                                         \
        for (; r_ + DEC512_ROWS <= (R1); r_ += DEC512_ROWS)                                        \
            FN(DEC512_ROWS, NB, (const char *)(W) + (size_t)r_ * (W_STRIDE), W_STRIDE, X, (Y) + r_); \
        for (; r_ + 2 <= (R1); r_ += 2)                                                            \
            FN(2, NB, (const char *)(W) + (size_t)r_ * (W_STRIDE), W_STRIDE, X, (Y) + r_);         \
        if (r_ < (R1))                                                                             \
            FN(1, NB, (const char *)(W) + (size_t)r_ * (W_STRIDE), W_STRIDE, X, (Y) + r_);         \
    } while (0)
#define DEC512(NAME, WB, YB, PAIRQ, OFF, HASMIN, MW8, YS8, TAIL)                                   \
    KERN_AI void NAME##_dec512(int nw, int64_t nb, const char *wbase, size_t w_stride, const YB *x, \
                               float *out)                                                         \
    {                                                                                              \
        const WB *w[DEC512_ROWS];                                                                  \
        __m512 acc[DEC512_ROWS];                                                                   \
        __m256 acc2[DEC512_ROWS];                                                                  \
        KERN_UNROLL for (int r = 0; r < nw; r++) {                                                 \
            w[r] = (const WB *)(const void *)(wbase + (size_t)r * w_stride);                       \
            acc[r] = _mm512_setzero_ps();                                                          \
            acc2[r] = _mm256_setzero_ps();                                                         \
        }                                                                                          \
        const __m512i off = _mm512_set1_epi8((char)(OFF));                                         \
        const char *pf = wbase + (size_t)nw * w_stride;                                            \
        int64_t ib = 0;                                                                            \
        for (; ib + 8 <= nb; ib += 8) {                                                            \
            KERN_UNROLL for (size_t o = 0; o < (size_t)nw * 8 * sizeof(WB); o += 64)               \
                _mm_prefetch(pf + (size_t)ib * (size_t)nw * sizeof(WB) + o, _MM_HINT_T0);          \
            const __m256 dy = LOAD_D8S(&x[ib]);                                                    \
            __m512i y[4], yo[4];                                                                   \
            KERN_UNROLL for (int p = 0; p < 4; p++) {                                              \
                y[p] = pair512(x[ib + 2 * p].qs, x[ib + 2 * p + 1].qs);                            \
                yo[p] = (OFF) ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, y[p])             \
                              : _mm512_setzero_si512();                                            \
            }                                                                                      \
            const __m256 ys = (HASMIN) ? YS8(x, ib) : _mm256_setzero_ps();                         \
            KERN_UNROLL for (int r = 0; r < nw; r++) {                                             \
                const __m512 s8 = _mm512_castps256_ps512(_mm256_mul_ps(LOAD_D8S(&w[r][ib]), dy)); \
                KERN_UNROLL for (int p = 0; p < 4; p++) {                                          \
                    __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), PAIRQ(w[r], ib + 2 * p), \
                                                     y[p]);                                        \
                    if (OFF)                                                                       \
                        dp = _mm512_sub_epi32(dp, yo[p]);                                          \
                    acc[r] = _mm512_fmadd_ps(bcast_pair(s8, p), _mm512_cvtepi32_ps(dp), acc[r]);   \
                }                                                                                  \
                if (HASMIN)                                                                        \
                    acc2[r] = _mm256_fmadd_ps(MW8(w[r], ib), ys, acc2[r]);                         \
            }                                                                                      \
        }                                                                                          \
        KERN_UNROLL for (int r = 0; r < nw; r++) {                                                 \
            TAIL(1, nb, ib, w[r], &x, &acc[r], &acc2[r]);                                          \
            out[r] = _mm512_reduce_add_ps(acc[r]) + avx2_hsum_ps(acc2[r]);                         \
        }                                                                                          \
    }                                                                                              \
    /* ops->gemm: decode in passes of DEC512_ROWS rows, batches NAME_gemm2 */                     \
    static void NAME##_gemmd(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,   \
                             size_t w_stride, const void *x, size_t x_stride, float *y,            \
                             size_t y_stride)                                                      \
    {                                                                                              \
        if (n_batch != 1) {                                                                        \
            NAME##_gemm2(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);               \
            return;                                                                                \
        }                                                                                          \
        DEC512_PASSES(NAME##_dec512, k / KERN_QK, w, w_stride, x, y, r0, r1);                      \
    }

/* The 64 nibbles of two 32-element blocks (16 bytes of qs each) as bytes,
 * in element order: block a's 32 values, then block b's. */
KERN_AI __m512i nib_pair512(const uint8_t *qa, const uint8_t *qb)
{
    const __m256i t = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)qb), _mm_loadu_si128((const __m128i *)qa));
    __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
    q = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
    return _mm512_shuffle_i64x2(q, q, _MM_SHUFFLE(3, 1, 2, 0));
}

KERN_AI __m512i q4_0_pairq(const block_q4_0 *w, int64_t ib) { return nib_pair512(w[ib].qs, w[ib + 1].qs); }


/* word index vector: lanes [16*h, 16*h+15] -> base + h (h = 0, 1) */
KERN_AI __m512i idx_halves(int base)
{
    return _mm512_inserti64x4(_mm512_set1_epi16((short)base), _mm256_set1_epi16((short)(base + 1)), 1);
}

/* word index vector: lanes [8*qq, 8*qq+7] -> base + qq (qq = 0..3) */
KERN_AI __m512i idx_quarters(int base)
{
    const __m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)(base + 1)), _mm_set1_epi16((short)base));
    const __m256i hi =
        _mm256_set_m128i(_mm_set1_epi16((short)(base + 3)), _mm_set1_epi16((short)(base + 2)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* [v >> a | v >> b] (16-bit lanes) from one 256-bit vector: immediate shifts,
 * much cheaper than vpsrlvw on some cores (a, b constant after unrolling) */
KERN_AI __m512i srli_halves(__m256i v, int a, int b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_srli_epi16(v, a)),
                              _mm256_srli_epi16(v, b), 1);
}

/* One Q8_K activation row y against a K-quant super-block unpacked into four
 * 64-byte vectors q[] (unsigned values) with per-group int16 scales s[], in
 * the AVX2 kernel's order (q_k.c kq_row_min / kq_row_off), so both ISAs give
 * the same bits: the two 32-element halves of the int32 lanes are added
 * (exact) into AVX2's 8 lanes, then
 *   shift < 0 (a min type):  acc += (dw*dy) * sumi, acc -= (dmw*dy) * mm
 *   shift >= 0 (an offset):  acc += (dw*dy) * (sumi - (mm << shift))
 * with mm = bsums . m16 (the block's min / offset term). */
KERN_AI void kq_row_acc(const block_q8_K *y, const __m512i q[4], const __m512i s[4], __m256i m16,
                        float dw, float dmw, int shift, __m256 *acc)
{
    __m512i isum = _mm512_setzero_si512();
    KERN_UNROLL for (int v = 0; v < 4; v++)
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[v], _mm512_loadu_si512(y->qs + 64 * v)),
                                   s[v]);
    __m256i sumi = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    const __m256i mm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), m16);
    const float dy = y->d;
    if (shift >= 0)
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(mm, shift));
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy), _mm256_cvtepi32_ps(sumi), *acc);
    if (shift < 0)
        *acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmw * dy), _mm256_cvtepi32_ps(mm), *acc);
}

/* Activation rows the K-quant kernels take per pass over a weight row: 8,
 * so a batch of 8 (batched decode) unpacks each super-block once. */
#define KQ_NR 8

/* The K-quant kernel (per type: NAME##_kern + its drivers) around
 * kq_row_acc. IDX(v) builds the 4 scale-permutation vectors once; per
 * super-block PREP(block, idx, q, s, &m16, &dw, &dmw) unpacks the quants q[4],
 * scales s[4], the int16 vector m16 of the min/offset term and the block's
 * factors; SHIFT: -1 for a min type, else the offset's power of two. */
#define KQ512_KERN(NAME, BT, IDX, PREP, SHIFT)                                                     \
    KERN_AI void NAME##_kern(int nr, int64_t nb, const void *vw, const void *const *vx, float *out) \
    {                                                                                              \
        const BT *w = vw;                                                                          \
        const block_q8_K *x[KQ_NR];                                                                \
        __m256 acc[KQ_NR];                                                                         \
        KERN_UNROLL for (int i = 0; i < nr; i++) {                                                 \
            x[i] = vx[i];                                                                          \
            acc[i] = _mm256_setzero_ps();                                                          \
        }                                                                                          \
        __m512i idx[4];                                                                            \
        KERN_UNROLL for (int v = 0; v < 4; v++) idx[v] = IDX(v);                                   \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            __m512i q[4], s[4];                                                                    \
            __m256i m16;                                                                           \
            float dw, dmw;                                                                         \
            PREP(&w[ib], idx, q, s, &m16, &dw, &dmw);                                              \
            KERN_UNROLL for (int i = 0; i < nr; i++)                                               \
                kq_row_acc(&x[i][ib], q, s, m16, dw, dmw, SHIFT, &acc[i]);                         \
        }                                                                                          \
        KERN_UNROLL for (int i = 0; i < nr; i++)                                                   \
            out[i] = avx2_hsum_ps(acc[i]);                                                         \
    }                                                                                              \
    /* decode: nw weight rows against one activation row, each output in                         \
     * NAME_kern's operations; the next nw rows prefetched in step (DEC512) */                    \
    KERN_AI void NAME##_dec(int nw, int64_t nb, const char *wbase, size_t w_stride,                \
                            const block_q8_K *x, float *out)                                       \
    {                                                                                              \
        const BT *w[DEC512_ROWS];                                                                  \
        __m256 acc[DEC512_ROWS];                                                                   \
        KERN_UNROLL for (int r = 0; r < nw; r++) {                                                 \
            w[r] = (const BT *)(const void *)(wbase + (size_t)r * w_stride);                       \
            acc[r] = _mm256_setzero_ps();                                                          \
        }                                                                                          \
        const char *pf = wbase + (size_t)nw * w_stride;                                            \
        __m512i idx[4];                                                                            \
        KERN_UNROLL for (int v = 0; v < 4; v++) idx[v] = IDX(v);                                   \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            KERN_UNROLL for (size_t o = 0; o < (size_t)nw * sizeof(BT); o += 64)                   \
                _mm_prefetch(pf + (size_t)ib * (size_t)nw * sizeof(BT) + o, _MM_HINT_T0);          \
            KERN_UNROLL for (int r = 0; r < nw; r++) {                                             \
                __m512i q[4], s[4];                                                                \
                __m256i m16;                                                                       \
                float dw, dmw;                                                                     \
                PREP(&w[r][ib], idx, q, s, &m16, &dw, &dmw);                                       \
                kq_row_acc(&x[ib], q, s, m16, dw, dmw, SHIFT, &acc[r]);                            \
            }                                                                                      \
        }                                                                                          \
        KERN_UNROLL for (int r = 0; r < nw; r++)                                                   \
            out[r] = avx2_hsum_ps(acc[r]);                                                         \
    }                                                                                              \
    KQ512_DRIVER(NAME, NAME##_kern)

/* NAME_vec_dot and NAME_gemm around NAME_kern: decode row by row; batches
 * take up to KQ_NR activation rows per pass over each weight row (tiles of
 * kern_gemm_tile rows, so the activations stay in L1). Every output gets
 * the kernel's operations whatever nr is: the same bits as vec_dot. */
#define KQ512_DRIVER(NAME, KERN)                                                                   \
    static void NAME##_kn(int nr, int64_t nb, const void *w, const void *const *x, float *o)      \
    {                                                                                              \
        switch (nr) {                                                                              \
        case 1: KERN(1, nb, w, x, o); break;                                                       \
        case 2: KERN(2, nb, w, x, o); break;                                                       \
        case 3: KERN(3, nb, w, x, o); break;                                                       \
        case 4: KERN(4, nb, w, x, o); break;                                                       \
        case 5: KERN(5, nb, w, x, o); break;                                                       \
        case 6: KERN(6, nb, w, x, o); break;                                                       \
        case 7: KERN(7, nb, w, x, o); break;                                                       \
        default: KERN(8, nb, w, x, o); break;                                                      \
        }                                                                                          \
    }                                                                                              \
    static void NAME##_vec_dot(int64_t n, float *s, const void *w, const void *x)                 \
    {                                                                                              \
        const void *xp[1] = {x};                                                                   \
        KERN(1, n / KERN_QK_K, w, xp, s);                                                          \
    }                                                                                              \
    static void NAME##_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w,    \
                            size_t w_stride, const void *x, size_t x_stride, float *y,             \
                            size_t y_stride)                                                       \
    {                                                                                              \
        const int64_t nb = k / KERN_QK_K;                                                          \
        if (n_batch == 1) {                                                                        \
            DEC512_PASSES(NAME##_dec, nb, w, w_stride, x, y, r0, r1);                              \
            return;                                                                                \
        }                                                                                          \
        const int64_t tile = SP_MAX(kern_gemm_tile(x_stride), KQ_NR);                              \
        for (int64_t b0 = 0; b0 < n_batch; b0 += tile)                                             \
            for (int64_t r = r0; r < r1; r++) {                                                    \
                const void *wr = (const char *)w + (size_t)r * w_stride;                           \
                const int64_t b1 = SP_MIN(n_batch, b0 + tile);                                     \
                for (int64_t b = b0; b < b1; b += KQ_NR) {                                         \
                    const int nr = (int)SP_MIN(KQ_NR, b1 - b);                                     \
                    const void *xp[KQ_NR];                                                         \
                    float o[KQ_NR] = {0};                                                          \
                    for (int i = 0; i < nr; i++)                                                   \
                        xp[i] = (const char *)x + (size_t)(b + i) * x_stride;                      \
                    NAME##_kn(nr, nb, wr, xp, o);                                                  \
                    for (int i = 0; i < nr; i++)                                                   \
                        y[(size_t)(b + i) * y_stride + (size_t)r] = o[i];                          \
                }                                                                                  \
            }                                                                                      \
    }

/* kq_row_acc's SHIFT: a min type (Q2_K, Q4_K, Q5_K), or a constant offset of
 * 4 (Q3_K) or 32 (Q6_K) quants */
#define KQ_FACT_MIN (-1)
#define KQ_FACT_OFF4 2
#define KQ_FACT_OFF32 5

/* Q4_K/Q5_K scales and mins: s[j] for the 64 elements of quant vector j
 * (sub-blocks 2j, 2j+1), m16 the 8 mins as int16 pairs. */
KERN_AI void k4_prep_scales(const uint8_t *scales, const __m512i idx[4], __m512i s[4], __m256i *m16)
{
    const __m128i smv = k4_scales_mins_v(scales);
    const __m128i m8 = _mm_unpackhi_epi64(smv, smv);
    *m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    const __m512i sc512 = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(smv));
    KERN_UNROLL for (int j = 0; j < 4; j++)
        s[j] = _mm512_permutexvar_epi16(idx[j], sc512);
}

#define KQ_IDX_HALVES(V) idx_halves(2 * (V))
#define KQ_IDX_QUARTERS(V) idx_quarters(4 * (V))

#endif
