/* trace_query.c - read-only SQL over the task history (spoke sql, POST
 * /v1/sql). Defence in depth: the database is opened SQLITE_OPEN_READONLY,
 * extension loading is off, an authorizer allows only reads (SELECT, READ,
 * recursive CTEs, value-less whitelisted PRAGMAs) and functions from an
 * allowlist (a denylist let fts3_tokenizer through: it hands out a pointer
 * into libsqlite3 and with two arguments installs one, CVE-2015-7036), the
 * prepared statement must satisfy sqlite3_stmt_readonly, trailing statements
 * are refused. Limits: a progress handler and a per-row check enforce the
 * time limit, a row cap, SQLITE_LIMIT_LENGTH and a byte cap on the JSON
 * text, which is written row by row (jansson per row) so no result larger
 * than the cap is ever held. */
#include "obs/trace.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct query_guard {
    double deadline_ms;
    bool timed_out;
    char denied[160];
};

static int progress_cb(void *ud)
{
    struct query_guard *g = ud;
    if (sp_now_ms() > g->deadline_ms) {
        g->timed_out = true;
        return 1;
    }
    return 0;
}

static bool pragma_allowed(const char *name)
{
    static const char *const ok[] = {"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                                     "index_xinfo", "foreign_key_list", "collation_list", "function_list"};
    for (size_t i = 0; name && i < SP_ARRAY_LEN(ok); i++)
        if (strcmp(name, ok[i]) == 0)
            return true;
    return false;
}

/* Functions a read-only report may call (sorted for bsearch). Everything else
 * is refused, including functions added by future SQLite versions. */
static const char *const FUNCS_OK[] = {
    "->", "->>", "abs", "acos", "asin", "atan", "atan2", "avg", "ceil", "ceiling", "char", "coalesce", "concat",
    "concat_ws", "cos", "count", "cume_dist", "date", "datetime", "degrees", "dense_rank", "exp", "first_value",
    "floor", "format", "glob", "group_concat", "hex", "ifnull", "iif", "instr", "json", "json_array",
    "json_array_length", "json_extract", "json_group_array", "json_group_object", "json_object", "json_quote",
    "json_type", "json_valid", "julianday", "lag", "last_value", "lead", "length", "like", "likely", "ln", "log",
    "log10", "log2", "lower", "ltrim", "max", "median", "min", "mod", "nth_value", "ntile", "nullif", "octet_length",
    "percent_rank", "pi", "pow", "power", "printf", "quote", "radians", "random", "rank", "replace", "round",
    "row_number", "rtrim", "sign", "sin", "sqrt", "strftime", "string_agg", "substr", "substring", "sum", "tan",
    "time", "timediff", "total", "trim", "trunc", "typeof", "unicode", "unixepoch", "unlikely", "upper",
};

static int func_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool function_allowed(const char *name)
{
    char lower[64];
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= sizeof lower)
        return false;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    const char *key = lower;
    return bsearch(&key, FUNCS_OK, SP_ARRAY_LEN(FUNCS_OK), sizeof FUNCS_OK[0], func_cmp) != NULL;
}

static int authorizer(void *ud, int action, const char *a1, const char *a2, const char *db, const char *trig)
{
    SP_UNUSED(db);
    SP_UNUSED(trig);
    struct query_guard *g = ud;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        if (function_allowed(a2))
            return SQLITE_OK;
        snprintf(g->denied, sizeof g->denied, "function %.64s is not allowed in task-history queries", a2 ? a2 : "?");
        return SQLITE_DENY;
    case SQLITE_PRAGMA:
        /* a1 = pragma name, a2 = its argument (table name for table_info) or NULL */
        if (pragma_allowed(a1))
            return SQLITE_OK;
        snprintf(g->denied, sizeof g->denied, "PRAGMA %s is not allowed (read-only queries only)", a1 ? a1 : "");
        return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
        snprintf(g->denied, sizeof g->denied, "ATTACH/DETACH is not allowed");
        return SQLITE_DENY;
    default:
        snprintf(g->denied, sizeof g->denied, "only read-only SELECT statements are allowed");
        return SQLITE_DENY;
    }
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer((json_int_t)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_NULL: return json_null();
    case SQLITE_BLOB: {
        int n = sqlite3_column_bytes(st, i);
        return json_sprintf("<blob %d bytes>", n);
    }
    default: {
        const char *s = (const char *)sqlite3_column_text(st, i);
        int n = sqlite3_column_bytes(st, i);
        json_t *v = json_stringn_nocheck(s ? s : "", s ? (size_t)n : 0);
        if (v && !sp_utf8_valid(s ? s : "", s ? (size_t)n : 0)) {
            json_decref(v);
            v = json_string("<invalid utf-8>");
        }
        return v;
    }
    }
}

static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

static enum sp_status value_json(sqlite3_stmt *st, int i, size_t room, json_t **out, struct sp_err *err)
{
    int t = sqlite3_column_type(st, i);
    if ((t == SQLITE_TEXT || t == SQLITE_BLOB) && (size_t)sqlite3_column_bytes(st, i) > room)
        return sp_err_set(err, SP_ERR_LIMIT, "query result exceeds the cap of %zu bytes; select fewer rows or "
                                             "columns, or shorter values (substr)", room);
    *out = column_json(st, i);
    return *out ? SP_OK : sp_err_set(err, SP_ERR_NOMEM, "out of memory");
}

