/* test_grammar.c - GBNF parsing (errors with positions, limits, left
 * recursion), the byte matcher (literals, classes, repetitions, UTF-8
 * split across tokens), token masks against a small vocabulary (EOG only
 * when the grammar can end, a brute-force mask comparison) and the built-in
 * JSON object grammar. */
#include <string.h>

#include "sample/grammar.h"
#include "test.h"

static struct grammar *parse(const char *s)
{
    struct grammar *g = NULL;
    struct sp_err err = {0};
    if (grammar_parse(s, strlen(s), &g, &err) != SP_OK)
        return NULL;
    return g;
}

/* Does the whole of text match g? */
static bool matches(struct grammar *g, const char *text)
{
    static const char pieces[] = "a";
    static const uint32_t off[] = {0, 1};
    static const uint8_t kind[] = {0};
    struct grammar_vocab *v = NULL;
    struct grammar_matcher *m = NULL;
    struct sp_err err = {0};
    if (grammar_vocab_new(1, pieces, off, kind, &v, &err) != SP_OK)
        return false;
    bool ok = grammar_matcher_new(g, v, &m, &err) == SP_OK && grammar_accept_bytes(m, text, strlen(text)) &&
              grammar_can_end(m);
    grammar_matcher_free(m);
    grammar_vocab_free(v);
    return ok;
}

TEST(parse_errors)
{
    struct grammar *g = NULL;
    struct sp_err err = {0};
    const char *bad[] = {"root ::= [a-", "root ::= \"abc", "root ::= (\"a\"", "root ::= x", "x ::= \"a\"",
                         "root ::= root \"a\"", "root ::= *", "root ::= \"a\"{3,1}", "root ::= \"a\" )",
                         "root ::= \"\\q\"", "root ::= \"a\"{5000}", "root ::= a\na ::= \"x\"\na ::= \"y\"",
                         "root ::= x* \nx ::= \"a\"?", "::= \"a\"", "root = \"a\""};
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        sp_err_clear(&err);
        CHECK_MSG(grammar_parse(bad[i], strlen(bad[i]), &g, &err) != SP_OK, "accepted: %s", bad[i]);
        CHECK(g == NULL);
        CHECK_MSG(err.msg[0] != 0, "no message: %s", bad[i]);
    }
    sp_err_clear(&err);
    const char *s = "root ::= \"a\"\n  | [b-";
    CHECK(grammar_parse(s, strlen(s), &g, &err) == SP_ERR_INVALID);
    CHECK_MSG(strstr(err.msg, "2:") != NULL, "%s", err.msg);
}

TEST(match_basics)
{
    struct grammar *g = parse("root ::= \"ab\" [0-9]+ (\"x\" | \"yz\")? tail\n"
                              "tail ::= [^a-c]{2,3} # comment\n");
    CHECK(g);
    if (!g)
        return;
    CHECK(matches(g, "ab1zz"));
    CHECK(matches(g, "ab123xzzz"));
    CHECK(matches(g, "ab9yzdd"));
    CHECK(!matches(g, "ab1z"));
    CHECK(!matches(g, "abxzz"));
    CHECK(!matches(g, "ab1zzzz"));
    CHECK(!matches(g, "ab1aa"));
    CHECK(matches(g, "ab1\xc3\xa9\xe2\x82\xac")); /* non-ASCII characters in the negated class */
    grammar_free(g);
    g = parse("root ::= \"\\u00e9\" [\\u0100-\\u017f] .");
    CHECK(g && matches(g, "\xc3\xa9\xc4\x80z"));
    CHECK(g && !matches(g, "e\xc4\x80z"));
    grammar_free(g);
}

/* vocabulary: tokens with shared prefixes, a token splitting a UTF-8 char */
static const char *vtexts[] = {"{", "}", "\"", "a", "ab", "abc", "\xc3", "\xa9", "\xc3\xa9", " ", "</s>", "1", "12", ""};
#define NVT ((int)SP_ARRAY_LEN(vtexts))

