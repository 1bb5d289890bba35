/* backend.h - compute backends for the forward pass.
 *
 * A struct backend is one execution resource for ONE generation context: a
 * persistent thread pool plus the scratch it needs for matmuls (quantized
 * activations). It is created once per context and does no allocation, lock
 * or system call per token (workers spin, then sleep on a condition variable
 * only when idle for a while). Work is split by rows into one contiguous
 * segment per thread, claimed in chunks front to back, the rest of a slow
 * thread's stolen from its back (no barriers).
 *
 * The forward pass (src/model) reaches compute ONLY through struct
 * backend_ops (a vtable), so that a CUDA or Metal backend can plug in later:
 * today only "cpu" exists (src/backend/cpu: cpu.c pool and matmul, cpu_ops.c
 * element-wise ops, cpu_attn.c attention). Ops take float activations in
 * memory the backend can address (host memory for "cpu"), row-major with the
 * strides given; each op's contract (shapes, strides, in place or not) is
 * stated at its member or argument struct. The kernels stay behind the
 * boundary: this header does not include kernels/kernels.h and
 * tools/checksrc rejects any kernels/ header reaching src/model.
 *
 * Device choice (backend_choose): probe CUDA (dlopen libcuda.so.1 +
 * cuDeviceGetCount), then Metal (macOS only), then CPU; the result says which
 * backend was chosen and why the others were skipped, and is logged.
 * backend_device_new makes that kind's struct backend_device for one loaded
 * model: it binds and releases the model's weights (a view on "cpu", an
 * upload on a GPU kind) and creates its contexts' backends (device.c, the
 * "cpu" kind in cpu/cpu_dev.c). */
#ifndef SPOKE_BACKEND_H
#define SPOKE_BACKEND_H

#include "base/base.h"
#include "gguf/gguf.h"

/* The kernels' per-type table: opaque outside the backend (model/ cannot
 * reach the kernels; only src/backend/ includes kernels/kernels.h). */
struct kern_type_ops;

/* A weight matrix as the backend sees it: rows of `k` elements of `type`,
 * row r at data + r * row_bytes, where the backend kind that bound it
 * (backend_weight_bind) put them: a view into the GGUF mapping on "cpu"
 * (owned NULL), or storage the bind allocated (a device upload, a repacked
 * copy: owned non-NULL, freed by backend_weight_release). A zeroed struct
 * is an unbound weight (data NULL). */
struct backend_weight {
    enum gg_type type;
    int64_t k;          /* elements per row (ne0) */
    int64_t rows;       /* number of rows (ne1) = output features */
    size_t row_bytes;   /* bytes per row */
    const void *data;   /* first row (device memory on a GPU kind) */
    const struct kern_type_ops *ops; /* the backend's kernels for type (opaque outside src/backend) */
    void *owned;        /* storage the bind allocated, or NULL (a view) */
    size_t owned_bytes; /* its size */
    /* > 0: the bind repacked the rows into the kernels' interleaved layout,
     * groups of grp_rows rows, grp_bytes each, from data (struct kern_repack
     * on "cpu"); 0: row r at data + r * row_bytes. */
    int grp_rows;
    size_t grp_bytes;
};

/* One matmul of a multi-matmul call: y[b * y_stride + r] = w row r . x row b. */
struct backend_mm {
    const struct backend_weight *w;
    float *y;           /* output, n_batch rows of y_stride floats */
    size_t y_stride;    /* floats between batch rows of y (>= w->rows) */
};

struct backend;
struct backend_device;

enum backend_act { BACKEND_ACT_SILU = 0, BACKEND_ACT_GELU }; /* GELU: tanh approximation */

/* Arguments of backend_ops.rms_norm, per row i in [0, n) (rows of dim floats,
 * row i at base + i * stride floats for x, add and out):
 *   x += add (when add != NULL); x += bias (when bias != NULL);
 *   out = rmsnorm(x) * w (when w != NULL; out may equal x, else distinct). */
