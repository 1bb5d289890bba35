/* trace.c - task-history writer: a bounded ring of owned span copies, a
 * writer thread that drains it in batched SQLite transactions (WAL,
 * synchronous=NORMAL so a crash never corrupts the file), and retention
 * deletes. trace_submit only takes a short mutex to push a pointer; when the
 * ring is full (or the store is closing) the span is dropped and counted.
 * Write failures drop the batch and are counted too (logged, rate-limited). */
#include "obs/trace.h"
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TRACE_BATCH 256

struct span_rec {
    char trace_id[33], span_id[17], parent[17];
    bool has_parent;
    char *task, *input, *output, *error, *labels;
    int64_t start_ms, end_ms;
    double duration_ms;
};

struct trace_store {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *ins;
    struct trace_opts opts;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* writer waits for spans */
    pthread_cond_t cv_idle;  /* flushers wait for the writer to finish a batch */
    struct span_rec **ring;
    size_t cap, head, count; /* ring of count spans starting at head */
    size_t in_progress;      /* spans taken by the writer, not yet committed */
    bool closing;
    _Atomic uint64_t dropped, written;
    int64_t last_retention_ms;
    int64_t last_err_log_ms;
};

bool trace_capture_parse(const char *s, enum trace_capture *out)
{
    static const char *const names[] = {"none", "truncated", "full"};
    for (size_t i = 0; s && i < SP_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum trace_capture)i;
            return true;
        }
    }
    return false;
}

