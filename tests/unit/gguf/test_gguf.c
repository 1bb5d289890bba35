/* test_gguf.c - the GGUF reader and writer on good files: the type table,
 * a writer round trip of every metadata type (memory and atomic file
 * output, fill callbacks, replace/remove), 10^6 metadata keys parsed (and
 * a duplicate among them rejected) with timings printed, and the shared
 * model files (../shared/models, ../shared/tokenizer-vectors) opening with
 * the expected tensor counts and types. */
#include "gguf/gguf.h"
#include "test.h"
#include "unit/gguf/gguf_bytes.h"

#include <dirent.h>
#include <time.h>

TEST(type_table)
{
    struct gg_type_info ti;
    CHECK(gg_type_info(GG_TYPE_Q4_K, &ti));
    CHECK_EQ_INT(ti.blck_size, 256);
    CHECK_EQ_INT(ti.type_size, 144);
    CHECK(gg_type_info(GG_TYPE_Q8_0, &ti) && ti.type_size == 34 && ti.blck_size == 32);
    CHECK(gg_type_info(GG_TYPE_Q6_K, &ti) && ti.type_size == 210);
    CHECK(gg_type_info(GG_TYPE_Q2_K, &ti) && ti.type_size == 84);
    CHECK(gg_type_info(GG_TYPE_Q3_K, &ti) && ti.type_size == 110);
    CHECK(gg_type_info(GG_TYPE_Q5_K, &ti) && ti.type_size == 176);
    CHECK(gg_type_info(GG_TYPE_Q8_K, &ti) && ti.type_size == 292);
    CHECK(gg_type_info(GG_TYPE_Q4_0, &ti) && ti.type_size == 18);
    CHECK(gg_type_info(GG_TYPE_Q4_1, &ti) && ti.type_size == 20);
    CHECK(gg_type_info(GG_TYPE_Q5_0, &ti) && ti.type_size == 22);
    CHECK(gg_type_info(GG_TYPE_Q5_1, &ti) && ti.type_size == 24);
    CHECK(gg_type_info(GG_TYPE_Q8_1, &ti) && ti.type_size == 36);
    CHECK(gg_type_info(GG_TYPE_BF16, &ti) && ti.type_size == 2 && ti.blck_size == 1);
    CHECK(gg_type_info(GG_TYPE_IQ4_NL, &ti) && ti.type_size == 18 && ti.blck_size == 32);
    CHECK(gg_type_info(GG_TYPE_IQ4_XS, &ti) && ti.type_size == 136 && ti.blck_size == 256);
    CHECK(!gg_type_info((enum gg_type)4, &ti));
    CHECK(!gg_type_info((enum gg_type)16, &ti));
    CHECK(!gg_type_info((enum gg_type)1000, &ti));
    CHECK_EQ_STR(gg_type_name(GG_TYPE_Q5_K), "Q5_K");
    CHECK_EQ_STR(gg_type_name((enum gg_type)5), "?");
    enum gg_type t;
    CHECK(gg_type_parse("q4_k", &t) && t == GG_TYPE_Q4_K);
    CHECK(gg_type_parse("BF16", &t) && t == GG_TYPE_BF16);
    CHECK(!gg_type_parse("Q4_K_M", &t));
    size_t rs;
    CHECK(gg_row_size(GG_TYPE_Q4_K, 512, &rs) && rs == 288);
    CHECK(!gg_row_size(GG_TYPE_Q4_K, 100, &rs));
    CHECK(gg_row_size(GG_TYPE_F32, 3, &rs) && rs == 12);
}

static enum sp_status fill_iota(void *ctx, size_t i, void *dst, size_t nbytes, struct sp_err *err)
{
    SP_UNUSED(ctx);
    SP_UNUSED(err);
    for (size_t k = 0; k < nbytes; k++)
        ((uint8_t *)dst)[k] = (uint8_t)(k + i);
    return SP_OK;
}

