/* chat.c - the engine's chat templates. At load, engine_chat_setup picks the
 * template: the configured override (a family name, Jinja text or a file),
 * else the model's tokenizer.chat_template, else the built-in chatml; it is
 * parsed once by the Jinja interpreter (tok_tmpl_*). A template that does not
 * parse is replaced by the fixed-family renderer (tok_chat_*, chosen by its
 * markers) with a warning naming the failure. A model that also carries
 * the named variant tokenizer.chat_template.tool_use (and no override is
 * configured) renders requests that have tools with that one; it is parsed
 * at load too, and one that fails to parse is dropped with a warning.
 *
 * Rendering takes the request's template variables as JSON and returns the
 * prompt with the byte ranges that came from the request (so the tokenizer
 * keeps them as text). On the fixed-family path those ranges are found by
 * locating each message's content, in order, in the rendered text. */
#include "engine/engine_impl.h"
#include "obs/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define CHAT_MAX_OUT (64u << 20)

static bool looks_like_jinja(const char *s) { return strstr(s, "{{") || strstr(s, "{%"); }

static enum sp_status read_template_file(const char *path, char **out, struct sp_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sp_err_setc(err, SP_ERR_INVALID, "chat_template",
                           "chat_template '%.200s' is not a family name (chatml, llama2, llama3, mistral, zephyr, "
                           "phi3, gemma), not Jinja text, and not a readable file: %s", path, strerror(errno));
    struct sp_buf b = {0};
    b.limit = TOK_TMPL_MAX_SOURCE;
    char tmp[8192];
    size_t k;
    int rc = 0;
    while (!rc && (k = fread(tmp, 1, sizeof tmp, f)) > 0)
        rc = sp_buf_append(&b, tmp, k);
    bool ioerr = ferror(f) != 0;
    fclose(f);
    if (rc || ioerr) {
        sp_buf_free(&b);
        return sp_err_setc(err, rc == SP_ERR_LIMIT ? SP_ERR_LIMIT : SP_ERR_IO, "chat_template",
                           "cannot read chat template file '%.200s'%s", path,
                           rc == SP_ERR_LIMIT ? " (over 1 MiB)" : "");
    }
    *out = sp_buf_take(&b);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory reading %s", path);
}

static int syntax_of_text(const char *t)
{
    if (strstr(t, "<tool_call>"))
        return ENGINE_TOOLS_HERMES;
    if (strstr(t, "[TOOL_CALLS]"))
        return ENGINE_TOOLS_MISTRAL;
    if (strstr(t, "<|python_tag|>") || strstr(t, "ipython"))
        return ENGINE_TOOLS_LLAMA3;
    return ENGINE_TOOLS_GENERIC;
}

static int syntax_of_family(enum tok_chat_family f)
{
    return f == TOK_CHAT_MISTRAL ? ENGINE_TOOLS_MISTRAL
           : f == TOK_CHAT_LLAMA3 ? ENGINE_TOOLS_LLAMA3
           : f == TOK_CHAT_QWEN3  ? ENGINE_TOOLS_HERMES
                                  : ENGINE_TOOLS_GENERIC;
}

enum engine_tool_syntax engine_chat_tool_syntax(const struct engine_model *m)
{
    return (enum engine_tool_syntax)m->tool_syntax;
}

/* The model's tokenizer.chat_template.tool_use, when it has one that parses. */
static void setup_tool_use(struct engine_model *em)
{
    struct gg_str s;
    if (!gg_get_str(em->file, "tokenizer.chat_template.tool_use", &s) || s.len == 0)
        return;
    struct sp_err perr;
    sp_err_clear(&perr);
    if (tok_tmpl_parse(s.ptr, s.len, &em->tmpl_tools, &perr) != SP_OK) {
        em->tmpl_tools = NULL;
        LOG_WARN("engine", "the model's tool-use chat template cannot be used (%s); requests with tools use its "
                 "default template", perr.msg);
        return;
    }
    char *text = sp_strndup(s.ptr, s.len);
    if (text) /* the tool-call syntax is the one the tool-use template teaches */
        em->tool_syntax = syntax_of_text(text);
    sp_free(text);
    size_t n = strlen(em->tmpl_desc);
    snprintf(em->tmpl_desc + n, sizeof em->tmpl_desc - n, " + tool_use");
}

