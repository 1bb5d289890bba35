/* sched.c - the step loop of a loaded model: one thread that owns the
 * model state (shared KV cache, one thread pool) and decodes every running
 * sequence together.
 *
 * Each step: admit waiting generations in FIFO order while fewer than n_seq
 * run and the KV cache can give the sequence its whole span of cells (prefix
 * reuse from cached spans); drop cancelled ones; build one batch with the
 * next token of every decoding sequence plus chunks of the prompts being
 * prefilled, up to the step's token budget (chunked prefill, never a 1-token
 * chunk unless only one prompt token is left, so each token keeps its
 * alone-run arithmetic: docs/PARITY.md). While sequences are decoding, the
 * prompt tokens of a step are further limited so the step takes about
 * 1 + SCHED_PROMPT_SHARE times as long as a decode-only step (from the
 * measured step times: the decode-only cost a moving average kept fresh by
 * SCHED_REMEASURE_STEPS, the cost per prompt token raised at once by a
 * costlier step and lowered slowly: a long prompt arriving slows the running
 * streams' tokens by ~2x instead of freezing them, within issue 9's 3x bound
 * on the p99 gap with room for noise and the streams' growing contexts); run model_decode
 * once; then for
 * every sequence whose logits came back: sample, logprobs, detokenize, stop
 * strings, EOG / max tokens / context end, and queue an event for the
 * generation's caller (who runs the user's callback on its own thread, so a
 * slow client never stalls the loop). A finished sequence's cells stay
 * cached for prefix reuse. The loop sleeps on a condition variable when
 * nothing runs. */
#include "engine/engine_impl.h"
#include "obs/log.h"

#include <string.h>

/* While sequences decode, a step's prompt tokens may cost this many
 * decode-only steps (see the top comment). */
#define SCHED_PROMPT_SHARE 1.0
/* The cost of a decode-only step is measured again (one step without prompt
 * tokens) when the number of decoding sequences changed since it was
 * measured, and after this many steps with prompt tokens (the streams'
 * contexts grow meanwhile). With a stale, too low decode cost every prompt
 * token looked expensive: prompts arriving while streams decoded were fed 2
 * tokens a step (a 2000-token prompt beside 4 streams took 107 s instead of
 * ~6 s, and a client joining 3 others started when they had ended). */
#define SCHED_REMEASURE_STEPS 8

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

/* Queue an event (with c->emit as its text) for the caller; sched mu held. */
static enum sp_status push_event(struct engine_ctx *c, const struct engine_ev *ev)
{
    struct engine_evq *q = &c->q;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct engine_ev *ne = sp_realloc(q->ev, cap * sizeof(*ne));
        if (!ne)
            return SP_ERR_NOMEM;
        q->ev = ne;
        q->cap = cap;
    }
    struct engine_ev *e = &q->ev[q->n];
    *e = *ev;
    e->text_off = q->text.len;
    e->text_len = c->emit.len;
    if (c->emit.len && sp_buf_append(&q->text, c->emit.data, c->emit.len) != 0)
        return SP_ERR_NOMEM;
    q->n++;
    pthread_cond_broadcast(c->leader ? &c->leader->cv : &c->cv);
    return SP_OK;
}

static bool cancelled(struct engine_ctx *c)
{
    uint64_t id = atomic_load(&c->gen_id);
    if (atomic_load(&c->cancel_id) == id)
        return true;
    return c->leader && atomic_load(&c->leader->cancel_id) == atomic_load(&c->leader->gen_id); /* the group's */
}

/* End c's generation (sched mu held): flush held-back text unless it stopped
 * on a stop string or was cancelled, keep its cells cached, wake the caller. */
