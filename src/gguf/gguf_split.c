/* gguf_split.c - a model stored as the shards of a split GGUF, as llama.cpp's
 * gguf-split writes them: PREFIX-00001-of-0000N.gguf .. PREFIX-0000N-of-0000N.gguf,
 * every shard carrying split.no (0-based), split.count and (in the first)
 * split.tensors.count; the model's metadata is in the first shard and the
 * tensors are spread over all of them.
 *
 * gg_split_open takes the first shard's path (or a plain file, which opens as
 * a set of one), derives the others' names from it, opens each (mmap, fully
 * validated by gg_open) and checks the set: every shard present, numbered
 * and counted consistently, no tensor name in two shards (hash lookups, so
 * linear), the tensor total equal to split.tensors.count. Tensor lookups then
 * search the shards in order. */
#include "gguf/gguf.h"

#include <stdio.h>
#include <string.h>

#define SPLIT_MAX 9999 /* 5-digit shard numbers; more would be a hostile file */

struct gg_split {
    size_t n;
    struct gg_file **files;
    size_t total_size;
};

static bool digits5(const char *s, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < 5; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (unsigned)(s[i] - '0');
    }
    *v = x;
    return true;
}

bool gg_split_name_parse(const char *path, size_t *prefix_len, unsigned *index, unsigned *count)
{
    /* "-KKKKK-of-NNNNN.gguf" = 20 bytes after a non-empty prefix */
    size_t n = strlen(path);
    if (n < 21)
        return false;
    const char *t = path + n - 20;
    unsigned k, c;
    if (t[0] != '-' || memcmp(t + 6, "-of-", 4) != 0 || strcmp(t + 15, ".gguf") != 0 || !digits5(t + 1, &k) ||
        !digits5(t + 10, &c) || k == 0 || c == 0 || k > c || c > SPLIT_MAX)
        return false;
    *prefix_len = n - 20;
    *index = k;
    *count = c;
    return true;
}

void gg_split_close(struct gg_split *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        gg_close(s->files[i]);
    sp_free(s->files);
    sp_free(s);
}

static enum sp_status check_shard(const struct gg_file *f, const char *path, unsigned want_no, unsigned count,
                                  struct sp_err *err)
{
    uint32_t no, cnt;
    if (!gg_get_u32(f, "split.no", &no) || !gg_get_u32(f, "split.count", &cnt))
        return sp_err_setc(err, SP_ERR_FORMAT, "split.no", "%s lacks split.no/split.count: not a shard of this set",
                           path);
    if (no != want_no || cnt != count)
        return sp_err_setc(err, SP_ERR_FORMAT, "split.no",
                           "%s says it is shard %u of %u, expected shard %u of %u", path, no + 1, cnt,
                           want_no + 1, count);
    return SP_OK;
}

