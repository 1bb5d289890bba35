/* load.c - hyper-parameters from GGUF metadata and weight binding.
 *
 * The family's description (arch.c) says which tensors and keys exist. Keys
 * are "<arch>.<name>" as llama.cpp writes them; missing optional keys take
 * llama.cpp's defaults (rope freq base 10000, rms eps 1e-5, n_head_kv =
 * n_head, rope dimensions = head size, head size = n_embd / n_head). Every
 * tensor is checked for presence, shape and a kernel for its type before the
 * model is returned; matrices are bound on the model's backend device
 * (backend_weight_bind: views into the mapping on "cpu", an upload on a GPU
 * kind; a fused attn_qkv or gate+up ffn_up binds as row ranges, one weight
 * each) and released there by model_free; 1-D norm/bias/factor vectors are
 * converted to F32 copies. Every family takes the optional biases llama.cpp's
 * converter may write (attention q/k/v/output, a fused attn_qkv.bias, FFN
 * gate/up/down, a fused ffn_up.bias) and applies each one present; a bias
 * tensor of any other name is refused rather than ignored. Other tensors the
 * description does not use are logged. A split GGUF loads the same way, its
 * tensors looked up over the shards. */
#include "model/model.h"
#include "obs/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MODEL_MAX_DIM (1 << 20)

static bool key_u32(const struct gg_file *f, const char *arch, const char *name, uint32_t *out)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    return gg_get_u32(f, key, out);
}

static bool key_f32(const struct gg_file *f, const char *arch, const char *name, float *out)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    return gg_get_f32(f, key, out);
}

static enum sp_status need_u32(const struct gg_file *f, const char *arch, const char *name, uint32_t max,
                               int *out, struct sp_err *err)
{
    uint32_t v;
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, name);
    if (!gg_get_u32(f, key, &v))
        return sp_err_setc(err, SP_ERR_FORMAT, key, "model metadata lacks %s (or it is not an integer)", key);
    if (v == 0 || v > max)
        return sp_err_setc(err, SP_ERR_FORMAT, key, "model metadata %s = %u is out of range (1..%u)", key, v,
                           max);
    *out = (int)v;
    return SP_OK;
}

