/* server_chat.c - chat requests and the model's chat template: the prompt
 * of a request (srv_chat_prompt) is the chat rendered by the engine from the
 * template variables server_req.c collected (messages, tools, kwargs), with
 * the byte ranges that came from the request, which the tokenizer keeps as
 * text so that a message cannot forge the template's control tokens. A
 * template that fails on an assistant tool-call message's null content (the
 * chatml one concatenates it) is rendered again with "" there. */
#include "server/server_int.h"
#include "server/server_req.h"
#include "tok/tok.h"

#include <jansson.h>
#include <string.h>

#define CHAT_MAX_PROMPT (64u << 20)

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

/* ctx_json with every message's null content replaced by "" (sp_malloc'd), NULL on failure */
static char *null_contents_empty(const char *ctx_json, size_t len)
{
    json_t *ctx = json_loadb(ctx_json, len, 0, NULL);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ctx, "messages"), i, m) {
        if (json_is_null(json_object_get(m, "content")))
            json_object_set_new(m, "content", json_string(""));
    }
    struct sp_buf b = {0};
    char *out = NULL;
    if (ctx && json_dump_callback(ctx, dump_cb, &b, JSON_COMPACT) == 0 && b.data)
        out = sp_buf_take(&b);
    sp_buf_free(&b);
    json_decref(ctx);
    return out;
}

enum sp_status srv_chat_prompt(const struct engine_model *em, const struct server_request *r, char **prompt,
                               struct tok_span **spans, size_t *n_spans, struct sp_err *err)
{
    *prompt = NULL;
    *spans = NULL;
    *n_spans = 0;
    struct engine_model_info info;
    engine_model_get_info(em, &info);
    for (size_t i = 0; i < r->n_logit_bias; i++)
        if (r->logit_bias[i].id >= info.n_vocab)
            return sp_err_setc(err, SP_ERR_INVALID, "logit_bias", "logit_bias: token id %d is outside the vocabulary "
                               "(%d tokens)", (int)r->logit_bias[i].id, info.n_vocab);
    if (!r->chat) {
        *prompt = sp_strdup(r->prompt);
        return *prompt ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    struct tok_rendered out;
    struct sp_err e1;
    sp_err_clear(&e1);
    enum sp_status st = engine_chat_render_ctx(em, r->tmpl_ctx, r->tmpl_ctx_len, CHAT_MAX_PROMPT, &out, &e1);
    if (st == SP_ERR_INVALID && memmem(r->tmpl_ctx, r->tmpl_ctx_len, "\"content\":null", 14)) {
        /* a template that cannot take an assistant tool-call message's null
         * content (chatml concatenates it): render again with "" there */
        char *alt = null_contents_empty(r->tmpl_ctx, r->tmpl_ctx_len);
        if (alt) {
            struct sp_err e2;
            sp_err_clear(&e2);
            if (engine_chat_render_ctx(em, alt, strlen(alt), CHAT_MAX_PROMPT, &out, &e2) == SP_OK)
                st = SP_OK;
            sp_free(alt);
        }
    }
    if (st != SP_OK) {
        if (err)
            *err = e1;
        return st;
    }
    *prompt = out.text;
    *spans = out.spans;
    *n_spans = out.n_spans;
    return SP_OK;
}
