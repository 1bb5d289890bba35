/* tok_jinja_lib.c - the library of the chat-template interpreter: Jinja2
 * filters (trim, tojson, length, default, items, join, map, select*,
 * reject*, sort, ...), tests (defined, none, string, mapping, ...) and the
 * Python methods real templates call on strings (strip, split, startswith,
 * replace, ...), dicts (items, keys, values, get) and lists.
 *
 * Results keep taint where bytes are copied (strip, split, slices, join);
 * a transformed request string (replace, upper, tojson of request data) is
 * request data as a whole. Case mapping is ASCII-only (documented limit). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tok/tok_jinja.h"

#define FAIL(...) return jx_fail(c, n, SP_ERR_INVALID, __VA_ARGS__)

bool jl_has_taint(const struct jv *v, int depth)
{
    if (depth > 200)
        return true;
    if (v->kind == JV_STR)
        return v->s->n_taint > 0;
    if (v->kind == JV_LIST)
        for (size_t i = 0; i < v->l->n; i++)
            if (jl_has_taint(&v->l->v[i], depth + 1))
                return true;
    if (v->kind == JV_DICT)
        for (size_t i = 0; i < v->d->n; i++)
            if (jl_has_taint(&v->d->v[i], depth + 1))
                return true;
    return false;
}

enum sp_status jl_mkstr(struct jctx *c, const struct jnode *n, const char *s, size_t len, bool taint,
                            struct jv *out)
{
    struct jstr *r = jv_newstr(c->ar, s, len, taint);
    if (!r)
        return jx_nomem(c, n);
    *out = jv_str(r);
    return SP_OK;
}

enum sp_status jl_take(struct jctx *c, const struct jnode *n, struct jsb *sb, int rc, struct jv *out)
{
    struct jstr *s = rc ? NULL : jv_sb_take(c->ar, sb);
    jsb_free(sb);
    if (!s)
        return jx_nomem(c, n);
    *out = jv_str(s);
    return SP_OK;
}

enum sp_status jl_to_str(struct jctx *c, const struct jnode *n, struct jv v, struct jv *out)
{
    if (v.kind == JV_STR) {
        *out = v;
        return SP_OK;
    }
    struct jsb sb = {0};
    return jl_take(c, n, &sb, jv_to_sb(&sb, &v, false), out);
}

struct jlist *jl_new_list(struct jctx *c, size_t cap)
{
    struct jlist *l = ja_alloc(c->ar, sizeof *l);
    if (l && cap && !(l->v = ja_alloc(c->ar, cap * sizeof *l->v)))
        return NULL;
    return l;
}

struct jv jl_list_v(struct jlist *l)
{
    struct jv v = {.kind = JV_LIST};
    v.l = l;
    return v;
}

/* Python whitespace (str.split() / str.strip()) at s[i]: its byte length or 0 */
static size_t py_space(const char *s, size_t n, size_t i)
{
    unsigned char ch = (unsigned char)s[i];
    if (ch == ' ' || (ch >= 0x09 && ch <= 0x0d) || (ch >= 0x1c && ch <= 0x1f))
        return 1;
    uint32_t cp;
    size_t k = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (k > 1 && (cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
                  cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000))
        return k;
    return 0;
}

static size_t cp_len_at(const char *s, size_t n, size_t i)
{
    size_t k = 1;
    while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80)
        k++;
    return k;
}

/* is the code point at s[i] (len k) in the set chars? */
static bool in_set(const struct jstr *chars, const char *s, size_t k)
{
    for (size_t j = 0; j < chars->len;) {
        size_t m = cp_len_at(chars->s, chars->len, j);
        if (m == k && !memcmp(chars->s + j, s, k))
            return true;
        j += m;
    }
    return false;
}

