/* bench_grammar.c - benchmark (not a test) of constrained output's cost per
 * token: `build/bench_grammar MODEL.gguf [VOCAB.gguf...]`. For each file:
 * load its vocabulary, build the grammar trie (timed), then generate with
 * random allowed tokens (seeded) under the JSON object grammar and a schema
 * grammar, timing every grammar_mask + grammar_accept (mean, cold max). For
 * MODEL it also times engine decode steps, to give the mask's share of a
 * decode step. Numbers are wall times on a shared machine: compare ratios
 * from one run. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "tok/tok.h"

static const char schema[] =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":40},\"age\":{\"type\":"
    "\"integer\",\"minimum\":0},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":4},"
    "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"age\",\"tags\",\"ok\"]}";

static uint64_t rng = 88172645463325252ull;
static uint64_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void run(const char *label, const struct grammar *g, const struct grammar_vocab *gv, int n_vocab,
                int steps)
{
    uint8_t *allow = sp_malloc((size_t)n_vocab);
    int32_t *ids = sp_malloc((size_t)n_vocab * sizeof(int32_t));
    struct grammar_matcher *m = NULL;
    struct sp_err err = {0};
    double total = 0, worst = 0;
    int n = 0, restarts = 0;
    if (!allow || !ids || grammar_matcher_new(g, gv, &m, &err) != SP_OK)
        return;
    while (n < steps) {
        double t0 = sp_now_ms();
        int na = grammar_mask(m, allow);
        double dt = sp_now_ms() - t0;
        int k = 0;
        for (int t = 0; t < n_vocab; t++)
            if (allow[t])
                ids[k++] = t;
        int32_t tok = k ? ids[xr() % (uint64_t)k] : -1;
        t0 = sp_now_ms();
        bool ok = na > 0 && grammar_accept(m, tok);
        dt += sp_now_ms() - t0;
        total += dt;
        worst = dt > worst ? dt : worst;
        n++;
        if (!ok || grammar_done(m)) {
            grammar_matcher_free(m);
            m = NULL;
            if (grammar_matcher_new(g, gv, &m, &err) != SP_OK)
                break;
            restarts++;
        }
    }
    printf("  %-12s %5d tokens (%d documents): mask+accept mean %.3f ms/token, max %.3f ms\n", label, n, restarts,
           total / n, worst);
    grammar_matcher_free(m);
    sp_free(allow);
    sp_free(ids);
}

static void bench_file(const char *path, bool is_model)
{
    struct gg_file *f = NULL;
    struct tok_vocab *v = NULL;
    struct sp_err err = {0};
    if (gg_open(path, &f, &err) != SP_OK || tok_vocab_load(f, &v, &err) != SP_OK) {
        printf("%s: %s\n", path, err.msg);
        gg_close(f);
        return;
    }
    int n = (int)tok_n_vocab(v);
    struct sp_buf b = {0};
    uint32_t *off = sp_calloc((size_t)n + 1, sizeof(uint32_t));
    uint8_t *kind = sp_calloc((size_t)n, 1);
    char tmp[256];
    for (int t = 0; t < n; t++) {
        off[t] = (uint32_t)b.len;
        size_t k = tok_piece(v, t, true, tmp, sizeof tmp);
        if (k <= sizeof tmp && k && sp_buf_append(&b, tmp, k))
            return;
        kind[t] = tok_is_eog(v, t) ? GRAMMAR_TOK_EOG : tok_is_control(v, t) ? GRAMMAR_TOK_NEVER : GRAMMAR_TOK_TEXT;
    }
    off[n] = (uint32_t)b.len;
    double t0 = sp_now_ms();
    struct grammar_vocab *gv = NULL;
    if (grammar_vocab_new(n, b.data ? b.data : "", off, kind, &gv, &err) != SP_OK)
        return;
    printf("%s: %d tokens, trie built in %.1f ms\n", path, n, sp_now_ms() - t0);
    struct grammar *gj = NULL, *gs = NULL;
    const char *j = grammar_json_object_gbnf();
    char *sg = NULL;
    if (grammar_parse(j, strlen(j), &gj, &err) != SP_OK || json_schema_gbnf(schema, strlen(schema), &sg, &err) ||
        grammar_parse(sg, strlen(sg), &gs, &err) != SP_OK) {
        printf("grammar: %s\n", err.msg);
        return;
    }
    run("json_object", gj, gv, n, 2000);
    run("json_schema", gs, gv, n, 2000);
    if (is_model) {
        struct engine_load_opts lo = {.path = path, .n_ctx = 256, .n_threads = 1};
        struct engine_model *em = NULL;
        struct engine_ctx *c = NULL;
        double ms = 0;
        if (engine_model_load(&lo, &em, &err) == SP_OK && engine_ctx_new(em, &c, &err) == SP_OK &&
            engine_bench_decode(c, 128, &ms, &err) == SP_OK)
            printf("  decode step (1 thread): %.3f ms/token\n", ms / 128);
        engine_ctx_free(c);
        engine_model_free(em);
    }
    grammar_free(gj);
    grammar_free(gs);
    sp_free(sg);
    grammar_vocab_free(gv);
    sp_free(off);
    sp_free(kind);
    sp_buf_free(&b);
    tok_vocab_free(v);
    gg_close(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grammar MODEL.gguf [VOCAB.gguf...]\n");
        return 2;
    }
    for (int i = 1; i < argc; i++)
        bench_file(argv[i], i == 1);
    return 0;
}
