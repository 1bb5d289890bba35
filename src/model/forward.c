/* forward.c - evaluation state and the transformer forward pass.
 *
 * model_eval runs a batch of n tokens (prefill) or one token (decode):
 *   x = embed(tokens)
 *   per layer: h = rmsnorm(x) * attn_norm; q,k,v = h Wq,Wk,Wv (+bias);
 *              rope(q,k); store k,v; x += attention(q, cache) Wo;
 *              h = rmsnorm(x) * ffn_norm; x += (silu(h Wgate) * h Wup) Wdown
 *   logits = rmsnorm(x_last) * output_norm Wout
 * Matmuls go through the backend (activations quantized once per matmul,
 * rows split across the pool). RoPE + cache store are split by tokens, then
 * attention by (token, head) pairs (two parallel range tasks). The
 * arithmetic mirrors ggml's CPU ops (see model.h). All buffers are allocated
 * in model_state_new. */
#include "model/model.h"
#include "model/ops.h"
#include "obs/log.h"

#include <math.h>
#include <string.h>

struct model_state {
    const struct model *m;
    struct backend *be;
    struct kv_cache *kv;
    int n_ctx, n_batch;
    /* activations, n_batch rows each */
    float *x;     /* [B][E] residual stream */
    float *xb;    /* [B][E] normed input */
    float *xb2;   /* [B][E] matmul output */
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
    void *arena;
    /* current task */
    int layer, n_tok, pos0, n_pad;
    const float *norm_w; /* add_norm_range: weight, and whether to add xb2 first */
    bool add_first;
    int att_per_item;    /* query heads per attention item (group or 1) */
    const float *post_b, *post_w; /* post_range: bias and norm applied to xb2 (or NULL) */
    const float *rope_ls; /* phi3: long or short RoPE factors for this context size, or NULL */
};

#define ALIGN_UP(x) (((x) + 63u) & ~(size_t)63u)

struct state_layout {
    size_t off[13];
    size_t total;
};

static bool state_layout(const struct model *m, int n_ctx, int B, int nth, struct state_layout *lay)
{
    const struct model_hparams *hp = &m->hp;
    size_t E = (size_t)hp->n_embd, Dq = (size_t)hp->n_head * hp->head_dim,
           Dkv = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    size_t group = (size_t)(hp->n_head / hp->n_head_kv);
    size_t sizes[13] = {
        B * E * 4, B * E * 4, B * E * 4, B * Dq * 4, B * Dkv * 4, B * Dkv * 4, B * Dq * 4, B * F * 4, B * F * 4,
        (size_t)nth * group * n_ctx * 4, (size_t)nth * group * n_ctx * 2, (size_t)nth * group * hp->head_dim * 2,
        (size_t)nth * (hp->n_rot + 2) * 4,
    };
    size_t total = 0;
    for (int i = 0; i < 13; i++) {
        lay->off[i] = total;
        if (!sp_add_size(total, ALIGN_UP(sizes[i]), &total))
            return false;
    }
    lay->total = total;
    return true;
}

static int default_batch(int n_ctx, int n_batch)
{
    if (n_batch <= 0)
        n_batch = 512;
    return SP_MIN(n_batch, n_ctx);
}

static int64_t max_k(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    int64_t k = hp->n_embd;
    k = SP_MAX(k, (int64_t)hp->n_head * hp->head_dim);
    return SP_MAX(k, (int64_t)hp->n_ff);
}

