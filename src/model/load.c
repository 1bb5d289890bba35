/* load.c - hyper-parameters from GGUF metadata and weight binding.
 *
 * Keys are "<arch>.<name>" as llama.cpp writes them; missing optional keys
 * take llama.cpp's defaults (rope freq base 10000, rms eps 1e-5, n_head_kv =
 * n_head, rope dimensions = head size). Every tensor is checked for presence,
 * shape and a kernel for its type before the model is returned; matrices are
 * views into the mapping, 1-D norm/bias vectors are converted to F32 copies.
 * A split GGUF loads the same way, its tensors looked up over the shards. */
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
    if (a.len == 5 && memcmp(a.ptr, "llama", 5) == 0) {
        hp->arch = MODEL_ARCH_LLAMA;
        hp->arch_name = "llama";
    } else if (a.len == 5 && memcmp(a.ptr, "qwen2", 5) == 0) {
        hp->arch = MODEL_ARCH_QWEN2;
        hp->arch_name = "qwen2";
        hp->rope_neox = true;
    } else {
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, "general.architecture",
                           "architecture '%.*s' is not supported (supported: llama, qwen2)",
                           (int)SP_MIN(a.len, 64u), a.ptr);
    }
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
    if (has_type && !linear && !(st.len == 4 && memcmp(st.ptr, "none", 4) == 0))
        LOG_WARN("model", "rope scaling type '%.*s' is not supported; ignoring it", (int)SP_MIN(st.len, 32u),
                 st.ptr);
    if ((linear || !has_type) && key_f32(f, ar, "rope.scaling.factor", &fv) && fv > 0 && isfinite(fv))
        hp->rope_freq_scale = 1.0f / fv;
    else if (key_f32(f, ar, "rope.scale_linear", &fv) && fv > 0 && isfinite(fv))
        hp->rope_freq_scale = 1.0f / fv;
    return SP_OK;
}

/* Where tensors come from: one file, or the shards of a split GGUF. */
struct tsrc {
    const struct gg_file *f;     /* metadata (the first shard) */
    const struct gg_split *split; /* or NULL */
};

static const struct gg_tensor *src_find(const struct tsrc *src, const char *name)
{
    return src->split ? gg_split_tensor_find(src->split, name) : gg_tensor_find(src->f, name);
}

static size_t src_count(const struct tsrc *src)
{
    return src->split ? gg_split_tensor_count(src->split) : gg_tensor_count(src->f);
}

static const struct gg_tensor *src_at(const struct tsrc *src, size_t i)
{
    return src->split ? gg_split_tensor_at(src->split, i) : gg_tensor_at(src->f, i);
}

static const struct gg_tensor *find_tensor(const struct tsrc *f, const char *name, int64_t ne0, int64_t ne1,
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
    return t;
}

static enum sp_status bind_matrix(const struct tsrc *f, const char *name, int64_t k, int64_t rows,
                                  struct backend_weight *w, struct sp_err *err)
{
    enum sp_status result;
    const struct gg_tensor *t = find_tensor(f, name, k, rows, true, err, &result);
    if (!t)
        return result;
    result = backend_weight_bind(w, t->type, k, rows, t->data, err);
    if (result != SP_OK && err)
        sp_strlcpy(err->context, name, sizeof(err->context));
    return result;
}

/* Convert a 1-D tensor to F32 into dst (n floats). */
static enum sp_status load_vector(const struct tsrc *f, const char *name, int64_t n, bool required,
                                  float *dst, bool *present, struct sp_err *err)
{
    enum sp_status result;
    *present = false;
    const struct gg_tensor *t = find_tensor(f, name, n, 0, required, err, &result);
    if (!t)
        return result;
    const struct kern_type_ops *ops = kern_ops(t->type);
    if (t->type == GG_TYPE_F32) {
        memcpy(dst, t->data, (size_t)n * sizeof(float));
    } else if (ops && ops->to_float) {
        struct gg_type_info ti;
        if (!gg_type_info(t->type, &ti) || n % ti.blck_size != 0)
            return sp_err_setc(err, SP_ERR_FORMAT, name, "vector %s length is not a whole block", name);
        ops->to_float(t->data, dst, n);
    } else {
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, name, "vector %s has unsupported type %s", name,
                           gg_type_name(t->type));
    }
    *present = true;
    return SP_OK;
}

