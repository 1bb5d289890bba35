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
 * Attention is per (token, head group) over the token's own sequence cells,
 * padded to 32 positions from the token's position (docs/PARITY.md).
 * RoPE + cache store are split by tokens, attention by (token, heads) items;
 * the parallel tasks get explicit argument structs. The arithmetic mirrors
 * ggml's CPU ops (see model.h). All buffers are allocated in model_state_new. */
#include "model/model.h"
#include "model/ops.h"
#include "kernels/kernels.h"
#include "obs/log.h"

#include <math.h>
#include <string.h>

struct model_state {
    const struct model *m;
    struct backend *be;
    struct kv_cache *kv;
    int n_ctx, n_batch, n_seq;
    int own_seq;  /* model_eval's sequence (-1 until first use) */
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
    /* per-thread attention scratch */
    float *scores;    /* [n_threads][group][n_ctx] */
    uint16_t *p16;    /* [n_threads][group][n_ctx] */
    uint16_t *q16;    /* [n_threads][group][head_dim] */
    float *rope;      /* [n_threads][n_rot] cos/sin cache */
    int32_t *rows;    /* [8][B] per internal row: batch index, position, first cell, sequence tokens;
                         per batch index: its row; model_eval's positions and sequence ids;
                         per internal row: token id */
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

/* Argument of the per-layer parallel tasks (rope/store, attention). */
struct fwd_layer_task {
    struct model_state *s;
    const struct fwd_batch *fb;
    int layer;
    int per; /* attention: query heads per item (the group, or 1) */
};

#define ALIGN_UP(x) (((x) + 63u) & ~(size_t)63u)
#define N_BUF 16

struct state_layout {
    size_t off[N_BUF];
    size_t total;
};

static int seq_records(int n_seq) { return 2 * n_seq + 8; }

static bool state_layout(const struct model *m, int n_ctx, int B, int nth, int n_seq, struct state_layout *lay)
{
    const struct model_hparams *hp = &m->hp;
    size_t E = (size_t)hp->n_embd, Dq = (size_t)hp->n_head * hp->head_dim,
           Dkv = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    size_t group = (size_t)(hp->n_head / hp->n_head_kv);
    size_t sizes[N_BUF] = {
        B * E * 4, B * E * 4, B * E * 4, B * E * 4, B * Dq * 4, B * Dkv * 4, B * Dkv * 4, B * Dq * 4, B * F * 4,
        B * F * 4, (size_t)nth * group * n_ctx * 4, (size_t)nth * group * n_ctx * 2,
        (size_t)nth * group * hp->head_dim * 2, (size_t)nth * (hp->n_rot + 2) * 4, (size_t)8 * B * 4,
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

/* Tokens per model_decode call: 512 by default, at most the KV cells. */
static int default_batch(int n_cells, int n_batch)
{
    if (n_batch <= 0)
        n_batch = 512;
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

size_t model_state_bytes(const struct model *m, const struct model_state_opts *o)
{
    int n_ctx = SP_MAX(o->n_ctx, 1), nth = SP_MAX(o->n_threads, 1);
    int n_seq, n_cells;
    struct state_layout lay;
    if (!state_cells(o, n_ctx, &n_seq, &n_cells))
        return SIZE_MAX;
    int B = default_batch(n_cells, o->n_batch);
    if (!state_layout(m, n_ctx, B, nth, n_seq, &lay))
        return SIZE_MAX;
    size_t kvb = kv_cache_bytes(m->hp.n_layer, n_cells, m->hp.n_head_kv * m->hp.head_dim, o->kv_type);
    size_t total = lay.total + backend_cpu_scratch_bytes(max_k(m), B) + (size_t)n_cells * 4;
    if (kvb == 0 || !sp_add_size(total, kvb, &total))
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
    if (!state_layout(m, n_ctx, B, nth, n_seq, &lay)) {
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
    float **fbufs[] = {&s->x, &s->xb, &s->xb2, &s->xo, &s->q, &s->k, &s->v, &s->att, &s->hb, &s->hb2, &s->scores};
    for (size_t i = 0; i < SP_ARRAY_LEN(fbufs); i++)
        *fbufs[i] = (float *)(void *)(a + lay.off[i]);
    s->p16 = (uint16_t *)(void *)(a + lay.off[11]);
    s->q16 = (uint16_t *)(void *)(a + lay.off[12]);
    s->rope = (float *)(void *)(a + lay.off[13]);
    s->rows = (int32_t *)(void *)(a + lay.off[14]);
    s->seq_mark = (uint32_t *)(void *)(a + lay.off[15]);
    if ((result = kv_cache_new(m->hp.n_layer, n_cells, m->hp.n_head_kv * m->hp.head_dim, o->kv_type,
                               seq_records(n_seq), &s->kv, err)) != SP_OK)
        goto fail;
    if ((result = backend_cpu_new(nth, max_k(m), B, &s->be, err)) != SP_OK)
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
    backend_free(s->be);
    kv_cache_free(s->kv);
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

/* Phase 1 (split by tokens): biases, per-head q/k norms, RoPE (the layer's
 * base and frequency factors), q scaling, KV store into the row's sequence cells. */
static void rope_store_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    const struct fwd_layer_task *t = ud;
    struct model_state *s = t->s;
    const struct fwd_batch *fb = t->fb;
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    const struct model_layer *L = &m->layers[t->layer];
    const int hd = hp->head_dim, Dq = hp->n_head * hd, Dkv = hp->n_head_kv * hd;

    float *rc = s->rope + (size_t)ith * (hp->n_rot + 2);
    for (int i = (int)i0; i < (int)i1; i++) {
        float *q = s->q + (size_t)i * Dq, *k = s->k + (size_t)i * Dkv, *v = s->v + (size_t)i * Dkv;
        if (L->bq)
            for (int d = 0; d < Dq; d++)
                q[d] += L->bq[d];
        if (L->bk)
            for (int d = 0; d < Dkv; d++)
                k[d] += L->bk[d];
        if (L->bv)
            for (int d = 0; d < Dkv; d++)
                v[d] += L->bv[d];
        if (L->q_norm)
            for (int h = 0; h < hp->n_head; h++)
                model_rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, L->q_norm, hd, hp->rms_eps);
        if (L->k_norm)
            for (int h = 0; h < hp->n_head_kv; h++)
                model_rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, L->k_norm, hd, hp->rms_eps);
        if (hp->n_rot > 0) {
            model_rope_cache(rc, hp->n_rot, (float)fb->pos[i], L->rope_base, L->rope_scale,
                             L->rope_factors ? L->rope_factors : s->rope_ls, hp->rope_attn_factor);
            for (int h = 0; h < hp->n_head; h++)
                kern_rope(q + (size_t)h * hd, rc, hp->n_rot, hp->rope_neox);
            for (int h = 0; h < hp->n_head_kv; h++)
                kern_rope(k + (size_t)h * hd, rc, hp->n_rot, hp->rope_neox);
        }
        if (hp->q_scale) /* ggml_scale of q before the attention (gemma3, phi3) */
            model_scale(q, Dq, hp->attn_scale);
        kv_cache_store(s->kv, t->layer, fb->base[i] + fb->pos[i], k, v);
    }
}

/* Phase 2 (split by (token, heads) items): softmax(q.K * scale) . V over the
 * token's own sequence cells, in llama.cpp's order (ggml_mul_mat(k, q),
 * ggml_soft_max_ext, ggml_mul_mat(v, kq) over the F16 cache): q and the
 * softmax weights are rounded to the cache type, the attended length is
 * padded to 32 positions with zero weights (llama_kv_cache's padding, here
 * from the token's own position: results equal llama.cpp's per-batch padding,
 * see docs/PARITY.md), and each matmul sums in tinyBLAS order when the
 * token's sequence has >= 2 tokens in the batch and the row length is a
 * multiple of 16, vec_dot order otherwise (kernels.h). Exception: with an F32
 * cache K.q is always in vec_dot order, because ggml hands tinyBLAS only a
 * contiguous q (its permuted q is converted to a contiguous copy only when
 * the cache type differs from F32). */
static void attention_range(void *ud, int ith, int64_t it0, int64_t it1)
{
    const struct fwd_layer_task *t = ud;
    struct model_state *s = t->s;
    const struct fwd_batch *fb = t->fb;
    const struct model_hparams *hp = &s->m->hp;
    const int hd = hp->head_dim, Dq = hp->n_head * hd, Dkv = hp->n_head_kv * hd;
    const int l = t->layer;
    struct kv_cache *kv = s->kv;
    const bool f16 = kv->type == KV_F16;
    const float scale = hp->q_scale ? 1.0f : hp->attn_scale;
    const bool swa = s->m->layers[l].swa;
    const int group = hp->n_head / hp->n_head_kv;
    const size_t nc = (size_t)s->n_ctx;
    float *sc = s->scores + (size_t)ith * group * nc;      /* [group][n_ctx] */
    uint16_t *p16 = s->p16 + (size_t)ith * group * nc;     /* [group][n_ctx] */
    uint16_t *q16 = s->q16 + (size_t)ith * group * hd;     /* [group][hd] */
    const struct kern_type_ops *ops = kern_ops(f16 ? GG_TYPE_F16 : GG_TYPE_F32);
    const size_t kstride = (size_t)Dkv * kv->elt, vstride = (size_t)kv->n_cells * kv->elt;
    /* an item is one token and `per` query heads sharing one KV head: the
     * whole group (per = group), or single heads when there are too few
     * groups to keep the threads busy (decode with few KV heads) */
    const int per = t->per;
    const int items_per_tok = hp->n_head / per;
    for (int64_t item = it0; item < it1; item++) {
        const int i = (int)(item / items_per_tok), h0 = (int)(item % items_per_tok) * per, g = h0 / group;
        const int n_kv = fb->pos[i] + 1, n_pad = attn_pad(s, fb->pos[i]), cell0 = fb->base[i];
        /* sliding window: positions p of the sequence with pos - p >= n_swa are masked */
        const int lo = swa ? SP_MAX(0, n_kv - hp->n_swa) : 0;
        /* and are skipped from j0 (a multiple of 64 below lo): every sum keeps
         * its lanes and tail, the skipped terms were exact zeros, so a local
         * layer costs its window, not the context, with the same bits */
        const int j0 = lo / 64 * 64;
        /* llama.cpp's KQ is [n_pad rows of K] x q, its KQV [hd rows of V^T] x kq,
         * for the tokens of this sequence's chunk */
        const kern_gemm_fn gemm_k = f16 ? kern_pick_gemm(ops, n_pad, hd, fb->cnt[i]) : ops->gemm;
        const kern_gemm_fn gemm_v = kern_pick_gemm(ops, hd, n_pad, fb->cnt[i]);
        const float *q = s->q + (size_t)i * Dq + (size_t)h0 * hd;
        float *out = s->att + (size_t)i * Dq + (size_t)h0 * hd;
        const char *kg = (const char *)kv_cache_k(kv, l, cell0) + (size_t)g * hd * kv->elt;
        const char *vg = (const char *)kv_cache_v(kv, l, g * hd) + (size_t)cell0 * kv->elt;
        /* scores[b][j] = K[j] . q_b */
        if (f16) {
            kern_fp32_to_fp16_row(q, q16, (int64_t)per * hd);
            gemm_k(hd, j0, n_kv, per, kg, kstride, q16, (size_t)hd * 2, sc, nc);
        } else {
            gemm_k(hd, j0, n_kv, per, kg, kstride, q, (size_t)hd * 4, sc, nc);
        }
        for (int b = 0; b < per; b++) {
            float *row = sc + (size_t)b * nc;
            float mx = -INFINITY;
            for (int j = j0; j < lo; j++)
                row[j] = -INFINITY;
            for (int j = lo; j < n_kv; j++) {
                row[j] *= scale;
                mx = row[j] > mx ? row[j] : mx;
            }
            for (int j = n_kv; j < n_pad; j++)
                row[j] = -INFINITY; /* causal mask and padding */
            const float inv = (float)(1.0 / kern_softmax_exp(n_pad - j0, row + j0, row + j0, mx));
            for (int j = j0; j < n_pad; j++)
                row[j] *= inv;
            if (f16)
                kern_fp32_to_fp16_row(row + j0, p16 + (size_t)b * nc + j0, n_pad - j0);
        }
        /* out_b[d] = V^T[d] . p_b over the (padded) positions */
        const char *vj = vg + (size_t)j0 * kv->elt;
        if (f16)
            gemm_v(n_pad - j0, 0, hd, per, vj, vstride, p16 + j0, nc * 2, out, (size_t)hd);
        else
            gemm_v(n_pad - j0, 0, hd, per, vj, vstride, sc + j0, nc * 4, out, (size_t)hd);
    }
}

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

enum sp_status model_decode(struct model_state *s, const struct model_batch *b, float *logits, struct sp_err *err)
{
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    struct fwd_batch fb;
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
    const int group = hp->n_head / hp->n_head_kv;
    const int per = (int64_t)n * hp->n_head_kv >= 4 * (int64_t)be->n_threads ? group : 1;
    double att_work = 0;
    for (int r = 0; r < n; r++)
        att_work += (double)hp->n_head * (fb.pos[r] + 1) * hp->head_dim * 4.0;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        /* the residual of the previous layer's FFN is added here */
        add_norm(s, n, l > 0, L->attn_norm);
        struct backend_mm qkv[3] = {{&L->wq, s->q, (size_t)Dq},
                                    {&L->wk, s->k, (size_t)Dkv},
                                    {&L->wv, s->v, (size_t)Dkv}};
        be->ops->matmul(be, qkv, 3, s->xb, n, fb.n_solo, (size_t)E);
        struct fwd_layer_task t = {s, &fb, l, per};
        be->ops->parallel_for(be, rope_store_range, &t, n, 1, (double)n * (Dq + Dkv) * 8.0);
        for (int r = 0; r < n; r++) /* zero V in each sequence's padding after its last token */
            if (r + 1 == n || fb.base[r + 1] != fb.base[r] || fb.pos[r + 1] != fb.pos[r] + 1)
                kv_cache_zero_v(kv, l, fb.base[r] + fb.pos[r] + 1, fb.base[r] + attn_pad(s, fb.pos[r]));
        be->ops->parallel_for(be, attention_range, &t, (int64_t)n * (hp->n_head / per), 1, att_work);
        struct backend_mm o = {&L->wo, s->xb2, (size_t)E};
        be->ops->matmul(be, &o, 1, s->att, n, fb.n_solo, (size_t)Dq);
        if (l == hp->n_layer - 1) {
            /* as llama.cpp: the last layer's FFN runs only for the tokens
             * whose logits are wanted, each as in a 1-row batch */
            nr = ns = logits ? gather_out_rows(s, b, &fb) : 0;
            if (nr == 0)
                return SP_OK;
        }
        post_out(s, nr, L->bo, L->attn_post_norm);
        add_norm(s, nr, true, L->ffn_norm);
        struct backend_mm gu[2] = {{&L->w_gate, s->hb, (size_t)F}, {&L->w_up, s->hb2, (size_t)F}};
        be->ops->matmul(be, gu, 2, s->xb, nr, ns, (size_t)E);
        be->ops->glu(be, hp->act == MODEL_ACT_GELU ? BACKEND_ACT_GELU : BACKEND_ACT_SILU, s->hb, s->hb2, nr, F,
                     (size_t)F);
        struct backend_mm d = {&L->w_down, s->xb2, (size_t)E};
        be->ops->matmul(be, &d, 1, s->hb, nr, ns, (size_t)F);
        post_out(s, nr, NULL, L->ffn_post_norm);
    }
    /* the last FFN residual, then the output norm */
    add_norm(s, nr, true, m->output_norm);
    if (logits) {
        struct backend_mm out = {&m->output, logits, (size_t)hp->n_vocab};
        be->ops->matmul(be, &out, 1, s->xb, nr, nr, (size_t)E);
        if (hp->logit_softcap > 0)
            be->ops->softcap(be, logits, (int64_t)nr * hp->n_vocab, hp->logit_softcap);
    }
    return SP_OK;
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
