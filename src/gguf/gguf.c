/* gguf.c - the bounded GGUF reader (format in gguf.h).
 *
 * How: the file is mapped read-only (or a caller buffer is used) and parsed
 * once, front to back, with a cursor {pos, size} whose every read is checked
 * against the end. Counts from the file are first bounded by the bytes left
 * (each record has a minimum size) and by the caps in gguf.h, so nothing
 * is allocated in proportion to a number the file merely claims. Keys and
 * tensor names go into seeded hash indexes (duplicates rejected in linear
 * time); tensor extents are sorted by offset to reject overlaps. Each problem
 * becomes one sp_err with the code, the file offset and the key/tensor name.
 * After open the object is immutable, so concurrent readers are safe. */
#include "gguf/gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GG_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GG_DEFAULT_ALIGNMENT 32u
#define GG_MIN_KV_BYTES 13u     /* key len (8) + 1 key byte + type (4) + smallest value (>=1)... */
#define GG_MIN_TENSOR_BYTES 33u /* name len + 1 byte + n_dims + ne[0] + type + offset */

struct gg_kv {
    struct gg_str key;     /* must stay first: the index reads names through it */
    uint64_t key_off;      /* file offset of the key record */
    uint64_t val_off;      /* file offset of the value (after the type word) */
    uint64_t val_end;      /* file offset just past the value */
    enum gg_value_type type;
    union {
        uint64_t u; /* U8..U64 */
        int64_t i;  /* I8..I64 */
        double f;   /* F32/F64 */
        bool b;
        struct gg_str s;
    } v;
    enum gg_value_type arr_type; /* arrays: element type */
    uint64_t arr_count;          /* arrays: element count */
    uint64_t arr_data;           /* arrays: offset of the first element */
    uint64_t *str_offs;          /* string arrays: offset of each element's length */
};

struct gg_file {
    const uint8_t *base;
    size_t size;
    bool mapped;
    struct gg_ident ident; /* gg_open: identity + SIGBUS guard slot (gguf_guard.c) */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start;
    struct gg_kv *kvs;
    size_t n_kv;
    struct gg_tensor *tensors;
    uint64_t *tensor_info_off; /* file offset of each tensor record */
    size_t n_tensors;
    struct gg_index kv_index;
    struct gg_index tensor_index;
};

struct cur {
    const uint8_t *base;
    uint64_t pos;
    uint64_t size;
};

/* ---- errors */

static void ctx_copy(char *dst, size_t dstsz, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < dstsz; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[j] = '\0';
}

static enum sp_status SP_PRINTF(6, 7) gg_fail(struct sp_err *err, enum sp_status code, uint64_t off,
                                              const char *name, size_t name_len, const char *fmt, ...)
{
    if (!err)
        return code;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    err->code = code;
    err->offset = (long long)off;
    err->context[0] = '\0';
    if (name)
        ctx_copy(err->context, sizeof(err->context), name, name_len);
    if (err->context[0])
        snprintf(err->msg, sizeof(err->msg), "GGUF: %.300s ('%.120s', at file offset %llu)", what,
                 err->context, (unsigned long long)off);
    else
        snprintf(err->msg, sizeof(err->msg), "GGUF: %.400s (at file offset %llu)", what,
                 (unsigned long long)off);
    return code;
}

#define TRUNC(err, c, nm, nl, what)                                                          \
    gg_fail(err, SP_ERR_FORMAT, (c)->pos, nm, nl, "file truncated while reading %s (size %llu)", \
            what, (unsigned long long)(c)->size)

/* ---- cursor */

static uint64_t cur_left(const struct cur *c) { return c->size - c->pos; }

static bool cur_read(struct cur *c, void *dst, size_t n)
{
    if (cur_left(c) < n)
        return false;
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return true;
}

static bool cur_u32(struct cur *c, uint32_t *v) { return cur_read(c, v, 4); }
static bool cur_u64(struct cur *c, uint64_t *v) { return cur_read(c, v, 8); }

