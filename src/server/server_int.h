/* server_int.h - (internal to src/server) the server's shared state: the
 * model registry entries, metric handles, and the helpers the route files
 * share (responses, errors, spans). Not a public API. */
#ifndef SPOKE_SERVER_INT_H
#define SPOKE_SERVER_INT_H

#include "engine/admit.h"
#include "engine/engine.h"
#include "obs/metrics.h"
#include "obs/trace.h"
#include "server/server.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

enum srv_model_state { SRV_MODEL_IDLE = 0, SRV_MODEL_LOADING, SRV_MODEL_READY, SRV_MODEL_FAILED };

struct srv_model_metrics {
    struct metric *requests, *failures, *duration_ms, *prompt_tokens, *completion_tokens, *cached_tokens;
    struct metric *ttft_s, *inter_token_s, *tps, *queue_depth, *in_flight, *rejected, *load_s, *ready;
};

struct srv_model {
    struct server *srv;
    struct server_model_spec spec;   /* deep copy */
    pthread_mutex_t mu;              /* guards state, err, em, admit, loader */
    pthread_cond_t cv;               /* signalled when a load ends */
    enum srv_model_state state;
    struct sp_err load_err;          /* why it failed */
    char *path;                      /* resolved GGUF */
    struct engine_model *em;
    struct engine_model_info info;
    struct admit *admit;             /* slots carry engine_ctx */
    pthread_t loader;
    bool loader_started;
    _Atomic int users;               /* requests between a successful srv_model_ensure and srv_model_leave */
    bool file_changed;               /* in error because the file changed under it (reloadable) */
    bool reload;                     /* the running load replaces a loaded generation */
    bool tried_set;                  /* tried holds the file as of the last reload attempt */
    struct { uint64_t dev, ino, size; int64_t mtime_ns; } tried;
    int64_t created_s;
    struct srv_model_metrics m;
    int max_token_bytes;             /* longest token text (bytes): prompt bytes / this <= tokens */
    bool load_wait_logged;           /* the "request waited for the load" advice was logged */
    struct metric *load_waits;       /* llm_load_waits_total{model} */
};

/* One client socket (MHD socket context, from connect to close). Fields
 * other than deadline_ms are used only by the connection's own thread. */
struct srv_sock {
    struct server *srv;
    int fd;
    _Atomic long long deadline_ms;   /* sp_now_ms() deadline for receiving the request; 0 = none */
    char cors_origin[256];           /* allowed cross-site Origin of the current request, "" = none */
    bool close_after;                /* the response carries Connection: close (framing errors) */
    struct srv_sock *prev, *next;    /* server's list, under socks_mu */
};

/* models added at run time (POST /api/pull) beyond the configured ones */
#define SRV_MAX_PULLED 32

struct server {
    struct server_opts opts;         /* deep copy (models in `models`) */
    struct srv_model *models;        /* room for the configured models + SRV_MAX_PULLED */
    _Atomic size_t n_models;         /* published after an entry is complete */
    size_t cap_models;
    pthread_mutex_t add_mu;          /* serialises srv_model_add */
    struct MHD_Daemon *daemon;
    int port;
    struct metrics *metrics;
    struct trace_store *trace;
    struct metric *http_requests_health; /* unlabelled helpers */
    _Atomic bool shutting_down;
    _Atomic int active;              /* requests inside a handler */
    bool shut_down;
    pthread_mutex_t shutdown_mu;
    int test_delay_ms;               /* SPOKE_TEST_DECODE_DELAY_MS (tests only) */
    int test_load_delay_ms;          /* SPOKE_TEST_LOAD_DELAY_MS (tests only) */
    /* connections (server_gate.c): the deadline watchdog */
    pthread_mutex_t socks_mu;
    pthread_cond_t socks_cv;
    struct srv_sock *socks;
    pthread_t watchdog;
    bool watchdog_started, watchdog_stop;
    /* pre-admission bounds (server_gate.c) */
    pthread_mutex_t pre_mu;
    pthread_cond_t pre_cv;
    int parsing;                     /* requests between body-complete and admission */
    size_t buffered;                 /* body bytes reserved by connections */
    _Atomic int streams;             /* SSE responses not yet finished */
    struct metric_family *rejected;  /* spoke_http_rejected_total{reason} */
};

/* per-connection request state (MHD con_cls) */
struct srv_conn {
    struct server *srv;
    struct srv_sock *sock;           /* NULL only if MHD gave no socket context */
    struct sp_buf body;
    size_t reserved;                 /* bytes taken from the server's body budget */
    bool in_parse;                   /* holds one of the max_parsing permits */
    bool http11;                     /* HTTP/1.1 (1xx probe allowed) */
    bool probed;                     /* sent the disconnect probe (100 Continue) */
    bool too_large;
    bool counted;                    /* incremented srv->active */
    double start_ms;
    int64_t start_wall_ms;
    int fd;                          /* client socket (for disconnect polls) */
};

