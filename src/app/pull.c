/* pull.c - orchestration of a pull: parse and validate the id, names and
 * paths (no request before that), use what the cache already has (no request
 * at all when every wanted file is there), otherwise resolve the revision,
 * choose the GGUF by quant preference, expand split sets, hard-link from the
 * standard HF cache when it has the commit's file, download the rest through
 * the hub layer, and record the per-revision metadata. Also app_model_locate
 * for `spoke run` and the server's config. */
#include "app/pull.h"
#include "cache/cache.h"
#include "gguf/gguf.h"
#include "hub/hub.h"
#include "obs/log.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


void app_pulled_free(struct app_pulled *p)
{
    if (!p)
        return;
    sp_free(p->name);
    sp_free(p->revision);
    sp_free(p->commit);
    sp_free(p->dir);
    sp_free(p->path);
    memset(p, 0, sizeof(*p));
}

/* ---- choosing files ------------------------------------------------------------ */

bool app_split_parse(const char *path, unsigned *index, unsigned *count)
{
    size_t plen;
    return gg_split_name_parse(path, &plen, index, count);
}

static bool is_gguf(const char *p)
{
    size_t n = strlen(p);
    return n > 5 && strcasecmp(p + n - 5, ".gguf") == 0;
}

/* quant appears in the file's base name as its own token (case-insensitive). */
static bool quant_match(const char *path, const char *quant)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t ql = strlen(quant);
    if (!ql)
        return false;
    for (const char *p = base; *p; p++) {
        if (strncasecmp(p, quant, ql) != 0)
            continue;
        char before = p == base ? '.' : p[-1];
        char after = p[ql];
        if ((before == '.' || before == '-' || before == '_') && (after == '.' || after == '-'))
            return true;
    }
    return false;
}

long app_choose_gguf(const char *const *paths, size_t n, const char *quant)
{
    static const char *const prefs[] = {"Q4_K_M", "Q4_0", "Q8_0"};
    long first = -1;
    for (size_t q = 0; q < (quant ? 1 : SP_ARRAY_LEN(prefs)); q++) {
        const char *want = quant ? quant : prefs[q];
        for (size_t i = 0; i < n; i++) {
            unsigned k, c;
            if (!is_gguf(paths[i]) || (app_split_parse(paths[i], &k, &c) && k != 1))
                continue;
            if (strstr(paths[i], "mmproj"))
                continue;
            if (first < 0)
                first = (long)i;
            if (quant_match(paths[i], want))
                return (long)i;
        }
    }
    return quant ? -1 : first;
}

struct names {
    char **v;
    size_t n, cap;
};

static void names_free(struct names *s)
{
    cache_strv_free(s->v, s->n);
    memset(s, 0, sizeof(*s));
}

static bool names_has(const struct names *s, const char *p)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], p) == 0)
            return true;
    return false;
}

static enum sp_status names_add(struct names *s, const char *p)
{
    if (names_has(s, p))
        return SP_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **nv = sp_realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return SP_ERR_NOMEM;
        s->v = nv;
        s->cap = cap;
    }
    if (!(s->v[s->n] = sp_strdup(p)))
        return SP_ERR_NOMEM;
    s->n++;
    return SP_OK;
}