size_t model_state_bytes(const struct model *m, const struct model_state_opts *o)
{
    int n_ctx = SP_MAX(o->n_ctx, 1), B = default_batch(n_ctx, o->n_batch), nth = SP_MAX(o->n_threads, 1);
    struct state_layout lay;
    if (!state_layout(m, n_ctx, B, nth, &lay))
        return SIZE_MAX;
    size_t kvb = kv_cache_bytes(m->hp.n_layer, n_ctx, m->hp.n_head_kv * m->hp.head_dim, o->kv_type);
    size_t total = lay.total + backend_cpu_scratch_bytes(max_k(m), B) + (size_t)m->hp.n_vocab * 4;
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
    int n_ctx = o->n_ctx, B = default_batch(n_ctx, o->n_batch), nth = SP_MAX(o->n_threads, 1);
    struct model_state *s = sp_calloc(1, sizeof(*s));
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a model state");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = B;
    struct state_layout lay;
    if (!state_layout(m, n_ctx, B, nth, &lay)) {
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
    s->x = (float *)(void *)(a + lay.off[0]);
    s->xb = (float *)(void *)(a + lay.off[1]);
    s->xb2 = (float *)(void *)(a + lay.off[2]);
    s->q = (float *)(void *)(a + lay.off[3]);
    s->k = (float *)(void *)(a + lay.off[4]);
    s->v = (float *)(void *)(a + lay.off[5]);
    s->att = (float *)(void *)(a + lay.off[6]);
    s->hb = (float *)(void *)(a + lay.off[7]);
    s->hb2 = (float *)(void *)(a + lay.off[8]);
    s->scores = (float *)(void *)(a + lay.off[9]);
    s->p16 = (uint16_t *)(void *)(a + lay.off[10]);
    s->q16 = (uint16_t *)(void *)(a + lay.off[11]);
    s->rope = (float *)(void *)(a + lay.off[12]);
    /* llama.cpp's phi3 rule: the long factors when the context exceeds the original one */
    s->rope_ls = n_ctx > m->hp.n_ctx_orig && m->rope_long ? m->rope_long : m->rope_short;
    if ((result = kv_cache_new(m->hp.n_layer, n_ctx, m->hp.n_head_kv * m->hp.head_dim, o->kv_type, &s->kv, err)) !=
        SP_OK)
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

/* Phase 1 (split by tokens): biases, per-head q/k norms, RoPE (the layer's
 * base and frequency factors), q scaling, KV store. */
static void rope_store_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    struct model_state *s = ud;
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    const struct model_layer *L = &m->layers[s->layer];
    const int hd = hp->head_dim, Dq = hp->n_head * hd, Dkv = hp->n_head_kv * hd;
    const int n = s->n_tok, l = s->layer;
    struct kv_cache *kv = s->kv;
    SP_UNUSED(n);

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
            model_rope_cache(rc, hp->n_rot, (float)(s->pos0 + i), L->rope_base, L->rope_scale,
                             L->rope_factors ? L->rope_factors : s->rope_ls, hp->rope_attn_factor);
            for (int h = 0; h < hp->n_head; h++)
                kern_rope(q + (size_t)h * hd, rc, hp->n_rot, hp->rope_neox);
            for (int h = 0; h < hp->n_head_kv; h++)
                kern_rope(k + (size_t)h * hd, rc, hp->n_rot, hp->rope_neox);
        }
        if (hp->q_scale) /* ggml_scale of q before the attention (gemma3, phi3) */
            model_scale(q, Dq, hp->attn_scale);
        kv_cache_store(kv, l, s->pos0 + i, k, v);
    }
}

/* Phase 2 (split by (token, head) pairs): softmax(q.K * scale) . V, in
 * llama.cpp's order (ggml_mul_mat(k, q), ggml_soft_max_ext, ggml_mul_mat(v,
 * kq) over the F16 cache): q and the softmax weights are rounded to the
 * cache type, the attended length is padded to 32 positions with zero
 * weights (llama_kv_cache's padding), and each matmul sums in tinyBLAS order
 * when the batch has >= 2 tokens and the row length is a multiple of 16,
 * vec_dot order otherwise (kernels.h). */
