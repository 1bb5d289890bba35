/* test_tok_vectors.c - tokenizer conformance against ../shared/tokenizer-vectors:
 * for every vocabulary that has a GGUF there (and stories260K, llama-2-tiny),
 * each of the 46 inputs must tokenize (no BOS/EOS, no special parsing) to
 * exactly the expected ids, and decode back to the input (except WordPiece,
 * which lowercases and strips accents). gpt-neox and baichuan have no vectors:
 * round trip only. Prints a table: vocab, cases, passed, round trip, load ms. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "test.h"
#include "tok/tok.h"

static char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    struct sp_buf b = {0};
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        if (sp_buf_append(&b, chunk, k) != 0)
            break;
    fclose(fp);
    if (!b.data && sp_buf_append(&b, "", 0) != 0)
        return NULL;
    *n = b.len;
    return sp_buf_take(&b);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct vset {
    const char *name;  /* table label */
    const char *gguf;  /* relative to shared */
    const char *vec;   /* .inp/.out prefix relative to shared */
    bool optional;     /* may be unsupported (bert) */
    bool rt_only;      /* no expected ids for this vocab: round trip only */
    bool lossy;        /* the tokenizer normalizes text (WordPiece lowercases): no round trip */
};

static const struct vset sets[] = {
    {"llama-spm", "tokenizer-vectors/ggml-vocab-llama-spm.gguf", "tokenizer-vectors/ggml-vocab-llama-spm.gguf", false, false, false},
    {"phi-3", "tokenizer-vectors/ggml-vocab-phi-3.gguf", "tokenizer-vectors/ggml-vocab-phi-3.gguf", false, false, false},
    {"gpt-2", "tokenizer-vectors/ggml-vocab-gpt-2.gguf", "tokenizer-vectors/ggml-vocab-gpt-2.gguf", false, false, false},
    {"llama-bpe", "tokenizer-vectors/ggml-vocab-llama-bpe.gguf", "tokenizer-vectors/ggml-vocab-llama-bpe.gguf", false, false, false},
    {"deepseek-coder", "tokenizer-vectors/ggml-vocab-deepseek-coder.gguf", "tokenizer-vectors/ggml-vocab-deepseek-coder.gguf", false, false, false},
    {"deepseek-llm", "tokenizer-vectors/ggml-vocab-deepseek-llm.gguf", "tokenizer-vectors/ggml-vocab-deepseek-llm.gguf", false, false, false},
    {"falcon", "tokenizer-vectors/ggml-vocab-falcon.gguf", "tokenizer-vectors/ggml-vocab-falcon.gguf", false, false, false},
    {"mpt", "tokenizer-vectors/ggml-vocab-mpt.gguf", "tokenizer-vectors/ggml-vocab-mpt.gguf", false, false, false},
    {"refact", "tokenizer-vectors/ggml-vocab-refact.gguf", "tokenizer-vectors/ggml-vocab-refact.gguf", false, false, false},
    {"starcoder", "tokenizer-vectors/ggml-vocab-starcoder.gguf", "tokenizer-vectors/ggml-vocab-starcoder.gguf", false, false, false},
    {"stories260K", "models/stories260K.gguf", "tokenizer-vectors/stories260K.gguf", false, false, false},
    {"llama-2-tiny", "models/llama-2-tiny-random.gguf", "tokenizer-vectors/ggml-vocab-llama-spm.gguf", false, false, false},
    {"bert-bge", "tokenizer-vectors/ggml-vocab-bert-bge.gguf", "tokenizer-vectors/ggml-vocab-bert-bge.gguf", true, false, true},
    {"gpt-neox*", "tokenizer-vectors/ggml-vocab-gpt-neox.gguf", "tokenizer-vectors/ggml-vocab-gpt-2.gguf", false, true, false},
    {"baichuan*", "tokenizer-vectors/ggml-vocab-baichuan.gguf", "tokenizer-vectors/ggml-vocab-gpt-2.gguf", false, true, false},
};

static int g_total_fail;