/* Add path, or every shard of its split set. */
static enum sp_status add_with_split(struct names *s, const char *path, struct sp_err *err)
{
    unsigned k, c;
    if (!app_split_parse(path, &k, &c))
        return names_add(s, path) == SP_OK ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    size_t n = strlen(path);
    char buf[HUB_PATH_MAX + 1];
    if (n > HUB_PATH_MAX)
        return sp_err_set(err, SP_ERR_INVALID, "path too long");
    memcpy(buf, path, n + 1);
    for (unsigned i = 1; i <= c; i++) {
        char num[8];
        snprintf(num, sizeof(num), "%05u", i);
        memcpy(buf + n - 19, num, 5);
        if (names_add(s, buf) != SP_OK)
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    return SP_OK;
}

/* ---- the pull ---------------------------------------------------------------- */

struct pull_ctx {
    const struct app_pull_opts *o;
    struct hub_id id;
    const char *name;
    char *root, *revdir;
    struct cache_meta *meta;
    struct names want;
    struct hub_config cfg;
    struct hub_client *client;
    struct hub_revision *rev;
    char *token;
};

static void pull_ctx_free(struct pull_ctx *p)
{
    sp_free(p->root);
    sp_free(p->revdir);
    cache_meta_free(p->meta);
    names_free(&p->want);
    hub_client_free(p->client);
    hub_revision_free(p->rev);
    if (p->token) {
        memset(p->token, 0, strlen(p->token));
        sp_free(p->token);
    }
}

static bool all_present(struct pull_ctx *p)
{
    if (!p->want.n)
        return false;
    for (size_t i = 0; i < p->want.n; i++) {
        char *path = NULL;
        bool ok = cache_file_path(p->revdir, p->want.v[i], false, &path, NULL) == SP_OK &&
                  cache_file_present(path, NULL);
        sp_free(path);
        if (!ok)
            return false;
    }
    return true;
}

/* With no --file: choose among what the cache already holds for this revision. */
static enum sp_status choose_cached(struct pull_ctx *p, struct sp_err *err)
{
    char **files = NULL;
    size_t n = 0;
    enum sp_status result = cache_list_files(p->revdir, &files, &n, err);
    if (result != SP_OK)
        return result;
    long pick = -1;
    if (p->meta && p->meta->primary && !p->o->quant) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(files[i], p->meta->primary) == 0)
                pick = (long)i;
    }
    if (pick < 0)
        pick = app_choose_gguf((const char *const *)files, n, p->o->quant);
    if (pick >= 0)
        result = add_with_split(&p->want, files[pick], err);
    cache_strv_free(files, n);
    return result;
}

static enum sp_status choose_remote(struct pull_ctx *p, struct sp_err *err)
{
    const char **paths = sp_calloc(p->rev->n_files ? p->rev->n_files : 1, sizeof(*paths));
    if (!paths)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < p->rev->n_files; i++)
        paths[i] = p->rev->files[i].path;
    long pick = app_choose_gguf(paths, p->rev->n_files, p->o->quant);
    sp_free(paths);
    if (pick < 0) {
        struct sp_buf avail = {.limit = 300};
        for (size_t i = 0; i < p->rev->n_files; i++)
            if (is_gguf(p->rev->files[i].path) &&
                sp_buf_printf(&avail, "%s%s", avail.len ? ", " : "", p->rev->files[i].path) != SP_OK)
                break;
        enum sp_status r =
            p->o->quant
                ? sp_err_set(err, SP_ERR_NOT_FOUND, "%s@%s has no %s GGUF (available: %s); pick one with --file",
                             p->id.repo, p->id.revision, p->o->quant, avail.len ? avail.data : "none")
                : sp_err_set(err, SP_ERR_NOT_FOUND, "%s@%s has no .gguf file; name one with --file",
                             p->id.repo, p->id.revision);
        sp_buf_free(&avail);
        return r;
    }
    return add_with_split(&p->want, p->rev->files[pick].path, err);
}

static const char *primary_of(const struct names *w)
{
    for (size_t i = 0; i < w->n; i++)
        if (is_gguf(w->v[i]))
            return w->v[i];
    return w->n ? w->v[0] : NULL;
}

