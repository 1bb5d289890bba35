/* engine.c - model loading (GGUF + weights + tokenizer + chat template +
 * footprint check + backend choice and its device, which binds the weights
 * and makes the state's backend + the one model state and its step
 * loop), contexts, chat rendering and token counting. Generation itself
 * lives in generate.c (caller side) and sched.c (the step loop).
 *
 * The model's weights are immutable after engine_model_load; its model_state
 * (shared KV cache, thread pool, scratch) belongs to the step loop thread.
 * Each engine_ctx owns a sampler, its token buffers and its event queue. */
#include "engine/engine_impl.h"
#include "obs/log.h"

#include <stdio.h>
#include <string.h>

void engine_sampling_default(struct engine_sampling *s)
{
    memset(s, 0, sizeof(*s));
    s->temperature = 0.8f;
    s->top_p = 0.95f;
    s->top_k = 40;
    s->min_p = 0.05f;
    s->repeat_penalty = 1.0f;
    s->repeat_last_n = 64;
}

static char *file_stem(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && strcmp(b + n - 5, ".gguf") == 0)
        n -= 5;
    return sp_strndup(b, n);
}

static char *token_text_dup(const struct tok_vocab *v, int32_t id)
{
    size_t len = 0;
    const char *t = id >= 0 ? tok_text(v, id, &len) : NULL;
    return t ? sp_strndup(t, len) : sp_strdup("");
}

static enum sp_status engine_pieces_build(struct engine_model *em, struct sp_err *err);

