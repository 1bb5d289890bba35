/* kv_seq.c - sequences of the shared KV cache: each live or cached
 * sequence holds one contiguous span of cells. Opening a sequence first
 * looks for the cached (finished) sequence whose tokens share the longest
 * prefix with the new prompt and takes its cells over (in place when the
 * span can grow or shrink there, else by copying the kept cells to a new
 * span). When that would drop more of its tokens than it keeps and a fresh
 * sequence fits without evicting anything, the fresh one gets a copy of the
 * common prefix instead and the cached sequence stays (another user's turn
 * sharing only a system prompt no longer wipes a cached conversation).
 * Otherwise it takes the first gap of cells big enough (first fit
 * over the spans sorted by base). Cached spans are evicted least recently
 * used until the span fits; when only live spans are left, the caller waits
 * (SP_ERR_BUSY). The number of records is small (max concurrency plus the
 * cached ones), so every search is a linear scan. With sliding-window
 * rings (kv.h) a new live sequence also takes a ring: a free one, else the
 * one of the least recently used cached sequence, which then loses it (and
 * with it its prefix reuse). */
#include "kv/kv.h"

#include <assert.h>
#include <string.h>

/* Ids of the records holding cells (except skip), sorted by base. */
static int held_sorted(const struct kv_cache *kv, int skip)
{
    int n = 0;
    for (int i = 0; i < kv->n_seq_max; i++) {
        if (i == skip || kv->seqs[i].state == KV_SEQ_FREE)
            continue;
        int j = n++;
        while (j > 0 && kv->seqs[kv->scratch[j - 1]].base > kv->seqs[i].base) {
            kv->scratch[j] = kv->scratch[j - 1];
            j--;
        }
        kv->scratch[j] = i;
    }
    return n;
}

/* First cell of a gap of cap free cells (spans of skip count as free), or -1. */
static int find_gap(const struct kv_cache *kv, int cap, int skip)
{
    int n = held_sorted(kv, skip), at = 0;
    for (int i = 0; i < n; i++) {
        const struct kv_seq *s = &kv->seqs[kv->scratch[i]];
        if (s->base - at >= cap)
            return at;
        at = SP_MAX(at, s->base + s->cap);
    }
    return kv->n_cells - at >= cap ? at : -1;
}

static bool fits_at(const struct kv_cache *kv, int base, int cap, int skip)
{
    if (base + cap > kv->n_cells)
        return false;
    for (int i = 0; i < kv->n_seq_max; i++) {
        const struct kv_seq *s = &kv->seqs[i];
        if (i != skip && s->state != KV_SEQ_FREE && s->base < base + cap && base < s->base + s->cap)
            return false;
    }
    return true;
}

/* Free record id (and the ring it holds). */
static void seq_drop(struct kv_cache *kv, int id)
{
    struct kv_seq *s = &kv->seqs[id];
    if (s->ring >= 0 && kv->ring_owner && kv->ring_owner[s->ring] == id)
        kv->ring_owner[s->ring] = -1;
    memset(s, 0, sizeof(*s));
    s->ring = -1;
}

/* Evict the least recently used cached sequence other than skip; false if none. */
static bool evict_one(struct kv_cache *kv, int skip)
{
    int victim = -1;
    for (int i = 0; i < kv->n_seq_max; i++)
        if (i != skip && kv->seqs[i].state == KV_SEQ_CACHED &&
            (victim < 0 || kv->seqs[i].stamp < kv->seqs[victim].stamp))
            victim = i;
    if (victim < 0)
        return false;
    seq_drop(kv, victim);
    return true;
}

/* A ring for a new live sequence: a free one, else the one of the least
 * recently used cached sequence (which loses it); -1 when live sequences
 * hold them all. Does not assign it. */
static int ring_pick(const struct kv_cache *kv)
{
    int best = -1;
    for (int r = 0; r < kv->n_rings; r++) {
        const int o = kv->ring_owner[r];
        if (o < 0)
            return r;
        if (kv->seqs[o].state == KV_SEQ_CACHED &&
            (best < 0 || kv->seqs[o].stamp < kv->seqs[kv->ring_owner[best]].stamp))
            best = r;
    }
    return best;
}

static void ring_assign(struct kv_cache *kv, int r, int id)
{
    const int o = kv->ring_owner[r];
    if (o >= 0 && o != id)
        kv->seqs[o].ring = -1; /* a cached sequence loses its window */
    kv->ring_owner[r] = id;
    kv->seqs[id].ring = r;
}

/* Whether cached record s still holds, in its ring, the window a sequence
 * continuing after its first keep positions reads: positions
 * [keep - window, keep). The ring holds positions [len + 32 - ring, len)
 * (the cells past len up to the 32-padding were zeroed). */
