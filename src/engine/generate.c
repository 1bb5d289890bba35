/* generate.c - the generation loop of an engine_ctx, and the benchmark
 * helpers behind `spoke bench`.
 *
 * engine_generate: tokenize; keep the longest cached prefix of the previous
 * prompt; prefill the rest in batches; then sample / stream / evaluate one
 * token per step. Text goes through the streaming detokenizer into `held`;
 * after each token, a stop string found in `held` ends generation (the text
 * before it is released), otherwise everything except the longest suffix
 * that could start a stop string is released to the callback. Cancellation
 * (engine_ctx_cancel or the callback returning false) is checked every step. */
#include "engine/engine_impl.h"
#include "obs/log.h"

#include <string.h>

/* Longest suffix of s[0..n) that is a proper prefix of some stop string. */
static size_t stop_hold(const char *s, size_t n, const char *const *stop, size_t n_stop)
{
    size_t hold = 0;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = stop[i] ? strlen(stop[i]) : 0;
        for (size_t k = SP_MIN(n, sl ? sl - 1 : 0); k > hold; k--) {
            if (memcmp(s + n - k, stop[i], k) == 0) {
                hold = k;
                break;
            }
        }
    }
    return hold;
}

/* Earliest occurrence of any stop string in s[0..n); n if none. */
static size_t stop_find(const char *s, size_t n, const char *const *stop, size_t n_stop)
{
    size_t best = n;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = stop[i] ? strlen(stop[i]) : 0;
        if (sl == 0 || sl > n)
            continue;
        for (size_t p = 0; p + sl <= n && p < best; p++)
            if (s[p] == stop[i][0] && memcmp(s + p, stop[i], sl) == 0) {
                best = p;
                break;
            }
    }
    return best;
}

/* Move the first n bytes of held into emit. */
static enum sp_status release(struct engine_ctx *c, size_t n)
{
    sp_buf_reset(&c->emit);
    if (n == 0)
        return SP_OK;
    int rc = sp_buf_append(&c->emit, c->held.data, n);
    if (rc != SP_OK)
        return (enum sp_status)rc;
    memmove(c->held.data, c->held.data + n, c->held.len - n);
    c->held.len -= n;
    c->held.data[c->held.len] = 0;
    return SP_OK;
}

static enum sp_status eval_tokens(struct engine_ctx *c, const int32_t *toks, int n, int pos0, struct sp_err *err)
{
    int nb = model_state_n_batch(c->st);
    for (int i = 0; i < n; i += nb) {
        int cnt = SP_MIN(nb, n - i);
        enum sp_status result = model_eval(c->st, toks + i, cnt, pos0 + i, i + cnt == n ? c->logits : NULL, err);
        if (result != SP_OK)
            return result;
    }
    return SP_OK;
}

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
}