static enum sp_status read_hparams(const struct gg_file *f, struct model_hparams *hp, struct sp_err *err)
{
    enum sp_status result;
    struct gg_str a;
    memset(hp, 0, sizeof(*hp));
    if (!gg_get_str(f, "general.architecture", &a))
        return sp_err_setc(err, SP_ERR_FORMAT, "general.architecture", "model has no general.architecture");
    const struct model_arch_desc *d = model_arch_find(a.ptr, a.len);
    if (!d)
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, "general.architecture",
                           "architecture '%.*s' is not supported (supported: %s)", (int)SP_MIN(a.len, 64u), a.ptr,
                           model_arch_supported());
    hp->desc = d;
    hp->arch = d->arch;
    hp->arch_name = d->name;
    hp->rope_neox = d->rope_neox;
    hp->act = d->act;
    const char *ar = hp->arch_name;
    if ((result = need_u32(f, ar, "embedding_length", MODEL_MAX_DIM, &hp->n_embd, err)) ||
        (result = need_u32(f, ar, "block_count", 4096, &hp->n_layer, err)) ||
        (result = need_u32(f, ar, "feed_forward_length", MODEL_MAX_DIM, &hp->n_ff, err)) ||
        (result = need_u32(f, ar, "attention.head_count", 4096, &hp->n_head, err)))
        return result;
    uint32_t v;
    hp->n_head_kv = key_u32(f, ar, "attention.head_count_kv", &v) ? (int)v : hp->n_head;
    if (hp->n_head_kv < 1 || hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0)
        return sp_err_set(err, SP_ERR_FORMAT, "head_count_kv %d does not divide head_count %d", hp->n_head_kv,
                          hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (key_u32(f, ar, "attention.key_length", &v))
        hp->head_dim = (int)v;
    uint32_t vl;
    if (key_u32(f, ar, "attention.value_length", &vl) && (int)vl != hp->head_dim)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "key_length %d != value_length %u is not supported",
                          hp->head_dim, vl);
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim % 2 != 0)
        return sp_err_set(err, SP_ERR_FORMAT, "head size %d is out of range (even, 2..1024)", hp->head_dim);
    hp->n_rot = key_u32(f, ar, "rope.dimension_count", &v) ? (int)v : hp->head_dim;
    if (hp->n_rot < 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return sp_err_set(err, SP_ERR_FORMAT, "rope.dimension_count %d is invalid for head size %d", hp->n_rot,
                          hp->head_dim);
    hp->n_ctx_train = key_u32(f, ar, "context_length", &v) && v > 0 && v <= (1u << 24) ? (int)v : 2048;
    hp->rope_freq_base = 10000.0f;
    float fv;
    if (key_f32(f, ar, "rope.freq_base", &fv) && fv > 0 && isfinite(fv))
        hp->rope_freq_base = fv;
    hp->rms_eps = 1e-5f;
    if (key_f32(f, ar, "attention.layer_norm_rms_epsilon", &fv) && fv > 0 && isfinite(fv))
        hp->rms_eps = fv;
    hp->rope_freq_scale = 1.0f;
    char key[128];
    struct gg_str st;
    snprintf(key, sizeof(key), "%s.rope.scaling.type", ar);
    bool has_type = gg_get_str(f, key, &st);
    bool linear = has_type && st.len == 6 && memcmp(st.ptr, "linear", 6) == 0;
    /* phi3's LongRoPE is its rope_factors_long/short tensors and attn_factor */
    bool longrope = d->rope_long_short && has_type && st.len == 8 && memcmp(st.ptr, "longrope", 8) == 0;
    if (has_type && !linear && !longrope && !(st.len == 4 && memcmp(st.ptr, "none", 4) == 0))
        LOG_WARN("model", "rope scaling type '%.*s' is not supported; ignoring it", (int)SP_MIN(st.len, 32u),
                 st.ptr);
    if ((linear || !has_type) && key_f32(f, ar, "rope.scaling.factor", &fv) && fv > 0 && isfinite(fv))
        hp->rope_freq_scale = 1.0f / fv;
    else if (key_f32(f, ar, "rope.scale_linear", &fv) && fv > 0 && isfinite(fv))
        hp->rope_freq_scale = 1.0f / fv;
    hp->n_ctx_orig = key_u32(f, ar, "rope.scaling.original_context_length", &v) && v > 0 && v <= (1u << 24)
                         ? (int)v
                         : hp->n_ctx_train;
    hp->rope_attn_factor = 1.0f;
    if (key_f32(f, ar, "rope.scaling.attn_factor", &fv) && fv > 0 && isfinite(fv))
        hp->rope_attn_factor = fv;
    hp->embd_scale = d->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
    /* llama.cpp: 1/sqrt(head size); Gemma 3 27B (62 layers) uses n_embd / n_head */
    int scale_dim = hp->arch == MODEL_ARCH_GEMMA3 && hp->n_layer == 62 ? hp->n_embd / hp->n_head : hp->head_dim;
    hp->attn_scale = 1.0f / sqrtf((float)scale_dim);
    hp->q_scale = d->q_scale;
    if (key_f32(f, ar, "final_logit_softcapping", &fv) && fv > 0 && isfinite(fv))
        hp->logit_softcap = fv;
    /* embeddings: llama.cpp's pooling enum; RANK (4) and unknown values are refused */
    if (key_u32(f, ar, "pooling_type", &v) && v > MODEL_POOL_LAST)
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, "pooling_type", "pooling type %u is not supported (mean, cls, last)",
                           v);
    hp->pooling = key_u32(f, ar, "pooling_type", &v) ? (enum model_pooling)v : MODEL_POOL_NONE;
    hp->norm_eps = 1e-12f;
    if (key_f32(f, ar, "attention.layer_norm_epsilon", &fv) && fv > 0 && isfinite(fv))
        hp->norm_eps = fv;
    hp->rope_freq_base_swa = 10000.0f;
    if (d->swa) {
        if (key_u32(f, ar, "attention.sliding_window", &v) && v > 0 && v <= (1u << 24))
            hp->n_swa = (int)v;
        if (key_f32(f, ar, "rope.freq_base_swa", &fv) && fv > 0 && isfinite(fv))
            hp->rope_freq_base_swa = fv;
        hp->swa_pattern = d->swa_pattern;
        if (key_u32(f, ar, "attention.sliding_window_pattern", &v) && v <= 4096)
            hp->swa_pattern = (int)v;
    }
    return SP_OK;
}