static struct gg_writer *build_writer(void)
{
    struct gg_writer *w = gg_writer_new();
    if (!w)
        return NULL;
    int32_t arr_i[3] = {-1, 0, 7};
    const char *toks[3] = {"<s>", "", "hello"};
    static const float fa[64] = {1, 2, 3};
    int ok = gg_writer_add_kv_str(w, "general.architecture", "llama") == SP_OK &&
             gg_writer_add_kv_u8(w, "t.u8", 200) == SP_OK && gg_writer_add_kv_i8(w, "t.i8", -5) == SP_OK &&
             gg_writer_add_kv_u16(w, "t.u16", 60000) == SP_OK && gg_writer_add_kv_i16(w, "t.i16", -300) == SP_OK &&
             gg_writer_add_kv_u32(w, "t.u32", 4000000000u) == SP_OK && gg_writer_add_kv_i32(w, "t.i32", -7) == SP_OK &&
             gg_writer_add_kv_f32(w, "t.f32", 1.5f) == SP_OK && gg_writer_add_kv_bool(w, "t.bool", true) == SP_OK &&
             gg_writer_add_kv_u64(w, "t.u64", 1ull << 40) == SP_OK &&
             gg_writer_add_kv_i64(w, "t.i64", -(1ll << 40)) == SP_OK && gg_writer_add_kv_f64(w, "t.f64", 0.25) == SP_OK &&
             gg_writer_add_kv_arr(w, "t.arr_i32", GG_VAL_I32, arr_i, 3) == SP_OK &&
             gg_writer_add_kv_arr_str(w, "t.tokens", toks, 3) == SP_OK &&
             gg_writer_add_kv_str(w, "t.replaced", "old") == SP_OK &&
             gg_writer_add_kv_str(w, "t.removed", "x") == SP_OK &&
             gg_writer_add_kv_u32(w, "general.alignment", 64) == SP_OK &&
             gg_writer_add_kv_str(w, "t.replaced", "new value") == SP_OK;
    gg_writer_remove_kv(w, "t.removed");
    int64_t ne_a[2] = {32, 2}, ne_b[2] = {256, 3}, ne_c[1] = {7};
    ok = ok && gg_writer_add_tensor(w, "a", GG_TYPE_F32, 2, ne_a, fa) == SP_OK &&
         gg_writer_add_tensor(w, "b", GG_TYPE_Q4_K, 2, ne_b, NULL) == SP_OK &&
         gg_writer_add_tensor(w, "c", GG_TYPE_F16, 1, ne_c, NULL) == SP_OK;
    if (!ok) {
        gg_writer_free(w);
        return NULL;
    }
    return w;
}

