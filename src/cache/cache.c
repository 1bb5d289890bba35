/* cache.c - layout and safe paths of the model cache, listing and removal.
 * Paths are joined only from validated parts; directories are created one
 * level at a time with mkdirat relative to an open parent, refusing symlinks
 * (O_NOFOLLOW), and the result is re-checked with realpath() against the
 * root. Removal walks with nftw(FTW_PHYS) so it never follows a link out. */
#include "cache/cache.h"
#include "obs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum sp_status cache_root(char **out, struct sp_err *err)
{
    struct sp_buf b = {0};
    const char *home = getenv("SPOKE_HOME");
    int r;
    *out = NULL;
    if (home && *home) {
        r = sp_buf_printf(&b, "%s/models", home);
    } else {
        const char *h = getenv("HOME");
        if (!h || !*h)
            return sp_err_set(err, SP_ERR_INVALID, "neither SPOKE_HOME nor HOME is set; set SPOKE_HOME");
        r = sp_buf_printf(&b, "%s/.spoke/models", h);
    }
    if (r != SP_OK || b.len >= PATH_MAX - 512) {
        sp_buf_free(&b);
        return r == SP_ERR_NOMEM ? sp_err_set(err, SP_ERR_NOMEM, "out of memory")
                                 : sp_err_set(err, SP_ERR_INVALID, "SPOKE_HOME path too long");
    }
    *out = sp_buf_take(&b);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

/* mkdir -p of an absolute or relative path (mode 0755). */
static enum sp_status mkdirs(const char *path, struct sp_err *err)
{
    char tmp[PATH_MAX];
    if (sp_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
        return sp_err_set(err, SP_ERR_RANGE, "path too long");
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return sp_err_setc(err, SP_ERR_IO, tmp, "cannot create directory %s: %s", tmp,
                                   strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return sp_err_setc(err, SP_ERR_IO, path, "%s is not a directory", path);
    return SP_OK;
}

/* True if real path `inner` equals or lies under real path `outer`. */
static bool path_inside(const char *outer, const char *inner)
{
    size_t n = strlen(outer);
    if (n == 1 && outer[0] == '/')
        return inner[0] == '/';
    return strncmp(outer, inner, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

/* realpath(child) must lie inside realpath(parent); both must exist. */
static enum sp_status check_inside(const char *parent, const char *child, struct sp_err *err)
{
    char rp[PATH_MAX], rc[PATH_MAX];
    if (!realpath(parent, rp) || !realpath(child, rc))
        return sp_err_setc(err, SP_ERR_IO, child, "cannot resolve %s: %s", child, strerror(errno));
    if (!path_inside(rp, rc))
        return sp_err_setc(err, SP_ERR_INVALID, child,
                           "refusing %s: it resolves to %s, outside the cache %s", child, rc, rp);
    return SP_OK;
}

enum sp_status cache_revision_dir(const char *root, const char *name, const char *revision,
                                  bool create, char **out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct sp_buf b = {0};
    *out = NULL;
    result = hub_name_check(name, strlen(name), "cache name", err);
    if (result != SP_OK)
        return result;
    result = hub_revision_check(revision, strlen(revision), err);
    if (result != SP_OK)
        return result;
    if (sp_buf_printf(&b, "%s/%s/%s", root, name, revision) != SP_OK) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (create) {
        result = mkdirs(root, err);
        if (result == SP_OK)
            result = mkdirs(b.data, err);
        if (result == SP_OK)
            result = check_inside(root, b.data, err);
        if (result != SP_OK)
            goto fail;
    }
    *out = sp_buf_take(&b);
    if (!*out)
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
fail:
    sp_buf_free(&b);
    return result;
}

static bool reserved_name(const char *rel)
{
    return sp_str_starts_with(rel, ".spoke-") || sp_str_ends_with(rel, ".incomplete") ||
           sp_str_ends_with(rel, ".lock");
}

enum sp_status cache_file_path(const char *revdir, const char *rel, bool create_parents, char **out,
                               struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct sp_buf b = {0};
    char parent[PATH_MAX];
    *out = NULL;
    result = hub_path_check(rel, strlen(rel), err);
    if (result != SP_OK)
        return result;
    if (reserved_name(rel))
        return sp_err_setc(err, SP_ERR_INVALID, rel,
                           "invalid file path \"%s\": names .spoke-*, *.incomplete and *.lock are "
                           "reserved by the cache",
                           rel);
    if (sp_buf_printf(&b, "%s/%s", revdir, rel) != SP_OK || b.len >= PATH_MAX) {
        result = sp_err_set(err, SP_ERR_RANGE, "path too long");
        goto fail;
    }
    sp_strlcpy(parent, b.data, sizeof(parent));
    *strrchr(parent, '/') = '\0';
    if (create_parents) {
        result = mkdirs(parent, err);
        if (result != SP_OK)
            goto fail;
    }
    struct stat st;
    if (stat(parent, &st) == 0) {
        result = check_inside(revdir, parent, err);
        if (result != SP_OK)
            goto fail;
    }
    *out = sp_buf_take(&b);
    if (!*out)
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
fail:
    sp_buf_free(&b);
    return result;
}

bool cache_file_present(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    if (size)
        *size = (uint64_t)st.st_size;
    return true;
}

/* ---- listing ----------------------------------------------------------------- */

void cache_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        sp_free(v[i]);
    sp_free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct strv {
    char **v;
    size_t n, cap;
};

static enum sp_status strv_push(struct strv *s, const char *str)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **nv = sp_realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return SP_ERR_NOMEM;
        s->v = nv;
        s->cap = cap;
    }
    if (!(s->v[s->n] = sp_strdup(str)))
        return SP_ERR_NOMEM;
    s->n++;
    return SP_OK;
}

/* What a walk found besides the complete files: partial downloads. */
struct partial {
    size_t n;       /* non-empty <file>.incomplete files (an empty one holds nothing) */
    uint64_t bytes; /* their total size */
};

/* Recursive walk of dir (relative prefix rel), depth-limited, no symlinked
 * dirs; part (optional) counts the partial downloads. */
static enum sp_status walk_files(const char *dir, const char *rel, int depth, struct strv *out,
                                 uint64_t *bytes, struct partial *part)
{
    enum sp_status result = SP_OK;
    if (depth > 32)
        return SP_OK;
    DIR *d = opendir(dir);
    if (!d)
        return SP_OK;
    struct dirent *e;
    while (result == SP_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., metadata, .cache/huggingface of --local-dir, hidden files */
        char full[PATH_MAX], relp[PATH_MAX];
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", dir, e->d_name) >= sizeof(full) ||
            (size_t)snprintf(relp, sizeof(relp), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >=
                sizeof(relp))
            continue;
        struct stat lst, st;
        if (lstat(full, &lst) != 0)
            continue;
        if (S_ISDIR(lst.st_mode)) {
            result = walk_files(full, relp, depth + 1, out, bytes, part);
            continue;
        }
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (reserved_name(e->d_name)) {
            if (part && sp_str_ends_with(e->d_name, ".incomplete") && st.st_size > 0) {
                part->n++;
                part->bytes += (uint64_t)st.st_size;
            }
            continue;
        }
        if (hub_path_check(relp, strlen(relp), NULL) != SP_OK)
            continue;
        result = strv_push(out, relp);
        if (bytes)
            *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return result;
}

enum sp_status cache_list_files(const char *revdir, char ***out, size_t *n, struct sp_err *err)
{
    struct strv s = {0};
    *out = NULL;
    *n = 0;
    if (walk_files(revdir, "", 0, &s, NULL, NULL) != SP_OK) {
        cache_strv_free(s.v, s.n);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    if (s.n)
        qsort(s.v, s.n, sizeof(*s.v), cmp_str);
    *out = s.v;
    *n = s.n;
    return SP_OK;
}

static enum sp_status list_dirs(const char *dir, struct strv *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return SP_OK;
    struct dirent *e;
    enum sp_status result = SP_OK;
    while (result == SP_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char full[PATH_MAX];
        struct stat st;
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", dir, e->d_name) >= sizeof(full) ||
            lstat(full, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        result = strv_push(out, e->d_name);
    }
    closedir(d);
    if (result == SP_OK && out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_str);
    return result;
}

void cache_list_free(struct cache_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        sp_free(e[i].name);
        sp_free(e[i].revision);
        sp_free(e[i].commit);
        sp_free(e[i].repo);
        sp_free(e[i].primary);
    }
    sp_free(e);
}

enum sp_status cache_list(const char *root, struct cache_entry **out, size_t *n, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct strv names = {0};
    struct cache_entry *v = NULL;
    size_t nv = 0, cap = 0;
    *out = NULL;
    *n = 0;
    if (list_dirs(root, &names) != SP_OK)
        goto nomem;
    for (size_t i = 0; i < names.n; i++) {
        if (hub_name_check(names.v[i], strlen(names.v[i]), "cache name", NULL) != SP_OK)
            continue;
        char ndir[PATH_MAX];
        if ((size_t)snprintf(ndir, sizeof(ndir), "%s/%s", root, names.v[i]) >= sizeof(ndir))
            continue;
        struct strv revs = {0};
        if (list_dirs(ndir, &revs) != SP_OK) {
            cache_strv_free(revs.v, revs.n);
            goto nomem;
        }
        for (size_t j = 0; j < revs.n; j++) {
            if (hub_revision_check(revs.v[j], strlen(revs.v[j]), NULL) != SP_OK)
                continue;
            char rdir[PATH_MAX];
            if ((size_t)snprintf(rdir, sizeof(rdir), "%s/%s", ndir, revs.v[j]) >= sizeof(rdir))
                continue;
            if (nv == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct cache_entry *nvv = sp_realloc(v, nc * sizeof(*nvv));
                if (!nvv) {
                    cache_strv_free(revs.v, revs.n);
                    goto nomem;
                }
                v = nvv;
                cap = nc;
            }
            struct cache_entry *e = &v[nv];
            memset(e, 0, sizeof(*e));
            nv++;
            struct strv files = {0};
            struct partial part = {0};
            e->name = sp_strdup(names.v[i]);
            e->revision = sp_strdup(revs.v[j]);
            if (!e->name || !e->revision ||
                walk_files(rdir, "", 0, &files, &e->bytes, &part) != SP_OK) {
                cache_strv_free(files.v, files.n);
                cache_strv_free(revs.v, revs.n);
                goto nomem;
            }
            e->n_files = files.n;
            e->n_partial = part.n;
            e->partial_bytes = part.bytes;
            cache_strv_free(files.v, files.n);
            if (!files.n && !part.n) {
                /* nothing in it (a failed first pull of an older spoke): not a model */
                sp_free(e->name);
                sp_free(e->revision);
                nv--;
                continue;
            }
            struct cache_meta *m = NULL;
            if (cache_meta_load(rdir, &m, NULL) == SP_OK) {
                e->commit = m->commit ? sp_strdup(m->commit) : NULL;
                e->repo = m->repo ? sp_strdup(m->repo) : NULL;
                e->primary = m->primary ? sp_strdup(m->primary) : NULL;
                e->pulled_ms = m->pulled_ms;
                cache_meta_free(m);
            } else {
                struct stat st;
                if (stat(rdir, &st) == 0)
                    e->pulled_ms = (int64_t)st.st_mtime * 1000;
            }
        }
        cache_strv_free(revs.v, revs.n);
    }
    cache_strv_free(names.v, names.n);
    *out = v;
    *n = nv;
    return result;
nomem:
    cache_strv_free(names.v, names.n);
    cache_list_free(v, nv);
    return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

/* ---- removal ------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    SP_UNUSED(st);
    SP_UNUSED(ftw);
    int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return r == 0 || errno == ENOENT ? 0 : -1;
}

enum sp_status cache_remove(const char *root, const char *name, const char *revision,
                            struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char path[PATH_MAX], rroot[PATH_MAX], rpath[PATH_MAX];
    result = hub_name_check(name, strlen(name), "cache name", err);
    if (result == SP_OK && revision)
        result = hub_revision_check(revision, strlen(revision), err);
    if (result != SP_OK)
        return result;
    int w = revision ? snprintf(path, sizeof(path), "%s/%s/%s", root, name, revision)
                     : snprintf(path, sizeof(path), "%s/%s", root, name);
    if (w < 0 || (size_t)w >= sizeof(path))
        return sp_err_set(err, SP_ERR_RANGE, "path too long");
    struct stat st;
    if (lstat(path, &st) != 0)
        return sp_err_setc(err, SP_ERR_NOT_FOUND, name, "%s%s%s is not in the cache (see spoke ls)",
                           name, revision ? "@" : "", revision ? revision : "");
    if (!S_ISDIR(st.st_mode))
        return sp_err_setc(err, SP_ERR_INVALID, path, "refusing to remove %s: not a directory", path);
    if (!realpath(root, rroot) || !realpath(path, rpath) || !path_inside(rroot, rpath) ||
        strcmp(rroot, rpath) == 0)
        return sp_err_setc(err, SP_ERR_INVALID, path, "refusing to remove %s: outside the cache", path);
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
        return sp_err_setc(err, SP_ERR_IO, path, "cannot remove %s: %s", path, strerror(errno));
    if (revision) {
        /* drop the name directory when its last revision went */
        char ndir[PATH_MAX];
        snprintf(ndir, sizeof(ndir), "%s/%s", root, name);
        (void)rmdir(ndir);
    }
    LOG_INFO("cache", "removed %s", path);
    return SP_OK;
}