/* ---- server.c */
/* Queue a JSON/text response with status; returns the MHD result. */
enum MHD_Result srv_respond(struct MHD_Connection *c, unsigned status, const char *content_type, const char *body,
                            size_t len, const char *retry_after);
/* OpenAI error body {"error":{"message","type","param","code"}} with status. */
enum MHD_Result srv_error(struct MHD_Connection *c, unsigned status, const char *message, const char *param,
                          const char *code, const char *retry_after);
/* HTTP status for a status code from a lower layer (client mistakes -> 4xx). */
unsigned srv_http_status(enum sp_status st);
/* True when the client of cc went away (non-blocking). EOF alone may be a
 * half-close (shutdown(SHUT_WR) after the request): when may_write, an
 * HTTP/1.1 client that sent EOF is probed once with an interim
 * "100 Continue" and counts as gone only once the socket reports an
 * error/hangup (a closed peer answers the probe with a reset). Without
 * may_write (another thread writes the socket) only errors count. */
bool srv_client_gone(struct srv_conn *cc, bool may_write);
void srv_span(struct server *s, const char *task, const char *input, const char *output, int64_t start_wall_ms,
              double duration_ms, const char *error, const char *labels_json);

/* ---- server_json.c */
/* bytes -> a JSON string (json_t *), invalid UTF-8 replaced by U+FFFD */
void *srv_json_text(const char *s, size_t n);
/* bytes -> a JSON array of their values (json_t *) */
void *srv_bytes_array(const char *s, size_t n);
/* Append s[0..n) escaped as the inside of a JSON string (U+FFFD for invalid
 * UTF-8). 0 or an sp_buf error. */
int srv_json_escape(struct sp_buf *b, const char *s, size_t n);

/* ---- server_gate.c */
/* The gate every request passes on its first call (headers complete), before
 * any route: path bytes, framing (Content-Length/Transfer-Encoding), Host,
 * Origin (+ CORS preflight), API key, Content-Type. Returns true when it
 * answered the request itself (*ret is the MHD result). */
bool srv_gate(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, const char *url, const char *method,
              enum MHD_Result *ret);
/* Add the per-request headers (CORS, Connection: close) to a response. */
void srv_decorate(struct MHD_Connection *c, struct MHD_Response *r);
/* microhttpd callbacks and the watchdog */
void srv_notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);
size_t srv_unescape(void *cls, struct MHD_Connection *c, char *s); /* c unused (may be NULL) */
/* Pure checks of the gate (fuzzed): a Host header value ("name[:port]",
 * "[v6]:port") is an IP literal, localhost or in auth->allowed_hosts; an
 * Origin is same-origin with host (may be NULL) or in auth->cors_origins; a
 * Content-Type value's media type (before ';') equals want, ignoring case. */
bool srv_host_allowed(const struct server_auth *auth, const char *hostport);
bool srv_origin_allowed(const struct server_auth *auth, const char *origin, const char *host);
bool srv_media_is(const char *ct, const char *want);
enum sp_status srv_gate_start(struct server *s, struct sp_err *err);
void srv_gate_stop(struct server *s);
void srv_gate_init(struct server *s);
void srv_gate_free(struct server *s);
/* Request deadline of cc's socket: restart (after a response) or clear
 * (request fully received). */
void srv_deadline_restart(struct srv_conn *cc);
void srv_deadline_clear(struct srv_conn *cc);
/* Cap the kernel send buffer of cc's socket (instead of autotuned
 * megabytes): bounds what a client that stops reading pins, and makes its
 * stall visible to write timeouts soon. */
void srv_small_sndbuf(struct srv_conn *cc, int bytes);
/* Count a refused request in spoke_http_rejected_total{reason}. */
void srv_count_rejected(struct server *s, const char *reason);
/* Pre-admission bounds: take n bytes of the body budget (waits up to wait_ms);
 * false = the budget stayed full. */
bool srv_budget_take(struct server *s, size_t n, int wait_ms);
void srv_budget_give(struct server *s, size_t n);
/* One of max_parsing permits; waits up to wait_ms (false = still full, or the
 * client left: gone(ud)). */
bool srv_parse_enter(struct server *s, int wait_ms, bool (*gone)(void *), void *ud);
void srv_parse_leave(struct server *s);

