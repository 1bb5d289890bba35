/* tok_jinja_val.c - values of the chat-template interpreter: the arena they
 * live in, strings with taint ranges and the taint-keeping builder, Python's
 * str()/repr() and json.dumps() formatting (what Jinja2 prints, and what
 * Hugging Face's tojson filter produces), equality, and the conversion of
 * the JSON render context (jansson) into values.
 *
 * Floats print as Python's repr: the shortest of %.1g..%.17g that reads
 * back to the same double, exponent form below 1e-4 and from 1e16. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_jinja.h"

/* ---- arena */
struct ja_chunk {
    struct ja_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *ja_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    struct ja_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > 32768 ? n : 32768;
        if (a->used + sz + sizeof *c > a->cap)
            return NULL;
        c = sp_malloc(sizeof *c + sz);
        if (!c)
            return NULL;
        c->next = a->head;
        c->size = sz;
        c->used = 0;
        a->head = c;
        a->used += sz + sizeof *c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void ja_free_all(struct jarena *a)
{
    struct ja_chunk *c = a->head;
    while (c) {
        struct ja_chunk *nx = c->next;
        sp_free(c);
        c = nx;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- strings and the builder */
static int jsb_range(struct jsb *sb, size_t off, size_t len)
{
    if (!len)
        return 0;
    if (sb->nr && sb->r[sb->nr - 1].off + sb->r[sb->nr - 1].len == off) {
        sb->r[sb->nr - 1].len += len;
        return 0;
    }
    if (sb->nr == sb->cap) {
        size_t nc = sb->cap ? sb->cap * 2 : 8;
        struct jrange *nv = sp_realloc(sb->r, nc * sizeof *nv);
        if (!nv)
            return SP_ERR_NOMEM;
        sb->r = nv;
        sb->cap = nc;
    }
    sb->r[sb->nr++] = (struct jrange){off, len};
    return 0;
}

int jsb_add(struct jsb *sb, const char *s, size_t n, bool tainted)
{
    size_t off = sb->b.len;
    int rc = sp_buf_append(&sb->b, s, n);
    if (!rc && tainted)
        rc = jsb_range(sb, off, n);
    return rc;
}

int jsb_add_str(struct jsb *sb, const struct jstr *s)
{
    size_t off = sb->b.len;
    int rc = sp_buf_append(&sb->b, s->s, s->len);
    for (size_t i = 0; !rc && i < s->n_taint; i++)
        rc = jsb_range(sb, off + s->taint[i].off, s->taint[i].len);
    return rc;
}

void jsb_free(struct jsb *sb)
{
    sp_buf_free(&sb->b);
    sp_free(sb->r);
    memset(sb, 0, sizeof *sb);
}

static struct jstr *str_alloc(struct jarena *a, size_t n, size_t n_taint)
{
    if (n > a->cap)
        return NULL;
    struct jstr *s = ja_alloc(a, sizeof *s + n + 1);
    if (!s)
        return NULL;
    s->len = n;
    if (n_taint) {
        s->taint = ja_alloc(a, n_taint * sizeof *s->taint);
        if (!s->taint)
            return NULL;
    }
    s->n_taint = n_taint;
    return s;
}

struct jstr *jv_newstr(struct jarena *a, const char *src, size_t n, bool tainted)
{
    struct jstr *s = str_alloc(a, n, tainted && n ? 1 : 0);
    if (!s)
        return NULL;
    if (n)
        memcpy(s->s, src, n);
    if (s->n_taint)
        s->taint[0] = (struct jrange){0, n};
    return s;
}

struct jstr *jv_substr(struct jarena *a, const struct jstr *x, size_t off, size_t n)
{
    if (off > x->len)
        off = x->len;
    if (n > x->len - off)
        n = x->len - off;
    size_t nt = 0;
    for (size_t i = 0; i < x->n_taint; i++)
        if (x->taint[i].off < off + n && x->taint[i].off + x->taint[i].len > off)
            nt++;
    struct jstr *s = str_alloc(a, n, nt);
    if (!s)
        return NULL;
    memcpy(s->s, x->s + off, n);
    size_t k = 0;
    for (size_t i = 0; i < x->n_taint; i++) {
        size_t b = x->taint[i].off, e = b + x->taint[i].len;
        if (b < off + n && e > off) {
            b = b < off ? off : b;
            e = e > off + n ? off + n : e;
            s->taint[k++] = (struct jrange){b - off, e - b};
        }
    }
    return s;
}

struct jstr *jv_concat(struct jarena *a, const struct jstr *x, const struct jstr *y)
{
    struct jstr *s = str_alloc(a, x->len + y->len, x->n_taint + y->n_taint);
    if (!s)
        return NULL;
    memcpy(s->s, x->s, x->len);
    memcpy(s->s + x->len, y->s, y->len);
    size_t k = 0;
    for (size_t i = 0; i < x->n_taint; i++)
        s->taint[k++] = x->taint[i];
    for (size_t i = 0; i < y->n_taint; i++) {
        struct jrange r = {y->taint[i].off + x->len, y->taint[i].len};
        if (k && s->taint[k - 1].off + s->taint[k - 1].len == r.off)
            s->taint[k - 1].len += r.len;
        else
            s->taint[k++] = r;
    }
    s->n_taint = k;
    return s;
}

struct jstr *jv_sb_take(struct jarena *a, struct jsb *sb)
{
    struct jstr *s = str_alloc(a, sb->b.len, sb->nr);
    if (!s)
        return NULL;
    if (sb->b.len)
        memcpy(s->s, sb->b.data, sb->b.len);
    if (sb->nr)
        memcpy(s->taint, sb->r, sb->nr * sizeof *sb->r);
    sp_buf_reset(&sb->b);
    sb->nr = 0;
    return s;
}

size_t jv_utf8_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            k++;
    return k;
}

size_t jv_utf8_off(const char *s, size_t n, int64_t cp)
{
    if (cp <= 0)
        return 0;
    int64_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && k++ == cp)
            return i;
    return n;
}

/* ---- semantics */
bool jv_truthy(const struct jv *v)
{
    switch (v->kind) {
    case JV_BOOL: return v->b;
    case JV_INT: return v->i != 0;
    case JV_FLOAT: return v->f != 0.0;
    case JV_STR: return v->s->len != 0;
    case JV_LIST: return v->l->n != 0;
    case JV_DICT: return v->d->n != 0 || v->d->ns;
    case JV_FUNC:
    case JV_MACRO: return true;
    default: return false;
    }
}

static bool jv_num(const struct jv *v, double *d)
{
    if (v->kind == JV_INT || v->kind == JV_BOOL)
        *d = v->kind == JV_INT ? (double)v->i : (double)v->b;
    else if (v->kind == JV_FLOAT)
        *d = v->f;
    else
        return false;
    return true;
}

static bool equal_rec(const struct jv *x, const struct jv *y, int depth);

bool jv_equal(const struct jv *x, const struct jv *y) { return equal_rec(x, y, 0); }

static bool equal_rec(const struct jv *x, const struct jv *y, int depth)
{
    if (depth > 200)
        return false;
    double a, b;
    if (x->kind == JV_INT && y->kind == JV_INT)
        return x->i == y->i;
    if (jv_num(x, &a) && jv_num(y, &b))
        return a == b;
    if (x->kind != y->kind)
        return false;
    switch (x->kind) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return x->s->len == y->s->len && !memcmp(x->s->s, y->s->s, x->s->len);
    case JV_LIST:
        if (x->l->n != y->l->n)
            return false;
        if (x->l == y->l)
            return true;
        for (size_t i = 0; i < x->l->n; i++)
            if (!equal_rec(&x->l->v[i], &y->l->v[i], depth + 1))
                return false;
        return true;
    case JV_DICT:
        if (x->d == y->d)
            return true;
        if (x->d->n != y->d->n)
            return false;
        for (size_t i = 0; i < x->d->n; i++) {
            const struct jv *o = jv_dict_get(y->d, x->d->k[i]->s, x->d->k[i]->len);
            if (!o || !equal_rec(&x->d->v[i], o, depth + 1))
                return false;
        }
        return true;
    case JV_FUNC: return x->fn == y->fn;
    case JV_MACRO: return x->mac == y->mac;
    default: return false;
    }
}

