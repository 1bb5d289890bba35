/* server_gen.h - (internal to src/server) one generation request of
 * server_gen.c, and the JSON builders of server_gen_json.c. */
#ifndef SPOKE_SERVER_GEN_H
#define SPOKE_SERVER_GEN_H

#include "server/server_int.h"
#include "server/server_req.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

struct gen_job {
    struct server *s;
    struct MHD_Connection *conn;  /* a stream's connection (its reader restarts the idle timer) */
    const struct srv_dialect *d;  /* wire format (NULL = OpenAI) */
    struct srv_model *m;
    struct admit_slot *slot[SERVER_MAX_N]; /* one per choice */
    struct engine_ctx *ctx;       /* choice 0's (names the generation group) */
    struct engine_ctx *ctxs[SERVER_MAX_N];
    int n;                        /* choices (req.n; 1 for dialects) */
    struct server_request req;
    char *prompt;
    struct tok_span *spans;       /* chat: prompt bytes that came from the request (stay text) */
    size_t n_spans;
    char *input;                  /* request body (span input) */
    struct engine_gen_params gp;
    const char **stop;
    char id[48];
    int64_t created;
    int fd;
    struct srv_conn *cc;          /* the request's connection state (outlives the job's use of it) */
    double t_start, t_last;
    double load_ms;               /* waiting for the model to load in this request */
    int64_t start_wall_ms;
    bool got_first;
    double last_poll_ms;
    int n_events[SERVER_MAX_N];   /* per choice */
    struct sp_buf text[SERVER_MAX_N]; /* whole output per choice */
    json_t *lp[SERVER_MAX_N];     /* chat: logprobs.content array; completions: logprobs object */
    struct engine_gen_result cres[SERVER_MAX_N]; /* per choice */
    struct engine_gen_result res; /* the request's: prompt once, completion tokens summed */
    enum sp_status st;
    struct sp_err err;
    bool client_gone;
    bool model_held;              /* srv_model_ensure succeeded: srv_model_leave in job_free */
    /* streaming */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sp_buf out;            /* SSE bytes not yet handed to microhttpd */
    size_t out_off;
    bool done;
    _Atomic bool cancel;
    bool stalled;                 /* cancelled: the client read nothing for write_timeout_s */
    bool shutdown_cut;            /* cancelled by server shutdown */
    bool counted_stream;          /* counted in s->streams */
    _Atomic uint64_t gen_id; /* engine generation id of this job (0 until its first token) */
    pthread_t th;
    bool th_started;
    _Atomic int refs;
    struct sp_buf head;           /* pre-rendered start of a content chunk (fast path) */
};

int gen_append_json(struct sp_buf *b, json_t *j); /* dumps and releases j; 0 on success */
/* logprob entries of one token event: appended to the choice's whole list and to chunk_lp (may be NULL) */
void gen_add_logprobs(struct gen_job *j, const struct engine_token_event *ev, json_t *chunk_lp);
json_t *gen_lp_object(void); /* completions' empty logprobs object */
const char *gen_finish_name(enum engine_finish f);
json_t *gen_usage_json(const struct gen_job *j);
/* one SSE chunk of choice index; text may be NULL; finish NULL for a middle chunk; takes lp */
json_t *gen_chunk_json(const struct gen_job *j, int index, const char *text, size_t len, bool first,
                       const char *finish, json_t *lp);
void gen_labels(struct gen_job *j, unsigned status, const char *finish, struct sp_buf *out);
json_t *gen_response_json(const struct gen_job *j);

#endif
