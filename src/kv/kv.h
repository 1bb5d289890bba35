/* kv.h - the key/value cache of one loaded model, shared by its sequences.
 *
 * Storage, as llama.cpp's (non flash-attention) cache: for each layer K is
 * [n_cells][kv_dim] (cell-major rows, kv_dim = n_head_kv * head_dim) and V
 * is stored transposed, [kv_dim][n_cells] (one row of cells per dimension),
 * so attention output is a dot product over cells. F16 (default, like
 * llama.cpp) or F32. n_cells is the model's KV token budget.
 *
 * Sequences: each live sequence owns one contiguous span of cells
 * [base, base + cap): position p of the sequence is cell base + p. A span is
 * reserved whole when the sequence opens (cap = what it may ever use), so a
 * running sequence never runs out of cells; attention over a sequence is a
 * contiguous K block and contiguous V rows, which keeps each sequence's
 * arithmetic identical to a run alone (docs/PARITY.md). Each cell also
 * remembers the token id stored there, so a finished sequence can stay
 * cached: a new sequence whose prompt starts with its tokens takes those
 * cells over instead of recomputing them (prefix reuse). Cached spans are
 * evicted least recently used when room is needed.
 *
 * Sliding-window layers (kv_cache_new_ring) keep only a window: each live
 * sequence gets a ring of 2 * ring cells in those layers, position p in
 * cell p % ring and again in p % ring + ring, so any span of up to ring
 * consecutive positions is contiguous (attention sums over it in the same
 * lanes as over the full span: the same bits). ring covers the window plus
 * the most tokens one sequence adds per batch plus the attention's
 * alignment slack (model/forward.c). A cached sequence keeps its ring until
 * a new sequence needs it; prefix reuse then also needs the ring to still
 * hold the window before the reused prefix's end (else the prompt is
 * recomputed).
 *
 * Sized once at creation; storing and reading never allocate. Not
 * thread-safe: one thread (the model's step loop) uses a cache at a time. */
#ifndef SPOKE_KV_H
#define SPOKE_KV_H

#include "backend/backend.h"
#include "base/base.h"

enum kv_type { KV_F16 = 0, KV_F32 = 1 };

enum kv_seq_state { KV_SEQ_FREE = 0, KV_SEQ_LIVE, KV_SEQ_CACHED };

struct kv_seq {
    enum kv_seq_state state;
    int base, cap;    /* cells [base, base + cap) */
    int len;          /* positions 0..len-1 hold valid K/V (and token ids) */
    uint64_t stamp;   /* last use (LRU eviction of cached spans) */
    int ring;         /* ring of the sliding-window layers, or -1 (none, or lost to another sequence) */
};

struct kv_cache {
    enum kv_type type;
    int n_layer;
    int n_cells;     /* cells (the token budget) */
    int kv_dim;      /* elements per cell per layer */
    size_t elt;      /* bytes per element (2 or 4) */
    int hwm;         /* cells >= hwm were never stored (still zero) */
    void *k;         /* n_layer * n_cells * kv_dim elements */
    void *v;
    struct backend *be;     /* owner of k/v storage (buf_alloc), or NULL: host memory */
    int32_t *cell_tok;      /* [n_cells] token id stored in each cell */
    int n_seq_max;          /* sequence records (live + cached) */
    struct kv_seq *seqs;    /* [n_seq_max] */
    uint64_t clock;
    int *scratch;           /* [n_seq_max] span sort scratch */
    /* sliding-window layers (all 0 / NULL without rings) */
    int ring;               /* positions per ring (multiple of 64); a ring is 2 * ring cells */
    int n_rings;            /* rings (the most live sequences) */
    int ring_window;        /* positions a token attends to in those layers (n_swa) */
    int ring_hwm;           /* ring cells >= ring_hwm were never stored (still zero) */
    uint8_t *layer_ring;    /* [n_layer] 1: the layer stores rings */
    size_t *layer_off;      /* [n_layer] elements before the layer's K (and V) block */
    int *ring_owner;        /* [n_rings] record whose positions the ring holds, or -1 */
};

/* Bytes of K/V storage kv_cache_new allocates (0 on overflow). */
size_t kv_cache_bytes(int n_layer, int n_cells, int kv_dim, enum kv_type type);
/* The same when n_ring_layers of the n_layer layers store n_rings rings of
 * 2 * ring cells instead of n_cells (0 on overflow). */
size_t kv_cache_bytes_ring(int n_layer, int n_ring_layers, int n_cells, int ring, int n_rings, int kv_dim,
                           enum kv_type type);
/* Create a zeroed cache of n_cells cells with room for n_seq_max sequence
 * records (live plus cached). Errors: SP_ERR_INVALID (non-positive sizes),
 * SP_ERR_RANGE (overflow), SP_ERR_NOMEM. */
enum sp_status kv_cache_new(int n_layer, int n_cells, int kv_dim, enum kv_type type, int n_seq_max,
                            struct kv_cache **out, struct sp_err *err) SP_MUST_USE;
