/* forward.c - evaluation state and the transformer forward pass over a
 * batch of tokens from one or more sequences.
 *
 * model_decode runs n tokens:
 *   x = embed(tokens)
 *   per layer: h = rmsnorm(x) * attn_norm; q,k,v = h Wq,Wk,Wv (+bias);
 *              q/k norms, rope(q,k); store k,v in the token's sequence cells;
 *              x += post(attention(q, own sequence's cells, window) Wo);
 *              h = rmsnorm(x) * ffn_norm; x += post((act(h Wgate) * h Wup) Wdown)
 *   logits = softcap(rmsnorm(x) * output_norm Wout)   (only rows that want logits)
 * The family's hooks (model.h: q/k norms, post-norms, GELU, sliding window,
 * RoPE factors, scales, soft-capping) come from the architecture table.
 * Rows are reordered internally: the tokens of sequences with a single token
 * in the batch (decode steps) come first, then the prompt chunks. Each
 * matmul streams its weight once for all rows; where the weight type has a
 * second summation order (F32/F16: tinyBLAS for batches >= 2, as llama.cpp)
 * the single-token rows keep the 1-row order, so every row gets exactly the
 * arithmetic of its sequence evaluated alone with the same chunk (for those
 * two types a mixed step is two passes over the weight, one per order).
 * Attention sees each token's own sequence cells, padded to 32 positions from
 * the token's position (docs/PARITY.md). Every computation goes through the
 * state's backend (backend.h: get_rows, rms_norm, matmul, attn_store,
 * attention, glu, softcap); this file only plans rows and calls the ops in
 * the order of llama.cpp's graph, so it includes no kernel. All buffers are
 * allocated in model_state_new (the attention scratch by attn_reserve). */
#include "model/model.h"
#include "obs/log.h"

#include <math.h>
#include <string.h>

struct model_state {
    const struct model *m;
    struct backend *be;
    struct kv_cache *kv;
    int n_ctx, n_batch, n_seq;
    int own_seq;  /* model_eval's sequence (-1 until first use) */
    int ring;     /* sliding-window layers: positions per ring (kv.h), 0 = full length */
    const float *rope_ls; /* phi3: long or short RoPE factors for this context size, or NULL */
    /* activations, n_batch rows each */
    float *x;     /* [B][E] residual stream */
    float *xb;    /* [B][E] normed input */
    float *xb2;   /* [B][E] matmul output */
    float *xo;    /* [B][E] gather scratch for the output rows */
    float *q;     /* [B][Dq] */
    float *k;     /* [B][Dkv] */
    float *v;     /* [B][Dkv] */
    float *att;   /* [B][Dq] attention output */
    float *hb;    /* [B][F] */
    float *hb2;   /* [B][F] */
    int32_t *rows;    /* [9][B] per internal row: batch index, position, first cell, sequence tokens;
                         per batch index: its row; model_eval's positions and sequence ids;
                         per internal row: token id, first ring cell */
    uint32_t *seq_mark; /* [kv n_seq_max] batch validation stamps */
    uint32_t stamp;
    void *arena;
};

/* One model_decode call in internal row order (single-token sequences first). */
struct fwd_batch {
    int n;                /* rows */
    int n_solo;           /* rows [0, n_solo) belong to single-token sequences */
    const int32_t *src;   /* [n] batch index of each row */
    const int32_t *pos;   /* [n] position in its sequence */
    const int32_t *base;  /* [n] first cell of its sequence */
    const int32_t *cnt;   /* [n] tokens of its sequence in this batch */
};

#define ALIGN_UP(x) (((x) + 63u) & ~(size_t)63u)
#define N_BUF 12

struct state_layout {
    size_t off[N_BUF];
    size_t total;
};

static int seq_records(int n_seq) { return 2 * n_seq + 8; }

static bool state_layout(const struct model *m, int B, int n_seq, struct state_layout *lay)
{
    const struct model_hparams *hp = &m->hp;
    size_t E = (size_t)hp->n_embd, Dq = (size_t)hp->n_head * hp->head_dim,
           Dkv = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    size_t sizes[N_BUF] = {
        B * E * 4, B * E * 4, B * E * 4, B * E * 4, B * Dq * 4, B * Dkv * 4, B * Dkv * 4, B * Dq * 4, B * F * 4,
        B * F * 4, (size_t)9 * B * 4,
        (size_t)seq_records(n_seq) * 4,
    };
    size_t total = 0;
    for (int i = 0; i < N_BUF; i++) {
        lay->off[i] = total;
        if (!sp_add_size(total, ALIGN_UP(sizes[i]), &total))
            return false;
    }
    lay->total = total;
    return true;
}