enum sp_status engine_generate(struct engine_ctx *c, const struct engine_gen_params *p, engine_token_cb cb,
                               void *userdata, struct engine_gen_result *res, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    const struct engine_model *m = c->m;
    const int n_ctx = m->n_ctx;
    const double t_start = sp_now_ms();
    struct engine_gen_result r;
    memset(&r, 0, sizeof(r));
    r.finish = ENGINE_FINISH_STOP;
    if (res)
        *res = r;
    const uint64_t my_id = atomic_fetch_add(&c->gen_id, 1) + 1;
    sp_buf_reset(&c->held);
    sp_buf_reset(&c->emit);
    if (!p || !p->prompt)
        return sp_err_set(err, SP_ERR_INVALID, "no prompt given");

    /* tokenize */
    size_t n_prompt = 0;
    result = tok_encode(m->vocab, p->prompt, strlen(p->prompt), p->add_bos, p->parse_special, c->prompt,
                        (size_t)n_ctx, &n_prompt, err);
    if (result == SP_ERR_LIMIT || (result == SP_OK && n_prompt >= (size_t)n_ctx))
        return sp_err_set(err, SP_ERR_LIMIT, "prompt has %zu tokens, context is %d", n_prompt, n_ctx);
    if (result != SP_OK)
        return result;
    if (n_prompt == 0)
        return sp_err_set(err, SP_ERR_INVALID, "the prompt is empty (no tokens)");
    r.n_prompt_tokens = (int)n_prompt;

    /* reuse the cached prefix */
    int keep = 0;
    while (keep < c->n_tokens && (size_t)keep < n_prompt - 1 && c->tokens[keep] == c->prompt[keep])
        keep++;
    c->n_tokens = keep;
    result = eval_tokens(c, c->prompt + keep, (int)n_prompt - keep, keep, err);
    if (result != SP_OK) {
        c->n_tokens = 0;
        return result;
    }
    memcpy(c->tokens + keep, c->prompt + keep, (n_prompt - (size_t)keep) * sizeof(int32_t));
    c->n_tokens = (int)n_prompt;
    const double t_prompt = sp_now_ms();
    r.prompt_ms = t_prompt - t_start;
    LOG_DEBUG("engine", "prompt %zu tokens (%d reused) in %.1f ms", n_prompt, keep, r.prompt_ms);

    struct sample_params sprm;
    to_sample_params(&p->sampling, &sprm);
    sample_reset(c->smp, &sprm);
    struct tok_stream ts;
    tok_stream_init(&ts);
    const int n_vocab = m->model->hp.n_vocab;
    const int n_top = p->want_logprobs ? SP_MAX(0, SP_MIN(p->n_top_logprobs, 20)) : 0;
    double t_first = 0;
    bool stopped = false;
    for (;;) {
        if (atomic_load(&c->cancel_id) == my_id) {
            r.finish = ENGINE_FINISH_CANCELLED;
            break;
        }
        int32_t tok = sample_token(c->smp, c->logits, c->tokens, (size_t)c->n_tokens);
        if (r.n_completion_tokens == 0) {
            t_first = sp_now_ms();
            r.ttft_ms = t_first - t_start;
        }
        if (tok_is_eog(m->vocab, tok)) {
            r.finish = ENGINE_FINISH_STOP;
            break;
        }
        r.n_completion_tokens++;
        struct engine_token_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.token = tok;
        if (p->want_logprobs) {
            ev.logprob = sample_logprobs(c->logits, n_vocab, tok, n_top, c->top_ids, c->top_lp);
            ev.n_top = n_top;
            ev.top_tokens = c->top_ids;
            ev.top_logprobs = c->top_lp;
        }
        if ((result = tok_stream_push(m->vocab, &ts, tok, &c->held)) != SP_OK) {
            sp_err_set(err, result, "out of memory decoding text");
            goto done;
        }
        size_t at = stop_find(c->held.data ? c->held.data : "", c->held.len, p->stop, p->n_stop);
        if (at < c->held.len) {
            stopped = true;
            result = release(c, at);
            sp_buf_reset(&c->held);
        } else {
            result = release(c, c->held.len - stop_hold(c->held.data ? c->held.data : "", c->held.len, p->stop,
                                                         p->n_stop));
        }
        if (result != SP_OK) {
            sp_err_set(err, result, "out of memory streaming text");
            goto done;
        }
        ev.text = c->emit.data ? c->emit.data : "";
        ev.text_len = c->emit.len;
        if (cb && !cb(userdata, &ev)) {
            r.finish = ENGINE_FINISH_CANCELLED;
            break;
        }
        if (stopped) {
            r.finish = ENGINE_FINISH_STOP;
            break;
        }
        if ((p->max_tokens > 0 && r.n_completion_tokens >= p->max_tokens) || c->n_tokens >= n_ctx) {
            r.finish = ENGINE_FINISH_LENGTH;
            break;
        }
        if ((result = eval_tokens(c, &tok, 1, c->n_tokens, err)) != SP_OK) {
            c->n_tokens = 0;
            goto done;
        }
        c->tokens[c->n_tokens++] = tok;
    }
    /* flush held-back text (not after a stop string or a cancel) */
    if (!stopped && r.finish != ENGINE_FINISH_CANCELLED) {
        if (tok_stream_flush(&ts, &c->held) == SP_OK && c->held.len > 0 && release(c, c->held.len) == SP_OK &&
            cb) {
            struct engine_token_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.token = -1;
            ev.text = c->emit.data ? c->emit.data : "";
            ev.text_len = c->emit.len;
            (void)cb(userdata, &ev);
        }
    }
    result = SP_OK;
done:;
    double t_end = sp_now_ms();
    r.decode_ms = t_first > 0 ? t_end - t_first : 0;
    if (res)
        *res = r;
    return result;
}

enum sp_status engine_bench_prefill(struct engine_ctx *c, int n_tokens, double *ms, struct sp_err *err)
{
    *ms = 0;
    if (n_tokens < 1 || n_tokens >= c->m->n_ctx)
        return sp_err_set(err, SP_ERR_LIMIT, "cannot prefill %d tokens with context %d", n_tokens, c->m->n_ctx);
    const int n_vocab = c->m->model->hp.n_vocab;
    for (int i = 0; i < n_tokens; i++)
        c->prompt[i] = (int32_t)((i * 7919u + 13u) % (unsigned)n_vocab);
    c->n_tokens = 0;
    double t0 = sp_now_ms();
    enum sp_status result = eval_tokens(c, c->prompt, n_tokens, 0, err);
    *ms = sp_now_ms() - t0;
    return result;
}

enum sp_status engine_bench_decode(struct engine_ctx *c, int n_tokens, double *ms, struct sp_err *err)
{
    *ms = 0;
    if (n_tokens < 1 || n_tokens >= c->m->n_ctx)
        return sp_err_set(err, SP_ERR_LIMIT, "cannot decode %d tokens with context %d", n_tokens, c->m->n_ctx);
    c->n_tokens = 0;
    int32_t tok = 1 % c->m->model->hp.n_vocab;
    double t0 = sp_now_ms();
    for (int i = 0; i < n_tokens; i++) {
        enum sp_status result = eval_tokens(c, &tok, 1, i, err);
        if (result != SP_OK)
            return result;
        tok = sample_argmax(c->logits, c->m->model->hp.n_vocab);
    }
    *ms = sp_now_ms() - t0;
    return SP_OK;
}
