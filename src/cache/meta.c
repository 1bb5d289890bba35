/* meta.c - the per-revision metadata file <revdir>/.spoke-meta.json:
 *   {"format":1,"repo":"org/name","revision":"main","commit":"<sha>",
 *    "primary":"x.gguf","pulled_ms":1700000000000,"pulled_at":"ISO-8601",
 *    "files":[{"path":"x.gguf","size":123,"sha256":"<hex>"}]}
 * Read bounded with jansson (paths re-validated), written atomically. */
#include "cache/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_MAX (1u << 20)
#define META_FILES_MAX 100000

void cache_meta_free(struct cache_meta *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_files; i++)
        sp_free(m->files[i].path);
    sp_free(m->files);
    sp_free(m->repo);
    sp_free(m->revision);
    sp_free(m->commit);
    sp_free(m->primary);
    sp_free(m);
}

enum sp_status cache_meta_new(struct cache_meta **out, struct sp_err *err)
{
    *out = sp_calloc(1, sizeof(**out));
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

enum sp_status cache_meta_set_str(char **field, const char *value, struct sp_err *err)
{
    char *v = NULL;
    if (value && !(v = sp_strdup(value)))
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    sp_free(*field);
    *field = v;
    return SP_OK;
}

const struct cache_meta_file *cache_meta_find(const struct cache_meta *m, const char *path)
{
    for (size_t i = 0; m && i < m->n_files; i++)
        if (strcmp(m->files[i].path, path) == 0)
            return &m->files[i];
    return NULL;
}

enum sp_status cache_meta_set_file(struct cache_meta *m, const char *path, uint64_t size,
                                   const char *sha256, struct sp_err *err)
{
    struct cache_meta_file *f = (struct cache_meta_file *)cache_meta_find(m, path);
    if (!f) {
        if (m->n_files >= META_FILES_MAX)
            return sp_err_set(err, SP_ERR_LIMIT, "too many files in one revision");
        struct cache_meta_file *nf = sp_realloc(m->files, (m->n_files + 1) * sizeof(*nf));
        if (!nf)
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        m->files = nf;
        f = &m->files[m->n_files];
        memset(f, 0, sizeof(*f));
        if (!(f->path = sp_strdup(path)))
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        m->n_files++;
    }
    f->size = size;
    if (sha256 && sha256[0])
        sp_strlcpy(f->sha256, sha256, sizeof(f->sha256));
    return SP_OK;
}

static bool is_sha256(const char *s)
{
    if (strlen(s) != HUB_SHA256_HEX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static enum sp_status opt_str(json_t *root, const char *key, char **field, struct sp_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return SP_OK;
    if (!json_is_string(v) || json_string_length(v) > 4096 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sp_err_setc(err, SP_ERR_FORMAT, key, "cache metadata: bad \"%s\"", key);
    return cache_meta_set_str(field, json_string_value(v), err);
}

enum sp_status cache_meta_parse(const char *json, size_t len, struct cache_meta **out,
                                struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct cache_meta *m = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    *out = NULL;
    if (len > META_MAX)
        return sp_err_set(err, SP_ERR_FORMAT, "cache metadata too large");
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        result = sp_err_set(err, SP_ERR_FORMAT, "malformed cache metadata: %.200s",
                            root ? "not an object" : jerr.text);
        goto fail;
    }
    result = cache_meta_new(&m, err);
    if (result != SP_OK)
        goto fail;
    if ((result = opt_str(root, "repo", &m->repo, err)) != SP_OK ||
        (result = opt_str(root, "revision", &m->revision, err)) != SP_OK ||
        (result = opt_str(root, "commit", &m->commit, err)) != SP_OK ||
        (result = opt_str(root, "primary", &m->primary, err)) != SP_OK)
        goto fail;
    if (m->primary && hub_path_check(m->primary, strlen(m->primary), NULL) != SP_OK) {
        sp_free(m->primary);
        m->primary = NULL;
    }
    json_t *pm = json_object_get(root, "pulled_ms");
    if (json_is_integer(pm))
        m->pulled_ms = (int64_t)json_integer_value(pm);
    json_t *files = json_object_get(root, "files");
    if (json_is_array(files)) {
        if (json_array_size(files) > META_FILES_MAX) {
            result = sp_err_set(err, SP_ERR_FORMAT, "cache metadata lists too many files");
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(files); i++) {
            json_t *f = json_array_get(files, i);
            json_t *p = json_object_get(f, "path");
            json_t *sz = json_object_get(f, "size");
            json_t *sh = json_object_get(f, "sha256");
            if (!json_is_string(p) ||
                hub_path_check(json_string_value(p), json_string_length(p), NULL) != SP_OK ||
                !json_is_integer(sz) || json_integer_value(sz) < 0)
                continue; /* a bad entry is ignored, not trusted */
            const char *sha = json_is_string(sh) && is_sha256(json_string_value(sh))
                                  ? json_string_value(sh)
                                  : NULL;
            result = cache_meta_set_file(m, json_string_value(p), (uint64_t)json_integer_value(sz),
                                         sha, err);
            if (result != SP_OK)
                goto fail;
        }
    }
    json_decref(root);
    *out = m;
    return SP_OK;
fail:
    json_decref(root);
    cache_meta_free(m);
    return result;
}

enum sp_status cache_meta_load(const char *revdir, struct cache_meta **out, struct sp_err *err)
{
    char path[PATH_MAX];
    struct sp_buf b = {.limit = META_MAX};
    char chunk[8192];
    *out = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", revdir, CACHE_META_FILE) >= sizeof(path))
        return sp_err_set(err, SP_ERR_RANGE, "path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sp_err_setc(err, errno == ENOENT ? SP_ERR_NOT_FOUND : SP_ERR_IO, path,
                           "cannot open %s: %s", path, strerror(errno));
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (sp_buf_append(&b, chunk, (size_t)r) != SP_OK) {
            close(fd);
            sp_buf_free(&b);
            return sp_err_setc(err, SP_ERR_FORMAT, path, "%s is too large", path);
        }
    }
    close(fd);
    enum sp_status result = cache_meta_parse(b.data ? b.data : "", b.len, out, err);
    sp_buf_free(&b);
    return result;
}

enum sp_status cache_meta_save(const char *revdir, const struct cache_meta *m, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char path[PATH_MAX], tmp[PATH_MAX], iso[40];
    char *text = NULL;
    int fd = -1;
    json_t *root = json_object(), *files = json_array();
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", revdir, CACHE_META_FILE) >= sizeof(path) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/%s.%d.tmp", revdir, CACHE_META_FILE,
                         (int)getpid()) >= sizeof(tmp)) {
        result = sp_err_set(err, SP_ERR_RANGE, "path too long");
        goto fail;
    }
    if (!root || !files) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    sp_format_iso8601(m->pulled_ms, iso, sizeof(iso));
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "repo", m->repo ? json_string(m->repo) : json_null());
    json_object_set_new(root, "revision", m->revision ? json_string(m->revision) : json_null());
    json_object_set_new(root, "commit", m->commit ? json_string(m->commit) : json_null());
    json_object_set_new(root, "primary", m->primary ? json_string(m->primary) : json_null());
    json_object_set_new(root, "pulled_ms", json_integer(m->pulled_ms));
    json_object_set_new(root, "pulled_at", json_string(iso));
    for (size_t i = 0; i < m->n_files; i++) {
        json_t *f = json_object();
        if (!f) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
            goto fail;
        }
        json_object_set_new(f, "path", json_string(m->files[i].path));
        json_object_set_new(f, "size", json_integer((json_int_t)m->files[i].size));
        json_object_set_new(f, "sha256", m->files[i].sha256[0] ? json_string(m->files[i].sha256)
                                                               : json_null());
        json_array_append_new(files, f);
    }
    json_object_set(root, "files", files);
    size_t need = json_dumpb(root, NULL, 0, JSON_INDENT(2) | JSON_SORT_KEYS);
    text = need ? sp_malloc(need + 1) : NULL;
    if (text && json_dumpb(root, text, need, JSON_INDENT(2) | JSON_SORT_KEYS) != need) {
        sp_free(text);
        text = NULL;
    }
    if (text)
        text[need] = '\0';
    if (!text) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    if (write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, path, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
fail:
    if (fd >= 0) {
        close(fd);
        (void)unlink(tmp);
    }
    sp_free(text);
    json_decref(files);
    json_decref(root);
    return result;
}
