/* gguf_write.c - the GGUF writer (contract in gguf.h).
 *
 * How: keys and encoded values are appended to two growable byte buffers
 * with an index (gg_index) from key to entry, so replacing a value is O(1)
 * (the old bytes are left unused). Tensor infos are kept in an array. The
 * write computes the layout (header size, aligned data start, aligned
 * offsets), then streams header and tensor data through a small sink that
 * targets either a buffered file descriptor or a preallocated memory block.
 * Tensors without data are produced by the fill callback into a scratch
 * buffer (file) or straight into the output (memory). */
#include "gguf/gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define GG_MAGIC_BYTES "GGUF"

struct wkv {
    size_t key_off, key_len; /* in w->keys */
    size_t val_off, val_len; /* in w->vals */
    enum gg_value_type type;
    bool removed;
};

struct wtensor {
    char *name;
    size_t name_len;
    enum gg_type type;
    uint32_t n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
    uint64_t offset; /* set by layout */
};

struct gg_writer {
    uint32_t version;
    uint32_t alignment;
    struct sp_buf keys, vals;
    struct wkv *kvs;
    size_t n_kv, cap_kv;
    struct gg_index kv_index;
    struct wtensor *tensors;
    size_t n_tensors, cap_tensors;
    struct gg_index tensor_index;
};

static struct gg_str wkv_name(const void *ctx, uint32_t pos)
{
    const struct gg_writer *w = ctx;
    struct gg_str s = {w->keys.data + w->kvs[pos].key_off, w->kvs[pos].key_len};
    return s;
}

static struct gg_str wtensor_name(const void *ctx, uint32_t pos)
{
    const struct gg_writer *w = ctx;
    struct gg_str s = {w->tensors[pos].name, w->tensors[pos].name_len};
    return s;
}

struct gg_writer *gg_writer_new(void)
{
    struct gg_writer *w = sp_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->version = 3;
    w->alignment = 32;
    uint64_t seed = (uint64_t)(uintptr_t)w ^ sp_now_ns();
    if (gg_index_init(&w->kv_index, 16, seed) != SP_OK ||
        gg_index_init(&w->tensor_index, 16, seed + 1) != SP_OK) {
        gg_writer_free(w);
        return NULL;
    }
    return w;
}

void gg_writer_free(struct gg_writer *w)
{
    if (!w)
        return;
    sp_buf_free(&w->keys);
    sp_buf_free(&w->vals);
    sp_free(w->kvs);
    for (size_t i = 0; i < w->n_tensors; i++)
        sp_free(w->tensors[i].name);
    sp_free(w->tensors);
    gg_index_free(&w->kv_index);
    gg_index_free(&w->tensor_index);
    sp_free(w);
}

enum sp_status gg_writer_set_version(struct gg_writer *w, uint32_t version)
{
    if (version != 2 && version != 3)
        return SP_ERR_INVALID;
    w->version = version;
    return SP_OK;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    size_t bytes;
    if (!sp_mul_size(ncap, elem, &bytes))
        return false;
    void *p = sp_realloc(*arr, bytes);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

/* Append-or-replace key with an encoded value made of two parts (head, body). */
static enum sp_status put_kv(struct gg_writer *w, const char *key, enum gg_value_type type,
                             const void *head, size_t head_len, const void *body, size_t body_len)
{
    enum sp_status result;
    if (!key)
        return SP_ERR_INVALID;
    size_t klen = strlen(key);
    if (klen == 0 || klen > GG_MAX_KEY_LEN || (unsigned)type >= GG_VAL_COUNT)
        return SP_ERR_INVALID;
    size_t val_off = w->vals.len;
    if ((result = sp_buf_append(&w->vals, head, head_len)) != SP_OK)
        return result;
    if (body_len && (result = sp_buf_append(&w->vals, body, body_len)) != SP_OK)
        return result;
    int64_t found = gg_index_find(&w->kv_index, key, klen, wkv_name, w);
    if (found >= 0) {
        struct wkv *kv = &w->kvs[found];
        kv->val_off = val_off;
        kv->val_len = head_len + body_len;
        kv->type = type;
        kv->removed = false;
    } else {
        if (w->n_kv >= GG_MAX_KV || !grow((void **)&w->kvs, &w->cap_kv, w->n_kv + 1, sizeof(*w->kvs)))
            return SP_ERR_NOMEM;
        size_t key_off = w->keys.len;
        if ((result = sp_buf_append(&w->keys, key, klen)) != SP_OK)
            return result;
        struct wkv *kv = &w->kvs[w->n_kv];
        kv->key_off = key_off;
        kv->key_len = klen;
        kv->val_off = val_off;
        kv->val_len = head_len + body_len;
        kv->type = type;
        kv->removed = false;
        int64_t dup;
        if ((result = gg_index_insert(&w->kv_index, key, klen, (uint32_t)w->n_kv, wkv_name, w, &dup)) != SP_OK)
            return result;
        w->n_kv++;
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == GG_VAL_U32)
            memcpy(&a, head, 4);
        w->alignment = (type == GG_VAL_U32 && a && !(a & (a - 1)) && a <= GG_MAX_ALIGNMENT) ? a : 32;
    }
    return SP_OK;
}