static enum sp_status load_from(const struct tsrc *src, struct model **out, struct sp_err *err)
{
    enum sp_status result;
    const struct gg_file *f = src->f;
    *out = NULL;
    kern_init();
    struct model *m = sp_calloc(1, sizeof(*m));
    if (!m)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the model");
    m->file = f;
    if ((result = read_hparams(f, &m->hp, err)) != SP_OK)
        goto fail;
    struct model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Dq = (int64_t)hp->n_head * hp->head_dim,
                  Dkv = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;

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
    if ((result = bind_matrix(src, "token_embd.weight", E, hp->n_vocab, &m->tok_embd, err)) != SP_OK)
        goto fail;
    if (!m->tok_embd.ops->to_float) {
        result = sp_err_set(err, SP_ERR_UNSUPPORTED, "embedding type %s cannot be dequantized",
                            gg_type_name(m->tok_embd.type));
        goto fail;
    }
    if (src_find(src, "output.weight")) {
        if ((result = bind_matrix(src, "output.weight", E, hp->n_vocab, &m->output, err)) != SP_OK)
            goto fail;
    } else {
        m->output = m->tok_embd;
        m->tied_output = true;
    }

    /* F32 vectors: output_norm + per layer 2 norms + up to 3 biases */
    size_t per_layer = (size_t)(2 * E + Dq + 2 * Dkv);
    size_t n_owned = (size_t)E + per_layer * (size_t)hp->n_layer;
    m->owned = sp_calloc(n_owned, sizeof(float));
    m->layers = sp_calloc((size_t)hp->n_layer, sizeof(*m->layers));
    if (!m->owned || !m->layers) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the model");
        goto fail;
    }
    bool present;
    if ((result = load_vector(src, "output_norm.weight", E, true, m->owned, &present, err)) != SP_OK)
        goto fail;
    m->output_norm = m->owned;
    for (int l = 0; l < hp->n_layer; l++) {
        struct model_layer *L = &m->layers[l];
        float *v = m->owned + E + per_layer * (size_t)l;
        char name[96];
#define LNAME(s) (snprintf(name, sizeof(name), "blk.%d.%s", l, s), name)
        if ((result = load_vector(src, LNAME("attn_norm.weight"), E, true, v, &present, err)) != SP_OK ||
            (result = load_vector(src, LNAME("ffn_norm.weight"), E, true, v + E, &present, err)) != SP_OK)
            goto fail;
        L->attn_norm = v;
        L->ffn_norm = v + E;
        bool bias_required = hp->arch == MODEL_ARCH_QWEN2;
        if ((result = load_vector(src, LNAME("attn_q.bias"), Dq, bias_required, v + 2 * E, &present, err)) != SP_OK)
            goto fail;
        L->bq = present ? v + 2 * E : NULL;
        if ((result = load_vector(src, LNAME("attn_k.bias"), Dkv, bias_required, v + 2 * E + Dq, &present, err)) !=
            SP_OK)
            goto fail;
        L->bk = present ? v + 2 * E + Dq : NULL;
        if ((result = load_vector(src, LNAME("attn_v.bias"), Dkv, bias_required, v + 2 * E + Dq + Dkv, &present,
                                  err)) != SP_OK)
            goto fail;
        L->bv = present ? v + 2 * E + Dq + Dkv : NULL;
        if ((result = bind_matrix(src, LNAME("attn_q.weight"), E, Dq, &L->wq, err)) != SP_OK ||
            (result = bind_matrix(src, LNAME("attn_k.weight"), E, Dkv, &L->wk, err)) != SP_OK ||
            (result = bind_matrix(src, LNAME("attn_v.weight"), E, Dkv, &L->wv, err)) != SP_OK ||
            (result = bind_matrix(src, LNAME("attn_output.weight"), Dq, E, &L->wo, err)) != SP_OK ||
            (result = bind_matrix(src, LNAME("ffn_gate.weight"), E, F, &L->w_gate, err)) != SP_OK ||
            (result = bind_matrix(src, LNAME("ffn_up.weight"), E, F, &L->w_up, err)) != SP_OK ||
            (result = bind_matrix(src, LNAME("ffn_down.weight"), F, E, &L->w_down, err)) != SP_OK)
            goto fail;
#undef LNAME
    }
    for (size_t i = 0; i < src_count(src); i++)
        m->weight_bytes += src_at(src, i)->nbytes;
    LOG_DEBUG("model", "%s: %d layers, embd %d, heads %d/%d, head %d, ff %d, vocab %d, rope base %g scale %g%s",
              hp->arch_name, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff,
              hp->n_vocab, (double)hp->rope_freq_base, (double)hp->rope_freq_scale,
              m->tied_output ? ", tied output" : "");
    *out = m;
    return SP_OK;
fail:
    model_free(m);
    return result;
}

enum sp_status model_load(const struct gg_file *f, struct model **out, struct sp_err *err)
{
    const struct tsrc src = {f, NULL};
    return load_from(&src, out, err);
}

enum sp_status model_load_split(const struct gg_split *s, struct model **out, struct sp_err *err)
{
    const struct tsrc src = {gg_split_file(s, 0), s};
    return load_from(&src, out, err);
}

void model_free(struct model *m)
{
    if (!m)
        return;
    sp_free(m->layers);
    sp_free(m->owned);
    sp_free(m);
}