/* strip: which 1 = left, 2 = right, 3 = both; chars NULL = whitespace */
enum sp_status jl_strip(struct jctx *c, const struct jnode *n, const struct jstr *s, const struct jstr *chars,
                            int which, struct jv *out)
{
    size_t b = 0, e = s->len;
    if (which & 1)
        while (b < e) {
            size_t k = chars ? (in_set(chars, s->s + b, cp_len_at(s->s, e, b)) ? cp_len_at(s->s, e, b) : 0)
                             : py_space(s->s, e, b);
            if (!k)
                break;
            b += k;
        }
    if (which & 2)
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)s->s[st] & 0xC0) == 0x80)
                st--;
            size_t k = chars ? (in_set(chars, s->s + st, e - st) ? e - st : 0)
                             : (py_space(s->s, e, st) == e - st ? e - st : 0);
            if (!k)
                break;
            e = st;
        }
    struct jstr *r = jv_substr(c->ar, s, b, e - b);
    if (!r)
        return jx_nomem(c, n);
    *out = jv_str(r);
    return SP_OK;
}

enum sp_status jl_split(struct jctx *c, const struct jnode *n, const struct jstr *s, struct jv sep,
                            int64_t maxsplit, struct jv *out)
{
    struct jlist *l = jl_new_list(c, 0);
    if (!l)
        return jx_nomem(c, n);
    size_t cap = 0;
#define ADD(off, len)                                                            \
    do {                                                                         \
        if (l->n == cap) {                                                       \
            size_t nc = cap ? cap * 2 : 8;                                       \
            struct jv *nv = ja_alloc(c->ar, nc * sizeof *nv);                    \
            if (!nv)                                                             \
                return jx_nomem(c, n);                                           \
            if (l->n)                                                            \
                memcpy(nv, l->v, l->n * sizeof *nv);                             \
            l->v = nv;                                                           \
            cap = nc;                                                            \
        }                                                                        \
        struct jstr *p_ = jv_substr(c->ar, s, (off), (len));                     \
        if (!p_)                                                                 \
            return jx_nomem(c, n);                                               \
        l->v[l->n++] = jv_str(p_);                                               \
    } while (0)
    if (sep.kind == JV_STR) {
        if (sep.s->len == 0)
            FAIL("empty separator");
        size_t b = 0;
        for (;;) {
            const char *m = maxsplit != 0 ? memmem(s->s + b, s->len - b, sep.s->s, sep.s->len) : NULL;
            if (!m) {
                ADD(b, s->len - b);
                break;
            }
            size_t at = (size_t)(m - s->s);
            ADD(b, at - b);
            b = at + sep.s->len;
            if (maxsplit > 0)
                maxsplit--;
        }
    } else {
        size_t i = 0;
        while (i < s->len) {
            size_t k;
            while (i < s->len && (k = py_space(s->s, s->len, i)) > 0)
                i += k;
            if (i >= s->len)
                break;
            size_t b = i;
            if (maxsplit == 0) {
                size_t e = s->len;
                while (e > b && py_space(s->s, s->len, e - 1))
                    e--;
                ADD(b, e - b);
                break;
            }
            while (i < s->len && !py_space(s->s, s->len, i))
                i++;
            ADD(b, i - b);
            if (maxsplit > 0)
                maxsplit--;
        }
    }
#undef ADD
    *out = jl_list_v(l);
    return SP_OK;
}

enum sp_status jl_replace(struct jctx *c, const struct jnode *n, const struct jstr *s, struct jv a, struct jv b,
                              int64_t count, struct jv *out)
{
    if (a.kind != JV_STR || b.kind != JV_STR)
        FAIL("jl_replace() takes two strings");
    bool t = s->n_taint || b.s->n_taint;
    struct jsb sb = {0};
    sb.b.limit = c->out_cap;
    int rc = 0;
    size_t i = 0;
    if (a.s->len == 0) {
        /* Python inserts the replacement between every code point */
        for (; !rc && i <= s->len && count != 0; count--) {
            rc = jsb_add(&sb, b.s->s, b.s->len, t);
            if (i < s->len) {
                size_t k = cp_len_at(s->s, s->len, i);
                if (!rc)
                    rc = jsb_add(&sb, s->s + i, k, t);
                i += k;
            } else {
                i++;
            }
        }
        if (!rc && i < s->len)
            rc = jsb_add(&sb, s->s + i, s->len - i, t);
        return jl_take(c, n, &sb, rc, out);
    }
    while (!rc) {
        const char *m = count != 0 ? memmem(s->s + i, s->len - i, a.s->s, a.s->len) : NULL;
        if (!m) {
            rc = jsb_add(&sb, s->s + i, s->len - i, t);
            break;
        }
        size_t at = (size_t)(m - s->s);
        rc = jsb_add(&sb, s->s + i, at - i, t);
        if (!rc)
            rc = jsb_add(&sb, b.s->s, b.s->len, t);
        i = at + a.s->len;
        if (count > 0)
            count--;
    }
    return jl_take(c, n, &sb, rc, out);
}

