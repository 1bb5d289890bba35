/* server_ollama_req.c - Ollama request JSON (POST /api/chat, /api/generate)
 * -> the same struct server_request the OpenAI routes use, so both wire
 * formats share one generation path. jansson parses the body; each known
 * field is type- and range-checked and every problem is a SP_ERR_INVALID
 * naming the field (err->context). Mapping:
 *   /api/chat      messages[{role, content}] -> chat messages
 *   /api/generate  prompt (+ system) -> a user (+ system) chat message
 *                  rendered with the model's template, or with raw: true the
 *                  prompt text as is
 *   stream         default true (Ollama's default, unlike OpenAI)
 *   options        num_predict (-1/-2 = up to the server's max_tokens),
 *                  temperature, top_k, top_p, min_p, repeat_penalty, seed,
 *                  stop, presence_penalty, frequency_penalty; other options
 *                  (num_ctx, num_thread, ...) are accepted and ignored, as
 *                  the context and threads are fixed when the model loads
 *   format         "json" (any JSON object) or a JSON schema object: the
 *                  output is constrained by a grammar (src/sample); images,
 *                  tools, suffix and context (token continuation) are refused.
 * No engine calls, so the fuzzer links it alone. */
#include "server/server_ollama.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#define OLLAMA_MAX_TEXT (16u << 20)

#define bad srv_req_bad

static bool absent(const json_t *v) { return !v || json_is_null(v); }

static enum sp_status dup_str(const json_t *v, const char *param, char **out, struct sp_err *err)
{
    if (!json_is_string(v))
        return bad(err, param, "'%s' must be a string", param);
    size_t n = json_string_length(v);
    if (n > OLLAMA_MAX_TEXT)
        return sp_err_setc(err, SP_ERR_LIMIT, param, "'%s' is too long", param);
    *out = sp_strndup(json_string_value(v), n);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

/* a non-empty array or string in a field spoke cannot honour -> 400 */
static enum sp_status refuse_nonempty(const json_t *root, const char *key, const char *why, struct sp_err *err)
{
    const json_t *v = json_object_get(root, key);
    if (absent(v) || (json_is_array(v) && json_array_size(v) == 0) ||
        (json_is_string(v) && json_string_length(v) == 0))
        return SP_OK;
    return bad(err, key, "'%s' is not supported by this server: %s", key, why);
}

static enum sp_status get_num(const json_t *o, const char *key, double lo, double hi, bool *has, double *out,
                              struct sp_err *err)
{
    return srv_req_number(o, key, "options", lo, hi, has, out, err);
}

static enum sp_status get_int(const json_t *o, const char *key, long long lo, long long hi, bool *has,
                              long long *out, struct sp_err *err)
{
    return srv_req_int(o, key, "options", lo, hi, has, out, err);
}

static enum sp_status parse_stop(const json_t *o, const struct server_limits *lim, struct server_request *r,
                                 struct sp_err *err)
{
    const json_t *s = json_object_get(o, "stop");
    if (absent(s))
        return SP_OK;
    if (json_is_string(s))
        s = json_pack("[O]", s);
    else if (json_is_array(s))
        json_incref((json_t *)s);
    else
        return bad(err, "options.stop", "'options.stop' must be an array of strings");
    enum sp_status result = SP_OK;
    size_t n = json_array_size(s);
    if (n > (size_t)lim->max_stop) {
        result = bad(err, "options.stop", "at most %d stop sequences are allowed", lim->max_stop);
        goto out;
    }
    r->stop = sp_calloc(n ? n : 1, sizeof *r->stop);
    if (!r->stop) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(s, i);
        if (!json_is_string(it)) {
            result = bad(err, "options.stop", "'options.stop[%zu]' must be a string", i);
            goto out;
        }
        if (json_string_length(it) == 0)
            continue;
        if (json_string_length(it) > 256) {
            result = bad(err, "options.stop", "stop sequences are limited to 256 bytes");
            goto out;
        }
        if ((result = dup_str(it, "options.stop", &r->stop[r->n_stop], err)) != SP_OK)
            goto out;
        r->n_stop++;
    }
out:
    json_decref((json_t *)s);
    return result;
}