struct backend_norm {
    float *x;
    const float *add;  /* [n][stride] or NULL */
    const float *bias; /* [dim] or NULL */
    float *out;        /* [n][stride]; unused when w is NULL */
    const float *w;    /* [dim] norm weight or NULL (no norm) */
    int64_t n, dim;
    size_t stride;     /* floats between rows */
    float eps;
};

/* One layer of a KV cache as the attention ops see it (kv.h owns the cache
 * and its layout): K is [n_cells][kv_dim] (row of cell c at k + c * kv_dim
 * elements), V is transposed, [kv_dim][n_cells] (row of dim d at v + d *
 * n_cells elements); elements are F16 or F32. Cells >= hwm were never
 * written and are still zero. */
struct backend_kv {
    void *k;
    void *v;
    enum gg_type type;  /* GG_TYPE_F16 or GG_TYPE_F32 */
    int n_cells, kv_dim;
    int hwm;
};

/* The tokens of a forward batch as the attention ops see them, row i of the
 * q/k/v/out arrays being token i. A sequence's tokens are consecutive rows
 * with consecutive positions; its position p lives in cell cell0 + p, or,
 * in a sliding-window layer's ring (ring > 0, kv.h), in cells
 * cell0 + p % ring and cell0 + p % ring + ring (both are written; attention
 * reads any ring consecutive positions as one contiguous span). */
struct backend_tokens {
    int64_t n;            /* rows */
    const int32_t *pos;   /* [n] position of the token in its sequence */
    const int32_t *cell0; /* [n] first cell of the token's sequence */
    const int32_t *cnt;   /* [n] tokens of its sequence in this batch (>= 2:
                             attention sums in the batched order, as llama.cpp) */
    int n_ctx;            /* a token at position p reads cells up to
                             min(n_ctx, p + 1 rounded up to 32) of its sequence */
    int ring;             /* positions per ring (a multiple of 64, at least the
                             window + 94), or 0: no ring */
};

/* Arguments of backend_ops.attn_store: for each row i, in place on q (n rows
 * of n_head * head_dim floats), k and v (n rows of n_head_kv * head_dim):
 * q += bq, k += bk, v += bv (each when non-NULL); per-head RMSNorm of q and
 * k by q_norm / k_norm ([head_dim], when non-NULL); RoPE of the first n_rot
 * dimensions of every head of q and k at the row's position (adjacent pairs,
 * or NeoX halves), angles as ggml_rope_cache_init (theta = pos *
 * base^(-2i/n_rot) by repeated multiplication, divided by factors[i] when
 * factors != NULL, times freq_scale; cos and sin times attn_factor);
 * q *= q_scale (when != 1); then k and v are stored (converted to the cache
 * type, round to nearest even) into the row's cell of the layer kv, and V of
 * the cells after each sequence's last row up to its padded end is zeroed
 * (only below kv.hwm, which must already count this batch's cells). */
struct backend_attn_store {
    float *q, *k, *v;
    int n_head, n_head_kv, head_dim;
    const float *bq, *bk, *bv;        /* [n_head * head_dim], [kv dim], [kv dim] or NULL */
    const float *q_norm, *k_norm;     /* [head_dim] or NULL */
    float eps;                        /* RMSNorm epsilon */
    int n_rot;                        /* rotated dimensions per head (even, <= head_dim; 0 = none) */
    bool neox;
    float freq_base, freq_scale, attn_factor;
    const float *factors;             /* [n_rot / 2] frequency divisors or NULL */
    float q_scale;                    /* 1 = none */
    const struct backend_tokens *tok;
    struct backend_kv kv;
};