enum sp_status engine_model_load(const struct engine_load_opts *opts, struct engine_model **out, struct sp_err *err)
{
    enum sp_status result;
    *out = NULL;
    double t0 = sp_now_ms();
    if (!opts || !opts->path || !*opts->path)
        return sp_err_set(err, SP_ERR_INVALID, "no model path given");
    struct engine_model *em = sp_calloc(1, sizeof(*em));
    if (!em)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading %s", opts->path);
    em->gv_mu_ok = pthread_mutex_init(&em->gv_mu, NULL) == 0;
    em->embd_mu_ok = pthread_mutex_init(&em->embd_mu, NULL) == 0;
    backend_choose(&em->backend);
    /* the chosen kind's device binds the weights and makes the state's backend */
    if ((result = backend_device_new(&em->backend, &em->dev, err)) != SP_OK)
        goto fail;
    if ((result = gg_split_open(opts->path, &em->split, err)) != SP_OK)
        goto fail;
    em->file = gg_split_file(em->split, 0);
    if ((result = model_load_split_on(em->dev, em->split, &em->model, err)) != SP_OK)
        goto fail;
    if ((result = tok_vocab_load(em->file, &em->vocab, err)) != SP_OK)
        goto fail;
    const struct model_hparams *hp = &em->model->hp;
    if (tok_n_vocab(em->vocab) > hp->n_vocab) {
        result = sp_err_set(err, SP_ERR_FORMAT, "tokenizer has %d tokens but the model only %d",
                            (int)tok_n_vocab(em->vocab), hp->n_vocab);
        goto fail;
    }
    /* context and threads */
    int n_ctx = opts->n_ctx > 0 ? opts->n_ctx : SP_MIN(hp->n_ctx_train, 4096);
    if (n_ctx > hp->n_ctx_train) {
        LOG_WARN("engine", "context %d exceeds the model's trained context %d; capping it", n_ctx,
                 hp->n_ctx_train);
        n_ctx = hp->n_ctx_train;
    }
    em->n_ctx = n_ctx;
    em->n_threads = opts->n_threads > 0 ? opts->n_threads : backend_cpu_count();
    em->kv_type = opts->kv_f32 ? KV_F32 : KV_F16;
    em->n_seq = SP_MIN(SP_MAX(opts->n_parallel, 1), 256);
    int64_t cells = opts->kv_tokens > 0 ? opts->kv_tokens : (int64_t)n_ctx * em->n_seq;
    em->n_cells = (int)SP_MIN(SP_MAX(cells, (int64_t)n_ctx), (int64_t)INT32_MAX / 4);
    /* footprint: weights + the one state (KV budget + scratch) */
    struct model_state_opts so = {.n_ctx = n_ctx, .n_batch = MODEL_BATCH_DEFAULT, .n_threads = em->n_threads, .kv_type = em->kv_type,
                                  .n_seq = em->n_seq, .n_cells = em->n_cells};
    const bool encoder = em->model->bert != NULL; /* embeddings only: no KV cache, no step loop */
    const int embd_batch = SP_MAX(n_ctx, 512);
    size_t ctx_bytes = encoder ? model_bert_state_bytes(em->model, embd_batch, em->n_threads)
                               : model_state_bytes(em->model, &so);
    em->footprint = ctx_bytes;
    size_t fsz = gg_split_size(em->split);
    if (!sp_add_size(em->footprint, fsz, &em->footprint))
        em->footprint = SIZE_MAX;
    if (!opts->skip_mem_check && (result = model_mem_check(fsz, ctx_bytes, opts->path, err)) != SP_OK)
        goto fail;
    /* names, chat template */
    struct gg_str s;
    em->name = gg_get_str(em->file, "general.name", &s) && s.len > 0 && s.len < 256 ? sp_strndup(s.ptr, s.len)
                                                                                     : file_stem(opts->path);
    if ((result = engine_chat_setup(em, opts->chat_template, err)) != SP_OK)
        goto fail;
    em->bos_text = token_text_dup(em->vocab, tok_bos(em->vocab));
    em->eos_text = token_text_dup(em->vocab, tok_eos(em->vocab));
    if (!em->name || !em->bos_text || !em->eos_text) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory loading %s", opts->path);
        goto fail;
    }
    if ((result = engine_pieces_build(em, err)) != SP_OK)
        goto fail;
    if (encoder) {
        if (!em->embd_mu_ok) {
            result = sp_err_set(err, SP_ERR_INTERNAL, "pthread_mutex_init failed");
            goto fail;
        }
        if ((result = model_bert_state_new(em->model, embd_batch, em->n_threads, &em->bert, err)) != SP_OK)
            goto fail;
    } else {
        if ((result = model_state_new(em->model, &so, &em->st, err)) != SP_OK)
            goto fail;
        em->sched.step_tokens = opts->step_tokens > 0 ? opts->step_tokens : 256;
        if ((result = engine_sched_start(em, err)) != SP_OK)
            goto fail;
    }
    em->load_ms = sp_now_ms() - t0;
    LOG_INFO("engine",
             "loaded %s (%s, %d layers, %.1f MiB) in %.0f ms; context %d, %d sequence%s, KV %s %d tokens (%.1f MiB), "
             "%d threads, chat %s",
             em->name, hp->arch_name, hp->n_layer, (double)em->model->weight_bytes / 1048576.0, em->load_ms, n_ctx,
             em->n_seq, em->n_seq == 1 ? "" : "s", em->kv_type == KV_F32 ? "f32" : "f16", em->n_cells,
             (double)model_state_kv_bytes(em->model, &so) / 1048576.0,
             em->n_threads, em->tmpl_desc);
    *out = em;
    return SP_OK;
fail:
    engine_model_free(em);
    return result;
}

void engine_model_free(struct engine_model *m)
{
    if (!m)
        return;
    engine_sched_stop(m);
    model_state_free(m->st);
    model_bert_state_free(m->bert);
    if (m->embd_mu_ok)
        pthread_mutex_destroy(&m->embd_mu);
    sp_free(m->name);
    sp_free(m->pieces);
    sp_free(m->piece_off);
    tok_tmpl_free(m->tmpl);
    tok_tmpl_free(m->tmpl_tools);
    sp_free(m->bos_text);
    sp_free(m->eos_text);
    tok_vocab_free(m->vocab);
    grammar_vocab_free(m->gvocab);
    if (m->gv_mu_ok)
        pthread_mutex_destroy(&m->gv_mu);
    model_free(m->model); /* releases the weights on m->dev */
    backend_device_free(m->dev);
    gg_split_close(m->split);
    sp_free(m);
}

