/* hub.h - the Hugging Face Hub client of spoke (libcurl + OpenSSL SHA-256).
 *
 * What it does:
 *  - parses and validates model ids, revisions, cache names and repo file paths
 *    (DESIGN.md s5) before anything touches the network or the disk;
 *  - resolves the token in the design's order (the log names the source, never
 *    the token);
 *  - resolves a revision to its commit and file list (GET /api/models/.../revision/REV);
 *  - HEADs and downloads files (GET /{org}/{name}/resolve/{rev}/{path}) with
 *    manual redirect handling (the token goes only to the endpoint's own origin),
 *    Fibonacci backoff with jitter, Retry-After, a connect timeout and a
 *    low-speed abort, Range resume from <dest>.incomplete, size + sha256
 *    verification, fsync and an atomic rename, serialised by <dest>.lock.
 *
 * The hub layer knows nothing about the cache layout: callers give it the final
 * destination path (already checked to lie inside the cache).
 * Thread safety: a hub_client is used by one thread at a time; distinct clients
 * are independent. Nothing here prints; everything logs through obs/log.h. */
#ifndef SPOKE_HUB_H
#define SPOKE_HUB_H

#include "base/base.h"

#define HUB_ORG_MAX 96
#define HUB_NAME_MAX 96
#define HUB_REV_MAX 128
#define HUB_PATH_MAX 1024      /* bytes of a repo-relative file path */
#define HUB_SPEC_MAX 512       /* bytes of a whole model id */
#define HUB_SHA256_HEX 64

/* ---- ids, revisions, names, paths ------------------------------------- */

/* A parsed model id. All strings are validated and NUL-terminated. */
struct hub_id {
    char org[HUB_ORG_MAX + 1];
    char name[HUB_NAME_MAX + 1];
    char repo[HUB_ORG_MAX + HUB_NAME_MAX + 2]; /* "org/name" */
    char revision[HUB_REV_MAX + 1];            /* "main" when absent; "latest" -> "main" */
    bool revision_given;                       /* an explicit @rev / :rev was present */
};

/* Parse spec[0..len) = [huggingface:|hf:][huggingface.co/]org/name[@|:revision].
 * Rejects (SP_ERR_INVALID, one actionable line in err) anything else: embedded
 * NUL, non-ASCII, bad org/name (see hub_name_check), bad revisions (see
 * hub_revision_check). Never touches the network. */
SP_MUST_USE enum sp_status hub_id_parse(const char *spec, size_t len, struct hub_id *out,
                                        struct sp_err *err);

/* A revision must match ^[A-Za-z0-9_.-]{1,128}$ and contain no "..", and may
 * not be "." (it names a directory). Error message: "invalid revision ...: use
 * alphanumerics, underscores and dashes; commit SHAs are safe". */
SP_MUST_USE enum sp_status hub_revision_check(const char *rev, size_t len, struct sp_err *err);

/* An org, repo name or cache name: [A-Za-z0-9_.-]{1,96}, not starting with '.'
 * or '-', no "..", no "--", not ending with '.'. what names the thing in the
 * error ("org", "model name", "cache name"). */
SP_MUST_USE enum sp_status hub_name_check(const char *name, size_t len, const char *what,
                                          struct sp_err *err);

/* A repo-relative file path: 1..HUB_PATH_MAX bytes of printable ASCII without
 * \ : * ? " < > | % or NUL/control bytes; '/'-separated components, none empty,
 * "." or ".." and none longer than 255 bytes; at most 32 components. */
SP_MUST_USE enum sp_status hub_path_check(const char *path, size_t len, struct sp_err *err);

/* True if rev is a full commit id (40 or 64 lowercase hex digits): pinned. */
bool hub_revision_is_commit(const char *rev);

/* Copy s into out (size outsz) with every byte outside printable ASCII (and
 * the quote) written as \xNN, for error messages about hostile input. */
void hub_escape(const char *s, size_t len, char *out, size_t outsz);

/* ---- token ------------------------------------------------------------- */

/* Resolve the token: explicit (the hf_token/token param or --token), then
 * $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, the file at $HF_TOKEN_PATH,
 * $HF_HOME/token, ~/.cache/huggingface/token (first non-empty wins; files:
 * first line, whitespace trimmed). *token_out = sp_strdup'ed token or NULL
 * when there is none; source gets a human description of where it came from
 * ("none" if no token). A token with bytes outside printable ASCII (or spaces)
 * is rejected (SP_ERR_INVALID) so it can never inject headers. Logs the source
 * at info level, never the token. */