static bool ring_keeps(const struct kv_cache *kv, const struct kv_seq *s, int keep)
{
    if (kv->ring == 0)
        return true;
    return s->ring >= 0 && keep - kv->ring_window >= s->len + 32 - kv->ring;
}

/* Move n cells from src to dst (every layer's K rows and V columns, and the token ids). */
static void move_cells(struct kv_cache *kv, int dst, int src, int n)
{
    if (n <= 0 || dst == src)
        return;
    for (int l = 0; l < kv->n_layer; l++) {
        if (kv->layer_ring[l])
            continue; /* the ring stays with the record */
        memmove(kv_cache_k(kv, l, dst), kv_cache_k(kv, l, src), (size_t)n * kv->kv_dim * kv->elt);
        for (int d = 0; d < kv->kv_dim; d++) {
            char *row = kv_cache_v(kv, l, d);
            memmove(row + (size_t)dst * kv->elt, row + (size_t)src * kv->elt, (size_t)n * kv->elt);
        }
    }
    memmove(kv->cell_tok + dst, kv->cell_tok + src, (size_t)n * sizeof(int32_t));
    if (dst + n > kv->hwm)
        kv->hwm = dst + n;
}

static int common_prefix(const struct kv_cache *kv, const struct kv_seq *s, const int32_t *prompt, int n)
{
    int lim = SP_MIN(s->len, n), k = 0;
    while (k < lim && kv->cell_tok[s->base + k] == prompt[k])
        k++;
    return k;
}

/* Take cached record id over for a sequence of cap cells keeping its first
 * keep cells: in place if possible, else copied to a new span. */
static bool take_over(struct kv_cache *kv, int id, int cap, int keep)
{
    struct kv_seq *s = &kv->seqs[id];
    for (;;) {
        if (fits_at(kv, s->base, cap, id))
            break;
        int g = find_gap(kv, cap, -1);
        if (g >= 0) {
            move_cells(kv, g, s->base, keep);
            s->base = g;
            break;
        }
        if (!evict_one(kv, id))
            return false;
    }
    s->cap = cap;
    s->len = keep;
    s->state = KV_SEQ_LIVE;
    s->stamp = ++kv->clock;
    return true;
}

/* The first free record, or -1. */
static int free_record(const struct kv_cache *kv)
{
    for (int i = 0; i < kv->n_seq_max; i++)
        if (kv->seqs[i].state == KV_SEQ_FREE)
            return i;
    return -1;
}

/* Whether a fresh sequence of cap cells can be opened without evicting a
 * cached one: a free record, a gap, and (with rings) a free ring. */
static bool fresh_fits(const struct kv_cache *kv, int cap)
{
    if (free_record(kv) < 0 || find_gap(kv, cap, -1) < 0)
        return false;
    for (int r = 0; kv->ring > 0 && r < kv->n_rings; r++)
        if (kv->ring_owner[r] < 0)
            return true;
    return kv->ring == 0;
}

static void copy_cells(struct kv_cache *kv, int dst, int src, int n);

enum sp_status kv_seq_open(struct kv_cache *kv, int cap, const int32_t *prompt, int n_prompt, int max_reuse,
                           int *id, int *n_reused)
{
    *id = -1;
    *n_reused = 0;
    if (cap < 1 || cap > kv->n_cells)
        return SP_ERR_INVALID;
    int best = -1, best_keep = 0;
    if (prompt && max_reuse > 0) {
        int lim = SP_MIN(n_prompt, max_reuse);
        for (int i = 0; i < kv->n_seq_max; i++) {
            if (kv->seqs[i].state != KV_SEQ_CACHED)
                continue;
            int k = common_prefix(kv, &kv->seqs[i], prompt, lim);
            if (k > best_keep && ring_keeps(kv, &kv->seqs[i], k)) {
                best_keep = k;
                best = i;
            }
        }
    }
    int copy_from = -1;
    if (best >= 0 && 2 * best_keep < kv->seqs[best].len && fresh_fits(kv, cap)) {
        copy_from = best; /* copy its prefix into a fresh sequence below; it stays cached */
        best = -1;
    }
    if (best >= 0) {
        if (take_over(kv, best, cap, best_keep)) {
            *id = best;
            *n_reused = best_keep;
            return SP_OK;
        }
        seq_drop(kv, best); /* no room to keep it: start afresh */
    }
    int ring = -1;
    if (kv->ring > 0 && (ring = ring_pick(kv)) < 0)
        return SP_ERR_BUSY;
    int rec = free_record(kv);
    if (rec < 0) {
        if (!evict_one(kv, -1))
            return SP_ERR_BUSY;
        rec = free_record(kv);
    }
    int g;
    while ((g = find_gap(kv, cap, -1)) < 0)
        if (!evict_one(kv, -1))
            return SP_ERR_BUSY;
    struct kv_seq *s = &kv->seqs[rec];
    s->state = KV_SEQ_LIVE;
    s->base = g;
    s->cap = cap;
    s->len = 0;
    s->stamp = ++kv->clock;
    s->ring = -1;
    if (ring >= 0) {
        if (kv->ring_owner[ring] >= 0 && kv->seqs[kv->ring_owner[ring]].state != KV_SEQ_CACHED)
            ring = ring_pick(kv); /* the owner was evicted above: its ring is free */
        ring_assign(kv, ring, rec);
    }
    if (copy_from >= 0) { /* fresh_fits held: nothing was evicted, the ring is a free one */
        copy_cells(kv, rec, copy_from, best_keep);
        kv->seqs[copy_from].stamp = ++kv->clock;
        *n_reused = best_keep;
    }
    *id = rec;
    return SP_OK;
}

