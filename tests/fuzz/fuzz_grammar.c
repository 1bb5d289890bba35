/* fuzz_grammar.c - libFuzzer harness for constrained output: the GBNF parser,
 * the matcher and masks, and JSON schema -> GBNF. Input: a first byte picks
 * the mode. Even: the rest up to a NUL is GBNF text and what follows is
 * text fed to the matcher in small steps; every token the mask allows must
 * then be accepted, and a refused step leaves the state unchanged. Odd: the
 * rest is a JSON schema; whenever it converts, the GBNF produced must parse.
 * Errors must carry a message; never a crash, hang or leak. Seeds: grammars
 * and the schema corpus (tests/data/json_schemas). */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "sample/grammar.h"

static const char *vt[] = {"{", "}", "\"", "a", "ab", "abc", "\xc3", "\xa9", "\xc3\xa9", " ", "", "1", "12", "[", "]",
                           ",", ":", "true", "null", "-", "e", "\n", "\\", "x"};
#define NV ((int)(sizeof vt / sizeof vt[0]))

static struct grammar_vocab *vocab(void)
{
    static struct grammar_vocab *v;
    if (v)
        return v;
    static char pieces[256];
    static uint32_t off[NV + 1];
    static uint8_t kind[NV];
    size_t n = 0;
    for (int i = 0; i < NV; i++) {
        off[i] = (uint32_t)n;
        memcpy(pieces + n, vt[i], strlen(vt[i]));
        n += strlen(vt[i]);
        kind[i] = vt[i][0] ? GRAMMAR_TOK_TEXT : GRAMMAR_TOK_EOG;
    }
    off[NV] = (uint32_t)n;
    struct sp_err err;
    if (grammar_vocab_new(NV, pieces, off, kind, &v, &err) != SP_OK)
        abort();
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct sp_err err;
    sp_err_clear(&err);
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        char *gbnf = NULL;
        if (json_schema_gbnf(s, n, &gbnf, &err) != SP_OK) {
            if (!err.msg[0] || gbnf)
                abort();
            return 0;
        }
        struct grammar *g = NULL;
        if (grammar_parse(gbnf, strlen(gbnf), &g, &err) != SP_OK)
            abort(); /* the converter must produce valid GBNF */
        grammar_free(g);
        sp_free(gbnf);
        return 0;
    }
    const char *nul = memchr(s, 0, n);
    size_t glen = nul ? (size_t)(nul - s) : n;
    struct grammar *g = NULL;
    if (grammar_parse(s, glen, &g, &err) != SP_OK) {
        if (!err.msg[0] || g)
            abort();
        return 0;
    }
    struct grammar_matcher *m = NULL;
    if (grammar_matcher_new(g, vocab(), &m, &err) != SP_OK)
        abort();
    const char *t = nul ? nul + 1 : s + n;
    size_t tl = nul ? n - glen - 1 : 0;
    for (size_t i = 0; i < tl && i < 64; i += 3) {
        uint8_t allow[NV];
        int na = grammar_mask(m, allow);
        int cnt = 0;
        for (int k = 0; k < NV; k++)
            cnt += allow[k];
        if (cnt != na)
            abort();
        for (int k = 0; k < NV; k++) {
            if (!allow[k] || !vt[k][0])
                continue;
            struct grammar_matcher *m2 = NULL;
            if (grammar_matcher_new(g, vocab(), &m2, &err) != SP_OK)
                abort();
            /* m2 replays m's accepted text then token k */
            bool ok = grammar_accept_bytes(m2, t, i) && grammar_accept(m2, k);
            grammar_matcher_free(m2);
            if (!ok)
                abort();
        }
        if (!grammar_accept_bytes(m, t + i, SP_MIN((size_t)3, tl - i)))
            break;
    }
    (void)grammar_can_end(m);
    (void)grammar_done(m);
    grammar_matcher_free(m);
    grammar_free(g);
    return 0;
}
