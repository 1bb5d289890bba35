/* avx512_util.h - inline helpers shared by the AVX-512 kernels (include
 * only from files compiled with the AVX-512 flags). */
#ifndef SPOKE_KERN_AVX512_UTIL_H
#define SPOKE_KERN_AVX512_UTIL_H

#include "kernels/x86/avx2/avx2_util.h"

KERN_AI __m512i pair512(const void *a, const void *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

KERN_AI __m512 scale_pair512(float a, float b)
{
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* the fp16 scales d of 8 consecutive blocks (any block type with d first) */
#define LOAD_H8(B, I, F)                                                                   \
    _mm256_cvtph_ps(_mm_setr_epi16((short)(B)[(I) + 0].F, (short)(B)[(I) + 1].F,          \
                                   (short)(B)[(I) + 2].F, (short)(B)[(I) + 3].F,          \
                                   (short)(B)[(I) + 4].F, (short)(B)[(I) + 5].F,          \
                                   (short)(B)[(I) + 6].F, (short)(B)[(I) + 7].F))
#define LOAD_D8(B, I) LOAD_H8(B, I, d)

/* lanes 0..7 <- s[2p], lanes 8..15 <- s[2p+1] */
KERN_AI __m512 bcast_pair(__m512 s8, int p)
{
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1), 1);
    return _mm512_permutexvar_ps(idx, s8);
}

KERN_AI __m512i q4_0_pairq(const block_q4_0 *w, int64_t ib)
{
    const __m256i t = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)w[ib + 1].qs),
                                       _mm_loadu_si128((const __m128i *)w[ib].qs));
    __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
    q = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
    return _mm512_shuffle_i64x2(q, q, _MM_SHUFFLE(3, 1, 2, 0));
}

KERN_AI void k4_scales_mins(const uint8_t *src, uint8_t *scales, uint8_t *mins)
{
    uint32_t utmp[4];
    memcpy(utmp, src, 12);
    utmp[3] = ((utmp[2] >> 4) & 0x0f0f0f0fu) | (((utmp[1] >> 6) & 0x03030303u) << 4);
    const uint32_t uaux = utmp[1] & 0x3f3f3f3fu;
    utmp[1] = (utmp[2] & 0x0f0f0f0fu) | (((utmp[0] >> 6) & 0x03030303u) << 4);
    utmp[2] = uaux;
    utmp[0] &= 0x3f3f3f3fu;
    memcpy(scales, &utmp[0], 8);
    memcpy(mins, &utmp[2], 8);
}

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

#endif