static void attention_range(void *ud, int ith, int64_t it0, int64_t it1)
{
    struct model_state *s = ud;
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    const int hd = hp->head_dim, Dq = hp->n_head * hd, Dkv = hp->n_head_kv * hd;
    const int l = s->layer;
    struct kv_cache *kv = s->kv;
    const bool f16 = kv->type == KV_F16;
    const float scale = hp->q_scale ? 1.0f : hp->attn_scale;
    const bool swa = m->layers[l].swa;
    const int group = hp->n_head / hp->n_head_kv;
    const size_t nc = (size_t)s->n_ctx;
    const int n_pad = s->n_pad;
    float *sc = s->scores + (size_t)ith * group * nc;      /* [group][n_ctx] */
    uint16_t *p16 = s->p16 + (size_t)ith * group * nc;     /* [group][n_ctx] */
    uint16_t *q16 = s->q16 + (size_t)ith * group * hd;     /* [group][hd] */
    const struct kern_type_ops *ops = kern_ops(f16 ? GG_TYPE_F16 : GG_TYPE_F32);
    /* llama.cpp's KQ is [n_pad rows of K] x q, its KQV [hd rows of V^T] x kq */
    const kern_gemm_fn gemm_k = kern_pick_gemm(ops, n_pad, hd, s->n_tok);
    const kern_gemm_fn gemm_v = kern_pick_gemm(ops, hd, n_pad, s->n_tok);
    const char *kbase = kv_cache_k(kv, l, 0);
    const size_t kstride = (size_t)Dkv * kv->elt, vstride = nc * kv->elt;
    /* an item is one token and `per` query heads sharing one KV head: the
     * whole group (per = group), or single heads when there are too few
     * groups to keep the threads busy (decode with few KV heads) */
    const int per = s->att_per_item;
    const int items_per_tok = hp->n_head / per;
    for (int64_t item = it0; item < it1; item++) {
        const int i = (int)(item / items_per_tok), h0 = (int)(item % items_per_tok) * per, g = h0 / group;
        const int n_kv = s->pos0 + i + 1;
        /* sliding window: positions p with pos - p >= n_swa are masked */
        const int lo = swa ? SP_MAX(0, n_kv - hp->n_swa) : 0;
        const float *q = s->q + (size_t)i * Dq + (size_t)h0 * hd;
        float *out = s->att + (size_t)i * Dq + (size_t)h0 * hd;
        const char *kg = kbase + (size_t)g * hd * kv->elt;
        const char *vg = kv_cache_v(kv, l, g * hd);
        /* scores[b][j] = K[j] . q_b */
        if (f16) {
            kern_fp32_to_fp16_row(q, q16, (int64_t)per * hd);
            gemm_k(hd, 0, n_kv, per, kg, kstride, q16, (size_t)hd * 2, sc, nc);
        } else {
            gemm_k(hd, 0, n_kv, per, kg, kstride, q, (size_t)hd * 4, sc, nc);
        }
        for (int b = 0; b < per; b++) {
            float *row = sc + (size_t)b * nc;
            float mx = -INFINITY;
            for (int j = 0; j < lo; j++)
                row[j] = -INFINITY;
            for (int j = lo; j < n_kv; j++) {
                row[j] *= scale;
                mx = row[j] > mx ? row[j] : mx;
            }
            for (int j = n_kv; j < n_pad; j++)
                row[j] = -INFINITY; /* causal mask and padding */
            const float inv = (float)(1.0 / kern_softmax_exp(n_pad, row, row, mx));
            for (int j = 0; j < n_pad; j++)
                row[j] *= inv;
            if (f16)
                kern_fp32_to_fp16_row(row, p16 + (size_t)b * nc, n_pad);
        }
        /* out_b[d] = V^T[d] . p_b over the (padded) positions */
        if (f16)
            gemm_v(n_pad, 0, hd, per, vg, vstride, p16, nc * 2, out, (size_t)hd);
        else
            gemm_v(n_pad, 0, hd, per, vg, vstride, sc, nc * 4, out, (size_t)hd);
    }
}

/* Per token: x += xb2 (when add_first), then xb = rmsnorm(x) * norm_w. */
static void add_norm_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    struct model_state *s = ud;
    const int E = s->m->hp.n_embd;
    for (int64_t i = i0; i < i1; i++) {
        float *x = s->x + (size_t)i * E;
        if (s->add_first) {
            const float *y = s->xb2 + (size_t)i * E;
            for (int d = 0; d < E; d++)
                x[d] += y[d];
        }
        if (s->norm_w)
            model_rmsnorm(s->xb + (size_t)i * E, x, s->norm_w, E, s->m->hp.rms_eps);
    }
}

/* Per token: hb = silu(hb) * hb2 (ggml_silu then ggml_mul), or
 * gelu(hb) * hb2 (ggml_geglu). */
static void swiglu_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    struct model_state *s = ud;
    const size_t F = (size_t)s->m->hp.n_ff;
    if (s->m->hp.act == MODEL_ACT_GELU) {
        for (int64_t t = i0; t < i1; t++)
            model_geglu_row((int64_t)F, s->hb + (size_t)t * F, s->hb + (size_t)t * F, s->hb2 + (size_t)t * F,
                            s->m->gelu_f16);
        return;
    }
    for (int64_t t = i0; t < i1; t++) /* per row: the SIMD chunking restarts */
        kern_silu_row((int64_t)F, s->hb + (size_t)t * F, s->hb + (size_t)t * F);
    for (size_t i = (size_t)i0 * F; i < (size_t)i1 * F; i++)
        s->hb[i] *= s->hb2[i];
}

/* Per token: xb2 += post_b, then xb2 = rmsnorm(xb2) * post_w (a projection's
 * bias, gemma3's post-attention / post-FFN norms), each when set. */
static void post_range(void *ud, int ith, int64_t i0, int64_t i1)
{
    SP_UNUSED(ith);
    struct model_state *s = ud;
    const int E = s->m->hp.n_embd;
    for (int64_t i = i0; i < i1; i++) {
        float *y = s->xb2 + (size_t)i * E;
        if (s->post_b)
            for (int d = 0; d < E; d++)
                y[d] += s->post_b[d];
        if (s->post_w)
            model_rmsnorm(y, y, s->post_w, E, s->m->hp.rms_eps);
    }
}

static void post_out(struct model_state *s, int n, const float *b, const float *w)
{
    if (!b && !w)
        return;
    s->post_b = b;
    s->post_w = w;
    s->be->ops->parallel_for(s->be, post_range, s, n, 1, (double)n * s->m->hp.n_embd * 6.0);
}

