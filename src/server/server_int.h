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
    struct metric *requests, *failures, *duration_ms, *prompt_tokens, *completion_tokens;
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
    int64_t created_s;
    struct srv_model_metrics m;
};

struct server {
    struct server_opts opts;         /* deep copy (models in `models`) */
    struct srv_model *models;
    size_t n_models;
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
};

/* per-connection request state (MHD con_cls) */
struct srv_conn {
    struct server *srv;
    struct sp_buf body;
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
/* True when the client socket fd was closed by the peer (non-blocking poll). */
bool srv_client_gone(int fd);
void srv_span(struct server *s, const char *task, const char *input, const char *output, int64_t start_wall_ms,
              double duration_ms, const char *error, const char *labels_json);

/* ---- server_models.c */
struct srv_model *srv_model_find(struct server *s, const char *name);
enum sp_status srv_models_init(struct server *s, const struct server_opts *o, struct sp_err *err);
void srv_models_start_initial(struct server *s);
/* Ensure the model is loaded: READY -> SP_OK; LOADING -> SP_ERR_STATE (or wait
 * when wait is true); FAILED -> the load error; IDLE -> start a load (and
 * wait when wait). gone/ud is polled while waiting. */
enum sp_status srv_model_ensure(struct srv_model *m, bool wait, bool (*gone)(void *), void *ud, struct sp_err *err);
void srv_models_refresh_gauges(struct server *s);
void srv_models_shutdown(struct server *s, int grace_ms);
void srv_models_free(struct server *s);
/* Append {"id":..,"object":"model",...,"status":..} for m to a jansson array/object. */
void *srv_model_json(struct srv_model *m); /* json_t * */

/* ---- server_gen.c */
enum MHD_Result srv_handle_completion(struct server *s, struct MHD_Connection *c, struct srv_conn *cc, bool chat);

#endif
