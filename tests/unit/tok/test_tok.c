/* test_tok.c - tokenizer unit tests on synthetic vocabularies (SPM merges by
 * score, byte fallback, BPE merges by rank, special-token partition, BOS/EOS,
 * EOG, output limits, pieces, streaming UTF-8 hold-back, load errors,
 * allocation-failure injection) and on the shared real vocabularies
 * (llama-bpe, phi-3 specials; encode throughput, printed only). */
#include <pthread.h>
#include <time.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "test.h"
#include "tok/tok.h"
#include "unit/tok/tok_testvocab.h"

#define ENC(v, s, special, parse, ids, n)                                                     \
    CHECK_EQ_INT(tok_encode((v), (s), strlen(s), (special), (parse), (ids), 64, &(n), NULL), SP_OK)

static bool ids_eq(const int32_t *a, size_t n, const int32_t *b, size_t m)
{
    return n == m && memcmp(a, b, n * sizeof(*a)) == 0;
}

static bool roundtrip(const struct tok_vocab *v, const char *s, size_t len)
{
    int32_t ids[4096];
    size_t n = 0;
    if (tok_encode(v, s, len, false, false, ids, 4096, &n, NULL) != SP_OK)
        return false;
    struct sp_buf d = {0};
    bool ok = tok_decode(v, ids, n, false, &d) == SP_OK && d.len == len &&
              (len == 0 || memcmp(d.data, s, len) == 0);
    sp_buf_free(&d);
    return ok;
}

TEST(spm_merges_bytes_specials)
{
    struct tv_mem m = {0};
    CHECK_EQ_INT(tv_build_spm(&m), SP_OK);
    struct tok_vocab *v = NULL;
    struct sp_err err = {0};
    CHECK_EQ_INT(tok_vocab_load(m.f, &v, &err), SP_OK);
    tv_free(&m); /* the vocab keeps its own copy */
    int32_t ids[64];
    size_t n = 0;
    CHECK_EQ_INT(tok_n_vocab(v), 278);
    CHECK(tok_add_bos(v) && !tok_add_eos(v));
    CHECK_EQ_INT(tok_bos(v), 1);
    CHECK_EQ_INT(tok_eos(v), 2);
    CHECK(tok_is_eog(v, 2) && !tok_is_eog(v, 1));
    CHECK(tok_is_control(v, 1) && !tok_is_control(v, 275) && !tok_is_control(v, -1));

    ENC(v, "hello", false, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){275}, 1));
    ENC(v, "hello", true, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){1, 275}, 2));
    ENC(v, "", true, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){1}, 1));
    ENC(v, "", false, false, ids, n);
    CHECK_EQ_INT(n, 0);
    /* byte fallback: U+00E9 = C3 A9 */
    ENC(v, "\xc3\xa9", false, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){259, 3 + 0xC3, 3 + 0xA9}, 3));
    /* control tokens only with parse_special; the text after one gets the space prefix */
    ENC(v, "<|user|>hello", false, true, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){276, 275}, 2));
    ENC(v, "<|user|>hello", false, false, ids, n);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] != 276);
    /* user-defined tokens are always split out */
    ENC(v, "a<tool>b", false, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){263, 277, 259, 261}, 4));

    char buf[16];
    CHECK_EQ_INT(tok_piece(v, 275, false, buf, sizeof(buf)), 6);
    CHECK(memcmp(buf, " hello", 6) == 0);
    CHECK_EQ_INT(tok_piece(v, 3 + 'A', false, buf, sizeof(buf)), 1);
    CHECK_EQ_INT(buf[0], 'A');
    CHECK_EQ_INT(tok_piece(v, 1, false, buf, sizeof(buf)), 0);
    CHECK_EQ_INT(tok_piece(v, 1, true, buf, sizeof(buf)), 3);
    CHECK_EQ_INT(tok_piece(v, 275, false, buf, 2), 6); /* truncated, full length reported */
    CHECK_EQ_INT(tok_piece(v, 9999, true, buf, sizeof(buf)), 0);
    size_t tl = 0;
    const char *t = tok_text(v, 266, &tl);
    CHECK(t && tl == 6 && memcmp(t, "\xe2\x96\x81" "abc", 6) == 0);
    CHECK(tok_text(v, -1, &tl) == NULL);

    static const char *const rt[] = {"hello", " hello  world ", "\xc3\xa9t\xc3\xa9", "a\nb\tc",
                                     "\xf0\x9f\xa6\x99 llama", "   ", "abcabc"};
    for (size_t i = 0; i < SP_ARRAY_LEN(rt); i++)
        CHECK_MSG(roundtrip(v, rt[i], strlen(rt[i])), "round trip of \"%s\"", rt[i]);
    tok_vocab_free(v);
    tok_vocab_free(NULL);
}

