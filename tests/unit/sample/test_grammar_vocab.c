/* test_grammar_vocab.c - the fast token mask (grammar_mask: memoised steps,
 * cached masks) equals the plain trie walk (grammar_mask_reference) on a
 * real 32k vocabulary from ../shared, along seeded random generations under
 * the JSON object grammar, schema grammars from tests/data/json_schemas and
 * GBNF grammars with non-ASCII classes (tokens that split UTF-8 characters),
 * also with a tiny DFA so that its resets and the fallback to the reference
 * walk are taken. Every chosen token must be accepted. Exits 77 (ctest
 * SKIP_RETURN_CODE) when the vocabulary file is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "gguf/gguf.h"
#include "sample/grammar_impl.h"
#include "test.h"
#include "tok/tok.h"

static struct grammar_vocab *g_vocab;
static int g_n;
static uint64_t g_rng = 0x2545F4914F6CDD1Dull;

static uint64_t xr(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static bool load_vocab(const char *path)
{
    struct gg_file *f = NULL;
    struct tok_vocab *v = NULL;
    struct sp_err err = {0};
    if (gg_open(path, &f, &err) != SP_OK || tok_vocab_load(f, &v, &err) != SP_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        gg_close(f);
        return false;
    }
    int n = (int)tok_n_vocab(v);
    struct sp_buf b = {0};
    uint32_t *off = sp_calloc((size_t)n + 1, sizeof(uint32_t));
    uint8_t *kind = sp_calloc((size_t)n, 1);
    bool ok = off && kind;
    char tmp[256];
    for (int t = 0; t < n && ok; t++) {
        off[t] = (uint32_t)b.len;
        size_t k = tok_piece(v, t, true, tmp, sizeof tmp);
        if (k <= sizeof tmp && k && sp_buf_append(&b, tmp, k))
            ok = false;
        kind[t] = tok_is_eog(v, t) ? GRAMMAR_TOK_EOG : tok_is_control(v, t) ? GRAMMAR_TOK_NEVER : GRAMMAR_TOK_TEXT;
    }
    if (ok) {
        off[n] = (uint32_t)b.len;
        ok = grammar_vocab_new(n, b.data ? b.data : "", off, kind, &g_vocab, &err) == SP_OK;
        g_n = n;
    }
    sp_free(off);
    sp_free(kind);
    sp_buf_free(&b);
    tok_vocab_free(v);
    gg_close(f);
    return ok;
}

/* Generate `steps` tokens from g, comparing both masks at every step. A
 * token is drawn among the allowed ones, half of the time among the
 * shortest (one or two bytes) so that structural states come up often.
 * max_states > 0 shrinks the DFA. Returns the number of mismatches. */
struct stats {
    uint32_t walks, resets, fallbacks;
};
static struct stats g_st;

static void add_stats(const struct grammar_matcher *m)
{
    g_st.walks += m->dfa.n_walks;
    g_st.resets += m->dfa.n_resets;
    g_st.fallbacks += m->dfa.n_fallbacks;
}

