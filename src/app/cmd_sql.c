/* cmd_sql.c - `spoke sql "SELECT ..." [--json] [--db PATH]`: one read-only
 * statement over the task history (trace_query: read-only open, authorizer,
 * row cap, time limit), printed as an aligned table (cells cut at 60
 * characters) or as the raw JSON result. */
#include "app/app.h"
#include "obs/trace.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX 60

static void cell_text(const json_t *v, char *out, size_t n)
{
    if (!v || json_is_null(v))
        sp_strlcpy(out, "NULL", n);
    else if (json_is_string(v))
        sp_strlcpy(out, json_string_value(v), n);
    else if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, n, "%g", json_real_value(v));
    else
        sp_strlcpy(out, json_is_true(v) ? "true" : "false", n);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    if (strlen(out) > CELL_MAX) {
        size_t k = CELL_MAX - 3;
        while (k > 0 && ((unsigned char)out[k] & 0xC0) == 0x80)
            k--;
        sp_strlcpy(out + k, "...", n - k);
    }
}

/* display width: count UTF-8 lead bytes */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

static void print_table(const json_t *res)
{
    const json_t *cols = json_object_get(res, "columns"), *rows = json_object_get(res, "rows");
    size_t nc = json_array_size(cols), nr = json_array_size(rows);
    size_t *w = sp_calloc(nc ? nc : 1, sizeof *w);
    if (!w)
        return;
    char cell[CELL_MAX * 4 + 8];
    for (size_t c = 0; c < nc; c++)
        w[c] = width(json_string_value(json_array_get(cols, c)));
    for (size_t r = 0; r < nr; r++)
        for (size_t c = 0; c < nc; c++) {
            const char *name = json_string_value(json_array_get(cols, c));
            cell_text(json_object_get(json_array_get(rows, r), name), cell, sizeof cell);
            w[c] = SP_MAX(w[c], width(cell));
        }
    for (size_t c = 0; c < nc; c++) {
        const char *name = json_string_value(json_array_get(cols, c));
        printf("%s%s%*s", c ? " | " : "", name, (int)(w[c] - width(name)), "");
    }
    printf("\n");
    for (size_t c = 0; c < nc; c++) {
        printf("%s", c ? "-+-" : "");
        for (size_t k = 0; k < w[c]; k++)
            putchar('-');
    }
    printf("\n");
    for (size_t r = 0; r < nr; r++) {
        for (size_t c = 0; c < nc; c++) {
            const char *name = json_string_value(json_array_get(cols, c));
            cell_text(json_object_get(json_array_get(rows, r), name), cell, sizeof cell);
            printf("%s%s%*s", c ? " | " : "", cell, (int)(w[c] - width(cell)), "");
        }
        printf("\n");
    }
    printf("(%zu row%s%s)\n", nr, nr == 1 ? "" : "s",
           json_is_true(json_object_get(res, "truncated")) ? ", truncated at the row limit" : "");
    sp_free(w);
}

int cmd_sql(int argc, char **argv)
{
    const char *sql = NULL, *db = NULL;
    bool as_json = false;
    int64_t max_rows = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = true;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strcmp(argv[i], "--max-rows") && i + 1 < argc) {
            if (!sp_parse_i64(argv[++i], 1, 1000000, &max_rows)) {
                fprintf(stderr, "spoke: sql: --max-rows must be 1..1000000\n");
                return APP_EXIT_USAGE;
            }
        } else if (!sql && argv[i][0] != '-')
            sql = argv[i];
        else {
            fprintf(stderr, "spoke: sql: unexpected argument '%s'\nusage: spoke sql \"SELECT ...\" [--json] "
                            "[--db PATH] [--max-rows N]\n", argv[i]);
            return APP_EXIT_USAGE;
        }
    }
    if (!sql) {
        fprintf(stderr, "usage: spoke sql \"SELECT ...\" [--json] [--db PATH] [--max-rows N]\n"
                        "  e.g. spoke sql \"SELECT task, start_time, execution_duration_ms FROM task_history\"\n");
        return APP_EXIT_USAGE;
    }
    json_set_alloc_funcs(sp_malloc, sp_free);
    char path[PATH_MAX];
    if (!db) {
        const char *home = getenv("SPOKE_HOME");
        if (home && home[0])
            snprintf(path, sizeof path, "%s/task_history.db", home);
        else
            snprintf(path, sizeof path, "%s/.spoke/task_history.db", getenv("HOME") ? getenv("HOME") : ".");
        db = path;
    }
    struct trace_query_opts qo = {(size_t)max_rows, 10000, (size_t)64 << 20}; /* 64 MiB result cap */
    struct sp_buf out = {0};
    struct sp_err err;
    sp_err_clear(&err);
    if (trace_query(db, sql, &qo, &out, &err) != SP_OK) {
        sp_buf_free(&out);
        return app_fail("sql", &err);
    }
    if (as_json) {
        printf("%s\n", out.data);
    } else {
        json_t *res = json_loadb(out.data, out.len, 0, NULL);
        if (res)
            print_table(res);
        json_decref(res);
    }
    sp_buf_free(&out);
    return APP_EXIT_OK;
}
