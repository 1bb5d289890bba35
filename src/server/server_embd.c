/* server_embd.c - the embedding routes: POST /v1/embeddings (OpenAI),
 * POST /api/embed and the legacy POST /api/embeddings (Ollama).
 *
 * One request: a max_parsing permit while the body is read
 * (server_embd_req.c) and the inputs are tokenized; the model is found and
 * loaded like the generation routes do (404 / 503); a model without a
 * pooling type is refused (400: generation-only); then one of the model's
 * admission slots (max_concurrency, the same queue as generations: 429 when
 * full) is held while engine_embed runs every input (batched, L2-normalised
 * vectors). `dimensions` may only be the model's own width: nothing in a
 * GGUF says whether a model was trained for shortened (Matryoshka) vectors,
 * so truncating would silently give poor vectors for most models; any other
 * value is a 400 naming `dimensions`. Ollama's /api/embed truncates inputs
 * longer than the context unless truncate is false (then 400); OpenAI's
 * route refuses them (400).
 * Metrics (requests, failures, duration, prompt tokens per model) and an
 * `ai_embedding` span with the token usage, as the other routes. Vectors are
 * written straight into the response text (%.9g: float32 round-trips), or
 * as base64 of little-endian float32 for encoding_format "base64". */
#include "server/server_int.h"
#include "server/server_embd.h"
#include "obs/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct embd_job {
    struct server *s;
    struct srv_conn *cc;
    struct srv_model *m;
    bool model_held;
    struct admit_slot *slot;
    struct srv_embd_req req;
    char *input;       /* the body (span input) */
    int32_t *toks;     /* all inputs' tokens, concatenated */
    int32_t *start;    /* [n + 1] */
    float *vec;        /* [n][n_embd] */
    int n_tokens;
    int dims;          /* dimensions of each returned vector */
    double t_start;
    int64_t start_wall_ms;
    double load_ms;
};

static enum MHD_Result embd_error(const struct embd_job *j, struct MHD_Connection *c, unsigned status,
                                  const char *msg, const char *param, const char *code, const char *retry)
{
    if (j->req.wire == SRV_EMBD_OPENAI)
        return srv_error(c, status, msg, param, code, retry);
    /* Ollama: {"error": "..."} */
    struct sp_buf b = {0};
    const char *m = msg ? msg : "error";
    enum MHD_Result ret;
    if (sp_buf_appends(&b, "{\"error\":\"") == 0 && srv_json_escape(&b, m, strlen(m)) == 0 &&
        sp_buf_appends(&b, "\"}") == 0)
        ret = srv_respond(c, status, "application/json", b.data, b.len, retry);
    else
        ret = srv_respond(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25, NULL);
    sp_buf_free(&b);
    return ret;
}

static void embd_span(struct embd_job *j, unsigned status, const char *error)
{
    char labels[300], out[96];
    snprintf(labels, sizeof labels,
             "{\"model\":\"%.100s\",\"prompt_tokens\":%d,\"total_tokens\":%d,\"inputs\":%zu,\"dimensions\":%d,"
             "\"http_status\":%u}",
             j->m ? j->m->spec.name : "", j->n_tokens, j->n_tokens, j->req.n, j->dims, status);
    snprintf(out, sizeof out, "%zu vectors of %d dimensions", j->req.n, j->dims);
    srv_span(j->s, "ai_embedding", j->input, status == 200 ? out : NULL, j->start_wall_ms, sp_now_ms() - j->t_start,
             error, labels);
}

/* A refusal after the request was read: counted, spanned, answered. */
static enum MHD_Result reject(struct embd_job *j, struct MHD_Connection *c, unsigned status, const char *msg,
                              const char *param, const char *code, const char *retry)
{
    if (j->m) {
        metric_inc(j->m->m.failures);
        if (status == 429)
            metric_inc(j->m->m.rejected);
        metric_observe(j->m->m.duration_ms, sp_now_ms() - j->t_start);
    }
    embd_span(j, status, msg);
    return embd_error(j, c, status, msg, param, code, retry);
}

static bool waiter_gone(void *ud) { return srv_client_gone(ud, true); }

static struct srv_model *find_model(struct server *s, const char *name, bool ollama)
{
    struct srv_model *m = srv_model_find(s, name);
    size_t n = strlen(name);
    if (!m && ollama && n > 7 && !strcmp(name + n - 7, ":latest")) {
        char *base = sp_strndup(name, n - 7);
        m = base ? srv_model_find(s, base) : NULL;
        sp_free(base);
    }
    return m;
}

/* Tokenize the text inputs and lay every input out in j->toks / j->start.
 * Returns 0, or the HTTP status of the refusal written to msg. */
