/* hfcache.c - reuse of the standard Hugging Face cache and local installs.
 * HF layout: <hub>/models--<org>--<name>/refs/<revision> holds a commit id,
 * <hub>/models--<org>--<name>/snapshots/<commit>/<path> is (usually) a
 * symlink to ../../blobs/<etag>. cache_install_from hard-links the target
 * (linkat with AT_SYMLINK_FOLLOW) or copies it (copy_file_range) into a temp
 * name beside the destination, verifies size and sha256, then renames. */
#include "cache/cache.h"
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *cache_hf_dir(void)
{
    struct sp_buf b = {0};
    const char *v = getenv("HF_HUB_CACHE");
    int r;
    if (v && *v)
        r = sp_buf_appends(&b, v);
    else if ((v = getenv("HF_HOME")) && *v)
        r = sp_buf_printf(&b, "%s/hub", v);
    else if ((v = getenv("HOME")) && *v)
        r = sp_buf_printf(&b, "%s/.cache/huggingface/hub", v);
    else
        return NULL;
    if (r != SP_OK || b.len > PATH_MAX - 1500) {
        sp_buf_free(&b);
        return NULL;
    }
    return sp_buf_take(&b);
}

enum sp_status cache_hf_commit(const struct hub_id *id, const char *revision,
                               char commit[HUB_SHA256_HEX + 1])
{
    char path[PATH_MAX], buf[128];
    commit[0] = '\0';
    if (hub_revision_is_commit(revision)) {
        sp_strlcpy(commit, revision, HUB_SHA256_HEX + 1);
        return SP_OK;
    }
    char *hub = cache_hf_dir();
    if (!hub)
        return SP_ERR_NOT_FOUND;
    int w = snprintf(path, sizeof(path), "%s/models--%s--%s/refs/%s", hub, id->org, id->name,
                     revision);
    sp_free(hub);
    if (w < 0 || (size_t)w >= sizeof(path))
        return SP_ERR_NOT_FOUND;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return SP_ERR_NOT_FOUND;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return SP_ERR_NOT_FOUND;
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (!hub_revision_is_commit(buf))
        return SP_ERR_NOT_FOUND;
    sp_strlcpy(commit, buf, HUB_SHA256_HEX + 1);
    return SP_OK;
}

enum sp_status cache_hf_find(const struct hub_id *id, const char *commit, const char *path,
                             char **out, struct sp_err *err)
{
    struct sp_buf b = {0};
    *out = NULL;
    if (!hub_revision_is_commit(commit) || hub_path_check(path, strlen(path), NULL) != SP_OK)
        return SP_ERR_NOT_FOUND;
    char *hub = cache_hf_dir();
    if (!hub)
        return SP_ERR_NOT_FOUND;
    int r = sp_buf_printf(&b, "%s/models--%s--%s/snapshots/%s/%s", hub, id->org, id->name, commit,
                          path);
    sp_free(hub);
    if (r != SP_OK) {
        sp_buf_free(&b);
        return r == SP_ERR_NOMEM ? sp_err_set(err, SP_ERR_NOMEM, "out of memory") : SP_ERR_NOT_FOUND;
    }
    if (!cache_file_present(b.data, NULL)) {
        sp_buf_free(&b);
        return SP_ERR_NOT_FOUND;
    }
    *out = sp_buf_take(&b);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

static enum sp_status copy_file(const char *src, const char *dst, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, src, "cannot read %s: %s", src, strerror(errno));
        goto fail;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (out < 0) {
        result = sp_err_setc(err, SP_ERR_IO, dst, "cannot create %s: %s", dst, strerror(errno));
        goto fail;
    }
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)SP_MIN(left, (off_t)1 << 30), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = sp_err_setc(err, SP_ERR_IO, dst, "cannot copy into %s: %s", dst,
                                 n < 0 ? strerror(errno) : "short copy");
            goto fail;
        }
        left -= n;
    }
    if (fsync(out) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, dst, "fsync %s: %s", dst, strerror(errno));
        goto fail;
    }
fail:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return result;
}

enum sp_status cache_install_from(const char *src, const char *dest, uint64_t expect_size,
                                  bool has_size, const char *expect_sha256, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct sp_buf tmp = {0};
    bool linked = false;
    if (sp_buf_printf(&tmp, "%s.%d.incomplete", dest, (int)getpid()) != SP_OK)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    (void)unlink(tmp.data);
    if (linkat(AT_FDCWD, src, AT_FDCWD, tmp.data, AT_SYMLINK_FOLLOW) == 0) {
        linked = true;
    } else {
        result = copy_file(src, tmp.data, err);
        if (result != SP_OK)
            goto fail;
    }
    uint64_t size = 0;
    if (!cache_file_present(tmp.data, &size) || (has_size && size != expect_size)) {
        result = sp_err_setc(err, SP_ERR_INTEGRITY, src,
                             "%s in the Hugging Face cache has the wrong size", src);
        goto fail;
    }
    if (expect_sha256 && expect_sha256[0]) {
        char got[HUB_SHA256_HEX + 1];
        result = hub_sha256_file(tmp.data, got, NULL, err);
        if (result != SP_OK)
            goto fail;
        if (strcmp(got, expect_sha256) != 0) {
            result = sp_err_setc(err, SP_ERR_INTEGRITY, src,
                                 "%s in the Hugging Face cache fails its sha256", src);
            goto fail;
        }
    }
    if (rename(tmp.data, dest) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, dest, "cannot rename into %s: %s", dest,
                             strerror(errno));
        goto fail;
    }
    LOG_INFO("cache", "%s %s from the Hugging Face cache", linked ? "hard-linked" : "copied", dest);
    sp_buf_free(&tmp);
    return SP_OK;
fail:
    (void)unlink(tmp.data);
    sp_buf_free(&tmp);
    return result;
}