#define SCALAR_SETTER(suffix, ctype, vtype)                                                      \
    enum sp_status gg_writer_add_kv_##suffix(struct gg_writer *w, const char *key, ctype v)       \
    {                                                                                            \
        return put_kv(w, key, vtype, &v, sizeof(v), NULL, 0);                                    \
    }
SCALAR_SETTER(u8, uint8_t, GG_VAL_U8)
SCALAR_SETTER(i8, int8_t, GG_VAL_I8)
SCALAR_SETTER(u16, uint16_t, GG_VAL_U16)
SCALAR_SETTER(i16, int16_t, GG_VAL_I16)
SCALAR_SETTER(u32, uint32_t, GG_VAL_U32)
SCALAR_SETTER(i32, int32_t, GG_VAL_I32)
SCALAR_SETTER(u64, uint64_t, GG_VAL_U64)
SCALAR_SETTER(i64, int64_t, GG_VAL_I64)
SCALAR_SETTER(f32, float, GG_VAL_F32)
SCALAR_SETTER(f64, double, GG_VAL_F64)

enum sp_status gg_writer_add_kv_bool(struct gg_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return put_kv(w, key, GG_VAL_BOOL, &b, 1, NULL, 0);
}

enum sp_status gg_writer_add_kv_strn(struct gg_writer *w, const char *key, const char *v, size_t len)
{
    if (!v && len)
        return SP_ERR_INVALID;
    uint64_t l = len;
    return put_kv(w, key, GG_VAL_STRING, &l, 8, v, len);
}

enum sp_status gg_writer_add_kv_str(struct gg_writer *w, const char *key, const char *v)
{
    if (!v)
        return SP_ERR_INVALID;
    return gg_writer_add_kv_strn(w, key, v, strlen(v));
}

enum sp_status gg_writer_add_kv_arr(struct gg_writer *w, const char *key, enum gg_value_type elem_type,
                                    const void *data, uint64_t count)
{
    size_t es = gg_val_size(elem_type), bytes;
    if (!es || (!data && count) || !sp_mul_size((size_t)count, es, &bytes))
        return SP_ERR_INVALID;
    uint8_t head[12];
    uint32_t et = (uint32_t)elem_type;
    memcpy(head, &et, 4);
    memcpy(head + 4, &count, 8);
    return put_kv(w, key, GG_VAL_ARRAY, head, 12, data, bytes);
}

static enum sp_status add_arr_strs(struct gg_writer *w, const char *key, const char *const *cs,
                                   const struct gg_str *gs, uint64_t count)
{
    enum sp_status result;
    struct sp_buf body = {0};
    for (uint64_t i = 0; i < count; i++) {
        const char *p = cs ? cs[i] : gs[i].ptr;
        uint64_t len = cs ? (p ? strlen(p) : 0) : gs[i].len;
        if (!p && len) {
            result = SP_ERR_INVALID;
            goto fail;
        }
        if ((result = sp_buf_append(&body, &len, 8)) != SP_OK)
            goto fail;
        if (len && (result = sp_buf_append(&body, p, (size_t)len)) != SP_OK)
            goto fail;
    }
    uint8_t head[12];
    uint32_t et = GG_VAL_STRING;
    memcpy(head, &et, 4);
    memcpy(head + 4, &count, 8);
    result = put_kv(w, key, GG_VAL_ARRAY, head, 12, body.data, body.len);
fail:
    sp_buf_free(&body);
    return result;
}