/* Arguments of backend_ops.attention: for each row i and head h,
 * out[i][h] = softmax(scale * K . q[i][h]) . V over the cells of the row's
 * sequence at positions [lo, pos] (GQA: head h reads KV head h / (n_head /
 * n_head_kv); lo = pos + 1 - n_swa when n_swa > 0, else 0), in llama.cpp's
 * order: q and the softmax weights rounded to the cache type, the attended
 * length padded to 32 positions with zero weights, each product summed in
 * tinyBLAS order when the sequence has >= 2 rows in the batch and the length
 * is a multiple of 16, else in vec_dot order (K.q with an F32 cache: always
 * vec_dot order, as ggml; docs/PARITY.md). q is not modified; out does not
 * overlap q. */
struct backend_attention {
    const float *q;                   /* [n][n_head * head_dim] */
    float *out;                       /* [n][n_head * head_dim] */
    int n_head, n_head_kv, head_dim;
    float scale;                      /* K.q multiplier */
    int n_swa;                        /* sliding window (positions) or 0 */
    const struct backend_tokens *tok;
    struct backend_kv kv;
};

/* Arguments of backend_ops.layer_norm (encoders: bert), per row i in [0, n)
 * (rows of dim floats, row i at base + i * stride floats for x, add, out):
 *   x += add (when add != NULL); x += bias (when bias != NULL);
 *   out = layernorm(x) * w + b: ggml_norm (mean, then the variance of
 *   x - mean, each summed in double; 1 / sqrtf(var + eps)), then ggml_mul
 *   by w and ggml_add of b (b may be NULL). out may equal x or add (a row
 *   is read whole before its output is written). */
struct backend_lnorm {
    float *x;
    const float *add;  /* [n][stride] or NULL */
    const float *bias; /* [dim] or NULL */
    float *out;        /* [n][stride] */
    const float *w;    /* [dim] norm weight */
    const float *b;    /* [dim] norm bias or NULL */
    int64_t n, dim;
    size_t stride;     /* floats between rows */
    float eps;
};

/* Arguments of backend_ops.enc_attention: non-causal attention of an
 * encoder over F32 rows, no KV cache. Row i attends to every row j in
 * [seg0[i], seg1[i]) (its own input): for each head h,
 * out[i][h] = softmax(scale * k[j][g] . q[i][h]) . v[j][g] with g the KV
 * head of h (GQA), the softmax's max subtracted and its sum in double. A
 * row's result depends only on the rows of its segment. q, k, v are not
 * modified; out does not overlap them. */
struct backend_enc_attention {
    const float *q;       /* [n][n_head * head_dim] */
    const float *k, *v;   /* [n][n_head_kv * head_dim] (rows indexed like q) */
    float *out;           /* [n][n_head * head_dim] */
    int64_t n;
    int n_head, n_head_kv, head_dim;
    float scale;          /* K.q multiplier */
    const int32_t *seg0, *seg1; /* [n] first / end row of row i's input */
    float *scratch;       /* [n_threads][max_len] floats (the caller's) */
    int max_len;          /* longest segment */
};

/* A range task: process items [i0, i1) on pool thread ith (0 = caller;
 * ith < n_threads indexes per-thread scratch). */
typedef void (*backend_range_fn)(void *ud, int ith, int64_t i0, int64_t i1);

