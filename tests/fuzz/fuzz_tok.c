/* fuzz_tok.c - libFuzzer harness for src/tok: random bytes are tokenized by
 * an SPM and a BPE vocabulary (stories260K.gguf and ggml-vocab-gpt-2.gguf
 * from SPOKE_SHARED when present, else in-memory synthetic vocabularies) and
 * by the WordPiece ggml-vocab-bert-bge.gguf when present (no round trip: it
 * normalizes),
 * with the flags taken from the first byte. Checks: no crash; for valid UTF-8
 * without special parsing, decode(encode(x)) == x and the streaming decoder
 * agrees and emits valid UTF-8; chat detection/rendering on the same bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "tok/tok.h"
#include "unit/tok/tok_testvocab.h"

static struct tok_vocab *g_vocab[3]; /* 0: SPM, 1: BPE, 2: WordPiece (optional) */

static struct tok_vocab *load_path(const char *rel)
{
    const char *shared = getenv("SPOKE_SHARED");
    if (!shared)
        return NULL;
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", shared, rel);
    return tv_load_file(p);
}

static struct tok_vocab *load_synth(bool bpe)
{
    struct tv_mem m = {0};
    struct tok_vocab *v = NULL;
    if ((bpe ? tv_build_bpe(&m) : tv_build_spm(&m)) == SP_OK && tok_vocab_load(m.f, &v, NULL) != SP_OK)
        v = NULL;
    tv_free(&m);
    return v;
}

static void init_once(void)
{
    if (g_vocab[0] || g_vocab[1])
        return;
    g_vocab[0] = load_path("models/stories260K.gguf");
    if (!g_vocab[0])
        g_vocab[0] = load_synth(false);
    g_vocab[1] = load_path("tokenizer-vectors/ggml-vocab-gpt-2.gguf");
    if (!g_vocab[1])
        g_vocab[1] = load_synth(true);
    if (!g_vocab[0] || !g_vocab[1])
        abort();
    g_vocab[2] = load_path("tokenizer-vectors/ggml-vocab-bert-bge.gguf");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    bool wpm = (flags & 8) && g_vocab[2];
    struct tok_vocab *v = wpm ? g_vocab[2] : g_vocab[flags & 1];
    bool add_special = flags & 2, parse_special = flags & 4;

    size_t cap = len + 8, n = 0;
    int32_t *ids = sp_malloc(cap * sizeof(*ids));
    if (!ids)
        return 0;
    enum sp_status st = tok_encode(v, text, len, add_special, parse_special, ids, cap, &n, NULL);
    if (st != SP_OK && st != SP_ERR_LIMIT && st != SP_ERR_NOMEM)
        abort();
    if (st == SP_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= tok_n_vocab(v))
                abort();
        struct sp_buf d = {0}, s = {0};
        if (tok_decode(v, ids, n, false, &d) != SP_OK)
            abort();
        struct tok_stream ts;
        tok_stream_init(&ts);
        ts.first = true;
        for (size_t i = 0; i < n; i++)
            if (tok_stream_push(v, &ts, ids[i], &s) != SP_OK)
                abort();
        if (tok_stream_flush(&ts, &s) != SP_OK)
            abort();
        if (s.len && !sp_utf8_valid(s.data, s.len))
            abort();
        /* every byte is representable in both vocabularies, except that SPM
         * cannot tell U+2581 from a space */
        bool representable = !wpm && sp_utf8_valid(text, len) &&
                             !((flags & 1) == 0 && memmem(text, len, "\xe2\x96\x81", 3));
        if (!parse_special && representable) {
            if (d.len != len || (len && memcmp(d.data, text, len) != 0))
                abort();
            if (s.len != len || (len && memcmp(s.data, text, len) != 0))
                abort();
        }
        char piece[8];
        for (size_t i = 0; i < n && i < 16; i++)
            (void)tok_piece(v, ids[i], true, piece, sizeof(piece));
        sp_buf_free(&d);
        sp_buf_free(&s);
    }
    sp_free(ids);

    /* chat templates: detect on the raw bytes (NUL-terminated copy) and render them */
    char *t = sp_strndup(text, len);
    if (t) {
        enum tok_chat_family f = tok_chat_detect(t);
        struct tok_chat_msg msgs[] = {{"system", t}, {"user", t}, {"assistant", t}, {"tool", t}, {"assistant", t}};
        struct sp_buf out = {0};
        out.limit = 1 << 20;
        (void)tok_chat_render(f, msgs, 3, true, "<s>", "</s>", &out, NULL);
        sp_buf_free(&out);
        /* qwen3 splits assistant turns at <think> / </think>, in history and last */
        struct sp_buf q = {0};
        q.limit = 1 << 20;
        (void)tok_chat_render(TOK_CHAT_QWEN3, msgs, SP_ARRAY_LEN(msgs), true, NULL, NULL, &q, NULL);
        sp_buf_free(&q);
        sp_free(t);
    }
    return 0;
}