/* Where tensors come from: one file, or the shards of a split GGUF; counts
 * the tensors bound so unused ones can be reported. */
struct tsrc {
    const struct gg_file *f;     /* metadata (the first shard) */
    const struct gg_split *split; /* or NULL */
    size_t n_used;
    struct backend_device *dev;  /* where the matrices are bound */
};

static const struct gg_tensor *src_find(const struct tsrc *src, const char *name)
{
    return src->split ? gg_split_tensor_find(src->split, name) : gg_tensor_find(src->f, name);
}

static const struct gg_tensor *src_find_any(const void *src, const char *name) { return src_find(src, name); }

/* the mapped pages of [p, p + n) go (their bytes now live in a device copy) */
static void src_drop_any(const void *vsrc, const void *p, size_t n)
{
    const struct tsrc *src = vsrc;
    if (src->split)
        gg_split_drop(src->split, p, n);
    else
        gg_file_drop(src->f, p, n);
}

static size_t src_count(const struct tsrc *src)
{
    return src->split ? gg_split_tensor_count(src->split) : gg_tensor_count(src->f);
}

static const struct gg_tensor *src_at(const struct tsrc *src, size_t i)
{
    return src->split ? gg_split_tensor_at(src->split, i) : gg_tensor_at(src->f, i);
}

static const struct gg_tensor *find_tensor(struct tsrc *f, const char *name, int64_t ne0, int64_t ne1,
                                           bool required, struct sp_err *err, enum sp_status *result)
{
    const struct gg_tensor *t = src_find(f, name);
    *result = SP_OK;
    if (!t) {
        if (required)
            *result = sp_err_setc(err, SP_ERR_FORMAT, name, "model lacks tensor %s", name);
        return NULL;
    }
    bool ok = t->ne[0] == ne0 && (ne1 == 0 ? t->n_dims == 1 || t->ne[1] == 1 : t->ne[1] == ne1) &&
              t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        *result = sp_err_setc(err, SP_ERR_FORMAT, name,
                              "tensor %s has shape [%lld, %lld, %lld], expected [%lld, %lld]", name,
                              (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)ne0,
                              (long long)(ne1 ? ne1 : 1));
        return NULL;
    }
    f->n_used++;
    return t;
}

/* Bind rows [row0, row0 + rows) of tensor t ([k, *]) as one matrix. */
static enum sp_status bind_rows(struct tsrc *f, const struct gg_tensor *t, const char *name, int64_t k,
                                int64_t row0, int64_t rows, unsigned use, struct backend_weight *w,
                                struct sp_err *err)
{
    size_t rb = 0;
    if (row0 > 0 && !gg_row_size(t->type, k, &rb))
        return sp_err_setc(err, SP_ERR_FORMAT, name, "tensor %s rows are not whole blocks", name);
    const char *host = (const char *)t->data + (size_t)row0 * rb;
    return model_bind_host(f->dev, src_drop_any, f, name, t->type, k, rows, host, use, w, err);
}