static void check_contents(const struct gg_file *f, int *ok)
{
    uint32_t u32;
    int64_t i64;
    float f32;
    bool b;
    struct gg_str s;
    enum gg_value_type et;
    uint64_t n;
    *ok = 0;
    if (!gg_get_str(f, "general.architecture", &s) || s.len != 5 || memcmp(s.ptr, "llama", 5))
        return;
    if (!gg_get_u32(f, "t.u8", &u32) || u32 != 200)
        return;
    if (gg_get_u32(f, "t.i8", &u32) || !gg_get_i64(f, "t.i8", &i64) || i64 != -5)
        return;
    if (!gg_get_u32(f, "t.u16", &u32) || u32 != 60000 || !gg_get_i64(f, "t.i16", &i64) || i64 != -300)
        return;
    if (!gg_get_u32(f, "t.u32", &u32) || u32 != 4000000000u || !gg_get_i64(f, "t.i32", &i64) || i64 != -7)
        return;
    if (gg_get_u32(f, "t.u64", &u32) || !gg_get_i64(f, "t.u64", &i64) || i64 != (1ll << 40))
        return;
    if (!gg_get_i64(f, "t.i64", &i64) || i64 != -(1ll << 40))
        return;
    if (!gg_get_f32(f, "t.f32", &f32) || f32 != 1.5f || !gg_get_f32(f, "t.f64", &f32) || f32 != 0.25f)
        return;
    if (gg_get_f32(f, "t.u32", &f32) || !gg_get_bool(f, "t.bool", &b) || !b)
        return;
    if (!gg_get_arr(f, "t.arr_i32", &et, &n) || et != GG_VAL_I32 || n != 3)
        return;
    int32_t a2;
    memcpy(&a2, (const char *)gg_arr_data(f, "t.arr_i32") + 8, 4);
    if (a2 != 7)
        return;
    if (!gg_get_arr(f, "t.tokens", &et, &n) || et != GG_VAL_STRING || n != 3)
        return;
    if (!gg_arr_str(f, "t.tokens", 2, &s) || s.len != 5 || memcmp(s.ptr, "hello", 5))
        return;
    if (!gg_arr_str(f, "t.tokens", 1, &s) || s.len != 0 || gg_arr_str(f, "t.tokens", 3, &s))
        return;
    if (gg_arr_data(f, "t.tokens") || !gg_get_str(f, "t.replaced", &s) || s.len != 9)
        return;
    if (gg_kv_find(f, "t.removed") >= 0 || gg_kv_find(f, "nope") >= 0)
        return;
    if (gg_alignment(f) != 64 || gg_tensor_count(f) != 3)
        return;
    const struct gg_tensor *t = gg_tensor_find(f, "b");
    if (!t || t->type != GG_TYPE_Q4_K || t->nbytes != 3 * 144 || t->ne[0] != 256 || t->ne[1] != 3 ||
        t->ne[2] != 1 || t->n_dims != 2)
        return;
    if (((const uint8_t *)t->data)[5] != 6 || t->offset % 64 != 0)
        return;
    const struct gg_tensor *a = gg_tensor_at(f, 0);
    if (!a || ((const float *)a->data)[2] != 3.0f || gg_tensor_find(f, "zz"))
        return;
    *ok = 1;
}

/* resident pages of this process (/proc/self/statm), or -1 */
static long resident_pages(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long size = 0, res = -1;
    if (fp) {
        if (fscanf(fp, "%ld %ld", &size, &res) != 2)
            res = -1;
        fclose(fp);
    }
    return res;
}

/* gg_file_drop: a file mapping's pages leave the resident set and read back
 * the same bytes; a memory buffer (anonymous memory, where MADV_DONTNEED
 * would zero it) and a range outside the mapping are left alone. */
TEST(file_drop_pages)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/test_gguf_drop_%d.gguf", getenv("SPOKE_BUILD_DIR") ? getenv("SPOKE_BUILD_DIR") : ".",
             (int)getpid());
    struct gg_writer *w = gg_writer_new();
    CHECK(w);
    const int64_t ne[2] = {1024, 2048}; /* 8 MiB of F32 */
    CHECK(gg_writer_add_tensor(w, "big", GG_TYPE_F32, 2, ne, NULL) == SP_OK);
    struct sp_err err;
    void *buf = NULL;
    size_t size = 0;
    CHECK(gg_writer_write_mem(w, fill_iota, NULL, &buf, &size, &err) == SP_OK);
    enum sp_status st = gg_writer_write(w, path, fill_iota, NULL, &err);
    gg_writer_free(w);
    CHECK_MSG(st == SP_OK, "%s", err.msg);
    struct gg_file *f = NULL, *m = NULL;
    CHECK_MSG(gg_open(path, &f, &err) == SP_OK, "%s", err.msg);
    unlink(path); /* the mapping keeps the file */
    const struct gg_tensor *t = gg_tensor_find(f, "big");
    CHECK(t && t->nbytes == (size_t)8 << 20);
    unsigned sum = 0;
    for (size_t i = 0; i < t->nbytes; i += 64) /* fault every page in */
        sum += ((const uint8_t *)t->data)[i];
    const long before = resident_pages();
    gg_file_drop(f, t->data, t->nbytes);
    const long after = resident_pages();
    const long page = sysconf(_SC_PAGESIZE);
    /* 3/4 of the pages: the sanitizers' allocator may touch a few pages of its own meanwhile */
    CHECK_MSG(before > 0 && before - after >= (long)(t->nbytes / (size_t)page) * 3 / 4, "resident %ld -> %ld pages",
              before, after);
    unsigned sum2 = 0;
    int same = 1;
    for (size_t i = 0; i < t->nbytes; i++) {
        const uint8_t v = ((const uint8_t *)t->data)[i];
        same &= v == (uint8_t)i;
        if (i % 64 == 0)
            sum2 += v;
    }
    CHECK(same && sum == sum2);
    gg_file_drop(f, (const char *)t->data + t->nbytes, 1 << 20); /* past the end: nothing */
    gg_close(f);
    /* a memory buffer keeps its bytes */
    CHECK_MSG(gg_open_memory(buf, size, &m, &err) == SP_OK, "%s", err.msg);
    t = gg_tensor_find(m, "big");
    CHECK(t);
    gg_file_drop(m, t->data, t->nbytes);
    same = 1;
    for (size_t i = 0; i < t->nbytes; i++)
        same &= ((const uint8_t *)t->data)[i] == (uint8_t)i;
    gg_close(m);
    sp_free(buf);
    CHECK(same);
}