struct backend_ops {
    const char *name; /* "cpu" */
    /* Run fn over items [0, n) in chunks of `grain` claimed dynamically by
     * the pool's threads (the caller takes part) and return when every item
     * is done. No barrier: a thread that is descheduled simply claims fewer
     * chunks, so an oversubscribed machine does not stall the others.
     * work = rough operation count: small tasks run on the caller alone. */
    void (*parallel_for)(struct backend *be, backend_range_fn fn, void *ud, int64_t n, int64_t grain,
                         double work);
    /* Several matmuls that share the same input x (n_batch rows of k floats,
     * row b at x + b * x_stride floats): x is quantized ONCE into each
     * distinct vec_dot_type of the weights, then the rows of every weight
     * are split across the threads. All weights must have the same k;
     * n_mm <= 4; n_batch <= the backend's max batch. Rows [0, n_solo) of x
     * sum in the order of a 1-row batch (ggml_vec_dot's), so each equals its
     * result evaluated alone; rows [n_solo, n_batch) sum in the order
     * llama.cpp uses for that batch size (where a weight type has two orders,
     * F32/F16, that is two passes over the weight). Outputs do not overlap
     * inputs. */
    void (*matmul)(struct backend *be, const struct backend_mm *mms, size_t n_mm, const float *x,
                   int64_t n_batch, int64_t n_solo, size_t x_stride);
    /* Embedding lookup: out row i (out + i * out_stride floats) = row ids[i]
     * of w dequantized to F32 (w->k floats), times scale when scale != 1
     * (ggml_get_rows then ggml_scale). ids must be in [0, w->rows). */
    void (*get_rows)(struct backend *be, const struct backend_weight *w, const int32_t *ids, int64_t n, float *out,
                     size_t out_stride, float scale);
    /* Residual add, bias and RMSNorm over rows (struct backend_norm), in
     * ggml's order: sum of squares in double, mean rounded to float. */
    void (*rms_norm)(struct backend *be, const struct backend_norm *a);
    /* Gated activation over n rows of dim floats (row i at a + i * stride,
     * b + i * stride): a = act(a) * b in place; SiLU as ggml_vec_silu_f32
     * then ggml_mul, GELU (tanh approximation) through ggml's F16 table with
     * its +-10 clamps, as ggml_geglu. */
    void (*glu)(struct backend *be, enum backend_act act, float *a, const float *b, int64_t n, int64_t dim,
                size_t stride);
    /* Per-token q/k preparation and the KV store (struct backend_attn_store). */
    void (*attn_store)(struct backend *be, const struct backend_attn_store *a);
    /* Attention of every row over its own sequence's cells (struct
     * backend_attention); needs the scratch of attn_reserve. */
    void (*attention)(struct backend *be, const struct backend_attention *a);
    /* Reserve the per-thread attention scratch for tokens reading up to
     * max_ctx cells, max_group query heads per KV head, head_dim and n_rot
     * (called once at state creation; attn_store / attention calls stay
     * within these). Errors: SP_ERR_NOMEM. */
    enum sp_status (*attn_reserve)(struct backend *be, int max_ctx, int max_group, int head_dim, int n_rot,
                                   struct sp_err *err);
    /* Device storage (the KV cache): bytes zeroed bytes, 64-byte aligned,
     * that this backend's ops can address (host memory for "cpu"), into
     * *out. Errors: SP_ERR_NOMEM. buf_free(NULL) is a no-op. */
    enum sp_status (*buf_alloc)(struct backend *be, size_t bytes, void **out, struct sp_err *err);
    void (*buf_free)(struct backend *be, void *p);
    /* LayerNorm with bias over rows, with the residual and bias adds before
     * it (struct backend_lnorm; encoders). */
    void (*layer_norm)(struct backend *be, const struct backend_lnorm *a);
    /* a = gelu(a) in place over n rows of dim floats (row i at a + i *
     * stride): GELU (tanh approximation) through ggml's F16 table with its
     * +-10 clamps, as ggml_vec_gelu_f32 (encoders' ungated FFN). */
    void (*gelu)(struct backend *be, float *a, int64_t n, int64_t dim, size_t stride);
    /* Non-causal attention within segments (struct backend_enc_attention). */
    void (*enc_attention)(struct backend *be, const struct backend_enc_attention *a);
    /* x = tanh(x / cap) * cap over n contiguous floats, in place (final logit
     * soft-capping: ggml_scale, ggml_tanh, ggml_scale). */
    void (*softcap)(struct backend *be, float *x, int64_t n, float cap);
    void (*free)(struct backend *be);
};

struct backend {
    const struct backend_ops *ops;
    int n_threads;
};