enum sp_status model_bind_host(struct backend_device *dev, model_tensor_drop_fn drop, const void *src,
                               const char *name, enum gg_type type, int64_t k, int64_t rows, const void *host,
                               unsigned use, struct backend_weight *w, struct sp_err *err)
{
    enum sp_status result = backend_weight_bind(dev, w, type, k, rows, host, use, err);
    if (result != SP_OK && err)
        sp_strlcpy(err->context, name, sizeof(err->context));
    size_t bytes;
    if (result == SP_OK && w->owned && sp_mul_size(w->row_bytes, (size_t)rows, &bytes))
        drop(src, host, bytes); /* the device keeps its own copy */
    return result;
}

/* Bind tensor name ([k, rows]) for use (enum backend_use). */
static enum sp_status bind_for(struct tsrc *f, const char *name, int64_t k, int64_t rows, unsigned use,
                               struct backend_weight *w, struct sp_err *err)
{
    enum sp_status result;
    const struct gg_tensor *t = find_tensor(f, name, k, rows, true, err, &result);
    if (!t)
        return result;
    return bind_rows(f, t, name, k, 0, rows, use, w, err);
}

static enum sp_status bind_matrix(struct tsrc *f, const char *name, int64_t k, int64_t rows,
                                  struct backend_weight *w, struct sp_err *err)
{
    return bind_for(f, name, k, rows, BACKEND_USE_MATMUL, w, err);
}

enum sp_status model_vec_to_f32(const struct gg_tensor *t, const char *name, int64_t n, float *out,
                                struct sp_err *err)
{
    switch (backend_to_f32(t->type, t->data, out, n, NULL)) {
    case SP_OK:
        return SP_OK;
    case SP_ERR_FORMAT:
        return sp_err_setc(err, SP_ERR_FORMAT, name, "vector %s length is not a whole block", name);
    default:
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, name, "vector %s has unsupported type %s", name,
                           gg_type_name(t->type));
    }
}

/* Convert a 1-D tensor to F32 into *dst (n floats taken from the arena at
 * *next, which advances); *dst stays NULL when an optional tensor is absent. */
static enum sp_status load_vector(struct tsrc *f, const char *name, int64_t n, bool required, float **next,
                                  const float **dst, struct sp_err *err)
{
    enum sp_status result;
    *dst = NULL;
    const struct gg_tensor *t = find_tensor(f, name, n, 0, required, err, &result);
    if (!t)
        return result;
    float *out = *next;
    if ((result = model_vec_to_f32(t, name, n, out, err)) != SP_OK)
        return result;
    *dst = out;
    *next = out + n;
    return SP_OK;
}

/* Whether layer l uses the sliding window: attention.sliding_window_pattern
 * as one flag per layer (an array of n_layer booleans or integers, non-zero
 * = sliding, as llama.cpp reads it), else the period: every pattern-th layer
 * is global (0: all sliding). */
static bool layer_is_swa(const struct gg_file *f, const struct model_hparams *hp, int l)
{
    char key[128];
    enum gg_value_type et;
    uint64_t n;
    snprintf(key, sizeof(key), "%s.attention.sliding_window_pattern", hp->arch_name);
    if (gg_get_arr(f, key, &et, &n) && n == (uint64_t)hp->n_layer) {
        const unsigned char *p = gg_arr_data(f, key);
        size_t w = et == GG_VAL_BOOL || et == GG_VAL_U8 || et == GG_VAL_I8 ? 1
                   : et == GG_VAL_U32 || et == GG_VAL_I32                  ? 4
                                                                           : 0;
        if (p && w) {
            uint32_t v = 0;
            memcpy(&v, p + (size_t)l * w, w); /* little-endian file, little-endian host */
            return v != 0;
        }
    }
    return hp->swa_pattern == 0 || l % hp->swa_pattern < hp->swa_pattern - 1;
}

