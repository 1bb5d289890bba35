/* server_embd_req.c - embedding request bodies (OpenAI /v1/embeddings,
 * Ollama /api/embed and /api/embeddings) -> struct srv_embd_req. jansson
 * parses the body (invalid UTF-8, \u0000 and depth are its checks); then
 * each known field is type- and range-checked, every error naming the field
 * in OpenAI's style. Counts are capped before anything is allocated
 * (SRV_EMBD_MAX_INPUTS inputs, SRV_EMBD_MAX_TOKENS token ids). Also the
 * base64 encoder of encoding_format "base64". No engine calls, so the
 * fuzzer links it alone. */
#include "server/server_embd.h"
#include "server/server_req.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

void srv_embd_req_free(struct srv_embd_req *r)
{
    if (!r)
        return;
    sp_free(r->model);
    for (size_t i = 0; i < r->n; i++) {
        sp_free(r->in[i].text);
        sp_free(r->in[i].toks);
    }
    sp_free(r->in);
    memset(r, 0, sizeof *r);
}

static bool is_token_id(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= INT32_MAX;
}

static enum sp_status add_text(struct srv_embd_req *r, const json_t *v, const char *param, struct sp_err *err)
{
    struct srv_embd_input *in = &r->in[r->n];
    size_t n = json_string_length(v);
    if (n == 0)
        return srv_req_bad(err, param, "'%s' must not be empty", param);
    in->text = sp_strndup(json_string_value(v), n);
    if (!in->text)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading the request");
    in->len = n;
    r->n++;
    return SP_OK;
}

static enum sp_status add_tokens(struct srv_embd_req *r, const json_t *arr, const char *param, size_t *total,
                                 struct sp_err *err)
{
    struct srv_embd_input *in = &r->in[r->n];
    size_t n = json_array_size(arr);
    if (n == 0)
        return srv_req_bad(err, param, "'%s' must not be an empty token array", param);
    if (n > SRV_EMBD_MAX_TOKENS - *total)
        return srv_req_bad(err, param, "the token arrays hold more than %d token ids", SRV_EMBD_MAX_TOKENS);
    in->toks = sp_malloc(n * sizeof(int32_t));
    if (!in->toks)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading the request");
    r->n++; /* owned from here (freed on error) */
    for (size_t j = 0; j < n; j++) {
        const json_t *t = json_array_get(arr, j);
        if (!is_token_id(t))
            return srv_req_bad(err, param, "'%s' must hold token ids (integers >= 0)", param);
        in->toks[j] = (int32_t)json_integer_value(t);
    }
    in->n_toks = (int)n;
    *total += n;
    return SP_OK;
}

/* input (OpenAI) / input (Ollama, strings only) / prompt (Ollama legacy) */
static enum sp_status parse_input(const json_t *v, const char *param, bool tokens_ok, struct srv_embd_req *r,
                                  struct sp_err *err)
{
    if (!v || json_is_null(v))
        return srv_req_bad(err, param, "'%s' is required", param);
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0)
        return srv_req_bad(err, param, "'%s' must not be an empty array", param);
    if (!json_is_array(v) && !json_is_string(v))
        return srv_req_bad(err, param, tokens_ok ? "'%s' must be a string, an array of strings, an array of token ids "
                                                   "or an array of token-id arrays"
                                                 : "'%s' must be a string or an array of strings",
                           param);
    /* an array of integers is ONE input of token ids */
    bool one_tokens = json_is_array(v) && is_token_id(json_array_get(v, 0));
    if (one_tokens && !tokens_ok)
        return srv_req_bad(err, param, "'%s' must be a string or an array of strings", param);
    if (one_tokens)
        n = 1;
    if (n > SRV_EMBD_MAX_INPUTS)
        return srv_req_bad(err, param, "'%s' has %zu inputs; at most %d are allowed per request", param, n,
                           SRV_EMBD_MAX_INPUTS);
    r->in = sp_calloc(n, sizeof *r->in);
    if (!r->in)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading the request");
    enum sp_status result;
    size_t total = 0;
    char name[48];
    if (json_is_string(v))
        return add_text(r, v, param, err);
    if (one_tokens)
        return add_tokens(r, v, param, &total, err);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        snprintf(name, sizeof name, "%s[%zu]", param, i);
        if (json_is_string(e))
            result = add_text(r, e, name, err);
        else if (tokens_ok && json_is_array(e))
            result = add_tokens(r, e, name, &total, err);
        else
            result = srv_req_bad(err, name, tokens_ok ? "'%s' must be a string or an array of token ids"
                                                      : "'%s' must be a string",
                                 name);
        if (result != SP_OK)
            return result;
    }
    return SP_OK;
}

static enum sp_status parse_root(const json_t *root, enum srv_embd_wire w, struct srv_embd_req *r, struct sp_err *err)
{
    enum sp_status result;
    if (!json_is_object(root))
        return srv_req_bad(err, NULL, "the request body must be a JSON object");
    const json_t *v = json_object_get(root, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256)
            return srv_req_bad(err, "model", "'model' must be a non-empty string");
        if (!(r->model = sp_strndup(json_string_value(v), json_string_length(v))))
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory reading the request");
    }
    if (w == SRV_EMBD_OLLAMA_OLD) {
        if ((result = parse_input(json_object_get(root, "prompt"), "prompt", false, r, err)) != SP_OK)
            return result;
        if (!json_is_string(json_object_get(root, "prompt")))
            return srv_req_bad(err, "prompt", "'prompt' must be a string");
        return SP_OK;
    }
    if ((result = parse_input(json_object_get(root, "input"), "input", w == SRV_EMBD_OPENAI, r, err)) != SP_OK)
        return result;
    long long dims = 0;
    if ((result = srv_req_int(root, "dimensions", NULL, 1, 1 << 20, NULL, &dims, err)) != SP_OK)
        return result;
    r->dimensions = (int)dims;
    if (w == SRV_EMBD_OLLAMA) {
        r->truncate = true;
        v = json_object_get(root, "truncate");
        if (v && !json_is_null(v)) {
            if (!json_is_boolean(v))
                return srv_req_bad(err, "truncate", "'truncate' must be a boolean");
            r->truncate = json_is_true(v);
        }
        return SP_OK;
    }
    v = json_object_get(root, "encoding_format");
    if (v && !json_is_null(v)) {
        const char *f = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(f, "base64"))
            r->base64 = true;
        else if (strcmp(f, "float") != 0)
            return srv_req_bad(err, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    }
    v = json_object_get(root, "user");
    if (v && !json_is_null(v) && !json_is_string(v))
        return srv_req_bad(err, "user", "'user' must be a string");
    return SP_OK;
}

enum sp_status srv_embd_parse(const char *body, size_t len, enum srv_embd_wire w, struct srv_embd_req *out,
                              struct sp_err *err)
{
    memset(out, 0, sizeof *out);
    out->wire = w;
    if (!body || len == 0)
        return srv_req_bad(err, NULL, "the request body is empty; send a JSON object");
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return srv_req_bad(err, NULL, "the request body is not valid JSON: %s (line %d, column %d)", je.text,
                           je.line, je.column);
    enum sp_status result = parse_root(root, w, out, err);
    json_decref(root);
    if (result != SP_OK)
        srv_embd_req_free(out);
    return result;
}

int srv_base64_append(struct sp_buf *b, const void *data, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        if (sp_buf_append(b, q, 4) != 0)
            return -1;
    }
    return 0;
}
