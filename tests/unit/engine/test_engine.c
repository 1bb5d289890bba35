/* test_engine.c - engine API end to end on stories260K: greedy text equals
 * llama.cpp's, stop strings (also across tokens), max tokens, EOG-free
 * length finish, cancellation from the callback and engine_ctx_cancel,
 * prompt-too-long SP_ERR_LIMIT, seeded sampling reproducibility, prefix
 * reuse, logprobs, token counting, chat rendering, and the footprint refusal
 * (SPOKE_MEM_AVAILABLE fakes a tiny memory limit). */
#include "engine/engine.h"
#include "test.h"

#include <stdlib.h>

static const char *REF_TEXT = ", there was a little girl named Lily. She loved to play outside in the park. One day, "
                              "she saw a big, red ball. She wanted to play with it,";

struct collect {
    char text[4096];
    size_t len;
    int n_events, n_tokens;
    int cancel_after;
    struct engine_ctx *ctx;
    bool cancel_via_api;
    float last_logprob;
    int last_n_top;
};

static bool on_tok(void *ud, const struct engine_token_event *ev)
{
    struct collect *c = ud;
    c->n_events++;
    if (ev->token >= 0)
        c->n_tokens++;
    if (c->len + ev->text_len < sizeof(c->text)) {
        memcpy(c->text + c->len, ev->text, ev->text_len);
        c->len += ev->text_len;
        c->text[c->len] = 0;
    }
    c->last_logprob = ev->logprob;
    c->last_n_top = ev->n_top;
    if (c->cancel_after > 0 && c->n_tokens >= c->cancel_after) {
        if (c->cancel_via_api) {
            engine_ctx_cancel(c->ctx);
            return true;
        }
        return false;
    }
    return true;
}

static struct engine_model *g_model;

static bool load(void)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        return false;
    if (g_model)
        return true;
    struct engine_load_opts o = {.path = path, .n_ctx = 256, .n_threads = 2};
    struct sp_err err = {0};
    if (engine_model_load(&o, &g_model, &err) != SP_OK) {
        fprintf(stderr, "load: %s\n", err.msg);
        return false;
    }
    return true;
}

static void greedy_params(struct engine_gen_params *p, const char *prompt, int n)
{
    memset(p, 0, sizeof(*p));
    p->prompt = prompt;
    p->add_bos = true;
    p->max_tokens = n;
    engine_sampling_default(&p->sampling);
    p->sampling.temperature = 0;
}

TEST(greedy_matches_llama_cpp)
{
    if (!load())
        SKIP("stories260K.gguf not found");
    struct engine_ctx *c = NULL;
    struct sp_err err = {0};
    CHECK(engine_ctx_new(g_model, &c, &err) == SP_OK);
    struct engine_gen_params p;
    greedy_params(&p, "Once upon a time", 48);
    p.want_logprobs = true;
    p.n_top_logprobs = 3;
    struct collect col = {0};
    struct engine_gen_result r;
    CHECK(engine_generate(c, &p, on_tok, &col, &r, &err) == SP_OK);
    CHECK_EQ_INT(r.n_prompt_tokens, 5);
    CHECK_EQ_INT(r.n_completion_tokens, 48);
    CHECK_EQ_INT(r.finish, ENGINE_FINISH_LENGTH);
    CHECK_EQ_STR(col.text, REF_TEXT);
    CHECK(col.last_n_top == 3 && col.last_logprob <= 0);
    /* again: prefix reuse must give the same text */
    struct collect col2 = {0};
    CHECK(engine_generate(c, &p, on_tok, &col2, &r, &err) == SP_OK);
    CHECK_EQ_STR(col2.text, REF_TEXT);
    engine_ctx_free(c);
}

TEST(stop_strings_and_cancel)
{
    if (!load())
        SKIP("stories260K.gguf not found");
    struct engine_ctx *c = NULL;
    struct sp_err err = {0};
    CHECK(engine_ctx_new(g_model, &c, &err) == SP_OK);
    struct engine_gen_params p;
    greedy_params(&p, "Once upon a time", 48);
    const char *stops[] = {"xyz never", "Lily. She"}; /* spans several tokens */
    p.stop = stops;
    p.n_stop = 2;
    struct collect col = {0};
    struct engine_gen_result r;
    CHECK(engine_generate(c, &p, on_tok, &col, &r, &err) == SP_OK);
    CHECK_EQ_INT(r.finish, ENGINE_FINISH_STOP);
    CHECK_EQ_STR(col.text, ", there was a little girl named ");
    /* cancel from the callback */
    struct collect cc = {0};
    cc.cancel_after = 3;
    p.n_stop = 0;
    CHECK(engine_generate(c, &p, on_tok, &cc, &r, &err) == SP_OK);
    CHECK_EQ_INT(r.finish, ENGINE_FINISH_CANCELLED);
    CHECK_EQ_INT(cc.n_tokens, 3);
    /* cancel through the API: stops before the next token */
    struct collect ca = {0};
    ca.cancel_after = 2;
    ca.cancel_via_api = true;
    ca.ctx = c;
    CHECK(engine_generate(c, &p, on_tok, &ca, &r, &err) == SP_OK);
    CHECK_EQ_INT(r.finish, ENGINE_FINISH_CANCELLED);
    CHECK_EQ_INT(ca.n_tokens, 2);
    /* a late cancel (of the finished generation) does not stop the next one */
    uint64_t old = engine_ctx_generation_id(c);
    CHECK(old > 0);
    engine_ctx_cancel(c);
    engine_ctx_cancel_id(c, old);
    struct collect cn = {0};
    p.max_tokens = 6;
    CHECK(engine_generate(c, &p, on_tok, &cn, &r, &err) == SP_OK);
    CHECK_EQ_INT(r.finish, ENGINE_FINISH_LENGTH);
    CHECK_EQ_INT(cn.n_tokens, 6);
    CHECK(engine_ctx_generation_id(c) == old + 1);
    engine_ctx_free(c);
}

