/* cmd_pull.c - `spoke pull MODEL [--file PATH]... [--quant Q] [--name N]
 * [--token T] [--json]`: argv parsing and presentation around app_pull.
 * On a terminal stderr shows a progress bar (bytes, rate, ETA); otherwise
 * plain progress lines every few seconds; --json writes JSON lines to stdout
 * ({"status":"progress",...} then one {"status":"ok",...} or
 * {"status":"error",...}). */
#include "app/app.h"
#include "app/pull.h"
#include "obs/log.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct progress {
    bool tty, json;
    char file[256];
    double start_ms, last_ms;
    uint64_t start_done;
    bool drawn;
    bool finished; /* the 100% line of this file was shown */
};

static void human_bytes(double b, char *out, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void json_line(json_t *o)
{
    if (o && json_dumpf(o, stdout, JSON_COMPACT) == 0)
        fputc('\n', stdout);
    fflush(stdout);
    json_decref(o);
}

static void on_progress(void *ud, const char *file, uint64_t done, uint64_t total)
{
    struct progress *p = ud;
    double now = sp_now_ms();
    if (strcmp(file, p->file) != 0) {
        if (p->tty && p->drawn)
            fputc('\n', stderr);
        snprintf(p->file, sizeof(p->file), "%s", file);
        p->start_ms = now;
        p->start_done = done;
        p->last_ms = 0;
        p->drawn = false;
        p->finished = false;
    }
    bool final = total && done >= total;
    if (p->finished)
        return;
    if (final)
        p->finished = true;
    double every = p->tty ? 100.0 : (p->json ? 1000.0 : 3000.0);
    if (!final && now - p->last_ms < every)
        return;
    p->last_ms = now;
    double secs = (now - p->start_ms) / 1000.0;
    double rate = secs > 0.05 ? (double)(done - p->start_done) / secs : 0.0;
    if (p->json) {
        json_line(json_pack("{s:s,s:s,s:I,s:I,s:f}", "status", "progress", "file", file,
                            "done", (json_int_t)done, "total", (json_int_t)total,
                            "bytes_per_s", rate));
        return;
    }
    char d[32], t[32], r[32], eta[32] = "--:--";
    human_bytes((double)done, d, sizeof(d));
    human_bytes((double)total, t, sizeof(t));
    human_bytes(rate, r, sizeof(r));
    if (rate > 0 && total > done) {
        unsigned long s = (unsigned long)((double)(total - done) / rate);
        snprintf(eta, sizeof(eta), "%lu:%02lu", s / 60, s % 60);
    } else if (final) {
        snprintf(eta, sizeof(eta), "done");
    }
    double frac = total ? (double)done / (double)total : 0.0;
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30.0);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        fprintf(stderr, "\r%-28.28s [%s] %3.0f%% %10s / %-10s %10s/s ETA %-6s", base, bar,
                frac * 100.0, d, total ? t : "?", r, eta);
        p->drawn = true;
        if (final) {
            fputc('\n', stderr);
            p->drawn = false;
        }
    } else {
        fprintf(stderr, "pull: %s: %s / %s (%.0f%%) %s/s ETA %s\n", file, d, total ? t : "?",
                frac * 100.0, r, eta);
    }
    fflush(stderr);
}

static int usage_error(const char *msg)
{
    fprintf(stderr,
            "spoke: pull: %s\nusage: spoke pull MODEL [--file PATH]... [--quant Q4_K_M] "
            "[--name NAME] [--token T] [--json]\n",
            msg);
    return APP_EXIT_USAGE;
}

/* --opt VALUE or --opt=VALUE */
static bool opt_value(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return false;
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return true;
    }
    if (argv[*i][n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        *out = NULL;
        return true;
    }
    *out = argv[++*i];
    return true;
}

int cmd_pull(int argc, char **argv)
{
    const char *model = NULL, *quant = NULL, *name = NULL, *token = NULL, *v = NULL;
    bool json = false;
    const char **files = NULL;
    size_t n_files = 0;
    int rc = APP_EXIT_OK;
    struct sp_err err = {0};
    struct app_pulled out = {0};
    if (argc > 1)
        files = sp_calloc((size_t)argc, sizeof(*files));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            sp_free(files);
            fprintf(stdout, "usage: spoke pull MODEL [--file PATH]... [--quant Q4_K_M] [--name NAME] "
                            "[--token T] [--json]\n");
            return APP_EXIT_OK;
        } else if (opt_value(argc, argv, &i, "--file", &v) || opt_value(argc, argv, &i, "-f", &v)) {
            if (!v || !files) {
                sp_free(files);
                return usage_error("--file needs a path");
            }
            files[n_files++] = v;
        } else if (opt_value(argc, argv, &i, "--quant", &v)) {
            if (!(quant = v)) {
                sp_free(files);
                return usage_error("--quant needs a value");
            }
        } else if (opt_value(argc, argv, &i, "--name", &v)) {
            if (!(name = v)) {
                sp_free(files);
                return usage_error("--name needs a value");
            }
        } else if (opt_value(argc, argv, &i, "--token", &v)) {
            if (!(token = v)) {
                sp_free(files);
                return usage_error("--token needs a value");
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            sp_free(files);
            return usage_error("unknown option");
        } else if (!model) {
            model = argv[i];
        } else {
            sp_free(files);
            return usage_error("only one MODEL may be given");
        }
    }
    if (!model) {
        sp_free(files);
        return usage_error("no MODEL given");
    }
    struct progress prog = {.tty = !json && isatty(STDERR_FILENO), .json = json};
    struct app_pull_opts o = {
        .model = model, .files = files, .n_files = n_files, .quant = quant, .name = name,
        .token = token, .progress = on_progress, .progress_ud = &prog,
    };
    enum sp_status result = app_pull(&o, &out, &err);
    if (prog.tty && prog.drawn)
        fputc('\n', stderr);
    if (result != SP_OK) {
        if (json)
            json_line(json_pack("{s:s,s:s,s:s,s:i}", "status", "error", "code",
                                sp_status_name(err.code), "message", err.msg, "http_status",
                                err.http_status));
        rc = app_fail("pull", &err);
        goto done;
    }
    if (json) {
        json_line(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "status", "ok", "name", out.name,
                            "revision", out.revision, "commit", out.commit, "dir", out.dir, "path",
                            out.path));
    } else {
        fprintf(stdout, "pulled %s@%s%s%s -> %s\n", out.name, out.revision,
                out.commit[0] ? " commit " : "", out.commit, out.path[0] ? out.path : out.dir);
    }
done:
    app_pulled_free(&out);
    sp_free(files);
    return rc;
}
