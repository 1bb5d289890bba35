/* test_tools.c - tool calls (server_req.c tools/tool_choice, server_tools.c):
 * request validation and the template context, and the parsing of model
 * output into OpenAI tool_calls for each family's shape (Hermes/Qwen
 * <tool_call>, Llama 3.x bare JSON with "parameters", Mistral [TOOL_CALLS]
 * list, generic JSON / fenced JSON), unknown names and prose left as content,
 * and the streamed form (content chunks, or held output sent as tool_calls
 * deltas with finish_reason "tool_calls" and [DONE]). */
#include "test.h"

#include <jansson.h>

#include "server/server_int.h"
#include "server/server_req.h"
#include "engine/engine.h"
#include "sample/grammar.h"

static const char *REQ =
    "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}],\"tools\":["
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"search\"}}]%s}";

static int parse(struct server_request *r, const char *extra)
{
    char body[2048];
    snprintf(body, sizeof body, REQ, extra);
    struct server_opts o;
    server_opts_default(&o);
    struct sp_err e;
    sp_err_clear(&e);
    return (int)server_request_parse(body, strlen(body), true, &o.limits, r, &e);
}

static struct engine_gen_result g_res = {.n_prompt_tokens = 5, .n_completion_tokens = 7};

/* non-streamed response for output text -> parsed JSON message */
static json_t *respond(const struct server_request *r, const char *text, const char **finish)
{
    struct srv_gen_view v = {"m", text, strlen(text), &g_res, 1, 0, r, "chatcmpl-x", 1};
    struct sp_buf b = {0};
    if (srv_tools_dialect.end(&v, false, &b) != 0)
        return NULL;
    json_t *j = json_loads(b.data, 0, NULL);
    sp_buf_free(&b);
    static char fin[32];
    snprintf(fin, sizeof fin, "%s", json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                                                                      "finish_reason")));
    *finish = fin;
    json_t *msg = json_incref(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"));
    json_decref(j);
    return msg;
}

TEST(request_tools)
{
    struct server_request r;
    CHECK(parse(&r, "") == SP_OK);
    CHECK_EQ_INT(r.n_tools, 2);
    CHECK(strstr(r.tmpl_ctx, "\"tools\":[") && strstr(r.tmpl_ctx, "get_weather"));
    server_request_free(&r);
    CHECK(parse(&r, ",\"tool_choice\":\"none\"") == SP_OK);
    CHECK_EQ_INT(r.n_tools, 0);
    CHECK(!strstr(r.tmpl_ctx, "\"tools\""));
    server_request_free(&r);
    CHECK(parse(&r, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"search\"}}") == SP_OK);
    CHECK_EQ_INT(r.n_tools, 1);
    CHECK_EQ_STR(r.tool_names[0], "search");
    CHECK(!strstr(r.tmpl_ctx, "get_weather"));
    server_request_free(&r);
    CHECK(parse(&r, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}") == SP_ERR_INVALID);
    CHECK(parse(&r, ",\"tool_choice\":\"sometimes\"") == SP_ERR_INVALID);
    CHECK(parse(&r, ",\"parallel_tool_calls\":false,\"tool_choice\":\"required\"") == SP_OK);
    server_request_free(&r);
    struct server_opts o;
    server_opts_default(&o);
    const char *bad = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
                      "\"function\":{\"name\":\"bad name!\"}}]}";
    CHECK(server_request_parse(bad, strlen(bad), true, &o.limits, &r, NULL) == SP_ERR_INVALID);
    const char *bad2 = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}";
    CHECK(server_request_parse(bad2, strlen(bad2), true, &o.limits, &r, NULL) == SP_ERR_INVALID);
}

static bool one_call(json_t *msg, const char *name, const char *args)
{
    json_t *tc = json_object_get(msg, "tool_calls");
    json_t *fn = json_object_get(json_array_get(tc, 0), "function");
    return json_array_size(tc) == 1 && !strcmp(json_string_value(json_object_get(fn, "name")), name) &&
           !strcmp(json_string_value(json_object_get(fn, "arguments")), args) &&
           !strncmp(json_string_value(json_object_get(json_array_get(tc, 0), "id")), "call_", 5);
}

