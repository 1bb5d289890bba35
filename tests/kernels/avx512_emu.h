/* avx512_emu.h - test-only: the AVX-512 intrinsics that
 * src/kernels/x86/avx512/q_iq4_avx512.c, panel_avx512.c and the rp_*_avx512.c gemms use, each written element by element
 * in C from Intel's definition, so that the kernel's lane arithmetic can be
 * compiled and checked against the reference on a CPU without AVX-512
 * (test_iq4_emu and test_panel_emu include this header, then the kernel file). The production
 * build never sees it. avx512_emu_selfcheck() compares every emulated
 * operation that has an AVX2 counterpart with the hardware, half by half. */
#ifndef SPOKE_TEST_AVX512_EMU_H
#define SPOKE_TEST_AVX512_EMU_H

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef union {
    int8_t i8[64];
    uint8_t u8[64];
    int16_t i16[32];
    uint16_t u16[32];
    int32_t i32[16];
    int64_t i64[8];
    uint64_t u64[8];
    __m256i h[2];
} emu_m512i;

typedef union {
    float f[16];
    __m256 h[2];
} emu_m512;

typedef uint64_t emu_mask64;

static inline emu_m512i emu_setzero_si512(void)
{
    emu_m512i r;
    memset(&r, 0, sizeof r);
    return r;
}

static inline emu_m512 emu_setzero_ps(void)
{
    emu_m512 r;
    memset(&r, 0, sizeof r);
    return r;
}

static inline emu_m512 emu_set1_ps(float a)
{
    emu_m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = a;
    return r;
}

static inline emu_m512i emu_set1_epi8(char a)
{
    emu_m512i r;
    memset(r.u8, (unsigned char)a, 64);
    return r;
}

/* arguments from the highest element (e7) down to e0, as Intel's */
static inline emu_m512i emu_set_epi64(long long e7, long long e6, long long e5, long long e4, long long e3,
                                      long long e2, long long e1, long long e0)
{
    emu_m512i r;
    const long long e[8] = {e0, e1, e2, e3, e4, e5, e6, e7};
    for (int i = 0; i < 8; i++)
        r.i64[i] = e[i];
    return r;
}

static inline emu_m512i emu_loadu_si512(const void *p)
{
    emu_m512i r;
    memcpy(r.u8, p, 64);
    return r;
}

static inline emu_m512i emu_broadcast_i32x4(__m128i a)
{
    emu_m512i r;
    for (int l = 0; l < 4; l++)
        memcpy(r.u8 + 16 * l, &a, 16);
    return r;
}

/* the 256 bits in the low half; the high half is undefined in Intel's
 * definition: filled with a pattern so that a kernel depending on it fails */
static inline emu_m512i emu_castsi256_si512(__m256i a)
{
    emu_m512i r;
    memset(r.u8, 0xA5, 64);
    memcpy(r.u8, &a, 32);
    return r;
}

static inline __m256i emu_castsi512_si256(emu_m512i a)
{
    __m256i r;
    memcpy(&r, a.u8, 32);
    return r;
}

static inline __m256 emu_castps512_ps256(emu_m512 a)
{
    __m256 r;
    memcpy(&r, a.f, 32);
    return r;
}

static inline emu_m512i emu_inserti64x4(emu_m512i a, __m256i b, int imm)
{
    memcpy(a.u8 + 32 * (imm & 1), &b, 32);
    return a;
}

static inline emu_m512 emu_insertf32x8(emu_m512 a, __m256 b, int imm)
{
    memcpy(a.f + 8 * (imm & 1), &b, 32);
    return a;
}

static inline __m256i emu_extracti64x4_epi64(emu_m512i a, int imm)
{
    __m256i r;
    memcpy(&r, a.u8 + 32 * (imm & 1), 32);
    return r;
}

static inline __m256 emu_extractf32x8_ps(emu_m512 a, int imm)
{
    __m256 r;
    memcpy(&r, a.f + 8 * (imm & 1), 32);
    return r;
}

static inline emu_m512i emu_and_si512(emu_m512i a, emu_m512i b)
{
    for (int i = 0; i < 8; i++)
        a.u64[i] &= b.u64[i];
    return a;
}

/* logical right shift of each 64-bit lane; counts above 63 give 0 */
static inline emu_m512i emu_srlv_epi64(emu_m512i a, emu_m512i count)
{
    for (int i = 0; i < 8; i++)
        a.u64[i] = count.u64[i] > 63 ? 0 : a.u64[i] >> count.u64[i];
    return a;
}