/* Below this many operations a task runs single-threaded. */
#define BACKEND_MIN_PARALLEL_WORK 65536.0

/* Create the CPU backend: n_threads (>= 1) persistent threads including the
 * caller; max_k = longest matmul row, max_batch = most activation rows per
 * matmul (they size the quantized-activation scratch). Errors: SP_ERR_NOMEM,
 * SP_ERR_INTERNAL (thread creation failed). */
enum sp_status backend_cpu_new(int n_threads, int64_t max_k, int64_t max_batch, struct backend **out,
                               struct sp_err *err) SP_MUST_USE;
void backend_free(struct backend *be); /* NULL is a no-op; joins the threads */
/* The "cpu" kind's device (cpu_dev.c): a weight a matmul reads gets an
 * owned copy on huge pages, in the kernels' layout where they repack at load
 * (struct kern_repack: Q4_0, Q5_0, Q4_K; Q8_0, Q6_K on AVX-512), as it is
 * otherwise when it fills SP_HUGE_BYTES; smaller matrices, row-lookup-only
 * weights and everything under SPOKE_REPACK=0 are views into the host memory
 * given; backends from backend_cpu_new. Errors: SP_ERR_NOMEM. */
enum sp_status backend_cpu_device_new(struct backend_device **out, struct sp_err *err) SP_MUST_USE;

/* Bytes of scratch backend_cpu_new allocates for (max_k, max_batch) (footprint). */
size_t backend_cpu_scratch_bytes(int64_t max_k, int64_t max_batch);
/* Bytes attn_reserve allocates on the cpu backend (footprint); SIZE_MAX on overflow. */
size_t backend_cpu_attn_bytes(int n_threads, int max_ctx, int max_group, int head_dim, int n_rot);

/* Fill *w as a view of rows host memory rows (the "cpu" kind's bind, also
 * the first step of a bind that copies): *w zeroed, then type, k, rows,
 * row_bytes, data = host and the kernels' table; owned stays NULL.
 * SP_ERR_UNSUPPORTED if the kernels have no matmul for type, SP_ERR_FORMAT
 * if k is not a whole number of blocks. */
enum sp_status backend_cpu_weight_view(struct backend_weight *w, enum gg_type type, int64_t k, int64_t rows,
                                       const void *host, struct sp_err *err) SP_MUST_USE;

/* Whether get_rows can read rows of the bound weight w (its type dequantizes). */
bool backend_weight_has_rows(const struct backend_weight *w);

/* Convert n elements (a whole number of blocks) of a host tensor of type to
 * F32: the small vectors the model keeps in F32 (norm weights, biases, RoPE
 * factors). Errors: SP_ERR_UNSUPPORTED (no conversion for type),
 * SP_ERR_FORMAT (n is not a whole number of blocks). Thread-safe. */
enum sp_status backend_to_f32(enum gg_type type, const void *src, float *dst, int64_t n,
                              struct sp_err *err) SP_MUST_USE;

/* ---- device choice */
enum backend_kind { BACKEND_CPU = 0, BACKEND_CUDA, BACKEND_METAL };

struct backend_choice {
    enum backend_kind kind;  /* what will run (always CPU in this build) */
    const char *name;        /* "cpu" */
    char cuda_note[160];     /* why CUDA was skipped / what was found */
    char metal_note[160];    /* why Metal was skipped */
};

/* Probe devices in the order CUDA -> Metal -> CPU and log the choice and the
 * reasons the others were skipped. Never fails. SPOKE_CUDA_LIB overrides the
 * library name probed (tests use it to simulate a missing driver). */
void backend_choose(struct backend_choice *out);

/* Number of online CPUs (>= 1). */
int backend_cpu_count(void);