static int run_grammar(const char *name, const char *gbnf, int steps, uint32_t max_states)
{
    struct grammar *g = NULL;
    struct grammar_matcher *m = NULL;
    struct sp_err err = {0};
    if (grammar_parse(gbnf, strlen(gbnf), &g, &err) != SP_OK) {
        fprintf(stderr, "  %s: %s\n", name, err.msg);
        return 1;
    }
    uint8_t *fast = sp_malloc((size_t)g_n), *ref = sp_malloc((size_t)g_n);
    int32_t *ids = sp_malloc((size_t)g_n * sizeof(int32_t)), *shorts = sp_malloc((size_t)g_n * sizeof(int32_t));
    int bad = 0, docs = 0;
    if (!fast || !ref || !ids || !shorts || grammar_matcher_new(g, g_vocab, &m, &err) != SP_OK) {
        bad = 1;
        goto done;
    }
    m->dfa.max_states = max_states;
    for (int s = 0; s < steps; s++) {
        int nf = grammar_mask(m, fast);
        int nr = grammar_mask_reference(m, ref);
        if (nf != nr || memcmp(fast, ref, (size_t)g_n) != 0) {
            int first = -1;
            for (int t = 0; t < g_n && first < 0; t++)
                if (fast[t] != ref[t])
                    first = t;
            fprintf(stderr, "  %s step %d: fast mask %d tokens, reference %d (first difference: token %d)\n", name,
                    s, nf, nr, first);
            bad++;
        }
        int k = 0, ks = 0;
        for (int t = 0; t < g_n; t++)
            if (ref[t]) {
                ids[k++] = t;
                uint32_t len = g_vocab->off[t + 1] - g_vocab->off[t];
                if (len && len <= 2)
                    shorts[ks++] = t;
            }
        bool restart = k == 0;
        if (k) {
            int32_t tok = ks && (xr() & 1) ? shorts[xr() % (uint64_t)ks] : ids[xr() % (uint64_t)k];
            if (!grammar_accept(m, tok)) {
                fprintf(stderr, "  %s step %d: allowed token %d refused\n", name, s, (int)tok);
                bad++;
                restart = true;
            }
            restart = restart || grammar_done(m);
        }
        if (restart) {
            add_stats(m);
            grammar_matcher_free(m);
            m = NULL;
            if (grammar_matcher_new(g, g_vocab, &m, &err) != SP_OK) {
                bad++;
                goto done;
            }
            m->dfa.max_states = max_states;
            docs++;
        }
    }
    add_stats(m);
    fprintf(stderr, "  %-14s %d steps (%d documents ended), DFA limit %u: %d mismatches\n", name, steps, docs,
            max_states, bad);
done:
    grammar_matcher_free(m);
    grammar_free(g);
    sp_free(fast);
    sp_free(ref);
    sp_free(ids);
    sp_free(shorts);
    return bad;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct sp_buf b = {0};
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (sp_buf_append(&b, tmp, k))
            break;
    fclose(f);
    return b.data ? sp_buf_take(&b) : NULL;
}

static int run_schema(const char *file, int steps, uint32_t max_states)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/json_schemas/%s", test_src_path(), file);
    char *schema = read_text(path), *gbnf = NULL;
    struct sp_err err = {0};
    if (!schema || json_schema_gbnf(schema, strlen(schema), &gbnf, &err) != SP_OK) {
        fprintf(stderr, "  %s: %s\n", path, schema ? err.msg : "cannot read");
        sp_free(schema);
        return 1;
    }
    int bad = run_grammar(file, gbnf, steps, max_states);
    sp_free(schema);
    sp_free(gbnf);
    return bad;
}

TEST(fast_mask_equals_reference)
{
    CHECK_EQ_INT(run_grammar("json_object", grammar_json_object_gbnf(), 30, 0), 0);
    CHECK_EQ_INT(run_schema("nested.json", 20, 0), 0);
    CHECK_EQ_INT(run_schema("formats.json", 20, 0), 0);
    CHECK_EQ_INT(run_schema("anyof_value.json", 20, 0), 0);
    /* classes over non-ASCII ranges: partial UTF-8 states */
    CHECK_EQ_INT(run_grammar("non-ascii", "root ::= ( [\\u0400-\\u04ff]+ | [^a-z\\u0430] | \"\\u00e9t\\u00e9\" )+ \".\"",
                             30, 0),
                 0);
}

TEST(small_dfa_resets_and_falls_back)
{
    g_st = (struct stats){0};
    CHECK_EQ_INT(run_schema("string_lengths.json", 30, 40), 0);
    fprintf(stderr, "  DFA of 40 states: %u walks, %u resets, %u reference walks\n", g_st.walks, g_st.resets,
            g_st.fallbacks);
    CHECK(g_st.resets > 0);
    CHECK(g_st.walks > g_st.fallbacks);
    g_st = (struct stats){0};
    CHECK_EQ_INT(run_schema("person.json", 10, 3), 0);
    CHECK(g_st.fallbacks > 0);
}

int main(void)
{
    char path[1024];
    if (!test_shared_file(path, sizeof path, "tokenizer-vectors/ggml-vocab-llama-spm.gguf")) {
        fprintf(stderr, "skip: %s is absent\n", path);
        return 77;
    }
    if (!load_vocab(path)) {
        fprintf(stderr, "cannot load %s\n", path);
        return 1;
    }
    RUN(fast_mask_equals_reference);
    RUN(small_dfa_resets_and_falls_back);
    grammar_vocab_free(g_vocab);
    return test_summary();
}
