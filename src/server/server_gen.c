/* server_gen.c - POST /v1/chat/completions and /v1/completions: request
 * validation (server_req.c), model lookup / lazy load, prompt rendering and
 * the prompt-vs-context check, admission (429 at once when the queue is
 * full), then generation:
 *  - non-streaming: engine_generate_n (n choices of one prompt, n slots
 *    taken together) runs on the connection's own thread; the
 *    token callback polls the client socket so a disconnect cancels within a
 *    decode step; the JSON body is built at the end;
 *  - streaming: a worker thread runs engine_generate and appends SSE events
 *    to a buffer that the microhttpd content-reader callback drains (it may
 *    block: thread-per-connection). The worker polls the socket too; the
 *    response's free callback cancels and joins the worker.
 * Either way the slot is released, metrics updated and an ai_completion
 * span recorded when the generation ends. The JSON it sends is built by
 * server_gen_json.c. */
#include "server/server_int.h"
#include "server/server_gen.h"
#include "obs/log.h"
#include "tok/tok.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SSE_HIGH_WATER (256u << 10) /* worker pauses when the client lags this far */

/* With j->mu held: wait while the client lags more than SSE_HIGH_WATER bytes
 * behind, unless the job is cancelled or the server shuts down. */
static void sse_wait_room(struct gen_job *j)
{
    /* the reader drains whenever microhttpd can write; waiting longer than
     * write_timeout_s means the client stopped reading: give up the slot */
    double deadline = sp_now_ms() + (double)j->s->opts.limits.write_timeout_s * 1000.0;
    while (j->out.len - j->out_off > SSE_HIGH_WATER && !atomic_load(&j->cancel) &&
           !atomic_load(&j->s->shutting_down)) {
        size_t before = j->out_off;
        sp_cond_wait_ms(&j->cv, &j->mu, 100);
        if (j->out_off != before || j->out.len - j->out_off <= SSE_HIGH_WATER)
            deadline = sp_now_ms() + (double)j->s->opts.limits.write_timeout_s * 1000.0;
        else if (sp_now_ms() > deadline) {
            j->stalled = true;
            atomic_store(&j->cancel, true);
            LOG_INFO("server", "stream %s: the client read nothing for %u s; cancelled", j->id,
                     j->s->opts.limits.write_timeout_s);
        }
    }
}