/* Run one set; returns false on a hard failure (missing file, load error). */
static bool run_set(const char *shared, const struct vset *s)
{
    char p[1024], pi[1024], po[1024];
    snprintf(p, sizeof(p), "%s/%s", shared, s->gguf);
    snprintf(pi, sizeof(pi), "%s/%s.inp", shared, s->vec);
    snprintf(po, sizeof(po), "%s/%s.out", shared, s->vec);
    size_t ni = 0, no = 0;
    char *inp = read_all(pi, &ni), *outv = read_all(po, &no);
    struct gg_file *f = NULL;
    struct tok_vocab *v = NULL;
    struct sp_err err = {0};
    bool ok = false;
    if (!inp || !outv) {
        fprintf(stderr, "%-15s missing vector files\n", s->name);
        goto done;
    }
    if (gg_open(p, &f, &err) != SP_OK) {
        fprintf(stderr, "%-15s cannot open GGUF: %s\n", s->name, err.msg);
        goto done;
    }
    double t0 = now_ms();
    enum sp_status st = tok_vocab_load(f, &v, &err);
    double load_ms = now_ms() - t0;
    if (st != SP_OK) {
        if (s->optional && st == SP_ERR_UNSUPPORTED) {
            fprintf(stderr, "%-15s %5s %6s %9s  skipped: %s\n", s->name, "-", "-", "-", err.msg);
            ok = true;
        } else {
            fprintf(stderr, "%-15s load failed: %s\n", s->name, err.msg);
        }
        goto done;
    }
    gg_close(f); /* the vocab must not need the file any more */
    f = NULL;

    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t seplen = sizeof(sep) - 1;
    int cases = 0, passed = 0, rt_ok = 0;
    char cnum[16];
    char *ip = inp, *iend = inp + ni, *op = outv, *oend = outv + no;
    int32_t ids[4096];
    while (ip < iend) {
        char *m = memmem(ip, (size_t)(iend - ip), sep, seplen);
        if (!m)
            break;
        size_t len = (size_t)(m - ip);
        char *nl = memchr(op, '\n', (size_t)(oend - op));
        if (!nl)
            break;
        /* expected ids */
        int32_t exp[4096];
        size_t ne = 0;
        for (char *q = op; q < nl;) {
            while (q < nl && *q == ' ')
                q++;
            if (q >= nl)
                break;
            char num[16];
            size_t k = 0;
            while (q < nl && *q != ' ' && k < sizeof(num) - 1)
                num[k++] = *q++;
            num[k] = '\0';
            int64_t x;
            if (sp_parse_i64(num, 0, INT32_MAX, &x) && ne < 4096)
                exp[ne++] = (int32_t)x;
        }
        size_t n = 0;
        cases++;
        st = tok_encode(v, ip, len, false, false, ids, 4096, &n, &err);
        bool same = st == SP_OK && n == ne && memcmp(ids, exp, n * sizeof(int32_t)) == 0;
        if (s->rt_only && st == SP_OK)
            same = true;
        if (same) {
            passed++;
        } else {
            fprintf(stderr, "  %s case %d: \"%.*s\"\n    got:", s->name, cases - 1, (int)SP_MIN(len, 60), ip);
            for (size_t k = 0; k < n && k < 40; k++)
                fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n    exp:");
            for (size_t k = 0; k < ne && k < 40; k++)
                fprintf(stderr, " %d", exp[k]);
            fprintf(stderr, "\n");
        }
        struct sp_buf d = {0};
        if (st == SP_OK && tok_decode(v, ids, n, false, &d) == SP_OK &&
            d.len == len && (len == 0 || memcmp(d.data, ip, len) == 0))
            rt_ok++;
        else if (st == SP_OK && getenv("TOK_VERBOSE"))
            fprintf(stderr, "  %s case %d: round trip gave \"%.*s\"\n", s->name, cases - 1,
                    (int)d.len, d.data ? d.data : "");
        sp_buf_free(&d);
        ip = m + seplen;
        op = nl + 1;
    }
    fprintf(stderr, "%-15s %5d %6s %9d  load %.1f ms%s\n", s->name, cases,
            s->rt_only ? "-" : (snprintf(cnum, sizeof(cnum), "%d", passed), cnum), rt_ok, load_ms,
            s->rt_only ? "  (* no vectors: round trip only)"
                       : s->lossy ? "  (normalizing: round trip not expected)" : "");
    ok = cases > 0 && passed == cases && (s->lossy || rt_ok == cases);
done:
    if (!ok)
        g_total_fail++;
    tok_vocab_free(v);
    gg_close(f);
    sp_free(inp);
    sp_free(outv);
    return ok;
}

TEST(tokenizer_vectors)
{
    const char *shared = getenv("SPOKE_SHARED");
    char path[1024];
    if (!shared)
        shared = "../shared";
    snprintf(path, sizeof(path), "%s/tokenizer-vectors/README.md", shared);
    if (access(path, R_OK) != 0)
        SKIP("no shared tokenizer vectors at %s (set SPOKE_SHARED)", shared);
    fprintf(stderr, "%-15s %5s %6s %9s\n", "vocab", "cases", "passed", "roundtrip");
    for (size_t i = 0; i < SP_ARRAY_LEN(sets); i++)
        (void)run_set(shared, &sets[i]);
    CHECK_EQ_INT(g_total_fail, 0);
}

int main(void)
{
    RUN(tokenizer_vectors);
    return test_summary();
}