static const char *val_type_name(enum gg_value_type t)
{
    static const char *const names[GG_VAL_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                     "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < GG_VAL_COUNT ? names[t] : "?";
}

/* Read a gguf_string; name/nlen give context for errors. */
static enum sp_status cur_str(struct cur *c, uint64_t cap, struct gg_str *out, const char *what,
                              const char *nm, size_t nl, struct sp_err *err)
{
    uint64_t at = c->pos, len;
    if (!cur_u64(c, &len))
        return TRUNC(err, c, nm, nl, what);
    if (len > cap)
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "%s length %llu exceeds the limit %llu", what,
                       (unsigned long long)len, (unsigned long long)cap);
    if (len > cur_left(c))
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl,
                       "%s length %llu runs past the end of the file", what, (unsigned long long)len);
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += len;
    return SP_OK;
}

/* ---- values */

static enum sp_status parse_value(struct cur *c, enum gg_value_type t, unsigned depth,
                                  struct gg_kv *kv, struct sp_err *err);

/* Parse array contents (after elem type + count): validates every element. */
static enum sp_status parse_array_body(struct cur *c, enum gg_value_type et, uint64_t count,
                                       unsigned depth, struct gg_kv *kv, uint64_t *str_offs,
                                       struct sp_err *err)
{
    const char *nm = kv->key.ptr;
    size_t nl = kv->key.len;
    size_t es = gg_val_size(et);
    if (es) {
        uint64_t bytes;
        if (!sp_mul_u64(count, es, &bytes) || bytes > cur_left(c))
            return gg_fail(err, SP_ERR_FORMAT, c->pos, nm, nl,
                           "array of %llu %s elements runs past the end of the file",
                           (unsigned long long)count, val_type_name(et));
        if (et == GG_VAL_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (c->base[c->pos + i] > 1)
                    return gg_fail(err, SP_ERR_FORMAT, c->pos + i, nm, nl,
                                   "bool array element %llu has value %u (must be 0 or 1)",
                                   (unsigned long long)i, c->base[c->pos + i]);
        }
        c->pos += bytes;
        return SP_OK;
    }
    /* strings need >= 8 bytes each, arrays >= 12: bound count before looping */
    uint64_t min_each = et == GG_VAL_STRING ? 8 : 12;
    if (count > cur_left(c) / min_each)
        return gg_fail(err, SP_ERR_FORMAT, c->pos, nm, nl,
                       "array of %llu %s elements runs past the end of the file",
                       (unsigned long long)count, val_type_name(et));
    for (uint64_t i = 0; i < count; i++) {
        if (et == GG_VAL_STRING) {
            struct gg_str s;
            if (str_offs)
                str_offs[i] = c->pos;
            enum sp_status result = cur_str(c, GG_MAX_STRING_LEN, &s, "array string", nm, nl, err);
            if (result != SP_OK)
                return result;
        } else {
            struct gg_kv inner = {.key = kv->key};
            enum sp_status result = parse_value(c, GG_VAL_ARRAY, depth + 1, &inner, err);
            if (result != SP_OK)
                return result;
        }
    }
    return SP_OK;
}

