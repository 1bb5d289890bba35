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

#endif
