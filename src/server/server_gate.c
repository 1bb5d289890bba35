/* server_gate.c - who may call, and how much a caller may hold before its
 * request is admitted (issue 14 s1, s3).
 *
 * The gate (srv_gate) runs once per request, on microhttpd's first call
 * (headers complete), before any route, so every route - also routes added
 * later - passes it. In order: control bytes in the path (srv_unescape marks
 * them) -> 400; Content-Length duplicated or combined with
 * Transfer-Encoding -> 400 with Connection: close (no request smuggling
 * behind a proxy); Host not an IP literal, localhost or server.allowed_hosts
 * -> 403 (DNS rebinding); a browser Origin that is neither same-origin nor in
 * server.cors_origins -> 403, an allowed one gets CORS headers and OPTIONS
 * preflights are answered here; API keys (Bearer, compared in constant time
 * over SHA-256 digests so neither content nor length leaks) -> 401 except
 * on /health, /v1/ready and, when metrics_public, /metrics; request bodies
 * must be JSON (Content-Type: application/json; /v1/sql also takes
 * application/sql) -> 415.
 *
 * Connections: microhttpd's notify callback keeps a list of open sockets
 * with a deadline (request_timeout_s from connect or from the end of the
 * previous response until the request is fully received). A watchdog thread
 * shuts down sockets past it, so a client that trickles bytes cannot hold a
 * connection (microhttpd's own timeout restarts on every byte). Entries leave
 * the list in the CLOSED notification, which microhttpd sends before it
 * closes the descriptor, so the watchdog never touches a reused fd.
 *
 * Pre-admission: a byte budget for buffered request bodies and a permit count
 * for parsing/rendering/tokenizing bound the memory that requests can take
 * before a model admits them. */
#include "server/server_int.h"
#include "obs/log.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define WATCHDOG_TICK_MS 100

/* ---- connections and the deadline watchdog */

static long long deadline_from_now(struct server *s)
{
    return (long long)sp_now_ms() + (long long)s->opts.limits.request_timeout_s * 1000;
}

void srv_notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    struct server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct srv_sock *k = sp_calloc(1, sizeof *k);
        if (!k)
            return; /* the connection works, only without a deadline */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->srv = s;
        k->fd = ci ? ci->connect_fd : -1;
        atomic_init(&k->deadline_ms, deadline_from_now(s));
        pthread_mutex_lock(&s->socks_mu);
        k->next = s->socks;
        if (s->socks)
            s->socks->prev = k;
        s->socks = k;
        pthread_mutex_unlock(&s->socks_mu);
        *socket_context = k;
        return;
    }
    struct srv_sock *k = *socket_context;
    if (!k)
        return;
    pthread_mutex_lock(&s->socks_mu);
    if (k->prev)
        k->prev->next = k->next;
    else
        s->socks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    pthread_mutex_unlock(&s->socks_mu);
    sp_free(k);
    *socket_context = NULL;
}

void srv_deadline_restart(struct srv_conn *cc)
{
    if (cc && cc->sock)
        atomic_store(&cc->sock->deadline_ms, deadline_from_now(cc->srv));
}

void srv_deadline_clear(struct srv_conn *cc)
{
    if (cc && cc->sock)
        atomic_store(&cc->sock->deadline_ms, 0);
}

static void *watchdog_main(void *arg)
{
    struct server *s = arg;
    pthread_mutex_lock(&s->socks_mu);
    while (!s->watchdog_stop) {
        long long now = (long long)sp_now_ms();
        for (struct srv_sock *k = s->socks; k; k = k->next) {
            long long d = atomic_load(&k->deadline_ms);
            if (d && now > d && k->fd >= 0) {
                atomic_store(&k->deadline_ms, 0);
                shutdown(k->fd, SHUT_RDWR); /* microhttpd's thread sees the error and closes */
                srv_count_rejected(s, "request_timeout");
            }
        }
        sp_cond_wait_ms(&s->socks_cv, &s->socks_mu, WATCHDOG_TICK_MS);
    }
    pthread_mutex_unlock(&s->socks_mu);
    return NULL;
}

void srv_gate_init(struct server *s)
{
    pthread_mutex_init(&s->socks_mu, NULL);
    pthread_cond_init(&s->socks_cv, NULL);
    pthread_mutex_init(&s->pre_mu, NULL);
    pthread_cond_init(&s->pre_cv, NULL);
}

