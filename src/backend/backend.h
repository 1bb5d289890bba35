/* backend.h - compute backends for the forward pass.
 *
 * A struct backend is one execution resource for ONE generation context: a
 * persistent thread pool plus the scratch it needs for matmuls (quantized
 * activations). It is created once per context and does no allocation, lock
 * or system call per token (workers spin, then sleep on a condition variable
 * only when idle for a while). Work is split by rows into chunks that the
 * threads claim with an atomic counter (no barriers).
 *
 * The forward pass talks to it through struct backend_ops (a vtable) so that a
 * CUDA or Metal backend can plug in later: today only "cpu" exists.
 *
 * Device choice (backend_choose): probe CUDA (dlopen libcuda.so.1 +
 * cuDeviceGetCount), then Metal (macOS only), then CPU; the result says which
 * backend was chosen and why the others were skipped, and is logged. */
#ifndef SPOKE_BACKEND_H
#define SPOKE_BACKEND_H

#include "base/base.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

/* A weight matrix as the backend sees it: rows of `k` elements of `type`,
 * row r at data + r * row_bytes. A view into the GGUF mapping (not owned). */
struct backend_weight {
    enum gg_type type;
    int64_t k;          /* elements per row (ne0) */
    int64_t rows;       /* number of rows (ne1) = output features */
    size_t row_bytes;   /* bytes per row */
    const void *data;   /* first row */
    const struct kern_type_ops *ops; /* kernels for type */
};

/* One matmul of a multi-matmul call: y[b * y_stride + r] = w row r . x row b. */
struct backend_mm {
    const struct backend_weight *w;
    float *y;           /* output, n_batch rows of y_stride floats */
    size_t y_stride;    /* floats between batch rows of y (>= w->rows) */
};

struct backend;

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
     * n_mm <= 4; n_batch <= the backend's max batch. */
    void (*matmul)(struct backend *be, const struct backend_mm *mms, size_t n_mm, const float *x,
                   int64_t n_batch, size_t x_stride);
    /* The same, but every row sums in the order of a 1-row batch (ggml_vec_dot's),
     * so each row equals its result evaluated alone; matmul instead picks the
     * order llama.cpp uses for the batch size (kern_pick_gemm). */
    void (*matmul_vec)(struct backend *be, const struct backend_mm *mms, size_t n_mm, const float *x,
                       int64_t n_batch, size_t x_stride);
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

/* Bytes of scratch backend_cpu_new allocates for (max_k, max_batch) (footprint). */
size_t backend_cpu_scratch_bytes(int64_t max_k, int64_t max_batch);

/* Fill a backend_weight view for a 2-D tensor; SP_ERR_UNSUPPORTED if the
 * kernels have no ops for its type. */
enum sp_status backend_weight_bind(struct backend_weight *w, enum gg_type type, int64_t k, int64_t rows,
                                   const void *data, struct sp_err *err) SP_MUST_USE;

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

#endif
