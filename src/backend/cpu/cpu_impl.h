/* cpu_impl.h - private to src/backend/cpu: what cpu.c (pool, matmul) and
 * cpu_ops.c (the element-wise ops, attention) share. Not a public header. */
#ifndef SPOKE_BACKEND_CPU_IMPL_H
#define SPOKE_BACKEND_CPU_IMPL_H

#include "backend/backend.h"
#include "kernels/kernels.h"

/* The pool's parallel_for (backend_ops.parallel_for of the cpu backend). */
void backend_cpu_parallel_for(struct backend *be, backend_range_fn fn, void *ud, int64_t n, int64_t grain,
                              double work);

/* The ops cpu_ops.c implements (contracts in backend.h). */
void backend_cpu_get_rows(struct backend *be, const struct backend_weight *w, const int32_t *ids, int64_t n,
                          float *out, size_t out_stride, float scale);
void backend_cpu_rms_norm(struct backend *be, const struct backend_norm *a);
void backend_cpu_glu(struct backend *be, enum backend_act act, float *a, const float *b, int64_t n, int64_t dim,
                     size_t stride);
void backend_cpu_softcap(struct backend *be, float *x, int64_t n, float cap);
enum sp_status backend_cpu_buf_alloc(struct backend *be, size_t bytes, void **out, struct sp_err *err);
void backend_cpu_buf_free(struct backend *be, void *p);
void backend_cpu_attn_store(struct backend *be, const struct backend_attn_store *a);
void backend_cpu_attention(struct backend *be, const struct backend_attention *a);
enum sp_status backend_cpu_attn_reserve(struct backend *be, int max_ctx, int max_group, int head_dim, int n_rot,
                                        struct sp_err *err);

/* The encoder ops (cpu_enc.c; contracts in backend.h). */
void backend_cpu_layer_norm(struct backend *be, const struct backend_lnorm *a);
void backend_cpu_gelu(struct backend *be, float *a, int64_t n, int64_t dim, size_t stride);
void backend_cpu_enc_attention(struct backend *be, const struct backend_enc_attention *a);
/* ggml's GELU table (F16 in, F16 out), built once per process (cpu_ops.c). */
const uint16_t *backend_cpu_gelu_table(void);

/* out = rmsnorm(x) * w over n floats (ggml's order; out may equal x). */
void backend_cpu_rmsnorm_row(float *out, const float *x, const float *w, int64_t n, float eps);

/* The attention scratch (cpu_attn.c) lives in the backend: its slot, and
 * its release (NULL is a no-op) when the backend is freed. */
struct cpu_attn_scratch;
struct cpu_attn_scratch **backend_cpu_attn_slot(struct backend *be);
void backend_cpu_attn_free(struct cpu_attn_scratch *a);

#endif