SP_MUST_USE enum sp_status hub_token_resolve(const char *explicit_token, char **token_out,
                                             char *source, size_t sourcesz, struct sp_err *err);

/* ---- client configuration ---------------------------------------------- */

struct hub_config {
    char endpoint[512];           /* scheme://host[:port][/prefix], no trailing '/' */
    unsigned max_attempts;        /* attempts in a row without progress (default 6) */
    unsigned max_total_attempts;  /* attempts per file download in all (default 100) */
    uint64_t stall_ms;            /* give up after this long without progress (default 600000) */
    unsigned backoff_ms;          /* Fibonacci base delay (default 1000) */
    unsigned backoff_cap_ms;      /* cap on one backoff delay (default 30000) */
    unsigned retry_after_cap_ms;  /* cap on an honoured Retry-After (default 60000) */
    long connect_timeout_s;       /* default 10 */
    long low_speed_limit;         /* bytes/s below which ... (default 1024) */
    long low_speed_time_s;        /* ... for this long aborts the transfer (default 30) */
    unsigned max_redirects;       /* default 10 */
    bool offline;                 /* HF_HUB_OFFLINE=1: no request is ever made */
};

/* Defaults (endpoint https://huggingface.co). */
void hub_config_default(struct hub_config *c);
/* Defaults overridden by HF_ENDPOINT, HF_HUB_OFFLINE, SPOKE_HUB_BACKOFF_MS,
 * SPOKE_HUB_BACKOFF_CAP_MS, SPOKE_HUB_RETRY_AFTER_CAP_MS, SPOKE_HUB_ATTEMPTS,
 * SPOKE_HUB_TOTAL_ATTEMPTS, SPOKE_HUB_STALL_MS,
 * SPOKE_HUB_LOW_SPEED_LIMIT, SPOKE_HUB_LOW_SPEED_TIME. A malformed value is
 * SP_ERR_INVALID naming the variable. HF_ENDPOINT must be http(s)://host... */
SP_MUST_USE enum sp_status hub_config_from_env(struct hub_config *c, struct sp_err *err);

/* ---- client -------------------------------------------------------------- */

struct hub_client;

/* New client for cfg (copied). token may be NULL (no Authorization header is
 * ever sent). SP_ERR_OFFLINE-free: an offline config still builds a client
 * whose requests all fail with SP_ERR_OFFLINE. */
SP_MUST_USE enum sp_status hub_client_new(const struct hub_config *cfg, const char *token,
                                          struct hub_client **out, struct sp_err *err);
void hub_client_free(struct hub_client *c); /* NULL is a no-op */

/* One file of a revision listing. */
struct hub_sibling {
    char *path;                        /* validated repo-relative path */
    uint64_t size;                     /* bytes, valid when has_size */
    bool has_size;
    char sha256[HUB_SHA256_HEX + 1];   /* LFS sha256 (lowercase hex) or "" */
};

/* A resolved revision. */
struct hub_revision {
    char *commit;                /* 40 (or 64) lowercase hex */
    struct hub_sibling *files;   /* n_files entries; unsafe paths are dropped */
    size_t n_files;
};

/* Parse the JSON body of GET /api/models/{repo}/revision/{rev} (bounded:
 * len <= 32 MiB, <= 100000 files). Requires "sha"; "siblings" optional.
 * SP_ERR_FORMAT on anything malformed. *out is freed with hub_revision_free. */
SP_MUST_USE enum sp_status hub_revision_parse(const char *json, size_t len,
                                              struct hub_revision **out, struct sp_err *err);
void hub_revision_free(struct hub_revision *r); /* NULL is a no-op */
/* The sibling with this path, or NULL. */
const struct hub_sibling *hub_revision_find(const struct hub_revision *r, const char *path);

/* Resolve id->revision on the Hub (with retries). 401/403 -> SP_ERR_AUTH,
 * 404 -> SP_ERR_NOT_FOUND (repo or revision named), offline -> SP_ERR_OFFLINE. */
SP_MUST_USE enum sp_status hub_revision_resolve(struct hub_client *c, const struct hub_id *id,
                                                struct hub_revision **out, struct sp_err *err);

