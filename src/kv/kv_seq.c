/* kv_seq.c - sequences of the shared KV cache: each live or cached
 * sequence holds one contiguous span of cells. Opening a sequence first
 * looks for the cached (finished) sequence whose tokens share the longest
 * prefix with the new prompt and takes its cells over (in place when the
 * span can grow or shrink there, else by copying the kept cells to a new
 * span); otherwise it takes the first gap of cells big enough (first fit
 * over the spans sorted by base). Cached spans are evicted least recently
 * used until the span fits; when only live spans are left, the caller waits
 * (SP_ERR_BUSY). The number of records is small (max concurrency plus the
 * cached ones), so every search is a linear scan. */
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
    memset(&kv->seqs[victim], 0, sizeof(kv->seqs[victim]));
    return true;
}

/* Move n cells from src to dst (every layer's K rows and V columns, and the token ids). */
static void move_cells(struct kv_cache *kv, int dst, int src, int n)
{
    if (n <= 0 || dst == src)
        return;
    for (int l = 0; l < kv->n_layer; l++) {
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
            if (k > best_keep) {
                best_keep = k;
                best = i;
            }
        }
    }
    if (best >= 0) {
        if (take_over(kv, best, cap, best_keep)) {
            *id = best;
            *n_reused = best_keep;
            return SP_OK;
        }
        memset(&kv->seqs[best], 0, sizeof(kv->seqs[best])); /* no room to keep it: start afresh */
    }
    int rec = -1;
    for (int i = 0; i < kv->n_seq_max && rec < 0; i++)
        if (kv->seqs[i].state == KV_SEQ_FREE)
            rec = i;
    if (rec < 0) {
        if (!evict_one(kv, -1))
            return SP_ERR_BUSY;
        for (int i = 0; i < kv->n_seq_max && rec < 0; i++)
            if (kv->seqs[i].state == KV_SEQ_FREE)
                rec = i;
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
        memset(s, 0, sizeof(*s));
    }
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
    struct kv_seq *d = &kv->seqs[dst];
    const struct kv_seq *s = &kv->seqs[src];
    assert(d->state == KV_SEQ_LIVE && s->state == KV_SEQ_LIVE && dst != src && n >= 0 && n <= s->len &&
           n <= d->cap);
    move_cells(kv, d->base, s->base, n); /* live spans never overlap */
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
            memset(&kv->seqs[i], 0, sizeof(kv->seqs[i]));
}
