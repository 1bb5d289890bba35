/* json.c - the bounded reader of the Hub's revision JSON
 * (GET /api/models/{repo}/revision/{rev}[?blobs=true]) with jansson:
 *   {"sha": "<commit>", "siblings": [{"rfilename": "...", "size": N,
 *     "lfs": {"sha256": "...", "size": N}}, ...], ...}
 * The body size, sibling count and every string are capped; sibling paths
 * that fail hub_path_check are dropped (logged), never returned. */
#include "hub/http.h"
#include "obs/log.h"

#include <jansson.h>
#include <string.h>

#define HUB_JSON_MAX (32u << 20)
#define HUB_SIBLINGS_MAX 100000

void hub_revision_free(struct hub_revision *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++)
        sp_free(r->files[i].path);
    sp_free(r->files);
    sp_free(r->commit);
    sp_free(r);
}

const struct hub_sibling *hub_revision_find(const struct hub_revision *r, const char *path)
{
    for (size_t i = 0; r && i < r->n_files; i++)
        if (strcmp(r->files[i].path, path) == 0)
            return &r->files[i];
    return NULL;
}

static bool json_size(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

enum sp_status hub_revision_parse(const char *json, size_t len, struct hub_revision **out,
                                  struct sp_err *err)
{
    enum sp_status result = SP_OK;
    json_t *root = NULL;
    json_error_t jerr;
    struct hub_revision *r = NULL;
    *out = NULL;
    if (len > HUB_JSON_MAX)
        return sp_err_set(err, SP_ERR_FORMAT, "Hub revision response too large (%zu bytes)", len);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        result = sp_err_set(err, SP_ERR_FORMAT, "malformed Hub revision JSON: %.200s (line %d)",
                            jerr.text, jerr.line);
        goto fail;
    }
    if (!json_is_object(root)) {
        result = sp_err_set(err, SP_ERR_FORMAT, "malformed Hub revision JSON: not an object");
        goto fail;
    }
    json_t *sha = json_object_get(root, "sha");
    if (!json_is_string(sha) || !hub_revision_is_commit(json_string_value(sha)) ||
        strlen(json_string_value(sha)) != json_string_length(sha)) {
        result = sp_err_set(err, SP_ERR_FORMAT,
                            "malformed Hub revision JSON: \"sha\" is missing or not a commit id");
        goto fail;
    }
    r = sp_calloc(1, sizeof(*r));
    if (!r || !(r->commit = sp_strdup(json_string_value(sha)))) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    json_t *sib = json_object_get(root, "siblings");
    if (sib && !json_is_null(sib)) {
        if (!json_is_array(sib)) {
            result = sp_err_set(err, SP_ERR_FORMAT,
                                "malformed Hub revision JSON: \"siblings\" is not an array");
            goto fail;
        }
        size_t n = json_array_size(sib);
        if (n > HUB_SIBLINGS_MAX) {
            result = sp_err_set(err, SP_ERR_FORMAT, "Hub revision lists too many files (%zu)", n);
            goto fail;
        }
        if (n) {
            r->files = sp_calloc(n, sizeof(*r->files));
            if (!r->files) {
                result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
                goto fail;
            }
        }
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(sib, i);
            json_t *fn = json_is_object(e) ? json_object_get(e, "rfilename") : NULL;
            if (!json_is_string(fn)) {
                result = sp_err_set(err, SP_ERR_FORMAT,
                                    "malformed Hub revision JSON: sibling %zu has no rfilename", i);
                goto fail;
            }
            const char *path = json_string_value(fn);
            size_t plen = json_string_length(fn);
            if (hub_path_check(path, plen, NULL) != SP_OK) {
                char shown[160];
                hub_escape(path, SP_MIN(plen, (size_t)120), shown, sizeof(shown));
                LOG_WARN("hub", "ignoring unsafe file name \"%s\" in the Hub listing", shown);
                continue;
            }
            struct hub_sibling *s = &r->files[r->n_files];
            s->path = sp_strndup(path, plen);
            if (!s->path) {
                result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
                goto fail;
            }
            r->n_files++;
            s->has_size = json_size(json_object_get(e, "size"), &s->size);
            json_t *lfs = json_object_get(e, "lfs");
            if (json_is_object(lfs)) {
                json_t *h = json_object_get(lfs, "sha256");
                const char *hs = json_is_string(h) ? json_string_value(h) : NULL;
                if (hs && !hub_sha256_hex(hs, strlen(hs), s->sha256)) {
                    result = sp_err_set(err, SP_ERR_FORMAT,
                                        "malformed Hub revision JSON: bad lfs.sha256 of %.200s",
                                        s->path);
                    goto fail;
                }
                uint64_t lsz;
                if (json_size(json_object_get(lfs, "size"), &lsz)) {
                    s->size = lsz;
                    s->has_size = true;
                }
            }
        }
    }
    json_decref(root);
    *out = r;
    return SP_OK;
fail:
    hub_revision_free(r);
    json_decref(root);
    return result;
}