/* Parse a value of type t at the cursor into kv (scalars, strings, arrays). */
static enum sp_status parse_value(struct cur *c, enum gg_value_type t, unsigned depth,
                                  struct gg_kv *kv, struct sp_err *err)
{
    const char *nm = kv->key.ptr;
    size_t nl = kv->key.len;
    uint64_t at = c->pos;
    switch (t) {
    case GG_VAL_U8: case GG_VAL_U16: case GG_VAL_U32: case GG_VAL_U64: {
        uint64_t v = 0;
        if (!cur_read(c, &v, gg_val_size(t)))
            return TRUNC(err, c, nm, nl, "a value");
        kv->v.u = v;
        return SP_OK;
    }
    case GG_VAL_I8: { int8_t v; if (!cur_read(c, &v, 1)) return TRUNC(err, c, nm, nl, "a value"); kv->v.i = v; return SP_OK; }
    case GG_VAL_I16: { int16_t v; if (!cur_read(c, &v, 2)) return TRUNC(err, c, nm, nl, "a value"); kv->v.i = v; return SP_OK; }
    case GG_VAL_I32: { int32_t v; if (!cur_read(c, &v, 4)) return TRUNC(err, c, nm, nl, "a value"); kv->v.i = v; return SP_OK; }
    case GG_VAL_I64: { int64_t v; if (!cur_read(c, &v, 8)) return TRUNC(err, c, nm, nl, "a value"); kv->v.i = v; return SP_OK; }
    case GG_VAL_F32: { float v; if (!cur_read(c, &v, 4)) return TRUNC(err, c, nm, nl, "a value"); kv->v.f = v; return SP_OK; }
    case GG_VAL_F64: { double v; if (!cur_read(c, &v, 8)) return TRUNC(err, c, nm, nl, "a value"); kv->v.f = v; return SP_OK; }
    case GG_VAL_BOOL: {
        uint8_t v;
        if (!cur_read(c, &v, 1))
            return TRUNC(err, c, nm, nl, "a value");
        if (v > 1)
            return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "bool value %u (must be 0 or 1)", v);
        kv->v.b = v != 0;
        return SP_OK;
    }
    case GG_VAL_STRING:
        return cur_str(c, GG_MAX_STRING_LEN, &kv->v.s, "string value", nm, nl, err);
    case GG_VAL_ARRAY: {
        if (depth >= GG_MAX_ARRAY_DEPTH)
            return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "arrays nested deeper than %u",
                           GG_MAX_ARRAY_DEPTH);
        uint32_t et;
        uint64_t count;
        if (!cur_u32(c, &et))
            return TRUNC(err, c, nm, nl, "an array element type");
        if (et >= GG_VAL_COUNT)
            return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "unknown array element type %u", et);
        if (!cur_u64(c, &count))
            return TRUNC(err, c, nm, nl, "an array length");
        if (count > GG_MAX_ARRAY_LEN)
            return gg_fail(err, SP_ERR_FORMAT, at + 4, nm, nl,
                           "array length %llu exceeds the limit %llu", (unsigned long long)count,
                           (unsigned long long)GG_MAX_ARRAY_LEN);
        kv->arr_type = (enum gg_value_type)et;
        kv->arr_count = count;
        kv->arr_data = c->pos;
        uint64_t *offs = NULL;
        if (depth == 0 && et == GG_VAL_STRING && count > 0) {
            if (count > cur_left(c) / 8)
                return gg_fail(err, SP_ERR_FORMAT, c->pos, nm, nl,
                               "array of %llu string elements runs past the end of the file",
                               (unsigned long long)count);
            offs = sp_calloc((size_t)count, sizeof(uint64_t));
            if (!offs)
                return gg_fail(err, SP_ERR_NOMEM, at, nm, nl, "out of memory indexing a string array");
            kv->str_offs = offs;
        }
        return parse_array_body(c, (enum gg_value_type)et, count, depth, kv, offs, err);
    }
    default:
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "unknown value type %u", (unsigned)t);
    }
}

static struct gg_str kv_name_at(const void *ctx, uint32_t pos)
{
    return ((const struct gg_file *)ctx)->kvs[pos].key;
}

static struct gg_str tensor_name_at(const void *ctx, uint32_t pos)
{
    return ((const struct gg_file *)ctx)->tensors[pos].name;
}

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