/* vpshufb: within each 16-byte lane, b's byte selects a's byte (bit 7: zero) */
static inline emu_m512i emu_shuffle_epi8(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int i = 0; i < 64; i++)
        r.u8[i] = (b.u8[i] & 0x80) ? 0 : a.u8[(i & ~15) + (b.u8[i] & 15)];
    return r;
}

/* |a| per byte; -128 stays 0x80 */
static inline emu_m512i emu_abs_epi8(emu_m512i a)
{
    emu_m512i r;
    for (int i = 0; i < 64; i++)
        r.u8[i] = (uint8_t)(a.i8[i] < 0 ? -(int)a.i8[i] : a.i8[i]);
    return r;
}

/* bit i: the sign bit of byte i */
static inline emu_mask64 emu_movepi8_mask(emu_m512i a)
{
    emu_mask64 m = 0;
    for (int i = 0; i < 64; i++)
        m |= (emu_mask64)(a.u8[i] >> 7) << i;
    return m;
}

/* dst[i] = k[i] ? a[i] - b[i] (wrapping) : src[i] */
static inline emu_m512i emu_mask_sub_epi8(emu_m512i src, emu_mask64 k, emu_m512i a, emu_m512i b)
{
    for (int i = 0; i < 64; i++)
        if ((k >> i) & 1)
            src.u8[i] = (uint8_t)(a.u8[i] - b.u8[i]);
    return src;
}

/* vpdpbusd: src + the 4 products of unsigned a bytes and signed b bytes per
 * int32 lane, no saturation (wrapping) */
static inline emu_m512i emu_dpbusd_epi32(emu_m512i src, emu_m512i a, emu_m512i b)
{
    for (int j = 0; j < 16; j++) {
        int64_t s = 0;
        for (int k = 0; k < 4; k++)
            s += (int64_t)a.u8[4 * j + k] * b.i8[4 * j + k];
        src.i32[j] = (int32_t)(uint32_t)((uint32_t)src.i32[j] + (uint32_t)s);
    }
    return src;
}

/* vpmaddubsw: unsigned a bytes times signed b bytes, pairs added with
 * signed saturation to int16 */
static inline emu_m512i emu_maddubs_epi16(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int j = 0; j < 32; j++) {
        int s = a.u8[2 * j] * b.i8[2 * j] + a.u8[2 * j + 1] * b.i8[2 * j + 1];
        r.i16[j] = (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : s);
    }
    return r;
}

/* vpdpwssd: src + the 2 products of signed int16 words per int32 lane, no
 * saturation (wrapping) */
static inline emu_m512i emu_dpwssd_epi32(emu_m512i src, emu_m512i a, emu_m512i b)
{
    for (int j = 0; j < 16; j++) {
        const int64_t s = (int64_t)a.i16[2 * j] * b.i16[2 * j] + (int64_t)a.i16[2 * j + 1] * b.i16[2 * j + 1];
        src.i32[j] = (int32_t)(uint32_t)((uint32_t)src.i32[j] + (uint32_t)s);
    }
    return src;
}

static inline emu_m512 emu_cvtepi32_ps(emu_m512i a)
{
    emu_m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = (float)a.i32[i]; /* round to nearest, as MXCSR's default */
    return r;
}

/* a * b + c with one rounding */
static inline emu_m512 emu_fmadd_ps(emu_m512 a, emu_m512 b, emu_m512 c)
{
    emu_m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = fmaf(a.f[i], b.f[i], c.f[i]);
    return r;
}

static inline emu_m512 emu_mul_ps(emu_m512 a, emu_m512 b)
{
    emu_m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = a.f[i] * b.f[i];
    return r;
}

static inline emu_m512i emu_set1_epi32(int a)
{
    emu_m512i r;
    for (int i = 0; i < 16; i++)
        r.i32[i] = a;
    return r;
}

/* the aligned loads: as the unaligned ones, after checking the alignment */
static inline emu_m512i emu_load_si512(const void *p)
{
    if ((uintptr_t)p % 64)
        abort(); /* the hardware would fault */
    return emu_loadu_si512(p);
}

static inline emu_m512 emu_load_ps(const void *p)
{
    if ((uintptr_t)p % 64)
        abort();
    emu_m512 r;
    memcpy(&r, p, sizeof r);
    return r;
}

typedef uint16_t emu_mask16;