TEST(bpe_merges_specials)
{
    struct tv_mem m = {0};
    CHECK_EQ_INT(tv_build_bpe(&m), SP_OK);
    struct tok_vocab *v = NULL;
    CHECK_EQ_INT(tok_vocab_load(m.f, &v, NULL), SP_OK);
    tv_free(&m);
    int32_t ids[64];
    size_t n = 0;
    CHECK(!tok_add_bos(v));
    ENC(v, "hello world", true, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){259, 264}, 2));
    ENC(v, "\n\n", false, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){265}, 1));
    ENC(v, "hello<|im_end|>", false, true, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){259, 267}, 2));
    ENC(v, "hello<|im_end|>", false, false, ids, n);
    CHECK(n > 2);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] != 267);
    CHECK(tok_is_eog(v, 266) && tok_is_eog(v, 267) && !tok_is_eog(v, 259));
    char buf[16];
    CHECK_EQ_INT(tok_piece(v, 264, false, buf, sizeof(buf)), 6);
    CHECK(memcmp(buf, " world", 6) == 0);
    CHECK_EQ_INT(tok_piece(v, 267, false, buf, sizeof(buf)), 0);
    CHECK_EQ_INT(tok_piece(v, 267, true, buf, sizeof(buf)), 10);
    /* output limit: needed count reported */
    size_t need = 0;
    CHECK_EQ_INT(tok_encode(v, "hello world", 11, false, false, ids, 1, &need, NULL), SP_ERR_LIMIT);
    CHECK_EQ_INT(need, 2);
    CHECK_EQ_INT(tok_encode(v, NULL, 3, false, false, ids, 1, &need, NULL), SP_ERR_INVALID);
    /* invalid UTF-8 is tokenized (as U+FFFD), never rejected */
    CHECK_EQ_INT(tok_encode(v, "a\xff\xc3", 3, false, false, ids, 64, &n, NULL), SP_OK);
    CHECK(n >= 2);
    static const char *const rt[] = {"hello world", "  hello\n\n world  ", "\xc3\xa9t\xc3\xa9 3.14",
                                     "\xe6\x88\x91\xe6\x83\xb3 don't", "\t\t\n", "x"};
    for (size_t i = 0; i < SP_ARRAY_LEN(rt); i++)
        CHECK_MSG(roundtrip(v, rt[i], strlen(rt[i])), "round trip of \"%s\"", rt[i]);
    tok_vocab_free(v);
}

