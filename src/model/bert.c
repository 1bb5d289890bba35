/* bert.c - BERT encoders (general.architecture "bert": all-MiniLM, bge,
 * e5, ...): tensor binding and the embedding forward pass.
 *
 * The graph is llama.cpp's for LLM_ARCH_BERT:
 *   x = LayerNorm(tok_embd[t] + token_types[0] + position_embd[p]) (weight, bias)
 *   per layer: q,k,v = x Wq,Wk,Wv + biases
 *              a = softmax(q.k^T / sqrt(head_dim)) v over the input's own tokens
 *                  (non-causal: every token sees the whole input)
 *              x = LayerNorm(a Wo + bo + x)            (attn_output_norm)
 *              x = LayerNorm(gelu(x Wup + bup) Wdown + bdown + x) (layer_output_norm)
 *   pooled = mean / first (CLS) / last row of x per input.
 * Token types are all zero ("sentence A"), as in llama.cpp. LayerNorm is
 * ggml_norm's arithmetic (mean and variance summed in double, then the
 * weight and the bias as two roundings); GELU goes through ggml's F16 table.
 * Every linear's bias is optional; norms and their biases are required.
 *
 * Many inputs share one forward pass: their tokens are rows of one batch,
 * every matmul is one pass over its weight for all rows (F32/F16 rows summed
 * in the 1-row order), and attention runs per (token, head) over the token's
 * own input only, so an input's vector does not depend on what else is in
 * the batch: bit for bit for F32, F16 and Q4_0/Q5_0/Q8_0 weights; the
 * K-quants' panel gemm may differ in the last bits (3.7e-8 measured on a
 * Q4_K_M file). No KV cache: nothing survives a call.
 * All scratch is allocated by model_bert_state_new. */
#include "model/model.h"
#include "obs/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct model_bert_layer {
    struct backend_weight wq, wk, wv, wo, w_up, w_down;
    const float *bq, *bk, *bv, *bo, *b_up, *b_down; /* or NULL */
    const float *attn_ln_w, *attn_ln_b;             /* attn_output_norm [n_embd] */
    const float *out_ln_w, *out_ln_b;               /* layer_output_norm [n_embd] */
};

struct model_bert {
    struct backend_weight pos_embd;  /* [n_ctx_train rows of n_embd] */
    const float *type0;              /* token_types row 0 [n_embd] or NULL */
    const float *embd_ln_w, *embd_ln_b;
    struct model_bert_layer *layers; /* [n_layer] */
    int n_layer;
    float *owned;                    /* F32 copies of the vectors */
};

/* ---- binding */

struct bert_bind {
    struct backend_device *dev; /* where the matrices are bound */
    model_tensor_find_fn find;
    model_tensor_drop_fn drop;
    const void *src;
    size_t *n_used;
    float *next; /* arena for vectors */
    float *end;
};

static const struct gg_tensor *bind_find(struct bert_bind *b, const char *name, int64_t ne0, int64_t ne1,
                                         bool required, enum sp_status *result, struct sp_err *err)
{
    *result = SP_OK;
    const struct gg_tensor *t = b->find(b->src, name);
    if (!t) {
        if (required)
            *result = sp_err_setc(err, SP_ERR_FORMAT, name, "model lacks tensor %s", name);
        return NULL;
    }
    bool ok = t->ne[0] == ne0 && (ne1 > 0 ? t->ne[1] == ne1 : ne1 == 0 ? t->ne[1] == 1 : t->ne[1] >= 1) &&
              t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        *result = sp_err_setc(err, SP_ERR_FORMAT, name, "tensor %s has shape [%lld, %lld, %lld], expected [%lld, %lld]",
                              name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)ne0,
                              (long long)(ne1 > 0 ? ne1 : 1));
        return NULL;
    }
    (*b->n_used)++;
    return t;
}

/* Bind a [k, rows] tensor for use (enum backend_use). */
static enum sp_status bind_use(struct bert_bind *b, const char *name, int64_t k, int64_t rows, unsigned use,
                               struct backend_weight *w, struct sp_err *err)
{
    enum sp_status result;
    const struct gg_tensor *t = bind_find(b, name, k, rows, true, &result, err);
    if (!t)
        return result;
    return model_bind_host(b->dev, b->drop, b->src, name, t->type, k, rows, t->data, use, w, err);
}