/* The same with K/V storage allocated by the backend be (buf_alloc; be
 * must outlive the cache), as the forward pass uses it; NULL = host memory.
 * kv_cache_store / _load / _zero_v need host-addressable storage. */
enum sp_status kv_cache_new_on(struct backend *be, int n_layer, int n_cells, int kv_dim, enum kv_type type,
                               int n_seq_max, struct kv_cache **out, struct sp_err *err) SP_MUST_USE;
/* The same where the layers with ring_layers[l] set keep only a window of
 * `window` positions per sequence: n_rings rings of 2 * ring cells (ring a
 * positive multiple of 64, window <= ring), one per live sequence (at most
 * n_rings live sequences then). ring_layers NULL or ring 0: every layer
 * keeps n_cells cells. Errors as kv_cache_new. */
enum sp_status kv_cache_new_ring(struct backend *be, int n_layer, int n_cells, int kv_dim, enum kv_type type,
                                 int n_seq_max, const bool *ring_layers, int ring, int window, int n_rings,
                                 struct kv_cache **out, struct sp_err *err) SP_MUST_USE;
void kv_cache_free(struct kv_cache *kv); /* NULL is a no-op */
/* Cells of a layer: n_cells, or n_rings * 2 * ring for a ring layer. */
int kv_layer_cells(const struct kv_cache *kv, int layer);
/* hwm of a layer's storage (ring_hwm for ring layers). */
int kv_layer_hwm(const struct kv_cache *kv, int layer);

/* K row of (layer, cell): kv_dim elements. V row of (layer, dim):
 * kv_layer_cells elements (one per cell). Asserts indices in range. */
void *kv_cache_k(const struct kv_cache *kv, int layer, int cell);
void *kv_cache_v(const struct kv_cache *kv, int layer, int dim);
/* Store kv_dim floats of K and V at (layer, cell), converting to the cache type. */
void kv_cache_store(struct kv_cache *kv, int layer, int cell, const float *k, const float *v);
/* Zero the V entries of cells [c0, c1) of a layer (the padding that
 * attention reads with zero weights, so stale values cannot turn into NaN). */
void kv_cache_zero_v(struct kv_cache *kv, int layer, int c0, int c1);
/* Cells below c1 are being written by a backend op (raises the high-water
 * mark that kv_cache_zero_v and the backend's padding zeroing rely on). */
void kv_cache_mark_written(struct kv_cache *kv, int c1);
/* The same for the ring layers' cells. */
void kv_cache_mark_ring_written(struct kv_cache *kv, int c1);
/* Read one cached row back as floats (tests, debugging). */
void kv_cache_load_k(const struct kv_cache *kv, int layer, int cell, float *out);
void kv_cache_load_v(const struct kv_cache *kv, int layer, int cell, float *out);

/* ---- sequences */
/* Open a sequence needing cap cells (1 <= cap <= n_cells). If prompt is
 * given, the cached sequence sharing the longest prefix with it (at most
 * max_reuse tokens) is taken over: its first *n_reused cells are kept, the
 * sequence starts with len = *n_reused; but when that would keep less than
 * half of its tokens and a fresh sequence fits without evicting anything,
 * a fresh sequence gets a copy of those *n_reused cells and the cached one
 * stays cached. Otherwise len = 0. With rings, a
 * cached sequence is taken over only while its ring still holds the window
 * before the kept prefix's end. Cached spans are evicted (least recently
 * used first) to make room. On SP_OK *id is the sequence. SP_ERR_BUSY: no
 * span of cap cells (or no ring) can be found now (live sequences hold
 * them, or every record is in use); try again after one closes.
 * SP_ERR_INVALID: cap out of range. */
enum sp_status kv_seq_open(struct kv_cache *kv, int cap, const int32_t *prompt, int n_prompt, int max_reuse,
                           int *id, int *n_reused) SP_MUST_USE;
/* Close a live sequence: keep its cells for prefix reuse (keep = true) or
 * free them. */
void kv_seq_close(struct kv_cache *kv, int id, bool keep);
/* The sequence record (asserts a live id). */
const struct kv_seq *kv_seq_get(const struct kv_cache *kv, int id);
/* First ring cell of a live sequence in the ring layers (0 without rings). */
int kv_seq_ring_cell0(const struct kv_cache *kv, int id);
/* Record that positions [p0, p0 + n) now hold toks (len becomes p0 + n). */
void kv_seq_set_tokens(struct kv_cache *kv, int id, int p0, const int32_t *toks, int n);
/* Copy the first n positions (K/V of every layer and the token ids) of live
 * sequence src into live sequence dst, which then has len n: n sampled
 * continuations of one prompt share its computation. Sliding-window layers
 * copy src's whole ring into dst's. Asserts n <= src's len and dst's cap. */
void kv_seq_copy(struct kv_cache *kv, int dst, int src, int n);
/* Cells not held by live sequences (free or cached: both can be handed out). */
int kv_cells_available(const struct kv_cache *kv);
/* Drop every cached (finished) sequence. */
void kv_cache_clear(struct kv_cache *kv);

#endif
