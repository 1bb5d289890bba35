/* test_engine_n.c - n choices of one prompt (engine_generate_n) on
 * stories260K: the prompt is evaluated once (prompt_evaluated grows by its
 * token count, not n times it); greedy choices all equal a lone
 * generation's tokens and logprobs; sampled choice i with seed s equals a
 * lone generation with seed s + i (so the copied KV cells give exactly what
 * computing them would); the same seed reproduces every choice; a callback
 * that stops one choice stops all; n above the model's sequences or the KV
 * budget is SP_ERR_LIMIT; a grammar holds every choice; on gemma3 (sliding-
 * window layers) the copied prompt gives the lone run's tokens. */
#include "engine/engine.h"
#include "sample/grammar.h"
#include "test.h"

#include <string.h>

#define MAXC 4
#define MAXT 48

static const char *PROMPT = "Once upon a time, there was a little girl named Lily. She";

struct out {
    int32_t tok[MAXC][MAXT];
    float lp[MAXC][MAXT];
    int n[MAXC];
    int stop_after; /* cancel once choice 1 has this many tokens (0 = never) */
    struct engine_gen_result res[MAXC];
    enum sp_status st;
};

static bool on_tok(void *ud, const struct engine_token_event *ev)
{
    struct out *o = ud;
    if (ev->token < 0)
        return true;
    if (ev->index < 0 || ev->index >= MAXC)
        return false;
    int i = ev->index;
    if (o->n[i] < MAXT) {
        o->tok[i][o->n[i]] = ev->token;
        o->lp[i][o->n[i]++] = ev->logprob;
    }
    return !(o->stop_after && i == 1 && o->n[1] >= o->stop_after);
}

static void gen(struct engine_ctx **ctxs, int n, float temp, uint64_t seed, int max_tokens,
                const struct grammar *g, struct out *o)
{
    memset(o->n, 0, sizeof o->n);
    struct engine_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = PROMPT;
    p.add_bos = true;
    p.max_tokens = max_tokens;
    p.want_logprobs = true;
    p.grammar = g;
    engine_sampling_default(&p.sampling);
    p.sampling.temperature = temp;
    p.sampling.seed = seed;
    o->st = engine_generate_n(ctxs, n, &p, on_tok, o, o->res, NULL);
}

static bool same(const struct out *a, int ia, const struct out *b, int ib)
{
    if (a->n[ia] != b->n[ib] || a->n[ia] == 0)
        return false;
    for (int k = 0; k < a->n[ia]; k++)
        if (a->tok[ia][k] != b->tok[ib][k] || a->lp[ia][k] != b->lp[ib][k])
            return false;
    return true;
}