TEST(writer_roundtrip_memory)
{
    struct gg_writer *w = build_writer();
    CHECK(w);
    void *buf;
    size_t size;
    struct sp_err err;
    CHECK(gg_writer_write_mem(w, fill_iota, NULL, &buf, &size, &err) == SP_OK);
    struct gg_file *f = NULL;
    CHECK_MSG(gg_open_memory(buf, size, &f, &err) == SP_OK, "%s", err.msg);
    int ok;
    check_contents(f, &ok);
    gg_close(f);
    CHECK(ok);
    /* v2 */
    CHECK(gg_writer_set_version(w, 2) == SP_OK);
    CHECK(gg_writer_set_version(w, 1) == SP_ERR_INVALID);
    sp_free(buf);
    CHECK(gg_writer_write_mem(w, fill_iota, NULL, &buf, &size, &err) == SP_OK);
    CHECK_MSG(gg_open_memory(buf, size, &f, &err) == SP_OK, "%s", err.msg);
    CHECK_EQ_INT(gg_version(f), 2);
    gg_close(f);
    sp_free(buf);
    /* errors */
    int64_t ne[2] = {32, 2}, bad[2] = {33, 2}, zero[2] = {0, 1};
    CHECK(gg_writer_add_tensor(w, "a", GG_TYPE_F32, 2, ne, NULL) == SP_ERR_INVALID);
    CHECK(gg_writer_add_tensor(w, "x", GG_TYPE_Q8_0, 2, bad, NULL) == SP_ERR_INVALID);
    CHECK(gg_writer_add_tensor(w, "x", GG_TYPE_F32, 2, zero, NULL) == SP_ERR_INVALID);
    CHECK(gg_writer_add_tensor(w, "x", GG_TYPE_F32, 5, ne, NULL) == SP_ERR_INVALID);
    CHECK(gg_writer_add_tensor(w, "x", (enum gg_type)21 /* IQ3_S */, 2, ne, NULL) == SP_ERR_UNSUPPORTED);
    CHECK(gg_writer_add_kv_u32(w, "", 1) == SP_ERR_INVALID);
    CHECK(gg_writer_add_kv_arr(w, "k", GG_VAL_STRING, NULL, 0) == SP_ERR_INVALID);
    CHECK_EQ_INT(gg_writer_tensor_count(w), 3);
    /* no fill callback for tensors without data */
    CHECK(gg_writer_write_mem(w, NULL, NULL, &buf, &size, &err) == SP_ERR_INVALID);
    gg_writer_free(w);
    gg_writer_free(NULL);
}