static enum sp_status bind_mat(struct bert_bind *b, const char *name, int64_t k, int64_t rows, struct backend_weight *w,
                               struct sp_err *err)
{
    return bind_use(b, name, k, rows, BACKEND_USE_MATMUL, w, err);
}

/* Row `row` of a [n, rows] tensor as n F32 values from the arena (*dst stays
 * NULL when an optional tensor is absent). rows_any: the tensor may have any
 * number of rows (token_types). */
static enum sp_status bind_vec(struct bert_bind *b, const char *name, int64_t n, bool required, bool rows_any,
                               const float **dst, struct sp_err *err)
{
    enum sp_status result;
    *dst = NULL;
    const struct gg_tensor *t = bind_find(b, name, n, rows_any ? -1 : 0, required, &result, err);
    if (!t)
        return result;
    if (b->end - b->next < n)
        return sp_err_setc(err, SP_ERR_INTERNAL, name, "vector arena too small for %s", name);
    if ((result = model_vec_to_f32(t, name, n, b->next, err)) != SP_OK) /* row 0 of token_types */
        return result;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(b->next[i]))
            return sp_err_setc(err, SP_ERR_FORMAT, name, "vector %s holds a non-finite value", name);
    *dst = b->next;
    b->next += n;
    return SP_OK;
}

enum sp_status model_bert_load(struct model *m, model_tensor_find_fn find, model_tensor_drop_fn drop, const void *src,
                               size_t *n_used, struct sp_err *err)
{
    enum sp_status result;
    struct model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, hd = hp->head_dim, Dq = (int64_t)hp->n_head * hd,
                  Dkv = (int64_t)hp->n_head_kv * hd, F = hp->n_ff;
    if (hp->pooling == MODEL_POOL_NONE)
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, "bert.pooling_type",
                           "this bert model has no pooling type (bert.pooling_type): spoke serves sentence "
                           "embeddings only (mean, cls or last pooling)");
    struct model_bert *bt = sp_calloc(1, sizeof(*bt));
    if (!bt)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the model");
    m->bert = bt;
    /* vectors: 3 embedding ones, per layer 6 biases (at most) + 4 norm vectors */
    size_t per_layer = (size_t)(Dq + 2 * Dkv + 2 * E + F + 4 * E);
    size_t n_owned = 3 * (size_t)E + per_layer * (size_t)hp->n_layer;
    bt->owned = sp_calloc(n_owned, sizeof(float));
    bt->layers = sp_calloc((size_t)hp->n_layer, sizeof(*bt->layers));
    if (!bt->owned || !bt->layers)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the model");
    bt->n_layer = hp->n_layer;
    struct bert_bind b = {m->dev, find, drop, src, n_used, bt->owned, bt->owned + n_owned};
    if ((result = bind_use(&b, "position_embd.weight", E, hp->n_ctx_train, BACKEND_USE_ROWS, &bt->pos_embd, err)) != SP_OK)
        return result;
    if (!backend_weight_has_rows(&bt->pos_embd) || !backend_weight_has_rows(&m->tok_embd))
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "embedding types %s / %s cannot be dequantized",
                          gg_type_name(m->tok_embd.type), gg_type_name(bt->pos_embd.type));
    if ((result = bind_vec(&b, "token_types.weight", E, false, true, &bt->type0, err)) != SP_OK ||
        (result = bind_vec(&b, "token_embd_norm.weight", E, true, false, &bt->embd_ln_w, err)) != SP_OK ||
        (result = bind_vec(&b, "token_embd_norm.bias", E, true, false, &bt->embd_ln_b, err)) != SP_OK)
        return result;
    char name[96];
    for (int l = 0; l < hp->n_layer; l++) {
        struct model_bert_layer *L = &bt->layers[l];
#define LNAME(s) (snprintf(name, sizeof(name), "blk.%d.%s", l, s), name)
        if ((result = bind_mat(&b, LNAME("attn_q.weight"), E, Dq, &L->wq, err)) != SP_OK ||
            (result = bind_mat(&b, LNAME("attn_k.weight"), E, Dkv, &L->wk, err)) != SP_OK ||
            (result = bind_mat(&b, LNAME("attn_v.weight"), E, Dkv, &L->wv, err)) != SP_OK ||
            (result = bind_mat(&b, LNAME("attn_output.weight"), Dq, E, &L->wo, err)) != SP_OK ||
            (result = bind_mat(&b, LNAME("ffn_up.weight"), E, F, &L->w_up, err)) != SP_OK ||
            (result = bind_mat(&b, LNAME("ffn_down.weight"), F, E, &L->w_down, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("attn_q.bias"), Dq, false, false, &L->bq, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("attn_k.bias"), Dkv, false, false, &L->bk, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("attn_v.bias"), Dkv, false, false, &L->bv, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("attn_output.bias"), E, false, false, &L->bo, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("ffn_up.bias"), F, false, false, &L->b_up, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("ffn_down.bias"), E, false, false, &L->b_down, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("attn_output_norm.weight"), E, true, false, &L->attn_ln_w, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("attn_output_norm.bias"), E, true, false, &L->attn_ln_b, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("layer_output_norm.weight"), E, true, false, &L->out_ln_w, err)) != SP_OK ||
            (result = bind_vec(&b, LNAME("layer_output_norm.bias"), E, true, false, &L->out_ln_b, err)) != SP_OK)
            return result;
#undef LNAME
    }
    return SP_OK;
}

