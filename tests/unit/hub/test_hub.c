/* test_hub.c - unit tests of the Hub client's pure parts: model-id, revision,
 * name and path validation, ETag / Retry-After parsing, backoff, origins,
 * the revision JSON reader, token-source order and file hashing. */
#include "hub/hub.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

static int parse_ok(const char *s, struct hub_id *id)
{
    return hub_id_parse(s, strlen(s), id, NULL) == SP_OK;
}

TEST(id_forms)
{
    struct hub_id id;
    CHECK(parse_ok("org/name", &id));
    CHECK_EQ_STR(id.org, "org");
    CHECK_EQ_STR(id.name, "name");
    CHECK_EQ_STR(id.repo, "org/name");
    CHECK_EQ_STR(id.revision, "main");
    CHECK(!id.revision_given);
    CHECK(parse_ok("huggingface:huggingface.co/TheBloke/Llama-2-7B-GGUF@v1.0", &id));
    CHECK_EQ_STR(id.repo, "TheBloke/Llama-2-7B-GGUF");
    CHECK_EQ_STR(id.revision, "v1.0");
    CHECK(id.revision_given);
    CHECK(parse_ok("hf:org/name", &id));
    CHECK_EQ_STR(id.repo, "org/name");
    CHECK(parse_ok("huggingface.co/org/name:dev_2", &id));
    CHECK_EQ_STR(id.revision, "dev_2");
    CHECK(parse_ok("org/name@latest", &id));
    CHECK_EQ_STR(id.revision, "main");
    CHECK(parse_ok("org/name@0123456789abcdef0123456789abcdef01234567", &id));
    CHECK(hub_revision_is_commit(id.revision));
    CHECK(!hub_revision_is_commit("main"));
    CHECK(!hub_revision_is_commit("0123456789ABCDEF0123456789abcdef01234567"));
}

TEST(id_rejects)
{
    static const char *const bad[] = {
        "", "org", "/name", "org/", "org/name@", "org/name@..", "org/name@../x", "org/na..me",
        "../org/name", "org/../name", "org/name/extra", "org\\name", "org/name@a/b", "or g/name",
        "org/name@%2e%2e", "org/.name", "org/-name", "org/name.", "org--x/name", "org/n\xc3\xa9",
        "org/name@.", "org/name@a b", "org/name@\xef\xbc\x8e\xef\xbc\x8e", "hf:", "huggingface:",
    };
    struct hub_id id;
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        struct sp_err err = {0};
        CHECK_MSG(hub_id_parse(bad[i], strlen(bad[i]), &id, &err) == SP_ERR_INVALID, "%s", bad[i]);
        CHECK(err.msg[0]);
    }
    /* embedded NUL */
    CHECK(hub_id_parse("org/na\0me", 9, &id, NULL) == SP_ERR_INVALID);
    /* overlong */
    char longid[700];
    memset(longid, 'a', sizeof(longid));
    longid[3] = '/';
    CHECK(hub_id_parse(longid, sizeof(longid), &id, NULL) == SP_ERR_INVALID);
}

TEST(revision_message)
{
    struct sp_err err = {0};
    CHECK(hub_revision_check("../../etc", 9, &err) == SP_ERR_INVALID);
    CHECK(strstr(err.msg, "invalid revision") != NULL);
    CHECK(strstr(err.msg, "use alphanumerics, underscores and dashes; commit SHAs are safe") != NULL);
    char rev[130];
    memset(rev, 'a', sizeof(rev));
    CHECK(hub_revision_check(rev, 128, NULL) == SP_OK);
    CHECK(hub_revision_check(rev, 129, NULL) == SP_ERR_INVALID);
    CHECK(hub_revision_check("v1.0-rc_1", 9, NULL) == SP_OK);
    CHECK(hub_revision_check("a..b", 4, NULL) == SP_ERR_INVALID);
}