/* Queue stream bytes for the client (waits while it lags too far behind). */
static void push_bytes(struct gen_job *j, const struct sp_buf *b)
{
    pthread_mutex_lock(&j->mu);
    sse_wait_room(j);
    if (sp_buf_append(&j->out, b->data, b->len) != 0)
        atomic_store(&j->cancel, true);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void sse_push(struct gen_job *j, json_t *payload)
{
    struct sp_buf b = {0};
    if (sp_buf_appends(&b, "data: ") || gen_append_json(&b, payload) || sp_buf_appends(&b, "\n\n")) {
        sp_buf_free(&b);
        return;
    }
    push_bytes(j, &b);
    sp_buf_free(&b);
}

static void view_of(const struct gen_job *j, struct srv_gen_view *v)
{
    *v = (struct srv_gen_view){j->m->spec.name, j->text[0].data ? j->text[0].data : "", j->text[0].len, &j->res,
                               sp_now_ms() - j->t_start, j->load_ms, &j->req, j->id, j->created};
}

/* One streamed piece of text in the dialect's format. */
static void dialect_push_text(struct gen_job *j, const char *text, size_t len)
{
    struct srv_gen_view v;
    struct sp_buf b = {0};
    view_of(j, &v);
    if (j->d->chunk(&v, text, len, &b) == 0)
        push_bytes(j, &b);
    else
        atomic_store(&j->cancel, true);
    sp_buf_free(&b);
}

/* Pre-render everything of a content chunk up to the text (fast path for
 * streams without logprobs: no JSON tree per token). */
static void prepare_head(struct gen_job *j)
{
    int rc = sp_buf_printf(&j->head, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":\"", j->id,
                           j->req.chat ? "chat.completion.chunk" : "text_completion", (long long)j->created);
    if (!rc)
        rc = srv_json_escape(&j->head, j->m->spec.name, strlen(j->m->spec.name));
    if (!rc)
        rc = sp_buf_appends(&j->head, j->req.chat ? "\",\"system_fingerprint\":\"spoke\",\"choices\":[{\"index\":"
                                                  : "\",\"system_fingerprint\":\"spoke\",\"choices\":[{\"text\":\"");
    if (rc)
        sp_buf_free(&j->head);
}

static bool push_text_fast(struct gen_job *j, int index, const char *text, size_t len, bool first)
{
    struct sp_buf b = {0};
    int rc = sp_buf_append(&b, j->head.data, j->head.len);
    if (!rc && j->req.chat)
        rc = sp_buf_printf(&b, "%d,\"delta\":{%s", index, first ? "\"role\":\"assistant\",\"content\":\""
                                                                : "\"content\":\"");
    if (!rc)
        rc = srv_json_escape(&b, text, len);
    if (!rc && j->req.chat)
        rc = sp_buf_appends(&b, "\"},\"logprobs\":null,\"finish_reason\":null}]");
    else if (!rc)
        rc = sp_buf_printf(&b, "\",\"index\":%d,\"logprobs\":null,\"finish_reason\":null}]", index);
    if (!rc)
        rc = sp_buf_appends(&b, j->req.include_usage ? ",\"usage\":null}\n\n" : "}\n\n");
    if (rc) {
        sp_buf_free(&b);
        return false;
    }
    pthread_mutex_lock(&j->mu);
    sse_wait_room(j);
    bool was_empty = j->out.len == j->out_off;
    rc = sp_buf_append(&j->out, b.data, b.len);
    if (was_empty)
        pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    sp_buf_free(&b);
    return rc == 0;
}

static bool on_token(void *ud, const struct engine_token_event *ev)
{
    struct gen_job *j = ud;
    double now = sp_now_ms();
    if (!atomic_load(&j->gen_id))
        atomic_store(&j->gen_id, engine_ctx_generation_id(j->ctx));
    if (ev->token >= 0) {
        if (!j->got_first) {
            j->got_first = true;
            metric_observe(j->m->m.ttft_s, (now - j->t_start) / 1000.0);
        } else {
            metric_observe(j->m->m.inter_token_s, (now - j->t_last) / 1000.0);
        }
        j->t_last = now;
    }
    json_t *chunk_lp = NULL;
    if (j->gp.want_logprobs && ev->token >= 0) {
        if (j->req.stream)
            chunk_lp = j->req.chat ? json_array() : gen_lp_object();
        gen_add_logprobs(j, ev, chunk_lp);
    }
    const int ci = ev->index;
    if (ev->text_len && sp_buf_append(&j->text[ci], ev->text, ev->text_len) != 0) {
        json_decref(chunk_lp);
        return false;
    }
    if (j->d && j->req.stream) {
        json_decref(chunk_lp);
        if (ev->text_len)
            dialect_push_text(j, ev->text, ev->text_len);
    } else if (j->req.stream && ev->text_len && !chunk_lp && j->head.data) {
        if (!push_text_fast(j, ci, ev->text, ev->text_len, j->n_events[ci] == 0))
            atomic_store(&j->cancel, true);
        j->n_events[ci]++;
    } else if (j->req.stream && (ev->text_len || chunk_lp)) {
        sse_push(j, gen_chunk_json(j, ci, ev->text, ev->text_len, j->n_events[ci] == 0, NULL, chunk_lp));
        j->n_events[ci]++;
    } else {
        json_decref(chunk_lp);
    }
    if (j->s->test_delay_ms)
        sp_sleep_ms((uint64_t)j->s->test_delay_ms);
    if (atomic_load(&j->cancel))
        return false;
    if (now - j->last_poll_ms >= 1.0 || j->s->test_delay_ms) {
        j->last_poll_ms = now;
        if (srv_client_gone(j->cc, !j->req.stream)) { /* a stream's socket is written by microhttpd's thread */
            j->client_gone = true;
            return false;
        }
    }
    return true;
}

static bool waiter_gone(void *ud) { return srv_client_gone(ud, true); }

/* End of a generation that held a slot: release it, metrics, span. */
static void job_finish(struct gen_job *j, unsigned status)
{
    struct srv_model *m = j->m;
    for (int i = 0; i < SERVER_MAX_N; i++) {
        admit_release(m->admit, j->slot[i]); /* NULL is a no-op */
        j->slot[i] = NULL;
    }
    double dur = sp_now_ms() - j->t_start;
    bool ok = j->st == SP_OK && j->res.finish != ENGINE_FINISH_CANCELLED;
    metric_add(m->m.prompt_tokens, j->res.n_prompt_tokens);
    metric_add(m->m.completion_tokens, j->res.n_completion_tokens);
    metric_add(m->m.cached_tokens, j->res.n_cached_tokens);
    metric_observe(m->m.duration_ms, dur);
    if (j->res.n_completion_tokens > 1 && j->res.decode_ms > 0)
        metric_observe(m->m.tps, (j->res.n_completion_tokens - 1) * 1000.0 / j->res.decode_ms);
    if (!ok)
        metric_inc(m->m.failures);
    struct sp_buf labels = {0};
    const char *err = NULL;
    if (j->st != SP_OK)
        err = j->err.msg[0] ? j->err.msg : sp_status_name(j->st);
    else if (j->res.finish == ENGINE_FINISH_CANCELLED)
        err = j->client_gone ? "cancelled: client disconnected"
              : j->stalled   ? "cancelled: client stopped reading the stream"
              : atomic_load(&j->s->shutting_down) ? "cancelled: server shutting down"
                                                  : "cancelled";
    gen_labels(j, ok ? status : (j->client_gone ? 499 : status), ok ? gen_finish_name(j->res.finish) : NULL, &labels);
    srv_span(j->s, "ai_completion", j->input, j->text[0].data ? j->text[0].data : "", j->start_wall_ms, dur, err,
             labels.data);
    sp_buf_free(&labels);
}

static void job_free(struct gen_job *j)
{
    if (!j)
        return;
    srv_model_leave(j->model_held ? j->m : NULL);
    server_request_free(&j->req);
    sp_free(j->prompt);
    sp_free(j->spans);
    sp_free(j->input);
    sp_free(j->stop);
    for (int i = 0; i < SERVER_MAX_N; i++) {
        sp_buf_free(&j->text[i]);
        json_decref(j->lp[i]);
    }
    sp_buf_free(&j->out);
    sp_buf_free(&j->head);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    sp_free(j);
}

static void job_unref(struct gen_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1)
        job_free(j);
}