/* Tokens per model_decode call: MODEL_BATCH_DEFAULT unless set, at most the KV cells. */
static int default_batch(int n_cells, int n_batch)
{
    if (n_batch <= 0)
        n_batch = MODEL_BATCH_DEFAULT;
    return SP_MIN(n_batch, n_cells);
}

static int64_t max_k(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    int64_t k = hp->n_embd;
    k = SP_MAX(k, (int64_t)hp->n_head * hp->head_dim);
    return SP_MAX(k, (int64_t)hp->n_ff);
}

/* n_seq and n_cells after defaults (n_cells >= n_ctx); false on overflow. */
static bool state_cells(const struct model_state_opts *o, int n_ctx, int *n_seq, int *n_cells)
{
    *n_seq = SP_MAX(o->n_seq, 1);
    int64_t c = o->n_cells > 0 ? o->n_cells : (int64_t)n_ctx * *n_seq;
    c = SP_MAX(c, (int64_t)n_ctx);
    if (c > INT32_MAX / 2 || *n_seq > 4096)
        return false;
    *n_cells = (int)c;
    return true;
}

/* Positions per ring for the sliding-window layers (kv.h), or 0 (none, or
 * swa_full, or a ring would not be smaller than the context). A token
 * reads positions [j0, n_pad): at most window + 94 (j0 is 64-aligned below
 * the window, n_pad the position + 1 rounded up to 32); a batch adds up to
 * B positions of a sequence before its first token reads. So window + B +
 * 96, rounded up to 64, keeps every position a window reads, and the
 * padding zeroed after a batch holds none of them. */
static int swa_ring(const struct model *m, const struct model_state_opts *o, int n_ctx, int B, int *n_layers)
{
    const struct model_hparams *hp = &m->hp;
    *n_layers = 0;
    for (int l = 0; m->layers && l < hp->n_layer; l++) /* encoders (bert) have no decoder layers */
        *n_layers += m->layers[l].swa;
    if (o->swa_full || hp->n_swa <= 0 || *n_layers == 0)
        return (*n_layers = 0);
    const int64_t r = ((int64_t)hp->n_swa + B + 96 + 63) / 64 * 64;
    if (2 * r >= n_ctx)
        return (*n_layers = 0);
    return (int)r;
}

size_t model_state_kv_bytes(const struct model *m, const struct model_state_opts *o)
{
    int n_ctx = SP_MAX(o->n_ctx, 1), n_seq, n_cells, n_ring_layers;
    if (!state_cells(o, n_ctx, &n_seq, &n_cells))
        return SIZE_MAX;
    const int ring = swa_ring(m, o, n_ctx, default_batch(n_cells, o->n_batch), &n_ring_layers);
    const struct model_hparams *hp = &m->hp;
    size_t b = kv_cache_bytes_ring(hp->n_layer, n_ring_layers, n_cells, ring, n_seq, hp->n_head_kv * hp->head_dim,
                                   o->kv_type);
    return b == 0 ? SIZE_MAX : b;
}

size_t model_state_bytes(const struct model *m, const struct model_state_opts *o)
{
    int n_ctx = SP_MAX(o->n_ctx, 1), nth = SP_MAX(o->n_threads, 1);
    int n_seq, n_cells;
    struct state_layout lay;
    if (!state_cells(o, n_ctx, &n_seq, &n_cells))
        return SIZE_MAX;
    int B = default_batch(n_cells, o->n_batch);
    if (!state_layout(m, B, n_seq, &lay))
        return SIZE_MAX;
    const struct model_hparams *hp = &m->hp;
    size_t kvb = model_state_kv_bytes(m, o);
    size_t atb = backend_cpu_attn_bytes(nth, n_ctx, hp->n_head / hp->n_head_kv, hp->head_dim, hp->n_rot);
    size_t total = lay.total + backend_cpu_scratch_bytes(max_k(m), B) + (size_t)n_cells * 4;
    if (kvb == SIZE_MAX || !sp_add_size(total, kvb, &total) || !sp_add_size(total, atb, &total))
        return SIZE_MAX;
    return total;
}