static enum sp_status parse_options(const json_t *root, const struct server_limits *lim, struct server_request *r,
                                    struct sp_err *err)
{
    const json_t *o = json_object_get(root, "options");
    if (absent(o))
        return SP_OK;
    if (!json_is_object(o))
        return bad(err, "options", "'options' must be an object");
    enum sp_status result;
    long long iv = 0;
    bool has = false;
    if ((result = get_int(o, "num_predict", -2, INT32_MAX, &has, &iv, err)) != SP_OK)
        return result;
    if (has && iv == 0)
        return bad(err, "options.num_predict", "'options.num_predict' must be at least 1 (or -1 for the limit)");
    if (has && iv > lim->max_tokens)
        return bad(err, "options.num_predict", "'options.num_predict' is %lld, above this server's limit of %d", iv,
                   lim->max_tokens);
    if (has)
        r->max_tokens = iv < 0 ? lim->max_tokens : (int)iv;
    if ((result = get_num(o, "temperature", 0, 100, &r->has_temperature, &r->temperature, err)) != SP_OK ||
        (result = get_num(o, "top_p", 0, 1, &r->has_top_p, &r->top_p, err)) != SP_OK ||
        (result = get_num(o, "min_p", 0, 1, &r->has_min_p, &r->min_p, err)) != SP_OK ||
        (result = get_num(o, "repeat_penalty", 0, 10, &r->has_repeat_penalty, &r->repeat_penalty, err)) != SP_OK ||
        (result = get_num(o, "presence_penalty", -2, 2, NULL, &r->presence_penalty, err)) != SP_OK ||
        (result = get_num(o, "frequency_penalty", -2, 2, NULL, &r->frequency_penalty, err)) != SP_OK)
        return result;
    has = false;
    if ((result = get_int(o, "top_k", 0, 1 << 20, &has, &iv, err)) != SP_OK)
        return result;
    if (has) {
        r->has_top_k = true;
        r->top_k = (int)iv;
    }
    has = false;
    if ((result = get_int(o, "seed", INT64_MIN, INT64_MAX, &has, &iv, err)) != SP_OK)
        return result;
    if (has) {
        r->has_seed = true;
        r->seed = (uint64_t)iv;
    }
    return parse_stop(o, lim, r, err);
}

static enum sp_status add_msg(struct server_request *r, const char *role, const json_t *content, const char *param,
                              struct sp_err *err)
{
    r->msgs[r->n_msgs].role = sp_strdup(role);
    if (!r->msgs[r->n_msgs].role)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    r->n_msgs++;
    if (absent(content)) {
        r->msgs[r->n_msgs - 1].content = sp_strdup("");
        return r->msgs[r->n_msgs - 1].content ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    return dup_str(content, param, &r->msgs[r->n_msgs - 1].content, err);
}

static enum sp_status parse_messages(const json_t *root, const struct server_limits *lim, struct server_request *r,
                                     struct sp_err *err)
{
    const json_t *m = json_object_get(root, "messages");
    if (absent(m))
        return bad(err, "messages", "'messages' is required");
    if (!json_is_array(m))
        return bad(err, "messages", "'messages' must be an array");
    size_t n = json_array_size(m);
    if (n == 0)
        return bad(err, "messages", "'messages' must not be empty");
    if (n > (size_t)lim->max_messages)
        return bad(err, "messages", "too many messages (%zu, limit %d)", n, lim->max_messages);
    r->msgs = sp_calloc(n, sizeof *r->msgs);
    if (!r->msgs)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char param[48];
        const json_t *it = json_array_get(m, i);
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(it))
            return bad(err, param, "'%s' must be an object with 'role' and 'content'", param);
        const json_t *role = json_object_get(it, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role))
            return bad(err, param, "'%s' must be a string", param);
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool"))
            return bad(err, param, "'%.40s' is not a valid role (system, user, assistant, tool)", rs);
        snprintf(param, sizeof param, "messages[%zu].images", i);
        const json_t *img = json_object_get(it, "images");
        if (!absent(img) && !(json_is_array(img) && json_array_size(img) == 0))
            return bad(err, param, "'%s': images are not supported (the loaded models are text-only)", param);
        snprintf(param, sizeof param, "messages[%zu].content", i);
        const json_t *content = json_object_get(it, "content");
        if (!content && strcmp(rs, "assistant") != 0)
            return bad(err, param, "'%s' is required", param);
        enum sp_status result = add_msg(r, rs, content, param, err);
        if (result != SP_OK)
            return result;
    }
    return SP_OK;
}