static enum sp_status parse_kvs(struct gg_file *f, struct cur *c, uint64_t n_kv, struct sp_err *err)
{
    enum sp_status result;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct gg_kv *kv = &f->kvs[i];
        kv->key_off = c->pos;
        result = cur_str(c, GG_MAX_KEY_LEN, &kv->key, "key", NULL, 0, err);
        if (result != SP_OK)
            return result;
        if (kv->key.len == 0)
            return gg_fail(err, SP_ERR_FORMAT, kv->key_off, NULL, 0, "empty key (key %llu)",
                           (unsigned long long)i);
        f->n_kv = i + 1; /* so kv i is freed on failure */
        int64_t dup;
        result = gg_index_insert(&f->kv_index, kv->key.ptr, kv->key.len, (uint32_t)i, kv_name_at, f,
                                 &dup);
        if (result != SP_OK)
            return gg_fail(err, result, kv->key_off, kv->key.ptr, kv->key.len, "out of memory");
        if (dup >= 0)
            return gg_fail(err, SP_ERR_FORMAT, kv->key_off, kv->key.ptr, kv->key.len,
                           "duplicate key (first at offset %llu)",
                           (unsigned long long)f->kvs[dup].key_off);
        uint32_t t;
        uint64_t tat = c->pos;
        if (!cur_u32(c, &t))
            return TRUNC(err, c, kv->key.ptr, kv->key.len, "a value type");
        if (t >= GG_VAL_COUNT)
            return gg_fail(err, SP_ERR_FORMAT, tat, kv->key.ptr, kv->key.len, "unknown value type %u", t);
        kv->type = (enum gg_value_type)t;
        kv->val_off = c->pos;
        result = parse_value(c, kv->type, 0, kv, err);
        if (result != SP_OK)
            return result;
        kv->val_end = c->pos;
    }
    return SP_OK;
}

static enum sp_status parse_alignment(struct gg_file *f, struct sp_err *err)
{
    f->alignment = GG_DEFAULT_ALIGNMENT;
    int64_t i = gg_index_find(&f->kv_index, "general.alignment", 17, kv_name_at, f);
    if (i < 0)
        return SP_OK;
    const struct gg_kv *kv = &f->kvs[i];
    if (kv->type != GG_VAL_U32)
        return gg_fail(err, SP_ERR_FORMAT, kv->key_off, kv->key.ptr, kv->key.len,
                       "general.alignment must be a u32, not %s", val_type_name(kv->type));
    if (!is_pow2(kv->v.u) || kv->v.u > GG_MAX_ALIGNMENT)
        return gg_fail(err, SP_ERR_FORMAT, kv->val_off, kv->key.ptr, kv->key.len,
                       "general.alignment %llu is not a power of two up to %u",
                       (unsigned long long)kv->v.u, GG_MAX_ALIGNMENT);
    f->alignment = (uint32_t)kv->v.u;
    return SP_OK;
}

