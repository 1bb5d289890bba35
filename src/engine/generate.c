/* generate.c - the caller's side of a generation, and the benchmark
 * helpers behind `spoke bench`.
 *
 * engine_generate: tokenize, reset the ctx's per-generation state, queue it
 * to the model's step loop (sched.c, which does prefill, sampling, stop
 * strings and limits), then wait for the events the loop queues and run the
 * user's callback for each on this thread. Once the callback returns false
 * or the generation is cancelled, later events are not delivered (the loop
 * drops the sequence at its next step). */
#include "engine/engine_impl.h"
#include "obs/log.h"

#include <string.h>

static void to_sample_params(const struct engine_sampling *in, struct sample_params *out)
{
    out->temperature = in->temperature;
    out->top_k = in->top_k;
    out->top_p = in->top_p > 0.0f ? in->top_p : 1.0f;
    out->min_p = in->min_p;
    out->repeat_penalty = in->repeat_penalty > 0.0f ? in->repeat_penalty : 1.0f;
    out->repeat_last_n = in->repeat_last_n;
    out->presence_penalty = in->presence_penalty;
    out->frequency_penalty = in->frequency_penalty;
    out->seed = in->seed;
    out->bias = in->logit_bias;
    out->n_bias = in->n_logit_bias;
}

/* Per-generation state of c (tokens already in c->tokens), ready to queue. */
static enum sp_status setup(struct engine_ctx *c, const struct engine_gen_params *p, int choice, size_t n_prompt,
                            struct sp_err *err)
{
    struct engine_model *m = c->m;
    enum sp_status result;
    /* constrained output: a fresh matcher over the model's token trie */
    grammar_matcher_free(c->gm);
    c->gm = NULL;
    if (p->grammar) {
        const struct grammar_vocab *gv = NULL;
        if ((result = engine_grammar_vocab(m, &gv, err)) != SP_OK)
            return result;
        if (!c->allow && !(c->allow = sp_calloc((size_t)m->model->hp.n_vocab, 1)))
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory for a grammar mask");
        if ((result = grammar_matcher_new(p->grammar, gv, &c->gm, err)) != SP_OK)
            return result;
    }
    struct sample_params sprm;
    to_sample_params(&p->sampling, &sprm);
    sprm.seed += (uint64_t)choice; /* choice i of n: seed + i */
    sample_reset(c->smp, &sprm);
    tok_stream_init(&c->ts);
    sp_buf_reset(&c->held);
    sp_buf_reset(&c->emit);
    c->n_prompt = c->n_tokens = (int)n_prompt;
    c->n_eval = c->n_reused = 0;
    c->kv_seq = -1;
    c->p = p;
    c->status = SP_OK;
    sp_err_clear(&c->err);
    memset(&c->r, 0, sizeof(c->r));
    c->r.n_prompt_tokens = (int)n_prompt;
    c->n_top = p->want_logprobs ? SP_MAX(0, SP_MIN(p->n_top_logprobs, 20)) : 0;
    c->t_start = sp_now_ms();
    c->t_first = 0;
    c->q.n = 0;
    sp_buf_reset(&c->q.text);
    c->leader = NULL;
    c->n_followers = 0;
    return SP_OK;
}

enum sp_status engine_generate(struct engine_ctx *c, const struct engine_gen_params *p, engine_token_cb cb,
                               void *userdata, struct engine_gen_result *res, struct sp_err *err)
{
    return engine_generate_n(&c, 1, p, cb, userdata, res, err);
}

int engine_kv_cells(const struct engine_model *m, int n_prompt, int max_tokens)
{
    const int max_tok = max_tokens > 0 ? max_tokens : m->n_ctx;
    if (!m->st) /* an embedding-only model has no KV cache */
        return 0;
    return model_seq_cells(m->st, (int)SP_MIN((int64_t)m->n_ctx, (int64_t)n_prompt + max_tok));
}

#define GEN_MAX_N 64