void engine_model_get_info(const struct engine_model *m, struct engine_model_info *out)
{
    const struct model_hparams *hp = &m->model->hp;
    memset(out, 0, sizeof(*out));
    out->arch = hp->arch_name;
    out->name = m->name;
    out->backend = m->backend.name;
    out->n_ctx = m->n_ctx;
    out->n_seq = m->n_seq;
    out->kv_tokens = m->n_cells;
    if (m->sched.started) {
        pthread_mutex_lock((pthread_mutex_t *)&m->sched.mu);
        out->max_step_seqs = m->sched.max_step_seqs;
        out->prompt_evaluated = m->sched.prompt_evaluated;
        pthread_mutex_unlock((pthread_mutex_t *)&m->sched.mu);
    }
    out->n_ctx_train = hp->n_ctx_train;
    out->n_vocab = hp->n_vocab;
    out->n_embd = hp->n_embd;
    out->n_layer = hp->n_layer;
    out->n_head = hp->n_head;
    out->n_head_kv = hp->n_head_kv;
    out->weight_bytes = m->model->weight_bytes;
    out->footprint_bytes = m->footprint;
    out->load_ms = m->load_ms;
}

enum sp_status engine_ctx_new(struct engine_model *m, struct engine_ctx **out, struct sp_err *err)
{
    enum sp_status result;
    *out = NULL;
    struct engine_ctx *c = sp_calloc(1, sizeof(*c));
    if (!c)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a context");
    c->m = m;
    c->kv_seq = -1;
    struct sample_params sp;
    sample_params_default(&sp);
    if ((result = sample_new(m->model->hp.n_vocab, &sp, &c->smp, err)) != SP_OK)
        goto fail;
    c->tokens = sp_calloc((size_t)m->n_ctx + 1, sizeof(int32_t));
    if (!c->tokens) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a context");
        goto fail;
    }
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        result = sp_err_set(err, SP_ERR_INTERNAL, "pthread_cond_init failed");
        goto fail;
    }
    c->cv_ok = true;
    atomic_init(&c->gen_id, 0);
    atomic_init(&c->cancel_id, 0);
    *out = c;
    return SP_OK;
fail:
    engine_ctx_free(c);
    return result;
}

void engine_ctx_free(struct engine_ctx *c)
{
    if (!c)
        return;
    sample_free(c->smp);
    grammar_matcher_free(c->gm);
    sp_free(c->allow);
    sp_free(c->tokens);
    sp_buf_free(&c->held);
    sp_buf_free(&c->emit);
    sp_free(c->q.ev);
    sp_buf_free(&c->q.text);
    sp_free(c->q2.ev);
    sp_buf_free(&c->q2.text);
    if (c->cv_ok)
        pthread_cond_destroy(&c->cv);
    sp_free(c);
}

void engine_ctx_cancel(struct engine_ctx *c) { atomic_store(&c->cancel_id, atomic_load(&c->gen_id)); }

uint64_t engine_ctx_generation_id(const struct engine_ctx *c)
{
    return atomic_load(&((struct engine_ctx *)(uintptr_t)c)->gen_id);
}

void engine_ctx_cancel_id(struct engine_ctx *c, uint64_t id)
{
    if (id != 0)
        atomic_store(&c->cancel_id, id);
}

enum sp_status engine_tokenize_count(const struct engine_model *m, const char *text, bool add_bos,
                                     bool parse_special, int *n_tokens, struct sp_err *err)
{
    return engine_tokenize_count_spans(m, text, add_bos, parse_special, NULL, 0, n_tokens, err);
}

enum sp_status engine_tokenize_count_spans(const struct engine_model *m, const char *text, bool add_bos,
                                           bool parse_special, const struct tok_span *spans, size_t n_spans,
                                           int *n_tokens, struct sp_err *err)
{
    size_t n = 0;
    int32_t one;
    *n_tokens = 0;
    enum sp_status result = tok_encode_spans(m->vocab, text, strlen(text), add_bos, parse_special, spans, n_spans,
                                             &one, 0, &n, err);
    if (result != SP_OK && result != SP_ERR_LIMIT)
        return result;
    if (err && result == SP_ERR_LIMIT)
        sp_err_clear(err);
    *n_tokens = n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
    return SP_OK;
}

const char *engine_token_text(const struct engine_model *m, int32_t token, size_t *len)
{
    if (!m->piece_off || token < 0 || token >= tok_n_vocab(m->vocab)) {
        *len = 0;
        return "";
    }
    *len = m->piece_off[token + 1] - m->piece_off[token];
    return m->pieces + m->piece_off[token];
}

/* The text each token stands for (OpenAI logprobs show " there", not the
 * vocabulary's "\xe2\x96\x81there" or "\xc4\xa0there"; byte tokens give their byte;
 * control tokens their own text), computed once at load. */
