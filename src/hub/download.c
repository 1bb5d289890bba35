/* download.c - the Hub operations built on http.c: revision resolve, file
 * HEAD and the resumable, verified download.
 *
 * Download protocol for DEST:
 *   DEST exists                      -> done, no request
 *   flock DEST.lock                  -> one downloader per file, others wait
 *   DEST exists (someone finished)   -> done
 *   HEAD resolve URL                 -> size (X-Linked-Size/Content-Length), sha256 (X-Linked-Etag/ETag)
 *   open DEST.incomplete, hash what is there, GET with Range: bytes=N-
 *   check the free disk space for the missing bytes
 *   retry transport errors / 408 / 429 / 5xx with backoff (attempts in a row
 *     reset on progress past the longest partial file; total attempts and the
 *     time without progress are bounded)
 *   verify size and sha256 (mismatch: start over once, then fail)
 *   fsync, rename(DEST.incomplete, DEST), fsync the directory, unlock. */
#include "hub/http.h"
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

bool hub_etag_sha256(const char *etag, char out[HUB_SHA256_HEX + 1])
{
    const char *p = etag;
    if (!p)
        return false;
    if (p[0] == 'W' && p[1] == '/')
        p += 2;
    size_t n = strlen(p);
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    return hub_sha256_hex(p, n, out);
}

/* Hash the first `len` bytes of fd into sha (reads from offset 0). */
static enum sp_status hash_fd_prefix(int fd, uint64_t len, EVP_MD_CTX *sha, struct sp_err *err)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = sp_malloc(CHUNK);
    uint64_t off = 0;
    if (!buf)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    while (off < len) {
        size_t want = (size_t)SP_MIN((uint64_t)CHUNK, len - off);
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            sp_free(buf);
            return sp_err_set(err, SP_ERR_IO, "cannot read back the partial download: %s",
                              r < 0 ? strerror(errno) : "short file");
        }
        if (EVP_DigestUpdate(sha, buf, (size_t)r) != 1) {
            sp_free(buf);
            return sp_err_set(err, SP_ERR_INTERNAL, "sha256 failed");
        }
        off += (uint64_t)r;
    }
    sp_free(buf);
    return SP_OK;
}

enum sp_status hub_sha256_file(const char *path, char out[HUB_SHA256_HEX + 1], uint64_t *size_out,
                               struct sp_err *err)
{
    enum sp_status result = SP_OK;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *sha = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_err_setc(err, SP_ERR_IO, path, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        result = sp_err_setc(err, SP_ERR_IO, path, "%s is not a regular file", path);
        goto fail;
    }
    sha = EVP_MD_CTX_new();
    if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory (sha256)");
        goto fail;
    }
    result = hash_fd_prefix(fd, (uint64_t)st.st_size, sha, err);
    if (result != SP_OK)
        goto fail;
    if (EVP_DigestFinal_ex(sha, md, &mdlen) != 1) {
        result = sp_err_set(err, SP_ERR_INTERNAL, "sha256 failed");
        goto fail;
    }
    hub_sha256_digest_hex(md, out);
    if (size_out)
        *size_out = (uint64_t)st.st_size;
fail:
    EVP_MD_CTX_free(sha);
    close(fd);
    return result;
}

/* ---- locks ------------------------------------------------------------------ */

enum sp_status hub_lock_acquire(const char *path, int *fd_out, struct sp_err *err)
{
    *fd_out = -1;
    for (int tries = 0; tries < 1000; tries++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return sp_err_setc(err, SP_ERR_IO, path, "cannot create lock file %s: %s", path,
                               strerror(errno));
        int r;
        do {
            r = flock(fd, LOCK_EX);
        } while (r != 0 && errno == EINTR);
        if (r != 0) {
            int e = errno;
            close(fd);
            return sp_err_setc(err, SP_ERR_IO, path, "cannot lock %s: %s", path, strerror(e));
        }
        /* the holder before us may have unlinked the file: make sure we locked
         * the file that is at path now */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            *fd_out = fd;
            return SP_OK;
        }
        close(fd);
    }
    return sp_err_setc(err, SP_ERR_BUSY, path, "could not take the lock %s", path);
}