/* Refuse a bias the graph would not apply: every "blk.N.<name>.bias" that
 * load_layer reads when present is listed here; any other bias tensor
 * (output.bias, a norm's bias, ...) would be silently ignored. */
static enum sp_status check_biases(struct tsrc *src, struct sp_err *err)
{
    static const char *const known[] = {"attn_q",  "attn_k",  "attn_v",   "attn_output",
                                        "attn_qkv", "ffn_gate", "ffn_up", "ffn_down"};
    for (size_t i = 0; i < src_count(src); i++) {
        const struct gg_str nm = src_at(src, i)->name;
        char n[96];
        if (nm.len < 5 || nm.len >= sizeof(n) || memcmp(nm.ptr + nm.len - 5, ".bias", 5) != 0) {
            if (nm.len >= sizeof(n) && nm.len >= 5 && memcmp(nm.ptr + nm.len - 5, ".bias", 5) == 0)
                return sp_err_set(err, SP_ERR_UNSUPPORTED, "a bias tensor with a %llu-byte name is not applied",
                                  (unsigned long long)nm.len);
            continue;
        }
        memcpy(n, nm.ptr, nm.len);
        n[nm.len] = '\0';
        bool ok = false;
        const char *p = n;
        if (strncmp(p, "blk.", 4) == 0) {
            p += 4;
            while (*p >= '0' && *p <= '9')
                p++;
            if (*p == '.') {
                p++;
                for (size_t k = 0; k < SP_ARRAY_LEN(known) && !ok; k++)
                    ok = strlen(known[k]) + 5 == strlen(p) && strncmp(p, known[k], strlen(known[k])) == 0;
            }
        }
        if (!ok)
            return sp_err_setc(err, SP_ERR_UNSUPPORTED, n,
                               "tensor %s is a bias spoke's graph does not apply; refusing the model rather than "
                               "ignoring it", n);
    }
    return SP_OK;
}

