/* trace_query.c - read-only SQL over the task history (spoke sql, POST
 * /v1/sql). Defence in depth: the database is opened SQLITE_OPEN_READONLY,
 * extension loading is off, an authorizer allows only reads (SELECT, READ,
 * plain functions, recursive CTEs, value-less whitelisted PRAGMAs), the
 * prepared statement must satisfy sqlite3_stmt_readonly, trailing statements
 * are refused, a progress handler enforces a time limit and a row cap bounds
 * the output. Rows are returned as JSON built with jansson. */
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
        if (a2 && (strcmp(a2, "load_extension") == 0 || strcmp(a2, "readfile") == 0 ||
                   strcmp(a2, "writefile") == 0 || strcmp(a2, "edit") == 0)) {
            snprintf(g->denied, sizeof g->denied, "function %s is not allowed", a2);
            return SQLITE_DENY;
        }
        return SQLITE_OK;
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

enum sp_status trace_query(const char *path, const char *sql, const struct trace_query_opts *opts,
                           struct sp_buf *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    json_t *root = NULL;
    struct query_guard g = {0};
    size_t max_rows = opts && opts->max_rows ? opts->max_rows : 1000;
    int limit_ms = opts && opts->time_limit_ms > 0 ? opts->time_limit_ms : 2000;

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
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 16 * 1024 * 1024);
    sqlite3_busy_timeout(db, 500);
    g.deadline_ms = sp_now_ms() + limit_ms;
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
    root = json_object();
    json_t *cols = json_array(), *rows = json_array();
    if (!root || !cols || !rows) {
        json_decref(cols);
        json_decref(rows);
        result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    json_object_set_new(root, "columns", cols);
    json_object_set_new(root, "rows", rows);
    int ncol = sqlite3_column_count(st);
    for (int i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        json_array_append_new(cols, json_string(name && sp_utf8_valid(name, strlen(name)) ? name : "?"));
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
            else
                result = sp_err_set(err, SP_ERR_INVALID, "SQL error: %s", sqlite3_errmsg(db));
            goto fail;
        }
        if (n >= max_rows) {
            truncated = true;
            break;
        }
        json_t *row = json_object();
        if (!row) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < ncol; i++) {
            const char *name = sqlite3_column_name(st, i);
            json_object_set_new(row, name && sp_utf8_valid(name, strlen(name)) ? name : "?", column_json(st, i));
        }
        json_array_append_new(rows, row);
        n++;
    }
    json_object_set_new(root, "row_count", json_integer((json_int_t)n));
    json_object_set_new(root, "truncated", json_boolean(truncated));
    if (json_dump_callback(root, dump_to_buf, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0) {
        result = sp_err_set(err, SP_ERR_LIMIT, "query result too large");
        goto fail;
    }
fail:
    json_decref(root);
    sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    return result;
}
