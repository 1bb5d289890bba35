/* server_chat.c - chat requests and the model's chat template: the prompt
 * of a request (srv_chat_prompt) is the chat rendered by the engine from the
 * template variables server_req.c collected (messages, tools, kwargs), with
 * the byte ranges that came from the request, which the tokenizer keeps as
 * text so that a message cannot forge the template's control tokens. */
#include "server/server_int.h"
#include "server/server_req.h"
#include "tok/tok.h"

#define CHAT_MAX_PROMPT (64u << 20)

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
    enum sp_status st = engine_chat_render_ctx(em, r->tmpl_ctx, r->tmpl_ctx_len, CHAT_MAX_PROMPT, &out, err);
    if (st != SP_OK)
        return st;
    *prompt = out.text;
    *spans = out.spans;
    *n_spans = out.n_spans;
    return SP_OK;
}
