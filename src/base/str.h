/* str.h - bounded strings and growable byte buffers with a size cap, plus
 * strict number parsing (atoi/sscanf are banned in spoke). */
#ifndef SPOKE_STR_H
#define SPOKE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growable buffer; data is always NUL-terminated when non-NULL. limit caps
 * len (0 = SIZE_MAX/2). Zero-initialise ({0}) to get an empty buffer. */
struct sp_buf {
    char *data;
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t cap;   /* bytes allocated */
    size_t limit; /* max len allowed; appends past it fail with SP_ERR_LIMIT */
};

/* Return 0 (SP_OK), SP_ERR_NOMEM or SP_ERR_LIMIT (as int to avoid a header cycle). */
int sp_buf_append(struct sp_buf *b, const void *data, size_t n) __attribute__((warn_unused_result));
int sp_buf_appends(struct sp_buf *b, const char *s) __attribute__((warn_unused_result));
int sp_buf_printf(struct sp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));
void sp_buf_reset(struct sp_buf *b); /* len = 0, keeps memory */
void sp_buf_free(struct sp_buf *b);  /* releases memory, leaves an empty buffer */
/* Steal the data (caller frees with sp_free); buffer becomes empty. Never NULL
 * unless allocation fails. */
char *sp_buf_take(struct sp_buf *b);

/* Copy src into dst (size dstsz), always NUL-terminating when dstsz > 0.
 * Returns strlen(src); truncation happened if the result >= dstsz. */
size_t sp_strlcpy(char *dst, const char *src, size_t dstsz);

/* Strict parsers: the whole string must be the number (no trailing junk, no
 * leading space), within [min, max]. Return true on success. */
bool sp_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool sp_parse_u64(const char *s, uint64_t max, uint64_t *out);
bool sp_parse_double(const char *s, double *out); /* finite values only */

/* True if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool sp_utf8_valid(const char *s, size_t n);

bool sp_str_starts_with(const char *s, const char *prefix);
bool sp_str_ends_with(const char *s, const char *suffix);

#endif