static enum sp_status parse_tensor_info(struct gg_file *f, struct cur *c, size_t i, struct sp_err *err)
{
    enum sp_status result;
    struct gg_tensor *t = &f->tensors[i];
    f->tensor_info_off[i] = c->pos;
    result = cur_str(c, GG_MAX_KEY_LEN, &t->name, "tensor name", NULL, 0, err);
    if (result != SP_OK)
        return result;
    const char *nm = t->name.ptr;
    size_t nl = t->name.len;
    if (nl == 0)
        return gg_fail(err, SP_ERR_FORMAT, f->tensor_info_off[i], NULL, 0, "empty tensor name (tensor %zu)", i);
    f->n_tensors = i + 1;
    int64_t dup;
    result = gg_index_insert(&f->tensor_index, nm, nl, (uint32_t)i, tensor_name_at, f, &dup);
    if (result != SP_OK)
        return gg_fail(err, result, f->tensor_info_off[i], nm, nl, "out of memory");
    if (dup >= 0)
        return gg_fail(err, SP_ERR_FORMAT, f->tensor_info_off[i], nm, nl,
                       "duplicate tensor name (first at offset %llu)",
                       (unsigned long long)f->tensor_info_off[dup]);
    uint32_t n_dims;
    uint64_t at = c->pos;
    if (!cur_u32(c, &n_dims))
        return TRUNC(err, c, nm, nl, "n_dims");
    if (n_dims < 1 || n_dims > 4)
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "tensor has %u dimensions (must be 1..4)", n_dims);
    t->n_dims = n_dims;
    int64_t nelem = 1;
    for (unsigned d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (unsigned d = 0; d < n_dims; d++) {
        uint64_t ne;
        at = c->pos;
        if (!cur_u64(c, &ne))
            return TRUNC(err, c, nm, nl, "a dimension");
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "dimension %u is %llu (must be 1..2^63-1)",
                           d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (!sp_mul_i64(nelem, (int64_t)ne, &nelem))
            return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "element count overflows");
    }
    uint32_t type;
    at = c->pos;
    if (!cur_u32(c, &type))
        return TRUNC(err, c, nm, nl, "a tensor type");
    struct gg_type_info ti;
    if (!gg_type_info((enum gg_type)type, &ti))
        return gg_fail(err, SP_ERR_UNSUPPORTED, at, nm, nl, "tensor type %u is not supported", type);
    t->type = (enum gg_type)type;
    size_t row;
    if (t->ne[0] % ti.blck_size != 0)
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl,
                       "row length %lld is not a multiple of the %s block size %u",
                       (long long)t->ne[0], ti.name, ti.blck_size);
    if (!gg_row_size(t->type, t->ne[0], &row))
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "tensor byte size overflows");
    size_t nbytes = row;
    for (unsigned d = 1; d < 4; d++)
        if (!sp_mul_size(nbytes, (size_t)t->ne[d], &nbytes))
            return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "tensor byte size overflows");
    t->nbytes = nbytes;
    at = c->pos;
    if (!cur_u64(c, &t->offset))
        return TRUNC(err, c, nm, nl, "a tensor offset");
    if (t->offset % f->alignment != 0)
        return gg_fail(err, SP_ERR_FORMAT, at, nm, nl, "tensor offset %llu is not a multiple of the alignment %u",
                       (unsigned long long)t->offset, f->alignment);
    return SP_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const struct gg_tensor *x = *(const struct gg_tensor *const *)a;
    const struct gg_tensor *y = *(const struct gg_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static enum sp_status check_extents(struct gg_file *f, struct sp_err *err)
{
    if (f->n_tensors == 0)
        return SP_OK;
    if (f->data_start > f->size)
        return gg_fail(err, SP_ERR_FORMAT, f->size, NULL, 0,
                       "file ends before the tensor data section (which starts at %llu)",
                       (unsigned long long)f->data_start);
    uint64_t data_len = f->size - f->data_start;
    for (size_t i = 0; i < f->n_tensors; i++) {
        struct gg_tensor *t = &f->tensors[i];
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return gg_fail(err, SP_ERR_FORMAT, f->tensor_info_off[i], t->name.ptr, t->name.len,
                           "tensor data [%llu, +%zu) lies outside the data section of %llu bytes",
                           (unsigned long long)t->offset, t->nbytes, (unsigned long long)data_len);
        t->data = f->base + f->data_start + t->offset;
    }
    const struct gg_tensor **order = sp_calloc(f->n_tensors, sizeof(*order));
    if (!order)
        return gg_fail(err, SP_ERR_NOMEM, 0, NULL, 0, "out of memory");
    for (size_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof(*order), cmp_by_offset);
    enum sp_status result = SP_OK;
    for (size_t i = 1; i < f->n_tensors; i++) {
        const struct gg_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset) {
            size_t bi = (size_t)(b - f->tensors);
            result = gg_fail(err, SP_ERR_FORMAT, f->tensor_info_off[bi], b->name.ptr, b->name.len,
                             "tensor data overlaps tensor '%.*s'", (int)SP_MIN(a->name.len, 64u),
                             a->name.ptr);
            break;
        }
    }
    sp_free(order);
    return result;
}