const char *jv_kind_name(const struct jv *v)
{
    static const char *const names[] = {"undefined", "none", "bool", "int", "float", "str", "list", "dict",
                                        "function", "macro"};
    return v->kind < SP_ARRAY_LEN(names) ? names[v->kind] : "?";
}

struct jv *jv_dict_get(const struct jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i]->len == n && !memcmp(d->k[i]->s, k, n))
            return &d->v[i];
    return NULL;
}

int jv_dict_set(struct jarena *a, struct jdict *d, struct jstr *k, struct jv v)
{
    struct jv *o = jv_dict_get(d, k->s, k->len);
    if (o) {
        *o = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        struct jstr **nk = ja_alloc(a, nc * sizeof *nk);
        struct jv *nv = ja_alloc(a, nc * sizeof *nv);
        if (!nk || !nv)
            return -1;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

/* Python float repr */
static int fmt_float(char *out, size_t cap, double f)
{
    if (isnan(f))
        return snprintf(out, cap, "nan");
    if (isinf(f))
        return snprintf(out, cap, f < 0 ? "-inf" : "inf");
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    /* buf = d.ddde[+-]XX: digits and exponent */
    char digits[24];
    size_t nd = 0;
    const char *q = buf;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    int ex = (int)strtol(q + 1, NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    size_t o = 0;
#define PUTC(ch) do { if (o + 1 < cap) out[o++] = (ch); } while (0)
    if (neg)
        PUTC('-');
    if (ex < -4 || ex >= 16) {
        PUTC(digits[0]);
        if (nd > 1) {
            PUTC('.');
            for (size_t i = 1; i < nd; i++)
                PUTC(digits[i]);
        }
        char e[16];
        snprintf(e, sizeof e, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
        for (char *c = e; *c; c++)
            PUTC(*c);
    } else if (ex < 0) {
        PUTC('0');
        PUTC('.');
        for (int i = 0; i < -ex - 1; i++)
            PUTC('0');
        for (size_t i = 0; i < nd; i++)
            PUTC(digits[i]);
    } else {
        for (int i = 0; i <= ex; i++)
            PUTC((size_t)i < nd ? digits[i] : '0');
        PUTC('.');
        if ((size_t)ex + 1 < nd)
            for (size_t i = (size_t)ex + 1; i < nd; i++)
                PUTC(digits[i]);
        else
            PUTC('0');
    }
#undef PUTC
    out[o] = 0;
    return (int)o;
}

/* Python repr of a string: single quotes unless it contains ' and no " */
static int repr_str(struct jsb *sb, const struct jstr *s)
{
    bool sq = memchr(s->s, '\'', s->len) != NULL, dq = memchr(s->s, '"', s->len) != NULL;
    char q = sq && !dq ? '"' : '\'';
    bool t = s->n_taint > 0;
    int rc = jsb_add(sb, &q, 1, false);
    for (size_t i = 0; !rc && i < s->len; i++) {
        unsigned char c = (unsigned char)s->s[i];
        char e[8];
        if (c == '\\' || c == (unsigned char)q) {
            e[0] = '\\', e[1] = (char)c;
            rc = jsb_add(sb, e, 2, t);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            e[0] = '\\', e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            rc = jsb_add(sb, e, 2, t);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(e, sizeof e, "\\x%02x", c);
            rc = jsb_add(sb, e, 4, t);
        } else {
            rc = jsb_add(sb, (const char *)&s->s[i], 1, t);
        }
    }
    return rc ? rc : jsb_add(sb, &q, 1, false);
}

int jv_to_sb(struct jsb *sb, const struct jv *v, bool repr)
{
    char num[48];
    int rc = 0;
    switch (v->kind) {
    case JV_UNDEF: return 0;
    case JV_NONE: return jsb_add(sb, "None", 4, false);
    case JV_BOOL: return v->b ? jsb_add(sb, "True", 4, false) : jsb_add(sb, "False", 5, false);
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); return jsb_add(sb, num, strlen(num), false);
    case JV_FLOAT: fmt_float(num, sizeof num, v->f); return jsb_add(sb, num, strlen(num), false);
    case JV_STR: return repr ? repr_str(sb, v->s) : jsb_add_str(sb, v->s);
    case JV_LIST:
        rc = jsb_add(sb, "[", 1, false);
        for (size_t i = 0; !rc && i < v->l->n; i++) {
            if (i)
                rc = jsb_add(sb, ", ", 2, false);
            if (!rc)
                rc = jv_to_sb(sb, &v->l->v[i], true);
        }
        return rc ? rc : jsb_add(sb, "]", 1, false);
    case JV_DICT:
        if (v->d->ns)
            return jsb_add(sb, "<Namespace>", 11, false);
        rc = jsb_add(sb, "{", 1, false);
        for (size_t i = 0; !rc && i < v->d->n; i++) {
            if (i)
                rc = jsb_add(sb, ", ", 2, false);
            struct jv k = jv_str(v->d->k[i]);
            if (!rc)
                rc = jv_to_sb(sb, &k, true);
            if (!rc)
                rc = jsb_add(sb, ": ", 2, false);
            if (!rc)
                rc = jv_to_sb(sb, &v->d->v[i], true);
        }
        return rc ? rc : jsb_add(sb, "}", 1, false);
    default: return jsb_add(sb, "<function>", 10, false);
    }
}

static int json_str(struct sp_buf *b, const char *s, size_t n)
{
    int rc = sp_buf_append(b, "\"", 1);
    for (size_t i = 0; !rc && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c;
            rc = sp_buf_append(b, e, 2);
        } else if (c < 0x20) {
            const char *m = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                            : c == '\f' ? "\\f" : NULL;
            if (!m) {
                snprintf(e, sizeof e, "\\u%04x", c);
                m = e;
            }
            rc = sp_buf_appends(b, m);
        } else {
            rc = sp_buf_append(b, &s[i], 1);
        }
    }
    return rc ? rc : sp_buf_append(b, "\"", 1);
}

static int json_nl(struct sp_buf *b, int indent, int level)
{
    int rc = sp_buf_append(b, "\n", 1);
    for (int i = 0; !rc && i < indent * level; i++)
        rc = sp_buf_append(b, " ", 1);
    return rc;
}

static int tojson_rec(struct sp_buf *b, const struct jv *v, int indent, bool sort_keys, int level)
{
    char num[48];
    int rc = 0;
    if (level > 200)
        return SP_ERR_LIMIT;
    switch (v->kind) {
    case JV_NONE: return sp_buf_appends(b, "null");
    case JV_BOOL: return sp_buf_appends(b, v->b ? "true" : "false");
    case JV_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); return sp_buf_appends(b, num);
    case JV_FLOAT:
        if (isnan(v->f))
            return sp_buf_appends(b, "NaN");
        if (isinf(v->f))
            return sp_buf_appends(b, v->f < 0 ? "-Infinity" : "Infinity");
        fmt_float(num, sizeof num, v->f);
        return sp_buf_appends(b, num);
    case JV_STR: return json_str(b, v->s->s, v->s->len);
    case JV_LIST:
        if (v->l->n == 0)
            return sp_buf_appends(b, "[]");
        rc = sp_buf_appends(b, "[");
        for (size_t i = 0; !rc && i < v->l->n; i++) {
            if (i)
                rc = sp_buf_appends(b, indent >= 0 ? "," : ", ");
            if (!rc && indent >= 0)
                rc = json_nl(b, indent, level + 1);
            if (!rc)
                rc = tojson_rec(b, &v->l->v[i], indent, sort_keys, level + 1);
        }
        if (!rc && indent >= 0)
            rc = json_nl(b, indent, level);
        return rc ? rc : sp_buf_appends(b, "]");
    case JV_DICT: {
        if (v->d->ns)
            return SP_ERR_INVALID;
        if (v->d->n == 0)
            return sp_buf_appends(b, "{}");
        size_t n = v->d->n;
        if (sort_keys && n > 4096)
            return SP_ERR_LIMIT; /* the key sort below is quadratic */
        size_t *ord = sp_malloc(n * sizeof *ord);
        if (!ord)
            return SP_ERR_NOMEM;
        for (size_t i = 0; i < n; i++)
            ord[i] = i;
        if (sort_keys) /* insertion sort: dicts here are small */
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0; j--) {
                    const struct jstr *x = v->d->k[ord[j - 1]], *y = v->d->k[ord[j]];
                    size_t m = x->len < y->len ? x->len : y->len;
                    int c = memcmp(x->s, y->s, m);
                    if (c < 0 || (c == 0 && x->len <= y->len))
                        break;
                    size_t t = ord[j];
                    ord[j] = ord[j - 1];
                    ord[j - 1] = t;
                }
        rc = sp_buf_appends(b, "{");
        for (size_t i = 0; !rc && i < n; i++) {
            if (i)
                rc = sp_buf_appends(b, indent >= 0 ? "," : ", ");
            if (!rc && indent >= 0)
                rc = json_nl(b, indent, level + 1);
            if (!rc)
                rc = json_str(b, v->d->k[ord[i]]->s, v->d->k[ord[i]]->len);
            if (!rc)
                rc = sp_buf_appends(b, ": ");
            if (!rc)
                rc = tojson_rec(b, &v->d->v[ord[i]], indent, sort_keys, level + 1);
        }
        sp_free(ord);
        if (!rc && indent >= 0)
            rc = json_nl(b, indent, level);
        return rc ? rc : sp_buf_appends(b, "}");
    }
    default: return SP_ERR_INVALID; /* undefined, functions: not JSON serializable */
    }
}

