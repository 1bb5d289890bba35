/* gguf_bytes.h - a raw little-endian byte builder for hand-made (and
 * deliberately malformed) GGUF files in tests. Header only; aborts the test
 * process on out-of-memory (tests only). */
#ifndef SPOKE_TEST_GGUF_BYTES_H
#define SPOKE_TEST_GGUF_BYTES_H

#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bb {
    uint8_t *p;
    size_t len, cap;
};

static inline void bb_raw(struct bb *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *np = sp_realloc(b->p, nc);
        if (!np) {
            fprintf(stderr, "bb: out of memory\n");
            exit(2);
        }
        b->p = np;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}
static inline void bb_u8(struct bb *b, uint8_t v) { bb_raw(b, &v, 1); }
static inline void bb_u32(struct bb *b, uint32_t v) { bb_raw(b, &v, 4); }
static inline void bb_u64(struct bb *b, uint64_t v) { bb_raw(b, &v, 8); }
static inline void bb_f32(struct bb *b, float v) { bb_raw(b, &v, 4); }
static inline void bb_str(struct bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static inline void bb_zeros(struct bb *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bb_u8(b, 0);
}
static inline void bb_pad(struct bb *b, size_t align)
{
    while (b->len % align)
        bb_u8(b, 0);
}
static inline void bb_free(struct bb *b)
{
    sp_free(b->p);
    memset(b, 0, sizeof(*b));
}

/* header: magic GGUF, version, counts */
static inline void bb_hdr(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static inline void bb_kv_u32(struct bb *b, const char *key, uint32_t v)
{
    bb_str(b, key);
    bb_u32(b, 4);
    bb_u32(b, v);
}
static inline void bb_kv_str(struct bb *b, const char *key, const char *v)
{
    bb_str(b, key);
    bb_u32(b, 8);
    bb_str(b, v);
}
/* tensor info with n_dims dims from ne */
static inline void bb_tinfo(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                            uint32_t type, uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

#endif