static enum sp_status parse_generate(const json_t *root, struct server_request *r, struct sp_err *err)
{
    const json_t *prompt = json_object_get(root, "prompt");
    const json_t *system = json_object_get(root, "system");
    enum sp_status result;
    bool raw = false;
    const json_t *rv = json_object_get(root, "raw");
    if (!absent(rv) && !json_is_boolean(rv))
        return bad(err, "raw", "'raw' must be a boolean");
    raw = json_is_true(rv);
    if (!absent(prompt) && !json_is_string(prompt))
        return bad(err, "prompt", "'prompt' must be a string");
    if (!absent(system) && !json_is_string(system))
        return bad(err, "system", "'system' must be a string");
    if ((result = refuse_nonempty(root, "suffix", "fill-in-the-middle needs a model template spoke does not read",
                                  err)) != SP_OK ||
        (result = refuse_nonempty(root, "context", "send the conversation with /api/chat instead", err)) != SP_OK ||
        (result = refuse_nonempty(root, "template", "spoke renders the model's own chat template", err)) != SP_OK)
        return result;
    if (raw) {
        r->chat = false;
        if (absent(prompt)) {
            r->prompt = sp_strdup("");
            return r->prompt ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        }
        return dup_str(prompt, "prompt", &r->prompt, err);
    }
    r->chat = true;
    r->msgs = sp_calloc(2, sizeof *r->msgs);
    if (!r->msgs)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    if (json_is_string(system) && json_string_length(system) &&
        (result = add_msg(r, "system", system, "system", err)) != SP_OK)
        return result;
    return add_msg(r, "user", prompt, "prompt", err);
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

/* the chat template's variables (as server_req.c builds them for OpenAI
 * requests): {"messages": [{role, content}...], "add_generation_prompt": true} */
static enum sp_status build_template_ctx(struct server_request *r, struct sp_err *err)
{
    json_t *ctx = json_pack("{s:[],s:b}", "messages", "add_generation_prompt", 1);
    json_t *msgs = json_object_get(ctx, "messages");
    enum sp_status result = ctx ? SP_OK : SP_ERR_NOMEM;
    for (size_t i = 0; result == SP_OK && i < r->n_msgs; i++)
        if (json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", r->msgs[i].role, "content",
                                                  r->msgs[i].content)))
            result = SP_ERR_NOMEM;
    struct sp_buf b = {0};
    if (result == SP_OK && (json_dump_callback(ctx, dump_cb, &b, JSON_COMPACT) != 0 || !b.data))
        result = SP_ERR_NOMEM;
    json_decref(ctx);
    if (result != SP_OK) {
        sp_buf_free(&b);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    r->tmpl_ctx_len = b.len;
    r->tmpl_ctx = sp_buf_take(&b);
    return SP_OK;
}