static struct grammar_vocab *mkvocab(void)
{
    static char pieces[256];
    static uint32_t off[NVT + 1];
    static uint8_t kind[NVT];
    size_t n = 0;
    for (int i = 0; i < NVT; i++) {
        off[i] = (uint32_t)n;
        memcpy(pieces + n, vtexts[i], strlen(vtexts[i]));
        n += strlen(vtexts[i]);
        kind[i] = strcmp(vtexts[i], "</s>") == 0 ? GRAMMAR_TOK_EOG : GRAMMAR_TOK_TEXT;
    }
    off[NVT] = (uint32_t)n;
    struct grammar_vocab *v = NULL;
    struct sp_err err = {0};
    return grammar_vocab_new(NVT, pieces, off, kind, &v, &err) == SP_OK ? v : NULL;
}

TEST(mask_matches_brute_force)
{
    struct grammar *g = parse("root ::= \"{\" (\"a\" | \"\\u00e9\")* \"}\" | [1-2]+");
    struct grammar_vocab *v = mkvocab();
    CHECK(g && v);
    if (!g || !v)
        return;
    struct grammar_matcher *m = NULL;
    struct sp_err err = {0};
    CHECK(grammar_matcher_new(g, v, &m, &err) == SP_OK);
    const char *path[] = {"{", "ab", "\xc3", "\xa9", "a", "}"};
    for (size_t step = 0; step <= SP_ARRAY_LEN(path); step++) {
        uint8_t allow[NVT];
        int n = grammar_mask(m, allow);
        int cnt = 0;
        for (int t = 0; t < NVT; t++) {
            cnt += allow[t];
            bool expect;
            if (strcmp(vtexts[t], "</s>") == 0) {
                expect = grammar_can_end(m);
            } else {
                struct grammar_matcher *m2 = NULL;
                CHECK(grammar_matcher_new(g, v, &m2, &err) == SP_OK);
                bool ok = true;
                for (size_t k = 0; k < step && ok; k++)
                    ok = grammar_accept_bytes(m2, path[k], strlen(path[k]));
                expect = ok && vtexts[t][0] && grammar_accept_bytes(m2, vtexts[t], strlen(vtexts[t]));
                grammar_matcher_free(m2);
            }
            CHECK_MSG(allow[t] == expect, "step %zu token '%s': mask %d expected %d", step, vtexts[t], allow[t],
                      expect);
        }
        CHECK_EQ_INT(n, cnt);
        if (step == SP_ARRAY_LEN(path))
            break;
        if (strcmp(path[step], "ab") == 0) {
            CHECK(!grammar_accept(m, 4)); /* "ab": b is not allowed */
            CHECK(grammar_accept(m, 3));  /* "a" */
            path[step] = "a";
        } else {
            int id = -1;
            for (int t = 0; t < NVT; t++)
                if (strcmp(vtexts[t], path[step]) == 0)
                    id = t;
            CHECK(grammar_accept(m, id));
        }
    }
    CHECK(grammar_can_end(m));
    CHECK(grammar_done(m));
    CHECK(grammar_accept(m, 10)); /* </s> */
    grammar_matcher_free(m);
    grammar_vocab_free(v);
    grammar_free(g);
}

/* Masks inside a multi-byte character (the fast mask gives partial
 * characters one representative when every class treats non-ASCII alike):
 * byte tokens along paths through E0, ED (surrogates), F0, F4 and plain
 * lead bytes, each mask compared with brute-force accepts. */
