/* tok_spm.c - SentencePiece-style ("llama") encoder, as llama.cpp does it.
 *
 * Spaces become U+2581 (with an optional leading one), the text is split into
 * UTF-8 characters, then the adjacent pair whose concatenation is the
 * highest-scoring vocabulary token is merged repeatedly (tok_heap keyed
 * by score, ties to the leftmost pair; stale entries are skipped by length).
 * Symbols that never became tokens fall back to <0xNN> byte tokens. */
#include <string.h>

#include "tok/tok_internal.h"

struct spm_sym {
    int32_t prev, next;
    uint32_t off, n; /* byte range in the prepared text; n = 0 once merged away */
};

static enum sp_status spm_try_bigram(const struct tok_vocab *v, const char *text,
                                     const struct spm_sym *syms, int32_t left, int32_t right,
                                     struct tok_heap *h)
{
    if (left < 0 || right < 0)
        return SP_OK;
    uint32_t size = syms[left].n + syms[right].n;
    int32_t id = tok_find(v, text + syms[left].off, size);
    if (id < 0)
        return SP_OK;
    struct tok_bigram b = {.key = v->toks[id].score, .left = left, .right = right, .size = size};
    return tok_heap_push(h, b);
}

/* llama.cpp unicode_len_utf8: length from the lead byte only. */
static size_t spm_char_len(unsigned char c)
{
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

enum sp_status tok_spm_encode(const struct tok_vocab *v, const char *text, size_t len,
                              bool prefix_space, struct tok_ids *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char *buf = NULL;
    struct spm_sym *syms = NULL;
    struct tok_heap heap = {0};

    /* prepared text: [space] + text, every ' ' -> U+2581 (3 bytes) */
    size_t cap;
    if (!sp_mul_size(len + 1, 3, &cap))
        return sp_err_set(err, SP_ERR_LIMIT, "text too long");
    buf = sp_malloc(cap);
    if (!buf)
        goto nomem;
    size_t n = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    if (n == 0)
        goto done;

    syms = sp_malloc(n * sizeof(*syms));
    if (!syms)
        goto nomem;
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = SP_MIN(spm_char_len((unsigned char)buf[off]), n - off);
        syms[ns] = (struct spm_sym){ns - 1, off + cl == n ? -1 : ns + 1, (uint32_t)off,
                                    (uint32_t)cl};
        ns++;
        off += cl;
    }
    for (int32_t i = 1; i < ns; i++)
        if (spm_try_bigram(v, buf, syms, i - 1, i, &heap) != SP_OK)
            goto nomem;
    while (heap.n) {
        struct tok_bigram b = tok_heap_pop(&heap);
        struct spm_sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        if (spm_try_bigram(v, buf, syms, l->prev, b.left, &heap) != SP_OK ||
            spm_try_bigram(v, buf, syms, b.left, l->next, &heap) != SP_OK)
            goto nomem;
    }
    for (int32_t i = 0; i != -1; i = syms[i].next) {
        const struct spm_sym *s = &syms[i];
        int32_t id = tok_find(v, buf + s->off, s->n);
        if (id >= 0) {
            if (tok_ids_push(out, id) != SP_OK)
                goto nomem;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            unsigned char c = (unsigned char)buf[s->off + j];
            int32_t bid = v->byte_tok[c];
            if (bid < 0) {
                char one = (char)c;
                bid = tok_find(v, &one, 1);
            }
            if (bid < 0)
                bid = v->unk;
            if (bid >= 0 && tok_ids_push(out, bid) != SP_OK)
                goto nomem;
        }
    }
    goto done;
nomem:
    result = sp_err_set(err, SP_ERR_NOMEM, "out of memory while tokenizing");
done:
    sp_free(heap.v);
    sp_free(syms);
    sp_free(buf);
    return result;
}