TEST(writer_file_atomic)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/test_gguf_out_%d.gguf", getenv("SPOKE_BUILD_DIR") ? getenv("SPOKE_BUILD_DIR") : ".",
             (int)getpid());
    struct gg_writer *w = build_writer();
    CHECK(w);
    struct sp_err err;
    enum sp_status st = gg_writer_write(w, path, fill_iota, NULL, &err);
    gg_writer_free(w);
    CHECK_MSG(st == SP_OK, "%s", err.msg);
    struct gg_file *f = NULL;
    CHECK_MSG(gg_open(path, &f, &err) == SP_OK, "%s", err.msg);
    int ok;
    check_contents(f, &ok);
    CHECK(((uintptr_t)gg_tensor_find(f, "b")->data) % 64 == 0);
    gg_close(f);
    unlink(path);
    CHECK(ok);
    /* a failing fill leaves no file behind */
    w = build_writer();
    CHECK(w);
    st = gg_writer_write(w, "/nonexistent-dir/x.gguf", fill_iota, NULL, &err);
    gg_writer_free(w);
    CHECK(st == SP_ERR_IO);
    CHECK(gg_open("/nonexistent-dir/x.gguf", &f, &err) == SP_ERR_NOT_FOUND);
    CHECK(f == NULL);
}

/* n keys "k.0000000".. of type u32; with dup, the last key repeats the first. */
static void make_many_keys(struct bb *b, uint32_t n, int dup)
{
    bb_hdr(b, 3, 0, n);
    char key[32];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "general.k.%07u", (dup && i == n - 1) ? 0u : i);
        bb_kv_u32(b, key, i);
    }
}

/* CPU time of this thread in ms: unlike wall time it does not grow when
 * other processes share the cores, so the bound below checks the algorithm
 * (linear, not quadratic), not the machine's load. */
static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

TEST(million_keys)
{
    const uint32_t n = 1000000;
    struct bb b = {0};
    make_many_keys(&b, n, 0);
    struct gg_file *f = NULL;
    struct sp_err err;
    double t0 = thread_cpu_ms();
    enum sp_status st = gg_open_memory(b.p, b.len, &f, &err);
    double ms_ok = thread_cpu_ms() - t0;
    CHECK_MSG(st == SP_OK, "%s", err.msg);
    CHECK_EQ_INT(gg_kv_count(f), n);
    uint32_t v;
    CHECK(gg_get_u32(f, "general.k.0765432", &v) && v == 765432);
    gg_close(f);
    bb_free(&b);
    make_many_keys(&b, n, 1);
    t0 = thread_cpu_ms();
    st = gg_open_memory(b.p, b.len, &f, &err);
    double ms_dup = thread_cpu_ms() - t0;
    bb_free(&b);
    CHECK(st == SP_ERR_FORMAT && f == NULL);
    CHECK_EQ_STR(err.context, "general.k.0000000");
    fprintf(stderr, "  10^6 keys: parsed in %.1f ms, duplicate rejected in %.1f ms of CPU time%s\n", ms_ok, ms_dup,
            getenv("SPOKE_ASAN") ? " (ASan build)" : "");
    /* generous bound on CPU time: the target is < 1 s; ASan is ~3x slower; a
     * quadratic duplicate check would take hours */
    double bound = getenv("SPOKE_ASAN") ? 30000.0 : 5000.0;
    CHECK(ms_ok < bound && ms_dup < bound);
}

struct model_expect {
    const char *file;
    size_t n_tensors;
    int n_f32, n_f16, n_q8_0, n_q5_0, n_q5_1, n_q4_0;
};

