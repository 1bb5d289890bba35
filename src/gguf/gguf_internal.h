/* gguf_internal.h - pieces shared by the GGUF reader and writer (not public):
 * scalar value sizes, a seeded string hash and an open-addressing index from
 * names to positions, so duplicate keys / tensor names are found in linear time. */
#ifndef SPOKE_GGUF_INTERNAL_H
#define SPOKE_GGUF_INTERNAL_H

#include "gguf/gguf.h"

#include <string.h>

/* 64-bit hash of n bytes, keyed by seed (multiply-xorshift over 8-byte words). */
static inline uint64_t gg_hash_bytes(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h ^= w * 0xBF58476D1CE4E5B9ull;
        h = (h << 27 | h >> 37) * 0x94D049BB133111EBull;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h ^= w * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

/* Bytes of one scalar of type t (for arrays: of one element); 0 for strings,
 * arrays and unknown types. */
size_t gg_val_size(enum gg_value_type t);

/* Index of names: slots hold (hash, position + 1); 0 = empty. The names are
 * owned by the caller and found through the callback. */
struct gg_index {
    uint64_t *hashes;
    uint32_t *slots;
    size_t mask; /* capacity - 1 (power of two) */
    size_t count;
    uint64_t seed;
};

typedef struct gg_str (*gg_index_name_fn)(const void *ctx, uint32_t pos);

enum sp_status gg_index_init(struct gg_index *ix, size_t expected, uint64_t seed) SP_MUST_USE;
void gg_index_free(struct gg_index *ix);
/* Find name; returns the position or -1. */
int64_t gg_index_find(const struct gg_index *ix, const char *name, size_t len,
                      gg_index_name_fn get, const void *ctx);
/* Insert pos under name unless present. Returns SP_OK and sets *existing to -1
 * when inserted, or SP_OK with *existing = the old position; SP_ERR_NOMEM when
 * growing fails. */
enum sp_status gg_index_insert(struct gg_index *ix, const char *name, size_t len, uint32_t pos,
                               gg_index_name_fn get, const void *ctx, int64_t *existing) SP_MUST_USE;

/* What a file was when gg_open mapped it (gguf_guard.c): its identity, to
 * notice a change, and its slot in the SIGBUS guard's registry. */
struct gg_ident {
    char *path;         /* as opened (owned); NULL for gg_open_memory */
    uint64_t dev, ino;
    uint64_t size;      /* bytes */
    int64_t mtime_ns;
    int guard;          /* registry slot, -1 = none */
};
const struct gg_ident *gg_file_ident(const struct gg_file *f);
/* Fill id from st (path and guard untouched). */
void gg_ident_from_stat(struct gg_ident *id, const void *st);
/* The SIGBUS guard's registry (gguf_guard.c): slot or -1 when full. */
int gg_guard_register(const void *base, size_t len);
void gg_guard_unregister(int slot);
unsigned gg_guard_faults(int slot);

#endif