TEST(choices)
{
    char path[1400];
    if (!test_shared_file(path, sizeof path, "models/stories260K.gguf"))
        SKIP("stories260K.gguf not found");
    struct engine_load_opts lo = {.path = path, .n_ctx = 256, .n_threads = 2, .n_parallel = MAXC};
    struct engine_model *m = NULL;
    CHECK(engine_model_load(&lo, &m, NULL) == SP_OK);
    if (!m)
        return;
    struct engine_ctx *c[MAXC] = {0};
    for (int i = 0; i < MAXC; i++)
        CHECK(engine_ctx_new(m, &c[i], NULL) == SP_OK);
    static struct out alone, group, again;
    struct engine_model_info info;

    /* greedy: 3 choices, the prompt evaluated once, all equal to a lone run */
    engine_model_get_info(m, &info);
    int64_t before = info.prompt_evaluated;
    gen(c, 3, 0, 0, 24, NULL, &group);
    CHECK(group.st == SP_OK);
    engine_model_get_info(m, &info);
    int n_prompt = group.res[0].n_prompt_tokens;
    CHECK(n_prompt > 10);
    CHECK_EQ_INT((int)(info.prompt_evaluated - before), n_prompt); /* not 3 * n_prompt */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(group.res[i].n_prompt_tokens, n_prompt);
    CHECK_EQ_INT(group.res[0].n_cached_tokens, 0);
    struct engine_model *m1 = NULL; /* a fresh model: no cached prefix at all */
    CHECK(engine_model_load(&lo, &m1, NULL) == SP_OK);
    struct engine_ctx *c1 = NULL;
    CHECK(m1 && engine_ctx_new(m1, &c1, NULL) == SP_OK);
    gen(&c1, 1, 0, 0, 24, NULL, &alone);
    CHECK(alone.st == SP_OK);
    for (int i = 0; i < 3; i++)
        CHECK(same(&group, i, &alone, 0));

    /* sampled: choice i of seed 7 = a lone run with seed 7 + i; the same seed again = the same choices */
    gen(c, MAXC, 1.0f, 7, 32, NULL, &group);
    CHECK(group.st == SP_OK);
    gen(c, MAXC, 1.0f, 7, 32, NULL, &again);
    int differ = 0;
    for (int i = 0; i < MAXC; i++) {
        gen(&c1, 1, 1.0f, 7 + (uint64_t)i, 32, NULL, &alone);
        CHECK_MSG(same(&group, i, &alone, 0), "choice %d != a lone run with seed 7+%d", i, i);
        CHECK(same(&group, i, &again, i));
        differ += i > 0 && !same(&group, i, &group, 0);
    }
    CHECK(differ > 0); /* sampling with different seeds: not all the same */

    /* stopping one choice stops every choice */
    group.stop_after = 3;
    gen(c, 3, 1.0f, 1, 40, NULL, &group);
    group.stop_after = 0;
    CHECK(group.st == SP_OK);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(group.res[i].finish, ENGINE_FINISH_CANCELLED);
    /* the contexts work again afterwards */
    gen(c, 2, 0, 0, 8, NULL, &group);
    CHECK(group.st == SP_OK && group.n[0] == 8 && same(&group, 0, &group, 1));

    /* a grammar holds every choice */
    struct grammar *g = NULL;
    const char *gbnf = "root ::= (\" yes\" | \" no\" | \" maybe\") \".\"";
    CHECK(grammar_parse(gbnf, strlen(gbnf), &g, NULL) == SP_OK);
    gen(c, 3, 1.0f, 5, 20, g, &group);
    CHECK(group.st == SP_OK);
    for (int i = 0; i < 3; i++)
        CHECK(group.res[i].finish == ENGINE_FINISH_STOP && group.n[i] >= 2);
    grammar_free(g);

    /* limits */
    struct sp_err e;
    sp_err_clear(&e);
    struct engine_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = PROMPT;
    p.max_tokens = 8;
    engine_sampling_default(&p.sampling);
    struct engine_ctx *five[5] = {c[0], c[1], c[2], c[3], c1};
    CHECK(engine_generate_n(five, 5, &p, NULL, NULL, NULL, &e) == SP_ERR_LIMIT); /* n_parallel is 4 */
    struct engine_ctx *dup[2] = {c[0], c[0]};
    CHECK(engine_generate_n(dup, 2, &p, NULL, NULL, NULL, NULL) == SP_ERR_INVALID);
    engine_ctx_free(c1);
    engine_model_free(m1);
    struct engine_load_opts small = lo;
    small.kv_tokens = 256; /* one context's worth */
    struct engine_model *m2 = NULL;
    CHECK(engine_model_load(&small, &m2, NULL) == SP_OK);
    struct engine_ctx *d[2] = {0};
    CHECK(m2 && engine_ctx_new(m2, &d[0], NULL) == SP_OK && engine_ctx_new(m2, &d[1], NULL) == SP_OK);
    p.max_tokens = 200; /* 2 x 256 cells > 256 */
    sp_err_clear(&e);
    CHECK(engine_generate_n(d, 2, &p, NULL, NULL, NULL, &e) == SP_ERR_LIMIT && strstr(e.msg, "KV budget"));
    p.max_tokens = 8; /* 2 x 32 cells fit */
    CHECK(engine_generate_n(d, 2, &p, NULL, NULL, NULL, NULL) == SP_OK);
    engine_ctx_free(d[0]);
    engine_ctx_free(d[1]);
    engine_model_free(m2);
    for (int i = 0; i < MAXC; i++)
        engine_ctx_free(c[i]);
    engine_model_free(m);
}

/* gemma3 (sliding-window layers): n choices equal lone runs */
TEST(sliding_window)
{
    char path[1400];
    if (!test_shared_file(path, sizeof path, "models/arch/gemma3-f32.gguf"))
        SKIP("gemma3-f32.gguf not found");
    /* (this file's 512-token context is shorter than two rings of window + batch + 96, so the
     * engine keeps its window layers at full length: test_kv checks kv_seq_copy's rings) */
    struct engine_load_opts lo = {.path = path, .n_ctx = 512, .n_threads = 2, .n_parallel = 3};
    struct engine_model *m = NULL;
    CHECK(engine_model_load(&lo, &m, NULL) == SP_OK);
    if (!m)
        return;
    struct engine_ctx *c[3] = {0};
    for (int i = 0; i < 3; i++)
        CHECK(engine_ctx_new(m, &c[i], NULL) == SP_OK);
    static struct out group, alone;
    gen(c, 3, 0, 0, 20, NULL, &group); /* the prompt is longer than the 8-position window */
    CHECK(group.st == SP_OK && group.res[0].n_prompt_tokens > 8);
    struct engine_model *m1 = NULL;
    CHECK(engine_model_load(&lo, &m1, NULL) == SP_OK);
    struct engine_ctx *c1 = NULL;
    CHECK(m1 && engine_ctx_new(m1, &c1, NULL) == SP_OK);
    gen(&c1, 1, 0, 0, 20, NULL, &alone);
    for (int i = 0; i < 3; i++)
        CHECK_MSG(same(&group, i, &alone, 0), "gemma3 greedy choice %d != a lone run", i);
    gen(c, 3, 1.0f, 21, 20, NULL, &group);
    for (int i = 0; i < 3; i++) {
        gen(&c1, 1, 1.0f, 21 + (uint64_t)i, 20, NULL, &alone);
        CHECK_MSG(same(&group, i, &alone, 0), "gemma3 choice %d != a lone run with seed 21+%d", i, i);
    }
    engine_ctx_free(c1);
    engine_model_free(m1);
    for (int i = 0; i < 3; i++)
        engine_ctx_free(c[i]);
    engine_model_free(m);
}

int main(void)
{
    RUN(choices);
    RUN(sliding_window);
    return test_summary();
}
