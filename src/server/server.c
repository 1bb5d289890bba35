/* server.c - the HTTP front: libmicrohttpd daemon in thread-per-connection
 * mode (a blocking generation occupies only its own connection's thread,
 * so /health and /metrics stay fast), connection cap and idle timeout from
 * the limits, request-body accumulation with the 413 cap, routing, the small
 * routes (/health, /v1/ready, /v1/models[/id], /metrics, /v1/sql), error
 * bodies in OpenAI's shape, and the lifecycle (start, graceful shutdown). */
#include "server/server_int.h"
#include "server/server_embd.h"
#include "obs/log.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- responses */

enum MHD_Result srv_respond(struct MHD_Connection *c, unsigned status, const char *content_type, const char *body,
                            size_t len, const char *retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (retry_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    srv_decorate(c, r);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    struct sp_buf b = {0};
    enum MHD_Result ret;
    if (!j || json_dump_callback(j, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
        ret = srv_error(c, 500, "out of memory", NULL, NULL, NULL);
    else
        ret = srv_respond(c, status, "application/json", b.data, b.len, NULL);
    sp_buf_free(&b);
    json_decref(j);
    return ret;
}

static const char *error_type(unsigned status)
{
    switch (status) {
    case 400: case 404: case 405: case 413: case 415: return "invalid_request_error";
    case 401: case 403: return "authentication_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return "server_error";
    }
}

enum MHD_Result srv_error(struct MHD_Connection *c, unsigned status, const char *message, const char *param,
                          const char *code, const char *retry_after)
{
    json_t *e = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", message ? message : "error", "type",
                          error_type(status), "param", param && param[0] ? json_string(param) : json_null(), "code",
                          code ? json_string(code) : json_null());
    struct sp_buf b = {0};
    enum MHD_Result ret;
    if (e && json_dump_callback(e, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0)
        ret = srv_respond(c, status, "application/json", b.data, b.len, retry_after);
    else
        ret = srv_respond(c, status, "text/plain", "error\n", 6, retry_after);
    sp_buf_free(&b);
    json_decref(e);
    return ret;
}

unsigned srv_http_status(enum sp_status st)
{
    switch (st) {
    case SP_OK: return 200;
    case SP_ERR_INVALID:
    case SP_ERR_RANGE: return 400;
    case SP_ERR_LIMIT: return 400;
    case SP_ERR_NOT_FOUND: return 404;
    case SP_ERR_BUSY: return 429;
    case SP_ERR_STATE:
    case SP_ERR_AUTH:
    case SP_ERR_NETWORK:
    case SP_ERR_HTTP:
    case SP_ERR_OFFLINE:
    case SP_ERR_MEMORY:
    case SP_ERR_INTEGRITY:
    case SP_ERR_FORMAT:
    case SP_ERR_UNSUPPORTED: return 503;
    case SP_ERR_TIMEOUT: return 504;
    default: return 500;
    }
}

bool srv_client_gone(struct srv_conn *cc, bool may_write)
{
    int fd = cc ? cc->fd : -1;
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return true; /* reset, or both directions closed */
    bool eof = (p.revents & POLLRDHUP) != 0;
    if (!eof && (p.revents & POLLIN)) {
        char ch;
        eof = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    if (!eof)
        return false;
    /* EOF: a half-close (the request is complete, the answer still wanted) or
     * a closed socket. A closed peer answers any data with a reset, which the
     * next poll sees; a half-closed one ignores an interim 100 response. */
    if (!cc->http11)
        return may_write; /* HTTP/1.0 has no interim responses: EOF means gone */
    if (may_write && !cc->probed) {
        static const char probe[] = "HTTP/1.1 100 Continue\r\n\r\n";
        cc->probed = true;
        if (send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            return true;
    }
    return false;
}

void srv_span(struct server *s, const char *task, const char *input, const char *output, int64_t start_wall_ms,
              double duration_ms, const char *error, const char *labels_json)
{
    if (!s->trace)
        return;
    struct trace_span sp = {.task = task,
                            .input = input,
                            .output = output,
                            .start_ms = start_wall_ms,
                            .end_ms = start_wall_ms + (int64_t)duration_ms,
                            .duration_ms = duration_ms,
                            .error = error,
                            .labels_json = labels_json};
    trace_submit(s->trace, &sp);
}

/* ---- simple routes */

static enum MHD_Result route_health(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool ready)
{
    enum MHD_Result ret;
    char labels[96];
    if (!ready) {
        ret = srv_respond(c, 200, "text/plain", "ok", 2, NULL);
        snprintf(labels, sizeof labels, "{\"path\":\"/health\",\"http_status\":200}");
    } else {
        bool ok = server_ready(s) && !atomic_load(&s->shutting_down);
        if (ok)
            ret = srv_respond(c, 200, "text/plain", "ready", 5, NULL);
        else
            ret = srv_error(c, 503, "not ready: models are still loading or failed to load (see GET /v1/models)",
                            NULL, "not_ready", "5");
        snprintf(labels, sizeof labels, "{\"path\":\"/v1/ready\",\"http_status\":%d}", ok ? 200 : 503);
    }
    srv_span(s, "health", ready ? "/v1/ready" : "/health", NULL, cc->start_wall_ms, sp_now_ms() - cc->start_ms, NULL,
             labels);
    return ret;
}

static enum MHD_Result route_models(struct server *s, struct MHD_Connection *c, const char *id)
{
    if (id) {
        struct srv_model *m = srv_model_find(s, id);
        if (!m) {
            char msg[300];
            snprintf(msg, sizeof msg, "The model '%.200s' does not exist", id);
            return srv_error(c, 404, msg, "model", "model_not_found", NULL);
        }
        return respond_json(c, 200, srv_model_json(m));
    }
    json_t *data = json_array();
    for (size_t i = 0; i < s->n_models; i++)
        json_array_append_new(data, srv_model_json(&s->models[i]));
    return respond_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static enum MHD_Result route_metrics(struct server *s, struct MHD_Connection *c)
{
    srv_models_refresh_gauges(s);
    struct sp_buf b = {0};
    enum MHD_Result ret;
    if (metrics_render(s->metrics, &b) != SP_OK)
        ret = srv_error(c, 500, "out of memory rendering metrics", NULL, NULL, NULL);
    else
        ret = srv_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len, NULL);
    sp_buf_free(&b);
    return ret;
}

struct sql_send {
    struct sp_buf out;  /* the JSON result */
    size_t off;         /* bytes handed to microhttpd */
    double deadline_ms; /* sp_now_ms() limit for sending it */
};

static ssize_t sql_send_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    SP_UNUSED(pos);
    struct sql_send *q = cls;
    if (sp_now_ms() > q->deadline_ms)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* closes the connection */
    size_t k = SP_MIN(max, q->out.len - q->off);
    if (k == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    memcpy(buf, q->out.data + q->off, k);
    q->off += k;
    return (ssize_t)k;
}

static void sql_send_free(void *cls)
{
    struct sql_send *q = cls;
    sp_buf_free(&q->out);
    sp_free(q);
}

static enum MHD_Result route_sql(struct server *s, struct MHD_Connection *c, struct srv_conn *cc)
{
    if (!s->opts.history.sql_endpoint)
        return srv_error(c, 404, "POST /v1/sql is disabled; enable it with task_history.sql_endpoint: true in spoke.yaml "
                                 "(spoke sql reads the history locally)", NULL, "not_found", NULL);
    if (!s->trace)
        return srv_error(c, 404, "task history is disabled on this server", NULL, "not_found", NULL);
    /* body: the SQL text, or {"sql": "..."} / {"query": "..."} */
    const char *sql = cc->body.data ? cc->body.data : "";
    json_t *j = NULL;
    if (cc->body.len && sql[0] == '{') {
        j = json_loadb(cc->body.data, cc->body.len, 0, NULL);
        const json_t *q = json_object_get(j, "sql");
        if (!q)
            q = json_object_get(j, "query");
        if (!json_is_string(q)) {
            json_decref(j);
            return srv_error(c, 400, "body must be SQL text or {\"sql\": \"SELECT ...\"}", "sql", "invalid_value", NULL);
        }
        sql = json_string_value(q);
    }
    if (strlen(sql) != cc->body.len && !j)
        return srv_error(c, 400, "SQL text contains a NUL byte", "sql", "invalid_value", NULL);
    /* the result buffer (up to sql_max_bytes) counts against the parsing
     * permits until the response is sent (released when the request ends) */
    if (!srv_parse_enter(s, 5000, NULL, NULL)) {
        json_decref(j);
        return srv_error(c, 429, "the server is busy with other requests; retry after a moment", NULL,
                         "rate_limit_exceeded", "1");
    }
    cc->in_parse = true;
    struct trace_query_opts qo = {s->opts.limits.sql_max_rows, s->opts.limits.sql_time_ms,
                                  s->opts.limits.sql_max_bytes};
    struct sql_send *send = sp_calloc(1, sizeof *send);
    struct sp_err err;
    sp_err_clear(&err);
    trace_flush(s->trace, 1000); /* let recent spans become visible (returns once drained) */
    double t0 = sp_now_ms();
    enum sp_status st = send ? trace_query(trace_store_path(s->trace), sql, &qo, &send->out, &err)
                             : sp_err_set(&err, SP_ERR_NOMEM, "out of memory");
    json_decref(j);
    if (st != SP_OK) {
        if (send)
            sp_buf_free(&send->out);
        sp_free(send);
        unsigned code = st == SP_ERR_LIMIT ? 413 : st == SP_ERR_NOT_FOUND ? 404 : st == SP_ERR_NOMEM ? 500 : 400;
        return srv_error(c, code, err.msg, "sql",
                         st == SP_ERR_TIMEOUT ? "timeout" : st == SP_ERR_LIMIT ? "result_too_large" : "invalid_sql",
                         NULL);
    }
    /* the time limit covers sending too: a client that reads slowly is cut
     * off at the deadline instead of holding the result */
    send->deadline_ms = t0 + s->opts.limits.sql_time_ms;
    double left_s = (send->deadline_ms - sp_now_ms()) / 1000.0;
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)(left_s > 1 ? left_s + 1 : 1));
    srv_small_sndbuf(cc, 128 * 1024);
    struct MHD_Response *r = MHD_create_response_from_callback(send->out.len, 64 * 1024, sql_send_reader, send,
                                                               sql_send_free);
    if (!r) {
        sql_send_free(send);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    srv_decorate(c, r);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- dispatch */

static bool is_post_route(const char *url)
{
    return !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions") || !strcmp(url, "/v1/sql") ||
           !strcmp(url, "/chat/completions") || !strcmp(url, "/completions") || !strncmp(url, "/api/", 5) ||
           !strcmp(url, "/v1/embeddings") || !strcmp(url, "/embeddings");
}

static enum MHD_Result dispatch(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, const char *url,
                                const char *method)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    if (!strcmp(url, "/health"))
        return get ? route_health(s, c, cc, false) : srv_error(c, 405, "use GET", NULL, "method_not_allowed", NULL);
    if (!strcmp(url, "/v1/ready"))
        return get ? route_health(s, c, cc, true) : srv_error(c, 405, "use GET", NULL, "method_not_allowed", NULL);
    if (!strcmp(url, "/metrics"))
        return get ? route_metrics(s, c) : srv_error(c, 405, "use GET", NULL, "method_not_allowed", NULL);
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models"))
        return get ? route_models(s, c, NULL) : srv_error(c, 405, "use GET", NULL, "method_not_allowed", NULL);
    if (!strncmp(url, "/v1/models/", 11) && url[11])
        return get ? route_models(s, c, url + 11) : srv_error(c, 405, "use GET", NULL, "method_not_allowed", NULL);
    if (!strncmp(url, "/api/", 5))
        return srv_ollama_dispatch(s, c, cc, url, method);
    if (srv_console_route(url))
        return srv_console_serve(c, url, method);
    if (is_post_route(url)) {
        if (!post)
            return srv_error(c, 405, "use POST", NULL, "method_not_allowed", NULL);
        if (atomic_load(&s->shutting_down))
            return srv_error(c, 503, "server is shutting down", NULL, "shutting_down", "5");
        if (!strcmp(url, "/v1/sql"))
            return route_sql(s, c, cc);
        if (strstr(url, "embeddings"))
            return srv_embeddings(s, c, cc, SRV_EMBD_OPENAI);
        bool chat = strstr(url, "chat/") != NULL;
        return srv_handle_completion(s, c, cc, chat);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no route for %.8s %.200s", method, url);
    return srv_error(c, 404, msg, NULL, "not_found", NULL);
}

/* 413 for a completion route: also recorded as a failed ai_completion span */
static enum MHD_Result too_large(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, const char *url)
{
    char msg[160];
    snprintf(msg, sizeof msg, "request body is larger than the limit of %zu bytes", s->opts.limits.max_body_bytes);
    if (strcmp(url, "/v1/sql") != 0)
        srv_span(s, "ai_completion", NULL, NULL, cc->start_wall_ms, sp_now_ms() - cc->start_ms, msg,
                 "{\"http_status\":413}");
    return srv_error(c, 413, msg, NULL, "request_too_large", NULL);
}

/* 429 while the body budget is taken by other connections */
static enum MHD_Result budget_busy(struct server *s, struct MHD_Connection *c, struct srv_conn *cc)
{
    srv_count_rejected(s, "busy");
    if (cc->sock)
        cc->sock->close_after = true; /* the body stays unread */
    return srv_error(c, 429, "the server is busy receiving other requests; retry after a moment", NULL,
                     "rate_limit_exceeded", "1");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct server *s = cls;
    struct srv_conn *cc = *con_cls;
    if (!cc) {
        cc = sp_calloc(1, sizeof *cc);
        if (!cc)
            return MHD_NO;
        cc->srv = s;
        cc->start_ms = sp_now_ms();
        cc->start_wall_ms = sp_wall_ms();
        cc->body.limit = s->opts.limits.max_body_bytes;
        cc->http11 = version && !strcmp(version, MHD_HTTP_VERSION_1_1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cc->fd = ci ? ci->connect_fd : -1;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        cc->sock = ci ? ci->socket_context : NULL;
        atomic_fetch_add(&s->active, 1);
        cc->counted = true;
        *con_cls = cc;
        enum MHD_Result gated;
        if (srv_gate(s, c, cc, url, method, &gated))
            return gated;
        if (!strcmp(method, "POST") && is_post_route(url)) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            uint64_t n = 0;
            if (cl && (!sp_parse_u64(cl, UINT64_MAX, &n) || n > s->opts.limits.max_body_bytes))
                return too_large(s, c, cc, url);
            /* reserve the body (exactly, when its length is known) from the
             * server-wide budget before reading it */
            size_t want = cl ? (size_t)n : s->opts.limits.max_body_bytes;
            if (!srv_budget_take(s, want, 2000))
                return budget_busy(s, c, cc);
            cc->reserved = want;
            if (cl && n) {
                cc->body.data = sp_malloc((size_t)n + 1);
                if (cc->body.data) {
                    cc->body.cap = (size_t)n + 1;
                    cc->body.data[0] = 0;
                }
            }
            return MHD_YES; /* wait for the body */
        }
        if (!strcmp(method, "POST") || !strcmp(method, "PUT"))
            return MHD_YES; /* read (and discard) the body, then 404/405 */
        srv_deadline_clear(cc);
        return dispatch(s, c, cc, url, method);
    }
    if (*upload_data_size) {
        if (!cc->too_large && sp_buf_append(&cc->body, upload_data, *upload_data_size) != 0) {
            cc->too_large = true;
            sp_buf_free(&cc->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    srv_deadline_clear(cc); /* request fully received */
    if (cc->too_large)
        return too_large(s, c, cc, url);
    return dispatch(s, c, cc, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    SP_UNUSED(c);
    SP_UNUSED(toe);
    struct server *s = cls;
    struct srv_conn *cc = *con_cls;
    if (!cc)
        return;
    if (cc->counted)
        atomic_fetch_sub(&s->active, 1);
    if (cc->in_parse)
        srv_parse_leave(s);
    srv_budget_give(s, cc->reserved);
    srv_deadline_restart(cc); /* the next request on this connection */
    sp_buf_free(&cc->body);
    sp_free(cc);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    SP_UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    LOG_DEBUG("server", "microhttpd: %s", msg);
}

/* ---- lifecycle */

static double mem_in_use(void *ud) { SP_UNUSED(ud); return (double)sp_mem_in_use(); }
static double dropped_spans(void *ud) { return (double)trace_dropped(((struct server *)ud)->trace); }

static char *dup_or_null(const char *s) { return s ? sp_strdup(s) : NULL; }

static enum sp_status copy_list(char ***dst, size_t *n, char *const *src, size_t n_src)
{
    *dst = NULL;
    *n = 0;
    for (size_t i = 0; i < n_src; i++)
        if (server_strlist_add(dst, n, src[i]) != SP_OK)
            return SP_ERR_NOMEM;
    return SP_OK;
}

static enum sp_status copy_opts(struct server *s, const struct server_opts *o, struct sp_err *err)
{
    s->opts = *o;
    s->opts.host = sp_strdup(o->host ? o->host : "127.0.0.1");
    s->opts.history.path = dup_or_null(o->history.path);
    s->opts.models = NULL;
    s->opts.n_models = 0;
    struct server_auth *a = &s->opts.auth;
    if (!s->opts.host || (o->history.path && !s->opts.history.path) ||
        copy_list(&a->api_keys, &a->n_api_keys, o->auth.api_keys, o->auth.n_api_keys) != SP_OK ||
        copy_list(&a->allowed_hosts, &a->n_allowed_hosts, o->auth.allowed_hosts, o->auth.n_allowed_hosts) != SP_OK ||
        copy_list(&a->cors_origins, &a->n_cors_origins, o->auth.cors_origins, o->auth.n_cors_origins) != SP_OK)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < a->n_api_keys; i++)
        if (!a->api_keys[i][0])
            return sp_err_set(err, SP_ERR_INVALID, "server: an API key is empty (is its ${env:...} variable set?)");
    return SP_OK;
}

static enum sp_status parse_listen_addr(const char *host, int port, struct sockaddr_storage *ss, unsigned *flags,
                                        struct sp_err *err);

enum sp_status server_new(const struct server_opts *opts, struct server **out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    *out = NULL;
    if (!opts || opts->port < 0 || opts->port > 65535)
        return sp_err_set(err, SP_ERR_INVALID, "server: port must be 0..65535");
    struct server *s = sp_calloc(1, sizeof *s);
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->shutdown_mu, NULL);
    srv_gate_init(s);
    pthread_mutex_init(&s->add_mu, NULL);
    if ((result = copy_opts(s, opts, err)) != SP_OK)
        goto fail;
    struct sockaddr_storage probe;
    unsigned probe_flags = 0;
    if ((result = parse_listen_addr(s->opts.host, s->opts.port, &probe, &probe_flags, err)) != SP_OK)
        goto fail; /* before any model load starts */
    if (!server_host_is_loopback(s->opts.host) && !s->opts.auth.n_api_keys) {
        if (!s->opts.auth.insecure_no_auth) {
            result = sp_err_setc(err, SP_ERR_INVALID, s->opts.host,
                                 "refusing to listen on %s without API keys: anyone who can reach it could use the "
                                 "models; set server.api_keys (or --api-key / SPOKE_API_KEY), or pass "
                                 "--insecure-no-auth", s->opts.host);
            goto fail;
        }
        LOG_WARN("server", "listening on %s WITHOUT authentication (--insecure-no-auth): anyone who can reach this "
                           "address can use the models", s->opts.host);
    }
    struct server_limits *l = &s->opts.limits;
    if (!l->max_body_bytes) l->max_body_bytes = 1u << 20;
    if (l->max_tokens <= 0) l->max_tokens = 4096;
    if (l->default_max_tokens <= 0) l->default_max_tokens = SP_MIN(256, l->max_tokens);
    if (!l->max_connections) l->max_connections = 512;
    if (!l->conn_timeout_s) l->conn_timeout_s = 30;
    if (l->max_messages <= 0) l->max_messages = 1024;
    if (l->max_stop <= 0) l->max_stop = 4;
    if (!l->max_connections_per_client) l->max_connections_per_client = 64;
    if (!l->request_timeout_s) l->request_timeout_s = 30;
    if (!l->write_timeout_s) l->write_timeout_s = 10;
    if (l->max_parsing <= 0) l->max_parsing = 4;
    if (!l->max_buffered_bytes) l->max_buffered_bytes = 64u << 20;
    if (l->max_buffered_bytes < l->max_body_bytes) l->max_buffered_bytes = l->max_body_bytes;
    if (!l->sql_max_bytes) l->sql_max_bytes = 8u << 20;
    const char *delay = getenv("SPOKE_TEST_DECODE_DELAY_MS");
    int64_t dv = 0;
    if (delay && sp_parse_i64(delay, 0, 10000, &dv))
        s->test_delay_ms = (int)dv;
    delay = getenv("SPOKE_TEST_LOAD_DELAY_MS");
    if (delay && sp_parse_i64(delay, 0, 60000, &dv))
        s->test_load_delay_ms = (int)dv;
    s->metrics = metrics_new();
    if (!s->metrics) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (s->opts.history.enabled && s->opts.history.path) {
        struct trace_opts to = {.path = s->opts.history.path,
                                .retention_s = s->opts.history.retention_s,
                                .capture = s->opts.history.capture,
                                .truncate_bytes = s->opts.history.truncate_bytes};
        if ((result = trace_store_open(&to, &s->trace, err)) != SP_OK)
            goto fail;
    }
    if ((result = srv_models_init(s, opts, err)) != SP_OK) /* copies opts->models, registers metrics */
        goto fail;
    metrics_gauge_fn(s->metrics, "spoke_memory_in_use_bytes", "Bytes currently allocated by spoke's allocator.",
                     mem_in_use, NULL, false);
    metrics_gauge_fn(s->metrics, "spoke_task_history_dropped_spans_total",
                     "Task-history spans dropped (queue full or write failure).", dropped_spans, s, true);
    s->rejected = metrics_family(s->metrics, METRIC_COUNTER, "spoke_http_rejected_total",
                                 "Requests refused before reaching a route, by reason (auth, host, origin, "
                                 "content_type, bad_path, bad_framing, busy, request_timeout).",
                                 "reason", NULL, 0);
    *out = s;
    return SP_OK;
fail:
    server_free(s);
    return result;
}

/* host/port -> socket address (+ MHD_USE_IPv6 in *flags for IPv6) */
static enum sp_status parse_listen_addr(const char *host, int port, struct sockaddr_storage *ss, unsigned *flags,
                                        struct sp_err *err)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return sp_err_setc(err, SP_ERR_INVALID, host, "invalid listen address '%s' (use an IP address)", host);
        *flags |= MHD_USE_IPv6;
        return SP_OK;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    const char *h = !strcmp(host, "localhost") ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, h, &a4->sin_addr) != 1)
        return sp_err_setc(err, SP_ERR_INVALID, host, "invalid listen address '%s' (use an IP address)", host);
    return SP_OK;
}

enum sp_status server_start(struct server *s, struct sp_err *err)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    enum sp_status result = parse_listen_addr(s->opts.host, s->opts.port, &ss, &flags, err);
    if (result != SP_OK)
        return result;
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->opts.port, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opts.limits.max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                 (unsigned)s->opts.limits.max_connections_per_client,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opts.limits.conn_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, srv_notify_connection, s,
                                 MHD_OPTION_UNESCAPE_CALLBACK, srv_unescape, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                                 MHD_OPTION_END);
    if (!s->daemon)
        return sp_err_setc(err, SP_ERR_IO, s->opts.host,
                           "cannot listen on %s:%d (address in use or not available; try --port 0)", s->opts.host,
                           s->opts.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->opts.port;
    if ((result = srv_gate_start(s, err)) != SP_OK)
        return result;
    srv_models_start_initial(s); /* only now: a port clash is reported before any load or download */
    return SP_OK;
}

int server_port(const struct server *s) { return s ? s->port : 0; }

bool server_ready(const struct server *s)
{
    for (size_t i = 0; s && i < s->n_models; i++) {
        struct srv_model *m = &((struct server *)s)->models[i];
        if (!m->spec.initial_load)
            continue;
        pthread_mutex_lock(&m->mu);
        bool ok = m->state == SRV_MODEL_READY;
        pthread_mutex_unlock(&m->mu);
        if (!ok)
            return false;
    }
    return s != NULL;
}

void server_shutdown(struct server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->shutdown_mu);
    if (s->shut_down) {
        pthread_mutex_unlock(&s->shutdown_mu);
        return;
    }
    s->shut_down = true;
    atomic_store(&s->shutting_down, true);
    if (s->daemon) {
        MHD_socket ls = MHD_quiesce_daemon(s->daemon); /* stop accepting */
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
    }
    srv_models_shutdown(s, s->opts.limits.shutdown_grace_ms);
    /* let cancelled streams send their last event and [DONE] before the
     * daemon closes their connections */
    for (int i = 0; i < 200 && atomic_load(&s->streams) > 0; i++)
        sp_sleep_ms(10);
    if (s->daemon) {
        MHD_stop_daemon(s->daemon); /* closes connections, joins their threads */
        s->daemon = NULL;
    }
    srv_gate_stop(s);
    if (s->trace) {
        trace_store_close(s->trace, 5000);
        s->trace = NULL;
    }
    pthread_mutex_unlock(&s->shutdown_mu);
}

void server_free(struct server *s)
{
    if (!s)
        return;
    server_shutdown(s);
    srv_models_free(s);
    metrics_free(s->metrics);
    s->opts.models = NULL;
    s->opts.n_models = 0;
    server_opts_clear(&s->opts); /* host, history path, auth lists (keys wiped) */
    srv_gate_free(s);
    pthread_mutex_destroy(&s->shutdown_mu);
    pthread_mutex_destroy(&s->add_mu);
    sp_free(s);
}