static enum sp_status parse_fields(const json_t *root, bool chat, const struct server_limits *lim,
                                   struct server_request *r, struct sp_err *err)
{
    enum sp_status result;
    const json_t *model = json_object_get(root, "model");
    if (absent(model))
        model = json_object_get(root, "name"); /* older clients */
    if (absent(model))
        return bad(err, "model", "'model' is required (see GET /api/tags)");
    if ((result = dup_str(model, "model", &r->model, err)) != SP_OK)
        return result;
    const json_t *stream = json_object_get(root, "stream");
    if (!absent(stream) && !json_is_boolean(stream))
        return bad(err, "stream", "'stream' must be a boolean");
    r->stream = absent(stream) || json_is_true(stream);
    const json_t *fmt = json_object_get(root, "format");
    if (json_is_string(fmt) && strcmp(json_string_value(fmt), "json") == 0) {
        const char *j = grammar_json_object_gbnf();
        if ((result = server_request_grammar(r, "format", j, strlen(j), err)) != SP_OK)
            return result;
    } else if (json_is_object(fmt)) {
        if ((result = server_request_schema(r, "format", fmt, err)) != SP_OK)
            return result;
    } else if (!absent(fmt) && !(json_is_string(fmt) && json_string_length(fmt) == 0)) {
        return bad(err, "format", "'format' must be \"json\" or a JSON schema object");
    }
    if ((result = refuse_nonempty(root, "images", "the loaded models are text-only", err)) != SP_OK ||
        (result = refuse_nonempty(root, "tools", "function calling is not available on this server", err)) !=
            SP_OK)
        return result;
    const json_t *ka = json_object_get(root, "keep_alive");
    if (!absent(ka) && !json_is_string(ka) && !json_is_number(ka))
        return bad(err, "keep_alive", "'keep_alive' must be a duration string or a number of seconds");
    const json_t *think = json_object_get(root, "think");
    if (!absent(think) && !json_is_boolean(think) && !json_is_string(think))
        return bad(err, "think", "'think' must be a boolean");
    result = chat ? parse_messages(root, lim, r, err) : parse_generate(root, r, err);
    if (result == SP_OK && r->chat)
        result = build_template_ctx(r, err);
    if (result != SP_OK)
        return result;
    return parse_options(root, lim, r, err);
}

enum sp_status server_ollama_parse(const char *body, size_t len, bool chat, const struct server_limits *lim,
                                   struct server_request *out, struct sp_err *err)
{
    memset(out, 0, sizeof *out);
    out->chat = chat;
    if (len == 0)
        return bad(err, NULL, "the request body is empty; send a JSON object");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bad(err, NULL, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    enum sp_status result;
    if (!json_is_object(root))
        result = bad(err, NULL, "the request body must be a JSON object");
    else
        result = parse_fields(root, chat, lim, out, err);
    json_decref(root);
    if (result != SP_OK)
        server_request_free(out);
    return result;
}

enum sp_status server_ollama_model_name(const char *body, size_t len, char **out, bool *stream,
                                        struct sp_err *err)
{
    *out = NULL;
    if (stream)
        *stream = true;
    json_error_t jerr;
    json_t *root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!root)
        return bad(err, NULL, "the request body must be a JSON object with 'model'");
    enum sp_status result;
    const json_t *model = json_object_get(root, "model");
    if (absent(model))
        model = json_object_get(root, "name");
    if (!json_is_object(root))
        result = bad(err, NULL, "the request body must be a JSON object");
    else if (absent(model))
        result = bad(err, "model", "'model' is required");
    else if (json_is_string(model) && (json_string_length(model) == 0 || json_string_length(model) > 512))
        result = bad(err, "model", "'model' must be 1 to 512 bytes");
    else
        result = dup_str(model, "model", out, err);
    const json_t *sv = json_is_object(root) ? json_object_get(root, "stream") : NULL;
    if (result == SP_OK && !absent(sv) && !json_is_boolean(sv))
        result = bad(err, "stream", "'stream' must be a boolean");
    if (stream && json_is_false(sv))
        *stream = false;
    json_decref(root);
    if (result != SP_OK) {
        sp_free(*out);
        *out = NULL;
    }
    return result;
}
