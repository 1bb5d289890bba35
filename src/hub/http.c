/* http.c - the libcurl side of the Hub client: configuration from the
 * environment, the client (one reused easy handle, so connections are kept
 * alive), single HTTP exchanges with redirects followed by hand so the
 * Authorization header is attached only to the endpoint's own origin, header
 * capture, the streaming download sink (write + sha256 + progress), Fibonacci
 * backoff with jitter and Retry-After, and HTTP status -> actionable error. */
#include "hub/http.h"
#include "obs/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HTTP_WRITEBACK_STEP (32u << 20)

struct hub_client {
    struct hub_config cfg;
    CURL *curl;
    char *token;     /* NULL = none */
    uint64_t rng;    /* xorshift state for jitter */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;
static void curl_init_once(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- configuration ------------------------------------------------------ */

void hub_config_default(struct hub_config *c)
{
    memset(c, 0, sizeof(*c));
    sp_strlcpy(c->endpoint, "https://huggingface.co", sizeof(c->endpoint));
    c->max_attempts = 6;
    c->max_total_attempts = 100;
    c->stall_ms = 600000;
    c->backoff_ms = 1000;
    c->backoff_cap_ms = 30000;
    c->retry_after_cap_ms = 60000;
    c->connect_timeout_s = 10;
    c->low_speed_limit = 1024;
    c->low_speed_time_s = 30;
    c->max_redirects = 10;
}

static enum sp_status env_u64(const char *name, uint64_t max, uint64_t *out, struct sp_err *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return SP_OK;
    if (!sp_parse_u64(v, max, out))
        return sp_err_setc(err, SP_ERR_INVALID, name, "%s must be an integer in [0, %llu]", name,
                           (unsigned long long)max);
    return SP_OK;
}

enum sp_status hub_config_from_env(struct hub_config *c, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    hub_config_default(c);
    const char *ep = getenv("HF_ENDPOINT");
    if (ep && *ep) {
        size_t n = strlen(ep);
        while (n && ep[n - 1] == '/')
            n--;
        bool ok = n < sizeof(c->endpoint) &&
                  (sp_str_starts_with(ep, "http://") || sp_str_starts_with(ep, "https://"));
        for (size_t i = 0; ok && i < n; i++)
            if ((unsigned char)ep[i] <= 0x20 || (unsigned char)ep[i] >= 0x7f)
                ok = false;
        if (!ok)
            return sp_err_setc(err, SP_ERR_INVALID, "HF_ENDPOINT",
                               "HF_ENDPOINT must be an http(s) URL such as https://huggingface.co");
        memcpy(c->endpoint, ep, n);
        c->endpoint[n] = '\0';
    }
    const char *off = getenv("HF_HUB_OFFLINE");
    c->offline = off && *off && strcmp(off, "0") != 0 && strcmp(off, "false") != 0 &&
                 strcmp(off, "FALSE") != 0 && strcmp(off, "no") != 0;
    uint64_t v;
    struct { const char *name; uint64_t max; unsigned *u; long *l; uint64_t *q; } vars[] = {
        {"SPOKE_HUB_BACKOFF_MS", 600000, &c->backoff_ms, NULL, NULL},
        {"SPOKE_HUB_BACKOFF_CAP_MS", 3600000, &c->backoff_cap_ms, NULL, NULL},
        {"SPOKE_HUB_RETRY_AFTER_CAP_MS", 3600000, &c->retry_after_cap_ms, NULL, NULL},
        {"SPOKE_HUB_ATTEMPTS", 100, &c->max_attempts, NULL, NULL},
        {"SPOKE_HUB_TOTAL_ATTEMPTS", 10000, &c->max_total_attempts, NULL, NULL},
        {"SPOKE_HUB_STALL_MS", 86400000, NULL, NULL, &c->stall_ms},
        {"SPOKE_HUB_LOW_SPEED_LIMIT", 1u << 30, NULL, &c->low_speed_limit, NULL},
        {"SPOKE_HUB_LOW_SPEED_TIME", 86400, NULL, &c->low_speed_time_s, NULL},
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(vars); i++) {
        v = vars[i].u ? *vars[i].u : vars[i].l ? (uint64_t)*vars[i].l : *vars[i].q;
        result = env_u64(vars[i].name, vars[i].max, &v, err);
        if (result != SP_OK)
            return result;
        if (vars[i].u)
            *vars[i].u = (unsigned)v;
        else if (vars[i].l)
            *vars[i].l = (long)v;
        else
            *vars[i].q = v;
    }
    if (c->max_attempts == 0)
        c->max_attempts = 1;
    if (c->max_total_attempts == 0)
        c->max_total_attempts = 1;
    return SP_OK;
}

/* ---- client ------------------------------------------------------------- */

enum sp_status hub_client_new(const struct hub_config *cfg, const char *token,
                              struct hub_client **out, struct sp_err *err)
{
    *out = NULL;
    if (pthread_once(&curl_once, curl_init_once) != 0 || curl_init_result != CURLE_OK)
        return sp_err_set(err, SP_ERR_INTERNAL, "cannot initialise libcurl: %s",
                          curl_easy_strerror(curl_init_result));
    struct hub_client *c = sp_calloc(1, sizeof(*c));
    if (!c)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    c->cfg = *cfg;
    if (token && !(c->token = sp_strdup(token)))
        goto nomem;
    c->curl = curl_easy_init();
    if (!c->curl)
        goto nomem;
    c->rng = sp_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9e3779b97f4a7c15ull;
    *out = c;
    return SP_OK;
nomem:
    hub_client_free(c);
    return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

void hub_client_free(struct hub_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->token) {
        volatile char *t = c->token;
        for (size_t i = 0; t[i]; i++)
            t[i] = 0;
        sp_free(c->token);
    }
    sp_free(c);
}

const struct hub_config *http_config(const struct hub_client *c) { return &c->cfg; }
bool http_has_token(const struct hub_client *c) { return c->token != NULL; }

static uint32_t client_rand(struct hub_client *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return (uint32_t)(x >> 32);
}

/* ---- URLs ----------------------------------------------------------------- */

/* Append s percent-encoded except '/' (kept as the separator). */
static int url_append_path(struct sp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || strchr("-._~/", ch);
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        int r = plain ? sp_buf_append(b, s, 1) : sp_buf_append(b, enc, 3);
        if (r != SP_OK)
            return r;
    }
    return SP_OK;
}

char *http_url_resolve(struct hub_client *c, const char *repo, const char *rev, const char *path)
{
    struct sp_buf b = {0};
    if (sp_buf_appends(&b, c->cfg.endpoint) || sp_buf_appends(&b, "/") ||
        url_append_path(&b, repo) || sp_buf_appends(&b, "/resolve/") || url_append_path(&b, rev) ||
        sp_buf_appends(&b, "/") || url_append_path(&b, path)) {
        sp_buf_free(&b);
        return NULL;
    }
    return sp_buf_take(&b);
}

char *http_url_revision(struct hub_client *c, const char *repo, const char *rev)
{
    struct sp_buf b = {0};
    if (sp_buf_appends(&b, c->cfg.endpoint) || sp_buf_appends(&b, "/api/models/") ||
        url_append_path(&b, repo) || sp_buf_appends(&b, "/revision/") || url_append_path(&b, rev) ||
        sp_buf_appends(&b, "?blobs=true")) {
        sp_buf_free(&b);
        return NULL;
    }
    return sp_buf_take(&b);
}

bool hub_same_origin(const char *a, const char *b)
{
    bool same = false;
    CURLU *ua = curl_url(), *ub = curl_url();
    char *sa = NULL, *sb = NULL, *ha = NULL, *hb = NULL, *pa = NULL, *pb = NULL;
    if (!ua || !ub || curl_url_set(ua, CURLUPART_URL, a, 0) != CURLUE_OK ||
        curl_url_set(ub, CURLUPART_URL, b, 0) != CURLUE_OK)
        goto done;
    if (curl_url_get(ua, CURLUPART_SCHEME, &sa, CURLU_DEFAULT_SCHEME) != CURLUE_OK ||
        curl_url_get(ub, CURLUPART_SCHEME, &sb, CURLU_DEFAULT_SCHEME) != CURLUE_OK ||
        curl_url_get(ua, CURLUPART_HOST, &ha, 0) != CURLUE_OK ||
        curl_url_get(ub, CURLUPART_HOST, &hb, 0) != CURLUE_OK ||
        curl_url_get(ua, CURLUPART_PORT, &pa, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(ub, CURLUPART_PORT, &pb, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto done;
    same = strcasecmp(sa, sb) == 0 && strcasecmp(ha, hb) == 0 && strcmp(pa, pb) == 0;
done:
    curl_free(sa);
    curl_free(sb);
    curl_free(ha);
    curl_free(hb);
    curl_free(pa);
    curl_free(pb);
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* ---- responses ------------------------------------------------------------ */

void http_resp_reset(struct http_resp *r, bool keep_linked)
{
    char le[sizeof(r->linked_etag)], ls[sizeof(r->linked_size)], rc[sizeof(r->repo_commit)];
    memcpy(le, r->linked_etag, sizeof(le));
    memcpy(ls, r->linked_size, sizeof(ls));
    memcpy(rc, r->repo_commit, sizeof(rc));
    struct sp_buf body = r->body;
    memset(r, 0, offsetof(struct http_resp, body));
    r->setup_failed = false;
    r->curl_error[0] = '\0';
    r->body = body;
    sp_buf_reset(&r->body);
    r->body.limit = 64 * 1024;
    if (keep_linked) {
        memcpy(r->linked_etag, le, sizeof(le));
        memcpy(r->linked_size, ls, sizeof(ls));
        memcpy(r->repo_commit, rc, sizeof(rc));
    }
}

void http_resp_free(struct http_resp *r) { sp_buf_free(&r->body); }

struct xfer {
    struct hub_client *c;
    struct http_resp *resp;
    struct http_sink *sink;
    size_t body_limit;
};

static void copy_header_value(char *dst, size_t dstsz, const char *v, size_t n)
{
    while (n && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= dstsz)
        n = dstsz - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f) ? '?' : v[i];
    dst[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    struct http_resp *r = x->resp;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* a new response (e.g. after 100 Continue): reset the per-hop fields */
        const char *sp = memchr(data, ' ', n);
        long st = 0;
        for (const char *q = sp ? sp + 1 : data + n; q < data + n && *q >= '0' && *q <= '9' && st < 1000; q++)
            st = st * 10 + (*q - '0');
        r->status = st;
        r->etag[0] = r->content_length[0] = r->content_range[0] = r->retry_after[0] = '\0';
        r->error_code[0] = r->error_message[0] = '\0';
        if (x->sink)
            x->sink->decided = x->sink->writing = false;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon)
        return n;
    size_t kn = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    static const struct { const char *name; size_t off; size_t sz; bool sticky; } hs[] = {
        {"etag", offsetof(struct http_resp, etag), sizeof(((struct http_resp *)0)->etag), false},
        {"x-linked-etag", offsetof(struct http_resp, linked_etag), sizeof(((struct http_resp *)0)->linked_etag), true},
        {"x-linked-size", offsetof(struct http_resp, linked_size), sizeof(((struct http_resp *)0)->linked_size), true},
        {"content-length", offsetof(struct http_resp, content_length), sizeof(((struct http_resp *)0)->content_length), false},
        {"content-range", offsetof(struct http_resp, content_range), sizeof(((struct http_resp *)0)->content_range), false},
        {"retry-after", offsetof(struct http_resp, retry_after), sizeof(((struct http_resp *)0)->retry_after), false},
        {"x-repo-commit", offsetof(struct http_resp, repo_commit), sizeof(((struct http_resp *)0)->repo_commit), true},
        {"x-error-code", offsetof(struct http_resp, error_code), sizeof(((struct http_resp *)0)->error_code), false},
        {"x-error-message", offsetof(struct http_resp, error_message), sizeof(((struct http_resp *)0)->error_message), false},
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(hs); i++) {
        if (strlen(hs[i].name) == kn && strncasecmp(data, hs[i].name, kn) == 0) {
            char *dst = (char *)r + hs[i].off;
            if (!hs[i].sticky || !dst[0])
                copy_header_value(dst, hs[i].sz, v, vn);
            break;
        }
    }
    return n;
}

static void sink_progress(struct http_sink *s, bool force)
{
    if (!s->progress)
        return;
    double now = sp_now_ms();
    if (!force && now - s->last_progress_ms < 100.0)
        return;
    s->last_progress_ms = now;
    s->progress(s->progress_ud, s->path, s->offset, s->total);
}

/* Decide where this response's body goes (once per response). */
static bool sink_decide(struct xfer *x)
{
    struct http_sink *s = x->sink;
    struct http_resp *r = x->resp;
    s->decided = true;
    s->writing = false;
    if (r->status == 200) {
        if (s->offset > 0) {
            /* the server ignored our Range: start the file over */
            if (hasher_reset(s->hash) != SP_OK || ftruncate(s->fd, 0) != 0 ||
                lseek(s->fd, 0, SEEK_SET) != 0) {
                s->io_failed = true;
                s->io_errno = errno;
                return false;
            }
            s->offset = 0;
            s->restarted = true;
        }
        s->writing = true;
    } else if (r->status == 206) {
        /* Content-Range: bytes START-END/TOTAL must start where we are */
        const char *cr = r->content_range;
        uint64_t start = 0;
        bool ok = strncasecmp(cr, "bytes ", 6) == 0;
        const char *q = cr + 6;
        size_t digits = 0;
        while (ok && *q >= '0' && *q <= '9' && digits < 20) {
            start = start * 10 + (uint64_t)(*q - '0');
            q++;
            digits++;
        }
        if (!ok || digits == 0 || *q != '-' || start != s->offset) {
            s->range_mismatch = true;
            return false;
        }
        s->writing = true;
    }
    return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->sink && (x->resp->status == 200 || x->resp->status == 206)) {
        struct http_sink *s = x->sink;
        if (!s->decided && !sink_decide(x))
            return 0; /* aborts the transfer */
        if (!s->writing)
            return n;
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(s->fd, data + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                s->io_failed = true;
                s->io_errno = w < 0 ? errno : ENOSPC;
                return 0;
            }
            off += (size_t)w;
        }
        s->offset += n;
        hasher_advance(s->hash, s->offset);
        s->fetched += n;
        if (s->offset < s->flushed)
            s->flushed = 0; /* the file restarted */
        if (s->offset - s->flushed >= HTTP_WRITEBACK_STEP) {
            /* start writeback now so the final fsync has only the tail to do */
            (void)sync_file_range(s->fd, (off_t)s->flushed, (off_t)(s->offset - s->flushed),
                                  SYNC_FILE_RANGE_WRITE);
            s->flushed = s->offset;
        }
        sink_progress(s, false);
        return n;
    }
    /* API / error bodies: keep up to the limit, drop the rest */
    struct sp_buf *b = &x->resp->body;
    size_t room = b->len < x->body_limit ? x->body_limit - b->len : 0;
    if (room && sp_buf_append(b, data, SP_MIN(room, n)) != SP_OK)
        return 0;
    return n;
}

/* Set one option, keeping the first failure in *cc (later ones are skipped). */
#define XSET(h, cc, opt, val)                                                                  \
    do {                                                                                       \
        if (*(cc) == CURLE_OK)                                                                 \
            *(cc) = curl_easy_setopt((h), (opt), (val));                                       \
    } while (0)

/* Options of one exchange; the first rejected one is returned (nothing is sent). */
static CURLcode exchange_setup(struct hub_client *c, CURL *h, const char *url, const char *method,
                               struct xfer *x, char *errbuf)
{
    CURLcode cc = CURLE_OK;
    XSET(h, &cc, CURLOPT_URL, url);
    XSET(h, &cc, CURLOPT_NOSIGNAL, 1L);
    XSET(h, &cc, CURLOPT_FOLLOWLOCATION, 0L);
    XSET(h, &cc, CURLOPT_UNRESTRICTED_AUTH, 0L);
    XSET(h, &cc, CURLOPT_PROTOCOLS_STR, "http,https");
    XSET(h, &cc, CURLOPT_USERAGENT, "spoke/0.1 (libcurl)");
    XSET(h, &cc, CURLOPT_CONNECTTIMEOUT, c->cfg.connect_timeout_s);
    XSET(h, &cc, CURLOPT_LOW_SPEED_LIMIT, c->cfg.low_speed_limit);
    XSET(h, &cc, CURLOPT_LOW_SPEED_TIME, c->cfg.low_speed_time_s);
    XSET(h, &cc, CURLOPT_BUFFERSIZE, 512L * 1024); /* best of 16K/100K/512K on loopback */
    XSET(h, &cc, CURLOPT_ERRORBUFFER, errbuf);
    XSET(h, &cc, CURLOPT_HEADERFUNCTION, on_header);
    XSET(h, &cc, CURLOPT_HEADERDATA, x);
    XSET(h, &cc, CURLOPT_WRITEFUNCTION, on_body);
    XSET(h, &cc, CURLOPT_WRITEDATA, x);
    if (strcmp(method, "HEAD") == 0)
        XSET(h, &cc, CURLOPT_NOBODY, 1L);
    return cc;
}

/* Append a header line; false when out of memory (*list is kept). */
static bool hdr_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n)
        return false;
    *list = n;
    return true;
}