enum sp_status engine_generate_n(struct engine_ctx *const *ctxs, int n, const struct engine_gen_params *p,
                                 engine_token_cb cb, void *userdata, struct engine_gen_result *res,
                                 struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct engine_ctx *c = ctxs[0];
    struct engine_model *m = c->m;
    struct engine_sched *sc = &m->sched;
    const int n_ctx = m->n_ctx;
    struct engine_gen_result r;
    memset(&r, 0, sizeof(r));
    r.finish = ENGINE_FINISH_STOP;
    for (int i = 0; res && i < n && i < GEN_MAX_N; i++)
        res[i] = r;
    uint64_t ids[GEN_MAX_N];
    if (n < 1 || n > GEN_MAX_N)
        return sp_err_set(err, SP_ERR_INVALID, "n must be 1..%d", GEN_MAX_N);
    for (int i = 0; i < n; i++)
        ids[i] = atomic_fetch_add(&ctxs[i]->gen_id, 1) + 1;
    const uint64_t my_id = ids[0];
    if (!p || !p->prompt)
        return sp_err_set(err, SP_ERR_INVALID, "no prompt given");
    if (!m->st)
        return sp_err_set(err, SP_ERR_INVALID,
                          "model '%s' is an embedding model (%s): it cannot generate text; use /v1/embeddings", m->name,
                          m->model->hp.arch_name);
    if (n > m->n_seq)
        return sp_err_set(err, SP_ERR_LIMIT, "n = %d choices need %d sequences; this model decodes at most %d "
                          "together (max_concurrency)", n, n, m->n_seq);
    for (int i = 1; i < n; i++)
        if (ctxs[i]->m != m || ctxs[i] == c)
            return sp_err_set(err, SP_ERR_INVALID, "the n contexts must be distinct contexts of one model");

    /* tokenize */
    size_t n_prompt = 0;
    result = tok_encode_spans(m->vocab, p->prompt, strlen(p->prompt), p->add_bos, p->parse_special, p->text_spans,
                              p->n_text_spans, c->tokens, (size_t)n_ctx, &n_prompt, err);
    if (result == SP_ERR_LIMIT || (result == SP_OK && n_prompt >= (size_t)n_ctx))
        return sp_err_set(err, SP_ERR_LIMIT, "prompt has %zu tokens, context is %d", n_prompt, n_ctx);
    if (result != SP_OK)
        return result;
    if (n_prompt == 0)
        return sp_err_set(err, SP_ERR_INVALID, "the prompt is empty (no tokens)");
    if (n > 1) {
        const int cells = engine_kv_cells(m, (int)n_prompt, p->max_tokens);
        if ((int64_t)cells * n > m->n_cells)
            return sp_err_set(err, SP_ERR_LIMIT, "n = %d choices of %d cells each do not fit the KV budget of %d "
                              "tokens; lower n or max_tokens", n, cells, m->n_cells);
    }
    for (int i = 0; i < n; i++) {
        if (i > 0)
            memcpy(ctxs[i]->tokens, c->tokens, n_prompt * sizeof(int32_t));
        if ((result = setup(ctxs[i], p, i, n_prompt, err)) != SP_OK)
            return result;
    }

    /* hand the group to the step loop: the leader is queued, the others ride along */
    pthread_mutex_lock(&sc->mu);
    c->followers = n > 1 ? (struct engine_ctx **)&ctxs[1] : NULL;
    c->n_followers = n - 1;
    for (int i = 1; i < n; i++) {
        ctxs[i]->leader = c;
        ctxs[i]->phase = ENGINE_WAITING;
    }
    engine_sched_submit(m, c);
    bool stop_delivery = false;
    for (;;) {
        bool any = false, done = true;
        for (int i = 0; i < n; i++) {
            any = any || ctxs[i]->q.n > 0;
            done = done && ctxs[i]->phase == ENGINE_DONE;
        }
        if (!any && !done) {
            sp_cond_wait_ms(&c->cv, &sc->mu, 1000);
            continue;
        }
        /* swap the queues out and deliver without the lock */
        for (int i = 0; i < n; i++) {
            struct engine_ctx *x = ctxs[i];
            struct engine_evq tmp = x->q;
            x->q = x->q2;
            x->q2 = tmp;
            x->q.n = 0;
            sp_buf_reset(&x->q.text);
        }
        pthread_mutex_unlock(&sc->mu);
        for (int i = 0; i < n; i++) {
            struct engine_ctx *x = ctxs[i];
            for (size_t k = 0; k < x->q2.n && !stop_delivery; k++) {
                if (atomic_load(&c->cancel_id) == my_id || atomic_load(&x->cancel_id) == ids[i] ||
                    engine_model_faulted(m)) {
                    stop_delivery = true; /* a faulted file: what follows was computed from zeros */
                    break;
                }
                const struct engine_ev *e = &x->q2.ev[k];
                struct engine_token_event ev;
                memset(&ev, 0, sizeof(ev));
                ev.index = i;
                ev.token = e->token;
                ev.text = e->text_len ? x->q2.text.data + e->text_off : "";
                ev.text_len = e->text_len;
                ev.logprob = e->logprob;
                ev.n_top = e->n_top;
                ev.top_tokens = e->top_ids;
                ev.top_logprobs = e->top_lp;
                if (cb && !cb(userdata, &ev))
                    stop_delivery = true;
            }
            x->q2.n = 0;
        }
        if (stop_delivery) /* every choice stops (the loop drops the sequences at its next step) */
            for (int i = 0; i < n; i++)
                atomic_store(&ctxs[i]->cancel_id, ids[i]);
        pthread_mutex_lock(&sc->mu);
        bool left = false;
        for (int i = 0; i < n; i++)
            left = left || ctxs[i]->q.n > 0;
        if (done && !left)
            break;
    }
    result = SP_OK;
    for (int i = 0; i < n; i++) {
        struct engine_ctx *x = ctxs[i];
        r = x->r;
        if (result == SP_OK && x->status != SP_OK) {
            result = x->status;
            if (err)
                *err = x->err;
        }
        if (stop_delivery && x->status == SP_OK)
            r.finish = ENGINE_FINISH_CANCELLED;
        if (res)
            res[i] = r;
        x->phase = ENGINE_IDLE;
        x->p = NULL;
        x->leader = NULL;
        x->followers = NULL;
        x->n_followers = 0;
    }
    if (result == SP_OK && engine_model_faulted(m))
        result = sp_err_set(err, SP_ERR_STATE, "the model file changed on disk while this request ran "
                            "(truncated or overwritten: its weights read as zeros); the output was discarded");
    pthread_mutex_unlock(&sc->mu);
    LOG_DEBUG("engine", "prompt %zu tokens (%d reused) in %.1f ms, %d choice(s)", n_prompt, c->r.n_cached_tokens,
              c->r.prompt_ms, n);
    return result;
}