/* ---- devices: one backend kind's home for the weights of ONE loaded model
 * A struct backend_device exists from model load to model free and is shared
 * by every context of that model: it binds the weights (where they live is
 * the kind's business: a view into the mapping on "cpu", an upload on a
 * GPU, possibly a repacked copy), releases them, and creates the compute
 * backends (struct backend: pool + scratch) of the model's contexts, so the
 * model code never names a kind. bind/release are called by the thread that
 * loads/frees the model; backend_new is thread-safe. */
struct backend_device;

/* What the model does with a bound weight (bind's `use`, a mask): matmul
 * (backend_matmul and friends) and/or row lookups (get_rows). A kind may
 * keep a rows-only weight in a cheaper form: "cpu" keeps it a view, so an
 * untied embedding's pages stay in the file until a token reads them,
 * rather than a resident repacked copy that no matmul reads. */
enum backend_use {
    BACKEND_USE_MATMUL = 1u,
    BACKEND_USE_ROWS = 2u,
};

struct backend_device_ops {
    const char *name; /* "cpu" */
    /* Bind rows rows of k elements of type (host memory, valid while the
     * model lives) into *w (zeroed by the caller): fill every field the
     * kind's ops read; storage the kind allocates goes in owned /
     * owned_bytes. On failure free anything allocated (the caller zeroes
     * *w). Errors: SP_ERR_UNSUPPORTED (no kernels for type), SP_ERR_FORMAT,
     * SP_ERR_NOMEM. */
    enum sp_status (*bind)(struct backend_device *dev, struct backend_weight *w, enum gg_type type, int64_t k,
                           int64_t rows, const void *host, unsigned use, struct sp_err *err);
    /* Free what bind allocated for w (owned); a view needs nothing. */
    void (*release)(struct backend_device *dev, struct backend_weight *w);
    /* A compute backend for one context (backend_cpu_new's arguments). */
    enum sp_status (*backend_new)(struct backend_device *dev, int n_threads, int64_t max_k, int64_t max_batch,
                                  struct backend **out, struct sp_err *err);
    /* Optional: every weight of the model being loaded is bound (storage
     * sized for more binds may be trimmed; later binds still work). */
    void (*seal)(struct backend_device *dev);
    void (*free)(struct backend_device *dev);
};

struct backend_device {
    const struct backend_device_ops *ops;
    enum backend_kind kind;
    size_t n_bound;      /* weights bound and not yet released (backend_weight_bind/release) */
    size_t owned_bytes;  /* bytes those binds allocated (0 on "cpu": views) */
};

/* The device of the kind backend_choose picked (c NULL: "cpu"). Errors:
 * SP_ERR_UNSUPPORTED (a kind this build has no backend for), SP_ERR_NOMEM. */
enum sp_status backend_device_new(const struct backend_choice *c, struct backend_device **out,
                                  struct sp_err *err) SP_MUST_USE;
/* NULL is a no-op; logs a warning when weights are still bound (a leak). */
void backend_device_free(struct backend_device *dev);
/* The loader has bound every weight of a model (ops->seal, if the kind has one). */
void backend_device_seal(struct backend_device *dev);
/* Bind a weight on dev for `use` (enum backend_use mask; dev->ops->bind on
 * a zeroed *w, counted in n_bound and owned_bytes); on failure *w is left
 * zeroed (unbound). */
enum sp_status backend_weight_bind(struct backend_device *dev, struct backend_weight *w, enum gg_type type,
                                   int64_t k, int64_t rows, const void *host, unsigned use,
                                   struct sp_err *err) SP_MUST_USE;
/* Release a weight bound on dev and zero it; an unbound (zeroed) weight is
 * a no-op, so a model whose load failed half way releases every field. */
void backend_weight_release(struct backend_device *dev, struct backend_weight *w);
/* A compute backend of dev's kind for one context. */
enum sp_status backend_new_on(struct backend_device *dev, int n_threads, int64_t max_k, int64_t max_batch,
                              struct backend **out, struct sp_err *err) SP_MUST_USE;

#endif