enum sp_status srv_gate_start(struct server *s, struct sp_err *err)
{
    s->watchdog_stop = false;
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0)
        return sp_err_set(err, SP_ERR_INTERNAL, "cannot start the connection watchdog thread");
    s->watchdog_started = true;
    return SP_OK;
}

void srv_gate_stop(struct server *s)
{
    if (!s->watchdog_started)
        return;
    pthread_mutex_lock(&s->socks_mu);
    s->watchdog_stop = true;
    pthread_cond_broadcast(&s->socks_cv);
    pthread_mutex_unlock(&s->socks_mu);
    pthread_join(s->watchdog, NULL);
    s->watchdog_started = false;
}

void srv_gate_free(struct server *s)
{
    pthread_mutex_destroy(&s->socks_mu);
    pthread_cond_destroy(&s->socks_cv);
    pthread_mutex_destroy(&s->pre_mu);
    pthread_cond_destroy(&s->pre_cv);
}

void srv_small_sndbuf(struct srv_conn *cc, int bytes)
{
    if (cc && cc->fd >= 0)
        (void)setsockopt(cc->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

void srv_count_rejected(struct server *s, const char *reason)
{
    if (s->rejected)
        metric_inc(metric_series(s->rejected, reason));
}

/* ---- pre-admission bounds */

bool srv_budget_take(struct server *s, size_t n, int wait_ms)
{
    size_t cap = s->opts.limits.max_buffered_bytes;
    double deadline = sp_now_ms() + wait_ms;
    pthread_mutex_lock(&s->pre_mu);
    /* one request alone may always use up to the whole budget */
    while (s->buffered && s->buffered + n > cap) {
        double left = deadline - sp_now_ms();
        if (left <= 0 || atomic_load(&s->shutting_down)) {
            pthread_mutex_unlock(&s->pre_mu);
            return false;
        }
        sp_cond_wait_ms(&s->pre_cv, &s->pre_mu, (int)SP_MIN(left, 100.0));
    }
    s->buffered += n;
    pthread_mutex_unlock(&s->pre_mu);
    return true;
}

void srv_budget_give(struct server *s, size_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&s->pre_mu);
    s->buffered -= SP_MIN(n, s->buffered);
    pthread_cond_broadcast(&s->pre_cv);
    pthread_mutex_unlock(&s->pre_mu);
}

bool srv_parse_enter(struct server *s, int wait_ms, bool (*gone)(void *), void *ud)
{
    double deadline = sp_now_ms() + wait_ms;
    pthread_mutex_lock(&s->pre_mu);
    while (s->parsing >= s->opts.limits.max_parsing) {
        double left = deadline - sp_now_ms();
        if (left <= 0 || atomic_load(&s->shutting_down)) {
            pthread_mutex_unlock(&s->pre_mu);
            return false;
        }
        sp_cond_wait_ms(&s->pre_cv, &s->pre_mu, (int)SP_MIN(left, 50.0));
        if (gone && s->parsing >= s->opts.limits.max_parsing) {
            pthread_mutex_unlock(&s->pre_mu);
            bool g = gone(ud);
            pthread_mutex_lock(&s->pre_mu);
            if (g) {
                pthread_mutex_unlock(&s->pre_mu);
                return false;
            }
        }
    }
    s->parsing++;
    pthread_mutex_unlock(&s->pre_mu);
    return true;
}

void srv_parse_leave(struct server *s)
{
    pthread_mutex_lock(&s->pre_mu);
    if (s->parsing > 0)
        s->parsing--;
    pthread_cond_broadcast(&s->pre_cv);
    pthread_mutex_unlock(&s->pre_mu);
}

/* ---- path */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* microhttpd's unescape hook (path and query arguments): %XX decoding, but a
 * control byte (raw or escaped, %00 included) turns the whole string into
 * "\x7f", which the gate refuses; without this "/v1/sql%00.txt" decoded to
 * "/v1/sql" (strcmp stops at the NUL) and ran SQL. */
size_t srv_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    SP_UNUSED(cls);
    SP_UNUSED(c);
    char *w = s;
    for (const char *r = s; *r; r++) {
        unsigned char ch = (unsigned char)*r;
        if (ch == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
            ch = (unsigned char)(hexval(r[1]) * 16 + hexval(r[2]));
            r += 2;
        }
        if (ch < 0x20 || ch == 0x7f) {
            s[0] = 0x7f;
            s[1] = 0;
            return 1;
        }
        *w++ = (char)ch;
    }
    *w = 0;
    return (size_t)(w - s);
}

