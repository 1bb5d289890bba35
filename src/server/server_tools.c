/* server_tools.c - OpenAI tool calls on /v1/chat/completions: the
 * srv_tools_dialect is the response format of a chat request that carries
 * tools. The tools went to the model's chat template (server_req.c); the
 * model's output is parsed for calls in the shapes model families emit:
 *   - Hermes / Qwen: <tool_call>{"name": ..., "arguments": {...}}</tool_call> (several allowed),
 *   - Llama 3.x: a bare JSON object {"name": ..., "parameters": {...}} (after <|python_tag|>),
 *   - Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...],
 *   - generic: a JSON object / array of objects with name + arguments (also in ``` fences),
 *     or {"tool_calls": [...]}.
 * A call must name one of the request's tools. Calls become message.tool_calls
 * (arguments as a JSON string) with finish_reason "tool_calls"; ids are
 * call_<24 hex>, or 9 alphanumerics for Mistral (its template checks them).
 *
 * Streaming: output that starts like a call (a marker, "{", "[" or a fence,
 * after whitespace) is held back to the end and sent as tool_calls deltas in
 * OpenAI's chunk shape (name first, then the arguments); other output streams
 * as content as usual. Which bytes to send is decided from the whole text so
 * far, so the formatter keeps no state between chunks. */
#include "server/server_int.h"
#include "server/server_req.h"

#include <jansson.h>
#include <string.h>

enum { DEC_WAIT = 0, DEC_TOOL, DEC_CONTENT };

