/* server_json.c - JSON text helpers of the completion routes: bytes to a
 * valid UTF-8 JSON string (invalid bytes become U+FFFD), a token's bytes as
 * an integer array, and in-place JSON string escaping for the SSE fast path
 * (no JSON tree per token). */
#include "server/server_int.h"

#include <jansson.h>
#include <string.h>

/* bytes -> a valid UTF-8 JSON string (invalid bytes become U+FFFD) */
void *srv_json_text(const char *s, size_t n)
{
    if (sp_utf8_valid(s, n))
        return json_stringn(s, n);
    struct sp_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !sp_utf8_valid(s + i, k))
            k++;
        int rc = (k <= 4 && i + k <= n) ? sp_buf_append(&b, s + i, k) : sp_buf_appends(&b, "\xEF\xBF\xBD");
        if (rc) {
            sp_buf_free(&b);
            return NULL;
        }
        if (k <= 4 && i + k <= n)
            i += k - 1;
    }
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    sp_buf_free(&b);
    return j;
}

void *srv_bytes_array(const char *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

/* Append s[0..n) as the inside of a JSON string: escapes, and U+FFFD for
 * bytes that are not valid UTF-8. */
int srv_json_escape(struct sp_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = 0;
    size_t i = 0;
    while (i < n && !rc) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            size_t k = i;
            while (k < n && (unsigned char)s[k] >= 0x20 && (unsigned char)s[k] < 0x80 && s[k] != '"' && s[k] != '\\')
                k++;
            if (k > i) {
                rc = sp_buf_append(b, s + i, k - i);
                i = k;
                continue;
            }
            char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
            size_t el = 2;
            switch (ch) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15];
                el = 6;
            }
            rc = sp_buf_append(b, esc, el);
            i++;
            continue;
        }
        size_t k = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
        if (i + k <= n && k > 1 && sp_utf8_valid(s + i, k)) {
            rc = sp_buf_append(b, s + i, k);
            i += k;
        } else {
            rc = sp_buf_appends(b, "\xEF\xBF\xBD");
            i++;
        }
    }
    return rc;
}