static void add_norm(struct model_state *s, int n, bool add_first, const float *w)
{
    s->add_first = add_first;
    s->norm_w = w;
    s->be->ops->parallel_for(s->be, add_norm_range, s, n, 1, (double)n * s->m->hp.n_embd * 6.0);
}

enum sp_status model_eval(struct model_state *s, const int32_t *tokens, int n, int pos0, float *logits,
                          struct sp_err *err)
{
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    if (n < 1 || n > s->n_batch || pos0 < 0 || pos0 > s->n_ctx - n)
        return sp_err_set(err, SP_ERR_INVALID, "cannot evaluate %d tokens at position %d (batch %d, context %d)",
                          n, pos0, s->n_batch, s->n_ctx);
    const int E = hp->n_embd, Dq = hp->n_head * hp->head_dim, Dkv = hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return sp_err_set(err, SP_ERR_INVALID, "token id %d is out of range (vocabulary %d)", tokens[i],
                              hp->n_vocab);
        const struct backend_weight *te = &m->tok_embd;
        te->ops->to_float((const char *)te->data + (size_t)tokens[i] * te->row_bytes, s->x + (size_t)i * E, E);
        if (hp->embd_scale != 1.0f) /* gemma: ggml_scale by sqrt(n_embd) */
            model_scale(s->x + (size_t)i * E, E, hp->embd_scale);
    }
    struct backend *be = s->be;
    /* llama.cpp attends over the used cells padded to 32 (zero weights) */
    s->n_pad = SP_MIN(s->n_ctx, (pos0 + n + 31) / 32 * 32);
    int nr = n; /* rows through the FFN: the last layer only needs the last token */
    for (int l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        /* the residual of the previous layer's FFN is added here */
        add_norm(s, n, l > 0, L->attn_norm);
        struct backend_mm qkv[3] = {{&L->wq, s->q, (size_t)Dq}, {&L->wk, s->k, (size_t)Dkv}, {&L->wv, s->v, (size_t)Dkv}};
        be->ops->matmul(be, qkv, 3, s->xb, n, (size_t)E);
        s->layer = l;
        s->n_tok = n;
        s->pos0 = pos0;
        be->ops->parallel_for(be, rope_store_range, s, n, 1, (double)n * (Dq + Dkv) * 8.0);
        kv_cache_zero_v(s->kv, l, pos0 + n, s->n_pad);
        const int group = hp->n_head / hp->n_head_kv;
        s->att_per_item = (int64_t)n * hp->n_head_kv >= 4 * (int64_t)be->n_threads ? group : 1;
        be->ops->parallel_for(be, attention_range, s, (int64_t)n * (hp->n_head / s->att_per_item), 1,
                              (double)n * hp->n_head * (double)(pos0 + n) * hp->head_dim * 4.0);
        struct backend_mm o = {&L->wo, s->xb2, (size_t)E};
        be->ops->matmul(be, &o, 1, s->att, n, (size_t)Dq);
        if (l == hp->n_layer - 1) {
            /* as llama.cpp: the last layer's FFN runs for the token whose
             * logits are wanted (in a 1-row batch), or not at all */
            if (!logits)
                return SP_OK;
            if (n > 1) {
                memcpy(s->x, s->x + (size_t)(n - 1) * E, (size_t)E * sizeof(float));
                memcpy(s->xb2, s->xb2 + (size_t)(n - 1) * E, (size_t)E * sizeof(float));
            }
            nr = 1;
        }
        post_out(s, nr, L->bo, L->attn_post_norm);
        add_norm(s, nr, true, L->ffn_norm);
        struct backend_mm gu[2] = {{&L->w_gate, s->hb, (size_t)F}, {&L->w_up, s->hb2, (size_t)F}};
        be->ops->matmul(be, gu, 2, s->xb, nr, (size_t)E);
        be->ops->parallel_for(be, swiglu_range, s, nr, 1, (double)nr * F * 20.0);
        struct backend_mm d = {&L->w_down, s->xb2, (size_t)E};
        be->ops->matmul(be, &d, 1, s->hb, nr, (size_t)F);
        post_out(s, nr, NULL, L->ffn_post_norm);
    }
    add_norm(s, nr, true, NULL); /* the last FFN residual */
    if (logits) {
        const float *xl = s->x + (size_t)(nr - 1) * E;
        model_rmsnorm(s->xb, xl, m->output_norm, E, hp->rms_eps);
        struct backend_mm out = {&m->output, logits, (size_t)hp->n_vocab};
        be->ops->matmul(be, &out, 1, s->xb, 1, (size_t)E);
        if (hp->logit_softcap > 0)
            model_softcap(logits, hp->n_vocab, hp->logit_softcap);
    }
    return SP_OK;
}