static const char *const markers[] = {"<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "```", "{", "["};

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Does text[0..n) look like the start of a tool call? */
static int decide(const char *t, size_t n)
{
    size_t i = 0;
    while (i < n && ws(t[i]))
        i++;
    if (i == n)
        return DEC_WAIT;
    const char *s = t + i;
    size_t k = n - i;
    int d = DEC_CONTENT;
    for (size_t m = 0; m < SP_ARRAY_LEN(markers); m++) {
        size_t ml = strlen(markers[m]);
        if (k >= ml && !memcmp(s, markers[m], ml))
            return DEC_TOOL;
        if (k < ml && !memcmp(s, markers[m], k))
            d = DEC_WAIT;
    }
    return d;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

static int put_json(struct sp_buf *b, json_t *j, bool sse)
{
    int rc = !j || (sse && sp_buf_appends(b, "data: ")) ||
             json_dump_callback(j, dump_cb, b, JSON_COMPACT | JSON_PRESERVE_ORDER) ||
             (sse && sp_buf_appends(b, "\n\n"));
    json_decref(j);
    return rc ? -1 : 0;
}

static bool tool_known(const struct server_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_tools; i++)
        if (!strcmp(r->tool_names[i], name))
            return true;
    return false;
}

/* one call object {name, arguments|parameters} -> OpenAI tool_call; NULL if not a call */
static json_t *call_of(const struct server_request *r, const json_t *o)
{
    const json_t *fn = json_object_get(o, "function");
    if (json_is_object(fn)) /* {"type": "function", "function": {...}} */
        o = fn;
    const char *name = json_string_value(json_object_get(o, "name"));
    const json_t *args = json_object_get(o, "arguments");
    if (!args)
        args = json_object_get(o, "parameters");
    if (!name || !tool_known(r, name) || (args && !json_is_object(args) && !json_is_string(args)))
        return NULL;
    char *as = NULL;
    if (json_is_string(args))
        as = sp_strdup(json_string_value(args));
    else {
        struct sp_buf b = {0};
        json_t *empty = args ? NULL : json_object();
        if (json_dump_callback(args ? args : empty, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0)
            as = b.data ? sp_buf_take(&b) : sp_strdup("{}");
        sp_buf_free(&b);
        json_decref(empty);
    }
    if (!as)
        return NULL;
    char hex[32], id[40];
    trace_random_hex(hex, sizeof hex, 12);
    if (r->tool_syntax == ENGINE_TOOLS_MISTRAL) /* Mistral's template wants 9 alphanumerics back */
        snprintf(id, sizeof id, "%.9s", hex);
    else
        snprintf(id, sizeof id, "call_%s", hex);
    json_t *c = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function", "function", "name", name,
                          "arguments", as);
    sp_free(as);
    return c;
}

/* JSON value(s) in t[0..n) -> calls appended to out; false if anything is not a call */
static bool calls_from_json(const struct server_request *r, const char *t, size_t n, json_t *out)
{
    size_t pos = 0, found = 0;
    while (pos < n) {
        while (pos < n && (ws(t[pos]) || t[pos] == ';' || t[pos] == ','))
            pos++;
        if (pos >= n)
            break;
        json_error_t je;
        json_t *v = json_loadb(t + pos, n - pos, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &je);
        if (!v)
            return false;
        pos += (size_t)je.position;
        const json_t *list = json_is_array(v) ? v : json_object_get(v, "tool_calls");
        bool ok = true;
        if (json_is_array(list)) {
            size_t i;
            json_t *it;
            json_array_foreach(list, i, it) {
                json_t *c = call_of(r, it);
                ok = ok && c && json_array_append_new(out, c) == 0;
                if (!c)
                    break;
                found++;
            }
        } else {
            json_t *c = call_of(r, v);
            ok = c && json_array_append_new(out, c) == 0;
            found += c != NULL;
        }
        json_decref(v);
        if (!ok)
            return false;
    }
    return found > 0;
}

/* Parse the model's output: *calls (a JSON array, empty when none) and the
 * remaining content (*cb..*ce of text; empty when it was all calls). */
static json_t *parse_calls(const struct server_request *r, const char *t, size_t n, size_t *cb, size_t *ce)
{
    json_t *calls = json_array();
    *cb = 0;
    *ce = n;
    if (!calls)
        return NULL;
    const char *open = memmem(t, n, "<tool_call>", 11);
    if (open) { /* Hermes / Qwen blocks; content is what precedes the first */
        size_t pos = (size_t)(open - t);
        *ce = pos;
        while (pos < n) {
            const char *o = memmem(t + pos, n - pos, "<tool_call>", 11);
            if (!o)
                break;
            size_t b = (size_t)(o - t) + 11;
            const char *e = memmem(t + b, n - b, "</tool_call>", 12);
            size_t end = e ? (size_t)(e - t) : n;
            if (!calls_from_json(r, t + b, end - b, calls)) {
                json_array_clear(calls);
                *ce = n;
                return calls;
            }
            pos = e ? end + 12 : n;
        }
        return calls;
    }
    size_t b = 0, e = n;
    while (b < e && ws(t[b]))
        b++;
    static const char *const prefixes[] = {"[TOOL_CALLS]", "<|python_tag|>", "```json", "```"};
    for (size_t i = 0; i < SP_ARRAY_LEN(prefixes); i++)
        if (e - b >= strlen(prefixes[i]) && !memcmp(t + b, prefixes[i], strlen(prefixes[i]))) {
            b += strlen(prefixes[i]);
            break;
        }
    while (e > b && ws(t[e - 1]))
        e--;
    if (e - b >= 3 && !memcmp(t + e - 3, "```", 3))
        e -= 3;
    if (calls_from_json(r, t + b, e - b, calls))
        *ce = 0;
    else
        json_array_clear(calls);
    return calls;
}

static json_t *chunk(const struct srv_gen_view *v, json_t *delta, const char *finish)
{
    const struct server_request *r = v->req;
    json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:o}]}", "id", v->id, "object",
                          "chat.completion.chunk", "created", (json_int_t)v->created, "model", v->model,
                          "system_fingerprint", "spoke", "choices", "index", 0, "delta", delta, "logprobs",
                          "finish_reason", finish ? json_string(finish) : json_null());
    if (c && r->include_usage)
        json_object_set_new(c, "usage", json_null());
    return c;
}

static int content_chunk(const struct srv_gen_view *v, const char *text, size_t len, bool role, struct sp_buf *out)
{
    json_t *d = json_object();
    if (d && role)
        json_object_set_new(d, "role", json_string("assistant"));
    if (d)
        json_object_set_new(d, "content", srv_json_text(text, len));
    return put_json(out, chunk(v, d, NULL), true);
}

static int tools_chunk(const struct srv_gen_view *v, const char *text, size_t len, struct sp_buf *out)
{
    size_t prev = v->len - SP_MIN(len, v->len);
    if (decide(v->text, v->len) != DEC_CONTENT)
        return 0; /* maybe a call: held back */
    if (decide(v->text, prev) == DEC_CONTENT)
        return content_chunk(v, text, len, prev == 0, out);
    return content_chunk(v, v->text, v->len, true, out); /* release what was held */
}