/* Generate every choice (one prompt evaluation, engine_generate_n); j->res
 * is the request's total: the prompt once, completion tokens summed. */
static void run_gen(struct gen_job *j)
{
    j->st = engine_generate_n(j->ctxs, j->n, &j->gp, on_token, j, j->cres, &j->err);
    j->res = j->cres[0];
    for (int i = 1; i < j->n; i++) {
        j->res.n_completion_tokens += j->cres[i].n_completion_tokens;
        j->res.decode_ms = SP_MAX(j->res.decode_ms, j->cres[i].decode_ms);
        if (j->cres[i].finish == ENGINE_FINISH_CANCELLED)
            j->res.finish = ENGINE_FINISH_CANCELLED;
    }
}

/* ---- streaming */

static void *stream_worker(void *arg)
{
    struct gen_job *j = arg;
    sp_err_clear(&j->err);
    run_gen(j);
    if (j->d) {
        struct srv_gen_view v;
        struct sp_buf b = {0};
        view_of(j, &v);
        int rc = 0;
        if (j->st != SP_OK)
            rc = j->d->stream_error(j->err.msg[0] ? j->err.msg : sp_status_name(j->st), &b);
        else if (j->res.finish != ENGINE_FINISH_CANCELLED)
            rc = j->d->end(&v, true, &b);
        else if (!j->client_gone && !j->stalled && atomic_load(&j->s->shutting_down))
            rc = j->d->stream_error("the server is shutting down; the generation was cut short", &b);
        if (rc == 0 && b.len)
            push_bytes(j, &b);
        sp_buf_free(&b);
    } else if (j->st == SP_OK && j->res.finish != ENGINE_FINISH_CANCELLED) {
        for (int i = 0; i < j->n; i++) /* each choice's last chunk carries its finish_reason */
            sse_push(j, gen_chunk_json(j, i, NULL, 0, j->n_events[i] == 0, gen_finish_name(j->cres[i].finish), NULL));
        if (j->req.include_usage) {
            json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:o}", "id", j->id, "object",
                                  j->req.chat ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)j->created, "model", j->m->spec.name, "system_fingerprint", "spoke",
                                  "choices", "usage", gen_usage_json(j));
            sse_push(j, u);
        }
    } else if (j->st != SP_OK) {
        sse_push(j, json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message",
                              j->err.msg[0] ? j->err.msg : sp_status_name(j->st), "type", "server_error", "param",
                              "code", sp_status_name(j->st)));
    } else if (!j->client_gone && !j->stalled && atomic_load(&j->s->shutting_down)) {
        /* SIGTERM: end the stream properly (an error event, then [DONE]) */
        sse_push(j, json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message",
                              "the server is shutting down; the generation was cut short", "type", "server_error",
                              "param", "code", "shutting_down"));
    }
    job_finish(j, 200);
    pthread_mutex_lock(&j->mu);
    if (!j->d && (j->st == SP_OK || !atomic_load(&j->cancel)))
        if (sp_buf_appends(&j->out, "data: [DONE]\n\n") != 0)
            LOG_WARN("server", "could not queue [DONE]");
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    SP_UNUSED(pos);
    struct gen_job *j = cls;
    pthread_mutex_lock(&j->mu);
    while (j->out.len == j->out_off && !j->done)
        sp_cond_wait_ms(&j->cv, &j->mu, 1000);
    size_t avail = j->out.len - j->out_off;
    ssize_t n;
    if (avail > 0 && j->conn) {
        /* The wait above is the generation's, not the client's: a tool call
         * held back until whole or a slow model leaves gaps past
         * limits.timeout_s, and microhttpd counts them as idle time and cut
         * the stream (the client read IncompleteRead). Restart its timer
         * (setting a timeout after 0 does; we are on the connection's own
         * thread). A client that stops reading is never asked for more, so
         * its idle timeout still runs, and write_timeout_s frees its slot. */
        MHD_set_connection_option(j->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        MHD_set_connection_option(j->conn, MHD_CONNECTION_OPTION_TIMEOUT, j->s->opts.limits.conn_timeout_s);
    }
    if (avail == 0) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        size_t k = SP_MIN(avail, max);
        memcpy(buf, j->out.data + j->out_off, k);
        j->out_off += k;
        if (j->out_off == j->out.len) {
            sp_buf_reset(&j->out);
            j->out_off = 0;
        }
        n = (ssize_t)k;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void stream_free(void *cls)
{
    struct gen_job *j = cls;
    atomic_store(&j->cancel, true);
    /* By now the job may have finished and its ctx serve another request:
     * cancel only this job's own generation, never whatever runs there now. */
    uint64_t gen = atomic_load(&j->gen_id);
    if (j->ctx && gen)
        engine_ctx_cancel_id(j->ctx, gen);
    pthread_mutex_lock(&j->mu);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->th_started)
        pthread_join(j->th, NULL);
    if (j->counted_stream)
        atomic_fetch_sub(&j->s->streams, 1);
    job_unref(j);
}

