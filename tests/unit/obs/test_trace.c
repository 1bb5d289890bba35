/* test_trace.c - task history: spans written in batches and read back via
 * the read-only query API; capture modes; dropping on a full queue; the
 * query guard (writes, ATTACH, PRAGMA writes, load_extension, multiple
 * statements refused; row cap; time limit). */
#include "obs/trace.h"
#include "test.h"

#include <jansson.h>
#include <sqlite3.h>

static char dir[64];

static void db_path(char *out, size_t n, const char *name)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/spoke_trace_XXXXXX");
        if (!mkdtemp(dir))
            dir[0] = 0;
    }
    snprintf(out, n, "%s/%s", dir, name);
}

static json_t *query(const char *path, const char *sql, enum sp_status *st, struct sp_err *err)
{
    struct sp_buf out = {0};
    struct trace_query_opts qo = {5, 500, 0};
    *st = trace_query(path, sql, &qo, &out, err);
    json_t *j = *st == SP_OK ? json_loads(out.data, 0, NULL) : NULL;
    sp_buf_free(&out);
    return j;
}

TEST(write_and_read)
{
    char path[128];
    db_path(path, sizeof path, "a.db");
    struct trace_opts o = {.path = path, .capture = TRACE_CAPTURE_TRUNCATED, .truncate_bytes = 16};
    struct trace_store *t = NULL;
    struct sp_err err;
    CHECK(trace_store_open(&o, &t, &err) == SP_OK);
    for (int i = 0; i < 20; i++) {
        struct trace_span s = {.task = i % 2 ? "health" : "ai_completion",
                               .input = "input text",
                               .output = "an output longer than sixteen bytes",
                               .start_ms = sp_wall_ms(),
                               .end_ms = sp_wall_ms() + 5,
                               .duration_ms = 5.0,
                               .labels_json = "{\"model\":\"m\",\"total_tokens\":3}"};
        CHECK(trace_submit(t, &s));
    }
    CHECK(trace_flush(t, 5000));
    CHECK_EQ_INT(trace_written(t), 20);
    CHECK_EQ_INT(trace_dropped(t), 0);
    enum sp_status st;
    json_t *j = query(path, "SELECT count(*) AS n FROM task_history WHERE task='ai_completion'", &st, &err);
    CHECK_MSG(j, "%s", err.msg);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "rows"), 0), "n")), 10);
    json_decref(j);
    j = query(path, "SELECT captured_output, json_extract(labels,'$.model') AS m, length(trace_id) AS tl,"
                    " length(span_id) AS sl FROM task_history LIMIT 1", &st, &err);
    CHECK(j);
    json_t *row = json_array_get(json_object_get(j, "rows"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(row, "captured_output")), "an output longer");
    CHECK_EQ_STR(json_string_value(json_object_get(row, "m")), "m");
    CHECK_EQ_INT(json_integer_value(json_object_get(row, "tl")), 32);
    CHECK_EQ_INT(json_integer_value(json_object_get(row, "sl")), 16);
    json_decref(j);
    /* row cap 5 */
    j = query(path, "SELECT * FROM task_history", &st, &err);
    CHECK(j);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "rows")), 5);
    CHECK(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    trace_store_close(t, 2000);
}

TEST(guard)
{
    char path[128];
    db_path(path, sizeof path, "g.db");
    struct trace_opts o = {.path = path};
    struct trace_store *t = NULL;
    CHECK(trace_store_open(&o, &t, NULL) == SP_OK);
    trace_store_close(t, 1000);
    static const char *const bad[] = {
        "DELETE FROM task_history",
        "INSERT INTO task_history(trace_id,span_id,task,start_time,end_time) VALUES('a','b','c','d','e')",
        "UPDATE task_history SET task='x'",
        "DROP TABLE task_history",
        "CREATE TABLE x(a)",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA user_version=5",
        "SELECT load_extension('/tmp/x.so')",
        "SELECT fts3_tokenizer('simple')",
        "SELECT hex(fts3_tokenizer('simple'))",
        "SELECT randomblob(1000000000)",
        "SELECT zeroblob(100)",
        "SELECT sqlite_compileoption_get(0)",
        "SELECT FTS3_TOKENIZER('simple')",
        "SELECT 1; DELETE FROM task_history",
        "VACUUM",
        "BEGIN",
        "",
        "SELEC nonsense",
    };
    for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
        struct sp_err err;
        sp_err_clear(&err);
        enum sp_status st;
        json_t *j = query(path, bad[i], &st, &err);
        CHECK_MSG(!j && st == SP_ERR_INVALID, "'%s' was not refused (%d)", bad[i], st);
    }
    /* allowed: PRAGMA table_info, CTE */
    enum sp_status st;
    struct sp_err err;
    json_t *j = query(path, "PRAGMA table_info(task_history)", &st, &err);
    CHECK_MSG(j, "%s", err.msg);
    json_decref(j);
    j = query(path, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<3) SELECT x FROM c;", &st, &err);
    CHECK_MSG(j, "%s", err.msg);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "rows")), 3);
    json_decref(j);
    /* time limit: an endless recursive CTE with no rows emitted */
    j = query(path, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c", &st, &err);
    CHECK(!j && st == SP_ERR_TIMEOUT);
    /* missing database */
    j = query("/nonexistent/spoke.db", "SELECT 1", &st, &err);
    CHECK(!j && st == SP_ERR_NOT_FOUND);
}