/* ---- server_models.c */
struct srv_model *srv_model_find(struct server *s, const char *name);
enum sp_status srv_models_init(struct server *s, const struct server_opts *o, struct sp_err *err);
void srv_models_start_initial(struct server *s);
/* Ensure the model is loaded: READY -> SP_OK; LOADING -> SP_ERR_STATE (or wait
 * when wait is true); FAILED -> the load error; IDLE -> start a load (and
 * wait when wait). gone/ud is polled while waiting. */
enum sp_status srv_model_ensure(struct srv_model *m, bool wait, bool (*gone)(void *), void *ud, struct sp_err *err);
/* Ends the use that a successful srv_model_ensure began (a reload waits for
 * every use to end before it frees the old model). */
void srv_model_leave(struct srv_model *m);

void srv_models_refresh_gauges(struct server *s);
void srv_models_shutdown(struct server *s, int grace_ms);
void srv_models_free(struct server *s);
/* Register a model at run time (initial_load false: it loads on first use).
 * Returns the existing entry when name is taken; SP_ERR_LIMIT when full. */
enum sp_status srv_model_add(struct server *s, const char *name, const char *from, struct srv_model **out,
                             struct sp_err *err);
/* Append {"id":..,"object":"model",...,"status":..} for m to a jansson array/object. */
void *srv_model_json(struct srv_model *m); /* json_t * */

/* ---- server_console.c: the web console (GET /, /console/...) */
bool srv_console_route(const char *url);
enum MHD_Result srv_console_serve(struct MHD_Connection *c, const char *url, const char *method);

/* ---- server_ollama.c: the Ollama routes (url starts with "/api/") */
enum MHD_Result srv_ollama_dispatch(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, const char *url,
                                    const char *method);

/* ---- server_gen.c */
enum MHD_Result srv_handle_completion(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool chat);

/* What a wire format sees of a generation (for its chunks and its end). */
struct srv_gen_view {
    const char *model;                   /* API id of the model */
    const char *text;                    /* the whole output so far (UTF-8 not guaranteed) */
    size_t len;
    const struct engine_gen_result *res; /* counts and timings (complete at the end) */
    double total_ms;                     /* request start to now */
    double load_ms;                      /* spent waiting for the model to load */
    const struct server_request *req;    /* the request */
    const char *id;                      /* response id (chatcmpl-...) */
    int64_t created;                     /* unix time of the response */
};

/* A wire format other than OpenAI's for the generation path (the Ollama
 * routes): the request reader, the model lookup, and the bytes of each
 * streamed piece, of the end (stream) or whole body (non-stream), of an
 * error inside a stream and of an error response. The formatters append to
 * out and return 0, or -1 when out of memory. */
struct server_limits;
struct server_request;
struct srv_dialect {
    enum sp_status (*parse)(const char *body, size_t len, bool chat, const struct server_limits *lim,
                            struct server_request *out, struct sp_err *err);
    struct srv_model *(*find)(struct server *s, const char *name); /* NULL = srv_model_find */
    const char *models_route;                                       /* named in "does not exist" (NULL = /v1/models) */
    const char *stream_type;                                        /* Content-Type of a stream */
    int (*chunk)(const struct srv_gen_view *v, const char *text, size_t len, struct sp_buf *out);
    int (*end)(const struct srv_gen_view *v, bool stream, struct sp_buf *out);
    int (*stream_error)(const char *msg, struct sp_buf *out);
    enum MHD_Result (*error)(struct MHD_Connection *c, unsigned status, const char *msg, const char *param,
                             const char *code, const char *retry_after);
};
/* ---- server_chat.c: the prompt of a request: the completions prompt as is, or the
 * chat rendered by the model's template, with the byte ranges that came from the
 * request (*spans, sorted; tokenized as text). Outputs are sp_malloc'd. */
struct tok_span;
enum sp_status srv_chat_prompt(const struct engine_model *em, const struct server_request *r, char **prompt,
                               struct tok_span **spans, size_t *n_spans, struct sp_err *err) SP_MUST_USE;
/* ---- server_tools.c: OpenAI chat responses of a request with tools (tool calls parsed
 * from the output per model family, streamed as tool_calls deltas) */
extern const struct srv_dialect srv_tools_dialect;
/* ---- server_params.c: request + model defaults -> generation parameters
 * (gp->prompt = prompt, borrowed; stop strings borrowed from r) */
void srv_gen_params(const struct server_request *r, const struct server_model_spec *sp,
                    const struct server_limits *lim, const char *prompt, struct engine_gen_params *gp);

/* The generation route (parse, model, admission, generate, respond) in the
 * wire format d (NULL = OpenAI's, chat or completions). */
enum MHD_Result srv_generate(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool chat,
                             const struct srv_dialect *d);

#endif