static enum sp_status engine_pieces_build(struct engine_model *em, struct sp_err *err)
{
    int32_t n = tok_n_vocab(em->vocab);
    struct sp_buf b = {0};
    char tmp[256];
    em->piece_off = sp_calloc((size_t)n + 1, sizeof *em->piece_off);
    if (!em->piece_off)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the vocabulary");
    for (int32_t t = 0; t < n; t++) {
        em->piece_off[t] = (uint32_t)b.len;
        size_t k = tok_piece(em->vocab, t, true, tmp, sizeof tmp);
        if (k > sizeof tmp) { /* very long token: its raw text */
            const char *raw = tok_text(em->vocab, t, &k);
            if (sp_buf_append(&b, raw ? raw : "", raw ? k : 0)) {
                sp_buf_free(&b);
                return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the vocabulary");
            }
        } else if (k && sp_buf_append(&b, tmp, k)) {
            sp_buf_free(&b);
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the vocabulary");
        }
        if (b.len > UINT32_MAX / 2) {
            sp_buf_free(&b);
            return sp_err_set(err, SP_ERR_FORMAT, "vocabulary texts are too large");
        }
    }
    em->piece_off[n] = (uint32_t)b.len;
    em->pieces = b.data ? sp_buf_take(&b) : sp_strdup("");
    return em->pieces ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the vocabulary");
}

enum sp_status engine_grammar_vocab(struct engine_model *m, const struct grammar_vocab **out, struct sp_err *err)
{
    *out = NULL;
    if (!m->gv_mu_ok)
        return sp_err_set(err, SP_ERR_INTERNAL, "grammar vocabulary lock missing");
    enum sp_status result = SP_OK;
    pthread_mutex_lock(&m->gv_mu);
    if (!m->gvocab) {
        int32_t n = tok_n_vocab(m->vocab);
        uint8_t *kind = sp_calloc((size_t)n, 1);
        if (!kind) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory building the grammar vocabulary");
        } else {
            for (int32_t t = 0; t < n; t++)
                kind[t] = tok_is_eog(m->vocab, t) ? GRAMMAR_TOK_EOG
                          : tok_is_control(m->vocab, t) ? GRAMMAR_TOK_NEVER
                                                        : GRAMMAR_TOK_TEXT;
            result = grammar_vocab_new(n, m->pieces, m->piece_off, kind, &m->gvocab, err);
            sp_free(kind);
        }
    }
    *out = m->gvocab;
    pthread_mutex_unlock(&m->gv_mu);
    return result;
}

const struct tok_vocab *engine_model_vocab(const struct engine_model *m) { return m->vocab; }

size_t engine_model_n_params(const struct engine_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < gg_split_tensor_count(m->split); i++) {
        const struct gg_tensor *t = gg_split_tensor_at(m->split, i);
        n += (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    return n;
}

const char *engine_model_ftype(const struct engine_model *m)
{
    static const struct {
        uint32_t id;
        const char *name;
    } ftypes[] = {{0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
                  {8, "Q5_0"},    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
                  {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
                  {18, "Q6_K"},   {25, "IQ4_NL"}, {30, "IQ4_XS"}, {32, "BF16"}};
    uint32_t ft;
    if (gg_get_u32(m->file, "general.file_type", &ft))
        for (size_t i = 0; i < SP_ARRAY_LEN(ftypes); i++)
            if (ftypes[i].id == ft)
                return ftypes[i].name;
    size_t bytes[GG_TYPE_COUNT] = {0};
    for (size_t i = 0; i < gg_split_tensor_count(m->split); i++) {
        const struct gg_tensor *t = gg_split_tensor_at(m->split, i);
        if ((unsigned)t->type < GG_TYPE_COUNT && t->n_dims >= 2)
            bytes[t->type] += t->nbytes;
    }
    size_t best = 0;
    for (size_t i = 1; i < GG_TYPE_COUNT; i++)
        if (bytes[i] > bytes[best])
            best = i;
    return gg_type_name((enum gg_type)best);
}

int engine_cpu_count(void) { return backend_cpu_count(); }

bool engine_model_file_changed(const struct engine_model *m, char *why, size_t whysz)
{
    return m && gg_split_changed(m->split, why, whysz);
}

bool engine_model_faulted(const struct engine_model *m) { return m && gg_split_faulted(m->split); }
