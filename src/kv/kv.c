/* kv.c - KV cache storage: two big zeroed arrays, K indexed
 * [layer][cell][kv_dim] and V transposed [layer][kv_dim][cell]; conversion to F16 uses the kernels' exact
 * round-to-nearest-even, as llama.cpp's cache copy does. Layers differ only
 * in their cell count (n_cells, or the rings of a sliding-window layer), so
 * each layer's block starts at a precomputed offset. Sequences and their
 * spans of cells live in kv_seq.c. */
#include "kv/kv.h"
#include "kernels/kernels.h"

#include <assert.h>
#include <string.h>

size_t kv_cache_bytes(int n_layer, int n_cells, int kv_dim, enum kv_type type)
{
    size_t n;
    if (n_layer <= 0 || n_cells <= 0 || kv_dim <= 0)
        return 0;
    if (!sp_mul_size((size_t)n_layer, (size_t)n_cells, &n) || !sp_mul_size(n, (size_t)kv_dim, &n) ||
        !sp_mul_size(n, type == KV_F32 ? 4 : 2, &n) || !sp_mul_size(n, 2, &n))
        return 0;
    return n;
}

size_t kv_cache_bytes_ring(int n_layer, int n_ring_layers, int n_cells, int ring, int n_rings, int kv_dim,
                           enum kv_type type)
{
    if (n_ring_layers <= 0 || ring <= 0)
        return kv_cache_bytes(n_layer, n_cells, kv_dim, type);
    if (n_ring_layers > n_layer || n_rings <= 0 || ring > INT32_MAX / 2 / n_rings)
        return 0;
    size_t full = n_layer > n_ring_layers ? kv_cache_bytes(n_layer - n_ring_layers, n_cells, kv_dim, type) : 0;
    size_t rings = kv_cache_bytes(n_ring_layers, 2 * ring * n_rings, kv_dim, type), total;
    if ((n_layer > n_ring_layers && full == 0) || rings == 0 || !sp_add_size(full, rings, &total))
        return 0;
    return total;
}

enum sp_status kv_cache_new(int n_layer, int n_cells, int kv_dim, enum kv_type type, int n_seq_max,
                            struct kv_cache **out, struct sp_err *err)
{
    return kv_cache_new_on(NULL, n_layer, n_cells, kv_dim, type, n_seq_max, out, err);
}

enum sp_status kv_cache_new_on(struct backend *be, int n_layer, int n_cells, int kv_dim, enum kv_type type,
                               int n_seq_max, struct kv_cache **out, struct sp_err *err)
{
    return kv_cache_new_ring(be, n_layer, n_cells, kv_dim, type, n_seq_max, NULL, 0, 0, 0, out, err);
}