/* ---- responses of the gate */

static enum MHD_Result gate_error(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, unsigned status,
                                  const char *reason, const char *msg, const char *code)
{
    srv_count_rejected(s, reason);
    LOG_DEBUG("server", "refused (%s): %s", reason, msg);
    if (status == 401) {
        /* WWW-Authenticate needs a response of its own */
        char body[512];
        struct sp_buf b = {0};
        int rc = sp_buf_printf(&b, "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                                   "\"param\":null,\"code\":\"%s\"}}", msg, code);
        sp_strlcpy(body, rc ? "{}" : b.data, sizeof body);
        sp_buf_free(&b);
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        srv_decorate(c, r);
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
    }
    SP_UNUSED(cc);
    return srv_error(c, status, msg, NULL, code, NULL);
}

void srv_decorate(struct MHD_Connection *c, struct MHD_Response *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct srv_sock *k = ci ? ci->socket_context : NULL;
    if (!k)
        return;
    if (k->cors_origin[0]) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, k->cors_origin);
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
    }
    if (k->close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* ---- framing */

struct framing {
    int n_cl, n_te;
    bool te_chunked;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    SP_UNUSED(kind);
    struct framing *f = cls;
    if (key && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        f->n_cl++;
    if (key && !strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->n_te++;
        f->te_chunked = value && !strcasecmp(value, "chunked");
    }
    return MHD_YES;
}

/* ---- Host and Origin */

/* "host[:port]" / "[v6]:port" -> the host part (lower case) in out */
static bool host_part(const char *hp, char *out, size_t n)
{
    size_t len;
    if (hp[0] == '[') {
        const char *e = strchr(hp, ']');
        if (!e || (e[1] && e[1] != ':'))
            return false;
        len = (size_t)(e - hp - 1);
        hp++;
    } else {
        const char *colon = strchr(hp, ':');
        len = colon ? (size_t)(colon - hp) : strlen(hp);
    }
    if (len == 0 || len >= n)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = hp[i];
        out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    out[len] = 0;
    return true;
}

static bool is_ip_literal(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1;
}

/* IP literals cannot be rebound by a DNS answer, localhost is ours, the rest
 * must be configured. */
bool srv_host_allowed(const struct server_auth *auth, const char *hostport)
{
    char h[256], want[256];
    if (!host_part(hostport, h, sizeof h))
        return false;
    if (is_ip_literal(h) || !strcmp(h, "localhost"))
        return true;
    for (size_t i = 0; i < auth->n_allowed_hosts; i++) {
        const char *a = auth->allowed_hosts[i];
        if (!strcmp(a, "*"))
            return true;
        if (host_part(a, want, sizeof want) && !strcmp(want, h))
            return true;
    }
    return false;
}

/* "scheme://hostport" equal to the request's own Host (same origin)? */
static bool same_origin(const char *origin, const char *host)
{
    const char *p = NULL;
    if (!strncasecmp(origin, "http://", 7))
        p = origin + 7;
    else if (!strncasecmp(origin, "https://", 8))
        p = origin + 8;
    return p && host && !strcasecmp(p, host);
}

bool srv_origin_allowed(const struct server_auth *auth, const char *origin, const char *host)
{
    if (same_origin(origin, host))
        return true;
    for (size_t i = 0; i < auth->n_cors_origins; i++) {
        const char *o = auth->cors_origins[i];
        size_t n = strlen(o);
        while (n && o[n - 1] == '/')
            n--;
        if (!strcmp(o, "*") || (strlen(origin) == n && !strncasecmp(origin, o, n)))
            return true;
    }
    return false;
}

/* ---- API keys */

static bool key_matches(const struct server *s, const char *given, size_t len)
{
    unsigned char hg[SHA256_DIGEST_LENGTH], hk[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, len, hg);
    int ok = 0;
    for (size_t i = 0; i < s->opts.auth.n_api_keys; i++) { /* no early exit: every key is compared */
        const char *k = s->opts.auth.api_keys[i];
        SHA256((const unsigned char *)k, strlen(k), hk);
        ok |= CRYPTO_memcmp(hg, hk, sizeof hg) == 0;
    }
    OPENSSL_cleanse(hg, sizeof hg);
    OPENSSL_cleanse(hk, sizeof hk);
    return ok != 0;
}

static bool route_is_open(const struct server *s, const char *url)
{
    return !strcmp(url, "/health") || !strcmp(url, "/v1/ready") ||
           (s->opts.auth.metrics_public && !strcmp(url, "/metrics")) ||
           srv_console_route(url); /* the console's static page; its API calls carry the key */
}

/* media type of a Content-Type value (before ';', trimmed) equals want? */
bool srv_media_is(const char *ct, const char *want)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == 0 || *ct == ';';
}

static enum MHD_Result preflight(struct MHD_Connection *c)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST, OPTIONS");
    srv_decorate(c, r);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, r);
    MHD_destroy_response(r);
    return ret;
}