static enum sp_status fill_out(struct pull_ctx *p, const char *commit, struct app_pulled *out,
                               struct sp_err *err)
{
    const char *prim = primary_of(&p->want);
    struct sp_buf path = {0};
    if (prim && sp_buf_printf(&path, "%s/%s", p->revdir, prim) != SP_OK)
        goto nomem;
    out->name = sp_strdup(p->name);
    out->revision = sp_strdup(p->id.revision);
    out->commit = sp_strdup(commit ? commit : "");
    out->dir = sp_strdup(p->revdir);
    out->path = prim ? sp_buf_take(&path) : sp_strdup("");
    if (!out->name || !out->revision || !out->commit || !out->dir || !out->path)
        goto nomem;
    return SP_OK;
nomem:
    sp_buf_free(&path);
    app_pulled_free(out);
    return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

static enum sp_status save_meta(struct pull_ctx *p, const char *commit, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    if (!p->meta && (result = cache_meta_new(&p->meta, err)) != SP_OK)
        return result;
    const char *prim = primary_of(&p->want);
    if ((result = cache_meta_set_str(&p->meta->repo, p->id.repo, err)) != SP_OK ||
        (result = cache_meta_set_str(&p->meta->revision, p->id.revision, err)) != SP_OK)
        return result;
    if (commit && *commit && (result = cache_meta_set_str(&p->meta->commit, commit, err)) != SP_OK)
        return result;
    if (prim && is_gguf(prim) && (result = cache_meta_set_str(&p->meta->primary, prim, err)) != SP_OK)
        return result;
    p->meta->pulled_ms = sp_wall_ms();
    return cache_meta_save(p->revdir, p->meta, err);
}

/* Record a file that is present (size, and a sha256 when known). */
static enum sp_status note_file(struct pull_ctx *p, const char *rel, const char *dest,
                                const char *sha256, struct sp_err *err)
{
    uint64_t size = 0;
    if (!p->meta && cache_meta_new(&p->meta, err) != SP_OK)
        return SP_ERR_NOMEM;
    (void)cache_file_present(dest, &size);
    return cache_meta_set_file(p->meta, rel, size, sha256, err);
}

static enum sp_status fetch_one(struct pull_ctx *p, const char *rel, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char *dest = NULL, *hf = NULL;
    const struct hub_sibling *sib = hub_revision_find(p->rev, rel);
    result = cache_file_path(p->revdir, rel, true, &dest, err);
    if (result != SP_OK)
        goto fail;
    if (cache_file_present(dest, NULL)) {
        LOG_INFO("hub", "%s is already in the cache", rel);
        result = note_file(p, rel, dest, sib ? sib->sha256 : NULL, err);
        goto fail;
    }
    if (cache_hf_find(&p->id, p->rev->commit, rel, &hf, NULL) == SP_OK) {
        struct sp_err e2 = {0};
        if (cache_install_from(hf, dest, sib ? sib->size : 0, sib && sib->has_size,
                               sib ? sib->sha256 : NULL, &e2) == SP_OK) {
            result = note_file(p, rel, dest, sib ? sib->sha256 : NULL, err);
            goto fail;
        }
        LOG_WARN("hub", "not using the Hugging Face cache copy of %s: %s", rel, e2.msg);
    }
    struct hub_download d = {
        .id = &p->id, .revision = p->rev->commit, .path = rel, .dest = dest,
        .expect_sha256 = sib ? sib->sha256 : NULL, .expect_size = sib ? sib->size : 0,
        .has_expect_size = sib && sib->has_size, .progress = p->o->progress,
        .progress_ud = p->o->progress_ud,
    };
    struct hub_download_result res;
    result = hub_file_download(p->client, &d, &res, err);
    if (result != SP_OK)
        goto fail;
    result = note_file(p, rel, dest, res.sha256[0] ? res.sha256 : (sib ? sib->sha256 : NULL), err);
fail:
    sp_free(hf);
    sp_free(dest);
    return result;
}

/* HF_HUB_OFFLINE: only the standard HF cache can still help. */
static enum sp_status pull_offline(struct pull_ctx *p, struct sp_err *err)
{
    char commit[HUB_SHA256_HEX + 1];
    if (!p->want.n || cache_hf_commit(&p->id, p->id.revision, commit) != SP_OK)
        return sp_err_set(err, SP_ERR_OFFLINE,
                          "HF_HUB_OFFLINE=1 and %s@%s is not in the cache; unset HF_HUB_OFFLINE or "
                          "pull it first",
                          p->id.repo, p->id.revision);
    for (size_t i = 0; i < p->want.n; i++) {
        char *dest = NULL, *hf = NULL;
        enum sp_status result = cache_file_path(p->revdir, p->want.v[i], true, &dest, err);
        if (result == SP_OK && !cache_file_present(dest, NULL)) {
            if (cache_hf_find(&p->id, commit, p->want.v[i], &hf, NULL) != SP_OK)
                result = sp_err_set(err, SP_ERR_OFFLINE,
                                    "HF_HUB_OFFLINE=1 and %s of %s@%s is not in the cache",
                                    p->want.v[i], p->id.repo, p->id.revision);
            else
                result = cache_install_from(hf, dest, 0, false, NULL, err);
        }
        if (result == SP_OK)
            result = note_file(p, p->want.v[i], dest, NULL, err);
        sp_free(dest);
        sp_free(hf);
        if (result != SP_OK)
            return result;
    }
    return save_meta(p, commit, err);
}

enum sp_status app_pull(const struct app_pull_opts *o, struct app_pulled *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct pull_ctx p = {.o = o};
    char source[200];
    memset(out, 0, sizeof(*out));
    if (!o || !o->model)
        return sp_err_set(err, SP_ERR_INVALID, "no model given");
    /* 1. validate everything before any request or file */
    result = hub_id_parse(o->model, strlen(o->model), &p.id, err);
    if (result != SP_OK)
        goto fail;
    p.name = o->name ? o->name : p.id.name;
    result = hub_name_check(p.name, strlen(p.name), "cache name", err);
    if (result != SP_OK)
        goto fail;
    if (o->quant && hub_name_check(o->quant, strlen(o->quant), "quant", err) != SP_OK) {
        result = SP_ERR_INVALID;
        goto fail;
    }
    for (size_t i = 0; i < o->n_files; i++) {
        const char *f = o->files[i];
        char *tmp = NULL;
        if (!f) {
            result = sp_err_set(err, SP_ERR_INVALID, "empty file path");
            goto fail;
        }
        result = cache_file_path("/nonexistent-spoke-check", f, false, &tmp, err);
        sp_free(tmp);
        if (result != SP_OK)
            goto fail;
        result = add_with_split(&p.want, f, err);
        if (result != SP_OK)
            goto fail;
    }
    result = hub_config_from_env(&p.cfg, err);
    if (result != SP_OK)
        goto fail;
    result = cache_root(&p.root, err);
    if (result != SP_OK)
        goto fail;
    result = cache_revision_dir(p.root, p.name, p.id.revision, true, &p.revdir, err);
    if (result != SP_OK)
        goto fail;
    if (cache_meta_load(p.revdir, &p.meta, NULL) != SP_OK)
        p.meta = NULL;
    if (p.meta && p.meta->repo && strcmp(p.meta->repo, p.id.repo) != 0) {
        result = sp_err_setc(err, SP_ERR_INVALID, p.name,
                             "the cache name \"%s\" already holds %s; pick another with --name "
                             "(or remove it with spoke rm %s)",
                             p.name, p.meta->repo, p.name);
        goto fail;
    }

    /* 2. cache by existence: no request when everything wanted is here */
    if (!o->n_files) {
        result = choose_cached(&p, err);
        if (result != SP_OK)
            goto fail;
    }
    if (all_present(&p)) {
        const char *commit = p.meta && p.meta->commit ? p.meta->commit : "";
        LOG_INFO("hub", "%s@%s: using the cached files in %s (no request made)", p.id.repo,
                 p.id.revision, p.revdir);
        if (!hub_revision_is_commit(p.id.revision) && commit[0])
            LOG_WARN("hub",
                     "%s@%s is not pinned: the cached files are commit %s and the Hub may have "
                     "moved on (drift); pin it with %s@%s",
                     p.id.repo, p.id.revision, commit, p.id.repo, commit);
        if (!p.meta || !p.meta->primary) {
            for (size_t i = 0; i < p.want.n; i++) {
                char *dest = NULL;
                if (cache_file_path(p.revdir, p.want.v[i], false, &dest, NULL) == SP_OK)
                    (void)note_file(&p, p.want.v[i], dest, NULL, NULL);
                sp_free(dest);
            }
            (void)save_meta(&p, commit, NULL); /* files placed by huggingface-cli: record them */
        }
        result = fill_out(&p, commit, out, err);
        goto fail;
    }
    if (!o->n_files)
        names_free(&p.want); /* choose from the Hub's listing instead */

    /* 3. offline: the standard HF cache is the only other source */
    if (p.cfg.offline) {
        result = pull_offline(&p, err);
        if (result == SP_OK)
            result = fill_out(&p, p.meta ? p.meta->commit : "", out, err);
        goto fail;
    }

    /* 4. resolve, choose, fetch */
    result = hub_token_resolve(o->token, &p.token, source, sizeof(source), err);
    if (result != SP_OK)
        goto fail;
    result = hub_client_new(&p.cfg, p.token, &p.client, err);
    if (result != SP_OK)
        goto fail;
    result = hub_revision_resolve(p.client, &p.id, &p.rev, err);
    if (result != SP_OK)
        goto fail;
    if (!hub_revision_is_commit(p.id.revision))
        LOG_WARN("hub",
                 "%s@%s is not pinned: it resolved to commit %s today and may change (drift); pin "
                 "it with %s@%s",
                 p.id.repo, p.id.revision, p.rev->commit, p.id.repo, p.rev->commit);
    if (!p.want.n) {
        result = choose_remote(&p, err);
        if (result != SP_OK)
            goto fail;
    }
    for (size_t i = 0; i < p.want.n; i++) {
        if (p.rev->n_files && !hub_revision_find(p.rev, p.want.v[i])) {
            result = sp_err_setc(err, SP_ERR_NOT_FOUND, p.want.v[i],
                                 "file \"%s\" not found in %s@%s; check the --file name",
                                 p.want.v[i], p.id.repo, p.id.revision);
            goto fail;
        }
    }
    for (size_t i = 0; i < p.want.n; i++) {
        result = fetch_one(&p, p.want.v[i], err);
        if (result != SP_OK)
            goto fail;
    }
    result = save_meta(&p, p.rev->commit, err);
    if (result != SP_OK)
        goto fail;
    result = fill_out(&p, p.rev->commit, out, err);
fail:
    if (result != SP_OK && p.revdir) {
        /* a failed pull leaves no empty directories behind (rmdir only ever
         * removes an empty directory; a resumable .incomplete keeps it) */
        if (rmdir(p.revdir) == 0) {
            char *slash = strrchr(p.revdir, '/');
            if (slash) {
                *slash = '\0';
                (void)rmdir(p.revdir);
            }
        }
    }
    pull_ctx_free(&p);
    return result;
}

/* ---- locate ------------------------------------------------------------------- */

static enum sp_status locate_file(const char *path, struct app_pulled *out, struct sp_err *err)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return sp_err_setc(err, SP_ERR_NOT_FOUND, path, "model file %s not found", path);
    char *slash = strrchr(real, '/');
    const char *base = slash ? slash + 1 : real;
    size_t bl = strlen(base);
    if (bl > 5 && strcasecmp(base + bl - 5, ".gguf") == 0)
        bl -= 5;
    out->name = sp_strndup(base, bl);
    out->revision = sp_strdup("");
    out->commit = sp_strdup("");
    out->path = sp_strdup(real);
    if (slash)
        *slash = '\0';
    out->dir = sp_strdup(slash ? (real[0] ? real : "/") : ".");
    if (!out->name || !out->revision || !out->commit || !out->path || !out->dir) {
        app_pulled_free(out);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
    return SP_OK;
}

/* A cached name[@rev]: SP_ERR_NOT_FOUND (no err text) when not cached. */
static enum sp_status locate_cached(const char *spec, struct app_pulled *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    char name[HUB_NAME_MAX + 1] = "", rev[HUB_REV_MAX + 1] = "";
    const char *at = strpbrk(spec, "@:");
    size_t nl = at ? (size_t)(at - spec) : strlen(spec);
    char *root = NULL, *revdir = NULL, **files = NULL;
    size_t n = 0;
    struct cache_meta *meta = NULL;
    if (hub_name_check(spec, nl, "cache name", err) != SP_OK)
        return SP_ERR_INVALID;
    memcpy(name, spec, nl);
    if (at) {
        if (hub_revision_check(at + 1, strlen(at + 1), err) != SP_OK)
            return SP_ERR_INVALID;
        sp_strlcpy(rev, strcmp(at + 1, "latest") == 0 ? "main" : at + 1, sizeof(rev));
    }
    result = cache_root(&root, err);
    if (result != SP_OK)
        return result;
    if (!rev[0]) {
        /* main if present, else the most recently pulled revision */
        struct cache_entry *e = NULL;
        size_t ne = 0;
        int64_t best = -1;
        result = cache_list(root, &e, &ne, err);
        if (result != SP_OK)
            goto fail;
        for (size_t i = 0; i < ne; i++) {
            if (strcmp(e[i].name, name) != 0)
                continue;
            if (strcmp(e[i].revision, "main") == 0) {
                sp_strlcpy(rev, "main", sizeof(rev));
                break;
            }
            if (e[i].pulled_ms > best) {
                best = e[i].pulled_ms;
                sp_strlcpy(rev, e[i].revision, sizeof(rev));
            }
        }
        cache_list_free(e, ne);
        if (!rev[0]) {
            result = SP_ERR_NOT_FOUND;
            goto fail;
        }
    }
    result = cache_revision_dir(root, name, rev, false, &revdir, err);
    if (result != SP_OK)
        goto fail;
    struct stat st;
    if (stat(revdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        result = SP_ERR_NOT_FOUND;
        goto fail;
    }
    if (cache_meta_load(revdir, &meta, NULL) != SP_OK)
        meta = NULL;
    result = cache_list_files(revdir, &files, &n, err);
    if (result != SP_OK)
        goto fail;
    long pick = -1;
    for (size_t i = 0; meta && meta->primary && i < n; i++)
        if (strcmp(files[i], meta->primary) == 0)
            pick = (long)i;
    if (pick < 0)
        pick = app_choose_gguf((const char *const *)files, n, NULL);
    if (pick < 0) {
        result = sp_err_setc(err, SP_ERR_NOT_FOUND, spec, "%s@%s in the cache has no .gguf file",
                             name, rev);
        goto fail;
    }
    struct sp_buf path = {0};
    if (sp_buf_printf(&path, "%s/%s", revdir, files[pick]) != SP_OK) {
        sp_buf_free(&path);
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    out->path = sp_buf_take(&path);
    out->name = sp_strdup(name);
    out->revision = sp_strdup(rev);
    out->commit = sp_strdup(meta && meta->commit ? meta->commit : "");
    out->dir = revdir;
    revdir = NULL;
    if (!out->path || !out->name || !out->revision || !out->commit) {
        app_pulled_free(out);
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    }
fail:
    cache_strv_free(files, n);
    cache_meta_free(meta);
    sp_free(revdir);
    sp_free(root);
    return result;
}

enum sp_status app_model_locate(const char *spec, const char *token, struct app_pulled *out,
                                struct sp_err *err)
{
    struct stat st;
    memset(out, 0, sizeof(*out));
    sp_err_clear(err);
    if (!spec || !*spec)
        return sp_err_set(err, SP_ERR_INVALID, "no model given");
    if (sp_str_starts_with(spec, "file:"))
        return locate_file(spec + 5, out, err);
    if (stat(spec, &st) == 0 && S_ISREG(st.st_mode))
        return locate_file(spec, out, err);
    if (!strchr(spec, '/')) {
        enum sp_status result = locate_cached(spec, out, err);
        if (result == SP_ERR_NOT_FOUND && !(err && err->msg[0] && err->code == SP_ERR_NOT_FOUND))
            return sp_err_setc(err, SP_ERR_NOT_FOUND, spec,
                               "model %s is neither a file nor in the cache (see spoke ls); pull it "
                               "with spoke pull org/name",
                               spec);
        return result;
    }
    if (spec[0] == '/' || spec[0] == '.' || is_gguf(spec))
        return sp_err_setc(err, SP_ERR_NOT_FOUND, spec, "model file %s not found", spec);
    struct app_pull_opts o = {.model = spec, .token = token};
    return app_pull(&o, out, err);
}
