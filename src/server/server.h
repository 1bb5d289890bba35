/* server.h - spoke's OpenAI-compatible HTTP server (libmicrohttpd, one
 * thread per connection so a slow generation never blocks /health), with
 * per-model admission control, Prometheus metrics and the SQLite task
 * history.
 *
 * Routes: GET /health, GET /v1/ready, GET /v1/models, GET /v1/models/{id},
 * GET /metrics, POST /v1/chat/completions, POST /v1/completions (both with
 * SSE streaming), POST /v1/sql, and the Ollama routes /api/... (server_ollama.c). Errors are OpenAI-shaped
 * {"error":{"message","type","param","code"}} with 400/401/403/404/405/
 * 413/415/429/503. Every request first passes the gate of server_gate.c
 * (API keys, Host/Origin allowlists, JSON Content-Type, framing checks).
 *
 * Lifecycle: server_new (validates options, opens the task history, starts
 * loading initial_load models in the background) -> server_start (binds) ->
 * server_shutdown (stop accepting, cancel in-flight after a grace period,
 * flush history) -> server_free. */
#ifndef SPOKE_SERVER_H
#define SPOKE_SERVER_H

#include "base/base.h"
#include "engine/engine.h"
#include "obs/trace.h"

/* One model as configured (from spoke.yaml `models:` or --model). */
struct server_model_spec {
    char *name;              /* API id ("model" in requests); required */
    char *from;              /* "file:/path.gguf", "huggingface:...", "hf:org/m", "org/m:rev", or a path */
    char **files;            /* files[].path (may be empty) */
    size_t n_files;
    char *token;             /* hf_token / token param (resolved), or NULL */
    int max_concurrency;     /* slots = sequences decoded together (>= 1; default 1) */
    int kv_tokens;           /* KV cache budget in tokens, 0 = n_ctx * max_concurrency */
    int step_tokens;         /* tokens per step of the step loop, 0 = engine default (256) */
    int queue_size;          /* waiters beyond the slots (default 16) */
    bool initial_load;       /* load at startup (default true) else on first request */
    int n_ctx;               /* context per slot, 0 = engine default */
    int n_threads;           /* 0 = engine default */
    int default_max_tokens;  /* when the request gives none; 0 = server limit */
    char *chat_template;     /* params.chat_template: family name, Jinja text or file; NULL = model's */
    bool has_sampling;       /* sampling below overrides the engine defaults */
    struct engine_sampling sampling;
};

/* Turns a spec into a local GGUF path, downloading it if needed (called on a
 * loader thread; may take long). *path_out is sp_malloc'd. The error message
 * is shown to clients in 503 responses. */
struct server;
typedef enum sp_status (*server_resolve_fn)(void *ud, struct server *srv, const struct server_model_spec *spec,
                                            char **path_out,
                                            struct sp_err *err);

/* Progress of one file of a pull: done/total bytes (total 0 = unknown). */
typedef void (*server_pull_progress_fn)(void *ud, const char *file, uint64_t done, uint64_t total);
/* POST /api/pull: fetch model (a Hub id as `spoke pull` takes it, or
 * Ollama's hf.co/org/repo[:QUANT]) into the cache, reporting progress; on
 * success *from_out (sp_malloc'd) is a server_model_spec `from` that serves
 * it (e.g. "file:/abs/path.gguf"). Called on a connection thread. */
typedef enum sp_status (*server_pull_fn)(void *ud, const char *model, server_pull_progress_fn progress,
                                         void *progress_ud, char **from_out, struct sp_err *err);

/* Version reported by GET /api/version. */
#define SERVER_VERSION "0.1.0"

struct server_limits {
    size_t max_body_bytes;      /* request body cap -> 413 (default 1 MiB) */
    int max_tokens;             /* cap for max_tokens (default 4096) -> 400 above */
    int default_max_tokens;     /* when a request gives none (default 256) */
    unsigned max_connections;   /* simultaneous connections (default 512) */
    unsigned conn_timeout_s;    /* idle / header / read timeout (default 30) */
    int shutdown_grace_ms;      /* in-flight requests get this long on SIGTERM (default 5000) */
    size_t sql_max_rows;        /* /v1/sql row cap (default 1000) */
    int sql_time_ms;            /* /v1/sql time limit (default 2000) */
    int max_messages;           /* chat messages per request (default 1024) */
    int max_stop;               /* stop strings (default 4, like OpenAI) */
    unsigned max_connections_per_client; /* simultaneous connections per client IP (default 64) */
    unsigned request_timeout_s; /* absolute deadline for a request's headers + body, counted from
                                 * connect or the end of the previous response (default 30) */
    unsigned write_timeout_s;   /* a stream whose client reads nothing for this long is cancelled
                                 * and frees its slot (default 10) */
    int max_parsing;            /* requests parsed/rendered/tokenized at once, before admission
                                 * (default 4); more wait, then 429 */
    size_t max_buffered_bytes;  /* request-body bytes buffered across all connections (default
                                 * 64 MiB); over it a request waits, then 429 */
    size_t sql_max_bytes;       /* /v1/sql result cap -> 413 (default 8 MiB) */
};