void hub_lock_release(const char *path, int fd)
{
    if (fd < 0)
        return;
    (void)unlink(path); /* while still holding it: waiters re-check the inode */
    close(fd);
}

/* ---- revision resolve and HEAD ------------------------------------------------- */

/* Run method on url with retries; SP_OK means a final non-retriable response
 * (any status) is in resp. */
static enum sp_status request_retry(struct hub_client *c, const char *method, const char *url,
                                    bool follow, struct http_resp *resp, struct sp_err *err)
{
    const struct hub_config *cfg = http_config(c);
    for (unsigned attempt = 1;; attempt++) {
        enum sp_status result = http_exchange(c, method, url, follow, NULL, resp, err);
        bool retry = (result == SP_ERR_NETWORK) ||
                     (result == SP_OK && http_status_retriable(resp->status));
        if (!retry)
            return result;
        if (attempt >= cfg->max_attempts) {
            if (result == SP_OK)
                return SP_OK; /* caller maps the status to an error */
            return result;
        }
        LOG_WARN("hub", "%s %s: %s", method, url,
                 result == SP_OK ? "the server is busy or failing" : (err ? err->msg : "network error"));
        http_backoff_sleep(c, attempt, result == SP_OK ? resp : NULL);
    }
}

enum sp_status hub_revision_resolve(struct hub_client *c, const struct hub_id *id,
                                    struct hub_revision **out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct http_resp resp = {0};
    char *url = http_url_revision(c, id->repo, id->revision);
    *out = NULL;
    if (!url)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    result = request_retry(c, "GET", url, true, &resp, err);
    if (result != SP_OK)
        goto fail;
    if (resp.status != 200) {
        result = http_status_error(c, &resp, id->repo, id->revision, NULL, err);
        goto fail;
    }
    result = hub_revision_parse(resp.body.data ? resp.body.data : "", resp.body.len, out, err);
fail:
    http_resp_free(&resp);
    sp_free(url);
    return result;
}

static void meta_from_resp(const struct http_resp *r, struct hub_file_meta *m)
{
    uint64_t v;
    if (r->linked_size[0] && sp_parse_u64(r->linked_size, UINT64_MAX, &v)) {
        m->size = v;
        m->has_size = true;
    } else if (!(r->status >= 300 && r->status < 400) && r->content_length[0] &&
               sp_parse_u64(r->content_length, UINT64_MAX, &v)) {
        m->size = v;
        m->has_size = true;
    }
    if (!hub_etag_sha256(r->linked_etag, m->sha256) && !hub_etag_sha256(r->etag, m->sha256))
        m->sha256[0] = '\0';
    if (r->repo_commit[0] && hub_revision_is_commit(r->repo_commit))
        sp_strlcpy(m->commit, r->repo_commit, sizeof(m->commit));
}

enum sp_status hub_file_head(struct hub_client *c, const struct hub_id *id, const char *revision,
                             const char *path, struct hub_file_meta *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct http_resp resp = {0};
    char *url = http_url_resolve(c, id->repo, revision, path);
    memset(out, 0, sizeof(*out));
    if (!url)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    /* first hop only: the Hub's own headers (X-Linked-*) are authoritative */
    result = request_retry(c, "HEAD", url, false, &resp, err);
    if (result != SP_OK)
        goto fail;
    bool redirect = resp.status >= 300 && resp.status < 400;
    if (redirect && !resp.linked_size[0]) {
        /* no size on the redirect: follow it (tokens stay home) */
        result = request_retry(c, "HEAD", url, true, &resp, err);
        if (result != SP_OK)
            goto fail;
        redirect = false;
    }
    if (!redirect && resp.status != 200) {
        result = http_status_error(c, &resp, id->repo, revision, path, err);
        goto fail;
    }
    meta_from_resp(&resp, out);
fail:
    http_resp_free(&resp);
    sp_free(url);
    return result;
}

/* ---- download ---------------------------------------------------------------- */

