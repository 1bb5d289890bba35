/* test_cache.c - unit tests of the cache layer: root, safe joins (including a
 * planted symlink that points out of the cache), metadata round trip,
 * listing, removal that never follows links, the standard HF cache lookup
 * and hard-link install, and the quant / split choice of app/pull. */
#include "app/pull.h"
#include "cache/cache.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

static char tmpdir[64];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void sh(const char *fmt, const char *arg)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), fmt, arg);
    if (system(cmd) != 0)
        fprintf(stderr, "command failed: %s\n", cmd);
}

TEST(root_and_dirs)
{
    char *root = NULL, *rd = NULL, *fp = NULL;
    setenv("SPOKE_HOME", tmpdir, 1);
    CHECK(cache_root(&root, NULL) == SP_OK);
    char want[128];
    snprintf(want, sizeof(want), "%s/models", tmpdir);
    CHECK_EQ_STR(root, want);
    CHECK(cache_revision_dir(root, "m", "main", true, &rd, NULL) == SP_OK);
    struct stat st;
    CHECK(stat(rd, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(cache_file_path(rd, "sub/x.gguf", true, &fp, NULL) == SP_OK);
    sp_free(fp);
    fp = NULL;
    static const char *const bad[] = {"../x", "/abs", "a\\b", ".spoke-meta.json", "x.incomplete",
                                      "x.lock", "a/../../b", ""};
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        CHECK_MSG(cache_file_path(rd, bad[i], false, &fp, NULL) == SP_ERR_INVALID, "%s", bad[i]);
        CHECK(fp == NULL);
    }
    char *x = NULL;
    CHECK(cache_revision_dir(root, "..", "main", true, &x, NULL) == SP_ERR_INVALID);
    CHECK(cache_revision_dir(root, "m", "..", true, &x, NULL) == SP_ERR_INVALID);
    CHECK(cache_revision_dir(root, "m", "a/b", true, &x, NULL) == SP_ERR_INVALID);
    /* a planted symlink leading out of the revision dir is refused */
    char link[256];
    snprintf(link, sizeof(link), "%s/escape", rd);
    CHECK(symlink("/tmp", link) == 0);
    CHECK(cache_file_path(rd, "escape/x.gguf", true, &fp, NULL) == SP_ERR_INVALID);
    CHECK(fp == NULL);
    unlink(link);
    sp_free(rd);
    sp_free(root);
}

TEST(meta_roundtrip)
{
    char *root = NULL, *rd = NULL;
    struct cache_meta *m = NULL, *m2 = NULL;
    CHECK(cache_root(&root, NULL) == SP_OK);
    CHECK(cache_revision_dir(root, "meta", "v1", true, &rd, NULL) == SP_OK);
    CHECK(cache_meta_load(rd, &m, NULL) == SP_ERR_NOT_FOUND);
    CHECK(cache_meta_new(&m, NULL) == SP_OK);
    CHECK(cache_meta_set_str(&m->repo, "org/meta", NULL) == SP_OK);
    CHECK(cache_meta_set_str(&m->commit, "0123456789abcdef0123456789abcdef01234567", NULL) == SP_OK);
    CHECK(cache_meta_set_str(&m->primary, "a.gguf", NULL) == SP_OK);
    m->pulled_ms = 1700000000123;
    CHECK(cache_meta_set_file(m, "a.gguf", 42,
                              "afe50acf3d9e877bdd76a0b1d4c2b4f6603ad68fdb918b5c7181a45d12fe89f5",
                              NULL) == SP_OK);
    CHECK(cache_meta_set_file(m, "b.json", 7, NULL, NULL) == SP_OK);
    CHECK(cache_meta_set_file(m, "a.gguf", 43, NULL, NULL) == SP_OK); /* update keeps sha */
    CHECK(cache_meta_save(rd, m, NULL) == SP_OK);
    CHECK(cache_meta_load(rd, &m2, NULL) == SP_OK);
    CHECK_EQ_STR(m2->repo, "org/meta");
    CHECK_EQ_STR(m2->primary, "a.gguf");
    CHECK_EQ_INT(m2->pulled_ms, 1700000000123);
    CHECK_EQ_INT(m2->n_files, 2);
    const struct cache_meta_file *f = cache_meta_find(m2, "a.gguf");
    CHECK(f && f->size == 43 && strlen(f->sha256) == 64);
    CHECK(cache_meta_find(m2, "b.json")->sha256[0] == '\0');
    cache_meta_free(m);
    cache_meta_free(m2);
    m2 = NULL;
    const char *hostile = "{\"files\":[{\"path\":\"../x\",\"size\":1},{\"path\":\"ok\",\"size\":-1}]}";
    CHECK(cache_meta_parse(hostile, strlen(hostile), &m2, NULL) == SP_OK);
    CHECK_EQ_INT(m2->n_files, 0);
    cache_meta_free(m2);
    CHECK(cache_meta_parse("[", 1, &m2, NULL) == SP_ERR_FORMAT);
    sp_free(rd);
    sp_free(root);
}

TEST(list_and_remove)
{
    char *root = NULL, *rd = NULL, p[512];
    CHECK(cache_root(&root, NULL) == SP_OK);
    CHECK(cache_revision_dir(root, "lst", "main", true, &rd, NULL) == SP_OK);
    snprintf(p, sizeof(p), "%s/m-Q4_0.gguf", rd);
    put(p, "12345");
    snprintf(p, sizeof(p), "%s/m-Q8_0.gguf.incomplete", rd);
    put(p, "xx");
    snprintf(p, sizeof(p), "%s/.cache", rd);
    mkdir(p, 0755);
    /* a symlink out of the cache that rm must remove, not follow */
    char outside[256];
    snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
    mkdir(outside, 0755);
    snprintf(p, sizeof(p), "%s/outside/keep", tmpdir);
    put(p, "keep");
    snprintf(p, sizeof(p), "%s/link", rd);
    CHECK(symlink(outside, p) == 0);
    char **files = NULL;
    size_t n = 0;
    CHECK(cache_list_files(rd, &files, &n, NULL) == SP_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(files[0], "m-Q4_0.gguf");
    cache_strv_free(files, n);
    struct cache_entry *e = NULL;
    CHECK(cache_list(root, &e, &n, NULL) == SP_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, "lst") == 0) {
            found = true;
            CHECK_EQ_INT(e[i].n_files, 1);
            CHECK_EQ_INT(e[i].bytes, 5);
        }
    CHECK(found);
    cache_list_free(e, n);
    CHECK(cache_remove(root, "../x", NULL, NULL) == SP_ERR_INVALID);
    CHECK(cache_remove(root, "lst", "../../x", NULL) == SP_ERR_INVALID);
    CHECK(cache_remove(root, "nope", NULL, NULL) == SP_ERR_NOT_FOUND);
    CHECK(cache_remove(root, "lst", "main", NULL) == SP_OK);
    snprintf(p, sizeof(p), "%s/outside/keep", tmpdir);
    CHECK(access(p, F_OK) == 0);
    CHECK(access(rd, F_OK) != 0);
    sp_free(rd);
    sp_free(root);
}

TEST(hf_cache)
{
    char p[512], *found = NULL, *root = NULL, *rd = NULL, *dest = NULL;
    const char *commit = "0123456789abcdef0123456789abcdef01234567";
    snprintf(p, sizeof(p), "%s/hf", tmpdir);
    setenv("HF_HUB_CACHE", p, 1);
    sh("mkdir -p '%s/models--org--m/snapshots/0123456789abcdef0123456789abcdef01234567' "
       "&& true", p);
    snprintf(p, sizeof(p), "%s/hf/models--org--m/blobs", tmpdir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/hf/models--org--m/blobs/abc", tmpdir);
    put(p, "abc");
    snprintf(p, sizeof(p), "%s/hf/models--org--m/snapshots/%s/m.gguf", tmpdir, commit);
    CHECK(symlink("../../blobs/abc", p) == 0);
    snprintf(p, sizeof(p), "%s/hf/models--org--m/refs", tmpdir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/hf/models--org--m/refs/main", tmpdir);
    put(p, "0123456789abcdef0123456789abcdef01234567\n");
    struct hub_id id;
    CHECK(hub_id_parse("org/m", 5, &id, NULL) == SP_OK);
    char c[65];
    CHECK(cache_hf_commit(&id, "main", c) == SP_OK);
    CHECK_EQ_STR(c, commit);
    CHECK(cache_hf_commit(&id, "dev", c) == SP_ERR_NOT_FOUND);
    CHECK(cache_hf_find(&id, commit, "m.gguf", &found, NULL) == SP_OK);
    CHECK(cache_hf_find(&id, commit, "../m.gguf", &dest, NULL) == SP_ERR_NOT_FOUND);
    CHECK(cache_root(&root, NULL) == SP_OK);
    CHECK(cache_revision_dir(root, "hfm", "main", true, &rd, NULL) == SP_OK);
    CHECK(cache_file_path(rd, "m.gguf", true, &dest, NULL) == SP_OK);
    CHECK(cache_install_from(found, dest, 4, true, NULL, NULL) == SP_ERR_INTEGRITY);
    CHECK(access(dest, F_OK) != 0);
    CHECK(cache_install_from(found, dest, 3, true,
                             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                             NULL) == SP_OK);
    struct stat st;
    CHECK(lstat(dest, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 3);
    unsetenv("HF_HUB_CACHE");
    sp_free(found);
    sp_free(dest);
    sp_free(rd);
    sp_free(root);
}

TEST(choose)
{
    const char *a[] = {"README.md", "m-Q8_0.gguf", "m-Q4_0.gguf", "m-Q4_K_M.gguf", "mmproj-Q4_K_M.gguf"};
    CHECK_EQ_INT(app_choose_gguf(a, 5, NULL), 3);
    CHECK_EQ_INT(app_choose_gguf(a, 5, "Q8_0"), 1);
    CHECK_EQ_INT(app_choose_gguf(a, 5, "q4_0"), 2);
    CHECK_EQ_INT(app_choose_gguf(a, 5, "Q5_K_M"), -1);
    const char *b[] = {"x.F16.gguf", "y.Q2_K.gguf"};
    CHECK_EQ_INT(app_choose_gguf(b, 2, NULL), 0);
    const char *c[] = {"big-Q4_K_M-00002-of-00003.gguf", "big-Q4_K_M-00001-of-00003.gguf"};
    CHECK_EQ_INT(app_choose_gguf(c, 2, NULL), 1);
    const char *d[] = {"README.md"};
    CHECK_EQ_INT(app_choose_gguf(d, 1, NULL), -1);
    unsigned k, n;
    CHECK(app_split_parse("big-00002-of-00003.gguf", &k, &n) && k == 2 && n == 3);
    CHECK(!app_split_parse("big-00004-of-00003.gguf", &k, &n));
    CHECK(!app_split_parse("big-00000-of-00003.gguf", &k, &n));
    CHECK(!app_split_parse("big.gguf", &k, &n));
}

TEST(locate)
{
    char *root = NULL, *rd = NULL, p[512], f[600];
    struct app_pulled out = {0};
    struct sp_err err = {0};
    CHECK(cache_root(&root, NULL) == SP_OK);
    CHECK(cache_revision_dir(root, "loc", "v2", true, &rd, NULL) == SP_OK);
    snprintf(p, sizeof(p), "%s/loc-Q8_0.gguf", rd);
    put(p, "x");
    snprintf(p, sizeof(p), "%s/loc-Q4_K_M.gguf", rd);
    put(p, "y");
    /* a cached name: the preferred quant of its only revision */
    CHECK(app_model_locate("loc", NULL, &out, &err) == SP_OK);
    CHECK_EQ_STR(out.path, p);
    CHECK_EQ_STR(out.revision, "v2");
    app_pulled_free(&out);
    CHECK(app_model_locate("loc@v2", NULL, &out, &err) == SP_OK);
    CHECK_EQ_STR(out.name, "loc");
    app_pulled_free(&out);
    /* a file path and file: */
    snprintf(f, sizeof(f), "file:%s", p);
    CHECK(app_model_locate(f, NULL, &out, &err) == SP_OK);
    CHECK_EQ_STR(out.name, "loc-Q4_K_M");
    CHECK_EQ_STR(out.dir, rd);
    app_pulled_free(&out);
    CHECK(app_model_locate(p, NULL, &out, &err) == SP_OK);
    CHECK_EQ_STR(out.path, p);
    app_pulled_free(&out);
    /* not cached / missing files / hostile: errors, no network */
    CHECK(app_model_locate("nothere", NULL, &out, &err) == SP_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "spoke pull") != NULL);
    CHECK(app_model_locate("loc@v3", NULL, &out, &err) == SP_ERR_NOT_FOUND);
    CHECK(app_model_locate("./missing.gguf", NULL, &out, &err) == SP_ERR_NOT_FOUND);
    CHECK(app_model_locate("..", NULL, &out, &err) == SP_ERR_INVALID);
    CHECK(app_model_locate("loc@../..", NULL, &out, &err) == SP_ERR_INVALID);
    CHECK(app_model_locate("", NULL, &out, &err) == SP_ERR_INVALID);
    CHECK(out.path == NULL);
    sp_free(rd);
    sp_free(root);
}

TEST(alloc_failures)
{
    const char *js = "{\"repo\":\"o/m\",\"commit\":\"c\",\"primary\":\"a.gguf\",\"files\":["
                     "{\"path\":\"a.gguf\",\"size\":1},{\"path\":\"b\",\"size\":2}]}";
    char *root = NULL;
    CHECK(cache_root(&root, NULL) == SP_OK);
    size_t before = sp_mem_in_use();
    for (long n = 1; n < 80; n++) {
        struct cache_meta *m = NULL;
        sp_mem_fail_after(n, 0);
        enum sp_status st = cache_meta_parse(js, strlen(js), &m, NULL);
        sp_mem_fail_after(0, 0);
        CHECK(st == SP_OK || st == SP_ERR_NOMEM);
        cache_meta_free(m);
        struct cache_entry *e = NULL;
        size_t ne = 0;
        sp_mem_fail_after(n, 0);
        st = cache_list(root, &e, &ne, NULL);
        sp_mem_fail_after(0, 0);
        CHECK(st == SP_OK || st == SP_ERR_NOMEM);
        cache_list_free(e, ne);
        struct app_pulled out = {0};
        sp_mem_fail_after(n, 0);
        st = app_model_locate("loc", NULL, &out, NULL);
        sp_mem_fail_after(0, 0);
        CHECK_MSG(st == SP_OK || st == SP_ERR_NOMEM || st == SP_ERR_NOT_FOUND, "n=%ld st=%d", n, (int)st);
        app_pulled_free(&out);
    }
    CHECK_EQ_INT(sp_mem_in_use(), before);
    sp_free(root);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/spoke-cache-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(root_and_dirs);
    RUN(meta_roundtrip);
    RUN(list_and_remove);
    RUN(hf_cache);
    RUN(choose);
    RUN(locate);
    RUN(alloc_failures);
    sh("rm -rf '%s'", tmpdir);
    return test_summary();
}
