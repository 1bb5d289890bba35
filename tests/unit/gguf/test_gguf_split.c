/* test_gguf_split.c - split GGUF models (gguf_split.c): stories260K written
 * as 3 shards the way llama.cpp's gguf-split lays them out loads through
 * gg_split_open + model_load_split and engine_model_load, with logits bit-
 * identical to the single file; every broken set (missing shard, a middle
 * shard opened, unfindable names, wrong numbering, a tensor in two shards,
 * a wrong tensor total, split.count 0) is refused with its typed error; a
 * plain file is a set of one; every allocation failed in turn; the
 * shard-name parser's edges. */
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];

struct shard_opts {
    int no_override;      /* -1: the right split.no */
    int dup_first_tensor; /* also put tensor 0 into this shard */
    int tensors_count;    /* split.tensors.count to write (first shard) */
    int count;            /* split.count to write */
};

/* Write shard `no` (0-based) of 3 of f's tensors: shard 0 also gets all metadata. */
static void write_shard(const struct gg_file *f, int no, const char *path, const struct shard_opts *o)
{
    struct gg_writer *w = gg_writer_new();
    CHECK(w != NULL);
    if (no == 0) {
        CHECK(gg_writer_copy_kv(w, f, NULL) == SP_OK);
        CHECK(gg_writer_add_kv_i32(w, "split.tensors.count", o->tensors_count) == SP_OK);
    }
    CHECK(gg_writer_add_kv_u16(w, "split.no", (uint16_t)(o->no_override >= 0 ? o->no_override : no)) == SP_OK);
    CHECK(gg_writer_add_kv_u16(w, "split.count", (uint16_t)o->count) == SP_OK);
    size_t n = gg_tensor_count(f), per = (n + 2) / 3;
    for (size_t i = 0; i < n; i++) {
        bool mine = i / per == (size_t)no || (o->dup_first_tensor && i == 0);
        if (!mine)
            continue;
        const struct gg_tensor *t = gg_tensor_at(f, i);
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)t->name.len, t->name.ptr);
        CHECK(gg_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data) == SP_OK);
    }
    CHECK(gg_writer_write(w, path, NULL, NULL, NULL) == SP_OK);
    gg_writer_free(w);
}

static void shard_path(char *buf, size_t n, const char *stem, int no, int count)
{
    snprintf(buf, n, "%s/%s-%05d-of-%05d.gguf", g_dir, stem, no + 1, count);
}

static void write_set(const struct gg_file *f, const char *stem, const struct shard_opts o[3])
{
    char p[512];
    for (int i = 0; i < 3; i++) {
        shard_path(p, sizeof(p), stem, i, 3);
        write_shard(f, i, p, &o[i]);
    }
}

static const struct shard_opts k_good = {-1, 0, 48, 3};

static void logits_of(const struct model *m, float *out)
{
    struct model_state_opts so = {.n_ctx = 32, .n_threads = 2, .kv_type = KV_F16};
    struct model_state *st = NULL;
    int32_t toks[5] = {1, 403, 407, 261, 378};
    CHECK(model_state_new(m, &so, &st, NULL) == SP_OK);
    CHECK(model_eval(st, toks, 5, 0, out, NULL) == SP_OK);
    model_state_free(st);
}

static enum sp_status open_status(const char *stem, int no, struct sp_err *err)
{
    char p[512];
    shard_path(p, sizeof(p), stem, no, 3);
    struct gg_split *s = NULL;
    enum sp_status st = gg_split_open(p, &s, err);
    if ((st == SP_OK) != (s != NULL))
        st = SP_ERR_INTERNAL; /* fails the caller's check */
    gg_split_close(s);
    return st;
}

