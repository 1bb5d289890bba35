/* hasher.c - SHA-256 of a file that is being written, on a helper thread.
 * The downloading thread appends to the file and calls hasher_advance with
 * the new length; the hasher thread pread()s the new bytes back (from the
 * page cache) and feeds OpenSSL, so hashing overlaps the network instead of
 * adding to it. A restart (the file truncated to 0) joins the thread and
 * starts over; hasher_finish waits for the tail and returns the digest.
 * Also the sha256 hex helpers shared by the hub files. */
#include "hub/http.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define HASH_CHUNK (4u << 20) /* bytes per pread */
#define HASH_WAKE (1u << 20)  /* wake the thread when this much is pending */

struct hasher {
    pthread_t th;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool mu_ok, cv_ok; /* initialised (destroy only those) */
    int fd;
    EVP_MD_CTX *sha;
    unsigned char *buf;
    uint64_t target; /* bytes of the file written so far (writer) */
    uint64_t hashed; /* bytes hashed so far (hasher) */
    bool finish;     /* no more writes: hash up to target, then exit */
    bool abort;      /* exit as soon as possible */
    int error;       /* errno of a failed read, 0 if none */
};

static void *hasher_main(void *arg)
{
    struct hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        uint64_t pending = h->target - h->hashed;
        if (h->abort || h->error || (h->finish && pending == 0))
            break;
        if (pending < HASH_WAKE && !h->finish) {
            pthread_cond_wait(&h->cv, &h->mu);
            continue;
        }
        uint64_t off = h->hashed;
        size_t want = (size_t)SP_MIN((uint64_t)HASH_CHUNK, h->target - h->hashed);
        pthread_mutex_unlock(&h->mu);
        ssize_t r = pread(h->fd, h->buf, want, (off_t)off);
        int e = r < 0 ? errno : (r == 0 ? EIO : 0);
        if (r > 0 && EVP_DigestUpdate(h->sha, h->buf, (size_t)r) != 1)
            e = EIO;
        pthread_mutex_lock(&h->mu);
        if (e == EINTR)
            continue;
        if (e) {
            h->error = e;
            break;
        }
        h->hashed += (uint64_t)r;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static enum sp_status hasher_start(struct hasher *h)
{
    h->finish = h->abort = false;
    h->error = 0;
    if (pthread_create(&h->th, NULL, hasher_main, h) != 0)
        return SP_ERR_NOMEM;
    h->running = true;
    return SP_OK;
}

static void hasher_join(struct hasher *h, bool abort)
{
    if (!h->running)
        return;
    pthread_mutex_lock(&h->mu);
    if (abort)
        h->abort = true;
    else
        h->finish = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    h->running = false;
}

void hasher_free(struct hasher *h)
{
    if (!h)
        return;
    hasher_join(h, true);
    if (h->mu_ok)
        pthread_mutex_destroy(&h->mu);
    if (h->cv_ok)
        pthread_cond_destroy(&h->cv);
    EVP_MD_CTX_free(h->sha);
    sp_free(h->buf);
    sp_free(h);
}

enum sp_status hasher_new(int fd, uint64_t have, struct hasher **out)
{
    struct hasher *h = sp_calloc(1, sizeof(*h));
    *out = NULL;
    if (!h)
        return SP_ERR_NOMEM;
    /* as cpu.c does: a failed init leaves nothing to destroy and fails the call */
    h->mu_ok = pthread_mutex_init(&h->mu, NULL) == 0;
    h->cv_ok = h->mu_ok && pthread_cond_init(&h->cv, NULL) == 0;
    if (!h->cv_ok) {
        hasher_free(h);
        return SP_ERR_NOMEM;
    }
    h->fd = fd;
    h->target = have;
    h->buf = sp_malloc(HASH_CHUNK);
    h->sha = EVP_MD_CTX_new();
    if (!h->buf || !h->sha || EVP_DigestInit_ex(h->sha, EVP_sha256(), NULL) != 1 ||
        hasher_start(h) != SP_OK) {
        hasher_free(h);
        return SP_ERR_NOMEM;
    }
    *out = h;
    return SP_OK;
}

void hasher_advance(struct hasher *h, uint64_t written)
{
    pthread_mutex_lock(&h->mu);
    h->target = written;
    if (h->target - h->hashed >= HASH_WAKE)
        pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

enum sp_status hasher_reset(struct hasher *h)
{
    hasher_join(h, true);
    h->target = h->hashed = 0;
    if (EVP_DigestInit_ex(h->sha, EVP_sha256(), NULL) != 1)
        return SP_ERR_INTERNAL;
    return hasher_start(h);
}

bool hub_sha256_hex(const char *s, size_t n, char out[HUB_SHA256_HEX + 1])
{
    if (n != HUB_SHA256_HEX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[n] = '\0';
    return true;
}

void hub_sha256_digest_hex(const unsigned char md[32], char out[HUB_SHA256_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[HUB_SHA256_HEX] = '\0';
}

enum sp_status hasher_finish(struct hasher *h, uint64_t written, char out[HUB_SHA256_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    pthread_mutex_lock(&h->mu);
    h->target = written;
    pthread_mutex_unlock(&h->mu);
    hasher_join(h, false);
    if (h->error || h->hashed != written)
        return SP_ERR_IO;
    if (EVP_DigestFinal_ex(h->sha, md, &mdlen) != 1 || mdlen != 32)
        return SP_ERR_INTERNAL;
    hub_sha256_digest_hex(md, out);
    return SP_OK;
}