enum sp_status trace_query(const char *path, const char *sql, const struct trace_query_opts *opts,
                           struct sp_buf *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    json_t *cols = NULL, *row = NULL;
    struct query_guard g = {0};
    size_t max_rows = opts && opts->max_rows ? opts->max_rows : 1000;
    int limit_ms = opts && opts->time_limit_ms > 0 ? opts->time_limit_ms : 2000;
    size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : (size_t)8 << 20;
    size_t out_start = out->len, out_limit = out->limit;
    double t0 = sp_now_ms();

    if (!sql || !sql[0])
        return sp_err_set(err, SP_ERR_INVALID, "empty SQL statement");
    if (strlen(sql) > 100000)
        return sp_err_set(err, SP_ERR_LIMIT, "SQL statement too long (max 100000 bytes)");
    if (!sp_utf8_valid(sql, strlen(sql)))
        return sp_err_set(err, SP_ERR_INVALID, "SQL statement is not valid UTF-8");
    struct stat sb;
    if (!path || stat(path, &sb) != 0)
        return sp_err_setc(err, SP_ERR_NOT_FOUND, path ? path : "", "no task history database at %s (run spoke serve first)",
                           path ? path : "(none)");
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        result = sp_err_setc(err, SP_ERR_IO, path, "cannot open task history %s: %s", path,
                             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    /* no single value may be longer than the whole result may be */
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)SP_MIN(max_bytes, (size_t)16 << 20));
    sqlite3_busy_timeout(db, 500);
    g.deadline_ms = t0 + limit_ms;
    sqlite3_progress_handler(db, 1000, progress_cb, &g);
    sqlite3_set_authorizer(db, authorizer, &g);

    const char *tail = NULL;
    rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
    if (rc != SQLITE_OK || !st) {
        if (g.timed_out)
            result = sp_err_set(err, SP_ERR_TIMEOUT, "query exceeded the time limit of %d ms", limit_ms);
        else if (g.denied[0])
            result = sp_err_set(err, SP_ERR_INVALID, "query refused: %s", g.denied);
        else
            result = sp_err_set(err, SP_ERR_INVALID, "SQL error: %s", rc == SQLITE_OK ? "empty statement" : sqlite3_errmsg(db));
        goto fail;
    }
    while (tail && *tail && strchr(" \t\r\n;", *tail))
        tail++;
    if (tail && *tail) {
        result = sp_err_set(err, SP_ERR_INVALID, "query refused: only one statement is allowed");
        goto fail;
    }
    if (!sqlite3_stmt_readonly(st)) {
        result = sp_err_set(err, SP_ERR_INVALID, "query refused: only read-only SELECT statements are allowed");
        goto fail;
    }
    out->limit = out_start + max_bytes; /* sp_buf refuses appends past the cap */
    cols = json_array();
    int ncol = sqlite3_column_count(st);
    for (int i = 0; cols && i < ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        json_array_append_new(cols, json_string(name && sp_utf8_valid(name, strlen(name)) ? name : "?"));
    }
    if (!cols || sp_buf_appends(out, "{\"columns\":") ||
        json_dump_callback(cols, dump_to_buf, out, JSON_COMPACT) != 0 || sp_buf_appends(out, ",\"rows\":[")) {
        result = sp_err_set(err, SP_ERR_LIMIT, "query result exceeds the cap of %zu bytes", max_bytes);
        goto fail;
    }
    size_t n = 0;
    bool truncated = false;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            if (g.timed_out)
                result = sp_err_set(err, SP_ERR_TIMEOUT, "query exceeded the time limit of %d ms", limit_ms);
            else if (rc == SQLITE_TOOBIG)
                result = sp_err_set(err, SP_ERR_LIMIT, "a value in the query result exceeds the cap of %zu bytes",
                                    max_bytes);
            else
                result = sp_err_set(err, SP_ERR_INVALID, "SQL error: %s", sqlite3_errmsg(db));
            goto fail;
        }
        if (n >= max_rows) {
            truncated = true;
            break;
        }
        row = json_object();
        if (!row) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
            goto fail;
        }
        size_t room = out->limit - out->len;
        for (int i = 0; i < ncol; i++) {
            const char *name = sqlite3_column_name(st, i);
            json_t *v = NULL;
            if ((result = value_json(st, i, room, &v, err)) != SP_OK)
                goto fail;
            json_object_set_new(row, name && sp_utf8_valid(name, strlen(name)) ? name : "?", v);
        }
        if ((n && sp_buf_appends(out, ",")) || json_dump_callback(row, dump_to_buf, out, JSON_COMPACT) != 0) {
            result = sp_err_set(err, SP_ERR_LIMIT, "query result exceeds the cap of %zu bytes after %zu rows; select "
                                                   "fewer rows or columns (LIMIT, substr)", max_bytes, n);
            goto fail;
        }
        json_decref(row);
        row = NULL;
        n++;
        if (sp_now_ms() > g.deadline_ms) { /* building the JSON counts too */
            result = sp_err_set(err, SP_ERR_TIMEOUT, "query exceeded the time limit of %d ms", limit_ms);
            goto fail;
        }
    }
    if (sp_buf_printf(out, "],\"row_count\":%zu,\"truncated\":%s}", n, truncated ? "true" : "false")) {
        result = sp_err_set(err, SP_ERR_LIMIT, "query result exceeds the cap of %zu bytes", max_bytes);
        goto fail;
    }
fail:
    if (result != SP_OK && out->data) {
        out->len = out_start;
        out->data[out_start] = 0;
    }
    out->limit = out_limit;
    json_decref(row);
    json_decref(cols);
    sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    return result;
}