TEST(split_model_equals_single_file)
{
    char path[1024];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        SKIP("stories260K.gguf not found");
    struct gg_file *f = NULL;
    struct model *m1 = NULL, *m2 = NULL;
    CHECK(gg_open(path, &f, NULL) == SP_OK);
    CHECK_EQ_INT((int)gg_tensor_count(f), 48);
    const struct shard_opts good[3] = {k_good, k_good, k_good};
    write_set(f, "good", good);

    char p[512];
    shard_path(p, sizeof(p), "good", 0, 3);
    struct gg_split *s = NULL;
    struct sp_err err = {0};
    CHECK(gg_split_open(p, &s, &err) == SP_OK);
    CHECK_EQ_INT((int)gg_split_count(s), 3);
    CHECK(gg_split_tensor_find(s, "output.weight") != NULL);
    CHECK(gg_split_tensor_find(s, "blk.0.attn_q.weight") != NULL);
    CHECK(gg_split_tensor_find(s, "nope") == NULL);
    CHECK(model_load(f, &m1, NULL) == SP_OK);
    CHECK(model_load_split(s, &m2, &err) == SP_OK);
    CHECK(m1->weight_bytes == m2->weight_bytes);
    static float l1[512], l2[512];
    logits_of(m1, l1);
    logits_of(m2, l2);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    model_free(m2);
    gg_split_close(s);

    /* the engine (spoke run / serve) takes the first shard's path */
    struct engine_load_opts lo = {.path = p, .n_ctx = 64, .n_threads = 1, .skip_mem_check = true};
    struct engine_model *em = NULL;
    CHECK(engine_model_load(&lo, &em, &err) == SP_OK);
    size_t want = 0;
    for (size_t i = 0; i < gg_tensor_count(f); i++) {
        const struct gg_tensor *t = gg_tensor_at(f, i);
        want += (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    if (em)
        CHECK(engine_model_n_params(em) == want);
    engine_model_free(em);

    /* a plain file is a set of one */
    CHECK(gg_split_open(path, &s, NULL) == SP_OK);
    CHECK_EQ_INT((int)gg_split_count(s), 1);
    gg_split_close(s);
    model_free(m1);
    gg_close(f);
}

TEST(broken_sets_are_refused)
{
    char path[1024], p[512], q[512];
    if (!test_shared_file(path, sizeof(path), "models/stories260K.gguf"))
        SKIP("stories260K.gguf not found");
    struct gg_file *f = NULL;
    CHECK(gg_open(path, &f, NULL) == SP_OK);
    struct sp_err err = {0};
    const struct shard_opts good[3] = {k_good, k_good, k_good};

    /* a missing shard: named in the message */
    write_set(f, "miss", good);
    shard_path(p, sizeof(p), "miss", 2, 3);
    CHECK(unlink(p) == 0);
    CHECK_EQ_INT(open_status("miss", 0, &err), SP_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "miss-00003-of-00003.gguf") != NULL);
    printf("  missing shard: %s\n", err.msg);

    /* a middle shard opened */
    CHECK_EQ_INT(open_status("good", 1, &err), SP_ERR_INVALID);
    CHECK(strstr(err.msg, "first shard") != NULL);
    printf("  middle shard: %s\n", err.msg);

    /* the first shard under a name that does not lead to the others */
    shard_path(p, sizeof(p), "good", 0, 3);
    snprintf(q, sizeof(q), "%s/renamed.gguf", g_dir);
    CHECK(link(p, q) == 0);
    struct gg_split *s = NULL;
    CHECK_EQ_INT(gg_split_open(q, &s, &err), SP_ERR_INVALID);
    printf("  renamed: %s\n", err.msg);

    /* sets with one shard altered: each a format error with a message */
    struct {
        const char *stem;
        int shard;
        struct shard_opts o;
    } bad[] = {
        {"misnum", 1, {2, 0, 48, 3}},   /* shard 2 claims to be shard 3 */
        {"miscount", 2, {-1, 0, 48, 4}}, /* shard 3 says the set has 4 */
        {"dup", 2, {-1, 1, 48, 3}},      /* token_embd.weight in shards 1 and 3 */
        {"total", 0, {-1, 0, 47, 3}},    /* split.tensors.count disagrees */
        {"zero", 0, {-1, 0, 48, 0}},     /* split.count 0 */
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        struct shard_opts o[3] = {k_good, k_good, k_good};
        o[bad[i].shard] = bad[i].o;
        write_set(f, bad[i].stem, o);
        CHECK_EQ_INT(open_status(bad[i].stem, 0, &err), SP_ERR_FORMAT);
        CHECK(err.msg[0] != '\0');
        printf("  %s: %s\n", bad[i].stem, err.msg);
    }
    CHECK(open_status("dup", 0, &err) == SP_ERR_FORMAT && strstr(err.msg, "token_embd.weight") != NULL);

    /* the engine passes these errors through */
    shard_path(p, sizeof(p), "miss", 0, 3);
    struct engine_load_opts lo = {.path = p, .n_ctx = 64, .n_threads = 1, .skip_mem_check = true};
    struct engine_model *em = NULL;
    CHECK_EQ_INT(engine_model_load(&lo, &em, &err), SP_ERR_NOT_FOUND);
    CHECK(em == NULL);
    gg_close(f);
}

/* every allocation of gg_split_open failed in turn: NOMEM, nothing leaked */
TEST(allocation_failures)
{
    char p[512];
    shard_path(p, sizeof(p), "good", 0, 3);
    if (access(p, R_OK) != 0)
        SKIP("no split set written (stories260K.gguf not found)");
    size_t base_mem = sp_mem_in_use();
    int failures = 0;
    for (long n = 1; n < 400; n++) {
        struct gg_split *s = NULL;
        struct sp_err err;
        sp_mem_fail_after(n, 0);
        enum sp_status st = gg_split_open(p, &s, &err);
        sp_mem_fail_after(0, 0);
        if (st == SP_OK) {
            CHECK_EQ_INT((int)gg_split_count(s), 3);
            gg_split_close(s);
            break;
        }
        CHECK_MSG(st == SP_ERR_NOMEM, "fail at %ld: %s (%s)", n, sp_status_name(st), err.msg);
        CHECK(s == NULL);
        failures++;
    }
    printf("  %d allocation failures, each a clean SP_ERR_NOMEM\n", failures);
    CHECK(failures > 5);
    CHECK_EQ_INT(sp_mem_in_use(), base_mem);
}

TEST(shard_name_parser)
{
    size_t pl;
    unsigned k, n;
    CHECK(gg_split_name_parse("a/big-00002-of-00003.gguf", &pl, &k, &n) && k == 2 && n == 3 && pl == 5);
    CHECK(!gg_split_name_parse("-00001-of-00003.gguf", &pl, &k, &n)); /* empty prefix */
    CHECK(!gg_split_name_parse("big-00004-of-00003.gguf", &pl, &k, &n));
    CHECK(!gg_split_name_parse("big-00000-of-00003.gguf", &pl, &k, &n));
    CHECK(!gg_split_name_parse("big-00001-of-00000.gguf", &pl, &k, &n));
    CHECK(!gg_split_name_parse("big-00001-of-10000.gguf", &pl, &k, &n));
    CHECK(!gg_split_name_parse("big-0001a-of-00003.gguf", &pl, &k, &n));
    CHECK(!gg_split_name_parse("big-00001-of-00003.GGUF", &pl, &k, &n));
    CHECK(!gg_split_name_parse("big.gguf", &pl, &k, &n));
    CHECK(!gg_split_name_parse("", &pl, &k, &n));
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "%s/spoke-split-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(split_model_equals_single_file);
    RUN(broken_sets_are_refused);
    RUN(allocation_failures);
    RUN(shard_name_parser);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary();
}