/* Does the template context carry a non-empty "tools" array? */
static bool ctx_has_tools(const char *ctx_json, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(ctx_json, len, 0, &je);
    const json_t *t = json_object_get(root, "tools");
    bool has = json_is_array(t) && json_array_size(t) > 0;
    json_decref(root);
    return has;
}

enum sp_status engine_chat_setup(struct engine_model *em, const char *override, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char *owned = NULL;
    const char *text = NULL, *origin = "model";
    struct gg_str s;
    if (override && *override) {
        origin = "config";
        if ((text = tok_tmpl_builtin(override)) != NULL) {
            origin = override;
        } else if (tok_chat_detect(override) != TOK_CHAT_CHATML || !strcmp(override, "chatml")) {
            /* a family only the fixed renderer knows */
            if (!strcmp(tok_chat_family_name(tok_chat_detect(override)), override)) {
                em->chat = tok_chat_detect(override);
                em->tool_syntax = syntax_of_family(em->chat);
                snprintf(em->tmpl_desc, sizeof em->tmpl_desc, "%s (fixed, from config)", override);
                return SP_OK;
            }
        }
        if (!text && looks_like_jinja(override)) {
            text = override;
        } else if (!text) {
            if ((result = read_template_file(override, &owned, err)) != SP_OK)
                return result;
            text = owned;
        }
    } else if (gg_get_str(em->file, "tokenizer.chat_template", &s) && s.len > 0) {
        owned = sp_strndup(s.ptr, s.len);
        if (!owned)
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading the chat template");
        text = owned;
    } else {
        text = tok_tmpl_builtin("chatml");
        origin = "built-in chatml: the model has none";
    }
    em->tool_syntax = syntax_of_text(text);
    struct sp_err perr;
    sp_err_clear(&perr);
    enum sp_status st = tok_tmpl_parse(text, strlen(text), &em->tmpl, &perr);
    if (st == SP_ERR_NOMEM) {
        sp_free(owned);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory parsing the chat template");
    }
    if (st != SP_OK) {
        em->chat = tok_chat_detect(text);
        LOG_WARN("engine", "the chat template (%s) cannot be used: %s; falling back to the fixed '%s' renderer",
                 origin, perr.msg, tok_chat_family_name(em->chat));
        snprintf(em->tmpl_desc, sizeof em->tmpl_desc, "%s (fixed: the %s template failed to parse)",
                 tok_chat_family_name(em->chat), origin);
    } else {
        snprintf(em->tmpl_desc, sizeof em->tmpl_desc, "jinja (%s)", origin);
    }
    sp_free(owned);
    if (!(override && *override))
        setup_tool_use(em);
    return SP_OK;
}