static enum sp_status parse(struct gg_file *f, struct sp_err *err)
{
    enum sp_status result;
    struct cur c = {f->base, 0, f->size};
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    if (!cur_u32(&c, &magic))
        return TRUNC(err, &c, NULL, 0, "the magic");
    if (magic != GG_MAGIC)
        return gg_fail(err, SP_ERR_FORMAT, 0, NULL, 0, "not a GGUF file (bad magic 0x%08x)", magic);
    if (!cur_u32(&c, &version))
        return TRUNC(err, &c, NULL, 0, "the version");
    if (version == 1)
        return gg_fail(err, SP_ERR_UNSUPPORTED, 4, NULL, 0, "GGUF version 1 is not supported; convert the file to v3");
    if (version == 0x02000000u || version == 0x03000000u)
        return gg_fail(err, SP_ERR_UNSUPPORTED, 4, NULL, 0, "big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
        return gg_fail(err, SP_ERR_UNSUPPORTED, 4, NULL, 0, "GGUF version %u is not supported (2 and 3 are)", version);
    f->version = version;
    if (!cur_u64(&c, &n_tensors))
        return TRUNC(err, &c, NULL, 0, "the tensor count");
    if (!cur_u64(&c, &n_kv))
        return TRUNC(err, &c, NULL, 0, "the metadata count");
    if (n_tensors > GG_MAX_TENSORS)
        return gg_fail(err, SP_ERR_FORMAT, 8, NULL, 0, "%llu tensors exceed the limit %u",
                       (unsigned long long)n_tensors, GG_MAX_TENSORS);
    if (n_kv > GG_MAX_KV)
        return gg_fail(err, SP_ERR_FORMAT, 16, NULL, 0, "%llu metadata keys exceed the limit %u",
                       (unsigned long long)n_kv, GG_MAX_KV);
    if (n_kv > cur_left(&c) / GG_MIN_KV_BYTES)
        return gg_fail(err, SP_ERR_FORMAT, 16, NULL, 0, "%llu metadata keys cannot fit in the file",
                       (unsigned long long)n_kv);
    if (n_tensors > cur_left(&c) / GG_MIN_TENSOR_BYTES)
        return gg_fail(err, SP_ERR_FORMAT, 8, NULL, 0, "%llu tensors cannot fit in the file",
                       (unsigned long long)n_tensors);
    uint64_t seed = (uint64_t)(uintptr_t)f ^ sp_now_ns();
    if (gg_index_init(&f->kv_index, (size_t)n_kv, seed) != SP_OK ||
        gg_index_init(&f->tensor_index, (size_t)n_tensors, seed * 31 + 7) != SP_OK)
        return gg_fail(err, SP_ERR_NOMEM, 16, NULL, 0, "out of memory for %llu keys",
                       (unsigned long long)n_kv);
    f->kvs = sp_calloc((size_t)n_kv + 1, sizeof(*f->kvs));
    f->tensors = sp_calloc((size_t)n_tensors + 1, sizeof(*f->tensors));
    f->tensor_info_off = sp_calloc((size_t)n_tensors + 1, sizeof(uint64_t));
    if (!f->kvs || !f->tensors || !f->tensor_info_off)
        return gg_fail(err, SP_ERR_NOMEM, 16, NULL, 0, "out of memory");
    result = parse_kvs(f, &c, n_kv, err);
    if (result != SP_OK)
        return result;
    result = parse_alignment(f, err);
    if (result != SP_OK)
        return result;
    for (size_t i = 0; i < n_tensors; i++) {
        result = parse_tensor_info(f, &c, i, err);
        if (result != SP_OK)
            return result;
    }
    uint64_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    f->data_start = c.pos + pad; /* cannot overflow: pos <= size, alignment <= 2^30 */
    return check_extents(f, err);
}

static void file_release(struct gg_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_kv; i++)
        sp_free(f->kvs[i].str_offs);
    sp_free(f->kvs);
    sp_free(f->tensors);
    sp_free(f->tensor_info_off);
    gg_index_free(&f->kv_index);
    gg_index_free(&f->tensor_index);
    gg_guard_unregister(f->ident.guard); /* before the range can be reused */
    if (f->mapped && f->size)
        munmap((void *)f->base, f->size);
    sp_free(f->ident.path);
    sp_free(f);
}