TEST(mask_partial_utf8)
{
    static const char *bt[] = {"\"", "a", "\xc2", "\xe0", "\xe1", "\xed", "\xf0", "\xf1", "\xf4", "\x80",
                               "\x8f", "\x90", "\x9f", "\xa0", "\xbf", "\xed\xa0", "\xe1\x80", "\xbf\xbf", ".",
                               "\xed\xa0\x80", "\xed\x9f\xbf", "\xe0\xa0\x80", "\xe0\x9f\xbf", "\xf4\x8f\xbf\xbf",
                               "\xf4\x90\x80\x80", "\xf0\x8f\xbf\xbf", "\xf0\x90\x80\x80", "\xe1\xbf\xbf"};
    enum { NB = (int)SP_ARRAY_LEN(bt) };
    static char pieces[128];
    static uint32_t off[NB + 1];
    static uint8_t kind[NB];
    size_t n = 0;
    for (int i = 0; i < NB; i++) {
        off[i] = (uint32_t)n;
        memcpy(pieces + n, bt[i], strlen(bt[i]));
        n += strlen(bt[i]);
        kind[i] = GRAMMAR_TOK_TEXT;
    }
    off[NB] = (uint32_t)n;
    struct grammar_vocab *v = NULL;
    struct sp_err err = {0};
    CHECK(grammar_vocab_new(NB, pieces, off, kind, &v, &err) == SP_OK);
    const char *gs[] = {"root ::= \"\\\"\" [^\"\\\\\\x00-\\x1f]* \"\\\"\"",
                        "root ::= ( [^\\n]+ \".\" | [\\u0800-\\uffff]+ \"a\" )+"};
    /* paths of token indexes into bt */
    static const int paths[][6] = {{0, 5, 13, 9, 3, 14}, {0, 5, 10, 9, 6, 11}, {0, 3, 13, 14, 8, 10},
                                   {0, 6, 9, 9, 9, 7},   {0, 4, 9, 9, 2, 9},   {0, 15, 9, 16, 17, 0},
                                   {0, 8, 10, 17, 1, 0}, {0, 3, 9, 12, 13, 14}};
    for (size_t gi = 0; gi < SP_ARRAY_LEN(gs); gi++) {
        struct grammar *g = parse(gs[gi]);
        CHECK(g != NULL);
        for (size_t p = 0; g && p < SP_ARRAY_LEN(paths); p++) {
            struct grammar_matcher *m = NULL;
            CHECK(grammar_matcher_new(g, v, &m, &err) == SP_OK);
            for (int step = 0; step < 6; step++) {
                uint8_t allow[NB];
                (void)grammar_mask(m, allow);
                for (int t = 0; t < NB; t++) {
                    struct grammar_matcher *m2 = NULL;
                    CHECK(grammar_matcher_new(g, v, &m2, &err) == SP_OK);
                    bool ok = true;
                    for (int k = 0; k < step && ok; k++)
                        ok = grammar_accept(m2, paths[p][k]);
                    bool expect = ok && grammar_accept(m2, t);
                    grammar_matcher_free(m2);
                    CHECK_MSG(allow[t] == expect, "grammar %zu path %zu step %d token %d: mask %d, accept %d", gi,
                              p, step, t, allow[t], expect);
                }
                if (!grammar_accept(m, paths[p][step]))
                    break;
            }
            grammar_matcher_free(m);
        }
        grammar_free(g);
    }
    grammar_vocab_free(v);
}

TEST(json_object_grammar)
{
    const char *j = grammar_json_object_gbnf();
    struct grammar *g = parse(j);
    CHECK(g);
    if (!g)
        return;
    CHECK(matches(g, "{}"));
    CHECK(matches(g, "{\"a\": [1, -2.5e3, true, null, {\"b\": \"x\\n\\u00e9\"}]}"));
    CHECK(!matches(g, "[1]"));
    CHECK(!matches(g, "{\"a\" 1}"));
    CHECK(!matches(g, "{\"a\": 01}"));
    CHECK(!matches(g, "{\"a\": \"\x01\"}"));
    grammar_free(g);
}

int main(void)
{
    RUN(parse_errors);
    RUN(match_basics);
    RUN(mask_matches_brute_force);
    RUN(mask_partial_utf8);
    RUN(json_object_grammar);
    return test_summary();
}