static enum sp_status fsync_dir_of(const char *path)
{
    char tmp[4096];
    if (sp_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
        return SP_ERR_RANGE;
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return SP_ERR_IO;
    int r = fsync(fd);
    close(fd);
    return r == 0 ? SP_OK : SP_ERR_IO;
}

static bool file_exists(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    if (size)
        *size = (uint64_t)st.st_size;
    return true;
}

/* Truncate the partial file to zero (a restart). */
static enum sp_status sink_restart(struct http_sink *sink, struct sp_err *err)
{
    if (hasher_reset(sink->hash) != SP_OK || ftruncate(sink->fd, 0) != 0 ||
        lseek(sink->fd, 0, SEEK_SET) != 0)
        return sp_err_set(err, SP_ERR_IO, "cannot truncate the partial download");
    sink->offset = 0;
    return SP_OK;
}

/* Fetch the rest of the file into sink with retries. Progress is the file
 * growing past its longest length so far (`high`): bytes that only rebuild
 * what a restart threw away do not count, so a server that answers every
 * Range request with a short 200 runs out of attempts in a row. Independent
 * of progress, at most max_total_attempts exchanges are made and no more
 * than stall_ms pass without progress. */
static enum sp_status fetch_body(struct hub_client *c, const struct hub_download *d, const char *url,
                                 struct http_sink *sink, struct sp_err *err)
{
    const struct hub_config *cfg = http_config(c);
    struct http_resp resp = {0};
    enum sp_status result = SP_OK;
    unsigned fails = 0, total = 0;
    uint64_t high = sink->offset;
    double last_progress = sp_now_ms();
    char cause[300] = "";
    for (;;) {
        if (sink->total && sink->offset == sink->total) {
            result = SP_OK;
            break;
        }
        uint64_t asked = sink->offset;
        sink->range_mismatch = false;
        total++;
        result = http_exchange(c, "GET", url, true, sink, &resp, err);
        bool ignored_range = result == SP_OK && resp.status == 200 && asked > 0;
        if (result == SP_OK && (resp.status == 200 || resp.status == 206)) {
            if (!sink->total || sink->offset >= sink->total)
                break; /* complete (or unknown size): verify decides */
            if (ignored_range)
                result = sp_err_set(err, SP_ERR_NETWORK,
                                    "the server answered a Range request from byte %llu with 200 "
                                    "(the whole file) but sent only %llu of %llu bytes",
                                    (unsigned long long)asked, (unsigned long long)sink->offset,
                                    (unsigned long long)sink->total);
            else
                result = sp_err_set(err, SP_ERR_NETWORK, "the body ended early (%llu of %llu bytes)",
                                    (unsigned long long)sink->offset,
                                    (unsigned long long)sink->total);
        } else if (result == SP_OK && resp.status == 416) {
            /* our partial file does not fit the remote one: start over */
            if ((result = sink_restart(sink, err)) != SP_OK)
                break;
            result = sp_err_set(err, SP_ERR_NETWORK, "range not satisfiable; restarting");
        } else if (result == SP_OK && !http_status_retriable(resp.status)) {
            result = http_status_error(c, &resp, d->id->repo, d->revision, d->path, err);
            break;
        } else if (result == SP_OK) {
            result = sp_err_set(err, SP_ERR_HTTP, "HTTP %ld", resp.status);
        } else if (result != SP_ERR_NETWORK) {
            break; /* I/O, redirect loop, offline, no space: final */
        }
        if (sink->range_mismatch && sink->offset) {
            /* a server that cannot do ranges right: restart from zero */
            if ((result = sink_restart(sink, err)) != SP_OK)
                break;
        }
        sp_strlcpy(cause, err ? err->msg : "failed", sizeof(cause));
        if (sink->offset > high) {
            high = sink->offset;
            fails = 0;
            last_progress = sp_now_ms();
        }
        fails++;
        double stalled = sp_now_ms() - last_progress;
        const char *why = fails >= cfg->max_attempts ? "attempts in a row without progress"
                          : total >= cfg->max_total_attempts ? "attempts in all"
                          : stalled >= (double)cfg->stall_ms ? "time without progress"
                          : NULL;
        if (why) {
            result = sp_err_setc(err, result, d->path,
                                 "downloading %s of %s gave up (%s: %u in a row, %u in all, %.1f s "
                                 "without progress, %llu of %llu bytes): %s",
                                 d->path, d->id->repo, why, fails, total, stalled / 1000.0,
                                 (unsigned long long)high, (unsigned long long)sink->total, cause);
            if (err && resp.status)
                err->http_status = (int)resp.status;
            break;
        }
        LOG_WARN("hub", "downloading %s: %s (at %llu bytes)", d->path, cause,
                 (unsigned long long)sink->offset);
        http_backoff_sleep(c, fails, (result == SP_ERR_HTTP) ? &resp : NULL);
        result = SP_OK;
    }
    http_resp_free(&resp);
    return result;
}

/* The file system of fd must have room for `need` more bytes (of a file of
 * `total` bytes). */
static enum sp_status check_space(int fd, const char *dest, uint64_t need, uint64_t total,
                                  struct sp_err *err)
{
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) != 0)
        return SP_OK; /* unknown: the writes will tell */
    uint64_t avail;
    if (!sp_mul_u64((uint64_t)vfs.f_bavail, (uint64_t)vfs.f_frsize, &avail))
        return SP_OK;
    if (avail >= need)
        return SP_OK;
    return sp_err_setc(err, SP_ERR_NOSPACE, dest,
                       "not enough disk space for %s: the file is %llu bytes (%.2f GiB) and %llu "
                       "more are needed, but only %llu bytes (%.2f GiB) are free there; free some "
                       "space or set SPOKE_HOME to a larger disk",
                       dest, (unsigned long long)total, (double)total / 1073741824.0,
                       (unsigned long long)need, (unsigned long long)avail,
                       (double)avail / 1073741824.0);
}