/* Open a bench sequence of n_ctx cells (dropping cached prefixes). */
static enum sp_status bench_seq(struct engine_model *m, int *id, struct sp_err *err)
{
    struct kv_cache *kv = model_state_kv(m->st);
    int reused;
    kv_cache_clear(kv);
    if (kv_seq_open(kv, m->n_ctx, NULL, 0, 0, id, &reused) != SP_OK)
        return sp_err_set(err, SP_ERR_BUSY, "no KV cells free for a benchmark sequence");
    return SP_OK;
}

/* Evaluate toks[0..n) of sequence id from position pos0 in batches; logits of the last. */
static enum sp_status bench_eval(struct engine_model *m, int id, const int32_t *toks, int n, int pos0,
                                 float *logits, struct sp_err *err)
{
    const int B = model_state_n_batch(m->st);
    int32_t *pos = sp_calloc((size_t)B * 2, sizeof(int32_t));
    if (!pos)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    int32_t *seq = pos + B;
    enum sp_status result = SP_OK;
    for (int i = 0; i < n && result == SP_OK;) {
        int cnt = SP_MIN(B, n - i);
        if (n - i - cnt == 1)
            cnt--; /* no 1-token chunk */
        for (int k = 0; k < cnt; k++) {
            pos[k] = pos0 + i + k;
            seq[k] = id;
        }
        struct model_batch b = {cnt, toks + i, pos, seq, NULL};
        result = model_decode(m->st, &b, i + cnt == n ? logits : NULL, err);
        i += cnt;
    }
    sp_free(pos);
    return result;
}

