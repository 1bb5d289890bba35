/* kernels.h - tensor-type kernels: dequantize, quantize, dot products and the
 * batched matmul over quantized weight rows.
 *
 * ref/ holds the scalar reference (the spec: block layouts exactly as ggml),
 * x86/avx2/ and x86/avx512/ hold SIMD variants in their own files with their
 * own -m flags; dispatch.c picks the best variant per type once, from CPU
 * features, into a const table. Block structs carry static_asserts on size.
 *
 * Activations: for a quantized weight type W, the activation row is first
 * quantized to ops->vec_dot_type (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1,
 * Q8_K for the K-quants, F16 for F16, BF16 for BF16, F32 for F32), exactly as llama.cpp
 * does, then dotted with the weight rows. All functions are thread-safe and
 * allocate nothing. */
#ifndef SPOKE_KERNELS_H
#define SPOKE_KERNELS_H

#include "base/base.h"
#include "gguf/gguf.h"

#define KERN_QK 32    /* block size of the simple quants */
#define KERN_QK_K 256 /* super-block size of the K-quants */

enum kern_isa { KERN_ISA_REF = 0, KERN_ISA_AVX2 = 1, KERN_ISA_AVX512 = 2, KERN_ISA_COUNT };

/* Batched matmul over one weight matrix:
 *   for b in [0, n_batch), r in [r0, r1):
 *     y[b * y_stride + r] = dot(w row r, x row b)
 * w: weight rows of type T, row r at (const char *)w + r * w_stride (bytes);
 * x: activation rows already in T's vec_dot_type, row b at x + b * x_stride bytes;
 * k: elements per row (multiple of the block size). Implementations should
 * load each weight row once for all n_batch activation rows. */
typedef void (*kern_gemm_fn)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch,
                             const void *w, size_t w_stride, const void *x, size_t x_stride,
                             float *y, size_t y_stride);

/* A gemm with a per-thread workspace `ws` of KERN_GEMM_WS_BYTES bytes
 * (64-byte aligned, contents undefined on entry): prefill-size batches,
 * where weight rows are unpacked once into a panel in ws and then
 * multiplied with every activation row. Same contract as kern_gemm_fn. */
typedef void (*kern_gemm_ws_fn)(int64_t k, int64_t r0, int64_t r1, int64_t n_batch,
                                const void *w, size_t w_stride, const void *x, size_t x_stride,
                                float *y, size_t y_stride, void *ws);
#define KERN_GEMM_WS_BYTES ((size_t)256 << 10)
/* Batches below this many activation rows use gemm (decode, small batches),
 * unless the type sets ws_min_batch. */
#define KERN_GEMM_WS_MIN_BATCH 8

/* Load-time repacking (ops->rp; NULL when the type has none on this ISA).
 * A backend may rearrange a weight matrix once, when it binds it, into
 * groups of `rows` interleaved weight rows (group i holds rows
 * [i * rows, (i + 1) * rows); a short last group is padded with zero rows),
 * each group_bytes(k) bytes (a multiple of 64), groups back to back from a
 * 64-byte aligned base. gemm then serves every batch size, decode included,
 * from that layout, and each output is summed in one order whatever the
 * batch and the row range (so a row's result never depends on what else is
 * in the batch; docs/PARITY.md gives the order). */
struct kern_repack {
    int rows;
    size_t (*group_bytes)(int64_t k);
    /* Pack n (1..rows) rows of k elements (row r at w + r * w_stride) into one group at dst. */
    void (*pack)(const void *w, size_t w_stride, int64_t n, int64_t k, void *dst);
    /* Row `lane` of the group at grp as F32: to_float's bits for the original row. */
    void (*row_to_float)(const void *grp, int lane, float *dst, int64_t k);
    /* kern_gemm_ws_fn over packed groups: w = group 0, w_stride =
     * group_bytes(k), r0 a multiple of rows, r1 <= the matrix's rows. */
    kern_gemm_ws_fn gemm;
};

struct kern_type_ops {
    enum gg_type type;
    enum gg_type vec_dot_type;
    /* Dequantize n elements (multiple of the block size). */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* Quantize n elements (multiple of block size) with the reference
     * quantizer (incl. the K-quant scale search). Used by `spoke quantize`. */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* Fast quantizer used for activations into this type when it is a
     * vec_dot_type (Q8_0, Q8_1, Q8_K, F16, BF16, F32); NULL otherwise. */
    void (*quantize_act)(const float *src, void *dst, int64_t n);
    /* *s = dot(x (this type), y (vec_dot_type)) over n elements. */
    void (*vec_dot)(int64_t n, float *s, const void *x, const void *y);
    kern_gemm_fn gemm;
    /* F32 and F16 only (NULL otherwise): gemm in tinyBLAS's summation order
     * (k must be a multiple of 16); their vec_dot and gemm use ggml_vec_dot's
     * order (ref/order.c). Both are bit-identical on every ISA. Pick with
     * kern_pick_gemm. */
    kern_gemm_fn gemm_tb;
    /* F16 only, optional (NULL if none): gemm_tb with x given as F32 rows
     * whose values are F16 (kern_round_fp16_row), the same bits as gemm_tb on
     * their F16 form; saves converting the activations in every tile. */
    kern_gemm_fn gemm_tb_hx;
    /* F16 only, optional: gemm (vec_dot order) with x as F32 halves, the
     * same bits as gemm on their F16 form. */
    kern_gemm_fn gemm_hx;
    /* Optional (NULL if none): the panel gemm for batches from
     * ws_min_batch rows on; its float order may differ from gemm's (Q4_0/Q5_0
     * and the K-quants, ws_exact false) or be vec_dot's (Q8_0, IQ4_NL,
     * IQ4_XS: ws_exact; docs/PARITY.md). */
    kern_gemm_ws_fn gemm_ws;
    /* Batches of at least this many rows use gemm_ws (when set); below it
     * gemm. KERN_GEMM_WS_MIN_BATCH unless the type's panel was measured to win
     * earlier (kern_use_ws). */
    int ws_min_batch;
    /* gemm_ws gives the same bits as gemm for every row (so it may serve
     * decode rows, whose results must not depend on the batch). */
    bool ws_exact;
    /* Optional: the type's load-time repacked layout and its gemm. */
    const struct kern_repack *rp;
    enum kern_isa isa; /* which variant provided vec_dot/gemm */
};