enum sp_status gg_writer_add_kv_arr_str(struct gg_writer *w, const char *key, const char *const *strs,
                                        uint64_t count)
{
    if (!strs && count)
        return SP_ERR_INVALID;
    return add_arr_strs(w, key, strs, NULL, count);
}

enum sp_status gg_writer_add_kv_arr_gstr(struct gg_writer *w, const char *key, const struct gg_str *strs,
                                         uint64_t count)
{
    if (!strs && count)
        return SP_ERR_INVALID;
    return add_arr_strs(w, key, NULL, strs, count);
}

enum sp_status gg_writer_add_kv_raw(struct gg_writer *w, const char *key, enum gg_value_type type,
                                    const void *raw, size_t size)
{
    if ((unsigned)type >= GG_VAL_COUNT || (!raw && size) || size == 0)
        return SP_ERR_INVALID;
    return put_kv(w, key, type, raw, size, NULL, 0);
}

enum sp_status gg_writer_copy_kv(struct gg_writer *w, const struct gg_file *f, struct sp_err *err)
{
    char *key = sp_malloc(GG_MAX_KEY_LEN + 1);
    if (!key)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory copying metadata");
    enum sp_status result = SP_OK;
    for (size_t i = 0; i < gg_kv_count(f); i++) {
        const struct gg_str k = gg_kv_key(f, i);
        const void *raw;
        size_t rsz;
        if (memchr(k.ptr, 0, k.len) || !gg_kv_raw(f, i, &raw, &rsz)) {
            result = sp_err_set(err, SP_ERR_UNSUPPORTED, "metadata key %zu cannot be copied", i);
            break;
        }
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        if ((result = gg_writer_add_kv_raw(w, key, gg_kv_type(f, i), raw, rsz)) != SP_OK) {
            sp_err_setc(err, result, key, "cannot copy metadata key %s", key);
            break;
        }
    }
    sp_free(key);
    return result;
}

void gg_writer_remove_kv(struct gg_writer *w, const char *key)
{
    if (!key)
        return;
    int64_t i = gg_index_find(&w->kv_index, key, strlen(key), wkv_name, w);
    if (i >= 0) {
        w->kvs[i].removed = true;
        if (strcmp(key, "general.alignment") == 0)
            w->alignment = 32;
    }
}

enum sp_status gg_writer_add_tensor(struct gg_writer *w, const char *name, enum gg_type type,
                                    uint32_t n_dims, const int64_t *ne, const void *data)
{
    enum sp_status result;
    if (!name || !ne || n_dims < 1 || n_dims > 4)
        return SP_ERR_INVALID;
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > GG_MAX_KEY_LEN || w->n_tensors >= GG_MAX_TENSORS)
        return SP_ERR_INVALID;
    if (!gg_type_info(type, NULL))
        return SP_ERR_UNSUPPORTED;
    struct wtensor t = {.type = type, .n_dims = n_dims, .data = data, .ne = {1, 1, 1, 1}};
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return SP_ERR_INVALID;
        t.ne[d] = ne[d];
    }
    size_t bytes;
    if (!gg_row_size(type, t.ne[0], &bytes))
        return SP_ERR_INVALID;
    for (int d = 1; d < 4; d++)
        if (!sp_mul_size(bytes, (size_t)t.ne[d], &bytes))
            return SP_ERR_INVALID;
    t.nbytes = bytes;
    if (gg_index_find(&w->tensor_index, name, nlen, wtensor_name, w) >= 0)
        return SP_ERR_INVALID;
    if (!grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof(*w->tensors)))
        return SP_ERR_NOMEM;
    t.name = sp_strndup(name, nlen);
    if (!t.name)
        return SP_ERR_NOMEM;
    t.name_len = nlen;
    w->tensors[w->n_tensors] = t;
    int64_t dup;
    result = gg_index_insert(&w->tensor_index, name, nlen, (uint32_t)w->n_tensors, wtensor_name, w, &dup);
    if (result != SP_OK) {
        sp_free(t.name);
        return result;
    }
    w->n_tensors++;
    return SP_OK;
}

size_t gg_writer_tensor_count(const struct gg_writer *w) { return w->n_tensors; }

/* ---- layout and output */

struct sink {
    int fd;          /* >= 0: file */
    uint8_t *mem;    /* else: memory of exactly the total size */
    uint64_t pos;
    uint8_t *buf;    /* file write buffer */
    size_t blen, bcap;
};