const struct gg_ident *gg_file_ident(const struct gg_file *f) { return &f->ident; }

enum sp_status gg_open_memory(const void *data, size_t size, struct gg_file **out, struct sp_err *err)
{
    enum sp_status result;
    *out = NULL;
    if (!data && size)
        return sp_err_set(err, SP_ERR_INVALID, "gg_open_memory: NULL buffer");
    struct gg_file *f = sp_calloc(1, sizeof(*f));
    if (!f)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory opening a GGUF buffer");
    f->base = data;
    f->size = size;
    f->ident.guard = -1;
    result = parse(f, err);
    if (result != SP_OK)
        goto fail;
    *out = f;
    return SP_OK;
fail:
    file_release(f);
    return result;
}

enum sp_status gg_open(const char *path, struct gg_file **out, struct sp_err *err)
{
    enum sp_status result;
    struct gg_file *f = NULL;
    void *map = MAP_FAILED;
    size_t size = 0;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        result = errno == ENOENT ? SP_ERR_NOT_FOUND : SP_ERR_IO;
        sp_err_setc(err, result, path, "cannot open GGUF file %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        result = sp_err_setc(err, SP_ERR_IO, path, "%s is not a regular file", path);
        goto fail;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX) {
        result = gg_fail(err, SP_ERR_FORMAT, 0, path, strlen(path), "file is empty, not a GGUF file");
        goto fail;
    }
    size = (size_t)st.st_size;
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        result = sp_err_setc(err, SP_ERR_IO, path, "cannot map %s: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    f = sp_calloc(1, sizeof(*f));
    if (!f) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory opening %s", path);
        goto fail;
    }
    f->base = map;
    f->size = size;
    f->mapped = true;
    map = MAP_FAILED; /* owned by f now */
    f->ident.guard = gg_guard_register(f->base, f->size);
    gg_ident_from_stat(&f->ident, &st);
    if (!(f->ident.path = sp_strdup(path))) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory opening %s", path);
        goto fail;
    }
    result = parse(f, err);
    if (result != SP_OK)
        goto fail;
    *out = f;
    return SP_OK;
fail:
    file_release(f);
    if (map != MAP_FAILED)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    return result;
}

void gg_close(struct gg_file *f) { file_release(f); }

uint32_t gg_version(const struct gg_file *f) { return f->version; }
uint32_t gg_alignment(const struct gg_file *f) { return f->alignment; }
size_t gg_file_size(const struct gg_file *f) { return f->size; }
const void *gg_file_data(const struct gg_file *f) { return f->base; }
uint64_t gg_data_offset(const struct gg_file *f) { return f->data_start; }