static inline void emu_mask_storeu_ps(void *p, emu_mask16 k, emu_m512 a)
{
    for (int i = 0; i < 16; i++)
        if (k >> i & 1)
            memcpy((char *)p + 4 * i, &a.f[i], 4);
}

static inline emu_m512i emu_broadcast_i64x4(__m256i a)
{
    emu_m512i r;
    r.h[0] = r.h[1] = a;
    return r;
}

/* pairs of int16 products summed into int32 (exact: only -32768 * -32768
 * twice would wrap, as on the hardware) */
static inline emu_m512i emu_madd_epi16(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int i = 0; i < 16; i++)
        r.i32[i] = (int32_t)((uint32_t)((int32_t)a.i16[2 * i] * b.i16[2 * i]) +
                             (uint32_t)((int32_t)a.i16[2 * i + 1] * b.i16[2 * i + 1]));
    return r;
}

static inline emu_m512i emu_add_epi32(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int i = 0; i < 16; i++)
        r.i32[i] = (int32_t)((uint32_t)a.i32[i] + (uint32_t)b.i32[i]);
    return r;
}

/* the low 32 bits of the product */
static inline emu_m512i emu_mullo_epi32(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int i = 0; i < 16; i++)
        r.i32[i] = (int32_t)((uint32_t)a.i32[i] * (uint32_t)b.i32[i]);
    return r;
}

static inline emu_m512i emu_sub_epi32(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int i = 0; i < 16; i++)
        r.i32[i] = (int32_t)((uint32_t)a.i32[i] - (uint32_t)b.i32[i]);
    return r;
}

/* -(a * b) + c, rounded once */
static inline emu_m512 emu_fnmadd_ps(emu_m512 a, emu_m512 b, emu_m512 c)
{
    emu_m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = fmaf(-a.f[i], b.f[i], c.f[i]);
    return r;
}

/* each 16-bit lane shifted right by imm (logical) */
static inline emu_m512i emu_srli_epi16(emu_m512i a, unsigned imm)
{
    emu_m512i r;
    for (int i = 0; i < 32; i++)
        r.u16[i] = imm > 15 ? 0 : (uint16_t)(a.u16[i] >> imm);
    return r;
}

/* each 16-bit lane shifted left by imm */
static inline emu_m512i emu_slli_epi16(emu_m512i a, unsigned imm)
{
    emu_m512i r;
    for (int i = 0; i < 32; i++)
        r.u16[i] = imm > 15 ? 0 : (uint16_t)(a.u16[i] << imm);
    return r;
}

static inline emu_m512i emu_or_si512(emu_m512i a, emu_m512i b)
{
    emu_m512i r;
    for (int i = 0; i < 8; i++)
        r.u64[i] = a.u64[i] | b.u64[i];
    return r;
}

/* a + b per lane */
static inline emu_m512 emu_add_ps(emu_m512 a, emu_m512 b)
{
    emu_m512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = a.f[i] + b.f[i];
    return r;
}

/* 16 F16 values to F32 (exact), each half by F16C */
static inline emu_m512 emu_cvtph_ps(__m256i a)
{
    emu_m512 r;
    r.h[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(a));
    r.h[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1));
    return r;
}

/* 16 bytes to 16 int32 lanes, zero- or sign-extended; 32 bytes to 32 int16 lanes */
static inline emu_m512i emu_cvtepu8_epi32(__m128i a)
{
    emu_m512i r;
    uint8_t b[16];
    memcpy(b, &a, 16);
    for (int i = 0; i < 16; i++)
        r.i32[i] = b[i];
    return r;
}

static inline emu_m512i emu_cvtepi8_epi32(__m128i a)
{
    emu_m512i r;
    int8_t b[16];
    memcpy(b, &a, 16);
    for (int i = 0; i < 16; i++)
        r.i32[i] = b[i];
    return r;
}

static inline emu_m512i emu_cvtepu8_epi16(__m256i a)
{
    emu_m512i r;
    uint8_t b[32];
    memcpy(b, &a, 32);
    for (int i = 0; i < 32; i++)
        r.i16[i] = b[i];
    return r;
}