TEST(stream_holds_partial_utf8)
{
    struct tv_mem m = {0};
    CHECK_EQ_INT(tv_build_spm(&m), SP_OK);
    struct tok_vocab *v = NULL;
    CHECK_EQ_INT(tok_vocab_load(m.f, &v, NULL), SP_OK);
    tv_free(&m);
    struct tok_stream s;
    struct sp_buf out = {0};
    tok_stream_init(&s);
    CHECK_EQ_INT(tok_stream_push(v, &s, 259, &out), SP_OK); /* "▁" */
    CHECK_EQ_INT(out.len, 1);
    CHECK_EQ_INT(tok_stream_push(v, &s, 3 + 0xC3, &out), SP_OK);
    CHECK_EQ_INT(out.len, 1); /* held back */
    CHECK_EQ_INT(tok_stream_push(v, &s, 1, &out), SP_OK); /* control: nothing, still held */
    CHECK_EQ_INT(out.len, 1);
    CHECK_EQ_INT(tok_stream_push(v, &s, 3 + 0xA9, &out), SP_OK);
    CHECK_EQ_STR(out.data, " \xc3\xa9");
    /* a 4-byte emoji in single bytes */
    const unsigned char em[] = {0xF0, 0x9F, 0xA6, 0x99};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(tok_stream_push(v, &s, 3 + em[i], &out), SP_OK);
        CHECK_EQ_INT(out.len, i < 3 ? 3 : 7);
    }
    CHECK_EQ_INT(tok_stream_flush(&s, &out), SP_OK);
    CHECK_EQ_INT(out.len, 7);
    /* invalid bytes become U+FFFD at once; a dangling lead byte at flush too */
    CHECK_EQ_INT(tok_stream_push(v, &s, 3 + 0xFF, &out), SP_OK);
    CHECK_EQ_INT(tok_stream_push(v, &s, 3 + 0xE2, &out), SP_OK);
    CHECK_EQ_INT(tok_stream_flush(&s, &out), SP_OK);
    CHECK_EQ_STR(out.data + 7, "\xef\xbf\xbd\xef\xbf\xbd");
    /* first = true drops the SPM space prefix of the first text piece */
    sp_buf_reset(&out);
    tok_stream_init(&s);
    s.first = true;
    CHECK_EQ_INT(tok_stream_push(v, &s, 1, &out), SP_OK);
    CHECK_EQ_INT(tok_stream_push(v, &s, 275, &out), SP_OK);
    CHECK_EQ_INT(tok_stream_push(v, &s, 275, &out), SP_OK);
    CHECK_EQ_STR(out.data, "hello hello");
    sp_buf_free(&out);
    tok_vocab_free(v);
}

/* Write a minimal vocab GGUF with the given model/pre and optional broken parts. */
static enum sp_status build_custom(struct tv_mem *m, const char *model, const char *pre,
                                   bool bad_types, bool no_tokens)
{
    const char *toks[] = {"a", "b", "ab"};
    int32_t types[] = {1, 1, 1};
    struct gg_writer *w = gg_writer_new();
    enum sp_status r = gg_writer_add_kv_str(w, "tokenizer.ggml.model", model);
    if (r == SP_OK && pre)
        r = gg_writer_add_kv_str(w, "tokenizer.ggml.pre", pre);
    if (r == SP_OK && !no_tokens)
        r = gg_writer_add_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    if (r == SP_OK)
        r = gg_writer_add_kv_arr(w, "tokenizer.ggml.token_type", GG_VAL_I32, types, bad_types ? 2 : 3);
    if (r == SP_OK)
        r = gg_writer_write_mem(w, NULL, NULL, &m->data, &m->size, NULL);
    if (r == SP_OK)
        r = gg_open_memory(m->data, m->size, &m->f, NULL);
    gg_writer_free(w);
    return r;
}

