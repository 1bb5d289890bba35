/* server_embd.h - (internal to src/server) embedding requests: the reader
 * of POST /v1/embeddings (OpenAI), /api/embed and /api/embeddings (Ollama)
 * bodies into one validated struct srv_embd_req (server_embd_req.c, no
 * engine calls, fuzzed), and the route (server_embd.c). */
#ifndef SPOKE_SERVER_EMBD_H
#define SPOKE_SERVER_EMBD_H

#include "base/base.h"

/* Wire formats of an embedding request. */
enum srv_embd_wire {
    SRV_EMBD_OPENAI = 0, /* POST /v1/embeddings */
    SRV_EMBD_OLLAMA,     /* POST /api/embed: input string | [string] */
    SRV_EMBD_OLLAMA_OLD, /* POST /api/embeddings: prompt string, one vector */
};

#define SRV_EMBD_MAX_INPUTS 2048 /* as OpenAI */
#define SRV_EMBD_MAX_TOKENS (1 << 20) /* token ids over all token-array inputs */

/* One input: text (len bytes, UTF-8 checked by jansson) or token ids. */
struct srv_embd_input {
    char *text;       /* NULL for a token input */
    size_t len;
    int32_t *toks;    /* token ids (>= 0; checked against the vocabulary later) */
    int n_toks;
};

struct srv_embd_req {
    enum srv_embd_wire wire;
    char *model;                  /* NULL when absent */
    struct srv_embd_input *in;    /* n >= 1 inputs */
    size_t n;
    bool base64;                  /* encoding_format "base64" (OpenAI) */
    int dimensions;               /* 0 = not given, else >= 1 */
    bool truncate;                /* Ollama: cut inputs longer than the context (default true) */
};

/* Parse and validate body (len bytes) in wire format w. OpenAI: input is a
 * non-empty string, a non-empty array of non-empty strings, a non-empty
 * array of token ids, or a non-empty array of non-empty token-id arrays (at
 * most SRV_EMBD_MAX_INPUTS inputs); encoding_format "float" (default) or
 * "base64"; dimensions an integer >= 1; user a string. Ollama /api/embed:
 * input a string or array of strings, truncate a boolean, dimensions;
 * /api/embeddings: prompt a string. Errors: SP_ERR_INVALID naming the field
 * in err->context (also for too many inputs or token ids), SP_ERR_NOMEM.
 * On error out is left empty (srv_embd_req_free safe). */
enum sp_status srv_embd_parse(const char *body, size_t len, enum srv_embd_wire w, struct srv_embd_req *out,
                              struct sp_err *err) SP_MUST_USE;
void srv_embd_req_free(struct srv_embd_req *r);

/* The route (server_embd.c; include server_int.h first): read, admit,
 * embed, answer in wire format w. */
#ifdef SPOKE_SERVER_INT_H
enum MHD_Result srv_embeddings(struct server *s, struct MHD_Connection *c, struct srv_conn *cc,
                               enum srv_embd_wire wire);
#endif

/* Standard base64 (with padding) of n bytes appended to b: 0 or -1 (OOM). */
struct sp_buf;
int srv_base64_append(struct sp_buf *b, const void *data, size_t n);

#endif
