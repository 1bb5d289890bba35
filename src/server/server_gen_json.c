/* server_gen_json.c - the OpenAI JSON of a generation (server_gen.c):
 * logprob entries per token (chat's content list, completions' parallel
 * arrays), SSE chunks with their choice index, the non-streamed body with
 * n choices, usage (the prompt once, every choice's tokens) and the span
 * labels. Pure functions of the job: no I/O, no locks. */
#include "server/server_gen.h"

#include <math.h>
#include <string.h>

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

int gen_append_json(struct sp_buf *b, json_t *j)
{
    int rc = j ? json_dump_callback(j, dump_cb, b, JSON_COMPACT | JSON_PRESERVE_ORDER) : -1;
    json_decref(j);
    return rc;
}

static double safe_lp(float lp) { return isfinite(lp) ? (double)lp : -9999.0; }

/* logprob entries for one token event (chat: appends to lp content array) */
void gen_add_logprobs(struct gen_job *j, const struct engine_token_event *ev, json_t *chunk_lp)
{
    size_t len = 0;
    const char *t = engine_token_text(j->m->em, ev->token, &len);
    if (!t)
        t = "", len = 0;
    if (j->req.chat) {
        json_t *e = json_pack("{s:o,s:f,s:o,s:o}", "token", srv_json_text(t, len), "logprob", safe_lp(ev->logprob),
                              "bytes", srv_bytes_array(t, len), "top_logprobs", json_array());
        json_t *tops = json_object_get(e, "top_logprobs");
        for (int i = 0; i < ev->n_top && i < j->req.top_logprobs; i++) {
            size_t tl = 0;
            const char *tt = engine_token_text(j->m->em, ev->top_tokens[i], &tl);
            if (!tt)
                tt = "", tl = 0;
            json_array_append_new(tops, json_pack("{s:o,s:f,s:o}", "token", srv_json_text(tt, tl), "logprob",
                                                  safe_lp(ev->top_logprobs[i]), "bytes", srv_bytes_array(tt, tl)));
        }
        json_array_append(j->lp[ev->index], e);
        if (chunk_lp)
            json_array_append(chunk_lp, e);
        json_decref(e);
        return;
    }
    json_t *targets[2] = {j->lp[ev->index], chunk_lp};
    for (int k = 0; k < 2; k++) {
        json_t *o = targets[k];
        if (!o)
            continue;
        json_array_append_new(json_object_get(o, "tokens"), srv_json_text(t, len));
        json_array_append_new(json_object_get(o, "token_logprobs"), json_real(safe_lp(ev->logprob)));
        json_t *top = json_object();
        for (int i = 0; i < ev->n_top && i < j->req.top_logprobs; i++) {
            size_t tl = 0;
            const char *tt = engine_token_text(j->m->em, ev->top_tokens[i], &tl);
            json_t *key = srv_json_text(tt ? tt : "", tt ? tl : 0);
            if (key)
                json_object_set_new(top, json_string_value(key), json_real(safe_lp(ev->top_logprobs[i])));
            json_decref(key);
        }
        json_array_append_new(json_object_get(o, "top_logprobs"), top);
        json_array_append_new(json_object_get(o, "text_offset"), json_integer((json_int_t)j->text[ev->index].len));
    }
}

json_t *gen_lp_object(void)
{
    return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

const char *gen_finish_name(enum engine_finish f) { return f == ENGINE_FINISH_LENGTH ? "length" : "stop"; }

json_t *gen_usage_json(const struct gen_job *j)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", j->res.n_prompt_tokens, "completion_tokens",
                     j->res.n_completion_tokens, "total_tokens", j->res.n_prompt_tokens + j->res.n_completion_tokens,
                     "prompt_tokens_details", "cached_tokens", j->res.n_cached_tokens);
}

/* one SSE chunk; text may be NULL; finish NULL for a middle chunk */
json_t *gen_chunk_json(const struct gen_job *j, int index, const char *text, size_t len, bool first,
                          const char *finish, json_t *lp)
{
    json_t *choice;
    if (j->req.chat) {
        json_t *delta = json_object();
        if (first)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (text)
            json_object_set_new(delta, "content", srv_json_text(text, len));
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", index, "delta", delta, "logprobs",
                           lp ? json_pack("{s:o}", "content", lp) : json_null(), "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:o,s:i,s:o,s:o}", "text", srv_json_text(text ? text : "", text ? len : 0), "index", index,
                           "logprobs", lp ? lp : json_null(), "finish_reason",
                           finish ? json_string(finish) : json_null());
    }
    json_t *c = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[o]}", "id", j->id, "object",
                          j->req.chat ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)j->created, "model", j->m->spec.name, "system_fingerprint", "spoke", "choices",
                          choice);
    if (c && j->req.include_usage)
        json_object_set_new(c, "usage", json_null());
    return c;
}

void gen_labels(struct gen_job *j, unsigned status, const char *finish, struct sp_buf *out)
{
    json_t *l = json_pack("{s:s,s:i,s:i,s:i,s:b,s:i}", "model", j->m ? j->m->spec.name : "", "prompt_tokens",
                          j->res.n_prompt_tokens, "completion_tokens", j->res.n_completion_tokens, "total_tokens",
                          j->res.n_prompt_tokens + j->res.n_completion_tokens, "stream", j->req.stream, "http_status",
                          (int)status);
    if (l && finish)
        json_object_set_new(l, "finish_reason", json_string(finish));
    if (l && j->n > 1)
        json_object_set_new(l, "n", json_integer(j->n));
    if (l && j->res.n_cached_tokens > 0)
        json_object_set_new(l, "cached_tokens", json_integer(j->res.n_cached_tokens));
    if (l && j->client_gone)
        json_object_set_new(l, "client_disconnected", json_true());
    if (gen_append_json(out, l) != 0)
        sp_buf_reset(out);
}

/* The non-streamed OpenAI body: n choices, usage. */
json_t *gen_response_json(const struct gen_job *j)
{
    json_t *choices = json_array();
    for (int i = 0; i < j->n && choices; i++) {
        json_t *choice, *text = srv_json_text(j->text[i].data ? j->text[i].data : "", j->text[i].len);
        const char *finish = gen_finish_name(j->cres[i].finish);
        if (j->req.chat)
            choice = json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", i, "message", "role", "assistant", "content",
                               text, "logprobs", j->lp[i] ? json_pack("{s:O}", "content", j->lp[i]) : json_null(),
                               "finish_reason", finish);
        else
            choice = json_pack("{s:o,s:i,s:o,s:s}", "text", text, "index", i, "logprobs",
                               j->lp[i] ? json_incref(j->lp[i]) : json_null(), "finish_reason", finish);
        if (!choice || json_array_append_new(choices, choice)) {
            json_decref(choices);
            choices = NULL;
        }
    }
    json_t *resp = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", j->id, "object",
                             j->req.chat ? "chat.completion" : "text_completion", "created", (json_int_t)j->created,
                             "model", j->m->spec.name, "system_fingerprint", "spoke", "choices", choices, "usage",
                             gen_usage_json(j));
    return resp;
}