enum sp_status model_state_new(const struct model *m, const struct model_state_opts *o, struct model_state **out,
                               struct sp_err *err)
{
    enum sp_status result;
    *out = NULL;
    if (o->n_ctx < 1)
        return sp_err_set(err, SP_ERR_INVALID, "context size must be at least 1 (got %d)", o->n_ctx);
    if (m->bert)
        return sp_err_set(err, SP_ERR_INVALID, "%s is an encoder (embedding) model: it has no decoder state",
                          m->hp.arch_name);
    int n_ctx = o->n_ctx, nth = SP_MAX(o->n_threads, 1);
    int n_seq, n_cells;
    if (!state_cells(o, n_ctx, &n_seq, &n_cells))
        return sp_err_set(err, SP_ERR_RANGE, "KV budget too large (%d sequences of context %d)", o->n_seq, n_ctx);
    int B = default_batch(n_cells, o->n_batch);
    struct model_state *s = sp_calloc(1, sizeof(*s));
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a model state");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = B;
    s->n_seq = n_seq;
    s->own_seq = -1;
    /* llama.cpp's phi3 rule: the long factors when the context exceeds the original one */
    s->rope_ls = n_ctx > m->hp.n_ctx_orig && m->rope_long ? m->rope_long : m->rope_short;
    struct state_layout lay;
    if (!state_layout(m, B, n_seq, &lay)) {
        result = sp_err_set(err, SP_ERR_RANGE, "scratch size overflows (context %d)", n_ctx);
        goto fail;
    }
    s->arena = sp_aligned_alloc(64, lay.total);
    if (!s->arena) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating %zu MiB of scratch", lay.total >> 20);
        goto fail;
    }
    memset(s->arena, 0, lay.total);
    char *a = s->arena;
    float **fbufs[] = {&s->x, &s->xb, &s->xb2, &s->xo, &s->q, &s->k, &s->v, &s->att, &s->hb, &s->hb2};
    for (size_t i = 0; i < SP_ARRAY_LEN(fbufs); i++)
        *fbufs[i] = (float *)(void *)(a + lay.off[i]);
    s->rows = (int32_t *)(void *)(a + lay.off[10]);
    s->seq_mark = (uint32_t *)(void *)(a + lay.off[11]);
    if ((result = backend_new_on(m->dev, nth, max_k(m), B, &s->be, err)) != SP_OK)
        goto fail;
    if ((result = s->be->ops->attn_reserve(s->be, n_ctx, m->hp.n_head / m->hp.n_head_kv, m->hp.head_dim,
                                           m->hp.n_rot, err)) != SP_OK)
        goto fail;
    /* the backend allocates the K/V storage (device memory on a GPU backend);
     * sliding-window layers keep one ring per sequence */
    int n_ring_layers;
    s->ring = swa_ring(m, o, n_ctx, B, &n_ring_layers);
    bool *ring_layers = s->ring > 0 ? sp_calloc((size_t)m->hp.n_layer, sizeof(bool)) : NULL;
    if (s->ring > 0 && !ring_layers) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a model state");
        goto fail;
    }
    for (int l = 0; ring_layers && l < m->hp.n_layer; l++)
        ring_layers[l] = m->layers[l].swa;
    result = kv_cache_new_ring(s->be, m->hp.n_layer, n_cells, m->hp.n_head_kv * m->hp.head_dim, o->kv_type,
                               seq_records(n_seq), ring_layers, s->ring, m->hp.n_swa, n_seq, &s->kv, err);
    sp_free(ring_layers);
    if (result != SP_OK)
        goto fail;
    *out = s;
    return SP_OK;
fail:
    model_state_free(s);
    return result;
}

void model_state_free(struct model_state *s)
{
    if (!s)
        return;
    kv_cache_free(s->kv); /* before the backend that owns its storage */
    backend_free(s->be);
    sp_aligned_free(s->arena);
    sp_free(s);
}

int model_state_n_ctx(const struct model_state *s) { return s->n_ctx; }
int model_state_n_batch(const struct model_state *s) { return s->n_batch; }
struct kv_cache *model_state_kv(struct model_state *s) { return s->kv; }

int model_seq_cells(const struct model_state *s, int n_pos)
{
    int64_t c = ((int64_t)SP_MAX(n_pos, 1) + 31) / 32 * 32;
    return (int)SP_MIN(c, (int64_t)s->n_ctx);
}

/* Cells the attention of a token at position pos reads: its causal span
 * padded to 32 (llama.cpp's KV padding), capped at the context. */