enum sp_status engine_bench_prefill(struct engine_ctx *c, int n_tokens, double *ms, struct sp_err *err)
{
    *ms = 0;
    struct engine_model *m = c->m;
    if (!m->st)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "%s is an embedding model: nothing to generate", m->name);
    if (n_tokens < 1 || n_tokens >= m->n_ctx)
        return sp_err_set(err, SP_ERR_LIMIT, "cannot prefill %d tokens with context %d", n_tokens, m->n_ctx);
    const int n_vocab = m->model->hp.n_vocab;
    for (int i = 0; i < n_tokens; i++)
        c->tokens[i] = (int32_t)((i * 7919u + 13u) % (unsigned)n_vocab);
    pthread_mutex_lock(&m->sched.mu);
    pthread_mutex_lock(&m->sched.decode_mu);
    int id;
    enum sp_status result = bench_seq(m, &id, err);
    if (result == SP_OK) {
        double t0 = sp_now_ms();
        result = bench_eval(m, id, c->tokens, n_tokens, 0, NULL, err);
        *ms = sp_now_ms() - t0;
        kv_seq_close(model_state_kv(m->st), id, false);
    }
    pthread_mutex_unlock(&m->sched.decode_mu);
    pthread_mutex_unlock(&m->sched.mu);
    return result;
}

enum sp_status engine_bench_decode(struct engine_ctx *c, int n_tokens, double *ms, struct sp_err *err)
{
    *ms = 0;
    struct engine_model *m = c->m;
    if (!m->st)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "%s is an embedding model: nothing to generate", m->name);
    if (n_tokens < 1 || n_tokens >= m->n_ctx)
        return sp_err_set(err, SP_ERR_LIMIT, "cannot decode %d tokens with context %d", n_tokens, m->n_ctx);
    const int n_vocab = m->model->hp.n_vocab;
    float *logits = sp_calloc((size_t)n_vocab, sizeof(float));
    if (!logits)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&m->sched.mu);
    pthread_mutex_lock(&m->sched.decode_mu);
    int id;
    enum sp_status result = bench_seq(m, &id, err);
    if (result == SP_OK) {
        int32_t tok = 1 % n_vocab;
        double t0 = sp_now_ms();
        for (int i = 0; i < n_tokens && result == SP_OK; i++) {
            result = bench_eval(m, id, &tok, 1, i, logits, err);
            tok = sample_argmax(logits, n_vocab);
        }
        *ms = sp_now_ms() - t0;
        kv_seq_close(model_state_kv(m->st), id, false);
    }
    pthread_mutex_unlock(&m->sched.decode_mu);
    pthread_mutex_unlock(&m->sched.mu);
    sp_free(logits);
    return result;
}

