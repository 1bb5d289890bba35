/* server_req.h - (internal to src/server) the OpenAI request reader: JSON
 * body of POST /v1/chat/completions or /v1/completions -> a validated
 * struct server_request. Strict about types and ranges (every problem is a
 * SP_ERR_INVALID naming the parameter in err->context); unknown fields are
 * ignored. No engine calls, so the fuzzer links it alone. */
#ifndef SPOKE_SERVER_REQ_H
#define SPOKE_SERVER_REQ_H

#include "base/base.h"
#include "sample/grammar.h"
#include "sample/sample.h"
#include "server/server.h"

struct server_msg {
    char *role;    /* system | developer(-> system) | user | assistant | tool */
    char *content; /* UTF-8, text parts concatenated */
};

#define SERVER_MAX_N 8 /* most choices (n) of one request */

enum { SERVER_TOOLS_AUTO = 0, SERVER_TOOLS_NONE, SERVER_TOOLS_REQUIRED, SERVER_TOOLS_NAMED };

struct server_request {
    bool chat;
    char *model;             /* NULL when absent */
    struct server_msg *msgs; /* chat */
    size_t n_msgs;
    char *prompt;            /* completions */
    int n;                   /* choices, 1..SERVER_MAX_N (n > 1: not with tools) */
    bool stream;
    bool include_usage;      /* stream_options.include_usage */
    int max_tokens;          /* 0 = not given */
    char **stop;
    size_t n_stop;
    bool has_temperature, has_top_p, has_seed, has_top_k, has_min_p, has_repeat_penalty;
    double temperature, top_p, min_p, repeat_penalty;
    int top_k;
    uint64_t seed;
    double presence_penalty, frequency_penalty;
    bool logprobs;           /* report logprobs */
    int top_logprobs;        /* 0..20 alternatives */
    /* chat: the chat template's variables as JSON ({"messages": [...], "tools": [...],
     * "add_generation_prompt": true, chat_template_kwargs...}); messages normalised:
     * content a string (null kept for assistant tool calls), developer -> system,
     * tool_calls[].function.arguments parsed to an object when it is a JSON object */
    struct sample_bias *logit_bias; /* logit_bias: token id -> -100..100 (ids checked vs the vocab later) */
    size_t n_logit_bias;
    char **tool_names;       /* tools[].function.name (tools given and tool_choice not "none") */
    char **tool_params;      /* [n_tools] tools[].function.parameters as compact JSON (NULL: none) */
    size_t n_tools;
    int tool_choice;         /* SERVER_TOOLS_AUTO/NONE/REQUIRED/NAMED (named: tool_names has that one) */
    int tool_syntax;         /* the model's enum engine_tool_syntax (set once the model is known) */
    char *tmpl_ctx;
    size_t tmpl_ctx_len;
    struct grammar *grammar; /* constrained output: response_format json_object / json_schema,
                                or the extension 'grammar' (GBNF); NULL = free text */
    bool special_in_content; /* extension: control-token text in messages is parsed (the
                                old, injectable behaviour); default false */
};

/* Parse and validate body (len bytes). lim gives max_tokens, max_messages,
 * max_stop. On error out is left empty (server_request_free safe). */
enum sp_status server_request_parse(const char *body, size_t len, bool chat, const struct server_limits *lim,
                                    struct server_request *out, struct sp_err *err) SP_MUST_USE;
void server_request_free(struct server_request *r);

/* Constrained output for r (shared by the OpenAI and Ollama readers):
 * compile GBNF text, or a JSON schema (a jansson value) via json_schema_gbnf. A
 * bad grammar or an unsupported schema keyword is SP_ERR_INVALID naming
 * param. */
enum sp_status server_request_grammar(struct server_request *r, const char *param, const char *gbnf, size_t len,
                                      struct sp_err *err) SP_MUST_USE;
/* tool_choice "required" / named: set r->grammar to one call of r's tools
 * in the tool-call syntax (enum engine_tool_syntax; server_tools_gbnf.c).
 * No-op for other choices. An unsupported parameter schema is a
 * SP_ERR_INVALID (param "tools") naming the function and the keyword. */
enum sp_status server_request_tools_grammar(struct server_request *r, int syntax, struct sp_err *err) SP_MUST_USE;
struct json_t;
enum sp_status server_request_schema(struct server_request *r, const char *param, const struct json_t *schema,
                                     struct sp_err *err) SP_MUST_USE;

/* Shared field readers (the Ollama reader uses them too). srv_req_bad: a
 * SP_ERR_INVALID naming param. srv_req_number / srv_req_int: obj[key] when
 * present and not null must be a number / an integer (5.0 counts, 5.5 does
 * not) within [min, max]; the error names "prefix.key" (or key when prefix is
 * NULL); *has is set when the field was given. */
struct json_t;
enum sp_status srv_req_bad(struct sp_err *err, const char *param, const char *fmt, ...) SP_PRINTF(3, 4);
enum sp_status srv_req_number(const struct json_t *obj, const char *key, const char *prefix, double min,
                              double max, bool *has, double *out, struct sp_err *err) SP_MUST_USE;
enum sp_status srv_req_int(const struct json_t *obj, const char *key, const char *prefix, long long min,
                           long long max, bool *has, long long *out, struct sp_err *err) SP_MUST_USE;

#endif