TEST(shared_models)
{
    static const struct model_expect models[] = {
        {"models/stories260K.gguf", 48, 48, 0, 0, 0, 0, 0},
        {"models/stories260K-f16.gguf", 48, 11, 37, 0, 0, 0, 0},
        {"models/stories260K-q8_0.gguf", 48, 11, 5, 32, 0, 0, 0},
        {"models/stories260K-q5_1.gguf", 48, 11, 5, 3, 0, 29, 0},
        {"models/stories260K-q5_0.gguf", 48, 11, 5, 3, 29, 0, 0},
        {"models/stories260K-q4_0.gguf", 48, 11, 5, 1, 0, 0, 31},
        {"models/llama-2-tiny-random.gguf", 12, 3, 9, 0, 0, 0, 0},
    };
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        SKIP("shared models not found under %s (set SPOKE_SHARED)", test_shared_path());
    for (size_t m = 0; m < SP_ARRAY_LEN(models); m++) {
        const struct model_expect *e = &models[m];
        CHECK_MSG(test_shared_file(path, sizeof(path), e->file), "missing %s", path);
        struct gg_file *f = NULL;
        struct sp_err err;
        CHECK_MSG(gg_open(path, &f, &err) == SP_OK, "%s: %s", path, err.msg);
        int cnt[GG_TYPE_COUNT] = {0};
        for (size_t i = 0; i < gg_tensor_count(f); i++)
            cnt[gg_tensor_at(f, i)->type]++;
        size_t nt = gg_tensor_count(f);
        uint32_t blocks = 0;
        uint64_t n_tok = 0;
        bool has_blocks = gg_get_u32(f, "llama.block_count", &blocks);
        bool has_tok = gg_get_arr(f, "tokenizer.ggml.tokens", NULL, &n_tok);
        struct gg_str s1 = {0};
        bool has_s1 = gg_arr_str(f, "tokenizer.ggml.tokens", 1, &s1);
        has_s1 = has_s1 && s1.len == 3 && memcmp(s1.ptr, "<s>", 3) == 0;
        gg_close(f);
        CHECK_MSG(nt == e->n_tensors, "%s: %zu tensors", e->file, nt);
        CHECK_MSG(cnt[GG_TYPE_F32] == e->n_f32 && cnt[GG_TYPE_F16] == e->n_f16 && cnt[GG_TYPE_Q8_0] == e->n_q8_0 &&
                      cnt[GG_TYPE_Q5_0] == e->n_q5_0 && cnt[GG_TYPE_Q5_1] == e->n_q5_1 &&
                      cnt[GG_TYPE_Q4_0] == e->n_q4_0,
                  "%s: type counts differ", e->file);
        CHECK(has_blocks && (blocks == 5 || blocks == 1));
        CHECK(has_tok && (n_tok == 512 || n_tok == 32000));
        CHECK(has_s1);
    }
    /* stories260K details */
    test_shared_file(path, sizeof(path), "models/stories260K.gguf");
    struct gg_file *f = NULL;
    struct sp_err err;
    CHECK(gg_open(path, &f, &err) == SP_OK);
    const struct gg_tensor *t = gg_tensor_find(f, "blk.4.ffn_down.weight");
    int ok = t && t->ne[0] == 172 && t->ne[1] == 64 && t->nbytes == 172 * 64 * 4 &&
             gg_tensor_find(f, "token_embd.weight") && gg_version(f) == 3 && gg_alignment(f) == 32 &&
             gg_data_offset(f) % 32 == 0 && gg_file_size(f) == 1185376;
    gg_close(f);
    CHECK(ok);
}

TEST(shared_vocab_files)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tokenizer-vectors", test_shared_path());
    DIR *d = opendir(dir);
    if (!d)
        SKIP("no %s", dir);
    int n = 0, failed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 5, ".gguf") != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct gg_file *f = NULL;
        struct sp_err err;
        if (gg_open(path, &f, &err) != SP_OK) {
            fprintf(stderr, "  %s: %s\n", de->d_name, err.msg);
            failed++;
        } else {
            uint64_t nt = 0;
            if (!gg_get_arr(f, "tokenizer.ggml.tokens", NULL, &nt) || nt == 0) {
                fprintf(stderr, "  %s: no tokens\n", de->d_name);
                failed++;
            }
            gg_close(f);
        }
        n++;
    }
    closedir(d);
    fprintf(stderr, "  %d vocab files opened, %d failed\n", n, failed);
    CHECK(n > 0);
    CHECK_EQ_INT(failed, 0);
}

int main(void)
{
    RUN(type_table);
    RUN(writer_roundtrip_memory);
    RUN(writer_file_atomic);
    RUN(file_drop_pages);
    RUN(million_keys);
    RUN(shared_models);
    RUN(shared_vocab_files);
    return test_summary();
}