/* the byte cap holds while rows are produced: no result over it is built */
TEST(result_cap)
{
    char path[128];
    db_path(path, sizeof path, "cap.db");
    struct trace_opts o = {.path = path};
    struct trace_store *t = NULL;
    CHECK(trace_store_open(&o, &t, NULL) == SP_OK);
    trace_store_close(t, 1000);
    struct sp_err err;
    sp_err_clear(&err);
    struct trace_query_opts qo = {1000, 5000, 1u << 20};
    struct sp_buf out = {0};
    /* 40 rows of 100 KB: 4 MB of JSON against a 1 MiB cap */
    const char *big = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<40) "
                      "SELECT printf('%.*c', 100000, 'x') AS s FROM c";
    enum sp_status st = trace_query(path, big, &qo, &out, &err);
    CHECK_MSG(st == SP_ERR_LIMIT && strstr(err.msg, "cap"), "%d %s", st, err.msg);
    CHECK(out.len == 0 && out.cap <= (4u << 20));
    /* one value longer than the cap: SQLite's length limit (the value comes
     * back NULL or the query fails), never a 16 MB string */
    sp_err_clear(&err);
    st = trace_query(path, "SELECT printf('%.*c', 16000000, 'x')", &qo, &out, &err);
    CHECK_MSG((st == SP_OK || st == SP_ERR_LIMIT) && out.len < 1024 && out.cap < (2u << 20), "%d %s", st, err.msg);
    sp_buf_reset(&out);
    /* under the cap: the same shape as before, functions from the allowlist */
    sp_err_clear(&err);
    st = trace_query(path, "SELECT upper('a') AS u, length(printf('%.*c', 10, 'x')) AS n, "
                           "json_extract('{\"a\":2}', '$.a') AS j, datetime(0) AS d", &qo, &out, &err);
    CHECK_MSG(st == SP_OK, "%s", err.msg);
    json_t *j = json_loads(out.data, 0, NULL);
    CHECK(j && json_integer_value(json_object_get(json_array_get(json_object_get(j, "rows"), 0), "n")) == 10);
    CHECK(json_integer_value(json_object_get(j, "row_count")) == 1 && json_is_false(json_object_get(j, "truncated")));
    json_decref(j);
    sp_buf_free(&out);
}

TEST(capture_none_and_drop)
{
    char path[128];
    db_path(path, sizeof path, "n.db");
    struct trace_opts o = {.path = path, .capture = TRACE_CAPTURE_NONE, .queue_cap = 4};
    struct trace_store *t = NULL;
    CHECK(trace_store_open(&o, &t, NULL) == SP_OK);
    int ok = 0, dropped = 0;
    for (int i = 0; i < 2000; i++) {
        struct trace_span s = {.task = "ai_completion", .input = "x", .output = "secret", .start_ms = 1, .end_ms = 2};
        if (trace_submit(t, &s))
            ok++;
        else
            dropped++;
    }
    CHECK(trace_flush(t, 5000));
    CHECK_EQ_INT(trace_written(t) + trace_dropped(t), 2000);
    CHECK_EQ_INT((long long)trace_dropped(t), dropped);
    trace_store_close(t, 2000);
    enum sp_status st;
    struct sp_err err;
    json_t *j = query(path, "SELECT count(*) AS n FROM task_history WHERE captured_output IS NOT NULL", &st, &err);
    CHECK(j);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "rows"), 0), "n")), 0);
    json_decref(j);
}

TEST(unwritable)
{
    struct trace_opts o = {.path = "/nonexistent-dir/x/spoke.db"};
    struct trace_store *t = NULL;
    struct sp_err err;
    CHECK(trace_store_open(&o, &t, &err) == SP_ERR_IO);
    CHECK(t == NULL);
    CHECK(strstr(err.msg, "/nonexistent-dir"));
    trace_store_close(NULL, 0);
}

TEST(retention)
{
    char path[128];
    db_path(path, sizeof path, "r.db");
    struct trace_opts o = {.path = path, .capture = TRACE_CAPTURE_FULL};
    struct trace_store *t = NULL;
    CHECK(trace_store_open(&o, &t, NULL) == SP_OK);
    int64_t now = sp_wall_ms();
    struct trace_span old = {.task = "ai_completion", .start_ms = now - 3600 * 1000, .end_ms = now - 3599 * 1000};
    struct trace_span fresh = {.task = "ai_completion", .start_ms = now, .end_ms = now};
    CHECK(trace_submit(t, &old));
    CHECK(trace_submit(t, &fresh));
    trace_store_close(t, 2000);
    o.retention_s = 60; /* the writer deletes rows older than a minute at open and then every minute */
    CHECK(trace_store_open(&o, &t, NULL) == SP_OK);
    trace_store_close(t, 2000);
    enum sp_status st;
    struct sp_err err;
    json_t *j = query(path, "SELECT count(*) AS n FROM task_history", &st, &err);
    CHECK(j);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "rows"), 0), "n")), 1);
    json_decref(j);
}

TEST(write_failure_counts_drops)
{
    char path[128];
    db_path(path, sizeof path, "f.db");
    struct trace_opts o = {.path = path};
    struct trace_store *t = NULL;
    CHECK(trace_store_open(&o, &t, NULL) == SP_OK);
    /* another connection breaks the table: every insert now fails */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "DROP TABLE task_history", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    for (int i = 0; i < 10; i++) {
        struct trace_span s = {.task = "health", .start_ms = 1, .end_ms = 2};
        CHECK(trace_submit(t, &s)); /* accepted: the failure is the writer's, never the request's */
    }
    trace_flush(t, 5000);
    CHECK_EQ_INT(trace_dropped(t), 10);
    CHECK_EQ_INT(trace_written(t), 0);
    trace_store_close(t, 1000);
}

int main(void)
{
    RUN(write_failure_counts_drops);
    RUN(retention);
    RUN(write_and_read);
    RUN(guard);
    RUN(result_cap);
    RUN(capture_none_and_drop);
    RUN(unwritable);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return test_summary();
}
