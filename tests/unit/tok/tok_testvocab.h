/* tok_testvocab.h - small synthetic tokenizer vocabularies written as GGUF in
 * memory (via gg_writer), for the tok unit tests and the fuzz_tok harness,
 * and the loader of a vocabulary from a GGUF file. */
#ifndef SPOKE_TOK_TESTVOCAB_H
#define SPOKE_TOK_TESTVOCAB_H

#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "tok/tok.h"

struct tv_mem {
    void *data;
    size_t size;
    struct gg_file *f;
};

static void tv_free(struct tv_mem *m)
{
    gg_close(m->f);
    sp_free(m->data);
    memset(m, 0, sizeof(*m));
}

/* The vocabulary of the GGUF file at path; NULL if it cannot be opened or loaded. */
static struct tok_vocab *tv_load_file(const char *path)
{
    struct gg_file *f = NULL;
    struct tok_vocab *v = NULL;
    if (gg_open(path, &f, NULL) != SP_OK)
        return NULL;
    if (tok_vocab_load(f, &v, NULL) != SP_OK)
        v = NULL;
    gg_close(f);
    return v;
}

static size_t tv_utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* SPM: <unk> <s> </s>, 256 byte tokens, a few pieces with scores, one
 * control token <|user|> and one user-defined token <tool>. */
static enum sp_status tv_build_spm(struct tv_mem *m)
{
    enum { NB = 256 };
    static const char *const extra[] = {
        "\xe2\x96\x81", "a", "b", "c", "\xe2\x96\x81" "a", "ab", "abc", "\xe2\x96\x81" "abc",
        "h", "e", "l", "o", "he", "ll", "hell", "hello", "\xe2\x96\x81hello", "<|user|>", "<tool>",
    };
    const size_t n = 3 + NB + SP_ARRAY_LEN(extra);
    char bytes[NB][8];
    const char *toks[3 + NB + SP_ARRAY_LEN(extra)];
    float scores[3 + NB + SP_ARRAY_LEN(extra)];
    int32_t types[3 + NB + SP_ARRAY_LEN(extra)];
    toks[0] = "<unk>"; types[0] = 2; scores[0] = 0;
    toks[1] = "<s>"; types[1] = 3; scores[1] = 0;
    toks[2] = "</s>"; types[2] = 3; scores[2] = 0;
    for (int b = 0; b < NB; b++) {
        snprintf(bytes[b], sizeof(bytes[b]), "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = 6;
        scores[3 + b] = 0;
    }
    for (size_t i = 0; i < SP_ARRAY_LEN(extra); i++) {
        size_t k = 3 + NB + i;
        toks[k] = extra[i];
        types[k] = 1;
        scores[k] = -100.0f + (float)strlen(extra[i]);
    }
    types[n - 2] = 3; /* <|user|> */
    types[n - 1] = 4; /* <tool> */
    struct gg_writer *w = gg_writer_new();
    if (!w)
        return SP_ERR_NOMEM;
    enum sp_status result = SP_OK;
    if ((result = gg_writer_add_kv_str(w, "general.architecture", "llama")) != SP_OK ||
        (result = gg_writer_add_kv_str(w, "tokenizer.ggml.model", "llama")) != SP_OK ||
        (result = gg_writer_add_kv_arr_str(w, "tokenizer.ggml.tokens", toks, n)) != SP_OK ||
        (result = gg_writer_add_kv_arr(w, "tokenizer.ggml.scores", GG_VAL_F32, scores, n)) != SP_OK ||
        (result = gg_writer_add_kv_arr(w, "tokenizer.ggml.token_type", GG_VAL_I32, types, n)) != SP_OK ||
        (result = gg_writer_add_kv_u32(w, "tokenizer.ggml.bos_token_id", 1)) != SP_OK ||
        (result = gg_writer_add_kv_u32(w, "tokenizer.ggml.eos_token_id", 2)) != SP_OK)
        goto done;
    result = gg_writer_write_mem(w, NULL, NULL, &m->data, &m->size, NULL);
    if (result == SP_OK)
        result = gg_open_memory(m->data, m->size, &m->f, NULL);
done:
    gg_writer_free(w);
    return result;
}

/* Byte-level BPE ("gpt-2" pre-tokenizer): the 256 GPT-2 byte characters,
 * merges building "hello", " world" and "\n\n", plus <|endoftext|> (control)
 * and <|im_end|> (control). */
static enum sp_status tv_build_bpe(struct tv_mem *m)
{
    enum { NB = 256 };
    static const char *const merges[] = {
        "h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d", "\xc4\xa0wor ld",
        "\xc4\x8a \xc4\x8a",
    };
    static const char *const extra[] = {
        "he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld", "\xc4\xa0world",
        "\xc4\x8a\xc4\x8a", "<|endoftext|>", "<|im_end|>",
    };
    const size_t n = NB + SP_ARRAY_LEN(extra);
    char bytes[NB][4];
    const char *toks[NB + SP_ARRAY_LEN(extra)];
    int32_t types[NB + SP_ARRAY_LEN(extra)];
    int extra_cp = 0;
    for (int b = 0; b < NB; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + extra_cp++);
        size_t l = tv_utf8(cp, bytes[b]);
        bytes[b][l] = '\0';
        toks[b] = bytes[b];
        types[b] = 1;
    }
    for (size_t i = 0; i < SP_ARRAY_LEN(extra); i++) {
        toks[NB + i] = extra[i];
        types[NB + i] = 1;
    }
    types[n - 2] = 3;
    types[n - 1] = 3;
    struct gg_writer *w = gg_writer_new();
    if (!w)
        return SP_ERR_NOMEM;
    enum sp_status result = SP_OK;
    if ((result = gg_writer_add_kv_str(w, "general.architecture", "gpt2")) != SP_OK ||
        (result = gg_writer_add_kv_str(w, "tokenizer.ggml.model", "gpt2")) != SP_OK ||
        (result = gg_writer_add_kv_str(w, "tokenizer.ggml.pre", "gpt-2")) != SP_OK ||
        (result = gg_writer_add_kv_arr_str(w, "tokenizer.ggml.tokens", toks, n)) != SP_OK ||
        (result = gg_writer_add_kv_arr(w, "tokenizer.ggml.token_type", GG_VAL_I32, types, n)) != SP_OK ||
        (result = gg_writer_add_kv_arr_str(w, "tokenizer.ggml.merges", merges,
                                           SP_ARRAY_LEN(merges))) != SP_OK ||
        (result = gg_writer_add_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 2))) != SP_OK ||
        (result = gg_writer_add_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 2))) != SP_OK)
        goto done;
    result = gg_writer_write_mem(w, NULL, NULL, &m->data, &m->size, NULL);
    if (result == SP_OK)
        result = gg_open_memory(m->data, m->size, &m->f, NULL);
done:
    gg_writer_free(w);
    return result;
}

#endif