static enum sp_status write_all(int fd, const void *p, size_t n, struct sp_err *err)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return sp_err_set(err, SP_ERR_IO, "write failed: %s", strerror(errno));
        }
        b += k;
        n -= (size_t)k;
    }
    return SP_OK;
}

static enum sp_status sink_flush(struct sink *s, struct sp_err *err)
{
    if (s->fd < 0 || s->blen == 0)
        return SP_OK;
    enum sp_status result = write_all(s->fd, s->buf, s->blen, err);
    s->blen = 0;
    return result;
}

static enum sp_status sink_put(struct sink *s, const void *p, size_t n, struct sp_err *err)
{
    enum sp_status result;
    if (s->fd < 0) {
        if (n)
            memcpy(s->mem + s->pos, p, n);
        s->pos += n;
        return SP_OK;
    }
    s->pos += n;
    if (s->blen + n <= s->bcap) {
        memcpy(s->buf + s->blen, p, n);
        s->blen += n;
        return SP_OK;
    }
    if ((result = sink_flush(s, err)) != SP_OK)
        return result;
    if (n >= s->bcap)
        return write_all(s->fd, p, n, err);
    memcpy(s->buf, p, n);
    s->blen = n;
    return SP_OK;
}

static enum sp_status sink_zeros(struct sink *s, size_t n, struct sp_err *err)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = SP_MIN(n, sizeof(zeros));
        enum sp_status result = sink_put(s, zeros, k, err);
        if (result != SP_OK)
            return result;
        n -= k;
    }
    return SP_OK;
}

static uint64_t align_up(uint64_t v, uint32_t a) { return (v + a - 1) / a * a; }

/* Compute offsets; returns total file size or 0 on overflow. */
static uint64_t layout(struct gg_writer *w, uint64_t *data_start, size_t *max_fill)
{
    uint64_t hdr = 24;
    uint64_t n_live = 0;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (w->kvs[i].removed)
            continue;
        n_live++;
        hdr += 8 + w->kvs[i].key_len + 4 + w->kvs[i].val_len;
    }
    SP_UNUSED(n_live);
    for (size_t i = 0; i < w->n_tensors; i++)
        hdr += 8 + w->tensors[i].name_len + 4 + 8ull * w->tensors[i].n_dims + 4 + 8;
    *data_start = align_up(hdr, w->alignment);
    uint64_t off = 0, total = *data_start;
    *max_fill = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        off = align_up(off, w->alignment);
        w->tensors[i].offset = off;
        if (!sp_add_u64(off, w->tensors[i].nbytes, &off))
            return 0;
        if (!w->tensors[i].data)
            *max_fill = SP_MAX(*max_fill, w->tensors[i].nbytes);
    }
    if (w->n_tensors && !sp_add_u64(total, off, &total))
        return 0;
    if (!w->n_tensors)
        total = hdr;
    return total;
}

static enum sp_status emit(struct gg_writer *w, struct sink *s, uint64_t data_start, gg_fill_fn fill,
                           void *ctx, uint8_t *scratch, struct sp_err *err)
{
    enum sp_status result;
    uint64_t n_kv = 0, n_t = w->n_tensors;
    for (size_t i = 0; i < w->n_kv; i++)
        n_kv += !w->kvs[i].removed;
    uint8_t hdr[24];
    memcpy(hdr, GG_MAGIC_BYTES, 4);
    memcpy(hdr + 4, &w->version, 4);
    memcpy(hdr + 8, &n_t, 8);
    memcpy(hdr + 16, &n_kv, 8);
#define PUT(p, n)                                                                                \
    do {                                                                                         \
        if ((result = sink_put(s, p, n, err)) != SP_OK)                                          \
            return result;                                                                       \
    } while (0)
    PUT(hdr, 24);
    for (size_t i = 0; i < w->n_kv; i++) {
        const struct wkv *kv = &w->kvs[i];
        if (kv->removed)
            continue;
        uint64_t kl = kv->key_len;
        uint32_t t = kv->type;
        PUT(&kl, 8);
        PUT(w->keys.data + kv->key_off, kv->key_len);
        PUT(&t, 4);
        PUT(w->vals.data + kv->val_off, kv->val_len);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        uint64_t nl = t->name_len;
        uint32_t type = t->type;
        PUT(&nl, 8);
        PUT(t->name, t->name_len);
        PUT(&t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            PUT(&t->ne[d], 8);
        PUT(&type, 4);
        PUT(&t->offset, 8);
    }
    if (w->n_tensors == 0)
        return SP_OK;
    if ((result = sink_zeros(s, (size_t)(data_start - s->pos), err)) != SP_OK)
        return result;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        if ((result = sink_zeros(s, (size_t)(data_start + t->offset - s->pos), err)) != SP_OK)
            return result;
        if (t->data) {
            PUT(t->data, t->nbytes);
            continue;
        }
        if (!fill)
            return sp_err_setc(err, SP_ERR_INVALID, t->name, "tensor %s has no data and no fill callback", t->name);
        uint8_t *dst = s->fd < 0 ? s->mem + s->pos : scratch;
        if ((result = fill(ctx, i, dst, t->nbytes, err)) != SP_OK)
            return result;
        if (s->fd < 0)
            s->pos += t->nbytes;
        else
            PUT(scratch, t->nbytes);
    }
#undef PUT
    return SP_OK;
}