const char *engine_chat_template_kind(const struct engine_model *m)
{
    return m->tmpl ? "jinja" : tok_chat_family_name(m->chat);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* fixed-family fallback: messages from the JSON, rendered by tok_chat_render */
static enum sp_status render_fixed(const struct engine_model *m, const char *ctx_json, size_t len, size_t max_out,
                                   struct tok_rendered *out, struct sp_err *err)
{
    enum sp_status result;
    json_error_t je;
    json_t *root = json_loadb(ctx_json, len, 0, &je);
    const json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs)) {
        json_decref(root);
        return sp_err_set(err, SP_ERR_INVALID, "chat context needs a 'messages' array");
    }
    size_t n = json_array_size(msgs);
    struct tok_chat_msg *tm = sp_calloc(n ? n : 1, sizeof *tm);
    struct sp_buf b = {0};
    b.limit = max_out;
    if (!tm) {
        json_decref(root);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory rendering the chat");
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(it, "role"));
        const char *content = json_string_value(json_object_get(it, "content"));
        tm[i].role = role ? role : "";
        tm[i].content = content ? content : "";
    }
    const json_t *agp = json_object_get(root, "add_generation_prompt");
    result = tok_chat_render(m->chat, tm, n, agp ? json_is_true(agp) : true, m->bos_text, m->eos_text, &b, err);
    if (result == SP_OK) {
        /* request-data spans: each content (or its trimmed form), in order */
        struct tok_span *sp = sp_calloc(n ? n : 1, sizeof *sp);
        size_t ns = 0, cur = 0;
        for (size_t i = 0; sp && i < n; i++) {
            const char *c = tm[i].content, *e = c + strlen(c);
            while (c < e && is_space(*c))
                c++;
            while (e > c && is_space(e[-1]))
                e--;
            if (e == c || cur >= b.len)
                continue;
            const char *hit = memmem(b.data + cur, b.len - cur, c, (size_t)(e - c));
            if (!hit)
                continue;
            sp[ns++] = (struct tok_span){(size_t)(hit - b.data), (size_t)(e - c)};
            cur = (size_t)(hit - b.data) + (size_t)(e - c);
        }
        if (!sp) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory rendering the chat");
        } else {
            out->len = b.len;
            out->text = sp_buf_take(&b);
            out->spans = sp;
            out->n_spans = ns;
            if (!out->text) {
                tok_rendered_free(out);
                result = sp_err_set(err, SP_ERR_NOMEM, "out of memory rendering the chat");
            }
        }
    }
    sp_buf_free(&b);
    sp_free(tm);
    json_decref(root);
    return result;
}

enum sp_status engine_chat_render_ctx(const struct engine_model *m, const char *ctx_json, size_t len,
                                      size_t max_out, struct tok_rendered *out, struct sp_err *err)
{
    memset(out, 0, sizeof *out);
    if (!m->tmpl)
        return render_fixed(m, ctx_json, len, max_out, out, err);
    struct tok_tmpl_vars vars = {.bos_token = m->bos_text, .eos_token = m->eos_text};
    const struct tok_tmpl *t = m->tmpl_tools && ctx_has_tools(ctx_json, len) ? m->tmpl_tools : m->tmpl;
    return tok_tmpl_render(t, ctx_json, len, &vars, max_out, out, err);
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

enum sp_status engine_chat_render(const struct engine_model *m, const struct engine_chat_msg *msgs, size_t n_msgs,
                                  bool add_generation_prompt, char **out, struct sp_err *err)
{
    *out = NULL;
    for (size_t i = 0; i < n_msgs; i++) {
        const char *r = msgs[i].role ? msgs[i].role : "";
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
            return sp_err_set(err, SP_ERR_INVALID, "unknown chat role '%.32s' (use system, user or assistant)", r);
    }
    json_t *root = json_object(), *arr = json_array();
    int rc = !root || !arr || json_object_set_new(root, "messages", arr) ||
             json_object_set_new(root, "add_generation_prompt", json_boolean(add_generation_prompt));
    for (size_t i = 0; !rc && i < n_msgs; i++)
        rc = json_array_append_new(arr, json_pack("{s:s,s:s}", "role", msgs[i].role ? msgs[i].role : "",
                                                  "content", msgs[i].content ? msgs[i].content : ""));
    struct sp_buf js = {0};
    if (!rc)
        rc = json_dump_callback(root, dump_cb, &js, JSON_COMPACT);
    json_decref(root);
    if (rc || !js.data) {
        sp_buf_free(&js);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory rendering the chat");
    }
    struct tok_rendered r;
    enum sp_status result = engine_chat_render_ctx(m, js.data, js.len, CHAT_MAX_OUT, &r, err);
    sp_buf_free(&js);
    if (result != SP_OK)
        return result;
    *out = r.text;
    r.text = NULL;
    tok_rendered_free(&r);
    return SP_OK;
}