static const char *finish_of(const struct srv_gen_view *v, size_t n_calls)
{
    if (n_calls)
        return "tool_calls";
    return v->res->finish == ENGINE_FINISH_LENGTH ? "length" : "stop";
}

static json_t *usage_of(const struct srv_gen_view *v)
{
    const struct engine_gen_result *res = v->res;
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", res->n_prompt_tokens, "completion_tokens",
                     res->n_completion_tokens, "total_tokens", res->n_prompt_tokens + res->n_completion_tokens,
                     "prompt_tokens_details", "cached_tokens", res->n_cached_tokens);
}

static int tools_end(const struct srv_gen_view *v, bool stream, struct sp_buf *out)
{
    const struct server_request *r = v->req;
    size_t cb = 0, ce = v->len, n_calls = 0;
    json_t *calls = NULL;
    int held = decide(v->text, v->len) != DEC_CONTENT;
    if (held || !stream) {
        calls = parse_calls(r, v->text, v->len, &cb, &ce);
        if (!calls)
            return -1;
        n_calls = json_array_size(calls);
    }
    while (cb < ce && ws(v->text[cb]))
        cb++;
    while (ce > cb && ws(v->text[ce - 1]) && n_calls)
        ce--;
    int rc = 0;
    if (!stream) {
        json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                                n_calls && ce == cb ? json_null() : srv_json_text(v->text + cb, ce - cb));
        if (msg && n_calls)
            json_object_set(msg, "tool_calls", calls);
        json_t *resp = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:s}],s:o}", "id", v->id, "object",
                                 "chat.completion", "created", (json_int_t)v->created, "model", v->model,
                                 "system_fingerprint", "spoke", "choices", "index", 0, "message", msg, "logprobs",
                                 "finish_reason", finish_of(v, n_calls), "usage", usage_of(v));
        json_decref(calls);
        return put_json(out, resp, false);
    }
    if (held && !n_calls && v->len) /* looked like a call but was not: it is content */
        rc = content_chunk(v, v->text, v->len, true, out);
    if (n_calls && ce > cb)
        rc = rc ? rc : content_chunk(v, v->text + cb, ce - cb, true, out);
    for (size_t i = 0; !rc && i < n_calls; i++) {
        const json_t *c = json_array_get(calls, i);
        const json_t *fn = json_object_get(c, "function");
        /* OpenAI's shape: the first delta names the call, the next ones carry the arguments */
        json_t *d1 = json_pack("{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]}", "tool_calls", "index", (int)i, "id",
                               json_object_get(c, "id"), "type", "function", "function", "name",
                               json_object_get(fn, "name"), "arguments", "");
        if (d1 && i == 0 && ce == cb) {
            json_object_set_new(d1, "role", json_string("assistant"));
            json_object_set_new(d1, "content", json_null());
        }
        rc = put_json(out, chunk(v, d1, NULL), true);
        json_t *d2 = json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls", "index", (int)i, "function", "arguments",
                               json_object_get(fn, "arguments"));
        rc = rc ? rc : put_json(out, chunk(v, d2, NULL), true);
    }
    json_decref(calls);
    if (!rc)
        rc = put_json(out, chunk(v, json_object(), finish_of(v, n_calls)), true);
    if (!rc && r->include_usage) {
        json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:o}", "id", v->id, "object", "chat.completion.chunk",
                              "created", (json_int_t)v->created, "model", v->model, "system_fingerprint", "spoke",
                              "choices", "usage", usage_of(v));
        rc = put_json(out, u, true);
    }
    return rc ? rc : (sp_buf_appends(out, "data: [DONE]\n\n") ? -1 : 0);
}

static int tools_stream_error(const char *msg, struct sp_buf *out)
{
    json_t *e = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type", "server_error", "param", "code",
                          "server_error");
    int rc = put_json(out, e, true);
    return rc ? rc : (sp_buf_appends(out, "data: [DONE]\n\n") ? -1 : 0);
}

const struct srv_dialect srv_tools_dialect = {
    .parse = server_request_parse,
    .find = NULL,
    .models_route = NULL,
    .stream_type = "text/event-stream",
    .chunk = tools_chunk,
    .end = tools_end,
    .stream_error = tools_stream_error,
    .error = srv_error,
};
