/* avx2_util.h - inline helpers shared by the AVX2 kernels (include only from
 * files compiled with -mavx2 -mfma -mf16c), and the row-group driver that
 * turns a "dot one weight row with nr (1..4) activation rows" kernel into a
 * vec_dot and a gemm that loads each weight block once per 4 activations. */
#ifndef SPOKE_KERN_AVX2_UTIL_H
#define SPOKE_KERN_AVX2_UTIL_H

#include <immintrin.h>
#include <math.h>

#include "kernels/kern_impl.h"

#define KERN_AI static inline __attribute__((always_inline))

/* Fully unroll a short constant-trip loop (register arrays stay in registers). */
#if defined(__clang__)
#define KERN_UNROLL _Pragma("unroll")
#else
#define KERN_UNROLL _Pragma("GCC unroll 16")
#endif
/* Keep a loop rolled (the compiler would hoist every iteration's loads and
 * spill them). */
#if defined(__clang__)
#define KERN_NOUNROLL _Pragma("nounroll")
#else
#define KERN_NOUNROLL _Pragma("GCC unroll 1")
#endif

KERN_AI float avx2_hsum_ps(__m256 v)
{
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

KERN_AI int avx2_hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

KERN_AI float avx2_h2f(kern_half h) { return _cvtsh_ss(h); }

/* An empty asm that takes *v in a register and gives it back: the compiler
 * can no longer reassociate the integer sums that run through it. Without
 * it, gcc 12 turned a tile's per-row chains of adds into trees over all the
 * products of a block, which kept more values live than the 16 ymm
 * registers hold and spilled them to the stack (q4r_tile_4: 34 spill moves
 * per block, 76 -> 93 GMAC/s with the pin, bench_kernels Q4_0 n_batch 64). */
KERN_AI void avx2_pin(__m256i *v) { __asm__("" : "+x"(*v)); }

/* part `part` of nparts of a prefetch of the `bytes` at p, line by line
 * (into L1 where l1, else L2); nparts 1: all of it. The repacked K-quant
 * tiles spread a super-block's prefetch over its work, since one burst of
 * all its lines stalled the core on L1's few miss buffers (rp_qk.c,
 * rp_qk_avx512.c); the Q4_0/Q5_0/Q8_0 tiles prefetch a block pair at once. */
KERN_AI void avx2_prefetch_part(const void *p, size_t bytes, bool l1, int part, int nparts)
{
    const size_t nl = (bytes + 63) / 64, l0 = nl * (size_t)part / (size_t)nparts,
                 le = nl * (size_t)(part + 1) / (size_t)nparts;
    for (size_t l = l0; l < le; l++) {
        if (l1)
            _mm_prefetch((const char *)p + 64 * l, _MM_HINT_T0);
        else
            _mm_prefetch((const char *)p + 64 * l, _MM_HINT_T1);
    }
}

/* the first n (1..8) lanes of v to dst (a panel's last, partial row group) */
KERN_AI void avx2_store_n(float *dst, __m256 v, int64_t n)
{
    if (n >= 8) {
        _mm256_storeu_ps(dst, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    memcpy(dst, t, (size_t)n * sizeof(float));
}

/* The outputs of a tile over both 8-row halves of group g of 16 interleaved
 * rows (o[2 j + h]: activation row j, rows 16 g + 8 h ..) to y (row j at
 * y + j * y_stride), the rows below r1 only. */
KERN_AI void avx2_store_group16(int64_t nr, int64_t g, int64_t r1, float *y, size_t y_stride, const __m256 *o)
{
    for (int h = 0; h < 2; h++) {
        const int64_t rr = g * 16 + 8 * h, nv = SP_MIN((int64_t)8, r1 - rr);
        for (int64_t j = 0; nv > 0 && j < nr; j++)
            avx2_store_n(y + (size_t)j * y_stride + (size_t)rr, o[2 * j + h], nv);
    }
}

/* 32 nibbles -> 32 bytes: bytes 0..15 the low nibbles, 16..31 the high ones */
KERN_AI __m256i avx2_nibbles(const uint8_t *p)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set */
KERN_AI __m256i avx2_bits_to_bytes(const uint8_t *p)
{
    uint32_t x32;
    memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* sum over pairs of u8*s8 products, then pairs of int16 -> 8 x int32 */
KERN_AI __m256i avx2_dot_us8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* the sum of a 32-byte block of int8 (a Q8_0 activation block's quants) */
KERN_AI int avx2_sum_i8x32(const int8_t *q)
{
    return avx2_hsum_epi32(avx2_dot_us8(_mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)q)));
}

/* struct kern_q4kr_x (kern_impl.h) of nsb super-blocks: bp's int16 pairs
 * are the wrapped sums of adjacent bsums, which is what one phaddw of the 16
 * bsums gives (test_repack compares the gemms that use it with the reference) */
KERN_AI void avx2_q4kr_sums(int64_t nsb, const block_q8_K *x, struct kern_q4kr_x *xs)
{
    for (int64_t ib = 0; ib < nsb; ib++) {
        const __m128i b0 = _mm_loadu_si128((const __m128i *)x[ib].bsums);
        const __m128i b1 = _mm_loadu_si128((const __m128i *)(x[ib].bsums + 8));
        _mm_storeu_si128((__m128i *)xs[ib].bp, _mm_hadd_epi16(b0, b1));
        xs[ib].dx = x[ib].d;
    }
}

/* same for s8*s8 (sign trick) */
KERN_AI __m256i avx2_dot_ss8(__m256i a, __m256i b)
{
    return avx2_dot_us8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* IQ4_NL / IQ4_XS: the 32 int8 levels of one 32-block from its 16 index
 * bytes (one pshufb into the 16-entry table) */
KERN_AI __m256i iq4_levels(const uint8_t *qs)
{
    /* the 16 index bytes in both lanes, shifted by 0 (low lane) and 4 (high) */
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kern_iq4nl_values));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i idx = _mm256_and_si256(_mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
    return _mm256_shuffle_epi8(table, idx);
}

/* IQ4_NL's odd last 32-block (ggml's scalar tail): one fma of the block's
 * integer dot onto sum, scaled by fl(d_y * d_w) */
KERN_AI float iq4_nl_tail(const block_iq4_nl *w, const block_q8_0 *x, float sum)
{
    const __m256i y = _mm256_loadu_si256((const __m256i *)(const void *)x->qs);
    const int sumi = avx2_hsum_epi32(avx2_dot_ss8(iq4_levels(w->qs), y));
    return fmaf(avx2_h2f(x->d) * avx2_h2f(w->d), (float)sumi, sum);
}

/* Activation rows per tile: as many as fit in ~24 KB (L1), a multiple of 4,
 * at least 4. Each weight row passes over the tile from L1 while the weight
 * slice streams from L2/L3 once per tile. */
static inline int64_t kern_gemm_tile(size_t x_stride)
{
    int64_t t = (int64_t)((24u << 10) / (x_stride ? x_stride : 1)) & ~(int64_t)3;
    return t < 4 ? 4 : t > 64 ? 64 : t;
}

/* Q4_K/Q5_K: the 8 6-bit scales (bytes 0..7) and 8 mins (bytes 8..15) as one
 * vector, built in registers (a wide load of narrow stores would stall on
 * store forwarding). */
KERN_AI __m128i k4_scales_mins_v(const uint8_t *src)
{
    uint32_t u0, u1, u2;
    memcpy(&u0, src, 4);
    memcpy(&u1, src + 4, 4);
    memcpy(&u2, src + 8, 4);
    const uint32_t s_lo = u0 & 0x3f3f3f3fu;
    const uint32_t s_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_lo = u1 & 0x3f3f3f3fu;
    const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    return _mm_setr_epi32((int)s_lo, (int)s_hi, (int)m_lo, (int)m_hi);
}

/* Q3_K: the 16 6-bit scales minus 32, as int8 in one vector */
KERN_AI __m128i q3_K_scales_v(const uint8_t *src)
{
    uint32_t a0, a1, tmp;
    memcpy(&a0, src, 4);
    memcpy(&a1, src + 4, 4);
    memcpy(&tmp, src + 8, 4);
    const uint32_t s2 = ((a0 >> 4) & 0x0f0f0f0fu) | (((tmp >> 4) & 0x03030303u) << 4);
    const uint32_t s3 = ((a1 >> 4) & 0x0f0f0f0fu) | (((tmp >> 6) & 0x03030303u) << 4);
    const uint32_t s0 = (a0 & 0x0f0f0f0fu) | (((tmp >> 0) & 0x03030303u) << 4);
    const uint32_t s1 = (a1 & 0x0f0f0f0fu) | (((tmp >> 2) & 0x03030303u) << 4);
    return _mm_sub_epi8(_mm_setr_epi32((int)s0, (int)s1, (int)s2, (int)s3), _mm_set1_epi8(32));
}

/* NAME_vec_dot alone, for a type whose gemm is its own (the K-quants' kb_gemm
 * and decode kernels): KERN(1, ...) on one activation row. */
#define KERN_AVX2_VEC_DOT(NAME, KERN, BLK)                                                  \
    static void NAME##_vec_dot(int64_t n, float *s, const void *w, const void *x)          \
    {                                                                                       \
        const void *xp[1] = { x };                                                          \
        KERN(1, n / (BLK), w, xp, s);                                                       \
    }

/* Driver: KERN(nr, nb, w, x[nr], out[nr]) with nr a compile-time constant
 * after inlining. Generates NAME_vec_dot and NAME_gemm. */
#define KERN_AVX2_DRIVER(NAME, KERN, BLK)                                                   \
    static void NAME##_r1(int64_t nb, const void *w, const void *const *x, float *o)       \
    {                                                                                       \
        KERN(1, nb, w, x, o);                                                               \
    }                                                                                       \
    static void NAME##_r2(int64_t nb, const void *w, const void *const *x, float *o)       \
    {                                                                                       \
        KERN(2, nb, w, x, o);                                                               \
    }                                                                                       \
    static void NAME##_r3(int64_t nb, const void *w, const void *const *x, float *o)       \
    {                                                                                       \
        KERN(3, nb, w, x, o);                                                               \
    }                                                                                       \
    static void NAME##_r4(int64_t nb, const void *w, const void *const *x, float *o)       \
    {                                                                                       \
        KERN(4, nb, w, x, o);                                                               \
    }                                                                                       \
    static void NAME##_vec_dot(int64_t n, float *s, const void *w, const void *x)          \
    {                                                                                       \
        const void *xp[1] = { x };                                                          \
        NAME##_r1(n / (BLK), w, xp, s);                                                     \
    }                                                                                       \
    static void NAME##_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch,            \
                            const void *w, size_t w_stride, const void *x, size_t x_stride, \
                            float *y, size_t y_stride)                                      \
    {                                                                                       \
        const int64_t nb = k / (BLK);                                                       \
        const int64_t tile = kern_gemm_tile(x_stride);                                      \
        if (n_batch == 1) { /* decode: row by row, nothing around the kernel */             \
            for (int64_t r = r0; r < r1; r++)                                               \
                NAME##_r1(nb, (const char *)w + (size_t)r * w_stride, &x, y + r);           \
            return;                                                                         \
        }                                                                                   \
        for (int64_t b0 = 0; b0 < n_batch; b0 += tile)                                      \
        for (int64_t r = r0; r < r1; r++) {                                                 \
            const void *wr = (const char *)w + (size_t)r * w_stride;                        \
            const int64_t b1 = n_batch - b0 < tile ? n_batch : b0 + tile;                   \
            for (int64_t b = b0; b < b1; b += 4) {                                          \
                const int64_t nr = b1 - b < 4 ? b1 - b : 4;                                 \
                const void *xp[4];                                                          \
                float o[4] = { 0 };                                                               \
                for (int64_t i = 0; i < nr; i++)                                            \
                    xp[i] = (const char *)x + (size_t)(b + i) * x_stride;                   \
                switch (nr) {                                                               \
                case 1:                                                                     \
                    NAME##_r1(nb, wr, xp, o);                                               \
                    break;                                                                  \
                case 2:                                                                     \
                    NAME##_r2(nb, wr, xp, o);                                               \
                    break;                                                                  \
                case 3:                                                                     \
                    NAME##_r3(nb, wr, xp, o);                                               \
                    break;                                                                  \
                default:                                                                    \
                    NAME##_r4(nb, wr, xp, o);                                               \
                    break;                                                                  \
                }                                                                           \
                for (int64_t i = 0; i < nr; i++)                                            \
                    y[(size_t)(b + i) * y_stride + (size_t)r] = o[i];                       \
            }                                                                               \
        }                                                                                   \
    }

/* Driver for kernels that take two weight rows at once:
 * KERN2(nr, nb, w0, w1, x[nr], out0[nr], out1[nr]) with per-output arithmetic
 * identical to NAME's one-row kernel. Generates NAME_gemm2: n_batch 1 (decode)
 * and an odd last row use NAME_gemm. */
#define KERN_DRIVER2(NAME, KERN2, BLK)                                                     \
    static void NAME##_gemm2(int64_t k, int64_t r0, int64_t r1, int64_t n_batch,          \
                             const void *w, size_t w_stride, const void *x,               \
                             size_t x_stride, float *y, size_t y_stride)                  \
    {                                                                                      \
        if (n_batch < 2) {                                                                 \
            NAME##_gemm(k, r0, r1, n_batch, w, w_stride, x, x_stride, y, y_stride);        \
            return;                                                                        \
        }                                                                                  \
        const int64_t nb = k / (BLK);                                                      \
        const int64_t tile = kern_gemm_tile(x_stride);                                     \
        for (int64_t b0 = 0; b0 < n_batch; b0 += tile) {                                   \
            const int64_t b1 = n_batch - b0 < tile ? n_batch : b0 + tile;                  \
            int64_t r = r0;                                                                \
            for (; r + 2 <= r1; r += 2) {                                                  \
                const char *wr = (const char *)w + (size_t)r * w_stride;                   \
                for (int64_t b = b0; b < b1; b += 4) {                                     \
                    const int64_t nr = b1 - b < 4 ? b1 - b : 4;                            \
                    const void *xp[4];                                                     \
                    float o0[4] = { 0 }, o1[4] = { 0 };                                    \
                    for (int64_t i = 0; i < nr; i++)                                       \
                        xp[i] = (const char *)x + (size_t)(b + i) * x_stride;              \
                    switch (nr) {                                                          \
                    case 1:                                                                \
                        KERN2(1, nb, wr, wr + w_stride, xp, o0, o1);                       \
                        break;                                                             \
                    case 2:                                                                \
                        KERN2(2, nb, wr, wr + w_stride, xp, o0, o1);                       \
                        break;                                                             \
                    case 3:                                                                \
                        KERN2(3, nb, wr, wr + w_stride, xp, o0, o1);                       \
                        break;                                                             \
                    default:                                                               \
                        KERN2(4, nb, wr, wr + w_stride, xp, o0, o1);                       \
                        break;                                                             \
                    }                                                                      \
                    for (int64_t i = 0; i < nr; i++) {                                     \
                        y[(size_t)(b + i) * y_stride + (size_t)r] = o0[i];                 \
                        y[(size_t)(b + i) * y_stride + (size_t)r + 1] = o1[i];             \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
            if (r < r1) /* odd last row */                                                 \
                NAME##_gemm(k, r, r1, b1 - b0, w, w_stride,                                \
                            (const char *)x + (size_t)b0 * x_stride, x_stride,             \
                            y + (size_t)b0 * y_stride, y_stride);                          \
        }                                                                                  \
    }

#endif