TEST(parse_families)
{
    struct server_request r;
    CHECK(parse(&r, "") == SP_OK);
    const char *fin;
    json_t *m;
    /* Hermes / Qwen */
    m = respond(&r, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", &fin);
    CHECK(m && one_call(m, "get_weather", "{\"city\":\"Paris\"}") && json_is_null(json_object_get(m, "content")));
    CHECK_EQ_STR(fin, "tool_calls");
    json_decref(m);
    /* two blocks, with prose before */
    m = respond(&r, "Let me check.\n<tool_call>{\"name\":\"search\",\"arguments\":{\"q\":\"a\"}}</tool_call>\n"
                    "<tool_call>{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}</tool_call>",
                &fin);
    CHECK(m && json_array_size(json_object_get(m, "tool_calls")) == 2);
    CHECK_EQ_STR(json_string_value(json_object_get(m, "content")), "Let me check.");
    json_decref(m);
    /* Llama 3.x: bare JSON with "parameters" */
    m = respond(&r, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", &fin);
    CHECK(m && one_call(m, "get_weather", "{\"city\":\"Oslo\"}"));
    json_decref(m);
    /* Mistral: [TOOL_CALLS] list (the marker may be a control token that decodes to nothing) */
    m = respond(&r, "[TOOL_CALLS][{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}]", &fin);
    CHECK(m && one_call(m, "search", "{\"q\":\"x\"}"));
    json_decref(m);
    m = respond(&r, " [{\"name\": \"search\", \"arguments\": {}}]", &fin);
    CHECK(m && one_call(m, "search", "{}"));
    json_decref(m);
    /* generic: fenced JSON */
    m = respond(&r, "```json\n{\"name\": \"search\", \"arguments\": {\"q\": \"y\"}}\n```", &fin);
    CHECK(m && one_call(m, "search", "{\"q\":\"y\"}"));
    json_decref(m);
    /* not calls: prose, unknown function, broken JSON */
    m = respond(&r, "The weather is fine.", &fin);
    CHECK(m && !json_object_get(m, "tool_calls") && !strcmp(json_string_value(json_object_get(m, "content")),
                                                            "The weather is fine."));
    CHECK_EQ_STR(fin, "stop");
    json_decref(m);
    m = respond(&r, "{\"name\": \"rm_rf\", \"arguments\": {}}", &fin);
    CHECK(m && !json_object_get(m, "tool_calls"));
    json_decref(m);
    m = respond(&r, "<tool_call>{\"name\": \"search\", \"argu", &fin);
    CHECK(m && !json_object_get(m, "tool_calls"));
    CHECK_EQ_STR(fin, "stop");
    json_decref(m);
    server_request_free(&r);
}

/* feed text token by token as the generation path does, return the SSE text */
static void stream(const struct server_request *r, const char *const *pieces, size_t n, struct sp_buf *out)
{
    struct sp_buf text = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK(sp_buf_appends(&text, pieces[i]) == 0);
        struct srv_gen_view v = {"m", text.data, text.len, &g_res, 1, 0, r, "chatcmpl-x", 1};
        CHECK(srv_tools_dialect.chunk(&v, pieces[i], strlen(pieces[i]), out) == 0);
    }
    struct srv_gen_view v = {"m", text.data ? text.data : "", text.len, &g_res, 1, 0, r, "chatcmpl-x", 1};
    CHECK(srv_tools_dialect.end(&v, true, out) == 0);
    sp_buf_free(&text);
}

TEST(streaming)
{
    struct server_request r;
    CHECK(parse(&r, "") == SP_OK);
    struct sp_buf out = {0};
    const char *call[] = {"<tool", "_call>", "{\"name\": \"search\", ", "\"arguments\": {\"q\": 1}}", "</tool_call>"};
    stream(&r, call, 5, &out);
    CHECK_MSG(!strstr(out.data, "\"content\":\"<tool"), "%s", out.data); /* held back, not streamed as content */
    CHECK(strstr(out.data, "\"tool_calls\":[{\"index\":0,\"id\":\"call_"));
    CHECK(strstr(out.data, "\"name\":\"search\",\"arguments\":\"\""));
    CHECK(strstr(out.data, "\"arguments\":\"{\\\"q\\\":1}\""));
    CHECK(strstr(out.data, "\"finish_reason\":\"tool_calls\""));
    CHECK(strstr(out.data, "data: [DONE]\n\n"));
    sp_buf_reset(&out);
    const char *prose[] = {"Hel", "lo there", "!"};
    stream(&r, prose, 3, &out);
    CHECK_MSG(strstr(out.data, "\"role\":\"assistant\",\"content\":\"Hel\"") && strstr(out.data, "\"content\":\"lo there\""),
              "%s", out.data);
    CHECK(strstr(out.data, "\"finish_reason\":\"stop\"") && !strstr(out.data, "tool_calls"));
    sp_buf_reset(&out);
    const char *fake[] = {"{not json", " at all"};
    stream(&r, fake, 2, &out);
    CHECK(strstr(out.data, "\"content\":\"{not json at all\"") && strstr(out.data, "\"finish_reason\":\"stop\""));
    sp_buf_free(&out);
    server_request_free(&r);
}

/* Does grammar g accept text as a whole sentence? (a byte-level matcher, no vocabulary) */
static bool accepts(const struct grammar *g, const char *text)
{
    static const char pieces[] = "x";
    static const uint32_t off[] = {0, 1};
    static const uint8_t kind[] = {GRAMMAR_TOK_TEXT};
    struct grammar_vocab *v = NULL;
    struct grammar_matcher *m = NULL;
    bool ok = grammar_vocab_new(1, pieces, off, kind, &v, NULL) == SP_OK &&
              grammar_matcher_new(g, v, &m, NULL) == SP_OK && grammar_accept_bytes(m, text, strlen(text)) &&
              grammar_can_end(m);
    grammar_matcher_free(m);
    grammar_vocab_free(v);
    return ok;
}

/* tool_choice required / named: the grammar of one call per syntax */
TEST(forced_calls)
{
    struct server_request r;
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":%s,\"tools\":["
                      "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
                      "\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"n\":{\"type\":\"integer\","
                      "\"minimum\":1,\"maximum\":3}},\"required\":[\"city\"]}}},"
                      "{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}}]}";
    char body[1024];
    struct server_opts o;
    server_opts_default(&o);
    snprintf(body, sizeof body, req, "\"required\"");
    CHECK(server_request_parse(body, strlen(body), true, &o.limits, &r, NULL) == SP_OK);
    CHECK(r.grammar != NULL); /* the generic syntax, built by the reader */
    CHECK(accepts(r.grammar, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"n\": 2}}"));
    CHECK(accepts(r.grammar, "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"\"}}"));
    CHECK(accepts(r.grammar, "{\"name\": \"noargs\", \"arguments\": {}}"));
    CHECK(!accepts(r.grammar, "{\"name\": \"noargs\", \"arguments\": {\"a\": 1}}")); /* no parameters: {} */
    CHECK(!accepts(r.grammar, "{\"name\": \"get_weather\", \"arguments\": {\"n\": 2}}")); /* city required */
    CHECK(!accepts(r.grammar, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\", \"n\": 4}}"));
    CHECK(!accepts(r.grammar, "{\"name\": \"other\", \"arguments\": {}}"));
    CHECK(!accepts(r.grammar, "hello"));
    CHECK(server_request_tools_grammar(&r, ENGINE_TOOLS_HERMES, NULL) == SP_OK);
    CHECK(accepts(r.grammar, "<tool_call>\n{\"name\": \"noargs\", \"arguments\": {}}\n</tool_call>"));
    CHECK(!accepts(r.grammar, "{\"name\": \"noargs\", \"arguments\": {}}"));
    CHECK(server_request_tools_grammar(&r, ENGINE_TOOLS_MISTRAL, NULL) == SP_OK);
    CHECK(accepts(r.grammar, "[{\"name\": \"noargs\", \"arguments\": {}}]"));
    CHECK(server_request_tools_grammar(&r, ENGINE_TOOLS_LLAMA3, NULL) == SP_OK);
    CHECK(accepts(r.grammar, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"));
    CHECK(!accepts(r.grammar, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}"));
    server_request_free(&r);
    /* named: only that function */
    snprintf(body, sizeof body, req, "{\"type\":\"function\",\"function\":{\"name\":\"noargs\"}}");
    CHECK(server_request_parse(body, strlen(body), true, &o.limits, &r, NULL) == SP_OK);
    CHECK(accepts(r.grammar, "{\"name\": \"noargs\", \"arguments\": {}}"));
    CHECK(!accepts(r.grammar, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"));
    server_request_free(&r);
    /* auto: free text (no grammar) */
    snprintf(body, sizeof body, req, "\"auto\"");
    CHECK(server_request_parse(body, strlen(body), true, &o.limits, &r, NULL) == SP_OK);
    CHECK(r.grammar == NULL);
    server_request_free(&r);
    /* unsupported keyword: 400 naming it (constrained choices only) */
    const char *badreq = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":%s,\"tools\":["
                         "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                         "\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"a+\"}}}}}]}";
    struct sp_err e;
    sp_err_clear(&e);
    snprintf(body, sizeof body, badreq, "\"required\"");
    CHECK(server_request_parse(body, strlen(body), true, &o.limits, &r, &e) == SP_ERR_INVALID);
    CHECK(strstr(e.msg, "pattern") != NULL && strcmp(e.context, "tools") == 0);
    snprintf(body, sizeof body, badreq, "\"auto\"");
    CHECK(server_request_parse(body, strlen(body), true, &o.limits, &r, NULL) == SP_OK);
    server_request_free(&r);
    /* with response_format: refused */
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":"
             "\"required\",\"response_format\":{\"type\":\"json_object\"},\"tools\":[{\"type\":\"function\","
             "\"function\":{\"name\":\"f\"}}]}");
    CHECK(server_request_parse(body, strlen(body), true, &o.limits, &r, NULL) == SP_ERR_INVALID);
}

int main(void)
{
    RUN(request_tools);
    RUN(parse_families);
    RUN(streaming);
    RUN(forced_calls);
    return test_summary();
}