int jv_tojson(struct sp_buf *b, const struct jv *v, int indent, bool sort_keys, int depth)
{
    return tojson_rec(b, v, indent, sort_keys, depth);
}

/* ---- JSON context -> values */
static int from_json(struct jarena *a, const json_t *j, bool taint, struct jv *out, int depth)
{
    if (depth > 200)
        return -1;
    memset(out, 0, sizeof *out);
    switch (json_typeof(j)) {
    case JSON_NULL: out->kind = JV_NONE; return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_INTEGER: *out = jv_int(json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_STRING: {
        struct jstr *s = jv_newstr(a, json_string_value(j), json_string_length(j), taint);
        if (!s)
            return -1;
        *out = jv_str(s);
        return 0;
    }
    case JSON_ARRAY: {
        struct jlist *l = ja_alloc(a, sizeof *l);
        size_t n = json_array_size(j);
        if (!l || (n && !(l->v = ja_alloc(a, n * sizeof *l->v))))
            return -1;
        l->n = n;
        for (size_t i = 0; i < n; i++)
            if (from_json(a, json_array_get(j, i), taint, &l->v[i], depth + 1))
                return -1;
        out->kind = JV_LIST;
        out->l = l;
        return 0;
    }
    case JSON_OBJECT: {
        struct jdict *d = ja_alloc(a, sizeof *d);
        if (!d)
            return -1;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            struct jv x;
            struct jstr *ks = jv_newstr(a, k, strlen(k), false);
            if (!ks || from_json(a, v, taint, &x, depth + 1) || jv_dict_set(a, d, ks, x))
                return -1;
        }
        out->kind = JV_DICT;
        out->d = d;
        return 0;
    }
    }
    return -1;
}

enum sp_status jv_from_json(struct jarena *a, const char *json, size_t len, const char *const *tainted_keys,
                            struct jv *out, struct sp_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return sp_err_set(err, SP_ERR_INVALID, "chat template context is not valid JSON: %s", je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return sp_err_set(err, SP_ERR_INVALID, "chat template context must be a JSON object");
    }
    struct jdict *d = ja_alloc(a, sizeof *d);
    int rc = d ? 0 : -1;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (rc)
            break;
        bool t = !tainted_keys;
        for (size_t i = 0; tainted_keys && tainted_keys[i]; i++)
            if (!strcmp(k, tainted_keys[i]))
                t = true;
        struct jv x;
        struct jstr *ks = jv_newstr(a, k, strlen(k), false);
        rc = !ks || from_json(a, v, t, &x, 1) || jv_dict_set(a, d, ks, x);
    }
    json_decref(root);
    if (rc)
        return sp_err_set(err, SP_ERR_LIMIT, "chat template context too large or too deep");
    out->kind = JV_DICT;
    out->d = d;
    return SP_OK;
}