void model_bert_free(struct model_bert *b, struct backend_device *dev)
{
    if (!b)
        return;
    backend_weight_release(dev, &b->pos_embd);
    for (int l = 0; b->layers && l < b->n_layer; l++) {
        struct model_bert_layer *L = &b->layers[l];
        struct backend_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_up, &L->w_down};
        for (size_t i = 0; i < SP_ARRAY_LEN(ws); i++)
            backend_weight_release(dev, ws[i]);
    }
    sp_free(b->layers);
    sp_free(b->owned);
    sp_free(b);
}

/* ---- state */

struct model_bert_state {
    const struct model *m;
    struct backend *be;
    int n_batch, n_threads;
    /* [B][E] x: hidden state, xb: matmul output; q/k/v/att [B][Dq or Dkv]; hb [B][F] */
    float *x, *xb, *q, *k, *v, *att, *hb;
    float *scores;      /* [n_threads][n_ctx_train] */
    int32_t *row_in;    /* [B] first row of each row's input */
    int32_t *row_end;   /* [B] end row of each row's input */
    int32_t *row_pos;   /* [B] position of each row in its input */
    void *arena;
};

#define BERT_ALIGN(x) (((x) + 63u) & ~(size_t)63u)
#define BERT_NBUF 11

static bool bert_layout(const struct model *m, int B, int nth, size_t off[BERT_NBUF], size_t *total)
{
    const struct model_hparams *hp = &m->hp;
    size_t E = (size_t)hp->n_embd, Dq = (size_t)hp->n_head * hp->head_dim,
           Dkv = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff, b = (size_t)B;
    size_t sizes[BERT_NBUF] = {b * E * 4,   b * E * 4, b * Dq * 4, b * Dkv * 4, b * Dkv * 4, b * Dq * 4,
                               b * F * 4,   (size_t)nth * (size_t)hp->n_ctx_train * 4, b * 4, b * 4, b * 4};
    size_t t = 0;
    for (int i = 0; i < BERT_NBUF; i++) {
        off[i] = t;
        if (!sp_add_size(t, BERT_ALIGN(sizes[i]), &t))
            return false;
    }
    *total = t;
    return true;
}

static int64_t bert_max_k(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    return SP_MAX(SP_MAX((int64_t)hp->n_embd, (int64_t)hp->n_ff), (int64_t)hp->n_head * hp->head_dim);
}