void trace_random_hex(char *out, size_t outsz, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (outsz < 2 * nbytes + 1) {
        if (outsz)
            out[0] = 0;
        return;
    }
    ssize_t got = getrandom(raw, nbytes, GRND_NONBLOCK);
    if (got != (ssize_t)nbytes) {
        /* fall back to a time/counter mix; ids need uniqueness, not secrecy */
        static _Atomic uint64_t ctr;
        uint64_t x = sp_now_ns() ^ ((uint64_t)atomic_fetch_add(&ctr, 1) << 32) ^ 0x9e3779b97f4a7c15ULL;
        for (size_t i = 0; i < nbytes; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            raw[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = 0;
}

/* Copy at most cap bytes of s, cut back to a UTF-8 boundary; cap 0 = all. */
static char *dup_capped(const char *s, size_t cap)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    if (cap && n > cap) {
        n = cap;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return sp_strndup(s, n);
}

static void rec_free(struct span_rec *r)
{
    if (!r)
        return;
    sp_free(r->task);
    sp_free(r->input);
    sp_free(r->output);
    sp_free(r->error);
    sp_free(r->labels);
    sp_free(r);
}

static bool is_hex_id(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

static struct span_rec *rec_new(const struct trace_store *t, const struct trace_span *s)
{
    struct span_rec *r = sp_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t cap = t->opts.capture == TRACE_CAPTURE_FULL ? 0 : t->opts.truncate_bytes;
    if (is_hex_id(s->trace_id, 32))
        sp_strlcpy(r->trace_id, s->trace_id, sizeof r->trace_id);
    else
        trace_random_hex(r->trace_id, sizeof r->trace_id, 16);
    if (is_hex_id(s->span_id, 16))
        sp_strlcpy(r->span_id, s->span_id, sizeof r->span_id);
    else
        trace_random_hex(r->span_id, sizeof r->span_id, 8);
    if (is_hex_id(s->parent_span_id, 16)) {
        sp_strlcpy(r->parent, s->parent_span_id, sizeof r->parent);
        r->has_parent = true;
    }
    r->task = sp_strdup(s->task ? s->task : "task");
    r->input = dup_capped(s->input, cap);
    if (s->output && t->opts.capture != TRACE_CAPTURE_NONE)
        r->output = dup_capped(s->output, cap);
    r->error = dup_capped(s->error, 4096);
    r->labels = sp_strdup(s->labels_json ? s->labels_json : "{}");
    r->start_ms = s->start_ms;
    r->end_ms = s->end_ms;
    r->duration_ms = s->duration_ms;
    if (!r->task || !r->labels || (s->input && !r->input) || (s->error && !r->error) ||
        (s->output && t->opts.capture != TRACE_CAPTURE_NONE && !r->output)) {
        rec_free(r);
        return NULL;
    }
    return r;
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS task_history ("
    " trace_id TEXT NOT NULL, span_id TEXT NOT NULL PRIMARY KEY, parent_span_id TEXT,"
    " task TEXT NOT NULL, input TEXT, captured_output TEXT,"
    " start_time TEXT NOT NULL, end_time TEXT NOT NULL, execution_duration_ms REAL,"
    " error_message TEXT, labels TEXT);"
    "CREATE INDEX IF NOT EXISTS task_history_start ON task_history(start_time);";

static const char INSERT_SQL[] =
    "INSERT OR REPLACE INTO task_history (trace_id, span_id, parent_span_id, task, input,"
    " captured_output, start_time, end_time, execution_duration_ms, error_message, labels)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?)";

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int rec_insert(struct trace_store *t, const struct span_rec *r)
{
    char st_iso[32], en_iso[32];
    sp_format_iso8601(r->start_ms, st_iso, sizeof st_iso);
    sp_format_iso8601(r->end_ms, en_iso, sizeof en_iso);
    sqlite3_stmt *st = t->ins;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_text(st, 1, r->trace_id);
    bind_text(st, 2, r->span_id);
    bind_text(st, 3, r->has_parent ? r->parent : NULL);
    bind_text(st, 4, r->task);
    bind_text(st, 5, r->input);
    bind_text(st, 6, r->output);
    bind_text(st, 7, st_iso);
    bind_text(st, 8, en_iso);
    sqlite3_bind_double(st, 9, r->duration_ms);
    bind_text(st, 10, r->error);
    bind_text(st, 11, r->labels);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void log_write_error(struct trace_store *t, const char *what)
{
    int64_t now = sp_wall_ms();
    if (now - t->last_err_log_ms >= 10000) {
        t->last_err_log_ms = now;
        LOG_WARN("trace", "task history %s failed (%s): spans dropped", what, sqlite3_errmsg(t->db));
    }
}

static void retention_run(struct trace_store *t)
{
    int64_t now = sp_wall_ms();
    if (t->opts.retention_s <= 0 || now - t->last_retention_ms < 60000)
        return;
    t->last_retention_ms = now;
    char cutoff[32];
    sp_format_iso8601(now - t->opts.retention_s * 1000, cutoff, sizeof cutoff);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(t->db, "DELETE FROM task_history WHERE start_time < ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            log_write_error(t, "retention delete");
    }
    sqlite3_finalize(st);
}

static void write_batch(struct trace_store *t, struct span_rec **batch, size_t n)
{
    bool ok = sqlite3_exec(t->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < n; i++)
        ok = rec_insert(t, batch[i]) == SQLITE_OK;
    if (ok)
        ok = sqlite3_exec(t->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (ok) {
        atomic_fetch_add(&t->written, n);
    } else {
        log_write_error(t, "write");
        sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
        atomic_fetch_add(&t->dropped, n);
    }
}

static void *writer_main(void *arg)
{
    struct trace_store *t = arg;
    struct span_rec *batch[TRACE_BATCH];
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->count == 0 && !t->closing) {
            sp_cond_wait_ms(&t->cv_work, &t->mu, 1000);
            if (t->count == 0 && !t->closing) {
                pthread_mutex_unlock(&t->mu);
                retention_run(t);
                pthread_mutex_lock(&t->mu);
            }
        }
        if (t->count == 0 && t->closing)
            break;
        size_t n = 0;
        while (t->count > 0 && n < TRACE_BATCH) {
            batch[n++] = t->ring[t->head];
            t->ring[t->head] = NULL;
            t->head = (t->head + 1) % t->cap;
            t->count--;
        }
        t->in_progress = n;
        pthread_mutex_unlock(&t->mu);
        write_batch(t, batch, n);
        for (size_t i = 0; i < n; i++)
            rec_free(batch[i]);
        retention_run(t);
        pthread_mutex_lock(&t->mu);
        t->in_progress = 0;
        pthread_cond_broadcast(&t->cv_idle);
    }
    pthread_cond_broadcast(&t->cv_idle);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void store_destroy(struct trace_store *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->ring && i < t->cap; i++)
        rec_free(t->ring[i]);
    sp_free(t->ring);
    sqlite3_finalize(t->ins);
    if (t->db)
        sqlite3_close(t->db);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv_work);
    pthread_cond_destroy(&t->cv_idle);
    sp_free(t->path);
    sp_free(t);
}

enum sp_status trace_store_open(const struct trace_opts *opts, struct trace_store **out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    *out = NULL;
    if (!opts || !opts->path || !opts->path[0])
        return sp_err_set(err, SP_ERR_INVALID, "task history: no database path");
    struct trace_store *t = sp_calloc(1, sizeof *t);
    if (!t)
        return sp_err_set(err, SP_ERR_NOMEM, "task history: out of memory");
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv_work, NULL);
    pthread_cond_init(&t->cv_idle, NULL);
    t->opts = *opts;
    if (!t->opts.truncate_bytes)
        t->opts.truncate_bytes = 4096;
    if (!t->opts.queue_cap)
        t->opts.queue_cap = 1024;
    t->cap = t->opts.queue_cap;
    t->path = sp_strdup(opts->path);
    t->opts.path = t->path;
    t->ring = sp_calloc(t->cap, sizeof *t->ring);
    if (!t->path || !t->ring) {
        result = sp_err_set(err, SP_ERR_NOMEM, "task history: out of memory");
        goto fail;
    }
    /* The history holds prompts and outputs: owner-only (0600). SQLite gives
     * the -wal/-shm files the database file's mode. */
    int fd = open(t->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        struct stat sb;
        if (fstat(fd, &sb) == 0 && (sb.st_mode & 077) && sb.st_uid == geteuid() && fchmod(fd, 0600) == 0)
            LOG_INFO("trace", "task history %s: permissions tightened to 0600", t->path);
        close(fd);
    }
    int rc = sqlite3_open_v2(t->path, &t->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        result = sp_err_setc(err, SP_ERR_IO, opts->path, "task history: cannot open %s: %s", opts->path,
                             t->db ? sqlite3_errmsg(t->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(t->db, 2000);
    char *emsg = NULL;
    if (sqlite3_exec(t->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &emsg) != SQLITE_OK ||
        sqlite3_exec(t->db, SCHEMA, NULL, NULL, &emsg) != SQLITE_OK) {
        result = sp_err_setc(err, SP_ERR_IO, opts->path, "task history: cannot initialise %s: %s", opts->path,
                             emsg ? emsg : sqlite3_errmsg(t->db));
        sqlite3_free(emsg);
        goto fail;
    }
    if (sqlite3_prepare_v2(t->db, INSERT_SQL, -1, &t->ins, NULL) != SQLITE_OK) {
        result = sp_err_setc(err, SP_ERR_IO, opts->path, "task history: %s", sqlite3_errmsg(t->db));
        goto fail;
    }
    t->last_retention_ms = 0;
    retention_run(t);
    if (pthread_create(&t->thread, NULL, writer_main, t) != 0) {
        result = sp_err_set(err, SP_ERR_INTERNAL, "task history: cannot start writer thread");
        goto fail;
    }
    t->thread_started = true;
    *out = t;
    return SP_OK;
fail:
    store_destroy(t);
    return result;
}

bool trace_submit(struct trace_store *t, const struct trace_span *span)
{
    if (!t || !span)
        return false;
    struct span_rec *r = rec_new(t, span);
    if (!r) {
        atomic_fetch_add(&t->dropped, 1);
        return false;
    }
    pthread_mutex_lock(&t->mu);
    bool ok = !t->closing && t->count < t->cap;
    if (ok) {
        t->ring[(t->head + t->count) % t->cap] = r;
        t->count++;
        pthread_cond_signal(&t->cv_work);
    }
    pthread_mutex_unlock(&t->mu);
    if (!ok) {
        rec_free(r);
        atomic_fetch_add(&t->dropped, 1);
    }
    return ok;
}

static void deadline_ts(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool trace_flush(struct trace_store *t, int timeout_ms)
{
    if (!t)
        return true;
    struct timespec ts;
    deadline_ts(&ts, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&t->mu);
    pthread_cond_signal(&t->cv_work);
    int rc = 0;
    while ((t->count > 0 || t->in_progress > 0) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&t->cv_idle, &t->mu, &ts);
    bool drained = t->count == 0 && t->in_progress == 0;
    pthread_mutex_unlock(&t->mu);
    return drained;
}

void trace_store_close(struct trace_store *t, int timeout_ms)
{
    if (!t)
        return;
    trace_flush(t, timeout_ms);
    pthread_mutex_lock(&t->mu);
    /* whatever is still queued after the timeout is dropped */
    while (t->count > 0) {
        rec_free(t->ring[t->head]);
        t->ring[t->head] = NULL;
        t->head = (t->head + 1) % t->cap;
        t->count--;
        atomic_fetch_add(&t->dropped, 1);
    }
    t->closing = true;
    pthread_cond_broadcast(&t->cv_work);
    pthread_mutex_unlock(&t->mu);
    if (t->thread_started)
        pthread_join(t->thread, NULL);
    if (t->db)
        sqlite3_exec(t->db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
    store_destroy(t);
}

uint64_t trace_dropped(const struct trace_store *t)
{
    return t ? atomic_load(&((struct trace_store *)t)->dropped) : 0;
}

uint64_t trace_written(const struct trace_store *t)
{
    return t ? atomic_load(&((struct trace_store *)t)->written) : 0;
}

const char *trace_store_path(const struct trace_store *t) { return t ? t->path : NULL; }