static void finish(struct engine_model *m, struct engine_ctx *c, enum engine_finish why, bool flush)
{
    struct engine_sched *sc = &m->sched;
    c->r.finish = why;
    if (flush && c->status == SP_OK && tok_stream_flush(&c->ts, &c->held) == SP_OK && c->held.len > 0 &&
        release(c, c->held.len) == SP_OK) {
        struct engine_ev ev;
        memset(&ev, 0, sizeof(ev));
        ev.token = -1;
        (void)push_event(c, &ev);
    }
    double now = sp_now_ms();
    c->r.decode_ms = c->t_first > 0 ? now - c->t_first : 0;
    if (c->kv_seq >= 0) {
        kv_seq_close(model_state_kv(m->st), c->kv_seq, c->status == SP_OK);
        c->kv_seq = -1;
    }
    for (int i = 0; i < sc->n_running; i++)
        if (sc->running[i] == c) {
            memmove(&sc->running[i], &sc->running[i + 1], (size_t)(sc->n_running - i - 1) * sizeof(c));
            sc->n_running--;
            break;
        }
    c->phase = ENGINE_DONE;
    pthread_cond_broadcast(c->leader ? &c->leader->cv : &c->cv);
    /* choices that never got the prompt end with it (cancelled, or its error) */
    for (int i = 0; i < c->n_followers; i++) {
        struct engine_ctx *f = c->followers[i];
        if (f->phase == ENGINE_WAITING || f->phase == ENGINE_SHARE) {
            f->status = c->status;
            f->err = c->err;
            f->r.n_prompt_tokens = c->r.n_prompt_tokens;
            finish(m, f, why, false);
        }
    }
}

/* The leader c evaluated its prompt: copy its cells into every waiting
 * choice's span and let each sample from the same logits (sched mu held). */
static void on_logits(struct engine_model *m, struct engine_ctx *c, const float *logits);
static void share_prompt(struct engine_model *m, struct engine_ctx *c, const float *logits)
{
    struct kv_cache *kv = model_state_kv(m->st);
    for (int i = 0; i < c->n_followers; i++) {
        struct engine_ctx *f = c->followers[i];
        if (f->phase != ENGINE_SHARE)
            continue;
        kv_seq_copy(kv, f->kv_seq, c->kv_seq, c->n_eval);
        f->n_eval = c->n_eval;
        f->phase = ENGINE_PREFILL;
        f->t_start = c->t_start;
        on_logits(m, f, logits);
    }
}

/* Sample from c's logits and emit the token (sched mu held). */
static void on_logits(struct engine_model *m, struct engine_ctx *c, const float *logits)
{
    const struct engine_gen_params *p = c->p;
    const int n_vocab = m->model->hp.n_vocab;
    const double now = sp_now_ms();
    if (c->phase == ENGINE_PREFILL) {
        c->r.prompt_ms = now - c->t_start;
        c->phase = ENGINE_DECODE;
    }
    const uint8_t *allow = NULL;
    if (c->gm) { /* the grammar's mask (tokens past the tokenizer's vocabulary stay 0) */
        if (grammar_mask(c->gm, c->allow) == 0) {
            finish(m, c, ENGINE_FINISH_STOP, true); /* nothing can follow: the text is as complete as it gets */
            return;
        }
        allow = c->allow;
    }
    int32_t tok = sample_token_masked(c->smp, logits, allow, c->tokens, (size_t)c->n_tokens);
    if (c->gm && !tok_is_eog(m->vocab, tok) && !grammar_accept(c->gm, tok)) {
        c->status = sp_err_set(&c->err, SP_ERR_INTERNAL, "the grammar refused the token it allowed");
        finish(m, c, ENGINE_FINISH_STOP, false);
        return;
    }
    if (c->r.n_completion_tokens == 0) {
        c->t_first = now;
        c->r.ttft_ms = now - c->t_start;
    }
    if (tok_is_eog(m->vocab, tok)) {
        finish(m, c, ENGINE_FINISH_STOP, true);
        return;
    }
    c->r.n_completion_tokens++;
    struct engine_ev ev;
    memset(&ev, 0, sizeof(ev));
    ev.token = tok;
    if (p->want_logprobs) {
        ev.logprob = sample_logprobs(logits, n_vocab, tok, c->n_top, ev.top_ids, ev.top_lp);
        ev.n_top = c->n_top;
    }
    enum sp_status result = tok_stream_push(m->vocab, &c->ts, tok, &c->held);
    bool stopped = false;
    if (result == SP_OK) {
        size_t at = stop_find(c->held.data ? c->held.data : "", c->held.len, p->stop, p->n_stop);
        if (at < c->held.len) {
            stopped = true;
            result = release(c, at);
            sp_buf_reset(&c->held);
        } else {
            result = release(c, c->held.len - stop_hold(c->held.data ? c->held.data : "", c->held.len, p->stop,
                                                         p->n_stop));
        }
    }
    if (result == SP_OK)
        result = push_event(c, &ev);
    if (result != SP_OK) {
        c->status = sp_err_set(&c->err, SP_ERR_NOMEM, "out of memory streaming text");
        finish(m, c, ENGINE_FINISH_STOP, false);
        return;
    }
    if (stopped) {
        finish(m, c, ENGINE_FINISH_STOP, false);
        return;
    }
    if (c->gm && grammar_done(c->gm)) { /* the grammar is complete and admits nothing more */
        finish(m, c, ENGINE_FINISH_STOP, true);
        return;
    }
    if ((p->max_tokens > 0 && c->r.n_completion_tokens >= p->max_tokens) || c->n_eval >= m->n_ctx) {
        finish(m, c, ENGINE_FINISH_LENGTH, true);
        return;
    }
    c->tokens[c->n_tokens++] = tok; /* evaluated by the next step */
}

