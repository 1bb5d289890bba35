/* cmd_ls.c - `spoke ls [--json]`: lists the cached models (name, revision,
 * commit, files, size, pulled) from cache_list, as a table or a JSON array.
 * A revision with a download still in <file>.incomplete is marked partial
 * (`"complete": false` in JSON): `spoke pull` resumes it. */
#include "app/app.h"
#include "cache/cache.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void human_size(uint64_t b, char *out, size_t n)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

int cmd_ls(int argc, char **argv)
{
    bool json = false;
    char *root = NULL;
    struct cache_entry *e = NULL;
    size_t n = 0;
    struct sp_err err = {0};
    int rc = APP_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fprintf(stdout, "usage: spoke ls [--json]\n");
            return APP_EXIT_OK;
        } else {
            fprintf(stderr, "spoke: ls: unknown argument '%s'\nusage: spoke ls [--json]\n", argv[i]);
            return APP_EXIT_USAGE;
        }
    }
    if (cache_root(&root, &err) != SP_OK || cache_list(root, &e, &n, &err) != SP_OK) {
        rc = app_fail("ls", &err);
        goto done;
    }
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            char iso[40];
            sp_format_iso8601(e[i].pulled_ms, iso, sizeof(iso));
            json_t *o = json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:I,s:I,s:s,s:b,s:I,s:I}", "name",
                                  e[i].name, "revision", e[i].revision, "commit", e[i].commit,
                                  "repo", e[i].repo, "primary", e[i].primary, "files",
                                  (json_int_t)e[i].n_files, "bytes", (json_int_t)e[i].bytes,
                                  "pulled", iso, "complete", e[i].n_partial == 0,
                                  "partial_files", (json_int_t)e[i].n_partial, "partial_bytes",
                                  (json_int_t)e[i].partial_bytes);
            if (o)
                json_array_append_new(arr, o);
        }
        if (arr && json_dumpf(arr, stdout, JSON_INDENT(2)) == 0)
            fputc('\n', stdout);
        json_decref(arr);
        goto done;
    }
    if (n == 0) {
        fprintf(stdout, "no models in %s (pull one with: spoke pull org/name)\n", root);
        goto done;
    }
    fprintf(stdout, "%-32s %-16s %-12s %5s %10s  %s\n", "NAME", "REVISION", "COMMIT", "FILES",
            "SIZE", "PULLED");
    for (size_t i = 0; i < n; i++) {
        char size[32], iso[40], commit[13];
        human_size(e[i].bytes, size, sizeof(size));
        sp_format_iso8601(e[i].pulled_ms, iso, sizeof(iso));
        iso[16] = '\0'; /* YYYY-MM-DDTHH:MM */
        iso[10] = ' ';
        snprintf(commit, sizeof(commit), "%.12s", e[i].commit && e[i].commit[0] ? e[i].commit : "-");
        fprintf(stdout, "%-32s %-16s %-12s %5zu %10s  %s", e[i].name, e[i].revision, commit,
                e[i].n_files, size, iso);
        if (e[i].n_partial) {
            char part[32];
            human_size(e[i].partial_bytes, part, sizeof(part));
            fprintf(stdout, "  partial: %zu download%s unfinished (%s so far; spoke pull resumes)",
                    e[i].n_partial, e[i].n_partial == 1 ? "" : "s", part);
        }
        fputc('\n', stdout);
    }
done:
    cache_list_free(e, n);
    sp_free(root);
    return rc;
}