void gg_file_drop(const struct gg_file *f, const void *p, size_t n)
{
    const uintptr_t lo = (uintptr_t)p, base = (uintptr_t)f->base;
    if (!f->mapped || lo < base || n > f->size || lo - base > f->size - n)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = (lo + page - 1) / page * page, b = (lo + n) / page * page;
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

/* ---- metadata */

size_t gg_kv_count(const struct gg_file *f) { return f->n_kv; }

int64_t gg_kv_find(const struct gg_file *f, const char *key)
{
    if (!key)
        return -1;
    return gg_index_find(&f->kv_index, key, strlen(key), kv_name_at, f);
}

struct gg_str gg_kv_key(const struct gg_file *f, size_t i)
{
    struct gg_str none = {"", 0};
    return i < f->n_kv ? f->kvs[i].key : none;
}

enum gg_value_type gg_kv_type(const struct gg_file *f, size_t i)
{
    return i < f->n_kv ? f->kvs[i].type : GG_VAL_COUNT;
}

bool gg_kv_raw(const struct gg_file *f, size_t i, const void **data, size_t *size)
{
    if (i >= f->n_kv)
        return false;
    *data = f->base + f->kvs[i].val_off;
    *size = (size_t)(f->kvs[i].val_end - f->kvs[i].val_off);
    return true;
}

static const struct gg_kv *kv_get(const struct gg_file *f, const char *key)
{
    int64_t i = gg_kv_find(f, key);
    return i < 0 ? NULL : &f->kvs[i];
}

static bool is_unsigned(enum gg_value_type t)
{
    return t == GG_VAL_U8 || t == GG_VAL_U16 || t == GG_VAL_U32 || t == GG_VAL_U64;
}

static bool is_signed(enum gg_value_type t)
{
    return t == GG_VAL_I8 || t == GG_VAL_I16 || t == GG_VAL_I32 || t == GG_VAL_I64;
}

bool gg_get_u32(const struct gg_file *f, const char *key, uint32_t *out)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv)
        return false;
    if (is_unsigned(kv->type) && kv->v.u <= UINT32_MAX) {
        *out = (uint32_t)kv->v.u;
        return true;
    }
    if (is_signed(kv->type) && kv->v.i >= 0 && kv->v.i <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)kv->v.i;
        return true;
    }
    return false;
}

bool gg_get_i64(const struct gg_file *f, const char *key, int64_t *out)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv)
        return false;
    if (is_unsigned(kv->type) && kv->v.u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->v.u;
        return true;
    }
    if (is_signed(kv->type)) {
        *out = kv->v.i;
        return true;
    }
    return false;
}

bool gg_get_f32(const struct gg_file *f, const char *key, float *out)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv || (kv->type != GG_VAL_F32 && kv->type != GG_VAL_F64))
        return false;
    *out = (float)kv->v.f;
    return true;
}

bool gg_get_bool(const struct gg_file *f, const char *key, bool *out)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GG_VAL_BOOL)
        return false;
    *out = kv->v.b;
    return true;
}

bool gg_get_str(const struct gg_file *f, const char *key, struct gg_str *out)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GG_VAL_STRING)
        return false;
    *out = kv->v.s;
    return true;
}

bool gg_get_arr(const struct gg_file *f, const char *key, enum gg_value_type *elem_type,
                uint64_t *count)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GG_VAL_ARRAY)
        return false;
    if (elem_type)
        *elem_type = kv->arr_type;
    if (count)
        *count = kv->arr_count;
    return true;
}

bool gg_arr_str(const struct gg_file *f, const char *key, uint64_t i, struct gg_str *out)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GG_VAL_ARRAY || kv->arr_type != GG_VAL_STRING || i >= kv->arr_count)
        return false;
    uint64_t off = kv->str_offs[i], len;
    memcpy(&len, f->base + off, 8); /* validated at open */
    out->ptr = (const char *)f->base + off + 8;
    out->len = len;
    return true;
}

const void *gg_arr_data(const struct gg_file *f, const char *key)
{
    const struct gg_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GG_VAL_ARRAY || gg_val_size(kv->arr_type) == 0)
        return NULL;
    return f->base + kv->arr_data;
}

/* ---- tensors */

size_t gg_tensor_count(const struct gg_file *f) { return f->n_tensors; }

const struct gg_tensor *gg_tensor_at(const struct gg_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gg_tensor *gg_tensor_find(const struct gg_file *f, const char *name)
{
    if (!name)
        return NULL;
    return gg_tensor_find_str(f, (struct gg_str){name, strlen(name)});
}

const struct gg_tensor *gg_tensor_find_str(const struct gg_file *f, struct gg_str name)
{
    int64_t i = gg_index_find(&f->tensor_index, name.ptr, name.len, tensor_name_at, f);
    return i < 0 ? NULL : &f->tensors[i];
}