/* ASCII case maps: 1 upper, 2 lower, 3 title, 4 capitalize (taint kept: same bytes count) */
enum sp_status jl_casemap(struct jctx *c, const struct jnode *n, const struct jstr *s, int mode,
                              struct jv *out)
{
    struct jstr *r = jv_substr(c->ar, s, 0, s->len);
    if (!r)
        return jx_nomem(c, n);
    bool prev_alpha = false;
    for (size_t i = 0; i < r->len; i++) {
        char ch = r->s[i];
        bool lo = ch >= 'a' && ch <= 'z', up = ch >= 'A' && ch <= 'Z';
        bool want_up = mode == 1 || (mode == 3 && !prev_alpha) || (mode == 4 && i == 0);
        if (want_up && lo)
            r->s[i] = (char)(ch - 32);
        else if (!want_up && up)
            r->s[i] = (char)(ch + 32);
        prev_alpha = lo || up || ((unsigned char)ch >= 0x80);
    }
    *out = jv_str(r);
    return SP_OK;
}

bool jl_str_has(const struct jstr *s, const struct jv *p, bool at_end)
{
    if (p->kind == JV_LIST) {
        for (size_t i = 0; i < p->l->n; i++)
            if (jl_str_has(s, &p->l->v[i], at_end))
                return true;
        return false;
    }
    if (p->kind != JV_STR || p->s->len > s->len)
        return false;
    return !memcmp(at_end ? s->s + s->len - p->s->len : s->s, p->s->s, p->s->len);
}

int64_t jl_int_arg(struct jv v, int64_t dflt)
{
    return v.kind == JV_INT ? v.i : v.kind == JV_BOOL ? v.b : dflt;
}

/* compare for sort/min/max: numbers and strings */
int jl_vcmp(const struct jv *a, const struct jv *b, bool *ok)
{
    double x, y;
    bool nx = a->kind == JV_INT || a->kind == JV_FLOAT || a->kind == JV_BOOL;
    bool ny = b->kind == JV_INT || b->kind == JV_FLOAT || b->kind == JV_BOOL;
    if (nx && ny) {
        x = a->kind == JV_INT ? (double)a->i : a->kind == JV_FLOAT ? a->f : a->b;
        y = b->kind == JV_INT ? (double)b->i : b->kind == JV_FLOAT ? b->f : b->b;
        return x < y ? -1 : x > y;
    }
    if (a->kind == JV_STR && b->kind == JV_STR) {
        size_t m = a->s->len < b->s->len ? a->s->len : b->s->len;
        int r = memcmp(a->s->s, b->s->s, m);
        return r ? r : a->s->len < b->s->len ? -1 : a->s->len > b->s->len;
    }
    *ok = false;
    return 0;
}

/* dotted attribute path ("function.name") of v */
struct jv jl_attr_path(struct jv v, const struct jstr *path)
{
    size_t b = 0;
    while (b <= path->len) {
        const char *dot = memchr(path->s + b, '.', path->len - b);
        size_t e = dot ? (size_t)(dot - path->s) : path->len;
        if (v.kind != JV_DICT)
            return jv_undef();
        const struct jv *x = jv_dict_get(v.d, path->s + b, e - b);
        if (!x)
            return jv_undef();
        v = *x;
        b = e + 1;
    }
    return v;
}