/* Open the KV spans of c and its followers (cap cells each), all or none:
 * c's with prefix reuse when reuse is set (keeping >= 2 prompt tokens to
 * evaluate: a 1-token chunk would sum in another order), the followers'
 * empty (they get c's cells). On failure every span opened is given back
 * (what c took over from the cache stays cached). */
static bool open_group(struct engine_model *m, struct engine_ctx *c, int cap, bool reuse, int *id, int *reused)
{
    struct kv_cache *kv = model_state_kv(m->st);
    if (kv_seq_open(kv, cap, reuse ? c->tokens : NULL, reuse ? c->n_prompt : 0, reuse ? c->n_prompt - 2 : 0, id,
                    reused) != SP_OK)
        return false;
    int k = 0;
    for (; k < c->n_followers; k++) {
        int fid, fr;
        if (kv_seq_open(kv, cap, NULL, 0, 0, &fid, &fr) != SP_OK)
            break;
        c->followers[k]->kv_seq = fid;
    }
    if (k == c->n_followers)
        return true;
    while (k-- > 0) {
        kv_seq_close(kv, c->followers[k]->kv_seq, false);
        c->followers[k]->kv_seq = -1;
    }
    kv_seq_close(kv, *id, *reused > 0);
    return false;
}

/* Admit waiting generations while sequences and cells allow (sched mu held). */
static void admit_waiting(struct engine_model *m)
{
    struct engine_sched *sc = &m->sched;
    while (sc->wait_head && sc->n_running < m->n_seq) {
        struct engine_ctx *c = sc->wait_head;
        if (cancelled(c)) {
            sc->wait_head = c->next_wait;
            if (!sc->wait_head)
                sc->wait_tail = NULL;
            finish(m, c, ENGINE_FINISH_CANCELLED, false);
            continue;
        }
        const int max_tok = c->p->max_tokens > 0 ? c->p->max_tokens : m->n_ctx;
        const int need = (int)SP_MIN((int64_t)m->n_ctx, (int64_t)c->n_prompt + max_tok);
        if (sc->n_running + 1 + c->n_followers > m->n_seq)
            break; /* n choices start together */
        int id, reused;
        /* with prefix reuse; then (n choices whose spans did not all fit around
         * the reused one) without, so cached spans can be evicted and packed */
        if (!open_group(m, c, model_seq_cells(m->st, need), true, &id, &reused) &&
            (!c->n_followers || !open_group(m, c, model_seq_cells(m->st, need), false, &id, &reused)))
            break; /* no room: wait until a running sequence ends */
        sc->wait_head = c->next_wait;
        if (!sc->wait_head)
            sc->wait_tail = NULL;
        c->kv_seq = id;
        c->n_reused = reused;
        c->n_eval = reused;
        c->r.n_cached_tokens = reused;
        c->phase = ENGINE_PREFILL;
        sc->running[sc->n_running++] = c;
        for (int k = 0; k < c->n_followers; k++) {
            c->followers[k]->phase = ENGINE_SHARE;
            sc->running[sc->n_running++] = c->followers[k];
        }
    }
}