/* ---- request handling */

static enum MHD_Result gen_error(const struct gen_job *j, struct MHD_Connection *c, unsigned status,
                                 const char *msg, const char *param, const char *code, const char *retry_after)
{
    return (j->d ? j->d->error : srv_error)(c, status, msg, param, code, retry_after);
}

static enum MHD_Result reject(struct gen_job *j, struct MHD_Connection *c, unsigned status, const char *msg,
                              const char *param, const char *code, const char *retry_after)
{
    if (j->m) {
        metric_inc(j->m->m.failures);
        if (status == 429)
            metric_inc(j->m->m.rejected);
    }
    struct sp_buf labels = {0};
    gen_labels(j, status, NULL, &labels);
    srv_span(j->s, "ai_completion", j->input, NULL, j->start_wall_ms, sp_now_ms() - j->t_start, msg, labels.data);
    sp_buf_free(&labels);
    return gen_error(j, c, status, msg, param, code, retry_after);
}

static enum sp_status build_prompt(struct gen_job *j, struct sp_err *err)
{
    return srv_chat_prompt(j->m->em, &j->req, &j->prompt, &j->spans, &j->n_spans, err);
}

static enum MHD_Result respond_full(struct gen_job *j, struct MHD_Connection *c)
{
    if (j->d) {
        struct srv_gen_view v;
        struct sp_buf db = {0};
        enum MHD_Result dret;
        view_of(j, &v);
        if (j->d->end(&v, false, &db) == 0)
            dret = srv_respond(c, 200, "application/json", db.data, db.len, NULL);
        else
            dret = gen_error(j, c, 500, "out of memory building the response", NULL, NULL, NULL);
        sp_buf_free(&db);
        return dret;
    }
    json_t *resp = gen_response_json(j);
    struct sp_buf b = {0};
    enum MHD_Result ret;
    if (gen_append_json(&b, resp) == 0)
        ret = srv_respond(c, 200, "application/json", b.data, b.len, NULL);
    else
        ret = srv_error(c, 500, "out of memory building the response", NULL, NULL, NULL);
    sp_buf_free(&b);
    return ret;
}