enum sp_status kv_cache_new_ring(struct backend *be, int n_layer, int n_cells, int kv_dim, enum kv_type type,
                                 int n_seq_max, const bool *ring_layers, int ring, int window, int n_rings,
                                 struct kv_cache **out, struct sp_err *err)
{
    *out = NULL;
    if (n_layer <= 0 || n_cells <= 0 || kv_dim <= 0 || n_seq_max <= 0 || n_seq_max > 65536)
        return sp_err_set(err, SP_ERR_INVALID, "invalid KV cache shape (%d layers, %d cells, %d dims, %d sequences)",
                          n_layer, n_cells, kv_dim, n_seq_max);
    int n_ring_layers = 0;
    for (int l = 0; ring_layers && ring > 0 && l < n_layer; l++)
        n_ring_layers += ring_layers[l];
    if (n_ring_layers > 0 && (ring % 64 != 0 || window < 1 || window > ring || n_rings < 1 || n_rings > n_seq_max))
        return sp_err_set(err, SP_ERR_INVALID, "invalid KV ring shape (%d positions, window %d, %d rings)", ring,
                          window, n_rings);
    size_t total = kv_cache_bytes_ring(n_layer, n_ring_layers, n_cells, ring, n_rings, kv_dim, type);
    if (total == 0)
        return sp_err_set(err, SP_ERR_RANGE, "KV cache size overflows");
    struct kv_cache *kv = sp_calloc(1, sizeof(*kv));
    if (!kv)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory for the KV cache");
    kv->type = type;
    kv->n_layer = n_layer;
    kv->n_cells = n_cells;
    kv->kv_dim = kv_dim;
    kv->elt = type == KV_F32 ? 4 : 2;
    kv->n_seq_max = n_seq_max;
    kv->be = be;
    kv->layer_ring = sp_calloc((size_t)n_layer, 1);
    kv->layer_off = sp_calloc((size_t)n_layer, sizeof(size_t));
    if (n_ring_layers > 0) {
        kv->ring = ring;
        kv->n_rings = n_rings;
        kv->ring_window = window;
        kv->ring_owner = sp_malloc((size_t)n_rings * sizeof(int));
        if (kv->ring_owner)
            for (int r = 0; r < n_rings; r++)
                kv->ring_owner[r] = -1;
    }
    if (!kv->layer_ring || !kv->layer_off || (n_ring_layers > 0 && !kv->ring_owner)) {
        kv_cache_free(kv);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory for the KV cache");
    }
    size_t off = 0; /* fits: total counts the same elements */
    for (int l = 0; l < n_layer; l++) {
        kv->layer_ring[l] = n_ring_layers > 0 && ring_layers[l];
        kv->layer_off[l] = off;
        off += (size_t)kv_layer_cells(kv, l) * (size_t)kv_dim;
    }
    if (be) {
        enum sp_status result;
        if ((result = be->ops->buf_alloc(be, total / 2, &kv->k, err)) != SP_OK ||
            (result = be->ops->buf_alloc(be, total / 2, &kv->v, err)) != SP_OK) {
            kv_cache_free(kv);
            return result;
        }
    } else {
        kv->k = sp_huge_alloc(total / 2);
        kv->v = sp_huge_alloc(total / 2);
        if (kv->k)
            memset(kv->k, 0, total / 2);
        if (kv->v)
            memset(kv->v, 0, total / 2);
    }
    kv->cell_tok = sp_calloc((size_t)n_cells, sizeof(int32_t));
    kv->seqs = sp_calloc((size_t)n_seq_max, sizeof(struct kv_seq));
    kv->scratch = sp_calloc((size_t)n_seq_max, sizeof(int));
    for (int i = 0; kv->seqs && i < n_seq_max; i++)
        kv->seqs[i].ring = -1;
    if (!kv->k || !kv->v || !kv->cell_tok || !kv->seqs || !kv->scratch) {
        kv_cache_free(kv);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating a %zu MiB KV cache",
                          total >> 20);
    }
    *out = kv;
    return SP_OK;
}

void kv_cache_free(struct kv_cache *kv)
{
    if (!kv)
        return;
    if (kv->be) {
        kv->be->ops->buf_free(kv->be, kv->k);
        kv->be->ops->buf_free(kv->be, kv->v);
    } else {
        sp_huge_free(kv->k);
        sp_huge_free(kv->v);
    }
    sp_free(kv->cell_tok);
    sp_free(kv->seqs);
    sp_free(kv->scratch);
    sp_free(kv->layer_ring);
    sp_free(kv->layer_off);
    sp_free(kv->ring_owner);
    sp_free(kv);
}

int kv_layer_cells(const struct kv_cache *kv, int layer)
{
    assert(layer >= 0 && layer < kv->n_layer);
    return kv->layer_ring[layer] ? 2 * kv->ring * kv->n_rings : kv->n_cells;
}

int kv_layer_hwm(const struct kv_cache *kv, int layer)
{
    assert(layer >= 0 && layer < kv->n_layer);
    return kv->layer_ring[layer] ? kv->ring_hwm : kv->hwm;
}

static size_t kv_off(const struct kv_cache *kv, int layer, int cell)
{
    assert(layer >= 0 && layer < kv->n_layer && cell >= 0 && cell < kv_layer_cells(kv, layer));
    return (kv->layer_off[layer] + (size_t)cell * (size_t)kv->kv_dim) * kv->elt;
}

void *kv_cache_k(const struct kv_cache *kv, int layer, int cell)
{
    return (char *)kv->k + kv_off(kv, layer, cell);
}