size_t model_bert_state_bytes(const struct model *m, int n_batch, int n_threads)
{
    size_t off[BERT_NBUF], total;
    int B = SP_MAX(n_batch, 1), nth = SP_MAX(n_threads, 1);
    if (!bert_layout(m, B, nth, off, &total))
        return SIZE_MAX;
    size_t sum;
    if (!sp_add_size(total, backend_cpu_scratch_bytes(bert_max_k(m), B), &sum))
        return SIZE_MAX;
    return sum;
}

enum sp_status model_bert_state_new(const struct model *m, int n_batch, int n_threads,
                                    struct model_bert_state **out, struct sp_err *err)
{
    enum sp_status result;
    *out = NULL;
    if (!m->bert)
        return sp_err_set(err, SP_ERR_INVALID, "%s is not an encoder model", m->hp.arch_name);
    if (n_batch < 1 || n_batch > (1 << 20))
        return sp_err_set(err, SP_ERR_INVALID, "embedding batch %d is out of range", n_batch);
    int nth = SP_MAX(n_threads, 1);
    struct model_bert_state *s = sp_calloc(1, sizeof(*s));
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating an embedding state");
    s->m = m;
    s->n_batch = n_batch;
    s->n_threads = nth;
    size_t off[BERT_NBUF], total;
    if (!bert_layout(m, n_batch, nth, off, &total)) {
        result = sp_err_set(err, SP_ERR_RANGE, "embedding scratch size overflows (batch %d)", n_batch);
        goto fail;
    }
    s->arena = sp_aligned_alloc(64, total);
    if (!s->arena) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory allocating %zu MiB of embedding scratch", total >> 20);
        goto fail;
    }
    memset(s->arena, 0, total);
    char *a = s->arena;
    float **bufs[] = {&s->x, &s->xb, &s->q, &s->k, &s->v, &s->att, &s->hb, &s->scores};
    for (size_t i = 0; i < SP_ARRAY_LEN(bufs); i++)
        *bufs[i] = (float *)(void *)(a + off[i]);
    s->row_in = (int32_t *)(void *)(a + off[8]);
    s->row_end = (int32_t *)(void *)(a + off[9]);
    s->row_pos = (int32_t *)(void *)(a + off[10]);
    if ((result = backend_new_on(m->dev, nth, bert_max_k(m), n_batch, &s->be, err)) != SP_OK)
        goto fail;
    *out = s;
    return SP_OK;
fail:
    model_bert_state_free(s);
    return result;
}

void model_bert_state_free(struct model_bert_state *s)
{
    if (!s)
        return;
    backend_free(s->be);
    sp_aligned_free(s->arena);
    sp_free(s);
}

int model_bert_state_n_batch(const struct model_bert_state *s) { return s->n_batch; }

/* ---- forward */

/* x += b over n rows of dim (a bias; the backend's residual/bias op without a norm). */
static void add_bias(struct backend *be, float *x, const float *b, int64_t n, int64_t dim)
{
    if (!b)
        return;
    struct backend_norm a = {.x = x, .bias = b, .n = n, .dim = dim, .stride = (size_t)dim};
    be->ops->rms_norm(be, &a);
}

/* out = LayerNorm(x + add + bias) * w + b over n rows of n_embd. */
static void lnorm(struct model_bert_state *s, float *x, const float *add, const float *bias, const float *w,
                  const float *b, int n)
{
    const int64_t E = s->m->hp.n_embd;
    struct backend_lnorm a = {.x = x, .add = add, .bias = bias, .out = s->x, .w = w, .b = b, .n = n, .dim = E,
                              .stride = (size_t)E, .eps = s->m->hp.norm_eps};
    s->be->ops->layer_norm(s->be, &a);
}