bool srv_gate(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, const char *url, const char *method,
              enum MHD_Result *ret)
{
    struct srv_sock *k = cc->sock;
    char msg[400];
    if (k) {
        k->cors_origin[0] = 0;
        k->close_after = false;
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            if (k)
                k->close_after = true;
            *ret = gate_error(s, c, cc, 400, "bad_path", "the request path contains a NUL or control character",
                              "invalid_path");
            return true;
        }
    }
    struct framing f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
    if (f.n_cl > 1 || f.n_te > 1 || (f.n_te && f.n_cl) || (f.n_te && !f.te_chunked)) {
        if (k)
            k->close_after = true; /* the rest of the stream cannot be trusted to start a request */
        *ret = gate_error(s, c, cc, 400, "bad_framing",
                          f.n_cl > 1   ? "more than one Content-Length header"
                          : f.n_te > 1 ? "more than one Transfer-Encoding header"
                          : f.n_cl     ? "both Content-Length and Transfer-Encoding are present"
                                       : "Transfer-Encoding other than chunked is not supported",
                          "invalid_request");
        return true;
    }
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (host && !srv_host_allowed(&s->opts.auth, host)) {
        snprintf(msg, sizeof msg,
                 "Host '%.100s' is not allowed; add it to server.allowed_hosts in spoke.yaml (protects against "
                 "DNS rebinding)", host);
        for (char *p = msg; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                *p = '?';
        *ret = gate_error(s, c, cc, 403, "host", msg, "host_not_allowed");
        return true;
    }
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin && !same_origin(origin, host)) {
        if (!srv_origin_allowed(&s->opts.auth, origin, NULL) || strlen(origin) >= sizeof k->cors_origin) {
            *ret = gate_error(s, c, cc, 403, "origin",
                              "cross-site request refused: add the page's origin to server.cors_origins in spoke.yaml",
                              "origin_not_allowed");
            return true;
        }
        if (k)
            sp_strlcpy(k->cors_origin, origin, sizeof k->cors_origin);
    }
    if (!strcmp(method, "OPTIONS")) {
        *ret = preflight(c);
        return true;
    }
    if (s->opts.auth.n_api_keys && !route_is_open(s, url)) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!a || strncasecmp(a, "Bearer ", 7) != 0) {
            *ret = gate_error(s, c, cc, 401, "auth",
                              "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' (the OpenAI "
                              "SDKs' api_key).", "invalid_api_key");
            return true;
        }
        a += 7;
        while (*a == ' ')
            a++;
        if (!key_matches(s, a, strlen(a))) {
            *ret = gate_error(s, c, cc, 401, "auth", "Incorrect API key provided.", "invalid_api_key");
            return true;
        }
    }
    if (!strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        bool sql = !strcmp(url, "/v1/sql");
        if (!srv_media_is(ct, "application/json") && !(sql && srv_media_is(ct, "application/sql"))) {
            *ret = gate_error(s, c, cc, 415, "content_type",
                              sql ? "send the query as {\"sql\": \"SELECT ...\"} with Content-Type: application/json, "
                                    "or as SQL text with Content-Type: application/sql"
                                  : "send the body as JSON with Content-Type: application/json",
                              "unsupported_media_type");
            return true;
        }
    }
    return false;
}
