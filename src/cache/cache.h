/* cache.h - spoke's on-disk model cache. Knows nothing of GGUF.
 *
 * Layout: $SPOKE_HOME/models/<name>/<revision>/<file> (SPOKE_HOME defaults to
 * ~/.spoke), plus <revision>/.spoke-meta.json (resolved commit, per-file size
 * and sha256, pull time). <file>.incomplete and <file>.lock are the hub
 * layer's download scratch files. Every path is built from validated parts
 * (hub_name_check / hub_revision_check / hub_path_check) and then checked with
 * realpath() to lie inside the cache, so a planted symlink cannot lead out.
 * Files that already exist are used as they are (cache by existence), which
 * is how files placed by `huggingface-cli download --local-dir DIR` work.
 * The standard Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub,
 * ~/.cache/huggingface/hub) is searched for a commit's file to hard-link (or
 * copy) instead of downloading it.
 * Functions are thread-safe (no shared state); callers own what they get. */
#ifndef SPOKE_CACHE_H
#define SPOKE_CACHE_H

#include "base/base.h"
#include "hub/hub.h"

#define CACHE_META_FILE ".spoke-meta.json"

/* The models root: $SPOKE_HOME/models or ~/.spoke/models (not created).
 * *out is sp_malloc'ed. SP_ERR_INVALID if neither SPOKE_HOME nor HOME is set. */
SP_MUST_USE enum sp_status cache_root(char **out, struct sp_err *err);

/* root/<name>/<revision> after validating name and revision. With create the
 * directories are made (0755) and the real path is checked to lie inside root
 * (root is created too). Without create the directory need not exist. */
SP_MUST_USE enum sp_status cache_revision_dir(const char *root, const char *name,
                                              const char *revision, bool create, char **out,
                                              struct sp_err *err);

/* revdir/<rel> after hub_path_check(rel) and refusing the reserved names
 * (.spoke-*, *.incomplete, *.lock). With create_parents the parent dirs are
 * made; the parent's real path must lie inside revdir's real path whenever it
 * exists. */
SP_MUST_USE enum sp_status cache_file_path(const char *revdir, const char *rel, bool create_parents,
                                           char **out, struct sp_err *err);

/* True if path is an existing regular file (following a final symlink, as
 * huggingface-cli may have made); *size gets its size. */
bool cache_file_present(const char *path, uint64_t *size);

/* ---- metadata ---------------------------------------------------------------- */

struct cache_meta_file {
    char *path;                        /* repo-relative */
    uint64_t size;                     /* bytes */
    char sha256[HUB_SHA256_HEX + 1];   /* "" if unknown (non-LFS file) */
};

struct cache_meta {
    char *repo;        /* "org/name" or NULL */
    char *revision;    /* as requested ("main", a tag or a commit) */
    char *commit;      /* resolved commit or NULL when unknown */
    char *primary;     /* the main GGUF (first shard) or NULL */
    int64_t pulled_ms; /* Unix ms of the last pull */
    struct cache_meta_file *files;
    size_t n_files;
};

/* Parse / load <revdir>/.spoke-meta.json. Load: SP_ERR_NOT_FOUND if absent.
 * Bounded (1 MiB, 100000 files); paths are re-validated. */
SP_MUST_USE enum sp_status cache_meta_parse(const char *json, size_t len, struct cache_meta **out,
                                            struct sp_err *err);
SP_MUST_USE enum sp_status cache_meta_load(const char *revdir, struct cache_meta **out,
                                           struct sp_err *err);
/* Write atomically (temp file, fsync, rename). */
SP_MUST_USE enum sp_status cache_meta_save(const char *revdir, const struct cache_meta *m,
                                           struct sp_err *err);
/* New empty record. */
SP_MUST_USE enum sp_status cache_meta_new(struct cache_meta **out, struct sp_err *err);
/* Replace a string field (sp_strdup of value, NULL clears). */
SP_MUST_USE enum sp_status cache_meta_set_str(char **field, const char *value, struct sp_err *err);
/* Add or update one file entry. sha256 may be NULL/"" (keeps a known one). */
SP_MUST_USE enum sp_status cache_meta_set_file(struct cache_meta *m, const char *path, uint64_t size,
                                               const char *sha256, struct sp_err *err);
const struct cache_meta_file *cache_meta_find(const struct cache_meta *m, const char *path);
void cache_meta_free(struct cache_meta *m); /* NULL is a no-op */

/* ---- the standard Hugging Face cache ------------------------------------------- */

/* The HF hub cache dir: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub
 * (first set; not checked to exist). NULL when none can be formed. */
char *cache_hf_dir(void);
/* The commit a revision points to in the HF cache (refs/<revision>, or the
 * revision itself when it is a commit). SP_ERR_NOT_FOUND when unknown. */
SP_MUST_USE enum sp_status cache_hf_commit(const struct hub_id *id, const char *revision,
                                           char commit[HUB_SHA256_HEX + 1]);
/* <hfcache>/models--org--name/snapshots/<commit>/<path> when it exists as a
 * regular file (after following links). SP_ERR_NOT_FOUND otherwise. */
SP_MUST_USE enum sp_status cache_hf_find(const struct hub_id *id, const char *commit,
                                         const char *path, char **out, struct sp_err *err);
/* Install src at dest: hard link (following symlinks) or copy into a temp
 * name next to dest, verify size / sha256 when given, rename. The sha256 of
 * the installed file is written to sha_out when non-NULL (computed only when
 * an expected sha256 was given). */
SP_MUST_USE enum sp_status cache_install_from(const char *src, const char *dest,
                                              uint64_t expect_size, bool has_size,
                                              const char *expect_sha256, struct sp_err *err);

/* ---- listing and removal ------------------------------------------------------- */

struct cache_entry {
    char *name;        /* cache name */
    char *revision;    /* revision directory */
    char *commit;      /* from metadata, NULL if unknown */
    char *repo;        /* from metadata, NULL if unknown */
    char *primary;     /* from metadata, NULL if unknown */
    size_t n_files;    /* complete files (not .incomplete/.lock/metadata) */
    uint64_t bytes;    /* their total size */
    size_t n_partial;  /* non-empty <file>.incomplete downloads (resumable); >0 = partial */
    uint64_t partial_bytes; /* bytes of those so far */
    int64_t pulled_ms; /* from metadata (0 = unknown: mtime of the dir) */
};

/* Every <name>/<revision> under root that holds a complete file or a partial
 * download (n_partial > 0: a pull that has not finished), sorted by name then
 * revision; directories with neither are skipped. A root that does not exist
 * gives an empty list. */
SP_MUST_USE enum sp_status cache_list(const char *root, struct cache_entry **out, size_t *n,
                                      struct sp_err *err);
void cache_list_free(struct cache_entry *e, size_t n);

/* Regular files of revdir (recursive, repo-relative paths, sorted), skipping
 * hidden entries and scratch files. *out is an array of sp_malloc'ed strings. */
SP_MUST_USE enum sp_status cache_list_files(const char *revdir, char ***out, size_t *n,
                                            struct sp_err *err);
void cache_strv_free(char **v, size_t n);

/* Remove root/<name>/<revision> (or all of root/<name> when revision is NULL).
 * Names are validated; nothing outside root is touched; symlinks are removed,
 * never followed. SP_ERR_NOT_FOUND if it is not cached. */
SP_MUST_USE enum sp_status cache_remove(const char *root, const char *name, const char *revision,
                                        struct sp_err *err);

#endif
