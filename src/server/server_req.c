/* server_req.c - OpenAI request JSON -> struct server_request. jansson
 * parses the body (it rejects invalid UTF-8, \u0000, overflowing numbers
 * and depth > 2048); then each known field is type- and range-checked.
 * Errors name the parameter (err->context) in OpenAI's style. */
#include "server/server_req.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#define REQ_MAX_TEXT (16u << 20)

#define bad srv_req_bad
static enum sp_status parse_format(const json_t *root, struct server_request *r, struct sp_err *err);
enum sp_status srv_req_bad(struct sp_err *err, const char *param, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sp_err_setc(err, SP_ERR_INVALID, param, "%s", msg);
}

void server_request_free(struct server_request *r)
{
    if (!r)
        return;
    sp_free(r->model);
    for (size_t i = 0; i < r->n_msgs; i++) {
        sp_free(r->msgs[i].role);
        sp_free(r->msgs[i].content);
    }
    sp_free(r->msgs);
    sp_free(r->prompt);
    sp_free(r->tmpl_ctx);
    sp_free(r->logit_bias);
    grammar_free(r->grammar);
    for (size_t i = 0; i < r->n_tools; i++) {
        sp_free(r->tool_names[i]);
        sp_free(r->tool_params ? r->tool_params[i] : NULL);
    }
    sp_free(r->tool_names);
    sp_free(r->tool_params);
    for (size_t i = 0; i < r->n_stop; i++)
        sp_free(r->stop[i]);
    sp_free(r->stop);
    memset(r, 0, sizeof *r);
}

static bool is_null_or_absent(const json_t *v) { return !v || json_is_null(v); }

/* "key", or "prefix.key" when the field sits inside an object (Ollama's options) */
static const char *field_name(const char *prefix, const char *key, char *buf, size_t cap)
{
    if (!prefix)
        return key;
    snprintf(buf, cap, "%s.%s", prefix, key);
    return buf;
}

enum sp_status srv_req_number(const json_t *obj, const char *key, const char *prefix, double min, double max,
                              bool *has, double *out, struct sp_err *err)
{
    char buf[64];
    const char *param = field_name(prefix, key, buf, sizeof buf);
    const json_t *v = json_object_get(obj, key);
    if (is_null_or_absent(v))
        return SP_OK;
    if (!json_is_number(v))
        return bad(err, param, "'%s' must be a number", param);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return bad(err, param, "'%s' must be between %g and %g", param, min, max);
    *out = d;
    if (has)
        *has = true;
    return SP_OK;
}

enum sp_status srv_req_int(const json_t *obj, const char *key, const char *prefix, long long min, long long max,
                           bool *has, long long *out, struct sp_err *err)
{
    char buf[64];
    const char *param = field_name(prefix, key, buf, sizeof buf);
    const json_t *v = json_object_get(obj, key);
    if (is_null_or_absent(v))
        return SP_OK;
    /* accept 5.0 but not 5.5; a real is exact (and converts without
     * overflow) only up to 2^53 */
    double d = json_is_real(v) ? json_real_value(v) : 0;
    if (!json_is_integer(v) && !(json_is_real(v) && isfinite(d) && floor(d) == d && d >= -9e15 && d <= 9e15))
        return bad(err, param, "'%s' must be an integer", param);
    long long i = json_is_integer(v) ? (long long)json_integer_value(v) : (long long)d;
    if (i < min || i > max)
        return bad(err, param, "'%s' must be between %lld and %lld (got %lld)", param, min, max, i);
    *out = i;
    if (has)
        *has = true;
    return SP_OK;
}

static enum sp_status get_number(const json_t *root, const char *key, double min, double max, bool *has, double *out,
                                 struct sp_err *err)
{
    return srv_req_number(root, key, NULL, min, max, has, out, err);
}

static enum sp_status get_int(const json_t *root, const char *key, long long min, long long max, bool *has,
                              long long *out, struct sp_err *err)
{
    return srv_req_int(root, key, NULL, min, max, has, out, err);
}

