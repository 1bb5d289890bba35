/* kern_impl.h - internal to src/kernels: ggml block layouts (byte-exact, with
 * static_asserts), the scalar reference functions (ref/), and the SIMD
 * variants (x86/avx2, x86/avx512) that dispatch.c wires into the ops tables.
 * Not for use outside src/kernels (and tests/kernels). */
#ifndef SPOKE_KERN_IMPL_H
#define SPOKE_KERN_IMPL_H

#include <assert.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

typedef uint16_t kern_half; /* IEEE binary16 bits */

/* ---- block layouts (ggml-common.h) */
typedef struct {
    kern_half d;
    uint8_t qs[KERN_QK / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

typedef struct {
    kern_half d;
    kern_half m;
    uint8_t qs[KERN_QK / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

typedef struct {
    kern_half d;
    uint8_t qh[4];
    uint8_t qs[KERN_QK / 2];
} block_q5_0;
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

typedef struct {
    kern_half d;
    kern_half m;
    uint8_t qh[4];
    uint8_t qs[KERN_QK / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

typedef struct {
    kern_half d;
    int8_t qs[KERN_QK];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

typedef struct {
    kern_half d; /* delta */
    kern_half s; /* d * sum(qs) */
    int8_t qs[KERN_QK];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

typedef struct {
    uint8_t scales[KERN_QK_K / 16]; /* low 4 bits scale, high 4 bits min */
    uint8_t qs[KERN_QK_K / 4];      /* 2-bit quants */
    kern_half d;
    kern_half dmin;
} block_q2_K;
static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");

typedef struct {
    uint8_t hmask[KERN_QK_K / 8]; /* high bit */
    uint8_t qs[KERN_QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];           /* 16 6-bit scales */
    kern_half d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");

typedef struct {
    kern_half d;
    kern_half dmin;
    uint8_t scales[12]; /* 8 6-bit scales + 8 6-bit mins */
    uint8_t qs[KERN_QK_K / 2];
} block_q4_K;
static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

typedef struct {
    kern_half d;
    kern_half dmin;
    uint8_t scales[12];
    uint8_t qh[KERN_QK_K / 8];
    uint8_t qs[KERN_QK_K / 2];
} block_q5_K;
static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

typedef struct {
    uint8_t ql[KERN_QK_K / 2];     /* low 4 bits */
    uint8_t qh[KERN_QK_K / 4];     /* high 2 bits */
    int8_t scales[KERN_QK_K / 16]; /* 8-bit scales */
    kern_half d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

typedef struct {
    float d;
    int8_t qs[KERN_QK_K];
    int16_t bsums[KERN_QK_K / 16]; /* sums of qs in groups of 16 */
} block_q8_K;
static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

typedef struct {
    kern_half d;
    uint8_t qs[KERN_QK / 2]; /* 4-bit indices into kern_iq4nl_values */
} block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

typedef struct {
    kern_half d;
    uint16_t scales_h;                /* high 2 bits of the 8 6-bit scales */
    uint8_t scales_l[KERN_QK_K / 64]; /* low 4 bits, two per byte */
    uint8_t qs[KERN_QK_K / 2];        /* 4-bit indices, 16 bytes per 32-block */
} block_iq4_xs;
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

/* The 16 levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl), ref/quant_iq4.c. */
extern const int8_t kern_iq4nl_values[16];

/* ---- fp16 (inline for the scalar hot paths; exact, round-to-nearest-even) */
static inline float kern_f16(kern_half h) { return kern_fp16_to_fp32(h); }
static inline kern_half kern_h16(float f) { return kern_fp32_to_fp16(f); }

/* ggml's nearest_int: round half to even via the 1.5*2^23 trick (|f| < 2^22). */
static inline int kern_nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* 6-bit scale/min j of a Q4_K/Q5_K scales[12] array. */
static inline void kern_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* ---- function shapes */
typedef void (*kern_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*kern_from_float_fn)(const float *src, void *dst, int64_t n);
typedef void (*kern_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

/* Generic gemm: loops rows x batch calling vec_dot (used by ref and as a
 * fallback). */
void kern_gemm_generic(kern_vec_dot_fn vec_dot, int64_t k, int64_t r0, int64_t r1,
                       int64_t n_batch, const void *w, size_t w_stride, const void *x,
                       size_t x_stride, float *y, size_t y_stride);

/* ---- reference (ref/) */
#define KERN_REF_TYPES(X)                                                                  \
    X(f32) X(f16) X(bf16) X(q4_0) X(q4_1) X(q5_0) X(q5_1) X(q8_0) X(q8_1) X(q2_K) X(q3_K) \
        X(q4_K) X(q5_K) X(q6_K) X(q8_K) X(iq4_nl) X(iq4_xs)

#define KERN_DECL_REF(t)                                                      \
    void kern_ref_to_float_##t(const void *src, float *dst, int64_t n);       \
    void kern_ref_from_float_##t(const float *src, void *dst, int64_t n);
KERN_REF_TYPES(KERN_DECL_REF)
#undef KERN_DECL_REF

void kern_ref_vec_dot_f32(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_f16(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_bf16(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q4_0(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q4_1(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q5_0(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q5_1(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q8_0(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q2_K(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q3_K(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q4_K(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q5_K(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_q6_K(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_iq4_nl(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_iq4_xs(int64_t n, float *s, const void *x, const void *y);


/* ref/order.c: llama.cpp's (ggml AVX-512) float orders; see that file. The
 * scalar tails below are shared by ref/order.c and x86/order_simd.h, so every
 * ISA finishes a row exactly alike. */
/* ggml_vec_dot_f32's tail as gcc compiles it: the first multiple of 8
 * products unfused, the last n % 8 fused. */
static inline float kern_vd_tail_f32(float sumf, int64_t np, int64_t n, const float *x, const float *y)
{
    const int64_t nu = np + ((n - np) & ~(int64_t)7);
    for (int64_t i = np; i < nu; i++)
        sumf += x[i] * y[i];
    for (int64_t i = nu; i < n; i++)
        sumf = fmaf(x[i], y[i], sumf);
    return sumf;
}
/* ggml_vec_dot_f16's tail: in double. h2f converts a half (exactly: the
 * reference's kern_f16, or F16C in the SIMD files, which decode uses on
 * every attention row). */
static inline float kern_vd_tail_f16(double sumd, int64_t np, int64_t n, const kern_half *x, const kern_half *y,
                                     float (*h2f)(kern_half))
{
    for (int64_t i = np; i < n; i++)
        sumd += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sumd;
}
/* ggml_vec_soft_max_f32 / ggml_vec_silu_f32 past the last 16-wide chunk: expf. */
static inline double kern_softmax_tail(int64_t i, int64_t n, float *y, const float *x, float max, double sum)
{
    for (; i < n; i++) {
        const float val = expf(x[i] - max);
        sum += (double)val;
        y[i] = val;
    }
    return sum;
}
/* ggml's RoPE rotation as gcc compiles it (vectorised, contracted: the first
 * product of each line fused); instantiated in ref/ and in the AVX2 file,
 * where fmaf is one instruction. */
static inline void kern_rope_impl(float *v, const float *cache, int n_rot, bool neox)
{
    const int half = n_rot / 2;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float c = cache[i0], s = cache[i0 + 1];
        const int a = neox ? i0 / 2 : i0, b = neox ? i0 / 2 + half : i0 + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = fmaf(x0, c, -(x1 * s));
        v[b] = fmaf(x0, s, x1 * c);
    }
}
static inline void kern_silu_tail(int64_t i, int64_t n, float *y, const float *x)
{
    for (; i < n; i++)
        y[i] = x[i] / (1.0f + expf(-x[i]));
}
float kern_reduce16(const float v[16]);
void kern_ref_vec_dot_tb_f32(int64_t n, float *s, const void *x, const void *y);
void kern_ref_vec_dot_tb_f16(int64_t n, float *s, const void *x, const void *y);
float kern_ref_v_expf(float x);
double kern_ref_softmax_exp(int64_t n, float *y, const float *x, float max);
void kern_ref_silu_row(int64_t n, float *y, const float *x);
float kern_ref_scale_max_row(float *x, int64_t n, float s);
void kern_ref_scale_row(float *x, int64_t n, float s);
void kern_ref_rope(float *v, const float *cache, int n_rot, bool neox);
/* ref/order_avx2build.c: the same functions in ggml's AVX2 build order
 * (KERN_ORDER_AVX2; tinyBLAS there needs n % 8 == 0). */
void kern_ref256_vec_dot_f32(int64_t n, float *s, const void *x, const void *y);
void kern_ref256_vec_dot_f16(int64_t n, float *s, const void *x, const void *y);
void kern_ref256_vec_dot_tb_f32(int64_t n, float *s, const void *x, const void *y);
void kern_ref256_vec_dot_tb_f16(int64_t n, float *s, const void *x, const void *y);
float kern_ref256_v_expf(float x);
double kern_ref256_softmax_exp(int64_t n, float *y, const float *x, float max);
void kern_ref256_silu_row(int64_t n, float *y, const float *x);

/* ---- Q8_0 repacked at load in groups of 16 rows (ref/repack_q8.c; struct
 * kern_repack). A group of k elements is nb = k / 32 blocks, stored in
 * pairs of 1088 bytes (one stream of 64-byte lines; an odd last block is
 * paired with zeros): the quants of block 2i at + 0, of block 2i + 1 at
 * + 512, then their scales at + 1024 and + 1056. A block's quants are 8
 * vectors of 64 bytes, vector g holding elements 4g..4g+3 of rows 0..15
 * (4 bytes per row, row r at + 4 r) as unsigned u = q + 128 (q ^ 0x80); its
 * scales are the 16 rows' F16 values. Padded rows are q = 0, d = 0. Every
 * output sums in ggml's x86 Q8_0 order, kern_ref_vec_dot_q8_0's: 8 float
 * lanes, lane g taking per block fmaf(fl(d_w * d_x), (float)isum_g, lane)
 * with isum_g the exact integer dot of elements 4g..4g+3, then
 * hsum_float_8's tree; vector g of a block is exactly lane g of all 16
 * rows. */
#define KERN_Q8R_ROWS 16
#define KERN_Q8R_PAIR 1088
static inline size_t kern_q8r_qoff(int64_t ib) { return (size_t)(ib >> 1) * KERN_Q8R_PAIR + (size_t)(ib & 1) * 512; }
static inline size_t kern_q8r_doff(int64_t ib)
{
    return (size_t)(ib >> 1) * KERN_Q8R_PAIR + 1024 + (size_t)(ib & 1) * 32;
}
size_t kern_q8r_group_bytes(int64_t k);
void kern_q8r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst);
void kern_q8r_row_to_float(const void *grp, int lane, float *dst, int64_t k);
void kern_ref_q8r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws);
extern const struct kern_repack kern_ref_q8_0_rp;

/* ---- Q4_0 repacked at load in groups of 16 rows (ref/repack_q4.c): blocks
 * in pairs of 576 bytes (an odd last block paired with zeros): the nibbles
 * of block 2i at + 0, of block 2i + 1 at + 256, their scales (16 F16) at
 * + 512 and + 544. A block's nibbles are 4 vectors of 64 bytes, vector c
 * holding bytes 4c..4c+3 of each row's qs (row r at + 4 r): low nibbles =
 * elements 4c..4c+3, high nibbles = elements 16+4c..16+4c+3, as stored
 * (u = q + 8). Rows 0..7 are a vector's first 32 bytes (AVX2 takes a group
 * as two halves). Padded rows are q = 0 (u = 8), d = 0. The order is the Q4_0 panel
 * gemm's (ops->gemm_ws, docs/PARITY.md): per output one accumulator,
 *   acc = fmaf(fl(d_w * d_x), (float)isum, acc) per block,
 * isum the exact integer block dot. */
#define KERN_Q4R_ROWS 16
#define KERN_Q4R_PAIR 576
static inline size_t kern_q4r_qoff(int64_t ib) { return (size_t)(ib >> 1) * KERN_Q4R_PAIR + (size_t)(ib & 1) * 256; }
static inline size_t kern_q4r_doff(int64_t ib)
{
    return (size_t)(ib >> 1) * KERN_Q4R_PAIR + 512 + (size_t)(ib & 1) * 32;
}
/* Q5_0 the same way (ref/repack_q4.c): pairs of 704 bytes, the nibbles of
 * blocks 2i, 2i + 1 at + 0 and + 256 (as Q4_0's), their high bits at + 512
 * and + 576 (row r's 4 bytes at + 4 r, byte t's bit g = element 4g + t's
 * fifth bit, so group g's bits come out with one shift and one mask), their
 * scales at + 640 and + 672; u = q + 16, the Q5_0 panel's order. */
#define KERN_Q5R_PAIR 704
static inline size_t kern_q5r_qoff(int64_t ib) { return (size_t)(ib >> 1) * KERN_Q5R_PAIR + (size_t)(ib & 1) * 256; }
static inline size_t kern_q5r_hoff(int64_t ib)
{
    return (size_t)(ib >> 1) * KERN_Q5R_PAIR + 512 + (size_t)(ib & 1) * 64;
}
static inline size_t kern_q5r_doff(int64_t ib)
{
    return (size_t)(ib >> 1) * KERN_Q5R_PAIR + 640 + (size_t)(ib & 1) * 32;
}
size_t kern_q5r_group_bytes(int64_t k);
void kern_q5r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst);
void kern_q5r_row_to_float(const void *grp, int lane, float *dst, int64_t k);
void kern_ref_q5r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws);
size_t kern_q4r_group_bytes(int64_t k);
void kern_q4r_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst);
void kern_q4r_row_to_float(const void *grp, int lane, float *dst, int64_t k);
void kern_ref_q4r_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t y_stride, void *ws);
/* the reference layouts as tables (tests compare every variant with them) */
extern const struct kern_repack kern_ref_q4_0_rp, kern_ref_q5_0_rp;
/* Whether the repacked one-row (decode) tiles of Q4_0, Q5_0 and Q4_K
 * prefetch their weight stream (each kernel says how far ahead), and the
 * AVX-512 batched Q4_K/Q6_K tiles also into L1 (rp_qk_avx512.c). Set by
 * kern_init from the CPU's vendor: on an Intel Xeon the hardware prefetcher
 * alone streamed Q4_0/Q5_0 groups at 14-20 GB/s on 2 threads and with the
 * prefetch at 22-26 (tg +25-45 %), Q4_K 23-24 -> 25-26 (tinyllama1b Q4_K_M
 * tg +5-9 %); on an AMD Zen 4 the prefetch streamed faster in bench_kernels
 * but decoded slower end to end, and Q4_K's one-row tile streamed faster
 * without it. */
extern bool kern_dec_pf;

/* ---- Q4_K and Q6_K repacked at load in groups of 16 rows (ref/repack_qk.c).
 * A group of k elements is k / 256 super-blocks back to back, each a whole
 * number of 64-byte lines. Vector v (64 bytes) holds 4 bytes of each of the
 * 16 rows (row r at + 4 r; rows 0..7 are its first 32 bytes):
 * Q4_K (2368 bytes): vectors v = 8p + g (p 0..3, g 0..7) at + 64 v are
 *   qs[32p + 4g .. + 3] of each row: low nibbles = elements 4g.. of chunk
 *   2p (32 elements), high nibbles = those of chunk 2p + 1; then the 6-bit
 *   scales as bytes [chunk c][row] at + 2048, the mins as bytes
 *   [c / 2][row][c % 2] at + 2176 (pairs for pmaddwd), d[16] and dmin[16]
 *   as F16 at + 2304 and + 2336.
 * Q6_K (3392 bytes): 64-byte vectors v = 8p + g (at KERN_Q6KR_QL(v)) are
 *   ql[32p + 4g ..] (p = 2h + t: low nibbles = chunk 4h + t, high = chunk
 *   4h + 2 + t), vectors 8h + g (at KERN_Q6KR_QHV(v)) are qh[32h + 4g ..]
 *   (bits 2s, 2s + 1 = the high bits of chunk 4h + s), stored in the order a
 *   one-row pass first touches them: ql p 0, qh h 0, ql p 1, 2, qh h 1, ql
 *   p 3 (8 vectors each: the stream only goes forward); then the int8
 *   scales as [sub-block j of 16][row] at + 3072, d[16] as F16 at + 3328,
 *   32 bytes of padding.
 * Padded rows are zero (d = 0). The order is the K-quant panels'
 * (ops->gemm_ws, docs/PARITY.md; ref/repack_qk.c gives it). */
#define KERN_QKR_ROWS 16
#define KERN_Q4KR_SB 2368
#define KERN_Q4KR_SC 2048
#define KERN_Q4KR_MN 2176
#define KERN_Q4KR_D 2304
#define KERN_Q4KR_DM 2336
#define KERN_Q6KR_SB 3392
/* byte offsets of ql vector v (p = v / 8) and qh vector v (h = v / 8) */
#define KERN_Q6KR_QL(v) (512 * ((v) / 8 + ((v) / 8 + 1) / 2) + 64 * ((v) % 8))
#define KERN_Q6KR_QHV(v) (512 + 1536 * ((v) / 8) + 64 * ((v) % 8))
#define KERN_Q6KR_SC 3072
#define KERN_Q6KR_D 3328
/* Per activation row and super-block, what the Q4_K gemms over this layout
 * need besides the quants: the 32-element sums of chunks 2i, 2i + 1 as an
 * int16 pair (the mins' partners) and the row's scale (avx2_q4kr_sums,
 * x86/avx2/avx2_util.h: bp[i] = (b[4i] + b[4i+1]) | (b[4i+2] + b[4i+3]) << 16,
 * int16 wrapping, b the super-block's bsums). */
struct kern_q4kr_x {
    int32_t bp[4];
    float dx;
    int32_t pad[3];
};
size_t kern_q4kr_group_bytes(int64_t k);
size_t kern_q6kr_group_bytes(int64_t k);
void kern_q4kr_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst);
void kern_q6kr_pack(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst);
void kern_q4kr_row_to_float(const void *grp, int lane, float *dst, int64_t k);
void kern_q6kr_row_to_float(const void *grp, int lane, float *dst, int64_t k);
void kern_ref_q4kr_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws);
void kern_ref_q6kr_gemm(int64_t k, int64_t r0, int64_t r1, int64_t n_batch, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t y_stride, void *ws);
extern const struct kern_repack kern_ref_q4_K_rp, kern_ref_q6_K_rp;

/* ---- SIMD variant tables. Each ISA file set exports one function that
 * fills, for the types it accelerates, the fields it provides (vec_dot,
 * gemm, and quantize_act for activation types); others are left as is. */
void kern_avx2_fill(struct kern_type_ops *ops, enum gg_type type);
void kern_avx2_fill_order(struct kern_type_ops *ops, enum gg_type type); /* order_avx2.c */
double kern_avx2_softmax_exp(int64_t n, float *y, const float *x, float max);
void kern_avx2_silu_row(int64_t n, float *y, const float *x);
void kern_avx2_rope(float *v, const float *cache, int n_rot, bool neox); /* order_avx2.c */
void kern_avx2_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n);
void kern_avx2_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n);
float kern_avx2_scale_max_row(float *x, int64_t n, float s);
void kern_avx2_scale_row(float *x, int64_t n, float s);
void kern_avx512_fill(struct kern_type_ops *ops, enum gg_type type);
void kern_avx512_fill_order(struct kern_type_ops *ops, enum gg_type type); /* order_avx512.c */
double kern_avx512_softmax_exp(int64_t n, float *y, const float *x, float max);
void kern_avx512_silu_row(int64_t n, float *y, const float *x);

#endif