static enum sp_status download_locked(struct hub_client *c, const struct hub_download *d,
                                      const char *tmp, struct hub_download_result *res,
                                      struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct hub_file_meta meta;
    struct hasher *hash = NULL;
    int fd = -1;
    char *url = NULL;
    char got[HUB_SHA256_HEX + 1];
    char want[HUB_SHA256_HEX + 1] = "";

    result = hub_file_head(c, d->id, d->revision, d->path, &meta, err);
    if (result != SP_OK)
        goto fail;
    if (meta.sha256[0])
        sp_strlcpy(want, meta.sha256, sizeof(want));
    else if (d->expect_sha256 && d->expect_sha256[0])
        sp_strlcpy(want, d->expect_sha256, sizeof(want));
    uint64_t total = meta.has_size ? meta.size : (d->has_expect_size ? d->expect_size : 0);
    bool has_total = meta.has_size || d->has_expect_size;
    url = http_url_resolve(c, d->id->repo, d->revision, d->path);
    if (!url) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot open %s: %s", tmp, strerror(errno));
        goto fail;
    }
    uint64_t have = (uint64_t)st.st_size;
    if (has_total && have > total)
        have = 0;
    if (ftruncate(fd, (off_t)have) != 0 || lseek(fd, (off_t)have, SEEK_SET) < 0) {
        result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot prepare %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (has_total) {
        result = check_space(fd, d->dest, total - have, total, err);
        if (result != SP_OK)
            goto fail;
    }
    if (hasher_new(fd, have, &hash) != SP_OK) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory (hasher)");
        goto fail;
    }
    if (have) {
        res->resumed = true;
        LOG_INFO("hub", "resuming %s at %llu of %llu bytes", d->path, (unsigned long long)have,
                 (unsigned long long)total);
    }
    struct http_sink sink = {.fd = fd, .hash = hash, .offset = have, .total = has_total ? total : 0,
                             .path = d->path, .progress = d->progress, .progress_ud = d->progress_ud};
    double t0 = sp_now_ms();
    for (int pass = 0;; pass++) {
        result = fetch_body(c, d, url, &sink, err);
        if (result != SP_OK)
            goto fail;
        const char *why = NULL;
        if (has_total && sink.offset != total)
            why = "size";
        if (hasher_finish(hash, sink.offset, got) != SP_OK) {
            result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot read back %s to hash it", tmp);
            goto fail;
        }
        if (!why && want[0] && strcmp(got, want) != 0)
            why = "sha256";
        if (!why)
            break;
        LOG_WARN("hub", "%s: %s mismatch after download (got %llu bytes, sha256 %s; expected %llu "
                 "bytes, sha256 %s)", d->path, why, (unsigned long long)sink.offset, got,
                 (unsigned long long)total, want[0] ? want : "unknown");
        if (pass >= 1) {
            close(fd); /* the hasher thread has exited (hasher_finish) */
            fd = -1;
            (void)unlink(tmp);
            result = sp_err_setc(err, SP_ERR_INTEGRITY, d->path,
                                 "%s of %s@%s failed verification twice (%s mismatch); the "
                                 "download was discarded, try again later",
                                 d->path, d->id->repo, d->revision, why);
            goto fail;
        }
        if (hasher_reset(hash) != SP_OK || ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
            result = sp_err_setc(err, SP_ERR_IO, tmp, "cannot truncate %s", tmp);
            goto fail;
        }
        sink.offset = 0;
    }
    if (sink.progress)
        sink.progress(sink.progress_ud, d->path, sink.offset, sink.offset);
    double t1 = sp_now_ms();
    if (fsync(fd) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, tmp, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, d->dest) != 0) {
        result = sp_err_setc(err, SP_ERR_IO, d->dest, "cannot rename into %s: %s", d->dest,
                             strerror(errno));
        goto fail;
    }
    (void)fsync_dir_of(d->dest);
    {
        double secs = (t1 - t0) / 1000.0;
        LOG_INFO("hub", "downloaded %s: %llu bytes in %.2f s (%.1f MiB/s), fsync %.2f s", d->path,
                 (unsigned long long)sink.fetched, secs,
                 secs > 0 ? (double)sink.fetched / 1048576.0 / secs : 0.0,
                 (sp_now_ms() - t1) / 1000.0);
    }
    res->downloaded = true;
    res->size = sink.offset;
    res->bytes_fetched = sink.fetched;
    sp_strlcpy(res->sha256, want[0] ? got : "", sizeof(res->sha256));