static enum sp_status get_bool(const json_t *root, const char *key, bool *out, struct sp_err *err)
{
    const json_t *v = json_object_get(root, key);
    if (is_null_or_absent(v))
        return SP_OK;
    if (!json_is_boolean(v))
        return bad(err, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return SP_OK;
}

static enum sp_status dup_text(const json_t *v, const char *param, char **out, struct sp_err *err)
{
    size_t n = json_string_length(v);
    if (n > REQ_MAX_TEXT)
        return sp_err_setc(err, SP_ERR_LIMIT, param, "'%s' is too long", param);
    *out = sp_strndup(json_string_value(v), n);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

/* content: string | null | [{type:"text", text:"..."}, ...] */
static enum sp_status msg_content(const json_t *c, const char *param, char **out, struct sp_err *err)
{
    if (is_null_or_absent(c)) {
        *out = sp_strdup("");
        return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    if (json_is_string(c))
        return dup_text(c, param, out, err);
    if (!json_is_array(c))
        return bad(err, param, "'%s' must be a string or an array of text parts", param);
    struct sp_buf b = {0};
    b.limit = REQ_MAX_TEXT;
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part) {
        const json_t *type = json_object_get(part, "type");
        const json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type)) {
            sp_buf_free(&b);
            return bad(err, param, "'%s[%zu]' must be an object with a 'type'", param, i);
        }
        if (strcmp(json_string_value(type), "text") != 0) {
            sp_buf_free(&b);
            return bad(err, param, "content part type '%.40s' is not supported (only 'text')", json_string_value(type));
        }
        if (!json_is_string(text)) {
            sp_buf_free(&b);
            return bad(err, param, "'%s[%zu].text' must be a string", param, i);
        }
        int rc = sp_buf_append(&b, json_string_value(text), json_string_length(text));
        if (rc) {
            sp_buf_free(&b);
            return sp_err_setc(err, rc == SP_ERR_LIMIT ? SP_ERR_LIMIT : SP_ERR_NOMEM, param, "'%s' is too long", param);
        }
    }
    *out = sp_buf_take(&b);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

/* tool_calls of an assistant message -> normalised copy (arguments as an object when they parse) */
static enum sp_status tool_calls_copy(const json_t *tc, const char *param, json_t **out, struct sp_err *err)
{
    *out = NULL;
    if (!json_is_array(tc))
        return bad(err, param, "'%s' must be an array", param);
    json_t *arr = json_array();
    if (!arr)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *it;
    json_array_foreach(tc, i, it) {
        const json_t *fn = json_object_get(it, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        const json_t *id = json_object_get(it, "id");
        if (!json_is_object(it) || !json_is_object(fn) || !json_is_string(name) ||
            (args && !json_is_string(args) && !json_is_object(args)) || (id && !json_is_string(id))) {
            json_decref(arr);
            return bad(err, param, "'%s[%zu]' must be {id, type: \"function\", function: {name, arguments}}", param,
                       i);
        }
        json_t *a = NULL;
        if (json_is_string(args)) {
            a = json_loadb(json_string_value(args), json_string_length(args), JSON_REJECT_DUPLICATES, NULL);
            if (!json_is_object(a)) {
                json_decref(a);
                a = json_incref((json_t *)args); /* not an object: passed as the string */
            }
        } else {
            a = args ? json_incref((json_t *)args) : json_object();
        }
        json_t *c = json_pack("{s:s,s:{s:O,s:o}}", "type", "function", "function", "name", name, "arguments", a);
        if (c && id)
            json_object_set(c, "id", (json_t *)id);
        if (!c || json_array_append_new(arr, c)) {
            json_decref(arr);
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        }
    }
    *out = arr;
    return SP_OK;
}

static enum sp_status parse_messages(const json_t *root, const struct server_limits *lim, struct server_request *r,
                                     json_t *tmsgs, struct sp_err *err)
{
    const json_t *m = json_object_get(root, "messages");
    if (!m)
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
        if (!strcmp(rs, "developer"))
            rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool"))
            return bad(err, param, "'%.40s' is not a valid role (system, developer, user, assistant, tool)", rs);
        r->msgs[i].role = sp_strdup(rs);
        r->n_msgs = i + 1;
        if (!r->msgs[i].role)
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        snprintf(param, sizeof param, "messages[%zu].content", i);
        const json_t *content = json_object_get(it, "content");
        if (!content && strcmp(rs, "assistant") != 0)
            return bad(err, param, "'%s' is required", param);
        enum sp_status result = msg_content(content, param, &r->msgs[i].content, err);
        if (result != SP_OK)
            return result;
        /* the template's view of this message */
        json_t *tm = json_pack("{s:s}", "role", rs);
        if (!tm || json_array_append_new(tmsgs, tm))
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        const json_t *tc = json_object_get(it, "tool_calls");
        bool has_tc = !is_null_or_absent(tc) && !strcmp(rs, "assistant");
        if (json_object_set_new(tm, "content", has_tc && is_null_or_absent(content)
                                                   ? json_null() : json_string(r->msgs[i].content)))
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        if (has_tc) {
            json_t *copy = NULL;
            snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
            if ((result = tool_calls_copy(tc, param, &copy, err)) != SP_OK)
                return result;
            if (json_object_set_new(tm, "tool_calls", copy))
                return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        }
        static const char *const extra[] = {"tool_call_id", "name"};
        for (size_t k = 0; k < SP_ARRAY_LEN(extra); k++) {
            const json_t *x = json_object_get(it, extra[k]);
            if (is_null_or_absent(x))
                continue;
            if (!json_is_string(x) || json_string_length(x) > 256)
                return bad(err, extra[k], "'messages[%zu].%s' must be a string (at most 256 bytes)", i, extra[k]);
            if (json_object_set(tm, extra[k], (json_t *)x))
                return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        }
    }
    return SP_OK;
}

static enum sp_status parse_prompt(const json_t *root, struct server_request *r, struct sp_err *err)
{
    const json_t *p = json_object_get(root, "prompt");
    if (!p)
        return bad(err, "prompt", "'prompt' is required");
    if (json_is_array(p)) {
        if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0)))
            return bad(err, "prompt", "'prompt' must be a string (or an array of exactly one string)");
        p = json_array_get(p, 0);
    }
    if (!json_is_string(p))
        return bad(err, "prompt", "'prompt' must be a string");
    return dup_text(p, "prompt", &r->prompt, err);
}