enum sp_status engine_bench_parallel(struct engine_model *m, int n_seq, int n_prompt, int n_gen,
                                     struct engine_bench_par *out, struct sp_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!m->st)
        return sp_err_set(err, SP_ERR_UNSUPPORTED, "%s is an embedding model: nothing to generate", m->name);
    const int n_vocab = m->model->hp.n_vocab, B = model_state_n_batch(m->st);
    if (n_seq < 1 || n_seq > m->n_seq || n_prompt < 2 || n_gen < 1 || n_prompt + n_gen > m->n_ctx ||
        n_seq > B)
        return sp_err_set(err, SP_ERR_LIMIT,
                          "cannot run %d sequences of %d + %d tokens (load with %d sequences, context %d, batch %d)",
                          n_seq, n_prompt, n_gen, m->n_seq, m->n_ctx, B);
    const size_t nb = (size_t)SP_MAX(B, n_seq);
    int32_t *buf = sp_calloc(nb * 3 + (size_t)n_seq * 2, sizeof(int32_t));
    float *logits = sp_calloc((size_t)n_seq * n_vocab, sizeof(float));
    bool *want = sp_calloc(nb, sizeof(bool));
    if (!buf || !logits || !want) {
        sp_free(buf);
        sp_free(logits);
        sp_free(want);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    int32_t *tok = buf, *pos = tok + nb, *seq = pos + nb, *ids = seq + nb, *last = ids + n_seq;
    struct kv_cache *kv = model_state_kv(m->st);
    enum sp_status result = SP_OK;
    pthread_mutex_lock(&m->sched.mu);
    pthread_mutex_lock(&m->sched.decode_mu);
    kv_cache_clear(kv);
    int opened = 0;
    for (; opened < n_seq && result == SP_OK; opened++) {
        int reused;
        if (kv_seq_open(kv, model_seq_cells(m->st, n_prompt + n_gen), NULL, 0, 0, &ids[opened], &reused) != SP_OK)
            result = sp_err_set(err, SP_ERR_BUSY, "KV budget too small for %d sequences", n_seq);
    }
    if (result != SP_OK)
        opened--;
    /* prefill: whole prompts, as many per batch as fit */
    double t0 = sp_now_ms();
    int per = SP_MAX(1, B / n_prompt), row = 0;
    for (int s0 = 0; s0 < n_seq && result == SP_OK && n_prompt <= B; s0 += per) {
        int n = 0, s1 = SP_MIN(n_seq, s0 + per);
        for (int s = s0; s < s1; s++)
            for (int k = 0; k < n_prompt; k++) {
                tok[n] = (int32_t)(((unsigned)(s * 131 + k) * 7919u + 13u) % (unsigned)n_vocab);
                pos[n] = k;
                seq[n] = ids[s];
                want[n++] = k == n_prompt - 1;
            }
        struct model_batch b = {n, tok, pos, seq, want};
        result = model_decode(m->st, &b, logits + (size_t)row * n_vocab, err);
        row += s1 - s0;
    }
    if (n_prompt > B && result == SP_OK)
        result = sp_err_set(err, SP_ERR_LIMIT, "prompt of %d tokens exceeds the batch of %d", n_prompt, B);
    double t1 = sp_now_ms();
    for (int s = 0; s < n_seq && result == SP_OK; s++)
        last[s] = sample_argmax(logits + (size_t)s * n_vocab, n_vocab);
    for (int g = 0; g + 1 < n_gen && result == SP_OK; g++) {
        for (int s = 0; s < n_seq; s++) {
            tok[s] = last[s];
            pos[s] = n_prompt + g;
            seq[s] = ids[s];
            want[s] = true;
        }
        struct model_batch b = {n_seq, tok, pos, seq, want};
        result = model_decode(m->st, &b, logits, err);
        for (int s = 0; s < n_seq && result == SP_OK; s++)
            last[s] = sample_argmax(logits + (size_t)s * n_vocab, n_vocab);
    }
    double t2 = sp_now_ms();
    for (int s = 0; s < opened; s++)
        kv_seq_close(kv, ids[s], false);
    pthread_mutex_unlock(&m->sched.decode_mu);
    pthread_mutex_unlock(&m->sched.mu);
    out->prefill_ms = t1 - t0;
    out->decode_ms = t2 - t1;
    out->n_decoded = (int64_t)n_seq * (n_gen - 1);
    sp_free(buf);
    sp_free(logits);
    sp_free(want);
    return result;
}
