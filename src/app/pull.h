/* pull.h - model acquisition for the CLI and the server: `spoke pull`
 * (resolve + choose files + cache paths + verified download), and locating a
 * model given as a file, a cached name or a Hub id (`spoke run`, serve's
 * config). Built on hub/hub.h and cache/cache.h; see DESIGN.md s5.
 * Thread safety: app_pull may run in several threads/processes at once for
 * the same model: downloads of one file are serialised by a lock file and
 * done once. */
#ifndef SPOKE_APP_PULL_H
#define SPOKE_APP_PULL_H

#include "base/base.h"

/* Progress of one file: done/total bytes (total 0 = unknown). Called from the
 * pulling thread, throttled to ~10 Hz, and once when a file completes. */
typedef void (*app_pull_progress_fn)(void *ud, const char *file, uint64_t done, uint64_t total);

struct app_pull_opts {
    const char *model;          /* Hub id: [huggingface:][huggingface.co/]org/name[@|:rev], hf:org/name */
    const char *const *files;   /* files to fetch; NULL/0 = pick one GGUF by quant preference */
    size_t n_files;
    const char *quant;          /* preferred quant when choosing (NULL = Q4_K_M, Q4_0, Q8_0, first .gguf) */
    const char *name;           /* cache name; NULL = repo name */
    const char *token;          /* explicit token (hf_token/token param or --token); NULL = env/file sources */
    app_pull_progress_fn progress; void *progress_ud; /* NULL = silent */
};

struct app_pulled {
    char *name, *revision, *commit; /* cache name, revision dir, resolved commit ("" if unknown) */
    char *dir;                      /* $SPOKE_HOME/models/<name>/<revision> */
    char *path;                     /* first .gguf fetched (first shard of a split set) */
};

/* Pull o->model into the cache. Files already in the cache are used without
 * any request; with HF_HUB_OFFLINE=1 only the cache (and the standard HF
 * cache) is used. A file named in o->files that is one shard of a split GGUF
 * (-0000k-of-0000N.gguf) brings the whole set. Errors (one actionable line in
 * err): SP_ERR_INVALID bad id/revision/path/name (before any request),
 * SP_ERR_NOT_FOUND, SP_ERR_AUTH, SP_ERR_NETWORK/HTTP, SP_ERR_INTEGRITY,
 * SP_ERR_OFFLINE, SP_ERR_IO. On success *out is filled (free with
 * app_pulled_free); on failure it is left empty. */
SP_MUST_USE enum sp_status app_pull(const struct app_pull_opts *o, struct app_pulled *out,
                                    struct sp_err *err);
void app_pulled_free(struct app_pulled *p); /* frees the strings, zeroes; NULL is a no-op */

/* For `spoke run MODEL` / serve: an existing file path (or file:/path) -> itself; a cached
 * name[@rev] -> its GGUF; otherwise a Hub id -> app_pull. */
SP_MUST_USE enum sp_status app_model_locate(const char *spec, const char *token,
                                            struct app_pulled *out, struct sp_err *err);

/* ---- helpers (exposed for tests) ------------------------------------------- */

/* If path is one shard "<prefix>-KKKKK-of-NNNNN.gguf" return true and set
 * *index (1-based) and *count; otherwise false. */
bool app_split_parse(const char *path, unsigned *index, unsigned *count);
/* Choose a GGUF among paths[0..n) by preference (quant if given, else Q4_K_M,
 * Q4_0, Q8_0, then the first .gguf in order); shards other than the first are
 * never chosen. Returns the index or -1. With a quant given and no match: -1. */
long app_choose_gguf(const char *const *paths, size_t n, const char *quant);

#endif