TEST(load_errors)
{
    struct {
        const char *model, *pre;
        bool bad_types, no_tokens;
        enum sp_status want;
        const char *msg;
    } cases[] = {
        {"rwkv", NULL, false, false, SP_ERR_UNSUPPORTED, "rwkv"},
        {"bert", NULL, false, false, SP_OK, ""}, /* WordPiece */
        {"t5", NULL, false, false, SP_ERR_UNSUPPORTED, "not supported"},
        {"gpt2", "no-such-pre", false, false, SP_ERR_UNSUPPORTED, "no-such-pre"},
        {"llama", NULL, true, false, SP_ERR_FORMAT, "token_type"},
        {"llama", NULL, false, true, SP_ERR_FORMAT, "tokenizer.ggml.tokens"},
        {"gpt2", NULL, false, false, SP_OK, ""}, /* no pre: default regexes, no merges */
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
        struct tv_mem m = {0};
        CHECK_EQ_INT(build_custom(&m, cases[i].model, cases[i].pre, cases[i].bad_types,
                                  cases[i].no_tokens), SP_OK);
        struct tok_vocab *v = (struct tok_vocab *)&m; /* must be reset to NULL on error */
        struct sp_err err = {0};
        enum sp_status st = tok_vocab_load(m.f, &v, &err);
        tv_free(&m);
        CHECK_MSG(st == cases[i].want, "case %zu: status %d", i, (int)st);
        if (st != SP_OK) {
            CHECK(v == NULL);
            CHECK_MSG(strstr(err.msg, cases[i].msg) != NULL, "case %zu: msg '%s'", i, err.msg);
        } else {
            int32_t ids[8];
            size_t n;
            CHECK_EQ_INT(tok_encode(v, "ab ba", 5, true, true, ids, 8, &n, NULL), SP_OK);
            tok_vocab_free(v);
        }
    }
}

TEST(alloc_failures_are_clean)
{
    struct tv_mem ms = {0}, mb = {0};
    CHECK_EQ_INT(tv_build_spm(&ms), SP_OK);
    CHECK_EQ_INT(tv_build_bpe(&mb), SP_OK);
    int oks = 0;
    for (long k = 1; k < 400; k++) {
        for (int which = 0; which < 2; which++) {
            struct tok_vocab *v = NULL;
            sp_mem_fail_after(k, 0);
            enum sp_status st = tok_vocab_load(which ? mb.f : ms.f, &v, NULL);
            if (st == SP_OK) {
                int32_t ids[64];
                size_t n;
                st = tok_encode(v, "hello w\xc3\xb6rld <|user|>", 22, true, true, ids, 64, &n, NULL);
                struct sp_buf d = {0};
                if (st == SP_OK)
                    st = tok_decode(v, ids, n, true, &d);
                sp_buf_free(&d);
                if (st == SP_OK)
                    oks++;
                tok_vocab_free(v);
            } else {
                CHECK(v == NULL);
            }
            CHECK_MSG(st == SP_OK || st == SP_ERR_NOMEM, "k=%ld status %d", k, (int)st);
        }
    }
    sp_mem_fail_after(0, 0);
    CHECK(oks > 0);
    tv_free(&ms);
    tv_free(&mb);
}

static struct tok_vocab *load_shared(const char *rel)
{
    const char *shared = getenv("SPOKE_SHARED");
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", shared ? shared : "../shared", rel);
    return tv_load_file(p);
}

TEST(real_llama_bpe)
{
    struct tok_vocab *v = load_shared("tokenizer-vectors/ggml-vocab-llama-bpe.gguf");
    if (!v)
        SKIP("ggml-vocab-llama-bpe.gguf not found (SPOKE_SHARED)");
    int32_t ids[64];
    size_t n = 0;
    CHECK(tok_add_bos(v));
    CHECK(tok_is_eog(v, 128001) && tok_is_control(v, 128000));
    ENC(v, "hello world", false, false, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){15339, 1917}, 2));
    ENC(v, "<|begin_of_text|>hello world", true, true, ids, n);
    CHECK(ids_eq(ids, n, (int32_t[]){128000, 128000, 15339, 1917}, 4));
    ENC(v, "<|begin_of_text|>", false, false, ids, n);
    CHECK(n > 1);

    /* throughput (printed, not asserted) */
    size_t reps = getenv("SPOKE_ASAN") ? 200 : 2000;
    static const char chunk[] = "The quick brown fox jumps over the lazy dog; it's 1234 times "
                                "faster!\n\t\xe6\x88\x91\xe6\x83\xb3 \xf0\x9f\xa6\x99 na\xc3\xafve ";
    struct sp_buf text = {0};
    for (size_t i = 0; i < reps; i++)
        CHECK_EQ_INT(sp_buf_append(&text, chunk, sizeof(chunk) - 1), 0);
    int32_t *big = sp_malloc(text.len * sizeof(int32_t));
    CHECK(big != NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(tok_encode(v, text.data, text.len, false, false, big, text.len, &n, NULL), SP_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "  llama-bpe encode: %zu bytes -> %zu tokens in %.1f ms (%.2f MB/s)\n",
            text.len, n, ms, text.len / 1e3 / (ms > 0 ? ms : 1));
    struct sp_buf d = {0};
    CHECK_EQ_INT(tok_decode(v, big, n, false, &d), SP_OK);
    CHECK(d.len == text.len && memcmp(d.data, text.data, d.len) == 0);
    sp_buf_free(&d);
    sp_free(big);
    sp_buf_free(&text);
    tok_vocab_free(v);
}