struct server_history {
    bool enabled;               /* default true */
    char *path;                 /* database file (NULL = no task history) */
    int64_t retention_s;        /* 0 = keep forever (default 7 days) */
    enum trace_capture capture; /* default truncated */
    size_t truncate_bytes;      /* default 4096 */
    bool sql_endpoint;          /* POST /v1/sql served (default false: 404) */
};

/* Who may call (issue 14 s1). Keys are compared in constant time and never
 * logged, recorded in spans or metrics, or shown by /v1/models. */
struct server_auth {
    char **api_keys;            /* Authorization: Bearer <key>; none = no auth */
    size_t n_api_keys;
    bool metrics_public;        /* GET /metrics open without a key (Prometheus scrapers) */
    bool insecure_no_auth;      /* allow a non-loopback host without keys (warns) */
    char **allowed_hosts;       /* Host header values accepted besides IP literals and localhost
                                 * ("*" = any); port optional */
    size_t n_allowed_hosts;
    char **cors_origins;        /* browser Origins allowed cross-site ("*" = any), e.g.
                                 * "http://localhost:3000" */
    size_t n_cors_origins;
};

struct server_opts {
    char *host;                 /* bind address (default 127.0.0.1) */
    int port;                   /* 0 = the OS picks (see server_port) */
    struct server_limits limits;
    struct server_history history;
    struct server_auth auth;
    struct server_model_spec *models;
    size_t n_models;
    server_resolve_fn resolve;  /* NULL = spec->from must be a local path/file: */
    void *resolve_ud;
    server_pull_fn pull;        /* NULL = POST /api/pull answers 501 */
    void *pull_ud;
};

/* Fill defaults (host/path/models left NULL). */
void server_opts_default(struct server_opts *o);
/* Free the strings and model array inside o (not o itself). */
void server_opts_clear(struct server_opts *o);
void server_model_spec_default(struct server_model_spec *m);
/* Append a copy of s to a string list (*list, *n). SP_ERR_NOMEM. */
enum sp_status server_strlist_add(char ***list, size_t *n, const char *s) SP_MUST_USE;
/* True for 127.0.0.0/8, ::1 and "localhost". */
bool server_host_is_loopback(const char *host);
void server_model_spec_clear(struct server_model_spec *m);

struct server;

/* Validate options (a non-loopback host without API keys is SP_ERR_INVALID
 * unless auth.insecure_no_auth), create the metrics registry, open the task
 * history. opts is copied. Models start loading in server_start, once the
 * port is bound. */
enum sp_status server_new(const struct server_opts *opts, struct server **out, struct sp_err *err) SP_MUST_USE;
/* Bind, start serving, then start background loads of the initial_load
 * models (a port clash is reported before any load). SP_ERR_IO if the
 * address cannot be bound. */
enum sp_status server_start(struct server *s, struct sp_err *err) SP_MUST_USE;
/* The bound port (after server_start). */
int server_port(const struct server *s);
/* True once every initial_load model finished loading successfully. */
bool server_ready(const struct server *s);
/* SIGHUP: reload every model that is in error (a failed load, or its file
 * changed underneath) and every ready model whose file changed on disk; the
 * others keep serving untouched. Returns at once (loads run in background). */
void server_reload(struct server *s);
/* Stop accepting, let in-flight requests finish for up to the grace period,
 * cancel the rest, wait for them, flush the task history. Idempotent. */
void server_shutdown(struct server *s);
void server_free(struct server *s); /* shuts down first if needed; NULL no-op */

/* Count bytes downloaded for model (spoke_download_bytes_total); for the
 * resolve callback's progress reporting. Thread-safe. */
void server_count_download(struct server *s, const char *model, uint64_t bytes);

#endif