/* The tensors of layer l as the family's description says. */
static enum sp_status load_layer(struct tsrc *src, struct model *m, int l, float **next, struct sp_err *err)
{
    enum sp_status result;
    const struct model_hparams *hp = &m->hp;
    const struct model_arch_desc *d = hp->desc;
    struct model_layer *L = &m->layers[l];
    const int64_t E = hp->n_embd, hd = hp->head_dim, Dq = (int64_t)hp->n_head * hd,
                  Dkv = (int64_t)hp->n_head_kv * hd, F = hp->n_ff;
    char name[96];
#define LNAME(s) (snprintf(name, sizeof(name), "blk.%d.%s", l, s), name)
    if ((result = load_vector(src, LNAME("attn_norm.weight"), E, true, next, &L->attn_norm, err)) != SP_OK ||
        (result = load_vector(src, LNAME("ffn_norm.weight"), E, true, next, &L->ffn_norm, err)) != SP_OK ||
        (result = load_vector(src, LNAME("post_attention_norm.weight"), E, d->post_norms, next,
                              &L->attn_post_norm, err)) != SP_OK ||
        (result = load_vector(src, LNAME("post_ffw_norm.weight"), E, d->post_norms, next, &L->ffn_post_norm,
                              err)) != SP_OK)
        return result;
    if (d->qk_norm &&
        ((result = load_vector(src, LNAME("attn_q_norm.weight"), hd, true, next, &L->q_norm, err)) != SP_OK ||
         (result = load_vector(src, LNAME("attn_k_norm.weight"), hd, true, next, &L->k_norm, err)) != SP_OK))
        return result;
    if ((result = load_vector(src, LNAME("attn_q.bias"), Dq, d->qkv_bias, next, &L->bq, err)) != SP_OK ||
        (result = load_vector(src, LNAME("attn_k.bias"), Dkv, d->qkv_bias, next, &L->bk, err)) != SP_OK ||
        (result = load_vector(src, LNAME("attn_v.bias"), Dkv, d->qkv_bias, next, &L->bv, err)) != SP_OK ||
        (result = load_vector(src, LNAME("attn_output.bias"), E, false, next, &L->bo, err)) != SP_OK)
        return result;
    const struct gg_tensor *qkv = d->fused_qkv ? src_find(src, LNAME("attn_qkv.weight")) : NULL;
    if (qkv) {
        if (!find_tensor(src, name, E, Dq + 2 * Dkv, true, err, &result))
            return result;
        if ((result = bind_rows(src, qkv, name, E, 0, Dq, BACKEND_USE_MATMUL, &L->wq, err)) != SP_OK ||
            (result = bind_rows(src, qkv, name, E, Dq, Dkv, BACKEND_USE_MATMUL, &L->wk, err)) != SP_OK ||
            (result = bind_rows(src, qkv, name, E, Dq + Dkv, Dkv, BACKEND_USE_MATMUL, &L->wv, err)) != SP_OK)
            return result;
        const float *bqkv;
        if ((result = load_vector(src, LNAME("attn_qkv.bias"), Dq + 2 * Dkv, false, next, &bqkv, err)) != SP_OK)
            return result;
        if (bqkv && (L->bq || L->bk || L->bv))
            return sp_err_setc(err, SP_ERR_FORMAT, name, "layer %d has both %s and separate q/k/v biases", l, name);
        if (bqkv) { /* rows of the fused bias, like the weight's */
            L->bq = bqkv;
            L->bk = bqkv + Dq;
            L->bv = bqkv + Dq + Dkv;
        }
    } else if ((result = bind_matrix(src, LNAME("attn_q.weight"), E, Dq, &L->wq, err)) != SP_OK ||
               (result = bind_matrix(src, LNAME("attn_k.weight"), E, Dkv, &L->wk, err)) != SP_OK ||
               (result = bind_matrix(src, LNAME("attn_v.weight"), E, Dkv, &L->wv, err)) != SP_OK) {
        return result;
    }
    if ((result = bind_matrix(src, LNAME("attn_output.weight"), Dq, E, &L->wo, err)) != SP_OK)
        return result;
    if (d->fused_gate_up) {
        const struct gg_tensor *up = find_tensor(src, LNAME("ffn_up.weight"), E, 2 * F, true, err, &result);
        if (!up)
            return result;
        if ((result = bind_rows(src, up, name, E, 0, F, BACKEND_USE_MATMUL, &L->w_gate, err)) != SP_OK ||
            (result = bind_rows(src, up, name, E, F, F, BACKEND_USE_MATMUL, &L->w_up, err)) != SP_OK)
            return result;
        if ((result = load_vector(src, LNAME("ffn_up.bias"), 2 * F, false, next, &L->b_gate, err)) != SP_OK)
            return result;
        L->b_up = L->b_gate ? L->b_gate + F : NULL; /* gate rows then up rows, like the weight */
    } else if ((result = bind_matrix(src, LNAME("ffn_gate.weight"), E, F, &L->w_gate, err)) != SP_OK ||
               (result = bind_matrix(src, LNAME("ffn_up.weight"), E, F, &L->w_up, err)) != SP_OK ||
               (result = load_vector(src, LNAME("ffn_gate.bias"), F, false, next, &L->b_gate, err)) != SP_OK ||
               (result = load_vector(src, LNAME("ffn_up.bias"), F, false, next, &L->b_up, err)) != SP_OK) {
        return result;
    }
    if ((result = bind_matrix(src, LNAME("ffn_down.weight"), F, E, &L->w_down, err)) != SP_OK ||
        (result = load_vector(src, LNAME("ffn_down.bias"), E, false, next, &L->b_down, err)) != SP_OK)
        return result;
#undef LNAME
    L->swa = d->swa && hp->n_swa > 0 && layer_is_swa(src->f, hp, l);
    L->rope_base = L->swa ? hp->rope_freq_base_swa : hp->rope_freq_base;
    L->rope_scale = L->swa ? 1.0f : hp->rope_freq_scale;
    return SP_OK;
}

