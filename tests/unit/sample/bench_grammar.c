/* bench_grammar.c - benchmark (not a test) of constrained output's cost per
 * token: `build/bench_grammar MODEL.gguf [VOCAB.gguf...]`. For each file:
 * load its vocabulary, build the grammar trie (timed), then generate with
 * random allowed tokens (seeded; half of the time among the one- and
 * two-byte tokens, so that structural states come up often) under the JSON
 * object grammar and a schema grammar, timing every grammar_mask +
 * grammar_accept in thread CPU time: mean and max over all tokens, and apart for tokens
 * chosen inside a JSON string and in structural states (outside strings).
 * A VOCAB argument `A.gguf+B.gguf` is the union of both vocabularies' texts
 * (A's tokens, then B's texts that A lacks) cut at 151936 tokens (Qwen2's
 * size): a stand-in for a 150k vocabulary. For MODEL it also times engine
 * decode steps, to give the mask's share of a decode step. Numbers are wall
 * times on a shared machine: compare ratios from one run. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "tok/tok.h"

static const char schema[] =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":40},\"age\":{\"type\":"
    "\"integer\",\"minimum\":0},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":4},"
    "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"age\",\"tags\",\"ok\"]}";

/* This thread's CPU time: less disturbed than wall time by other work on a
 * shared machine (the mask is single-threaded). */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

struct acc {
    double total, worst;
    int n;
};

static void acc_add(struct acc *a, double dt)
{
    a->total += dt;
    a->worst = dt > a->worst ? dt : a->worst;
    a->n++;
}

static void run(const char *label, const struct grammar *g, const struct grammar_vocab *gv, const char *pieces,
                const uint32_t *off, int n_vocab, int steps)
{
    uint8_t *allow = sp_malloc((size_t)n_vocab);
    int32_t *ids = sp_malloc((size_t)n_vocab * sizeof(int32_t));
    int32_t *shorts = sp_malloc((size_t)n_vocab * sizeof(int32_t));
    struct grammar_matcher *m = NULL;
    struct sp_err err = {0};
    struct acc all = {0}, str = {0}, structural = {0};
    int n = 0, restarts = 0;
    bool in_str = false, esc = false; /* JSON lexical state of the text so far */
    rng = 88172645463325252ull;
    if (!allow || !ids || !shorts || grammar_matcher_new(g, gv, &m, &err) != SP_OK)
        return;
    while (n < steps) {
        double t0 = cpu_ms();
        int na = grammar_mask(m, allow);
        double dt = cpu_ms() - t0;
        int k = 0, ks = 0;
        for (int t = 0; t < n_vocab; t++)
            if (allow[t]) {
                ids[k++] = t;
                if (off[t + 1] - off[t] <= 2 && off[t + 1] > off[t])
                    shorts[ks++] = t;
            }
        int32_t tok = k ? (ks && (xr() & 1) ? shorts[xr() % (uint64_t)ks] : ids[xr() % (uint64_t)k]) : -1;
        t0 = cpu_ms();
        bool ok = na > 0 && grammar_accept(m, tok);
        dt += cpu_ms() - t0;
        acc_add(&all, dt);
        acc_add(in_str ? &str : &structural, dt);
        n++;
        for (uint32_t i = ok ? off[tok] : 0; ok && i < off[tok + 1]; i++) {
            char c = pieces[i];
            if (esc)
                esc = false;
            else if (in_str && c == '\\')
                esc = true;
            else if (c == '"')
                in_str = !in_str;
        }
        if (!ok || grammar_done(m)) {
            in_str = esc = false;
            grammar_matcher_free(m);
            m = NULL;
            if (grammar_matcher_new(g, gv, &m, &err) != SP_OK)
                break;
            restarts++;
        }
    }
    printf("  %-12s %5d tokens (%d documents): mask+accept (CPU) mean %.3f ms/token, max %.3f ms\n", label, n, restarts,
           all.total / n, all.worst);
    printf("  %-12s   in strings %4d tokens: mean %.3f ms, max %.3f ms; structural %4d tokens: mean %.3f ms, max "
           "%.3f ms\n",
           "", str.n, str.n ? str.total / str.n : 0, str.worst, structural.n,
           structural.n ? structural.total / structural.n : 0, structural.worst);
    grammar_matcher_free(m);
    sp_free(allow);
    sp_free(ids);
    sp_free(shorts);
}

#define UNION_MAX 151936

/* Append the texts of path's vocabulary to b/off/kind from token *n on (up
 * to UNION_MAX). seen is a hash set (n_seen slots) of the texts' FNV-1a
 * hashes: every text is added to it, and with skip_seen a text already
 * there (or colliding with one, rare) is left out. */
static int add_vocab(const char *path, struct sp_buf *b, uint32_t **off, uint8_t **kind, int *n, uint64_t *seen,
                     size_t n_seen, bool skip_seen)
{
    struct gg_file *f = NULL;
    struct tok_vocab *v = NULL;
    struct sp_err err = {0};
    if (gg_open(path, &f, &err) != SP_OK || tok_vocab_load(f, &v, &err) != SP_OK) {
        printf("%s: %s\n", path, err.msg);
        gg_close(f);
        return -1;
    }
    int nv = (int)tok_n_vocab(v);
    uint32_t *o = sp_realloc(*off, ((size_t)*n + (size_t)nv + 1) * sizeof(uint32_t));
    if (o)
        *off = o;
    uint8_t *kd = o ? sp_realloc(*kind, (size_t)*n + (size_t)nv) : NULL;
    if (kd)
        *kind = kd;
    char tmp[256];
    for (int t = 0; t < nv && kd && *n < UNION_MAX; t++) {
        size_t k = tok_piece(v, t, true, tmp, sizeof tmp);
        if (k > sizeof tmp)
            k = 0;
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < k; i++)
            h = (h ^ (uint8_t)tmp[i]) * 1099511628211ull;
        h |= 1;
        size_t at = (size_t)(h % n_seen);
        while (seen[at] && seen[at] != h)
            at = (at + 1) % n_seen;
        if (seen[at] == h && skip_seen)
            continue;
        seen[at] = h;
        (*off)[*n] = (uint32_t)b->len;
        (*kind)[*n] = tok_is_eog(v, t) ? GRAMMAR_TOK_EOG : tok_is_control(v, t) ? GRAMMAR_TOK_NEVER : GRAMMAR_TOK_TEXT;
        if (k && sp_buf_append(b, tmp, k))
            break;
        (*n)++;
    }
    (*off)[*n] = (uint32_t)b->len;
    tok_vocab_free(v);
    gg_close(f);
    return kd ? 0 : -1;
}

static void bench_file(const char *path, bool is_model)
{
    struct sp_err err = {0};
    struct sp_buf b = {0};
    uint32_t *off = NULL;
    uint8_t *kind = NULL;
    int n = 0;
    size_t n_seen = 2 * UNION_MAX + 1;
    uint64_t *seen = sp_calloc(n_seen, sizeof(uint64_t));
    char first[1024];
    const char *plus = strchr(path, '+');
    size_t fl = plus ? (size_t)(plus - path) : strlen(path);
    if (!seen || fl >= sizeof first)
        return;
    memcpy(first, path, fl);
    first[fl] = 0;
    if (add_vocab(first, &b, &off, &kind, &n, seen, n_seen, false) ||
        (plus && add_vocab(plus + 1, &b, &off, &kind, &n, seen, n_seen, true)))
        return;
    sp_free(seen);
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
    run("json_object", gj, gv, b.data, off, n, 2000);
    run("json_schema", gs, gv, b.data, off, n, 2000);
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
