/* http.h - internal to src/hub: one HTTP exchange over libcurl with manual
 * redirects (the token only goes to the endpoint's origin), response header
 * capture, a download sink (file + running sha256), backoff and the mapping
 * of final HTTP statuses to actionable errors. Not a public header. */
#ifndef SPOKE_HUB_HTTP_H
#define SPOKE_HUB_HTTP_H

#include "hub/hub.h"

#define HTTP_BODY_MAX (32u << 20) /* API bodies we buffer */

/* sha256 as lowercase hex (hasher.c): hub_sha256_hex copies s[0..n), which
 * must be exactly HUB_SHA256_HEX hex digits of either case, lowercased into out
 * (false otherwise); hub_sha256_digest_hex formats a 32-byte digest. */
bool hub_sha256_hex(const char *s, size_t n, char out[HUB_SHA256_HEX + 1]);
void hub_sha256_digest_hex(const unsigned char md[32], char out[HUB_SHA256_HEX + 1]);

/* SHA-256 of a growing file on a helper thread (hasher.c). */
struct hasher;
/* Start hashing fd; the first `have` bytes are already there. */
SP_MUST_USE enum sp_status hasher_new(int fd, uint64_t have, struct hasher **out);
void hasher_free(struct hasher *h); /* NULL is a no-op */
/* The file now holds `written` bytes. */
void hasher_advance(struct hasher *h, uint64_t written);
/* The file was truncated to 0: start over. */
SP_MUST_USE enum sp_status hasher_reset(struct hasher *h);
/* Wait for the hash of exactly `written` bytes; SP_ERR_IO if the file could
 * not be read back. Call hasher_reset before reusing. */
SP_MUST_USE enum sp_status hasher_finish(struct hasher *h, uint64_t written,
                                         char out[HUB_SHA256_HEX + 1]);

/* Where a download body goes. The exchange writes only 200/206 bodies here. */
struct http_sink {
    int fd;                 /* open .incomplete file */
    struct hasher *hash;    /* hashes bytes [0, offset) behind the writes */
    uint64_t offset;        /* bytes in the file so far (Range start) */
    uint64_t total;         /* expected full size, 0 = unknown */
    const char *path;       /* repo path, for progress */
    hub_progress_fn progress;
    void *progress_ud;
    double last_progress_ms;
    uint64_t fetched;       /* body bytes written over all exchanges */
    uint64_t flushed;       /* writeback started for bytes [0, flushed) */
    bool io_failed;         /* a write failed: errno in io_errno */
    int io_errno;
    bool restarted;         /* a 200 answered a Range request: file restarted at 0 */
    bool range_mismatch;    /* a 206 did not start at offset */
    bool decided;           /* the current response's status was examined */
    bool writing;           /* the current response's body goes to the file */
};

/* One response (the last hop of a redirect chain). linked_* and repo_commit
 * stick from the first hop that carried them. */
struct http_resp {
    long status;
    char location[2048];
    char etag[160];
    char linked_etag[160];
    char linked_size[32];
    char content_length[32];
    char content_range[96];
    char retry_after[64];
    char repo_commit[80];
    char error_code[64];
    char error_message[256];
    struct sp_buf body;     /* non-sink bodies (capped) */
    char curl_error[256];
    bool setup_failed;      /* libcurl refused an option / no memory for a header */
};

void http_resp_reset(struct http_resp *r, bool keep_linked);
void http_resp_free(struct http_resp *r);

/* One attempt: `method` on url, following up to max_redirects redirects by
 * hand when follow (each hop gets Authorization only if same-origin with the
 * endpoint). SP_OK: a final response is in resp (any status). SP_ERR_NETWORK:
 * transport failure (retriable). SP_ERR_HTTP: redirect loop / bad Location
 * (final). SP_ERR_IO: the sink could not write (final). */
SP_MUST_USE enum sp_status http_exchange(struct hub_client *c, const char *method, const char *url,
                                         bool follow, struct http_sink *sink,
                                         struct http_resp *resp, struct sp_err *err);

bool http_status_retriable(long status);
/* Sleep before retry number `retry` (1 = first), honouring resp's Retry-After. */
void http_backoff_sleep(struct hub_client *c, unsigned retry, const struct http_resp *resp);
/* Turn a final non-2xx response into an error (401/403 auth, 404 not found
 * naming repo / revision / file, else SP_ERR_HTTP). */
enum sp_status http_status_error(struct hub_client *c, const struct http_resp *resp,
                                 const char *repo, const char *rev, const char *path,
                                 struct sp_err *err);
/* endpoint + "/" + a + "/" + escaped(b) ...: builds URLs with each path
 * component percent-encoded. Returns NULL on allocation failure. */
char *http_url_resolve(struct hub_client *c, const char *repo, const char *rev, const char *path);
char *http_url_revision(struct hub_client *c, const char *repo, const char *rev);
const struct hub_config *http_config(const struct hub_client *c);
bool http_has_token(const struct hub_client *c);

#endif