static enum sp_status load_from(struct tsrc *src, struct model **out, struct sp_err *err)
{
    enum sp_status result;
    const struct gg_file *f = src->f;
    *out = NULL;
    struct model *m = sp_calloc(1, sizeof(*m));
    if (!m)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the model");
    m->file = f;
    if (!src->dev) { /* no device given: the model's own "cpu" one */
        if ((result = backend_cpu_device_new(&src->dev, err)) != SP_OK)
            goto fail;
        m->dev_owned = true;
    }
    m->dev = src->dev;
    if ((result = read_hparams(f, &m->hp, err)) != SP_OK)
        goto fail;
    struct model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Dq = (int64_t)hp->n_head * hp->head_dim,
                  Dkv = (int64_t)hp->n_head_kv * hp->head_dim;

    /* vocabulary size from the embedding matrix */
    const struct gg_tensor *te = src_find(src, "token_embd.weight");
    if (!te) {
        result = sp_err_setc(err, SP_ERR_FORMAT, "token_embd.weight", "model lacks tensor token_embd.weight");
        goto fail;
    }
    if (te->ne[1] < 1 || te->ne[1] > (1 << 24)) {
        result = sp_err_setc(err, SP_ERR_FORMAT, "token_embd.weight", "token_embd.weight has %lld rows",
                             (long long)te->ne[1]);
        goto fail;
    }
    hp->n_vocab = (int)te->ne[1];
    /* an untied embedding is only looked up by rows (a view on "cpu": no
     * resident copy of the rows no token reads); a tied one is the output
     * matmul too. An encoder has no output matrix. */
    const bool tied = !hp->desc->encoder && !src_find(src, "output.weight");
    if ((result = bind_for(src, "token_embd.weight", E, hp->n_vocab,
                           BACKEND_USE_ROWS | (tied ? BACKEND_USE_MATMUL : 0u), &m->tok_embd, err)) != SP_OK)
        goto fail;
    if (!backend_weight_has_rows(&m->tok_embd)) {
        result = sp_err_set(err, SP_ERR_UNSUPPORTED, "embedding type %s cannot be dequantized",
                            gg_type_name(m->tok_embd.type));
        goto fail;
    }
    if (hp->desc->encoder) { /* bert: its own tensor set (bert.c) */
        if ((result = model_bert_load(m, src_find_any, src_drop_any, src, &src->n_used, err)) != SP_OK)
            goto fail;
        goto bound;
    }
    if (!tied) {
        if ((result = bind_matrix(src, "output.weight", E, hp->n_vocab, &m->output, err)) != SP_OK)
            goto fail;
    } else {
        m->output = m->tok_embd;
        m->tied_output = true;
    }