/* From here on the kernel's intrinsics and types name the emulation. */
#define __m512i emu_m512i
#define __m512 emu_m512
#define __mmask64 emu_mask64
#define __mmask16 emu_mask16
#undef _mm512_broadcast_i64x4
#define _mm512_broadcast_i64x4 emu_broadcast_i64x4
#undef _mm512_madd_epi16
#define _mm512_madd_epi16 emu_madd_epi16
#undef _mm512_add_epi32
#define _mm512_add_epi32 emu_add_epi32
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 emu_mullo_epi32
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 emu_sub_epi32
#undef _mm512_fnmadd_ps
#define _mm512_fnmadd_ps emu_fnmadd_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps emu_mul_ps
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 emu_set1_epi32
#undef _mm512_load_si512
#define _mm512_load_si512 emu_load_si512
#undef _mm512_load_ps
#define _mm512_load_ps emu_load_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 emu_setzero_si512
#undef _mm512_setzero_ps
#define _mm512_setzero_ps emu_setzero_ps
#undef _mm512_set1_ps
#define _mm512_set1_ps emu_set1_ps
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 emu_set1_epi8
#undef _mm512_set_epi64
#define _mm512_set_epi64 emu_set_epi64
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 emu_loadu_si512
#undef _mm512_broadcast_i32x4
#define _mm512_broadcast_i32x4 emu_broadcast_i32x4
#undef _mm512_castsi256_si512
#define _mm512_castsi256_si512 emu_castsi256_si512
#undef _mm512_castsi512_si256
#define _mm512_castsi512_si256 emu_castsi512_si256
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 emu_castps512_ps256
#undef _mm512_inserti64x4
#define _mm512_inserti64x4 emu_inserti64x4
#undef _mm512_insertf32x8
#define _mm512_insertf32x8 emu_insertf32x8
#undef _mm512_extracti64x4_epi64
#define _mm512_extracti64x4_epi64 emu_extracti64x4_epi64
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps emu_extractf32x8_ps
#undef _mm512_and_si512
#define _mm512_and_si512 emu_and_si512
#undef _mm512_srlv_epi64
#define _mm512_srlv_epi64 emu_srlv_epi64
#undef _mm512_shuffle_epi8
#define _mm512_shuffle_epi8 emu_shuffle_epi8
#undef _mm512_abs_epi8
#define _mm512_abs_epi8 emu_abs_epi8
#undef _mm512_movepi8_mask
#define _mm512_movepi8_mask emu_movepi8_mask
#undef _mm512_mask_sub_epi8
#define _mm512_mask_sub_epi8 emu_mask_sub_epi8
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 emu_dpbusd_epi32
#undef _mm512_maddubs_epi16
#define _mm512_maddubs_epi16 emu_maddubs_epi16
#undef _mm512_dpwssd_epi32
#define _mm512_dpwssd_epi32 emu_dpwssd_epi32
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps emu_cvtph_ps
#undef _mm512_add_ps
#define _mm512_add_ps emu_add_ps
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 emu_srli_epi16
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 emu_cvtepu8_epi32
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 emu_cvtepi8_epi32
#undef _mm512_cvtepu8_epi16
#define _mm512_cvtepu8_epi16 emu_cvtepu8_epi16
#undef _mm512_slli_epi16
#define _mm512_slli_epi16 emu_slli_epi16
#define _mm512_or_si512 emu_or_si512

static inline bool ne256(__m256i a, __m256i b) { return memcmp(&a, &b, sizeof a) != 0; }
static inline bool neps(__m256 a, __m256 b) { return memcmp(&a, &b, sizeof a) != 0; }

/* The emulation against the AVX2 hardware on each 256-bit half, for random
 * inputs: shuffle, abs, sign mask, maddubs (with saturating pairs), dpbusd
 * and dpwssd (= madd of maddubs / madd plus src where nothing saturates),
 * srlv, srli, slli, or, cvt, fma, fnmadd, mul, float add, madd, add, sub, mullo. Returns the name of the first operation that differs, or
 * NULL. */