static enum sp_status parse_stop(const json_t *root, const struct server_limits *lim, struct server_request *r,
                                 struct sp_err *err)
{
    const json_t *s = json_object_get(root, "stop");
    if (is_null_or_absent(s))
        return SP_OK;
    size_t n = json_is_string(s) ? 1 : json_is_array(s) ? json_array_size(s) : (size_t)-1;
    if (n == (size_t)-1)
        return bad(err, "stop", "'stop' must be a string or an array of strings");
    if (n > (size_t)lim->max_stop)
        return bad(err, "stop", "at most %d stop sequences are allowed", lim->max_stop);
    r->stop = sp_calloc(n ? n : 1, sizeof *r->stop);
    if (!r->stop)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_is_string(s) ? s : json_array_get(s, i);
        if (!json_is_string(it))
            return bad(err, "stop", "'stop[%zu]' must be a string", i);
        if (json_string_length(it) == 0)
            continue;
        if (json_string_length(it) > 256)
            return bad(err, "stop", "stop sequences are limited to 256 bytes");
        enum sp_status result = dup_text(it, "stop", &r->stop[r->n_stop], err);
        if (result != SP_OK)
            return result;
        r->n_stop++;
    }
    return SP_OK;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

/* chat_template_kwargs (extra template variables, as vLLM / llama.cpp accept) and the
 * special_in_content opt-in */
static enum sp_status parse_template_extras(const json_t *root, struct server_request *r, json_t *tctx,
                                            struct sp_err *err)
{
    enum sp_status result = get_bool(root, "special_in_content", &r->special_in_content, err);
    if (result != SP_OK)
        return result;
    const json_t *kw = json_object_get(root, "chat_template_kwargs");
    if (is_null_or_absent(kw))
        return SP_OK;
    if (!json_is_object(kw))
        return bad(err, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)kw, k, v) {
        if (!strcmp(k, "messages") || !strcmp(k, "tools") || !strcmp(k, "bos_token") || !strcmp(k, "eos_token") ||
            !strcmp(k, "documents"))
            return bad(err, "chat_template_kwargs", "'chat_template_kwargs' may not set '%.40s'", k);
        if (!json_is_boolean(v) && !json_is_number(v) && !json_is_string(v) && !json_is_null(v))
            return bad(err, "chat_template_kwargs", "'chat_template_kwargs.%.40s' must be a boolean, number or string",
                       k);
        if (json_is_string(v) && json_string_length(v) > 4096)
            return bad(err, "chat_template_kwargs", "'chat_template_kwargs.%.40s' is too long", k);
        if (json_object_set(tctx, k, v))
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    return SP_OK;
}

