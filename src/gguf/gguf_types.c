/* gguf_types.c - the table of ggml tensor types (names and block geometry as
 * ggml defines them), type-name parsing, row and metadata value sizes, and the
 * string index (open addressing, linear probing) used by the reader and the
 * writer. */
#include "gguf/gguf_internal.h"

#include <strings.h>

static const struct gg_type_info type_table[GG_TYPE_COUNT] = {
    [GG_TYPE_F32] = {"F32", 1, 4},
    [GG_TYPE_F16] = {"F16", 1, 2},
    [GG_TYPE_Q4_0] = {"Q4_0", 32, 18},
    [GG_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [GG_TYPE_Q5_0] = {"Q5_0", 32, 22},
    [GG_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [GG_TYPE_Q8_0] = {"Q8_0", 32, 34},
    [GG_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [GG_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [GG_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [GG_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [GG_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [GG_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [GG_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [GG_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [GG_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GG_TYPE_BF16] = {"BF16", 1, 2},
};

bool gg_type_info(enum gg_type type, struct gg_type_info *out)
{
    if ((unsigned)type >= GG_TYPE_COUNT || !type_table[type].name)
        return false;
    if (out)
        *out = type_table[type];
    return true;
}

const char *gg_type_name(enum gg_type type)
{
    if ((unsigned)type >= GG_TYPE_COUNT || !type_table[type].name)
        return "?";
    return type_table[type].name;
}

bool gg_type_parse(const char *name, enum gg_type *out)
{
    if (!name)
        return false;
    for (unsigned t = 0; t < GG_TYPE_COUNT; t++) {
        if (type_table[t].name && strcasecmp(type_table[t].name, name) == 0) {
            if (out)
                *out = (enum gg_type)t;
            return true;
        }
    }
    return false;
}

bool gg_row_size(enum gg_type type, int64_t n, size_t *out)
{
    struct gg_type_info ti;
    if (!gg_type_info(type, &ti) || n < 0 || n % ti.blck_size != 0)
        return false;
    size_t bytes;
    if (!sp_mul_size((size_t)(n / ti.blck_size), ti.type_size, &bytes))
        return false;
    if (out)
        *out = bytes;
    return true;
}

size_t gg_val_size(enum gg_value_type t)
{
    switch (t) {
    case GG_VAL_U8: case GG_VAL_I8: case GG_VAL_BOOL: return 1;
    case GG_VAL_U16: case GG_VAL_I16: return 2;
    case GG_VAL_U32: case GG_VAL_I32: case GG_VAL_F32: return 4;
    case GG_VAL_U64: case GG_VAL_I64: case GG_VAL_F64: return 8;
    default: return 0;
    }
}

/* ---- string index */

enum sp_status gg_index_init(struct gg_index *ix, size_t expected, uint64_t seed)
{
    memset(ix, 0, sizeof(*ix));
    size_t cap = 16;
    while (cap / 2 < expected) {
        if (cap > (SIZE_MAX / 4) / sizeof(uint64_t))
            return SP_ERR_NOMEM;
        cap *= 2;
    }
    ix->hashes = sp_calloc(cap, sizeof(uint64_t));
    ix->slots = sp_calloc(cap, sizeof(uint32_t));
    if (!ix->hashes || !ix->slots) {
        gg_index_free(ix);
        return SP_ERR_NOMEM;
    }
    ix->mask = cap - 1;
    ix->seed = seed;
    return SP_OK;
}

void gg_index_free(struct gg_index *ix)
{
    if (!ix)
        return;
    sp_free(ix->hashes);
    sp_free(ix->slots);
    memset(ix, 0, sizeof(*ix));
}

static bool index_same(struct gg_str s, const char *name, size_t len)
{
    return s.len == len && (len == 0 || memcmp(s.ptr, name, len) == 0);
}

int64_t gg_index_find(const struct gg_index *ix, const char *name, size_t len,
                      gg_index_name_fn get, const void *ctx)
{
    if (!ix->slots)
        return -1;
    uint64_t h = gg_hash_bytes(name, len, ix->seed);
    for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        uint32_t s = ix->slots[i];
        if (s == 0)
            return -1;
        if (ix->hashes[i] == h && index_same(get(ctx, s - 1), name, len))
            return (int64_t)(s - 1);
    }
}

static enum sp_status index_grow(struct gg_index *ix)
{
    size_t cap = (ix->mask + 1) * 2;
    uint64_t *hashes = sp_calloc(cap, sizeof(uint64_t));
    uint32_t *slots = sp_calloc(cap, sizeof(uint32_t));
    if (!hashes || !slots) {
        sp_free(hashes);
        sp_free(slots);
        return SP_ERR_NOMEM;
    }
    for (size_t i = 0; i <= ix->mask; i++) {
        if (!ix->slots[i])
            continue;
        size_t j = ix->hashes[i] & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = ix->slots[i];
        hashes[j] = ix->hashes[i];
    }
    sp_free(ix->hashes);
    sp_free(ix->slots);
    ix->hashes = hashes;
    ix->slots = slots;
    ix->mask = cap - 1;
    return SP_OK;
}

enum sp_status gg_index_insert(struct gg_index *ix, const char *name, size_t len, uint32_t pos,
                               gg_index_name_fn get, const void *ctx, int64_t *existing)
{
    enum sp_status result;
    *existing = -1;
    if ((ix->count + 1) * 2 > ix->mask + 1) {
        result = index_grow(ix);
        if (result != SP_OK)
            return result;
    }
    uint64_t h = gg_hash_bytes(name, len, ix->seed);
    size_t i = h & ix->mask;
    for (;; i = (i + 1) & ix->mask) {
        uint32_t s = ix->slots[i];
        if (s == 0)
            break;
        if (ix->hashes[i] == h && index_same(get(ctx, s - 1), name, len)) {
            *existing = (int64_t)(s - 1);
            return SP_OK;
        }
    }
    ix->slots[i] = pos + 1;
    ix->hashes[i] = h;
    ix->count++;
    return SP_OK;
}