/* One request/response, no redirects followed. A rejected option or a failed
 * header allocation sets resp->setup_failed (final, not retried). */
static CURLcode exchange_once(struct hub_client *c, const char *method, const char *url,
                              struct http_sink *sink, struct http_resp *resp)
{
    CURL *h = c->curl;
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    char range[64];
    char errbuf[CURL_ERROR_SIZE] = "";
    struct xfer x = {c, resp, sink, sink ? 64 * 1024 : HTTP_BODY_MAX};
    bool hdr_ok = true;
    resp->body.limit = HTTP_BODY_MAX;
    curl_easy_reset(h);
    CURLcode cc = exchange_setup(c, h, url, method, &x, errbuf);
    if (c->token && hub_same_origin(url, c->cfg.endpoint)) {
        struct sp_buf a = {0};
        if (sp_buf_printf(&a, "Authorization: Bearer %s", c->token) == SP_OK)
            auth = sp_buf_take(&a);
        sp_buf_free(&a);
        hdr_ok = auth && hdr_add(&hdrs, auth);
    }
    if (hdr_ok && sink && sink->offset > 0) {
        snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)sink->offset);
        hdr_ok = hdr_add(&hdrs, range);
    }
    if (hdr_ok && sink)
        hdr_ok = hdr_add(&hdrs, "Accept-Encoding: identity");
    if (!hdr_ok && cc == CURLE_OK)
        cc = CURLE_OUT_OF_MEMORY;
    if (hdrs)
        XSET(h, &cc, CURLOPT_HTTPHEADER, hdrs);
    if (cc != CURLE_OK) {
        resp->setup_failed = true;
    } else {
        cc = curl_easy_perform(h);
    }
    if (cc == CURLE_OK) {
        long st = 0;
        if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st) != CURLE_OK)
            st = 0;
        resp->status = st;
        char *loc = NULL;
        if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
            sp_strlcpy(resp->location, loc, sizeof(resp->location));
        if (sink && (st == 200 || st == 206) && !sink->decided && !sink_decide(&x))
            cc = CURLE_WRITE_ERROR; /* empty body: still validate the range */
    }
    snprintf(resp->curl_error, sizeof(resp->curl_error), "%s",
             errbuf[0] ? errbuf : curl_easy_strerror(cc));
    /* unhook what points into this frame; a failure here cannot matter: the
     * next exchange starts with curl_easy_reset */
    (void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    if (auth) {
        memset(auth, 0, strlen(auth));
        sp_free(auth);
    }
    return cc;
}

