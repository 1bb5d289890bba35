/* kv.h - the key/value cache of one generation context.
 *
 * Layout, as llama.cpp's (non flash-attention) cache: for each layer K is
 * [n_ctx][kv_dim] (position-major rows, kv_dim = n_head_kv * head_dim) and V
 * is stored transposed, [kv_dim][n_ctx] (one row of positions per dimension),
 * so attention output is a dot product over positions. F16 (default, like
 * llama.cpp) or F32.
 * Sized once at creation; storing and reading never allocate. Not thread-safe
 * for concurrent writers (one context = one thread writing). */
#ifndef SPOKE_KV_H
#define SPOKE_KV_H

#include "base/base.h"

enum kv_type { KV_F16 = 0, KV_F32 = 1 };

struct kv_cache {
    enum kv_type type;
    int n_layer;
    int n_ctx;       /* positions */
    int kv_dim;      /* elements per position per layer */
    size_t elt;      /* bytes per element (2 or 4) */
    int hwm;         /* positions >= hwm were never stored (still zero) */
    void *k;         /* n_layer * n_ctx * kv_dim elements */
    void *v;
};

/* Bytes kv_cache_new allocates (0 on overflow). */
size_t kv_cache_bytes(int n_layer, int n_ctx, int kv_dim, enum kv_type type);
/* Create a zeroed cache. Errors: SP_ERR_INVALID (non-positive sizes),
 * SP_ERR_RANGE (overflow), SP_ERR_NOMEM. */
enum sp_status kv_cache_new(int n_layer, int n_ctx, int kv_dim, enum kv_type type, struct kv_cache **out,
                            struct sp_err *err) SP_MUST_USE;
void kv_cache_free(struct kv_cache *kv); /* NULL is a no-op */

/* K row of (layer, pos): kv_dim elements. V row of (layer, dim): n_ctx
 * elements (one per position). Asserts indices in range. */
void *kv_cache_k(const struct kv_cache *kv, int layer, int pos);
void *kv_cache_v(const struct kv_cache *kv, int layer, int dim);
/* Store kv_dim floats of K and V at (layer, pos), converting to the cache type. */
void kv_cache_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v);
/* Zero the V entries of positions [p0, p1) of a layer (the padding that
 * attention reads with zero weights, so stale values cannot turn into NaN). */
void kv_cache_zero_v(struct kv_cache *kv, int layer, int p0, int p1);
/* Read one cached row back as floats (tests, debugging). */
void kv_cache_load_k(const struct kv_cache *kv, int layer, int pos, float *out);
void kv_cache_load_v(const struct kv_cache *kv, int layer, int pos, float *out);

#endif