void *kv_cache_v(const struct kv_cache *kv, int layer, int dim)
{
    assert(layer >= 0 && layer < kv->n_layer && dim >= 0 && dim < kv->kv_dim);
    return (char *)kv->v + (kv->layer_off[layer] + (size_t)dim * (size_t)kv_layer_cells(kv, layer)) * kv->elt;
}

static void kv_put(const struct kv_cache *kv, void *dst, const float *src)
{
    if (kv->type == KV_F32) {
        memcpy(dst, src, (size_t)kv->kv_dim * sizeof(float));
    } else {
        const struct kern_type_ops *f16 = kern_ops(GG_TYPE_F16);
        if (f16 && f16->quantize_act) {
            f16->quantize_act(src, dst, kv->kv_dim); /* SIMD, round to nearest even */
        } else {
            uint16_t *d = dst;
            for (int i = 0; i < kv->kv_dim; i++)
                d[i] = kern_fp32_to_fp16(src[i]);
        }
    }
}

static void kv_get(const struct kv_cache *kv, const void *src, float *dst)
{
    if (kv->type == KV_F32) {
        memcpy(dst, src, (size_t)kv->kv_dim * sizeof(float));
    } else {
        const uint16_t *s = src;
        for (int i = 0; i < kv->kv_dim; i++)
            dst[i] = kern_fp16_to_fp32(s[i]);
    }
}

void kv_cache_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v)
{
    const int nc = kv_layer_cells(kv, layer);
    assert(pos >= 0 && pos < nc);
    int *hwm = kv->layer_ring[layer] ? &kv->ring_hwm : &kv->hwm;
    if (pos >= *hwm)
        *hwm = pos + 1;
    kv_put(kv, kv_cache_k(kv, layer, pos), k);
    char *v0 = kv_cache_v(kv, layer, 0);
    size_t step = (size_t)nc * kv->elt;
    if (kv->type == KV_F32) {
        for (int d = 0; d < kv->kv_dim; d++)
            ((float *)(void *)(v0 + d * step))[pos] = v[d];
    } else {
        for (int d = 0; d < kv->kv_dim; d++)
            ((uint16_t *)(void *)(v0 + d * step))[pos] = kern_fp32_to_fp16(v[d]);
    }
}

void kv_cache_mark_written(struct kv_cache *kv, int c1)
{
    assert(c1 >= 0 && c1 <= kv->n_cells);
    if (c1 > kv->hwm)
        kv->hwm = c1;
}

void kv_cache_mark_ring_written(struct kv_cache *kv, int c1)
{
    assert(c1 >= 0 && c1 <= 2 * kv->ring * kv->n_rings);
    if (c1 > kv->ring_hwm)
        kv->ring_hwm = c1;
}

void kv_cache_zero_v(struct kv_cache *kv, int layer, int p0, int p1)
{
    const int nc = kv_layer_cells(kv, layer), hwm = kv_layer_hwm(kv, layer);
    assert(p0 >= 0 && p0 <= p1 && p1 <= nc);
    if (p1 > hwm)
        p1 = hwm; /* never written: still zero from creation */
    if (p0 >= p1)
        return;
    char *v0 = kv_cache_v(kv, layer, 0);
    size_t step = (size_t)nc * kv->elt;
    for (int d = 0; d < kv->kv_dim; d++)
        memset(v0 + d * step + (size_t)p0 * kv->elt, 0, (size_t)(p1 - p0) * kv->elt);
}

void kv_cache_load_k(const struct kv_cache *kv, int layer, int pos, float *out)
{
    kv_get(kv, kv_cache_k(kv, layer, pos), out);
}

void kv_cache_load_v(const struct kv_cache *kv, int layer, int pos, float *out)
{
    assert(pos >= 0 && pos < kv_layer_cells(kv, layer));
    for (int d = 0; d < kv->kv_dim; d++) {
        const char *row = kv_cache_v(kv, layer, d);
        out[d] = kv->type == KV_F32 ? ((const float *)(const void *)row)[pos]
                                    : kern_fp16_to_fp32(((const uint16_t *)(const void *)row)[pos]);
    }
}