enum sp_status gg_split_open(const char *path, struct gg_split **out, struct sp_err *err)
{
    enum sp_status result;
    *out = NULL;
    struct gg_split *s = sp_calloc(1, sizeof(*s));
    struct gg_file *first = NULL;
    char *name = NULL;
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory opening %s", path);
    if ((result = gg_open(path, &first, err)) != SP_OK)
        goto fail;
    uint32_t count = 1, no = 0;
    size_t plen;
    unsigned name_no, name_count;
    bool has_count = gg_get_u32(first, "split.count", &count);
    if (has_count && count == 0) {
        result = sp_err_setc(err, SP_ERR_FORMAT, "split.count", "%s: split.count is 0", path);
        goto fail;
    }
    if (!has_count || count == 1) { /* a plain file (or a set of one) */
        s->files = sp_calloc(1, sizeof(*s->files));
        if (!s->files) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory opening %s", path);
            goto fail;
        }
        s->files[0] = first;
        s->n = 1;
        s->total_size = gg_file_size(first);
        *out = s;
        return SP_OK;
    }
    if (count > SPLIT_MAX) {
        result = sp_err_setc(err, SP_ERR_FORMAT, "split.count", "%s: split.count %u is over %u", path, count,
                             SPLIT_MAX);
        goto fail;
    }
    if (gg_get_u32(first, "split.no", &no) && no != 0) {
        if (gg_split_name_parse(path, &plen, &name_no, &name_count))
            result = sp_err_setc(err, SP_ERR_INVALID, "split.no",
                                 "%s is shard %u of %u of a split GGUF: open the first shard, %.*s-00001-of-%05u.gguf",
                                 path, no + 1, count, (int)plen, path, count);
        else
            result = sp_err_setc(err, SP_ERR_INVALID, "split.no",
                                 "%s is shard %u of %u of a split GGUF: open the first shard", path, no + 1, count);
        goto fail;
    }
    if (!gg_split_name_parse(path, &plen, &name_no, &name_count) || name_no != 1 || name_count != count) {
        result = sp_err_setc(err, SP_ERR_INVALID, "split.count",
                             "%s is the first of %u shards but is not named PREFIX-00001-of-%05u.gguf, so the "
                             "other shards cannot be found",
                             path, count, count);
        goto fail;
    }
    if ((result = check_shard(first, path, 0, count, err)) != SP_OK)
        goto fail;
    s->files = sp_calloc(count, sizeof(*s->files));
    name = sp_malloc(plen + 32);
    if (!s->files || !name) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory opening %s", path);
        goto fail;
    }
    s->files[0] = first;
    first = NULL;
    s->n = 1;
    s->total_size = gg_file_size(s->files[0]);
    size_t n_tensors = gg_tensor_count(s->files[0]);
    for (unsigned i = 1; i < count; i++) {
        memcpy(name, path, plen);
        snprintf(name + plen, 32, "-%05u-of-%05u.gguf", i + 1, count);
        struct gg_file *f = NULL;
        if ((result = gg_open(name, &f, err)) != SP_OK) {
            if (result == SP_ERR_NOT_FOUND)
                sp_err_set(err, SP_ERR_NOT_FOUND, "shard %u of %u of %s is missing: %s", i + 1, count, path, name);
            goto fail;
        }
        s->files[s->n++] = f;
        if ((result = check_shard(f, name, i, count, err)) != SP_OK)
            goto fail;
        for (size_t t = 0; t < gg_tensor_count(f); t++) {
            const struct gg_str tn = gg_tensor_at(f, t)->name;
            for (size_t j = 0; j + 1 < s->n; j++) {
                if (gg_tensor_find_str(s->files[j], tn)) {
                    const int shown = (int)SP_MIN(tn.len, (size_t)256);
                    result = sp_err_set(err, SP_ERR_FORMAT, "tensor %.*s is in shard %zu and in shard %u of %s",
                                        shown, tn.ptr, j + 1, i + 1, path);
                    if (err)
                        snprintf(err->context, sizeof(err->context), "%.*s", shown, tn.ptr);
                    goto fail;
                }
            }
        }
        n_tensors += gg_tensor_count(f);
        if (!sp_add_size(s->total_size, gg_file_size(f), &s->total_size))
            s->total_size = SIZE_MAX;
    }
    uint32_t want_tensors;
    if (gg_get_u32(s->files[0], "split.tensors.count", &want_tensors) && want_tensors != n_tensors) {
        result = sp_err_setc(err, SP_ERR_FORMAT, "split.tensors.count",
                             "%s: split.tensors.count is %u but the %u shards hold %zu tensors", path, want_tensors,
                             count, n_tensors);
        goto fail;
    }
    sp_free(name);
    *out = s;
    return SP_OK;
fail:
    gg_close(first);
    sp_free(name);
    gg_split_close(s);
    return result;
}

size_t gg_split_count(const struct gg_split *s) { return s->n; }
const struct gg_file *gg_split_file(const struct gg_split *s, size_t i) { return i < s->n ? s->files[i] : NULL; }
size_t gg_split_size(const struct gg_split *s) { return s->total_size; }

void gg_split_drop(const struct gg_split *s, const void *p, size_t n)
{
    for (size_t i = 0; i < s->n; i++)
        gg_file_drop(s->files[i], p, n); /* a no-op on the shards that do not hold it */
}

size_t gg_split_tensor_count(const struct gg_split *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += gg_tensor_count(s->files[i]);
    return n;
}

const struct gg_tensor *gg_split_tensor_at(const struct gg_split *s, size_t i)
{
    for (size_t k = 0; k < s->n; k++) {
        if (i < gg_tensor_count(s->files[k]))
            return gg_tensor_at(s->files[k], i);
        i -= gg_tensor_count(s->files[k]);
    }
    return NULL;
}

const struct gg_tensor *gg_split_tensor_find(const struct gg_split *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct gg_tensor *t = gg_tensor_find(s->files[i], name);
        if (t)
            return t;
    }
    return NULL;
}