static unsigned gather_tokens(struct embd_job *j, char *msg, size_t msgsz, char *param, size_t paramsz)
{
    const struct engine_model *em = j->m->em;
    const int n_ctx = j->m->info.n_ctx;
    const size_t n = j->req.n;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) /* token inputs are capped by the reader; texts by the context */
        total += j->req.in[i].text ? (size_t)n_ctx : (size_t)j->req.in[i].n_toks;
    if (total > (size_t)1 << 26) {
        snprintf(msg, msgsz, "the inputs are too large (more than %d tokens in all)", 1 << 26);
        snprintf(param, paramsz, "input");
        return 413;
    }
    j->toks = sp_malloc((total + 1) * sizeof(int32_t));
    j->start = sp_malloc((n + 1) * sizeof(int32_t));
    if (!j->toks || !j->start) {
        snprintf(msg, msgsz, "out of memory tokenizing the inputs");
        return 500;
    }
    const char *pname = j->req.wire == SRV_EMBD_OLLAMA_OLD ? "prompt" : "input";
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const struct srv_embd_input *in = &j->req.in[i];
        if (n > 1)
            snprintf(param, paramsz, "%s[%zu]", pname, i);
        else
            snprintf(param, paramsz, "%s", pname);
        j->start[i] = (int32_t)at;
        size_t k = 0;
        if (in->text) {
            struct sp_err e;
            sp_err_clear(&e);
            enum sp_status st = engine_embed_tokenize(em, in->text, in->len, j->toks + at, (size_t)n_ctx, &k, &e);
            if (st == SP_ERR_LIMIT && j->req.wire == SRV_EMBD_OLLAMA && j->req.truncate && k > (size_t)n_ctx &&
                k <= ((size_t)64 << 20)) { /* Ollama's truncate: the first n_ctx tokens */
                int32_t *all = sp_malloc(k * sizeof(int32_t));
                size_t k2 = 0;
                st = all ? engine_embed_tokenize(em, in->text, in->len, all, k, &k2, &e) : SP_ERR_NOMEM;
                if (st == SP_OK)
                    memcpy(j->toks + at, all, (size_t)n_ctx * sizeof(int32_t));
                sp_free(all);
                if (st != SP_OK) {
                    snprintf(msg, msgsz, "%s", e.msg[0] ? e.msg : "cannot tokenize the input");
                    return st == SP_ERR_NOMEM ? 500 : srv_http_status(st);
                }
                k = (size_t)n_ctx;
            } else if (st == SP_ERR_LIMIT) {
                snprintf(msg, msgsz,
                         "This model's maximum context length is %d tokens; %s has more (%zu). Shorten the input%s.",
                         n_ctx, param, k, j->req.wire == SRV_EMBD_OLLAMA ? " or set truncate: true" : "");
                return 400;
            } else if (st != SP_OK) {
                snprintf(msg, msgsz, "%s", e.msg[0] ? e.msg : "cannot tokenize the input");
                return srv_http_status(st);
            }
            if (k == 0) {
                snprintf(msg, msgsz, "%s has no tokens", param);
                return 400;
            }
        } else {
            if (in->n_toks > n_ctx) {
                snprintf(msg, msgsz, "This model's maximum context length is %d tokens; %s has %d. Shorten the input.",
                         n_ctx, param, in->n_toks);
                return 400;
            }
            for (int t = 0; t < in->n_toks; t++)
                if (in->toks[t] >= j->m->info.n_vocab) {
                    snprintf(msg, msgsz, "%s: token id %d is out of range (vocabulary of %d)", param, in->toks[t],
                             j->m->info.n_vocab);
                    return 400;
                }
            memcpy(j->toks + at, in->toks, (size_t)in->n_toks * sizeof(int32_t));
            k = (size_t)in->n_toks;
        }
        at += k;
    }
    j->start[n] = (int32_t)at;
    j->n_tokens = (int)at;
    param[0] = 0;
    return 0;
}