/* ---- methods: "text".strip(), d.items(), ... */
static enum sp_status str_method(struct jctx *c, const struct jnode *n, const struct jstr *s, const char *m,
                                 const struct jargs *a, struct jv *out, bool *handled)
{
    struct jv a0 = jx_arg(a, 0, NULL), a1 = jx_arg(a, 1, NULL);
    *handled = true;
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        if (a0.kind != JV_UNDEF && a0.kind != JV_NONE && a0.kind != JV_STR)
            FAIL("%s() takes a string", m);
        return jl_strip(c, n, s, a0.kind == JV_STR ? a0.s : NULL, m[0] == 's' ? 3 : m[0] == 'l' ? 1 : 2, out);
    }
    if (!strcmp(m, "split")) {
        struct jv sep = jx_arg(a, 0, "sep");
        return jl_split(c, n, s, sep, jl_int_arg(jx_arg(a, 1, "maxsplit"), -1), out);
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        if (a0.kind != JV_STR && a0.kind != JV_LIST)
            FAIL("%s() takes a string or a tuple of strings", m);
        *out = jv_bool(jl_str_has(s, &a0, m[0] == 'e'));
        return SP_OK;
    }
    if (!strcmp(m, "replace"))
        return jl_replace(c, n, s, a0, a1, jl_int_arg(jx_arg(a, 2, "count"), -1), out);
    if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") || !strcmp(m, "capitalize"))
        return jl_casemap(c, n, s, m[0] == 'u' ? 1 : m[0] == 'l' ? 2 : m[0] == 't' ? 3 : 4, out);
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "count")) {
        if (a0.kind != JV_STR)
            FAIL("%s() takes a string", m);
        int64_t found = -1, cnt = 0;
        for (size_t i = 0; i + a0.s->len <= s->len; i++) {
            if (memcmp(s->s + i, a0.s->s, a0.s->len))
                continue;
            if (found < 0 || m[0] == 'r')
                found = (int64_t)jv_utf8_len(s->s, i);
            cnt++;
            if (a0.s->len)
                i += a0.s->len - 1;
        }
        if (m[0] == 'i' && found < 0)
            FAIL("substring not found");
        *out = jv_int(m[0] == 'c' ? cnt : found);
        return SP_OK;
    }
    if (!strcmp(m, "join")) {
        if (a0.kind != JV_LIST)
            FAIL("join() takes a list");
        struct jsb sb = {0};
        int rc = 0;
        for (size_t i = 0; i < a0.l->n && !rc; i++) {
            if (a0.l->v[i].kind != JV_STR)
                FAIL("join() items must be strings");
            if (i)
                rc = jsb_add_str(&sb, s);
            if (!rc)
                rc = jsb_add_str(&sb, a0.l->v[i].s);
        }
        return jl_take(c, n, &sb, rc, out);
    }
    if (!strcmp(m, "splitlines")) {
        struct jv nl = {0};
        if (jl_mkstr(c, n, "\n", 1, false, &nl) != SP_OK)
            return c->st;
        enum sp_status st = jl_split(c, n, s, nl, -1, out);
        if (st == SP_OK && out->l->n && out->l->v[out->l->n - 1].s->len == 0)
            out->l->n--;
        return st;
    }
    if (!strcmp(m, "isdigit") || !strcmp(m, "isalpha") || !strcmp(m, "isalnum") || !strcmp(m, "isspace") ||
        !strcmp(m, "isupper") || !strcmp(m, "islower")) {
        bool r = s->len > 0, cased = false;
        for (size_t i = 0; i < s->len && r; i++) {
            char ch = s->s[i];
            bool d = ch >= '0' && ch <= '9', lo = ch >= 'a' && ch <= 'z', up = ch >= 'A' && ch <= 'Z';
            cased |= lo || up;
            if (m[2] == 'd') r = d;
            else if (!strcmp(m, "isalpha")) r = lo || up;
            else if (!strcmp(m, "isalnum")) r = lo || up || d;
            else if (m[2] == 's') r = py_space(s->s, s->len, i) > 0;
            else if (m[2] == 'u') r = !lo;
            else r = !up;
        }
        if (m[2] == 'u' || m[2] == 'l')
            r = r && cased;
        *out = jv_bool(r);
        return SP_OK;
    }
    if (!strcmp(m, "format")) {
        /* "{}" / "{0}" placeholders only */
        struct jsb sb = {0};
        int rc = 0;
        size_t next = 0;
        for (size_t i = 0; i < s->len && !rc; i++) {
            if (s->s[i] == '{' && i + 1 < s->len && s->s[i + 1] == '{') {
                rc = jsb_add(&sb, "{", 1, s->n_taint > 0);
                i++;
            } else if (s->s[i] == '}' && i + 1 < s->len && s->s[i + 1] == '}') {
                rc = jsb_add(&sb, "}", 1, s->n_taint > 0);
                i++;
            } else if (s->s[i] == '{') {
                const char *e = memchr(s->s + i, '}', s->len - i);
                if (!e) {
                    jsb_free(&sb);
                    FAIL("bad format string");
                }
                size_t idx = next++;
                if (e > s->s + i + 1) {
                    int64_t k;
                    char num[24] = {0};
                    size_t nl = (size_t)(e - s->s - i - 1);
                    memcpy(num, s->s + i + 1, nl < 23 ? nl : 23);
                    if (!sp_parse_i64(num, 0, 11, &k)) {
                        jsb_free(&sb);
                        FAIL("only {} and {N} placeholders are supported in format()");
                    }
                    idx = (size_t)k;
                }
                struct jv v = jx_arg(a, idx, NULL);
                rc = jv_to_sb(&sb, &v, false);
                i = (size_t)(e - s->s);
            } else {
                rc = jsb_add(&sb, s->s + i, 1, s->n_taint > 0);
            }
        }
        return jl_take(c, n, &sb, rc, out);
    }
    *handled = false;
    return SP_OK;
}