TEST(paths)
{
    static const char *const good[] = {"model.gguf", "sub/dir/model-Q4_K_M.gguf", ".gitattributes",
                                       "a-00001-of-00002.gguf", "x y.txt"};
    static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a/",
                                      "a\\b", "C:x", "a%2e%2e", "\xe2\x80\xa5/x", "a\nb", "a\x7f",
                                      "a*b", "a?b", ".", "..", "a/.."};
    for (size_t i = 0; i < SP_ARRAY_LEN(good); i++)
        CHECK_MSG(hub_path_check(good[i], strlen(good[i]), NULL) == SP_OK, "%s", good[i]);
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++)
        CHECK_MSG(hub_path_check(bad[i], strlen(bad[i]), NULL) == SP_ERR_INVALID, "%s", bad[i]);
    CHECK(hub_path_check("a\0b", 3, NULL) == SP_ERR_INVALID);
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "d/"); /* test code: bounded */
    strcat(deep, "f");
    CHECK(hub_path_check(deep, strlen(deep), NULL) == SP_ERR_INVALID);
}

TEST(escape)
{
    char out[64];
    hub_escape("a\nb\"", 4, out, sizeof(out));
    CHECK_EQ_STR(out, "a\\x0ab\\x22");
    hub_escape("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 37, out, 16);
    CHECK(strlen(out) < 16);
}

TEST(etag_retry_after)
{
    char sha[65];
    const char *h = "AFE50ACF3D9E877BDD76A0B1D4C2B4F6603AD68FDB918B5C7181A45D12FE89F5";
    char q[80];
    snprintf(q, sizeof(q), "W/\"%s\"", h);
    CHECK(hub_etag_sha256(q, sha));
    CHECK_EQ_STR(sha, "afe50acf3d9e877bdd76a0b1d4c2b4f6603ad68fdb918b5c7181a45d12fe89f5");
    CHECK(hub_etag_sha256(h, sha));
    CHECK(!hub_etag_sha256("\"0123456789abcdef0123456789abcdef01234567\"", sha));
    CHECK(!hub_etag_sha256("", sha));
    uint64_t ms = 0;
    CHECK(hub_parse_retry_after("3", 0, &ms));
    CHECK_EQ_INT(ms, 3000);
    CHECK(!hub_parse_retry_after("abc", 0, &ms));
    CHECK(!hub_parse_retry_after("-1", 0, &ms));
    CHECK(hub_parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4, &ms));
    CHECK_EQ_INT(ms, 6000);
}

TEST(backoff)
{
    struct hub_config c;
    hub_config_default(&c);
    /* fib: 1 1 2 3 5 8 ... times base, jitter in [0.75, 1.25) */
    static const unsigned fib[] = {1, 1, 2, 3, 5, 8, 13};
    for (unsigned r = 1; r <= 7; r++) {
        for (uint32_t rnd = 0; rnd < 1000; rnd += 97) {
            uint64_t d = hub_backoff_ms(&c, r, 0, rnd);
            uint64_t base = SP_MIN((uint64_t)fib[r - 1] * 1000, (uint64_t)c.backoff_cap_ms);
            CHECK(d >= base * 3 / 4 && d < base * 5 / 4 + 1);
        }
    }
    CHECK(hub_backoff_ms(&c, 40, 0, 0) <= c.backoff_cap_ms);
    CHECK(hub_backoff_ms(&c, 1, 20000, 0) == 20000);         /* Retry-After honoured */
    CHECK(hub_backoff_ms(&c, 1, 10000000, 0) == c.retry_after_cap_ms); /* capped */
}

TEST(origins)
{
    CHECK(hub_same_origin("https://huggingface.co/a", "https://huggingface.co"));
    CHECK(hub_same_origin("https://HuggingFace.co:443/a", "https://huggingface.co/x"));
    CHECK(!hub_same_origin("https://cdn-lfs.huggingface.co/a", "https://huggingface.co"));
    CHECK(!hub_same_origin("http://127.0.0.1:1234/a", "http://127.0.0.1:1235"));
    CHECK(!hub_same_origin("http://huggingface.co/a", "https://huggingface.co"));
    CHECK(!hub_same_origin("https://huggingface.co.evil.com/", "https://huggingface.co"));
    CHECK(!hub_same_origin("https://huggingface.co@evil.com/", "https://huggingface.co"));
    CHECK(!hub_same_origin("garbage", "https://huggingface.co"));
}

