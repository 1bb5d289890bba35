/* server_tools_gbnf.c - constrained tool calls: with tool_choice "required"
 * (any of the request's tools) or a named function (that one), the output is
 * held to a grammar whose sentences are exactly one call in the model's
 * tool-call syntax, with arguments valid for the function's parameter schema:
 *   call<i> ::= "{" ws "\"name\"" ws ":" ws "\"<name>\"" ws "," ws
 *               "\"arguments\"" ws ":" ws <the schema's rule> ws "}"
 * ("parameters" instead of "arguments" for Llama 3.x), wrapped per syntax:
 * Hermes/Qwen "<tool_call>\n" call "\n</tool_call>", Mistral "[" call "]"
 * (its [TOOL_CALLS] marker is a control token, which grammars never allow),
 * Llama 3.x and generic the bare object. The schemas become rules through
 * json_schema_gbnf_rules, so an unsupported keyword is a 400 naming it; no
 * parameters (or {}) is an empty parameter list (OpenAI's reading): {}. Only the request reader's data
 * is used (no engine calls): the request fuzzer reaches this file. */
#include "server/server_req.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

#define TOOLS_MAX_GBNF GRAMMAR_MAX_TEXT

/* The call rule of tool i (its argument rule appended to b first). */
static enum sp_status call_rule(const struct server_request *r, size_t i, int syntax, struct sp_buf *b, int *next,
                                struct sp_err *err)
{
    const char *schema = r->tool_params ? r->tool_params[i] : NULL;
    char args[32] = "\"{\" ws \"}\""; /* no parameters: an empty parameter list, as OpenAI reads it */
    if (schema && strcmp(schema, "{}") != 0) {
        int root = 0;
        struct sp_err e;
        sp_err_clear(&e);
        enum sp_status st = json_schema_gbnf_rules(schema, strlen(schema), b, next, &root, &e);
        if (st == SP_ERR_NOMEM)
            return sp_err_set(err, st, "%s", e.msg);
        if (st != SP_OK)
            return srv_req_bad(err, "tools", "'tools' (function '%s'): parameters: %s", r->tool_names[i], e.msg);
        (void)snprintf(args, sizeof args, "r%d", root);
    }
    /* names are [A-Za-z0-9_.-]{1,64} (server_req.c): safe inside a GBNF literal */
    if (sp_buf_printf(b, "call%zu ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws \"\\\"%s\\\"\" ws \",\" ws \"\\\"%s\\\"\" ws "
                         "\":\" ws %s ws \"}\"\n",
                      i, r->tool_names[i], syntax == ENGINE_TOOLS_LLAMA3 ? "parameters" : "arguments", args))
        return b->len >= TOOLS_MAX_GBNF - 1 ? srv_req_bad(err, "tools", "the tools' schemas are too large for a "
                                                          "grammar (over %u bytes)", TOOLS_MAX_GBNF)
                                            : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    return SP_OK;
}

enum sp_status server_request_tools_grammar(struct server_request *r, int syntax, struct sp_err *err)
{
    if ((r->tool_choice != SERVER_TOOLS_REQUIRED && r->tool_choice != SERVER_TOOLS_NAMED) || r->n_tools == 0)
        return SP_OK;
    static const char *const wrap[][2] = {
        [ENGINE_TOOLS_GENERIC] = {"", ""},
        [ENGINE_TOOLS_HERMES] = {"\"<tool_call>\\n\" ", " \"\\n</tool_call>\""},
        [ENGINE_TOOLS_LLAMA3] = {"", ""},
        [ENGINE_TOOLS_MISTRAL] = {"\"[\" ", " \"]\""},
    };
    if (syntax < 0 || syntax >= (int)SP_ARRAY_LEN(wrap))
        syntax = ENGINE_TOOLS_GENERIC;
    struct sp_buf b = {0};
    b.limit = TOOLS_MAX_GBNF - 1;
    enum sp_status st = SP_OK;
    if (sp_buf_printf(&b, "root ::= %scall%s\ncall ::= ", wrap[syntax][0], wrap[syntax][1]))
        st = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == SP_OK && i < r->n_tools; i++)
        if (sp_buf_printf(&b, "%scall%zu", i ? " | " : "", i))
            st = srv_req_bad(err, "tools", "too many tools for a grammar");
    if (st == SP_OK && (sp_buf_appends(&b, "\n") || sp_buf_appends(&b, grammar_json_primitives_gbnf())))
        st = srv_req_bad(err, "tools", "the tools' schemas are too large for a grammar");
    int next = 1;
    for (size_t i = 0; st == SP_OK && i < r->n_tools; i++)
        st = call_rule(r, i, syntax, &b, &next, err);
    if (st == SP_OK)
        st = server_request_grammar(r, "tools", b.data, b.len, err);
    sp_buf_free(&b);
    return st;
}