enum sp_status jx_method(struct jctx *c, const struct jnode *n, struct jv obj, const char *m,
                         const struct jargs *a, struct jv *out, bool *handled)
{
    *handled = false;
    if (obj.kind == JV_STR)
        return str_method(c, n, obj.s, m, a, out, handled);
    if (obj.kind == JV_DICT) {
        const struct jdict *d = obj.d;
        if (!strcmp(m, "get")) {
            struct jv k = jx_arg(a, 0, NULL);
            const struct jv *v = k.kind == JV_STR ? jv_dict_get(d, k.s->s, k.s->len) : NULL;
            *out = v ? *v : a->n > 1 ? jx_arg(a, 1, NULL) : jv_none();
            *handled = true;
            return SP_OK;
        }
        bool items = !strcmp(m, "items"), keys = !strcmp(m, "keys"), values = !strcmp(m, "values");
        if (!items && !keys && !values)
            return SP_OK;
        *handled = true;
        struct jlist *l = jl_new_list(c, d->n);
        if (!l)
            return jx_nomem(c, n);
        for (size_t i = 0; i < d->n; i++) {
            if (keys) {
                l->v[i] = jv_str(d->k[i]);
            } else if (values) {
                l->v[i] = d->v[i];
            } else {
                struct jlist *p = jl_new_list(c, 2);
                if (!p)
                    return jx_nomem(c, n);
                p->v[0] = jv_str(d->k[i]);
                p->v[1] = d->v[i];
                p->n = 2;
                l->v[i] = jl_list_v(p);
            }
        }
        l->n = d->n;
        *out = jl_list_v(l);
        return SP_OK;
    }
    if (obj.kind == JV_LIST && (!strcmp(m, "index") || !strcmp(m, "count"))) {
        struct jv x = jx_arg(a, 0, NULL);
        int64_t found = -1, cnt = 0;
        for (size_t i = 0; i < obj.l->n; i++)
            if (jv_equal(&x, &obj.l->v[i])) {
                if (found < 0)
                    found = (int64_t)i;
                cnt++;
            }
        *handled = true;
        if (m[0] == 'i' && found < 0)
            FAIL("value not in list");
        *out = jv_int(m[0] == 'i' ? found : cnt);
        return SP_OK;
    }
    if (obj.kind == JV_LIST && (!strcmp(m, "append") || !strcmp(m, "pop") || !strcmp(m, "extend") ||
                                !strcmp(m, "insert") || !strcmp(m, "remove")))
        FAIL("lists are immutable in chat templates (%s)", m);
    return SP_OK;
}