fail:
    hasher_free(hash); /* joins the thread that reads fd: before close */
    if (fd >= 0) {
        struct stat left;
        /* a failure that left nothing to resume leaves no scratch file */
        if (result != SP_OK && fstat(fd, &left) == 0 && left.st_size == 0)
            (void)unlink(tmp);
        close(fd);
    }
    sp_free(url);
    return result;
}

enum sp_status hub_file_download(struct hub_client *c, const struct hub_download *d,
                                 struct hub_download_result *res, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct sp_buf lock = {0}, tmp = {0};
    int lfd = -1;
    memset(res, 0, sizeof(*res));
    if (file_exists(d->dest, &res->size))
        return SP_OK;
    if (http_config(c)->offline)
        return sp_err_setc(err, SP_ERR_OFFLINE, d->path,
                           "HF_HUB_OFFLINE=1 and %s of %s@%s is not in the cache; unset "
                           "HF_HUB_OFFLINE or pull it first",
                           d->path, d->id->repo, d->revision);
    if (sp_buf_printf(&lock, "%s.lock", d->dest) || sp_buf_printf(&tmp, "%s.incomplete", d->dest)) {
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    result = hub_lock_acquire(lock.data, &lfd, err);
    if (result != SP_OK)
        goto fail;
    if (file_exists(d->dest, &res->size)) {
        LOG_INFO("hub", "%s was downloaded by another process", d->path);
        goto fail; /* result is SP_OK */
    }
    result = download_locked(c, d, tmp.data, res, err);
fail:
    hub_lock_release(lock.data, lfd);
    sp_buf_free(&lock);
    sp_buf_free(&tmp);
    return result;
}
