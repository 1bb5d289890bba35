/* tok_decode.c - token ids back to text: per-token pieces (SPM U+2581 -> ' ',
 * <0xNN> byte tokens; BPE GPT-2 code points -> bytes), whole-sequence decode,
 * and the streaming decoder that only emits complete UTF-8 (an incomplete
 * tail is held in struct tok_stream until the next token completes it). */
#include <string.h>

#include "tok/tok_internal.h"

size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

size_t tok_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static size_t tok_put(char *buf, size_t bufsz, size_t pos, const char *s, size_t n)
{
    if (pos < bufsz)
        memcpy(buf + pos, s, SP_MIN(n, bufsz - pos));
    return pos + n;
}

static int tok_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t tok_piece(const struct tok_vocab *v, int32_t id, bool render_special, char *buf,
                 size_t bufsz)
{
    if (!v || id < 0 || id >= v->n)
        return 0;
    const struct tok_token *t = &v->toks[id];
    const char *s = v->arena + t->off;
    size_t n = t->len, pos = 0;
    if (t->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) {
        if (!render_special)
            return 0;
        return tok_put(buf, bufsz, 0, s, n);
    }
    if (t->attr & TOK_ATTR_USER_DEFINED)
        return tok_put(buf, bufsz, 0, s, n);
    if (v->kind != TOK_KIND_BPE) {
        if (t->attr & TOK_ATTR_BYTE) {
            int hi = n == 6 ? tok_hexval(s[3]) : -1, lo = n == 6 ? tok_hexval(s[4]) : -1;
            if (hi < 0 || lo < 0)
                return tok_put(buf, bufsz, 0, s, n);
            char c = (char)(hi * 16 + lo);
            return tok_put(buf, bufsz, 0, &c, 1);
        }
        if (!(t->attr & TOK_ATTR_NORMAL))
            return 0;
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                pos = tok_put(buf, bufsz, pos, " ", 1);
                i += 3;
            } else {
                pos = tok_put(buf, bufsz, pos, s + i, 1);
                i++;
            }
        }
        return pos;
    }
    if (!(t->attr & TOK_ATTR_NORMAL))
        return 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cl == 0) {
            pos = tok_put(buf, bufsz, pos, s + i, 1);
            i++;
            continue;
        }
        if (cp < SP_ARRAY_LEN(v->cp_byte) && v->cp_byte_ok[cp]) {
            char c = (char)v->cp_byte[cp];
            pos = tok_put(buf, bufsz, pos, &c, 1);
        } else {
            pos = tok_put(buf, bufsz, pos, s + i, cl);
        }
        i += cl;
    }
    return pos;
}

/* Piece of id appended to out; strip_space drops one leading ' '. Sets
 * *produced to whether any byte came out before stripping. */
static enum sp_status tok_piece_append(const struct tok_vocab *v, int32_t id,
                                       bool render_special, bool strip_space, struct sp_buf *out,
                                       bool *produced)
{
    char small[128];
    char *p = small;
    size_t n = tok_piece(v, id, render_special, small, sizeof(small));
    if (n > sizeof(small)) {
        p = sp_malloc(n);
        if (!p)
            return SP_ERR_NOMEM;
        (void)tok_piece(v, id, render_special, p, n);
    }
    *produced = n > 0;
    const char *s = p;
    if (strip_space && n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    int rc = n ? sp_buf_append(out, s, n) : 0;
    if (p != small)
        sp_free(p);
    return (enum sp_status)rc;
}

enum sp_status tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n,
                          bool render_special, struct sp_buf *out)
{
    if (!v || !out || (!ids && n))
        return SP_ERR_INVALID;
    bool strip = v->kind != TOK_KIND_BPE && v->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        bool produced = false;
        enum sp_status result = tok_piece_append(v, ids[i], render_special, strip, out, &produced);
        if (result != SP_OK)
            return result;
        if (produced)
            strip = false;
    }
    return SP_OK;
}

/* ---- streaming */

void tok_stream_init(struct tok_stream *s)
{
    memset(s, 0, sizeof(*s));
    s->first = false;
}

/* Length of the valid UTF-8 sequence at p (strict: no overlongs, surrogates or
 * > U+10FFFF); 0 if invalid; -1 if p[0..n) is a valid but incomplete prefix. */
static int tok_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    int len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -1;
        unsigned char b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
            return 0;
    }
    return len;
}

/* Append data, replacing invalid sequences by U+FFFD; an incomplete tail is
 * stored in s->pending. */
static enum sp_status tok_stream_emit(struct tok_stream *s, const unsigned char *d, size_t n,
                                      struct sp_buf *out)
{
    size_t i = 0, run = 0; /* run: start of the pending valid run */
    while (i < n) {
        int l = tok_utf8_seq(d + i, n - i);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        if (i > run && sp_buf_append(out, d + run, i - run) != 0)
            return SP_ERR_NOMEM;
        if (l < 0) { /* incomplete at the end: keep for the next token */
            s->n_pending = n - i;
            memcpy(s->pending, d + i, s->n_pending);
            return SP_OK;
        }
        if (sp_buf_append(out, "\xef\xbf\xbd", 3) != 0)
            return SP_ERR_NOMEM;
        i++;
        run = i;
    }
    if (i > run && sp_buf_append(out, d + run, i - run) != 0)
        return SP_ERR_NOMEM;
    return SP_OK;
}

enum sp_status tok_stream_push(const struct tok_vocab *v, struct tok_stream *s, int32_t id,
                               struct sp_buf *out)
{
    if (!v || !s || !out || s->n_pending > sizeof(s->pending))
        return SP_ERR_INVALID;
    /* pending bytes + piece, on the stack for ordinary tokens (no allocation per token) */
    char small[256];
    char *heap = NULL, *data = small;
    size_t np = s->n_pending;
    memcpy(small, s->pending, np);
    size_t n = tok_piece(v, id, false, small + np, sizeof(small) - np);
    if (n > sizeof(small) - np) {
        heap = sp_malloc(np + n);
        if (!heap)
            return SP_ERR_NOMEM;
        data = heap;
        memcpy(data, s->pending, np);
        (void)tok_piece(v, id, false, data + np, n);
    }
    if (n > 0 && s->first) {
        s->first = false;
        if (v->kind != TOK_KIND_BPE && v->add_space_prefix && data[np] == ' ') {
            memmove(data + 1, data, np); /* drop the space: shift the pending bytes over it */
            data++;
            n--;
        }
    }
    s->n_pending = 0;
    enum sp_status result = tok_stream_emit(s, (const unsigned char *)data, np + n, out);
    sp_free(heap);
    return result;
}

enum sp_status tok_stream_flush(struct tok_stream *s, struct sp_buf *out)
{
    if (!s || !out)
        return SP_ERR_INVALID;
    if (s->n_pending == 0)
        return SP_OK;
    s->n_pending = 0;
    return sp_buf_append(out, "\xef\xbf\xbd", 3) != 0 ? SP_ERR_NOMEM : SP_OK;
}