/* Append vector v (d floats) as a JSON array or a base64 string. */
static int put_vector(struct sp_buf *b, const float *v, int d, bool base64)
{
    if (base64) {
        uint8_t le[4 * 256];
        if (sp_buf_appends(b, "\"") != 0)
            return -1;
        for (int i = 0; i < d;) { /* chunks of 255 floats: whole base64 groups (3 bytes) */
            int k = SP_MIN(d - i, 255);
            for (int t = 0; t < k; t++) {
                uint32_t u;
                memcpy(&u, &v[i + t], 4);
                le[4 * t] = (uint8_t)u;
                le[4 * t + 1] = (uint8_t)(u >> 8);
                le[4 * t + 2] = (uint8_t)(u >> 16);
                le[4 * t + 3] = (uint8_t)(u >> 24);
            }
            if (srv_base64_append(b, le, (size_t)k * 4) != 0)
                return -1;
            i += k;
        }
        return sp_buf_appends(b, "\"");
    }
    if (sp_buf_appends(b, "[") != 0)
        return -1;
    for (int i = 0; i < d; i++) {
        double x = isfinite(v[i]) ? (double)v[i] : 0.0;
        if (sp_buf_printf(b, i ? ",%.9g" : "%.9g", x) != 0)
            return -1;
    }
    return sp_buf_appends(b, "]");
}

static int64_t ns(double ms) { return (int64_t)(ms * 1e6); }

static int build_body(const struct embd_job *j, struct sp_buf *b)
{
    const int E = j->m->info.n_embd;
    const char *name = j->m->spec.name;
    struct sp_buf nm = {0};
    if (srv_json_escape(&nm, name, strlen(name)) != 0)
        return -1;
    const char *nmq = nm.data ? nm.data : "";
    int rc = 0;
    switch (j->req.wire) {
    case SRV_EMBD_OPENAI:
        rc |= sp_buf_appends(b, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < j->req.n && rc == 0; i++) {
            rc |= sp_buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
            rc |= put_vector(b, j->vec + i * (size_t)E, j->dims, j->req.base64);
            rc |= sp_buf_appends(b, "}");
        }
        rc |= sp_buf_printf(b, "],\"model\":\"%s\",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}", nmq,
                            j->n_tokens, j->n_tokens);
        break;
    case SRV_EMBD_OLLAMA:
        rc |= sp_buf_printf(b, "{\"model\":\"%s\",\"embeddings\":[", nmq);
        for (size_t i = 0; i < j->req.n && rc == 0; i++) {
            rc |= sp_buf_appends(b, i ? "," : "");
            rc |= put_vector(b, j->vec + i * (size_t)E, j->dims, false);
        }
        rc |= sp_buf_printf(b, "],\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%d}",
                            (long long)ns(sp_now_ms() - j->t_start), (long long)ns(j->load_ms), j->n_tokens);
        break;
    case SRV_EMBD_OLLAMA_OLD:
        rc |= sp_buf_appends(b, "{\"embedding\":");
        rc |= put_vector(b, j->vec, j->dims, false);
        rc |= sp_buf_appends(b, "}");
        break;
    }
    sp_buf_free(&nm);
    return rc ? -1 : 0;
}

enum MHD_Result srv_embeddings(struct server *s, struct MHD_Connection *c, struct srv_conn *cc,
                               enum srv_embd_wire wire)
{
    struct embd_job jb, *j = &jb;
    memset(j, 0, sizeof *j);
    j->s = s;
    j->cc = cc;
    j->req.wire = wire;
    j->t_start = cc->start_ms;
    j->start_wall_ms = cc->start_wall_ms;
    struct sp_err err;
    sp_err_clear(&err);
    enum MHD_Result ret;
    char msg[700], param[64] = "";
    const bool ollama = wire != SRV_EMBD_OPENAI;