TEST(real_phi3_specials)
{
    struct tok_vocab *v = load_shared("tokenizer-vectors/ggml-vocab-phi-3.gguf");
    if (!v)
        SKIP("ggml-vocab-phi-3.gguf not found (SPOKE_SHARED)");
    int32_t ids[64];
    size_t n = 0;
    CHECK(tok_is_eog(v, 32007) && tok_is_eog(v, 32000)); /* <|end|>, <|endoftext|> */
    CHECK(!tok_is_eog(v, 32001));
    const char *p = "<|user|>\nHi<|end|>\n<|assistant|>\n";
    ENC(v, p, true, true, ids, n);
    CHECK(n >= 4);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 32010);
    CHECK_EQ_INT(ids[n - 1], 32001);
    CHECK_EQ_INT(ids[n - 2], 32007);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] != 13); /* "\n" after the specials is stripped (rstrip) */
    tok_vocab_free(v);
}

struct mt_arg {
    const struct tok_vocab *v;
    const char *text;
    const int32_t *expect;
    size_t n_expect;
    int bad;
};

static void *mt_worker(void *p)
{
    struct mt_arg *a = p;
    int32_t ids[256];
    for (int r = 0; r < 200; r++) {
        size_t n = 0;
        if (tok_encode(a->v, a->text, strlen(a->text), true, true, ids, 256, &n, NULL) != SP_OK ||
            !ids_eq(ids, n, a->expect, a->n_expect))
            a->bad++;
    }
    return NULL;
}

/* One vocab shared by several threads (the documented contract). */
TEST(shared_vocab_threads)
{
    struct tok_vocab *v = load_shared("tokenizer-vectors/ggml-vocab-llama-bpe.gguf");
    if (!v) {
        struct tv_mem m = {0};
        CHECK_EQ_INT(tv_build_bpe(&m), SP_OK);
        CHECK_EQ_INT(tok_vocab_load(m.f, &v, NULL), SP_OK);
        tv_free(&m);
    }
    const char *text = "Hello, y'all! How are you \xf0\x9f\x98\x81 ?\xe6\x88\x91 1314151 <|im_end|>";
    int32_t expect[256];
    size_t ne = 0;
    CHECK_EQ_INT(tok_encode(v, text, strlen(text), true, true, expect, 256, &ne, NULL), SP_OK);
    pthread_t th[4];
    struct mt_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct mt_arg){v, text, expect, ne, 0};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, mt_worker, &args[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += args[i].bad;
    }
    tok_vocab_free(v);
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(spm_merges_bytes_specials);
    RUN(bpe_merges_specials);
    RUN(stream_holds_partial_utf8);
    RUN(load_errors);
    RUN(alloc_failures_are_clean);
    RUN(real_llama_bpe);
    RUN(real_phi3_specials);
    RUN(shared_vocab_threads);
    return test_summary();
}
