/* trace.h - the task history: spans of completed tasks (ai_completion,
 * health, ...) stored in an SQLite database (WAL) table `task_history`, and
 * a read-only SQL query API over it.
 *
 * Writing never blocks or fails a request: trace_submit copies the span into
 * a bounded in-memory queue and returns at once; a writer thread drains it in
 * batched transactions. A full queue or a failing database drops spans and
 * counts them (trace_dropped). Output capture (none / truncated / full) and
 * a retention period (older rows deleted by the writer) are configurable.
 *
 * Table (columns in this order):
 *   trace_id TEXT, span_id TEXT PRIMARY KEY, parent_span_id TEXT, task TEXT,
 *   input TEXT, captured_output TEXT, start_time TEXT (ISO-8601 UTC, ms),
 *   end_time TEXT, execution_duration_ms REAL, error_message TEXT,
 *   labels TEXT (JSON object: model, prompt_tokens, completion_tokens, total_tokens, ...) */
#ifndef SPOKE_OBS_TRACE_H
#define SPOKE_OBS_TRACE_H

#include "base/base.h"

enum trace_capture { TRACE_CAPTURE_NONE = 0, TRACE_CAPTURE_TRUNCATED, TRACE_CAPTURE_FULL };

/* Parse "none" | "truncated" | "full"; false if unknown. */
bool trace_capture_parse(const char *s, enum trace_capture *out);

struct trace_opts {
    const char *path;            /* database file; its directory must exist */
    int64_t retention_s;         /* delete rows older than this; 0 = keep forever */
    enum trace_capture capture;  /* captured_output policy */
    size_t truncate_bytes;       /* cap for TRUNCATED output (and input); 0 = 4096 */
    size_t queue_cap;            /* spans held in memory before dropping; 0 = 1024 */
};

/* One span to record. Strings are copied by trace_submit; NULL = SQL NULL. */
struct trace_span {
    const char *trace_id;        /* 32 hex chars (NULL = new random id) */
    const char *span_id;         /* 16 hex chars (NULL = new random id) */
    const char *parent_span_id;  /* NULL for a root span */
    const char *task;            /* "ai_completion", "health", ... */
    const char *input;
    const char *output;          /* subject to the capture policy */
    int64_t start_ms, end_ms;    /* Unix epoch milliseconds */
    double duration_ms;          /* monotonic duration */
    const char *error;           /* error message or NULL */
    const char *labels_json;     /* JSON object text or NULL ("{}") */
};

struct trace_store;

/* Open (creating the table if needed, WAL mode) and start the writer thread.
 * SP_ERR_IO with the SQLite message if the database cannot be opened. */
enum sp_status trace_store_open(const struct trace_opts *opts, struct trace_store **out,
                                struct sp_err *err) SP_MUST_USE;
/* Write every queued span (waiting at most timeout_ms; spans still queued then
 * are dropped and counted), stop the writer, close the database. NULL no-op. */
void trace_store_close(struct trace_store *t, int timeout_ms);

/* Queue a span; never blocks on I/O. Returns false when it was dropped
 * (queue full, store closing, allocation failure). Thread-safe. */
bool trace_submit(struct trace_store *t, const struct trace_span *span);
/* Wait until the queue is empty and written (at most timeout_ms). True if drained. */
bool trace_flush(struct trace_store *t, int timeout_ms);
/* Spans dropped so far (queue full or write failures). Thread-safe. */
uint64_t trace_dropped(const struct trace_store *t);
/* Spans written so far. Thread-safe. */
uint64_t trace_written(const struct trace_store *t);
const char *trace_store_path(const struct trace_store *t);

/* Fill out with 2*nbytes random lowercase hex chars + NUL (outsz >= 2*nbytes+1). */
void trace_random_hex(char *out, size_t outsz, size_t nbytes);

/* ---- read-only SQL */
struct trace_query_opts {
    size_t max_rows;   /* rows returned at most (more set "truncated"); 0 = 1000 */
    int time_limit_ms; /* the statement and the JSON building are stopped after this; 0 = 2000 */
    size_t max_bytes;  /* the JSON result is at most this long (checked row by row); 0 = 8 MiB */
};
/* Run one read-only statement on the database at path and append the result
 * as JSON to out: {"columns":[...],"rows":[{col:value,...}],"row_count":N,
 * "truncated":bool}. The database is opened read-only; an authorizer allows
 * reads and an allowlist of SQL functions only (core scalar, aggregate, date,
 * math, JSON and window functions: no fts3_tokenizer, load_extension,
 * randomblob, zeroblob ...), whitelisted value-less PRAGMAs; multiple
 * statements are refused. Rows are written to out as they are produced, so
 * the byte cap and the time limit hold while the result is built. Errors:
 * SP_ERR_INVALID (SQL error / not read-only / denied: message says why),
 * SP_ERR_TIMEOUT, SP_ERR_LIMIT (result over max_bytes), SP_ERR_NOT_FOUND (no
 * database), SP_ERR_NOMEM. On error out is left as it was. */
enum sp_status trace_query(const char *path, const char *sql, const struct trace_query_opts *opts,
                           struct sp_buf *out, struct sp_err *err) SP_MUST_USE;

#endif