static inline const char *avx512_emu_selfcheck(uint64_t seed)
{
    for (int t = 0; t < 2000; t++) {
        emu_m512i a, b, c;
        for (int i = 0; i < 64; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            a.u8[i] = (uint8_t)(seed >> 56);
            b.u8[i] = (uint8_t)(seed >> 48);
            c.u8[i] = (uint8_t)(seed >> 40);
        }
        if (t % 3 == 0) /* shuffle indices with bit 7 clear, as the kernel's */
            for (int i = 0; i < 64; i++)
                b.u8[i] &= 0x0f;
        emu_m512i sh = emu_shuffle_epi8(a, b), ab = emu_abs_epi8(a), mb = emu_maddubs_epi16(a, b);
        emu_m512i c64 = c;
        for (int i = 0; i < 8; i++)
            c64.u64[i] &= 63;
        emu_m512i sr = emu_srlv_epi64(a, c64);
        const emu_mask64 m = emu_movepi8_mask(a);
        /* a with bit 7 clear: maddubs pairs stay below 2*127*127 for b >= -127 */
        emu_m512i a7 = a, b7 = b;
        for (int i = 0; i < 64; i++) {
            a7.u8[i] &= 0x7f;
            if (b7.i8[i] == -128)
                b7.i8[i] = -127;
        }
        emu_m512i dp = emu_dpbusd_epi32(c, a7, b7), dw = emu_dpwssd_epi32(c, a, b);
        emu_m512 fa, fb, fc;
        for (int i = 0; i < 16; i++) {
            fa.f[i] = (float)a.i32[i] * 1e-6f;
            fb.f[i] = (float)b.i32[i] * 1e-7f;
            fc.f[i] = (float)c.i32[i] * 1e-3f;
        }
        emu_m512 fm = emu_fmadd_ps(fa, fb, fc), cv = emu_cvtepi32_ps(a), mu = emu_mul_ps(fa, fb);
        emu_m512 fn = emu_fnmadd_ps(fa, fb, fc), fad = emu_add_ps(fa, fc);
        emu_m512i md = emu_madd_epi16(a, b), su = emu_sub_epi32(a, b), ad32 = emu_add_epi32(a, b);
        emu_m512i ml = emu_mullo_epi32(a, b), s16 = emu_srli_epi16(a, 4), l16 = emu_slli_epi16(a, 3),
                  orr = emu_or_si512(a, b);
        for (int h = 0; h < 2; h++) {
            const __m256i ha = a.h[h], hb = b.h[h], hc = c.h[h];
            if (ne256(sh.h[h], _mm256_shuffle_epi8(ha, hb)))
                return "shuffle_epi8";
            if (ne256(ab.h[h], _mm256_abs_epi8(ha)))
                return "abs_epi8";
            if ((uint32_t)(m >> (32 * h)) != (uint32_t)_mm256_movemask_epi8(ha))
                return "movepi8_mask";
            if (ne256(mb.h[h], _mm256_maddubs_epi16(ha, hb)))
                return "maddubs_epi16";
            if (ne256(sr.h[h], _mm256_srlv_epi64(ha, c64.h[h])))
                return "srlv_epi64";
            const __m256i want_dp = _mm256_add_epi32(
                hc, _mm256_madd_epi16(_mm256_maddubs_epi16(a7.h[h], b7.h[h]), _mm256_set1_epi16(1)));
            if (ne256(dp.h[h], want_dp))
                return "dpbusd_epi32";
            if (ne256(dw.h[h], _mm256_add_epi32(hc, _mm256_madd_epi16(ha, hb))))
                return "dpwssd_epi32";
            if (neps(fm.h[h], _mm256_fmadd_ps(fa.h[h], fb.h[h], fc.h[h])))
                return "fmadd_ps";
            if (neps(cv.h[h], _mm256_cvtepi32_ps(ha)))
                return "cvtepi32_ps";
            if (neps(mu.h[h], _mm256_mul_ps(fa.h[h], fb.h[h])))
                return "mul_ps";
            if (neps(fn.h[h], _mm256_fnmadd_ps(fa.h[h], fb.h[h], fc.h[h])))
                return "fnmadd_ps";
            if (neps(fad.h[h], _mm256_add_ps(fa.h[h], fc.h[h])))
                return "add_ps";
            if (ne256(md.h[h], _mm256_madd_epi16(ha, hb)))
                return "madd_epi16";
            if (ne256(su.h[h], _mm256_sub_epi32(ha, hb)))
                return "sub_epi32";
            if (ne256(ad32.h[h], _mm256_add_epi32(ha, hb)))
                return "add_epi32";
            if (ne256(ml.h[h], _mm256_mullo_epi32(ha, hb)))
                return "mullo_epi32";
            if (ne256(s16.h[h], _mm256_srli_epi16(ha, 4)))
                return "srli_epi16";
            if (ne256(l16.h[h], _mm256_slli_epi16(ha, 3)))
                return "slli_epi16";
            if (ne256(orr.h[h], _mm256_or_si256(ha, hb)))
                return "or_si512";
        }
    }
    return NULL;
}

#endif
