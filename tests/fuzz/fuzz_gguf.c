/* fuzz_gguf.c - libFuzzer harness for the GGUF reader (and writer).
 * Input: the bytes of a file. gg_open_memory must either reject it with a
 * status and message, or accept it; an accepted file is then walked fully
 * (every key through every getter, string-array elements, numeric array data,
 * every tensor's first and last byte) and re-encoded through gg_writer
 * (metadata copied raw, tensor data borrowed), and the copy must open again
 * with the same counts. Reads nothing from disk; seeds in corpus/fuzz_gguf. */
#include "gguf/gguf.h"

#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void walk(const struct gg_file *f)
{
    char key[256];
    for (size_t i = 0; i < gg_kv_count(f); i++) {
        struct gg_str k = gg_kv_key(f, i);
        size_t n = k.len < sizeof(key) - 1 ? (size_t)k.len : sizeof(key) - 1;
        memcpy(key, k.ptr, n);
        key[n] = '\0';
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        struct gg_str s;
        enum gg_value_type et;
        uint64_t count;
        sink += gg_get_u32(f, key, &u32) ? u32 : 0;
        sink += gg_get_i64(f, key, &i64) ? (uint64_t)i64 : 0;
        sink += gg_get_f32(f, key, &f32) ? 1 : 0;
        sink += gg_get_bool(f, key, &b) ? b : 0;
        if (gg_get_str(f, key, &s) && s.len)
            sink += (unsigned char)s.ptr[s.len - 1];
        if (gg_get_arr(f, key, &et, &count)) {
            if (et == GG_VAL_STRING) {
                for (uint64_t j = 0; j < count && j < 4096; j++)
                    if (gg_arr_str(f, key, j, &s) && s.len)
                        sink += (unsigned char)s.ptr[0] + (unsigned char)s.ptr[s.len - 1];
            }
            const unsigned char *d = gg_arr_data(f, key);
            if (d && count)
                sink += d[0];
        }
        const void *raw;
        size_t rsz;
        if (gg_kv_raw(f, i, &raw, &rsz) && rsz)
            sink += ((const unsigned char *)raw)[rsz - 1];
    }
    for (size_t i = 0; i < gg_tensor_count(f); i++) {
        const struct gg_tensor *t = gg_tensor_at(f, i);
        const unsigned char *d = t->data;
        sink += d[0] + d[t->nbytes - 1];
        char name[256];
        size_t n = t->name.len < sizeof(name) - 1 ? (size_t)t->name.len : sizeof(name) - 1;
        memcpy(name, t->name.ptr, n);
        name[n] = '\0';
        sink += gg_tensor_find(f, name) != NULL;
    }
}

static void reencode(const struct gg_file *f)
{
    struct gg_writer *w = gg_writer_new();
    if (!w)
        return;
    char key[GG_MAX_KEY_LEN + 1];
    bool ok = gg_writer_set_version(w, gg_version(f)) == SP_OK;
    enum sp_status st = ok ? gg_writer_copy_kv(w, f, NULL) : SP_OK;
    if (st == SP_ERR_UNSUPPORTED)
        return gg_writer_free(w); /* C-string keys cannot hold NUL */
    ok = ok && st == SP_OK;
    for (size_t i = 0; ok && i < gg_tensor_count(f); i++) {
        const struct gg_tensor *t = gg_tensor_at(f, i);
        if (memchr(t->name.ptr, 0, t->name.len))
            return gg_writer_free(w);
        memcpy(key, t->name.ptr, t->name.len);
        key[t->name.len] = '\0';
        ok = gg_writer_add_tensor(w, key, t->type, t->n_dims, t->ne, t->data) == SP_OK;
    }
    void *buf = NULL;
    size_t size = 0;
    struct sp_err err;
    if (ok && gg_writer_write_mem(w, NULL, NULL, &buf, &size, &err) == SP_OK) {
        struct gg_file *g = NULL;
        if (gg_open_memory(buf, size, &g, &err) != SP_OK)
            abort(); /* the writer produced a file the reader rejects */
        if (gg_kv_count(g) != gg_kv_count(f) || gg_tensor_count(g) != gg_tensor_count(f))
            abort();
        gg_close(g);
        sp_free(buf);
    }
    gg_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gg_file *f = NULL;
    struct sp_err err;
    sp_err_clear(&err);
    enum sp_status st = gg_open_memory(data, size, &f, &err);
    if (st != SP_OK) {
        if (f || err.msg[0] == '\0')
            abort();
        return 0;
    }
    walk(f);
    if (size <= (1u << 20))
        reencode(f);
    gg_close(f);
    return 0;
}