void kv_seq_close(struct kv_cache *kv, int id, bool keep)
{
    assert(id >= 0 && id < kv->n_seq_max && kv->seqs[id].state == KV_SEQ_LIVE);
    struct kv_seq *s = &kv->seqs[id];
    if (keep && s->len > 0) {
        s->state = KV_SEQ_CACHED;
        s->stamp = ++kv->clock;
    } else {
        seq_drop(kv, id);
    }
}

int kv_seq_ring_cell0(const struct kv_cache *kv, int id)
{
    assert(id >= 0 && id < kv->n_seq_max && kv->seqs[id].state == KV_SEQ_LIVE);
    if (kv->ring == 0)
        return 0;
    assert(kv->seqs[id].ring >= 0);
    return kv->seqs[id].ring * 2 * kv->ring;
}

const struct kv_seq *kv_seq_get(const struct kv_cache *kv, int id)
{
    assert(id >= 0 && id < kv->n_seq_max && kv->seqs[id].state == KV_SEQ_LIVE);
    return &kv->seqs[id];
}

void kv_seq_set_tokens(struct kv_cache *kv, int id, int p0, const int32_t *toks, int n)
{
    struct kv_seq *s = &kv->seqs[id];
    assert(s->state == KV_SEQ_LIVE && p0 >= 0 && n >= 0 && p0 + n <= s->cap);
    memcpy(kv->cell_tok + s->base + p0, toks, (size_t)n * sizeof(int32_t));
    s->len = p0 + n;
}

void kv_seq_copy(struct kv_cache *kv, int dst, int src, int n)
{
    assert(kv->seqs[src].state == KV_SEQ_LIVE);
    copy_cells(kv, dst, src, n);
}

/* kv_seq_copy from a live or cached src (spans held by records never overlap) */
static void copy_cells(struct kv_cache *kv, int dst, int src, int n)
{
    struct kv_seq *d = &kv->seqs[dst];
    const struct kv_seq *s = &kv->seqs[src];
    assert(d->state == KV_SEQ_LIVE && s->state != KV_SEQ_FREE && dst != src && n >= 0 && n <= s->len &&
           n <= d->cap);
    move_cells(kv, d->base, s->base, n);
    if (kv->ring > 0 && n > 0) { /* sliding-window layers: the whole ring (positions sit at p % ring, twice) */
        assert(s->ring >= 0 && d->ring >= 0 && s->ring != d->ring);
        const int c_src = s->ring * 2 * kv->ring, c_dst = d->ring * 2 * kv->ring, cnt = 2 * kv->ring;
        for (int l = 0; l < kv->n_layer; l++) {
            if (!kv->layer_ring[l])
                continue;
            memcpy(kv_cache_k(kv, l, c_dst), kv_cache_k(kv, l, c_src), (size_t)cnt * kv->kv_dim * kv->elt);
            for (int dd = 0; dd < kv->kv_dim; dd++) {
                char *row = kv_cache_v(kv, l, dd);
                memcpy(row + (size_t)c_dst * kv->elt, row + (size_t)c_src * kv->elt, (size_t)cnt * kv->elt);
            }
        }
        kv_cache_mark_ring_written(kv, c_dst + cnt);
    }
    d->len = n;
}

int kv_cells_available(const struct kv_cache *kv)
{
    int held = 0;
    for (int i = 0; i < kv->n_seq_max; i++)
        if (kv->seqs[i].state == KV_SEQ_LIVE)
            held += kv->seqs[i].cap;
    return kv->n_cells - held;
}

void kv_cache_clear(struct kv_cache *kv)
{
    for (int i = 0; i < kv->n_seq_max; i++)
        if (kv->seqs[i].state == KV_SEQ_CACHED)
            seq_drop(kv, i);
}