static int attn_pad(const struct model_state *s, int pos) { return SP_MIN(s->n_ctx, (pos + 1 + 31) / 32 * 32); }

/* Per row: xb2 += bias, then xb2 = rmsnorm(xb2) * norm_w (a projection's
 * bias, gemma3's post-attention / post-FFN norms), each when set. */
static void post_out(struct model_state *s, int n, const float *b, const float *w)
{
    if (!b && !w)
        return;
    const int E = s->m->hp.n_embd;
    struct backend_norm a = {s->xb2, NULL, b, s->xb2, w, n, E, (size_t)E, s->m->hp.rms_eps};
    s->be->ops->rms_norm(s->be, &a);
}

/* Per row of n rows of dim floats: x += bias (when set). */
static void add_bias(struct model_state *s, float *x, int n, int dim, const float *bias)
{
    if (!bias)
        return;
    struct backend_norm a = {x, NULL, bias, x, NULL, n, dim, (size_t)dim, 0.0f};
    s->be->ops->rms_norm(s->be, &a);
}

/* Per row: x += xb2 (when add_first), then xb = rmsnorm(x) * w. */
static void add_norm(struct model_state *s, int n, bool add_first, const float *w)
{
    const int E = s->m->hp.n_embd;
    struct backend_norm a = {s->x, add_first ? s->xb2 : NULL, NULL, s->xb, w, n, E, (size_t)E, s->m->hp.rms_eps};
    s->be->ops->rms_norm(s->be, &a);
}

/* Validate b and lay out its rows (single-token sequences first) in s->rows. */
static enum sp_status plan_rows(struct model_state *s, const struct model_batch *b, struct fwd_batch *fb,
                                struct sp_err *err)
{
    const struct model_hparams *hp = &s->m->hp;
    struct kv_cache *kv = s->kv;
    const int n = b->n, B = s->n_batch;
    if (n < 1 || n > B || !b->tokens || !b->pos || !b->seq)
        return sp_err_set(err, SP_ERR_INVALID, "cannot evaluate a batch of %d tokens (batch size %d)", n, B);
    if (++s->stamp == 0) {
        memset(s->seq_mark, 0, (size_t)kv->n_seq_max * sizeof(uint32_t));
        s->stamp = 1;
    }
    int n_solo = 0;
    for (int i = 0; i < n;) {
        const int id = b->seq[i];
        if (id < 0 || id >= kv->n_seq_max || kv->seqs[id].state != KV_SEQ_LIVE)
            return sp_err_set(err, SP_ERR_INVALID, "token %d names sequence %d, which is not open", i, id);
        if (s->seq_mark[id] == s->stamp)
            return sp_err_set(err, SP_ERR_INVALID, "the tokens of sequence %d are not consecutive in the batch", id);
        s->seq_mark[id] = s->stamp;
        const struct kv_seq *q = &kv->seqs[id];
        int j = i;
        while (j < n && b->seq[j] == id) {
            if (b->tokens[j] < 0 || b->tokens[j] >= hp->n_vocab)
                return sp_err_set(err, SP_ERR_INVALID, "token id %d is out of range (vocabulary %d)", b->tokens[j],
                                  hp->n_vocab);
            if (b->pos[j] != b->pos[i] + (j - i))
                return sp_err_set(err, SP_ERR_INVALID, "positions of sequence %d are not consecutive", id);
            j++;
        }
        const int p0 = b->pos[i], p_end = p0 + (j - i);
        if (p0 < 0 || p0 > q->len || p_end > s->n_ctx || attn_pad(s, p_end - 1) > q->cap)
            return sp_err_set(err, SP_ERR_INVALID,
                              "cannot evaluate positions %d..%d of sequence %d (it holds %d of %d cells, context %d)",
                              p0, p_end - 1, id, q->len, q->cap, s->n_ctx);
        n_solo += j - i == 1;
        i = j;
    }
    int32_t *src = s->rows, *pos = src + B, *base = pos + B, *cnt = base + B;
    int r_solo = 0, r_multi = n_solo;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && b->seq[j] == b->seq[i])
            j++;
        int *r = j - i == 1 ? &r_solo : &r_multi;
        for (int k = i; k < j; k++, (*r)++) {
            src[*r] = k;
            pos[*r] = b->pos[k];
            base[*r] = kv->seqs[b->seq[i]].base;
            cnt[*r] = j - i;
        }
        i = j;
    }
    fb->n = n;
    fb->n_solo = n_solo;
    fb->src = src;
    fb->pos = pos;
    fb->base = base;
    fb->cnt = cnt;
    return SP_OK;
}