enum sp_status model_bert_embed(struct model_bert_state *s, const int32_t *tokens, const int32_t *start, int n_inputs,
                                float *out, struct sp_err *err)
{
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    const struct model_bert *bt = m->bert;
    if (n_inputs < 1 || !tokens || !start || start[0] != 0)
        return sp_err_set(err, SP_ERR_INVALID, "no inputs to embed");
    for (int i = 0; i < n_inputs; i++) {
        const int n = start[i + 1] - start[i];
        if (n < 1 || n > hp->n_ctx_train || start[i + 1] > s->n_batch)
            return sp_err_set(err, SP_ERR_INVALID, "input %d has %d tokens (1..%d, batch %d)", i, n, hp->n_ctx_train,
                              s->n_batch);
        for (int r = start[i]; r < start[i + 1]; r++) {
            if (tokens[r] < 0 || tokens[r] >= hp->n_vocab)
                return sp_err_set(err, SP_ERR_INVALID, "token id %d is out of range (vocabulary %d)", tokens[r],
                                  hp->n_vocab);
            s->row_in[r] = start[i];
            s->row_end[r] = start[i + 1];
            s->row_pos[r] = r - start[i];
        }
    }
    const int n = start[n_inputs];
    const int64_t E = hp->n_embd, Dq = (int64_t)hp->n_head * hp->head_dim,
                  Dkv = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    struct backend *be = s->be;
    /* x = LayerNorm(tok_embd[t] + position_embd[p] + token_types[0]) */
    be->ops->get_rows(be, &m->tok_embd, tokens, n, s->xb, (size_t)E, 1.0f);
    be->ops->get_rows(be, &bt->pos_embd, s->row_pos, n, s->x, (size_t)E, 1.0f);
    lnorm(s, s->xb, s->x, bt->type0, bt->embd_ln_w, bt->embd_ln_b, n);
    for (int l = 0; l < hp->n_layer; l++) {
        const struct model_bert_layer *L = &bt->layers[l];
        /* every row in the 1-row summation order where the type has two (F32/F16); the
         * quantized types' batch order is per row too, except the K-quants' panel gemm */
        struct backend_mm qkv[3] = {{&L->wq, s->q, (size_t)Dq}, {&L->wk, s->k, (size_t)Dkv}, {&L->wv, s->v, (size_t)Dkv}};
        be->ops->matmul(be, qkv, 3, s->x, n, n, (size_t)E);
        add_bias(be, s->q, L->bq, n, Dq);
        add_bias(be, s->k, L->bk, n, Dkv);
        add_bias(be, s->v, L->bv, n, Dkv);
        struct backend_enc_attention at = {.q = s->q, .k = s->k, .v = s->v, .out = s->att, .n = n,
                                           .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                                           .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim),
                                           .seg0 = s->row_in, .seg1 = s->row_end, .scratch = s->scores,
                                           .max_len = hp->n_ctx_train};
        be->ops->enc_attention(be, &at);
        struct backend_mm o = {&L->wo, s->xb, (size_t)E};
        be->ops->matmul(be, &o, 1, s->att, n, n, (size_t)Dq);
        lnorm(s, s->xb, s->x, L->bo, L->attn_ln_w, L->attn_ln_b, n); /* x = LN(att Wo + x + bo) */
        struct backend_mm up = {&L->w_up, s->hb, (size_t)F};
        be->ops->matmul(be, &up, 1, s->x, n, n, (size_t)E);
        add_bias(be, s->hb, L->b_up, n, F);
        be->ops->gelu(be, s->hb, n, F, (size_t)F);
        struct backend_mm down = {&L->w_down, s->xb, (size_t)E};
        be->ops->matmul(be, &down, 1, s->hb, n, n, (size_t)F);
        lnorm(s, s->xb, s->x, L->b_down, L->out_ln_w, L->out_ln_b, n); /* x = LN(ffn + x + bdown) */
    }
    /* pooling (host memory: the cpu backend's rows) */
    for (int i = 0; i < n_inputs; i++) {
        float *o = out + (size_t)i * E;
        const int r0 = start[i], r1 = start[i + 1];
        if (hp->pooling == MODEL_POOL_CLS || hp->pooling == MODEL_POOL_LAST) {
            memcpy(o, s->x + (size_t)(hp->pooling == MODEL_POOL_CLS ? r0 : r1 - 1) * E, (size_t)E * sizeof(float));
            continue;
        }
        for (int64_t d = 0; d < E; d++) {
            double acc = 0.0;
            for (int r = r0; r < r1; r++)
                acc += (double)s->x[(size_t)r * E + d];
            o[d] = (float)(acc / (r1 - r0));
        }
    }
    return SP_OK;
}