enum sp_status http_exchange(struct hub_client *c, const char *method, const char *url, bool follow,
                             struct http_sink *sink, struct http_resp *resp, struct sp_err *err)
{
    char cur[2048];
    if (c->cfg.offline)
        return sp_err_set(err, SP_ERR_OFFLINE,
                          "HF_HUB_OFFLINE=1 and the model is not in the cache; unset "
                          "HF_HUB_OFFLINE or pull it first");
    if (sp_strlcpy(cur, url, sizeof(cur)) >= sizeof(cur))
        return sp_err_set(err, SP_ERR_INVALID, "URL too long");
    http_resp_reset(resp, false);
    for (unsigned hop = 0;; hop++) {
        http_resp_reset(resp, true);
        if (sink)
            sink->decided = sink->writing = false;
        LOG_DEBUG("hub", "%s %s", method, cur);
        CURLcode cc = exchange_once(c, method, cur, sink, resp);
        if (resp->setup_failed)
            return sp_err_set(err, cc == CURLE_OUT_OF_MEMORY ? SP_ERR_NOMEM : SP_ERR_INTERNAL,
                              "libcurl rejected the request setup: %s", resp->curl_error);
        if (sink && sink->io_failed)
            return sp_err_set(err, sink->io_errno == ENOSPC ? SP_ERR_NOSPACE : SP_ERR_IO,
                              "cannot write the download: %s%s", strerror(sink->io_errno),
                              sink->io_errno == ENOSPC ? " (free some disk space and pull again: "
                                                         "the partial file is kept)" : "");
        if (cc != CURLE_OK) {
            if (sink && sink->range_mismatch)
                return sp_err_set(err, SP_ERR_NETWORK, "server answered a Range request with the wrong range");
            return sp_err_set(err, SP_ERR_NETWORK, "transfer failed: %s", resp->curl_error);
        }
        bool redirect = resp->status == 301 || resp->status == 302 || resp->status == 303 ||
                        resp->status == 307 || resp->status == 308;
        if (!redirect || !follow)
            return SP_OK;
        if (!resp->location[0])
            return sp_err_set(err, SP_ERR_HTTP, "HTTP %ld redirect without a Location", resp->status);
        if (hop + 1 > c->cfg.max_redirects)
            return sp_err_set(err, SP_ERR_HTTP,
                              "too many redirects (more than %u) fetching %s; the server is "
                              "misconfigured (redirect loop)",
                              c->cfg.max_redirects, url);
        if (!sp_str_starts_with(resp->location, "http://") &&
            !sp_str_starts_with(resp->location, "https://"))
            return sp_err_set(err, SP_ERR_HTTP, "refusing a redirect to a non-HTTP URL");
        if (sp_str_starts_with(cur, "https://") && sp_str_starts_with(resp->location, "http://"))
            return sp_err_set(err, SP_ERR_HTTP, "refusing a redirect from https to http");
        if (!hub_same_origin(resp->location, c->cfg.endpoint))
            LOG_DEBUG("hub", "redirected to another origin: no token sent there");
        sp_strlcpy(cur, resp->location, sizeof(cur));
    }
}