/* Whether a batch of n_batch rows goes to ops->gemm_ws. */
static inline bool kern_use_ws(const struct kern_type_ops *ops, int64_t n_batch)
{
    return ops->gemm_ws && n_batch >= (ops->ws_min_batch > 0 ? ops->ws_min_batch : KERN_GEMM_WS_MIN_BATCH);
}

/* Detect CPU features once and fill the dispatch table (idempotent, thread-safe). */
void kern_init(void);
/* Best available ops for a type (calls kern_init), or NULL if unsupported. */
const struct kern_type_ops *kern_ops(enum gg_type type);
/* Ops of one ISA level (NULL if that ISA has no variant for the type, or the
 * CPU lacks it): for tests comparing each variant to the reference. */
const struct kern_type_ops *kern_ops_isa(enum kern_isa isa, enum gg_type type);
/* Float order of the F32/F16 dots and gemms, the softmax exponentials and
 * SiLU: that of ggml's AVX-512 build (the default; 16-lane sums, SIMD
 * kernels) or of its AVX2 build (8-lane sums; scalar reference kernels,
 * ref/order_avx2build.c). llama.cpp's results depend on which build made
 * them; SPOKE_ORDER=avx2|avx512 selects the order once, at kern_init
 * (docs/PARITY.md). Quantized dots are not affected. */
enum kern_order { KERN_ORDER_AVX512 = 0, KERN_ORDER_AVX2 = 1 };
enum kern_order kern_order_used(void);
/* Highest ISA this CPU supports; can be capped with SPOKE_ISA=ref|avx2|avx512. */
enum kern_isa kern_isa_best(void);
const char *kern_isa_name(enum kern_isa isa);

/* Half/bfloat conversion (scalar, exact round-to-nearest-even). */
float kern_fp16_to_fp32(uint16_t h);
uint16_t kern_fp32_to_fp16(float f);
float kern_bf16_to_fp32(uint16_t h);
uint16_t kern_fp32_to_bf16(float f);

/* Rows of the same conversions (dispatched to F16C; results identical to the
 * scalar functions above). Use these instead of per-element loops. */
void kern_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n);
void kern_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n);
/* dst[i] = the F16 value nearest src[i] (round to nearest even), as F32:
 * the activations of gemm_tb_hx. dst may be src. */
void kern_round_fp16_row(const float *src, float *dst, int64_t n);
/* x[i] *= s for every i; kern_scale_max_row also returns the largest product
 * (NaNs skipped; -INFINITY if none), as a scalar loop would (a tie of +0 and
 * -0 may give either, which no later subtraction tells apart). */
float kern_scale_max_row(float *x, int64_t n, float s);
void kern_scale_row(float *x, int64_t n, float s);


/* The gemm llama.cpp's CPU backend would use for an m x k weight and a batch
 * of n_batch rows: tinyBLAS order when the type has one, n_batch >= 2,
 * k % 16 == 0 (k % 8 == 0 in the AVX2 order) and m % 4 == 0
 * (llamafile_sgemm's conditions), else ops->gemm. */
kern_gemm_fn kern_pick_gemm(const struct kern_type_ops *ops, int64_t m, int64_t k, int64_t n_batch);
/* The variant of gemm (ops->gemm or ops->gemm_tb of an F16 type) that takes
 * the activations as F32 halves (kern_round_fp16_row) with the same bits, or
 * NULL if there is none. */
kern_gemm_fn kern_hx_gemm(const struct kern_type_ops *ops, kern_gemm_fn gemm);

/* llama.cpp's softmax exponentials (ggml_vec_soft_max_f32): y[i] =
 * exp(x[i] - max), 16-wide chunks with ggml's v_expf polynomial and the rest
 * with expf; returns the sum (each chunk summed as a 16-lane tree, added in
 * double). Bit-identical on every ISA. */
double kern_softmax_exp(int64_t n, float *y, const float *x, float max);
/* llama.cpp's SiLU row (ggml_vec_silu_f32): y = x / (1 + exp(-x)), same
 * chunking. y may equal x. */
void kern_silu_row(int64_t n, float *y, const float *x);
/* llama.cpp's RoPE rotation of one head (v: n_rot floats rotated in place;
 * cache: cos/sin pairs), adjacent pairs or NeoX halves. Bit-identical on
 * every ISA. */
void kern_rope(float *v, const float *cache, int n_rot, bool neox);

#endif
