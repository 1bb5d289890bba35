/* str.c - bounded buffers, strlcpy, strict number parsing and UTF-8 checks.
 * Buffers grow geometrically through the counted allocator and refuse to
 * grow past their limit, so untrusted input can never grow one unbounded. */
#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(struct sp_buf *b, size_t extra)
{
    size_t limit = b->limit ? b->limit : SIZE_MAX / 2;
    size_t need;
    if (!sp_add_size(b->len, extra, &need) || need > limit)
        return SP_ERR_LIMIT;
    if (need + 1 <= b->cap)
        return SP_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) {
        if (cap > SIZE_MAX / 4)
            return SP_ERR_LIMIT;
        cap *= 2;
    }
    char *d = sp_realloc(b->data, cap);
    if (!d)
        return SP_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
    return SP_OK;
}

int sp_buf_append(struct sp_buf *b, const void *data, size_t n)
{
    int result = buf_reserve(b, n);
    if (result != SP_OK)
        return result;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SP_OK;
}

int sp_buf_appends(struct sp_buf *b, const char *s) { return sp_buf_append(b, s, strlen(s)); }

int sp_buf_printf(struct sp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SP_ERR_INVALID;
    int result = buf_reserve(b, (size_t)n);
    if (result != SP_OK)
        return result;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SP_OK;
}

void sp_buf_reset(struct sp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sp_buf_free(struct sp_buf *b)
{
    sp_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sp_buf_take(struct sp_buf *b)
{
    if (!b->data && buf_reserve(b, 0) != SP_OK)
        return NULL;
    if (b->len == 0)
        b->data[0] = '\0';
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

size_t sp_strlcpy(char *dst, const char *src, size_t dstsz)
{
    size_t n = strlen(src);
    if (dstsz) {
        size_t c = n < dstsz - 1 ? n : dstsz - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

bool sp_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s || !(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool sp_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !(s[0] >= '0' && s[0] <= '9'))
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || v > max)
        return false;
    *out = v;
    return true;
}

bool sp_parse_double(const char *s, double *out)
{
    if (!s || !*s || s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
        return false;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || !end || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool sp_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

bool sp_str_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool sp_str_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}