    /* F32 vectors: output_norm, three RoPE factor sets, per layer 4 norms,
     * 2 head norms, 4 attention biases (or the fused one) and the FFN
     * biases (gate + up, or the fused pair, and down) */
    size_t per_layer = (size_t)(6 * E + 2 * hp->head_dim + 2 * (Dq + 2 * Dkv) + 2 * (int64_t)hp->n_ff);
    size_t n_owned = (size_t)E + 3 * (size_t)(hp->n_rot / 2) + per_layer * (size_t)hp->n_layer;
    m->owned = sp_calloc(n_owned, sizeof(float));
    m->layers = sp_calloc((size_t)hp->n_layer, sizeof(*m->layers));
    if (!m->owned || !m->layers) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the model");
        goto fail;
    }
    float *next = m->owned;
    const float *rope_freqs = NULL;
    const int64_t n_fac = hp->n_rot / 2;
    if ((result = load_vector(src, "output_norm.weight", E, true, &next, &m->output_norm, err)) != SP_OK)
        goto fail;
    if (n_fac > 0 &&
        ((result = load_vector(src, "rope_freqs.weight", n_fac, false, &next, &rope_freqs, err)) != SP_OK ||
         (hp->desc->rope_long_short &&
          ((result = load_vector(src, "rope_factors_long.weight", n_fac, false, &next, &m->rope_long, err)) !=
               SP_OK ||
           (result = load_vector(src, "rope_factors_short.weight", n_fac, false, &next, &m->rope_short, err)) !=
               SP_OK))))
        goto fail;
    const float *facs[3] = {rope_freqs, m->rope_long, m->rope_short};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; facs[k] && i < n_fac; i++)
            if (!(facs[k][i] > 0) || !isfinite(facs[k][i])) {
                result = sp_err_set(err, SP_ERR_FORMAT, "RoPE frequency factor %lld is %g (must be positive)",
                                    (long long)i, (double)facs[k][i]);
                goto fail;
            }
    for (int l = 0; l < hp->n_layer; l++) {
        if ((result = load_layer(src, m, l, &next, err)) != SP_OK)
            goto fail;
        m->layers[l].rope_factors = rope_freqs;
    }
    /* decoder families only: bert's norms have biases of their own (bert.c) */
    if ((result = check_biases(src, err)) != SP_OK)
        goto fail;
bound:
    backend_device_seal(m->dev); /* every weight is bound */
    for (size_t i = 0; i < src_count(src); i++)
        m->weight_bytes += src_at(src, i)->nbytes;
    if (src->n_used < src_count(src))
        LOG_WARN("model", "%zu of the file's %zu tensors are not used by the %s graph",
                 src_count(src) - src->n_used, src_count(src), hp->arch_name);
    LOG_DEBUG("model", "%s: %d layers, embd %d, heads %d/%d, head %d, ff %d, vocab %d, rope base %g scale %g%s%s",
              hp->arch_name, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
              hp->n_vocab, (double)hp->rope_freq_base, (double)hp->rope_freq_scale,
              m->tied_output ? ", tied output" : "", rope_freqs ? ", rope_freqs" : "");
    *out = m;
    return SP_OK;
fail:
    model_free(m);
    return result;
}

enum sp_status model_load_on(struct backend_device *dev, const struct gg_file *f, struct model **out,
                             struct sp_err *err)
{
    struct tsrc src = {f, NULL, 0, dev};
    return load_from(&src, out, err);
}

enum sp_status model_load_split_on(struct backend_device *dev, const struct gg_split *s, struct model **out,
                                   struct sp_err *err)
{
    struct tsrc src = {gg_split_file(s, 0), s, 0, dev};
    return load_from(&src, out, err);
}

enum sp_status model_load(const struct gg_file *f, struct model **out, struct sp_err *err)
{
    return model_load_on(NULL, f, out, err);
}

enum sp_status model_load_split(const struct gg_split *s, struct model **out, struct sp_err *err)
{
    return model_load_split_on(NULL, s, out, err);
}

void model_free(struct model *m)
{
    if (!m)
        return;
    /* every bound weight goes back to the device (unbound ones are zeroed:
     * a load that failed half way releases what it bound) */
    model_bert_free(m->bert, m->dev);
    for (int l = 0; m->layers && l < m->hp.n_layer; l++) {
        struct model_layer *L = &m->layers[l];
        struct backend_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < SP_ARRAY_LEN(ws); i++)
            backend_weight_release(m->dev, ws[i]);
    }
    if (!m->tied_output) /* tied: a copy of tok_embd's binding */
        backend_weight_release(m->dev, &m->output);
    backend_weight_release(m->dev, &m->tok_embd);
    if (m->dev_owned)
        backend_device_free(m->dev);
    sp_free(m->layers);
    sp_free(m->owned);
    sp_free(m);
}