static bool wants_logits(const struct model_batch *b, int i)
{
    if (b->logits)
        return b->logits[i];
    return i == b->n - 1 || b->seq[i + 1] != b->seq[i];
}

/* Move the rows whose logits are wanted (in batch order) to the front of x
 * and xb2; returns their number. */
static int gather_out_rows(struct model_state *s, const struct model_batch *b, const struct fwd_batch *fb)
{
    const int E = s->m->hp.n_embd, B = s->n_batch;
    int32_t *inv = s->rows + 4 * (size_t)B;
    for (int r = 0; r < fb->n; r++)
        inv[fb->src[r]] = r;
    int n_out = 0;
    for (int i = 0; i < b->n; i++) {
        if (!wants_logits(b, i))
            continue;
        int r = inv[i];
        memcpy(s->xo + (size_t)n_out * E, s->x + (size_t)r * E, (size_t)E * sizeof(float));
        memcpy(s->xb + (size_t)n_out * E, s->xb2 + (size_t)r * E, (size_t)E * sizeof(float));
        n_out++;
    }
    memcpy(s->x, s->xo, (size_t)n_out * E * sizeof(float));
    memcpy(s->xb2, s->xb, (size_t)n_out * E * sizeof(float));
    return n_out;
}

static enum sp_status decode(struct model_state *s, const struct model_batch *b, float *logits, float *embd,
                             struct sp_err *err)
{
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    struct fwd_batch fb = {0};
    enum sp_status result = b ? plan_rows(s, b, &fb, err)
                              : sp_err_set(err, SP_ERR_INVALID, "no batch given");
    if (result != SP_OK)
        return result;
    const int n = fb.n, E = hp->n_embd, Dq = hp->n_head * hp->head_dim, Dkv = hp->n_head_kv * hp->head_dim,
              F = hp->n_ff;
    struct kv_cache *kv = s->kv;
    for (int i = 0; i < n;) { /* the sequences' cells now hold these tokens */
        int j = i;
        while (j < n && b->seq[j] == b->seq[i])
            j++;
        kv_seq_set_tokens(kv, b->seq[i], b->pos[i], b->tokens + i, j - i);
        i = j;
    }
    struct backend *be = s->be;
    int32_t *ids = s->rows + 7 * (size_t)s->n_batch;
    for (int r = 0; r < n; r++)
        ids[r] = b->tokens[fb.src[r]];
    /* gemma: ggml_scale by sqrt(n_embd) */
    be->ops->get_rows(be, &m->tok_embd, ids, n, s->x, (size_t)E, hp->embd_scale);
    int nr = n, ns = fb.n_solo; /* rows through the FFN: the last layer only needs the output rows */
    /* the cells this batch writes (the store op zeroes padding only below the mark) */
    int32_t *rcell = s->rows + 8 * (size_t)s->n_batch;
    for (int r = 0; r < n; r++) {
        kv_cache_mark_written(kv, fb.base[r] + fb.pos[r] + 1);
        if (s->ring > 0) {
            rcell[r] = kv_seq_ring_cell0(kv, b->seq[fb.src[r]]);
            kv_cache_mark_ring_written(kv, rcell[r] + 2 * s->ring);
        }
    }
    const struct backend_tokens tok = {n, fb.pos, fb.base, fb.cnt, s->n_ctx, 0};
    const struct backend_tokens tok_ring = {n, fb.pos, rcell, fb.cnt, s->n_ctx, s->ring};
    for (int l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        /* the residual of the previous layer's FFN is added here */
        add_norm(s, n, l > 0, L->attn_norm);
        struct backend_mm qkv[3] = {{&L->wq, s->q, (size_t)Dq},
                                    {&L->wk, s->k, (size_t)Dkv},
                                    {&L->wv, s->v, (size_t)Dkv}};
        be->ops->matmul(be, qkv, 3, s->xb, n, fb.n_solo, (size_t)E);
        const struct backend_kv kvl = {kv_cache_k(kv, l, 0), kv_cache_v(kv, l, 0),
                                       kv->type == KV_F32 ? GG_TYPE_F32 : GG_TYPE_F16, kv_layer_cells(kv, l),
                                       kv->kv_dim, kv_layer_hwm(kv, l)};
        const struct backend_tokens *tl = kv->layer_ring[l] ? &tok_ring : &tok;
        /* q scaled before K.q (gemma3, phi3: ggml_scale of q) or the scores after */
        const struct backend_attn_store st = {
            s->q, s->k, s->v, hp->n_head, hp->n_head_kv, hp->head_dim, L->bq, L->bk, L->bv, L->q_norm, L->k_norm,
            hp->rms_eps, hp->n_rot, hp->rope_neox, L->rope_base, L->rope_scale, hp->rope_attn_factor,
            L->rope_factors ? L->rope_factors : s->rope_ls, hp->q_scale ? hp->attn_scale : 1.0f, tl, kvl};
        be->ops->attn_store(be, &st);
        const struct backend_attention at = {s->q, s->att, hp->n_head, hp->n_head_kv, hp->head_dim,
                                             hp->q_scale ? 1.0f : hp->attn_scale, L->swa ? hp->n_swa : 0, tl, kvl};
        be->ops->attention(be, &at);
        struct backend_mm o = {&L->wo, s->xb2, (size_t)E};
        be->ops->matmul(be, &o, 1, s->att, n, fb.n_solo, (size_t)Dq);
        if (l == hp->n_layer - 1) {
            /* as llama.cpp: the last layer's FFN runs only for the tokens
             * whose logits are wanted, each as in a 1-row batch */
            nr = ns = logits || embd ? gather_out_rows(s, b, &fb) : 0;
            if (nr == 0)
                return SP_OK;
        }
        post_out(s, nr, L->bo, L->attn_post_norm);
        add_norm(s, nr, true, L->ffn_norm);
        struct backend_mm gu[2] = {{&L->w_gate, s->hb, (size_t)F}, {&L->w_up, s->hb2, (size_t)F}};
        be->ops->matmul(be, gu, 2, s->xb, nr, ns, (size_t)E);
        add_bias(s, s->hb, nr, F, L->b_gate); /* ggml_add after each matmul, as build_ffn */
        add_bias(s, s->hb2, nr, F, L->b_up);
        be->ops->glu(be, hp->act == MODEL_ACT_GELU ? BACKEND_ACT_GELU : BACKEND_ACT_SILU, s->hb, s->hb2, nr, F,
                     (size_t)F);
        struct backend_mm d = {&L->w_down, s->xb2, (size_t)E};
        be->ops->matmul(be, &d, 1, s->hb, nr, ns, (size_t)F);
        post_out(s, nr, L->b_down, L->ffn_post_norm);
    }
    /* the last FFN residual, then the output norm */
    add_norm(s, nr, true, m->output_norm);
    if (embd) /* embeddings pool the output-normed hidden states */
        memcpy(embd, s->xb, (size_t)nr * E * sizeof(float));
    if (logits) {
        struct backend_mm out = {&m->output, logits, (size_t)hp->n_vocab};
        be->ops->matmul(be, &out, 1, s->xb, nr, nr, (size_t)E);
        if (hp->logit_softcap > 0)
            be->ops->softcap(be, logits, (int64_t)nr * hp->n_vocab, hp->logit_softcap);
    }
    return SP_OK;
}