enum MHD_Result srv_handle_completion(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool chat)
{
    return srv_generate(s, c, cc, chat, NULL);
}

enum MHD_Result srv_generate(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool chat,
                             const struct srv_dialect *d)
{
    struct gen_job *j = sp_calloc(1, sizeof *j);
    if (!j)
        return (d ? d->error : srv_error)(c, 500, "out of memory", NULL, NULL, NULL);
    j->d = d;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    atomic_init(&j->refs, 1);
    j->s = s;
    j->fd = cc->fd;
    j->cc = cc;
    j->t_start = cc->start_ms;
    j->start_wall_ms = cc->start_wall_ms;
    j->created = (int64_t)time(NULL);
    for (int i = 0; i < SERVER_MAX_N; i++)
        j->text[i].limit = 64u << 20;
    j->req.chat = chat;
    struct sp_err err;
    sp_err_clear(&err);
    enum MHD_Result ret;
    char msg[700];

    /* Parsing, rendering and tokenizing take memory proportional to the body:
     * only max_parsing requests do it at once; the permit is returned once the
     * request waits for (or holds) a slot, or is refused. */
    if (!srv_parse_enter(s, 10000, waiter_gone, cc)) {
        if (srv_client_gone(cc, true)) {
            ret = MHD_NO;
            goto out;
        }
        srv_count_rejected(s, "busy");
        ret = gen_error(j, c, 429, "the server is busy with other requests; retry after a moment", NULL,
                        "rate_limit_exceeded", "1");
        goto out;
    }
    cc->in_parse = true;
    size_t body_len = cc->body.len;
    j->input = sp_buf_take(&cc->body); /* the span input; no copy of the body */
    enum sp_status st = (d ? d->parse : server_request_parse)(j->input, j->input ? body_len : 0, chat,
                                                             &s->opts.limits, &j->req, &err);
    if (st != SP_OK) {
        ret = reject(j, c, st == SP_ERR_LIMIT ? 413 : st == SP_ERR_NOMEM ? 500 : 400, err.msg, err.context,
                     st == SP_ERR_LIMIT ? "request_too_large" : "invalid_request", NULL);
        goto out;
    }
    if (!d && chat && j->req.n_tools)
        j->d = &srv_tools_dialect; /* tool calls in the response (server_tools.c) */
    j->n = j->d ? 1 : SP_MAX(1, SP_MIN(j->req.n, SERVER_MAX_N)); /* dialects answer one choice */
    if (!j->req.model && s->n_models == 1)
        j->m = &s->models[0];
    else if (!j->req.model) {
        ret = reject(j, c, 400, "'model' is required (see GET /v1/models)", "model", "invalid_request", NULL);
        goto out;
    } else {
        j->m = d && d->find ? d->find(s, j->req.model) : srv_model_find(s, j->req.model);
    }
    if (!j->m) {
        snprintf(msg, sizeof msg, "The model '%.200s' does not exist (see GET %s)", j->req.model,
                 d && d->models_route ? d->models_route : "/v1/models");
        ret = reject(j, c, 404, msg, "model", "model_not_found", NULL);
        goto out;
    }
    metric_inc(j->m->m.requests);
    if (j->n > j->m->spec.max_concurrency) {
        snprintf(msg, sizeof msg, "'n' is %d, above the max_concurrency of model '%.200s' (%d): each choice is "
                 "one of the sequences decoded together", j->n, j->m->spec.name, j->m->spec.max_concurrency);
        ret = reject(j, c, 400, msg, "n", "invalid_request", NULL);
        goto out;
    }
    /* no permit while waiting for a load (it may be a long download) */
    srv_parse_leave(s);
    cc->in_parse = false;
    double t_load = sp_now_ms();
    st = srv_model_ensure(j->m, !j->m->spec.initial_load, waiter_gone, cc, &err);
    j->model_held = st == SP_OK;
    j->load_ms = sp_now_ms() - t_load;
    if (st == SP_ERR_CANCELLED) {
        ret = MHD_NO;
        goto out;
    }
    if (st != SP_OK) {
        ret = reject(j, c, 503, err.msg, "model", st == SP_ERR_STATE ? "model_loading" : "model_load_failed", "5");
        goto out;
    }
    if (admit_full(j->m->admit)) /* refuse before rendering and tokenizing */
        goto busy;
    if (!srv_parse_enter(s, 10000, waiter_gone, cc)) {
        ret = srv_client_gone(cc, true) ? MHD_NO
                                        : reject(j, c, 429, "the server is busy with other requests; retry after a "
                                                 "moment", NULL, "rate_limit_exceeded", "1");
        goto out;
    }
    cc->in_parse = true;
    if ((st = build_prompt(j, &err)) != SP_OK) {
        ret = reject(j, c, srv_http_status(st), err.msg, err.context[0] ? err.context : "messages",
                     "invalid_request", NULL);
        goto out;
    }
    j->req.tool_syntax = (int)engine_chat_tool_syntax(j->m->em);
    if (j->req.grammar && j->req.n_tools && engine_chat_tool_syntax(j->m->em) != ENGINE_TOOLS_GENERIC &&
        (st = server_request_tools_grammar(&j->req, engine_chat_tool_syntax(j->m->em), &err)) != SP_OK) {
        /* a forced tool call in the model's own syntax (the reader built the generic one) */
        ret = reject(j, c, srv_http_status(st), err.msg, err.context[0] ? err.context : "tools", "invalid_request",
                     NULL);
        goto out;
    }
    int n_prompt = 0;
    size_t prompt_bytes = strlen(j->prompt);
    if (j->m->max_token_bytes > 0 && prompt_bytes / (size_t)j->m->max_token_bytes >= (size_t)j->m->info.n_ctx) {
        /* every token covers at most max_token_bytes bytes: this prompt has at
         * least n_ctx tokens, known without tokenizing it */
        snprintf(msg, sizeof msg,
                 "This model's maximum context length is %d tokens; the prompt (%zu bytes) has more. Shorten the "
                 "prompt.", j->m->info.n_ctx, prompt_bytes);
        ret = reject(j, c, 400, msg, chat ? "messages" : "prompt", "context_length_exceeded", NULL);
        goto out;
    }
    st = engine_tokenize_count_spans(j->m->em, j->prompt, true, chat, j->req.special_in_content ? NULL : j->spans,
                                     j->req.special_in_content ? 0 : j->n_spans, &n_prompt, &err);
    if (st != SP_OK) {
        ret = reject(j, c, srv_http_status(st), err.msg, chat ? "messages" : "prompt", "invalid_request", NULL);
        goto out;
    }
    if (n_prompt >= j->m->info.n_ctx) {
        snprintf(msg, sizeof msg,
                 "This model's maximum context length is %d tokens; the prompt has %d tokens. Shorten the prompt.",
                 j->m->info.n_ctx, n_prompt);
        ret = reject(j, c, 400, msg, chat ? "messages" : "prompt", "context_length_exceeded", NULL);
        goto out;
    }
    srv_gen_params(&j->req, &j->m->spec, &s->opts.limits, j->prompt, &j->gp);
    if (j->n > 1 && (int64_t)j->n * engine_kv_cells(j->m->em, n_prompt, j->gp.max_tokens) > j->m->info.kv_tokens) {
        snprintf(msg, sizeof msg, "'n' = %d choices of this prompt (%d tokens) and max_tokens %d do not fit the "
                 "model's KV budget of %d tokens; lower n or max_tokens", j->n, n_prompt, j->gp.max_tokens,
                 j->m->info.kv_tokens);
        ret = reject(j, c, 400, msg, "n", "invalid_request", NULL);
        goto out;
    }
    j->gp.text_spans = j->req.special_in_content ? NULL : j->spans; /* request data stays text */
    j->gp.n_text_spans = j->req.special_in_content ? 0 : j->n_spans;
    if (j->gp.want_logprobs)
        for (int i = 0; i < j->n; i++)
            j->lp[i] = chat ? json_array() : gen_lp_object();
    trace_random_hex(j->id + 0, sizeof j->id, 12);
    {
        char hex[32];
        sp_strlcpy(hex, j->id, sizeof hex);
        snprintf(j->id, sizeof j->id, "%s%s", chat ? "chatcmpl-" : "cmpl-", hex);
    }

    srv_parse_leave(s); /* parsed, rendered, counted: the queue bounds the rest */
    cc->in_parse = false;
    st = admit_acquire_n(j->m->admit, j->n, 20, waiter_gone, cc, j->slot);
    if (st == SP_ERR_BUSY) {
busy:
        snprintf(msg, sizeof msg,
                 "model '%.200s' is at capacity (%d running, queue of %d full); retry after a moment",
                 j->m->spec.name, j->m->spec.max_concurrency, j->m->spec.queue_size);
        ret = reject(j, c, 429, msg, NULL, "rate_limit_exceeded", "1");
        goto out;
    }
    if (st == SP_ERR_CANCELLED) {
        j->client_gone = true;
        metric_inc(j->m->m.failures);
        struct sp_buf labels = {0};
        gen_labels(j, 499, NULL, &labels);
        srv_span(s, "ai_completion", j->input, NULL, j->start_wall_ms, sp_now_ms() - j->t_start,
                 "cancelled: client disconnected while queued", labels.data);
        sp_buf_free(&labels);
        ret = MHD_NO;
        goto out;
    }
    if (st != SP_OK) {
        ret = reject(j, c, 503, "server is shutting down", NULL, "shutting_down", "5");
        goto out;
    }
    for (int i = 0; i < j->n; i++)
        j->ctxs[i] = admit_slot_obj(j->slot[i]);
    j->ctx = j->ctxs[0];
    j->t_last = sp_now_ms();

    if (!j->req.stream) {
        run_gen(j);
        if (j->st != SP_OK) {
            unsigned code = srv_http_status(j->st);
            job_finish(j, code);
            ret = gen_error(j, c, code, j->err.msg[0] ? j->err.msg : sp_status_name(j->st), NULL,
                            sp_status_name(j->st), NULL);
        } else if (j->res.finish == ENGINE_FINISH_CANCELLED) {
            job_finish(j, 499);
            ret = j->client_gone ? MHD_NO : gen_error(j, c, 503, "cancelled: server is shutting down", NULL,
                                                      "shutting_down", NULL);
        } else {
            job_finish(j, 200);
            ret = respond_full(j, c);
        }
        goto out;
    }

    /* streaming: worker thread + content reader; write_timeout_s starts once 64 KiB are unread */
    srv_small_sndbuf(cc, 64 * 1024);
    prepare_head(j);
    atomic_fetch_add(&j->refs, 1); /* one for the response's free callback */
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j,
                                                                  stream_free);
    if (!resp) {
        atomic_fetch_sub(&j->refs, 1);
        for (int i = 0; i < j->n; i++) {
            admit_release(j->m->admit, j->slot[i]);
            j->slot[i] = NULL;
        }
        ret = gen_error(j, c, 500, "out of memory", NULL, NULL, NULL);
        goto out;
    }
    j->conn = c; /* stream_reader restarts microhttpd's idle timer */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, d ? d->stream_type : "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    srv_decorate(c, resp);
    j->counted_stream = true;
    atomic_fetch_add(&s->streams, 1);
    if (pthread_create(&j->th, NULL, stream_worker, j) == 0) {
        j->th_started = true;
    } else {
        j->st = sp_err_set(&j->err, SP_ERR_INTERNAL, "cannot start a generation thread");
        job_finish(j, 500);
        pthread_mutex_lock(&j->mu);
        j->done = true;
        pthread_mutex_unlock(&j->mu);
    }
    ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp); /* stream_free runs when microhttpd is done with it */
out:
    if (cc->in_parse) {
        srv_parse_leave(s);
        cc->in_parse = false;
    }
    job_unref(j);
    return ret;
}
