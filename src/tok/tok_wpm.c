/* tok_wpm.c - WordPiece ("bert") encoder, as llama.cpp does it.
 *
 * Pre-tokenize: decode UTF-8 (invalid -> dropped), map every code point to
 * the first code point of its NFD form (strips accents), drop controls and
 * U+FFFD, lowercase, split on whitespace, and make every punctuation mark,
 * ASCII symbol and CJK ideograph a word of its own. Each word, prefixed with
 * U+2581 (the GGUF converter's word-start marker; continuation pieces are
 * stored without "##"), is split greedily into the longest vocabulary
 * matches; a word with an unmatched position becomes the unknown token. */
#include <string.h>

#include "tok/tok_internal.h"
#include "tok/tok_unicode.h"

static bool wpm_is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Match one word (w[0..n), already "\u2581"-prefixed) and append its ids. */
static enum sp_status wpm_word(const struct tok_vocab *v, const char *w, size_t n,
                               struct tok_ids *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = SP_MIN(n, i + v->max_token_len);
        int32_t id = -1;
        for (; j > i; j--) {
            id = tok_find(v, w + i, j - i);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            out->n = start; /* discard the word's pieces */
            break;
        }
        if (tok_ids_push(out, id) != SP_OK)
            return SP_ERR_NOMEM;
        i = j;
    }
    if (out->n == start && v->unk >= 0 && tok_ids_push(out, v->unk) != SP_OK)
        return SP_ERR_NOMEM;
    return SP_OK;
}

enum sp_status tok_wpm_encode(const struct tok_vocab *v, const char *text, size_t len,
                              struct tok_ids *out, struct sp_err *err)
{
    /* words are built one at a time in buf: "\u2581" + up to 4 bytes per input byte */
    size_t cap;
    if (!sp_mul_size(len, 4, &cap) || !sp_add_size(cap, 8, &cap))
        return sp_err_set(err, SP_ERR_LIMIT, "text too long");
    char *buf = sp_malloc(cap);
    if (!buf)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory while tokenizing");
    enum sp_status result = SP_OK;
    size_t wl = 0; /* bytes of the current word after the marker */
    memcpy(buf, "\xe2\x96\x81", 3);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i <= len && result == SP_OK;) {
        uint32_t cp = 0;
        bool end = i == len;
        if (!end) {
            size_t cl = tok_utf8_decode(s + i, len - i, &cp);
            if (cl == 0) {
                cp = 0xFFFD;
                cl = 1;
            }
            i += cl;
            cp = tok_unfd_first(cp);
        } else {
            i++;
        }
        enum tok_ucat cat = end ? TOK_UCAT_UNDEFINED : tok_ucat(cp);
        bool space = !end && tok_uspace(cp);
        if (!end && !space && (cp == 0 || cp == 0xFFFD || cat == TOK_UCAT_CONTROL))
            continue;
        bool single = !end && !space &&
                      (cat == TOK_UCAT_PUNCT || (cp < 0x7F && cat == TOK_UCAT_SYMBOL) ||
                       wpm_is_cjk(cp));
        if ((end || space || single) && wl > 0) {
            result = wpm_word(v, buf, 3 + wl, out);
            wl = 0;
        }
        if (end || space)
            continue;
        wl += tok_utf8_encode(tok_ulower(cp), buf + 3 + wl);
        if (single) {
            result = wpm_word(v, buf, 3 + wl, out);
            wl = 0;
        }
    }
    if (result == SP_ERR_NOMEM)
        sp_err_set(err, SP_ERR_NOMEM, "out of memory while tokenizing");
    sp_free(buf);
    return result;
}