/* ---- retries ------------------------------------------------------------- */

bool http_status_retriable(long status) { return status == 408 || status == 429 || status >= 500; }

uint64_t hub_backoff_ms(const struct hub_config *c, unsigned retry, uint64_t retry_after_ms,
                        uint32_t rnd)
{
    uint64_t a = 1, b = 1; /* fib(1) = fib(2) = 1 */
    for (unsigned i = 2; i < retry && b < (1ull << 40); i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    uint64_t d = (uint64_t)c->backoff_ms * b;
    if (d > c->backoff_cap_ms)
        d = c->backoff_cap_ms;
    /* jitter in [0.75, 1.25) */
    d = d * (750 + (rnd % 500)) / 1000;
    if (retry_after_ms) {
        uint64_t ra = SP_MIN(retry_after_ms, (uint64_t)c->retry_after_cap_ms);
        if (d < ra)
            d = ra;
    }
    return d;
}

bool hub_parse_retry_after(const char *value, int64_t now_s, uint64_t *ms_out)
{
    uint64_t s;
    if (!value || !*value)
        return false;
    if (sp_parse_u64(value, 1ull << 31, &s)) {
        *ms_out = s * 1000;
        return true;
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return false;
    *ms_out = (int64_t)t > now_s ? (uint64_t)((int64_t)t - now_s) * 1000 : 0;
    return true;
}

void http_backoff_sleep(struct hub_client *c, unsigned retry, const struct http_resp *resp)
{
    uint64_t ra = 0;
    if (resp && resp->retry_after[0])
        (void)hub_parse_retry_after(resp->retry_after, sp_wall_ms() / 1000, &ra);
    uint64_t d = hub_backoff_ms(&c->cfg, retry, ra, client_rand(c));
    LOG_INFO("hub", "retrying in %.1f s (retry %u of %u)", (double)d / 1000.0, retry,
             c->cfg.max_attempts - 1);
    sp_sleep_ms(d);
}

enum sp_status http_status_error(struct hub_client *c, const struct http_resp *resp, const char *repo,
                                 const char *rev, const char *path, struct sp_err *err)
{
    long st = resp->status;
    const char *code = resp->error_code;
    if (err)
        err->http_status = (int)st;
    if (st == 401 || st == 403) {
        if (strcmp(code, "RepoNotFound") == 0)
            return sp_err_setc(err, SP_ERR_NOT_FOUND, repo,
                               "model %s not found on %s (HTTP %ld); check the id, or if it is "
                               "private set hf_token (HF_TOKEN) with read access",
                               repo, c->cfg.endpoint, st);
        return sp_err_setc(err, SP_ERR_AUTH, repo,
                           "access to %s denied (HTTP %ld%s): set hf_token and accept the model's "
                           "license on the Hub; check the token has read scope",
                           repo, st, c->token ? ", the token was rejected" : ", no token was found");
    }
    if (st == 404) {
        if (strcmp(code, "RevisionNotFound") == 0)
            return sp_err_setc(err, SP_ERR_NOT_FOUND, rev,
                               "revision \"%s\" not found in %s; check the branch, tag or commit",
                               rev, repo);
        if (path && strcmp(code, "EntryNotFound") == 0)
            return sp_err_setc(err, SP_ERR_NOT_FOUND, path,
                               "file \"%s\" not found in %s@%s; check the --file name", path, repo,
                               rev);
        if (strcmp(code, "RepoNotFound") == 0 || !path)
            return sp_err_setc(err, SP_ERR_NOT_FOUND, repo,
                               "model %s not found on %s (HTTP 404); check the id", repo,
                               c->cfg.endpoint);
        return sp_err_setc(err, SP_ERR_NOT_FOUND, path, "file \"%s\" not found in %s@%s (HTTP 404)",
                           path, repo, rev);
    }
    return sp_err_setc(err, SP_ERR_HTTP, repo, "the Hub answered HTTP %ld%s%s", st,
                       resp->error_message[0] ? ": " : "", resp->error_message);
}