/* One step: build the batch, decode, hand out the logits. Returns false when
 * nothing ran. Called with sched mu held; releases it around the decode. */
static bool step(struct engine_model *m)
{
    struct engine_sched *sc = &m->sched;
    admit_waiting(m);
    for (int i = 0; i < sc->n_running;) {
        struct engine_ctx *c = sc->running[i];
        if (cancelled(c))
            finish(m, c, ENGINE_FINISH_CANCELLED, false);
        else
            i++;
    }
    if (sc->n_running == 0)
        return false;
    const int B = model_state_n_batch(m->st);
    int nb = 0;
    for (int i = 0; i < sc->n_running; i++) {
        struct engine_ctx *c = sc->running[i];
        if (c->phase != ENGINE_DECODE)
            continue;
        sc->tok[nb] = c->tokens[c->n_tokens - 1];
        sc->pos[nb] = c->n_eval;
        sc->seq[nb] = c->kv_seq;
        sc->want[nb] = true;
        sc->who[nb++] = c;
    }
    const int n_decode = nb;
    int budget = SP_MIN(B, SP_MAX(sc->step_tokens, nb + 2));
    if (n_decode > 0 && (sc->ms_decode_n != n_decode || sc->mixed_steps >= SCHED_REMEASURE_STEPS))
        budget = nb; /* a decode-only step: measure its cost (see SCHED_REMEASURE_STEPS) */
    else if (n_decode > 0 && sc->ms_decode > 0 && sc->ms_prompt_tok > 0) {
        double fit = SCHED_PROMPT_SHARE * sc->ms_decode / sc->ms_prompt_tok;
        budget = (int)SP_MIN((double)budget, (double)nb + SP_MAX(2.0, fit));
    }
    for (int i = 0; i < sc->n_running && nb < budget; i++) {
        struct engine_ctx *c = sc->running[i];
        if (c->phase != ENGINE_PREFILL)
            continue;
        int left = c->n_prompt - c->n_eval, n = SP_MIN(left, budget - nb);
        if (left - n == 1)
            n--; /* never leave a single token for later */
        if (n < 2 && left >= 2)
            continue;
        for (int k = 0; k < n; k++) {
            sc->tok[nb] = c->tokens[c->n_eval + k];
            sc->pos[nb] = c->n_eval + k;
            sc->seq[nb] = c->kv_seq;
            sc->want[nb] = c->n_eval + k == c->n_prompt - 1;
            sc->who[nb++] = c;
        }
    }
    if (nb == 0)
        return false;
    sc->max_step_seqs = SP_MAX(sc->max_step_seqs, sc->n_running);
    sc->prompt_evaluated += nb - n_decode;
    pthread_mutex_unlock(&sc->mu);
    struct model_batch b = {nb, sc->tok, sc->pos, sc->seq, sc->want};
    struct sp_err err;
    sp_err_clear(&err);
    pthread_mutex_lock(&sc->decode_mu);
    const double t0 = sp_now_ms();
    enum sp_status st = model_decode(m->st, &b, sc->logits, &err);
    const double ms = sp_now_ms() - t0;
    pthread_mutex_unlock(&sc->decode_mu);
    pthread_mutex_lock(&sc->mu);
    if (nb == n_decode) { /* step cost model: decode-only time, extra per prompt token */
        sc->ms_decode = sc->ms_decode > 0 && sc->ms_decode_n == n_decode ? 0.8 * sc->ms_decode + 0.2 * ms : ms;
        sc->ms_decode_n = n_decode;
        sc->mixed_steps = 0;
    } else if (sc->ms_decode > 0 || n_decode == 0) {
        sc->mixed_steps += n_decode > 0;
        double per = SP_MAX(0.0, ms - (n_decode ? sc->ms_decode : 0)) / (nb - n_decode);
        /* up at once, down slowly: a long prompt's tokens cost more as its
         * attention grows, and a cost seen too low makes the next step long */
        sc->ms_prompt_tok = sc->ms_prompt_tok > 0 ? SP_MAX(per, 0.7 * sc->ms_prompt_tok + 0.3 * per) : per;
    }
    const int n_vocab = m->model->hp.n_vocab;
    int row = 0;
    for (int k = 0; k < nb; k++) {
        struct engine_ctx *c = sc->who[k];
        if (st == SP_OK)
            c->n_eval = sc->pos[k] + 1;
        if (!sc->want[k])
            continue;
        if (st != SP_OK) {
            c->status = st;
            c->err = err;
            finish(m, c, ENGINE_FINISH_STOP, false);
            continue;
        }
        if (c->phase == ENGINE_PREFILL && c->n_followers)
            share_prompt(m, c, sc->logits + (size_t)row * n_vocab); /* before c's own token can end it */
        on_logits(m, c, sc->logits + (size_t)row++ * n_vocab);
    }
    if (st != SP_OK) /* sequences that only had a prompt chunk in the batch */
        for (int i = 0; i < sc->n_running;) {
            struct engine_ctx *c = sc->running[i];
            c->status = st;
            c->err = err;
            finish(m, c, ENGINE_FINISH_STOP, false);
        }
    return true;
}

