/* server_ollama.h - (internal to src/server) the Ollama-compatible API:
 * request readers (server_ollama_req.c, fuzzed; no engine calls) and the
 * /api/... routes (server_ollama.c). Not a public API. */
#ifndef SPOKE_SERVER_OLLAMA_H
#define SPOKE_SERVER_OLLAMA_H

#include "base/base.h"
#include "server/server_req.h"

/* Body of POST /api/chat (chat = true) or /api/generate -> a request for
 * the shared generation path (see the file comment of server_ollama_req.c
 * for the mapping). Errors: SP_ERR_INVALID naming the field in
 * err->context, SP_ERR_LIMIT (too long), SP_ERR_NOMEM. On error out is
 * left empty. */
enum sp_status server_ollama_parse(const char *body, size_t len, bool chat, const struct server_limits *lim,
                                   struct server_request *out, struct sp_err *err) SP_MUST_USE;

/* Body {"model": NAME, "stream": bool} of /api/show, /api/pull (also the
 * older "name"): *out = NAME (sp_malloc'd, 1..512 bytes); *stream = the
 * flag (default true) when stream is not NULL. SP_ERR_INVALID otherwise. */
enum sp_status server_ollama_model_name(const char *body, size_t len, char **out, bool *stream,
                                        struct sp_err *err) SP_MUST_USE;

#endif