enum sp_status model_decode(struct model_state *s, const struct model_batch *b, float *logits, struct sp_err *err)
{
    return decode(s, b, logits, NULL, err);
}

enum sp_status model_decode_embd(struct model_state *s, const struct model_batch *b, float *embd, struct sp_err *err)
{
    return decode(s, b, NULL, embd, err);
}

enum sp_status model_eval(struct model_state *s, const int32_t *tokens, int n, int pos0, float *logits,
                          struct sp_err *err)
{
    if (n < 1 || n > s->n_batch || pos0 < 0 || pos0 > s->n_ctx - n)
        return sp_err_set(err, SP_ERR_INVALID, "cannot evaluate %d tokens at position %d (batch %d, context %d)",
                          n, pos0, s->n_batch, s->n_ctx);
    if (s->own_seq < 0) {
        int id, reused;
        if (kv_seq_open(s->kv, s->n_ctx, NULL, 0, 0, &id, &reused) != SP_OK)
            return sp_err_set(err, SP_ERR_BUSY, "no KV cells left for a sequence of %d positions", s->n_ctx);
        s->own_seq = id;
    }
    int32_t *pos = s->rows + 5 * (size_t)s->n_batch, *seq = pos + s->n_batch;
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        seq[i] = s->own_seq;
    }
    struct model_batch b = {n, tokens, pos, seq, NULL};
    return model_decode(s, &b, logits, err);
}