enum sp_status gg_writer_write_mem(struct gg_writer *w, gg_fill_fn fill, void *ctx, void **out,
                                   size_t *size, struct sp_err *err)
{
    enum sp_status result;
    uint64_t data_start;
    size_t max_fill;
    *out = NULL;
    *size = 0;
    uint64_t total = layout(w, &data_start, &max_fill);
    if (total == 0 || total > SIZE_MAX / 2)
        return sp_err_set(err, SP_ERR_RANGE, "GGUF output size overflows");
    uint8_t *mem = sp_calloc(1, (size_t)total);
    if (!mem)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory for a %llu-byte GGUF", (unsigned long long)total);
    struct sink s = {.fd = -1, .mem = mem};
    result = emit(w, &s, data_start, fill, ctx, NULL, err);
    if (result != SP_OK) {
        sp_free(mem);
        return result;
    }
    *out = mem;
    *size = (size_t)total;
    return SP_OK;
}

enum sp_status gg_writer_write(struct gg_writer *w, const char *path, gg_fill_fn fill, void *ctx,
                               struct sp_err *err)
{
    enum sp_status result;
    struct sp_buf tmp = {0};
    struct sink s = {.fd = -1};
    uint8_t *scratch = NULL;
    bool created = false;
    uint64_t data_start;
    size_t max_fill;
    uint64_t total = layout(w, &data_start, &max_fill);
    if (total == 0) {
        result = sp_err_set(err, SP_ERR_RANGE, "GGUF output size overflows");
        goto fail;
    }
    if (sp_buf_printf(&tmp, "%s.tmp.XXXXXX", path) != SP_OK) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s.bcap = 1u << 20;
    s.buf = sp_malloc(s.bcap);
    if (max_fill)
        scratch = sp_malloc(max_fill);
    if (!s.buf || (max_fill && !scratch)) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory for write buffers");
        goto fail;
    }
    s.fd = mkstemp(tmp.data);
    if (s.fd < 0) {
        result = sp_err_setc(err, SP_ERR_IO, path, "cannot create %s: %s", tmp.data, strerror(errno));
        goto fail;
    }
    created = true;
    if (fchmod(s.fd, 0644) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, path, "chmod %s: %s", tmp.data, strerror(errno));
        goto fail;
    }
    result = emit(w, &s, data_start, fill, ctx, scratch, err);
    if (result == SP_OK)
        result = sink_flush(&s, err);
    if (result != SP_OK)
        goto fail;
    if (fsync(s.fd) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, path, "fsync %s: %s", tmp.data, strerror(errno));
        goto fail;
    }
    if (close(s.fd) != 0) {
        s.fd = -1;
        result = sp_err_setc(err, SP_ERR_IO, path, "close %s: %s", tmp.data, strerror(errno));
        goto fail;
    }
    s.fd = -1;
    if (rename(tmp.data, path) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, path, "rename to %s: %s", path, strerror(errno));
        goto fail;
    }
    sp_buf_free(&tmp);
    sp_free(s.buf);
    sp_free(scratch);
    return SP_OK;
fail:
    if (s.fd >= 0)
        close(s.fd);
    if (created)
        unlink(tmp.data);
    sp_buf_free(&tmp);
    sp_free(s.buf);
    sp_free(scratch);
    return result;
}