/* Metadata of one file from HEAD /{repo}/resolve/{rev}/{path}. */
struct hub_file_meta {
    uint64_t size;                     /* X-Linked-Size, else Content-Length */
    bool has_size;
    char sha256[HUB_SHA256_HEX + 1];   /* from X-Linked-Etag/ETag when it is a sha256, else "" */
    char commit[HUB_SHA256_HEX + 1];   /* X-Repo-Commit or "" */
};

SP_MUST_USE enum sp_status hub_file_head(struct hub_client *c, const struct hub_id *id,
                                         const char *revision, const char *path,
                                         struct hub_file_meta *out, struct sp_err *err);

/* Progress callback: done/total bytes of one file (total 0 = unknown). Called
 * from the downloading thread, at most ~10 times a second plus once at the end. */
typedef void (*hub_progress_fn)(void *ud, const char *path, uint64_t done, uint64_t total);

struct hub_download {
    const struct hub_id *id;
    const char *revision;         /* revision or commit to fetch (validated) */
    const char *path;             /* repo-relative path (validated) */
    const char *dest;             /* final path on disk, inside the cache (caller checked) */
    const char *expect_sha256;    /* optional: from the revision listing */
    uint64_t expect_size;         /* optional: valid when has_expect_size */
    bool has_expect_size;
    hub_progress_fn progress;     /* NULL = none */
    void *progress_ud;
};

struct hub_download_result {
    uint64_t size;                    /* bytes of the installed file */
    char sha256[HUB_SHA256_HEX + 1];  /* verified sha256, "" when the Hub gave none (non-LFS) */
    bool downloaded;                  /* false: dest already existed (maybe from a concurrent pull) */
    bool resumed;                     /* a Range request continued an .incomplete file */
    uint64_t bytes_fetched;           /* body bytes received over the network */
};

/* Download d->path to d->dest: if dest exists, return at once (downloaded =
 * false). Otherwise take <dest>.lock (flock; blocks while another process
 * downloads; the file it installs is then used), HEAD for size and sha256,
 * resume <dest>.incomplete with Range, verify size and sha256, fsync, rename,
 * fsync the directory. Nothing unverified ever appears under dest. Retries as
 * the config says: progress (the partial file growing past its longest length
 * so far) resets the count of attempts in a row, but neither the total count
 * (max_total_attempts) nor the time without progress (stall_ms) is reset by a
 * server that keeps re-sending the same bytes; the final error names the
 * cause. Before fetching, the free space of dest's file system must hold the
 * missing bytes (SP_ERR_NOSPACE naming both sizes; also on ENOSPC while
 * writing). An integrity mismatch restarts from zero once, then fails with
 * SP_ERR_INTEGRITY (the .incomplete is removed). An .incomplete left empty by
 * a failure is removed. */
SP_MUST_USE enum sp_status hub_file_download(struct hub_client *c, const struct hub_download *d,
                                             struct hub_download_result *res, struct sp_err *err);

/* ---- helpers (exposed for the cache layer and tests) ---------------------- */

/* SHA-256 of a whole file; *size_out = its size. */
SP_MUST_USE enum sp_status hub_sha256_file(const char *path, char out[HUB_SHA256_HEX + 1],
                                           uint64_t *size_out, struct sp_err *err);
/* Backoff before attempt number `retry` (1 = first retry): base * fib(retry),
 * capped, times a jitter factor in [0.75, 1.25) derived from rnd; at least
 * retry_after_ms (itself capped by retry_after_cap_ms) when non-zero. */
uint64_t hub_backoff_ms(const struct hub_config *c, unsigned retry, uint64_t retry_after_ms,
                        uint32_t rnd);
/* Parse a Retry-After value (delta-seconds or an HTTP date relative to now_s). */
bool hub_parse_retry_after(const char *value, int64_t now_s, uint64_t *ms_out);
/* Extract a sha256 from an ETag value ("...", W/"...", bare); false if it is
 * not 64 hex digits. out is lowercase. */
bool hub_etag_sha256(const char *etag, char out[HUB_SHA256_HEX + 1]);
/* True if both URLs have the same scheme, host and port. */
bool hub_same_origin(const char *a, const char *b);
/* Take an exclusive flock on path (created 0644) robustly against concurrent
 * unlinks; *fd_out is the held descriptor. Release with hub_lock_release,
 * which unlinks the lock file. */
SP_MUST_USE enum sp_status hub_lock_acquire(const char *path, int *fd_out, struct sp_err *err);
void hub_lock_release(const char *path, int fd);

#endif
