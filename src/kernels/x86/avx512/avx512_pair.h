/* avx512_pair.h - the two-block helpers of the AVX-512 kernels (include
 * only from files compiled with the AVX-512 flags): two 32-byte blocks in
 * one zmm, and a scale per half. Kept apart from avx512_util.h so that
 * q_iq4_avx512.c uses only intrinsics tests/kernels/avx512_emu.h emulates. */
#ifndef SPOKE_KERN_AVX512_PAIR_H
#define SPOKE_KERN_AVX512_PAIR_H

#include "kernels/x86/avx2/avx2_util.h"

/* block a in bytes 0..31, block b in 32..63 */
KERN_AI __m512i pair512(const void *a, const void *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* lanes 0..7 = a, lanes 8..15 = b */
KERN_AI __m512 scale_pair512(float a, float b)
{
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

#endif