TEST(seeded_sampling_reproducible)
{
    if (!load())
        SKIP("stories260K.gguf not found");
    struct engine_ctx *c = NULL;
    struct sp_err err = {0};
    CHECK(engine_ctx_new(g_model, &c, &err) == SP_OK);
    struct engine_gen_params p;
    greedy_params(&p, "Lily and Ben were", 40);
    p.sampling.temperature = 1.0f;
    p.sampling.seed = 42;
    struct collect a = {0}, b = {0}, d = {0};
    struct engine_gen_result r;
    CHECK(engine_generate(c, &p, on_tok, &a, &r, &err) == SP_OK);
    CHECK(engine_generate(c, &p, on_tok, &b, &r, &err) == SP_OK);
    CHECK_EQ_STR(a.text, b.text);
    p.sampling.seed = 43;
    CHECK(engine_generate(c, &p, on_tok, &d, &r, &err) == SP_OK);
    CHECK(strcmp(a.text, d.text) != 0);
    engine_ctx_free(c);
}

TEST(prompt_too_long_and_counts)
{
    if (!load())
        SKIP("stories260K.gguf not found");
    struct engine_ctx *c = NULL;
    struct sp_err err = {0};
    CHECK(engine_ctx_new(g_model, &c, &err) == SP_OK);
    char big[4000];
    size_t n = 0;
    while (n + 6 < sizeof(big)) {
        memcpy(big + n, "hello ", 6);
        n += 6;
    }
    big[n] = 0;
    struct engine_gen_params p;
    greedy_params(&p, big, 10);
    struct engine_gen_result r;
    CHECK(engine_generate(c, &p, on_tok, &(struct collect){0}, &r, &err) == SP_ERR_LIMIT);
    CHECK(strstr(err.msg, "context is 256") != NULL);
    int cnt = 0;
    CHECK(engine_tokenize_count(g_model, "Once upon a time", true, false, &cnt, &err) == SP_OK);
    CHECK_EQ_INT(cnt, 5);
    CHECK(engine_tokenize_count(g_model, big, true, false, &cnt, &err) == SP_OK);
    CHECK(cnt > 256);
    size_t len = 0;
    const char *t = engine_token_text(g_model, 3 + 'A', &len); /* byte token <0x41> */
    CHECK(len == 1 && t[0] == 'A');
    /* the ctx still works after the error */
    struct collect col = {0};
    greedy_params(&p, "Once upon a time", 5);
    CHECK(engine_generate(c, &p, on_tok, &col, &r, &err) == SP_OK);
    CHECK(strncmp(col.text, REF_TEXT, col.len) == 0 && col.len > 0);
    engine_ctx_free(c);
}

TEST(chat_and_info)
{
    if (!load())
        SKIP("stories260K.gguf not found");
    struct engine_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
    char *out = NULL;
    struct sp_err err = {0};
    CHECK(engine_chat_render(g_model, msgs, 2, true, &out, &err) == SP_OK);
    CHECK(strstr(out, "Hi") != NULL);
    sp_free(out);
    struct engine_chat_msg bad[] = {{"wizard", "x"}};
    CHECK(engine_chat_render(g_model, bad, 1, true, &out, &err) == SP_ERR_INVALID);
    struct engine_model_info info;
    engine_model_get_info(g_model, &info);
    CHECK_EQ_STR(info.arch, "llama");
    CHECK_EQ_STR(info.backend, "cpu");
    CHECK_EQ_INT(info.n_vocab, 512);
    CHECK_EQ_INT(info.n_layer, 5);
    CHECK_EQ_INT(info.n_ctx, 256);
    CHECK(info.footprint_bytes > info.weight_bytes);
}

TEST(footprint_refusal)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        SKIP("stories260K.gguf not found");
    setenv("SPOKE_MEM_AVAILABLE", "100000", 1);
    struct engine_load_opts o = {.path = path, .n_ctx = 256, .n_threads = 1};
    struct engine_model *m = NULL;
    struct sp_err err = {0};
    enum sp_status st = engine_model_load(&o, &m, &err);
    unsetenv("SPOKE_MEM_AVAILABLE");
    CHECK_EQ_INT(st, SP_ERR_MEMORY);
    CHECK(m == NULL);
    CHECK(strstr(err.msg, "MiB") && strstr(err.msg, "smaller quantization"));
    /* skip_mem_check loads anyway */
    setenv("SPOKE_MEM_AVAILABLE", "100000", 1);
    o.skip_mem_check = true;
    st = engine_model_load(&o, &m, &err);
    unsetenv("SPOKE_MEM_AVAILABLE");
    CHECK_EQ_INT(st, SP_OK);
    engine_model_free(m);
    /* a missing file and a bad path */
    o.path = "/nonexistent/x.gguf";
    CHECK(engine_model_load(&o, &m, &err) != SP_OK && m == NULL);
}

int main(void)
{
    RUN(greedy_matches_llama_cpp);
    RUN(stop_strings_and_cancel);
    RUN(seeded_sampling_reproducible);
    RUN(prompt_too_long_and_counts);
    RUN(chat_and_info);
    RUN(footprint_refusal);
    engine_model_free(g_model);
    return test_summary();
}