static void *sched_main(void *arg)
{
    struct engine_model *m = arg;
    struct engine_sched *sc = &m->sched;
    pthread_mutex_lock(&sc->mu);
    while (!sc->stop) {
        if (!step(m))
            sp_cond_wait_ms(&sc->cv, &sc->mu, 1000);
    }
    pthread_mutex_unlock(&sc->mu);
    return NULL;
}

enum sp_status engine_sched_start(struct engine_model *m, struct sp_err *err)
{
    struct engine_sched *sc = &m->sched;
    const int B = model_state_n_batch(m->st);
    const size_t nv = (size_t)m->model->hp.n_vocab;
    sc->running = sp_calloc((size_t)m->n_seq, sizeof(*sc->running));
    sc->tok = sp_calloc((size_t)B * 3, sizeof(int32_t));
    sc->want = sp_calloc((size_t)B, sizeof(bool));
    sc->who = sp_calloc((size_t)B, sizeof(*sc->who));
    sc->logits = sp_calloc((size_t)m->n_seq * nv, sizeof(float));
    if (!sc->running || !sc->tok || !sc->want || !sc->who || !sc->logits)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating the step loop");
    sc->pos = sc->tok + B;
    sc->seq = sc->pos + B;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_mutex_init(&sc->decode_mu, NULL);
    pthread_cond_init(&sc->cv, NULL);
    if (pthread_create(&sc->thread, NULL, sched_main, m) != 0) {
        pthread_cond_destroy(&sc->cv);
        pthread_mutex_destroy(&sc->decode_mu);
        pthread_mutex_destroy(&sc->mu);
        return sp_err_set(err, SP_ERR_INTERNAL, "cannot start the step loop thread");
    }
    sc->started = true;
    return SP_OK;
}

void engine_sched_stop(struct engine_model *m)
{
    struct engine_sched *sc = &m->sched;
    if (sc->started) {
        pthread_mutex_lock(&sc->mu);
        sc->stop = true;
        pthread_cond_broadcast(&sc->cv);
        pthread_mutex_unlock(&sc->mu);
        pthread_join(sc->thread, NULL);
        pthread_cond_destroy(&sc->cv);
        pthread_mutex_destroy(&sc->decode_mu);
        pthread_mutex_destroy(&sc->mu);
        sc->started = false;
    }
    sp_free(sc->running);
    sp_free(sc->tok);
    sp_free(sc->want);
    sp_free(sc->who);
    sp_free(sc->logits);
    memset(sc, 0, sizeof(*sc));
}

void engine_sched_submit(struct engine_model *m, struct engine_ctx *c)
{
    struct engine_sched *sc = &m->sched;
    c->phase = ENGINE_WAITING;
    c->next_wait = NULL;
    if (sc->wait_tail)
        sc->wait_tail->next_wait = c;
    else
        sc->wait_head = c;
    sc->wait_tail = c;
    pthread_cond_broadcast(&sc->cv);
}
