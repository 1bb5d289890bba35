/* jinja_render.c - test helper: render a chat template file with a JSON
 * context file through spoke's Jinja interpreter (tok_tmpl_*), print the
 * prompt to stdout (with --spans: one "off len" line per request-data span
 * instead). Exit 0 on success, 3 with the error on stderr when the template
 * fails to parse or render, 2 on usage/IO errors. With --each, CONTEXT.json
 * is an array of contexts, each rendered in turn and written as
 * "OK <bytes>\n<prompt>\n" or "ERR <bytes>\n<message>\n" (one process per
 * template keeps the corpus test fast). Used by test_jinja_corpus.py to
 * compare against Python Jinja2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "tok/tok.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct sp_buf b = {0};
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (sp_buf_append(&b, tmp, k) != 0) {
            fclose(f);
            sp_buf_free(&b);
            return NULL;
        }
    fclose(f);
    *len = b.len;
    return b.data ? b.data : sp_strdup("");
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return sp_buf_append(data, buffer, size) ? -1 : 0;
}

static int each(const char *t, size_t tl, const char *cx, size_t cl)
{
    json_error_t je;
    json_t *arr = json_loadb(cx, cl, 0, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "--each needs a JSON array of contexts\n");
        return 2;
    }
    struct sp_err err;
    sp_err_clear(&err);
    struct tok_tmpl *tm = NULL;
    enum sp_status pst = tok_tmpl_parse(t, tl, &tm, &err);
    char perr[sizeof err.msg];
    snprintf(perr, sizeof perr, "%s", err.msg);
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        struct sp_buf js = {0};
        struct tok_rendered r;
        if (json_dump_callback(it, dump_cb, &js, JSON_COMPACT) != 0)
            return 2;
        sp_err_clear(&err);
        if (pst != SP_OK) {
            printf("ERR %zu\n%s\n", strlen(perr), perr);
        } else if (tok_tmpl_render(tm, js.data, js.len, NULL, 64u << 20, &r, &err) != SP_OK) {
            printf("ERR %zu\n%s\n", strlen(err.msg), err.msg);
        } else {
            printf("OK %zu\n", r.len);
            fwrite(r.text, 1, r.len, stdout);
            printf("\n");
            tok_rendered_free(&r);
        }
        sp_buf_free(&js);
    }
    json_decref(arr);
    tok_tmpl_free(tm);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[3], "--each")) {
        size_t tl = 0, cl = 0;
        char *t = slurp(argv[1], &tl), *cx = slurp(argv[2], &cl);
        int rc = t && cx ? each(t, tl, cx, cl) : 2;
        sp_free(t);
        sp_free(cx);
        return rc;
    }
    bool spans = argc == 4 && !strcmp(argv[3], "--spans");
    if (argc != 3 && !spans) {
        fprintf(stderr, "usage: jinja_render TEMPLATE CONTEXT.json [--spans | --each]\n");
        return 2;
    }
    size_t tl = 0, cl = 0;
    char *t = slurp(argv[1], &tl), *cx = slurp(argv[2], &cl);
    if (!t || !cx) {
        fprintf(stderr, "cannot read input files\n");
        return 2;
    }
    struct sp_err err;
    sp_err_clear(&err);
    struct tok_tmpl *tm = NULL;
    struct tok_rendered r;
    int rc = 0;
    if (tok_tmpl_parse(t, tl, &tm, &err) != SP_OK ||
        tok_tmpl_render(tm, cx, cl, NULL, 64u << 20, &r, &err) != SP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        rc = 3;
    } else {
        if (spans)
            for (size_t i = 0; i < r.n_spans; i++)
                printf("%zu %zu\n", r.spans[i].off, r.spans[i].len);
        else
            fwrite(r.text, 1, r.len, stdout);
        tok_rendered_free(&r);
    }
    tok_tmpl_free(tm);
    sp_free(t);
    sp_free(cx);
    return rc;
}