/* logit_bias: {"token id": bias in [-100, 100]} (OpenAI), at most 1024 entries */
static enum sp_status parse_logit_bias(const json_t *root, struct server_request *r, struct sp_err *err)
{
    const json_t *lb = json_object_get(root, "logit_bias");
    if (is_null_or_absent(lb))
        return SP_OK;
    if (!json_is_object(lb))
        return bad(err, "logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    size_t n = json_object_size(lb);
    if (n > 1024)
        return bad(err, "logit_bias", "'logit_bias' has %zu entries (at most 1024)", n);
    r->logit_bias = sp_calloc(n ? n : 1, sizeof *r->logit_bias);
    if (!r->logit_bias)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)lb, k, v) {
        int64_t id;
        if (!sp_parse_i64(k, 0, INT32_MAX, &id))
            return bad(err, "logit_bias", "'logit_bias' keys must be token ids (got '%.40s')", k);
        if (!json_is_number(v) || json_number_value(v) < -100 || json_number_value(v) > 100)
            return bad(err, "logit_bias", "'logit_bias.%.20s' must be a number between -100 and 100", k);
        r->logit_bias[r->n_logit_bias++] = (struct sample_bias){(int32_t)id, (float)json_number_value(v)};
    }
    return SP_OK;
}

/* compact JSON text of v (sp_malloc'd), NULL when out of memory */
static char *dump_text(const json_t *v)
{
    struct sp_buf b = {0};
    if (json_dump_callback(v, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || !b.data) {
        sp_buf_free(&b);
        return NULL;
    }
    return sp_buf_take(&b);
}

static bool tool_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

/* tools (OpenAI function tools), tool_choice, parallel_tool_calls -> r and the template's "tools" */
static enum sp_status parse_tools(const json_t *root, struct server_request *r, json_t *tctx, struct sp_err *err)
{
    const json_t *tools = json_object_get(root, "tools"), *tc = json_object_get(root, "tool_choice");
    bool par = true;
    enum sp_status result = get_bool(root, "parallel_tool_calls", &par, err);
    if (result != SP_OK)
        return result;
    const char *named = NULL;
    if (json_is_string(tc)) {
        const char *v = json_string_value(tc);
        r->tool_choice = !strcmp(v, "auto") ? SERVER_TOOLS_AUTO : !strcmp(v, "none") ? SERVER_TOOLS_NONE
                         : !strcmp(v, "required") ? SERVER_TOOLS_REQUIRED : -1;
        if (r->tool_choice < 0)
            return bad(err, "tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    } else if (json_is_object(tc)) {
        named = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
        if (!named)
            return bad(err, "tool_choice", "'tool_choice.function.name' must be a string");
        r->tool_choice = SERVER_TOOLS_NAMED;
    } else if (!is_null_or_absent(tc)) {
        return bad(err, "tool_choice", "'tool_choice' must be a string or an object");
    }
    if (is_null_or_absent(tools)) {
        if (r->tool_choice == SERVER_TOOLS_REQUIRED || r->tool_choice == SERVER_TOOLS_NAMED)
            return bad(err, "tool_choice", "'tool_choice' needs 'tools'");
        return SP_OK;
    }
    if (!json_is_array(tools))
        return bad(err, "tools", "'tools' must be an array");
    size_t n = json_array_size(tools);
    if (n > 128)
        return bad(err, "tools", "at most 128 tools are allowed (got %zu)", n);
    json_t *keep = json_array();
    r->tool_names = sp_calloc(n ? n : 1, sizeof *r->tool_names);
    r->tool_params = sp_calloc(n ? n : 1, sizeof *r->tool_params);
    if (!keep || !r->tool_names || !r->tool_params) {
        json_decref(keep);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tools, i), *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name"), *params = json_object_get(fn, "parameters");
        const json_t *desc = json_object_get(fn, "description"), *type = json_object_get(t, "type");
        if (!json_is_object(t) || !json_is_string(type) || strcmp(json_string_value(type), "function") ||
            !json_is_object(fn) || !json_is_string(name) ||
            !tool_name_ok(json_string_value(name), json_string_length(name)) ||
            (!is_null_or_absent(params) && !json_is_object(params)) ||
            (!is_null_or_absent(desc) && !json_is_string(desc))) {
            json_decref(keep);
            return bad(err, "tools", "'tools[%zu]' must be {\"type\": \"function\", \"function\": {\"name\": "
                       "a-z A-Z 0-9 _ - . (at most 64), \"description\", \"parameters\": {JSON schema}}}", i);
        }
        if (named && strcmp(named, json_string_value(name)))
            continue; /* a named choice shows the model only that function */
        if (r->tool_choice == SERVER_TOOLS_NONE)
            continue;
        r->tool_names[r->n_tools] = sp_strdup(json_string_value(name));
        if (!is_null_or_absent(params))
            r->tool_params[r->n_tools] = dump_text(params);
        if (!r->tool_names[r->n_tools] || (!is_null_or_absent(params) && !r->tool_params[r->n_tools]) ||
            json_array_append(keep, (json_t *)t)) {
            json_decref(keep);
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        }
        r->n_tools++;
    }
    if (named && r->n_tools == 0) {
        json_decref(keep);
        return bad(err, "tool_choice", "'tool_choice' names '%.64s', which is not in 'tools'", named);
    }
    if (r->n_tools == 0) {
        json_decref(keep);
        return SP_OK;
    }
    return json_object_set_new(tctx, "tools", keep) ? sp_err_set(err, SP_ERR_NOMEM, "out of memory") : SP_OK;
}

static enum sp_status parse_fields(const json_t *root, bool chat, const struct server_limits *lim,
                                   struct server_request *r, struct sp_err *err)
{
    enum sp_status result;
    long long iv = 0;
    bool has = false;
    const json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model))
            return bad(err, "model", "'model' must be a string");
        if ((result = dup_text(model, "model", &r->model, err)) != SP_OK)
            return result;
    }
    json_t *tctx = chat ? json_pack("{s:[],s:b}", "messages", "add_generation_prompt", 1) : NULL;
    if (chat && !tctx)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    result = chat ? parse_messages(root, lim, r, json_object_get(tctx, "messages"), err) : parse_prompt(root, r, err);
    if (result == SP_OK && chat)
        result = parse_template_extras(root, r, tctx, err);
    if (result == SP_OK && chat)
        result = parse_tools(root, r, tctx, err);
    if (result == SP_OK && chat) {
        struct sp_buf b = {0};
        if (json_dump_callback(tctx, dump_cb, &b, JSON_COMPACT) != 0 || !b.data) {
            sp_buf_free(&b);
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        } else {
            r->tmpl_ctx_len = b.len;
            r->tmpl_ctx = sp_buf_take(&b);
        }
    }
    json_decref(tctx);
    if (result != SP_OK)
        return result;
    if ((result = get_bool(root, "stream", &r->stream, err)) != SP_OK)
        return result;
    const json_t *so = json_object_get(root, "stream_options");
    if (!is_null_or_absent(so)) {
        if (!json_is_object(so))
            return bad(err, "stream_options", "'stream_options' must be an object");
        if (!r->stream)
            return bad(err, "stream_options", "'stream_options' is only allowed when 'stream' is true");
        const json_t *iu = json_object_get(so, "include_usage");
        if (!is_null_or_absent(iu) && !json_is_boolean(iu))
            return bad(err, "stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
        r->include_usage = json_is_true(iu);
    }
    static const char *const mt_keys[] = {"max_tokens", "max_completion_tokens"};
    for (size_t k = 0; k < 2; k++) {
        has = false;
        const json_t *v = json_object_get(root, mt_keys[k]);
        if (json_is_integer(v) && (json_integer_value(v) < 1))
            return bad(err, mt_keys[k], "'%s' must be at least 1", mt_keys[k]);
        if (json_is_integer(v) && json_integer_value(v) > lim->max_tokens)
            return bad(err, mt_keys[k], "'%s' is %lld, above this server's limit of %d", mt_keys[k],
                       (long long)json_integer_value(v), lim->max_tokens);
        if ((result = get_int(root, mt_keys[k], 1, lim->max_tokens, &has, &iv, err)) != SP_OK)
            return result;
        if (has)
            r->max_tokens = (int)iv;
    }
    if ((result = get_number(root, "temperature", 0, 2, &r->has_temperature, &r->temperature, err)) != SP_OK ||
        (result = get_number(root, "top_p", 0, 1, &r->has_top_p, &r->top_p, err)) != SP_OK ||
        (result = get_number(root, "min_p", 0, 1, &r->has_min_p, &r->min_p, err)) != SP_OK ||
        (result = get_number(root, "repeat_penalty", 0, 10, &r->has_repeat_penalty, &r->repeat_penalty, err)) != SP_OK ||
        (result = get_number(root, "presence_penalty", -2, 2, NULL, &r->presence_penalty, err)) != SP_OK ||
        (result = get_number(root, "frequency_penalty", -2, 2, NULL, &r->frequency_penalty, err)) != SP_OK)
        return result;
    has = false;
    if ((result = get_int(root, "top_k", 0, 1 << 20, &has, &iv, err)) != SP_OK)
        return result;
    if (has) {
        r->has_top_k = true;
        r->top_k = (int)iv;
    }
    has = false;
    if ((result = get_int(root, "seed", INT64_MIN, INT64_MAX, &has, &iv, err)) != SP_OK)
        return result;
    if (has) {
        r->has_seed = true;
        r->seed = (uint64_t)iv;
    }
    iv = 1;
    if ((result = get_int(root, "n", 1, SERVER_MAX_N, NULL, &iv, err)) != SP_OK)
        return result;
    r->n = (int)iv;
    if (r->n > 1 && r->n_tools)
        return bad(err, "n", "'n' > 1 is not supported together with 'tools'");
    iv = 1;
    if ((result = get_int(root, "best_of", 1, 1, NULL, &iv, err)) != SP_OK)
        return bad(err, "best_of", "only best_of = 1 is supported");
    bool echo = false;
    if ((result = get_bool(root, "echo", &echo, err)) != SP_OK)
        return result;
    if (echo)
        return bad(err, "echo", "'echo' is not supported");
    if ((result = parse_stop(root, lim, r, err)) != SP_OK || (result = parse_logit_bias(root, r, err)) != SP_OK)
        return result;
    const json_t *lp = json_object_get(root, "logprobs");
    if (chat) {
        if ((result = get_bool(root, "logprobs", &r->logprobs, err)) != SP_OK)
            return result;
        has = false;
        iv = 0;
        if ((result = get_int(root, "top_logprobs", 0, 20, &has, &iv, err)) != SP_OK)
            return result;
        if (has && !r->logprobs)
            return bad(err, "top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
        r->top_logprobs = (int)iv;
    } else if (!is_null_or_absent(lp)) {
        /* completions: logprobs is an integer 0..20 (OpenAI allows 5) */
        iv = 0;
        if ((result = get_int(root, "logprobs", 0, 20, NULL, &iv, err)) != SP_OK)
            return result;
        r->logprobs = true;
        r->top_logprobs = (int)iv;
    }
    const json_t *sfx = json_object_get(root, "suffix");
    if (!is_null_or_absent(sfx))
        return bad(err, "suffix", "'suffix' is not supported");
    if ((result = parse_format(root, r, err)) != SP_OK)
        return result;
    if (r->tool_choice != SERVER_TOOLS_REQUIRED && r->tool_choice != SERVER_TOOLS_NAMED)
        return SP_OK;
    if (r->grammar)
        return bad(err, "tool_choice", "'tool_choice' \"required\" or a named function constrains the output "
                   "itself: give no 'response_format' JSON or 'grammar' with it");
    /* the generic syntax now (so bad schemas are refused before any model work);
     * the model's own syntax replaces it once the model is known */
    return server_request_tools_grammar(r, 0, err);
}

enum sp_status server_request_grammar(struct server_request *r, const char *param, const char *gbnf, size_t len,
                                      struct sp_err *err)
{
    struct sp_err e;
    sp_err_clear(&e);
    grammar_free(r->grammar);
    r->grammar = NULL;
    enum sp_status st = grammar_parse(gbnf, len, &r->grammar, &e);
    if (st == SP_ERR_NOMEM)
        return sp_err_set(err, st, "%s", e.msg);
    if (st != SP_OK)
        return bad(err, param, "'%s': %s", param, e.msg);
    return SP_OK;
}

static int dump_text_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

enum sp_status server_request_schema(struct server_request *r, const char *param, const struct json_t *schema,
                                     struct sp_err *err)
{
    struct sp_err e;
    sp_err_clear(&e);
    char *gbnf = NULL;
    struct sp_buf txt = {0};
    if (json_dump_callback(schema, dump_text_cb, &txt, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) != 0) {
        sp_buf_free(&txt);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading a JSON schema");
    }
    enum sp_status st = json_schema_gbnf(txt.data ? txt.data : "", txt.len, &gbnf, &e);
    sp_buf_free(&txt);
    if (st == SP_ERR_NOMEM)
        return sp_err_set(err, st, "%s", e.msg);
    if (st != SP_OK)
        return bad(err, param, "'%s': %s", param, e.msg);
    st = server_request_grammar(r, param, gbnf, strlen(gbnf), err);
    sp_free(gbnf);
    return st;
}

/* response_format {type: text | json_object | json_schema} and the
 * extension grammar (GBNF text); at most one of the constraining ones. */
static enum sp_status parse_format(const json_t *root, struct server_request *r, struct sp_err *err)
{
    const json_t *rf = json_object_get(root, "response_format"), *gr = json_object_get(root, "grammar");
    bool has_gr = !is_null_or_absent(gr);
    if (has_gr && !json_is_string(gr))
        return bad(err, "grammar", "'grammar' must be a string of GBNF rules");
    if (!is_null_or_absent(rf)) {
        const char *type = json_is_object(rf) ? json_string_value(json_object_get(rf, "type")) : NULL;
        if (!type)
            return bad(err, "response_format",
                       "'response_format' must be an object with 'type' text, json_object or json_schema");
        if (strcmp(type, "json_object") == 0 || strcmp(type, "json_schema") == 0) {
            if (has_gr)
                return bad(err, "grammar", "give either 'grammar' or a JSON 'response_format', not both");
            if (strcmp(type, "json_object") == 0) {
                const char *j = grammar_json_object_gbnf();
                return server_request_grammar(r, "response_format", j, strlen(j), err);
            }
            const json_t *js = json_object_get(rf, "json_schema");
            const json_t *sch = json_is_object(js) ? json_object_get(js, "schema") : NULL;
            if (!js || !json_is_object(js))
                return bad(err, "response_format", "'response_format.json_schema' must be an object with a 'schema'");
            const json_t *strict = json_object_get(js, "strict");
            if (strict && !json_is_boolean(strict) && !json_is_null(strict))
                return bad(err, "response_format", "'response_format.json_schema.strict' must be a boolean");
            if (!sch || (!json_is_object(sch) && !json_is_true(sch)))
                return bad(err, "response_format", "'response_format.json_schema.schema' must be a JSON schema object");
            return server_request_schema(r, "response_format", sch, err);
        }
        if (strcmp(type, "text") != 0)
            return bad(err, "response_format",
                       "'response_format.type' must be text, json_object or json_schema (got '%.40s')", type);
    }
    if (has_gr)
        return server_request_grammar(r, "grammar", json_string_value(gr), json_string_length(gr), err);
    return SP_OK;
}

enum sp_status server_request_parse(const char *body, size_t len, bool chat, const struct server_limits *lim,
                                    struct server_request *out, struct sp_err *err)
{
    memset(out, 0, sizeof *out);
    out->chat = chat;
    out->n = 1;
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
    if (result != SP_OK) {
        server_request_free(out);
        out->chat = chat;
        out->n = 1;
    }
    return result;
}