    if (!srv_parse_enter(s, 10000, waiter_gone, cc)) {
        if (srv_client_gone(cc, true)) {
            ret = MHD_NO;
            goto out;
        }
        srv_count_rejected(s, "busy");
        ret = embd_error(j, c, 429, "the server is busy with other requests; retry after a moment", NULL,
                         "rate_limit_exceeded", "1");
        goto out;
    }
    cc->in_parse = true;
    size_t body_len = cc->body.len;
    j->input = sp_buf_take(&cc->body);
    enum sp_status st = srv_embd_parse(j->input, j->input ? body_len : 0, wire, &j->req, &err);
    j->req.wire = wire;
    if (st != SP_OK) {
        ret = reject(j, c, st == SP_ERR_LIMIT ? 413 : st == SP_ERR_NOMEM ? 500 : 400, err.msg, err.context,
                     st == SP_ERR_LIMIT ? "request_too_large" : "invalid_request", NULL);
        goto out;
    }
    if (!j->req.model && s->n_models == 1) {
        j->m = &s->models[0];
    } else if (!j->req.model) {
        ret = reject(j, c, 400, "'model' is required (see GET /v1/models)", "model", "invalid_request", NULL);
        goto out;
    } else {
        j->m = find_model(s, j->req.model, ollama);
    }
    if (!j->m) {
        snprintf(msg, sizeof msg, "The model '%.200s' does not exist (see GET %s)", j->req.model,
                 ollama ? "/api/tags" : "/v1/models");
        ret = reject(j, c, 404, msg, "model", "model_not_found", NULL);
        goto out;
    }
    metric_inc(j->m->m.requests);
    srv_parse_leave(s); /* no permit while waiting for a load */
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
    const enum engine_pooling pool = engine_model_pooling(j->m->em);
    if (pool == ENGINE_POOL_NONE) {
        snprintf(msg, sizeof msg,
                 "model '%.200s' is a generation-only model: it has no pooling type (%.40s.pooling_type in its GGUF), "
                 "so it gives no embeddings; use an embedding model (bert, or a decoder converted with a pooling "
                 "type)", j->m->spec.name, j->m->info.arch);
        ret = reject(j, c, 400, msg, "model", "model_not_embedding", NULL);
        goto out;
    }
    const int E = j->m->info.n_embd;
    j->dims = E;
    if (j->req.dimensions && j->req.dimensions != E) {
        snprintf(msg, sizeof msg,
                 "model '%.200s' does not support 'dimensions' other than its own %d: nothing in the model says it "
                 "was trained for shortened vectors; omit 'dimensions' or give %d", j->m->spec.name, E, E);
        ret = reject(j, c, 400, msg, "dimensions", "invalid_request", NULL);
        goto out;
    }
    if (admit_full(j->m->admit))
        goto busy;
    if (!srv_parse_enter(s, 10000, waiter_gone, cc)) {
        ret = srv_client_gone(cc, true) ? MHD_NO
                                        : reject(j, c, 429, "the server is busy with other requests; retry after a "
                                                 "moment", NULL, "rate_limit_exceeded", "1");
        goto out;
    }
    cc->in_parse = true;
    unsigned code = gather_tokens(j, msg, sizeof msg, param, sizeof param);
    if (code) {
        ret = reject(j, c, code, msg, param[0] ? param : NULL,
                     code == 400 && strstr(msg, "context length") ? "context_length_exceeded" : "invalid_request", NULL);
        goto out;
    }
    j->vec = sp_malloc(j->req.n * (size_t)E * sizeof(float));
    if (!j->vec) {
        ret = reject(j, c, 500, "out of memory for the vectors", NULL, NULL, NULL);
        goto out;
    }
    srv_parse_leave(s);
    cc->in_parse = false;
    st = admit_acquire(j->m->admit, 20, waiter_gone, cc, &j->slot);
    if (st == SP_ERR_BUSY) {
busy:
        snprintf(msg, sizeof msg, "model '%.200s' is at capacity (%d running, queue of %d full); retry after a moment",
                 j->m->spec.name, j->m->spec.max_concurrency, j->m->spec.queue_size);
        ret = reject(j, c, 429, msg, NULL, "rate_limit_exceeded", "1");
        goto out;
    }
    if (st == SP_ERR_CANCELLED) {
        metric_inc(j->m->m.failures);
        embd_span(j, 499, "cancelled: client disconnected while queued");
        ret = MHD_NO;
        goto out;
    }
    if (st != SP_OK) {
        ret = reject(j, c, 503, "server is shutting down", NULL, "shutting_down", "5");
        goto out;
    }
    st = engine_embed(j->m->em, j->toks, j->start, (int)j->req.n, j->vec, &err);
    admit_release(j->m->admit, j->slot);
    j->slot = NULL;
    if (st != SP_OK) {
        code = st == SP_ERR_CANCELLED ? 503 : srv_http_status(st);
        ret = reject(j, c, code, err.msg[0] ? err.msg : sp_status_name(st), NULL, sp_status_name(st),
                     code == 429 || code == 503 ? "1" : NULL);
        goto out;
    }
    metric_add(j->m->m.prompt_tokens, j->n_tokens);
    struct sp_buf body = {0};
    if (build_body(j, &body) != 0) {
        sp_buf_free(&body);
        ret = reject(j, c, 500, "out of memory building the response", NULL, NULL, NULL);
        goto out;
    }
    metric_observe(j->m->m.duration_ms, sp_now_ms() - j->t_start);
    embd_span(j, 200, NULL);
    ret = srv_respond(c, 200, "application/json", body.data, body.len, NULL);
    sp_buf_free(&body);
out:
    if (cc->in_parse) {
        srv_parse_leave(s);
        cc->in_parse = false;
    }
    srv_model_leave(j->model_held ? j->m : NULL);
    srv_embd_req_free(&j->req);
    sp_free(j->input);
    sp_free(j->toks);
    sp_free(j->start);
    sp_free(j->vec);
    return ret;
}
