/* base.h - status codes, error records, checked arithmetic and small helpers
 * shared by every layer of spoke. Include this (and the per-file headers
 * mem.h, str.h, time.h) from any layer. */
#ifndef SPOKE_BASE_H
#define SPOKE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_MUST_USE __attribute__((warn_unused_result))
#define SP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SP_UNUSED(x) ((void)(x))

/* Every fallible function returns one of these. Keep the list stable: the
 * server maps them to HTTP statuses and the CLI to exit codes. */
enum sp_status {
    SP_OK = 0,
    SP_ERR_NOMEM,       /* allocation failed (or injected failure) */
    SP_ERR_INVALID,     /* bad argument / malformed user input (id, request, config) */
    SP_ERR_FORMAT,      /* malformed file or response data (GGUF, Hub JSON) */
    SP_ERR_UNSUPPORTED, /* well-formed but not supported (tensor type, arch) */
    SP_ERR_RANGE,       /* value out of range, arithmetic overflow */
    SP_ERR_LIMIT,       /* a configured limit was exceeded (body size, context) */
    SP_ERR_IO,          /* filesystem error */
    SP_ERR_NOT_FOUND,   /* file / model / repo / revision does not exist */
    SP_ERR_AUTH,        /* 401/403 from the Hub */
    SP_ERR_NETWORK,     /* transport failure after retries */
    SP_ERR_HTTP,        /* unexpected HTTP status after retries */
    SP_ERR_INTEGRITY,   /* size or sha256 mismatch */
    SP_ERR_OFFLINE,     /* HF_HUB_OFFLINE=1 and the file is not cached */
    SP_ERR_BUSY,        /* queue full / lock held */
    SP_ERR_CANCELLED,   /* cancelled by the caller or a disconnect */
    SP_ERR_TIMEOUT,     /* a deadline passed */
    SP_ERR_MEMORY,      /* would not fit in available memory (footprint check) */
    SP_ERR_STATE,       /* object not in a state that allows the call (e.g. loading) */
    SP_ERR_INTERNAL,    /* bug: an invariant broke */
    SP_ERR_NOSPACE,     /* not enough free disk space (download, write) */
    SP_STATUS_COUNT
};

/* Short stable name of a status ("invalid", "not_found", ...). Never NULL. */
const char *sp_status_name(enum sp_status status);

/* Error record filled at subsystem boundaries. All fields optional-to-read;
 * a zeroed record means "no error". msg is one human line, no newline. */
struct sp_err {
    enum sp_status code;
    int http_status;     /* HTTP status involved, 0 if none */
    long long offset;    /* file offset involved, -1 if none */
    char context[128];   /* key, tensor name, config key, URL path... "" if none */
    char msg[512];       /* the actionable message */
};

/* Clear an error record (code SP_OK, offset -1). NULL is allowed. */
void sp_err_clear(struct sp_err *err);

/* Fill err (if non-NULL) with code and a printf-formatted message; returns
 * code so callers can write `return sp_err_set(err, SP_ERR_X, "...")`.
 * Does not overwrite context/offset/http_status. */
enum sp_status sp_err_set(struct sp_err *err, enum sp_status code, const char *fmt, ...)
    SP_PRINTF(3, 4);

/* Like sp_err_set, also records a context string (key/name/path). */
enum sp_status sp_err_setc(struct sp_err *err, enum sp_status code, const char *context,
                           const char *fmt, ...) SP_PRINTF(4, 5);

/* Checked arithmetic: return true on success, false on overflow. */
static inline bool sp_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool sp_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool sp_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool sp_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool sp_mul_i64(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool sp_add_i64(int64_t a, int64_t b, int64_t *out) { return !__builtin_add_overflow(a, b, out); }

#include "base/mem.h"
#include "base/str.h"
#include "base/clock.h"

#endif