TEST(revision_json)
{
    const char *js =
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":["
        "{\"rfilename\":\"a.gguf\",\"size\":10,\"lfs\":{\"sha256\":"
        "\"afe50acf3d9e877bdd76a0b1d4c2b4f6603ad68fdb918b5c7181a45d12fe89f5\",\"size\":12}},"
        "{\"rfilename\":\"../evil\"},{\"rfilename\":\"config.json\"}]}";
    struct hub_revision *r = NULL;
    CHECK(hub_revision_parse(js, strlen(js), &r, NULL) == SP_OK);
    CHECK_EQ_STR(r->commit, "0123456789abcdef0123456789abcdef01234567");
    CHECK_EQ_INT(r->n_files, 2);
    const struct hub_sibling *s = hub_revision_find(r, "a.gguf");
    CHECK(s && s->has_size && s->size == 12);
    CHECK_EQ_INT(strlen(s->sha256), 64);
    CHECK(hub_revision_find(r, "../evil") == NULL);
    CHECK(!hub_revision_find(r, "config.json")->has_size);
    hub_revision_free(r);
    static const char *const bad[] = {
        "", "[]", "{}", "{\"sha\":1}", "{\"sha\":\"main\"}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":{}}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[1]}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"sha\":\"x\"}",
        ("{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"a\","
         "\"lfs\":{\"sha256\":\"zz\"}}]}"),
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        struct sp_err err = {0};
        r = NULL;
        CHECK_MSG(hub_revision_parse(bad[i], strlen(bad[i]), &r, &err) == SP_ERR_FORMAT, "%s", bad[i]);
        CHECK(r == NULL && err.msg[0]);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

TEST(token_order)
{
    char dir[] = "/tmp/spoke-tok-XXXXXX";
    char p[512], src[200];
    char *tok = NULL;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(p, sizeof(p), "%s/.cache", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/.cache/huggingface", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/.cache/huggingface/token", dir);
    write_file(p, "  tok_home\n");
    snprintf(p, sizeof(p), "%s/hfhome", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/hfhome/token", dir);
    write_file(p, "tok_hfhome");
    snprintf(p, sizeof(p), "%s/tp", dir);
    write_file(p, "tok_path\nsecond line");
    setenv("HOME", dir, 1);
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_TOKEN_PATH");
    unsetenv("HF_HOME");
    CHECK(hub_token_resolve(NULL, &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_home");
    sp_free(tok);
    snprintf(p, sizeof(p), "%s/hfhome", dir);
    setenv("HF_HOME", p, 1);
    CHECK(hub_token_resolve(NULL, &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_hfhome");
    CHECK(strstr(src, "HF_HOME") != NULL);
    sp_free(tok);
    snprintf(p, sizeof(p), "%s/tp", dir);
    setenv("HF_TOKEN_PATH", p, 1);
    CHECK(hub_token_resolve(NULL, &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_path");
    sp_free(tok);
    setenv("HUGGING_FACE_HUB_TOKEN", "tok_hfhub", 1);
    CHECK(hub_token_resolve(NULL, &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_hfhub");
    sp_free(tok);
    setenv("HF_TOKEN", "tok_env", 1);
    CHECK(hub_token_resolve(NULL, &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_env");
    CHECK_EQ_STR(src, "$HF_TOKEN");
    sp_free(tok);
    CHECK(hub_token_resolve("tok_param", &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_param");
    sp_free(tok);
    /* empty values fall through; hostile ones are refused */
    setenv("HF_TOKEN", "", 1);
    CHECK(hub_token_resolve("", &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK_EQ_STR(tok, "tok_hfhub");
    sp_free(tok);
    tok = NULL;
    CHECK(hub_token_resolve("abc\r\nX-Evil: 1", &tok, src, sizeof(src), NULL) == SP_ERR_INVALID);
    CHECK(tok == NULL);
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_TOKEN_PATH");
    unsetenv("HF_HOME");
    snprintf(p, sizeof(p), "%s/empty", dir);
    setenv("HOME", p, 1);
    CHECK(hub_token_resolve(NULL, &tok, src, sizeof(src), NULL) == SP_OK);
    CHECK(tok == NULL);
    CHECK_EQ_STR(src, "none");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST(sha_file_and_lock)
{
    char dir[] = "/tmp/spoke-sha-XXXXXX";
    char p[256], lp[256], sha[65];
    uint64_t size = 0;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(p, sizeof(p), "%s/f", dir);
    write_file(p, "abc");
    CHECK(hub_sha256_file(p, sha, &size, NULL) == SP_OK);
    CHECK_EQ_STR(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(size, 3);
    CHECK(hub_sha256_file("/nonexistent/x", sha, &size, NULL) == SP_ERR_IO);
    snprintf(lp, sizeof(lp), "%s/f.lock", dir);
    int fd = -1;
    CHECK(hub_lock_acquire(lp, &fd, NULL) == SP_OK);
    CHECK(fd >= 0);
    hub_lock_release(lp, fd);
    CHECK(access(lp, F_OK) != 0);
    unlink(p);
    rmdir(dir);
}

TEST(config_env)
{
    struct hub_config c;
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
    setenv("SPOKE_HUB_BACKOFF_MS", "5", 1);
    setenv("HF_HUB_OFFLINE", "1", 1);
    CHECK(hub_config_from_env(&c, NULL) == SP_OK);
    CHECK_EQ_STR(c.endpoint, "http://127.0.0.1:9");
    CHECK_EQ_INT(c.backoff_ms, 5);
    CHECK(c.offline);
    setenv("SPOKE_HUB_BACKOFF_MS", "x", 1);
    CHECK(hub_config_from_env(&c, NULL) == SP_ERR_INVALID);
    unsetenv("SPOKE_HUB_BACKOFF_MS");
    setenv("HF_ENDPOINT", "file:///etc", 1);
    CHECK(hub_config_from_env(&c, NULL) == SP_ERR_INVALID);
    unsetenv("HF_ENDPOINT");
    unsetenv("HF_HUB_OFFLINE");
    CHECK(hub_config_from_env(&c, NULL) == SP_OK);
    CHECK_EQ_STR(c.endpoint, "https://huggingface.co");
    CHECK(!c.offline);
}

/* Every allocation of the parsers can fail: never a crash or a leak. */
TEST(alloc_failures)
{
    const char *js =
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":["
        "{\"rfilename\":\"a.gguf\",\"size\":10},{\"rfilename\":\"b/c.json\"}]}";
    size_t before = sp_mem_in_use();
    int ok = 0;
    for (long n = 1; n < 60; n++) {
        struct hub_revision *r = NULL;
        sp_mem_fail_after(n, 0);
        enum sp_status st = hub_revision_parse(js, strlen(js), &r, NULL);
        sp_mem_fail_after(0, 0);
        CHECK(st == SP_OK || st == SP_ERR_NOMEM);
        CHECK((st == SP_OK) == (r != NULL));
        ok += st == SP_OK;
        hub_revision_free(r);
        char *tok = NULL, src[64];
        sp_mem_fail_after(n, 0);
        st = hub_token_resolve("tok", &tok, src, sizeof(src), NULL);
        sp_mem_fail_after(0, 0);
        CHECK(st == SP_OK || st == SP_ERR_NOMEM);
        sp_free(tok);
    }
    CHECK(ok > 0);
    CHECK_EQ_INT(sp_mem_in_use(), before);
}

int main(void)
{
    RUN(id_forms);
    RUN(id_rejects);
    RUN(revision_message);
    RUN(paths);
    RUN(escape);
    RUN(etag_retry_after);
    RUN(backoff);
    RUN(origins);
    RUN(revision_json);
    RUN(token_order);
    RUN(sha_file_and_lock);
    RUN(config_env);
    RUN(alloc_failures);
    return test_summary();
}
