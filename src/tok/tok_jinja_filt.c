/* tok_jinja_filt.c - Jinja2 filters and tests for chat templates.
 *
 * Filters follow Jinja2 3.x (default/d, length/count, trim, tojson as Hugging
 * Face overrides it: json.dumps(ensure_ascii=False, indent, sort_keys),
 * items, join, first/last, list, string, int/float, abs/round, map,
 * select/reject, selectattr/rejectattr, sort, reverse, unique, min/max/sum,
 * replace, upper/lower/title/capitalize, indent, dictsort, wordcount,
 * safe/escape, attr, format with %s/%d). Tests: defined, undefined, none,
 * boolean, true/false, integer, float, number, string, mapping, iterable,
 * sequence, callable, odd/even, divisibleby, eq/ne/lt/gt/le/ge (and their
 * operator spellings), in, lower/upper, sameas. Unknown names are errors
 * that name the filter or test. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tok/tok_jinja.h"

#define FAIL(...) return jx_fail(c, n, SP_ERR_INVALID, __VA_ARGS__)

static bool nm(const char *a, const char *b) { return !strcmp(a, b); }

static size_t npos(const struct jargs *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++)
        k += !a->kw[i];
    return k;
}

/* args from position `from` on, as a new jargs (for select('test', x), map('filter', x)) */
static void shift_args(const struct jargs *a, size_t from, struct jargs *out)
{
    out->n = 0;
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (!a->kw[i] && k++ < from)
            continue;
        out->v[out->n] = a->v[i];
        out->kw[out->n] = a->kw[i];
        out->n++;
    }
}

enum sp_status jx_test(struct jctx *c, const struct jnode *n, const char *t, struct jv v, const struct jargs *a,
                       bool *r)
{
    struct jv x = jx_arg(a, 0, NULL);
    double d = v.kind == JV_INT ? (double)v.i : v.kind == JV_FLOAT ? v.f : 0;
    bool num = v.kind == JV_INT || v.kind == JV_FLOAT;
    if (nm(t, "defined")) *r = v.kind != JV_UNDEF;
    else if (nm(t, "undefined")) *r = v.kind == JV_UNDEF;
    else if (nm(t, "none")) *r = v.kind == JV_NONE;
    else if (nm(t, "boolean")) *r = v.kind == JV_BOOL;
    else if (nm(t, "true")) *r = v.kind == JV_BOOL && v.b;
    else if (nm(t, "false")) *r = v.kind == JV_BOOL && !v.b;
    else if (nm(t, "integer")) *r = v.kind == JV_INT;
    else if (nm(t, "float")) *r = v.kind == JV_FLOAT;
    else if (nm(t, "number")) *r = num || v.kind == JV_BOOL;
    else if (nm(t, "string")) *r = v.kind == JV_STR;
    else if (nm(t, "mapping")) *r = v.kind == JV_DICT && !v.d->ns;
    else if (nm(t, "iterable")) *r = v.kind == JV_STR || v.kind == JV_LIST || (v.kind == JV_DICT && !v.d->ns);
    else if (nm(t, "sequence")) *r = v.kind == JV_STR || v.kind == JV_LIST || (v.kind == JV_DICT && !v.d->ns);
    else if (nm(t, "callable")) *r = v.kind == JV_FUNC || v.kind == JV_MACRO;
    else if (nm(t, "odd") || nm(t, "even")) {
        if (v.kind != JV_INT)
            FAIL("'%s' test needs an integer", t);
        *r = ((v.i % 2) != 0) == (t[0] == 'o');
    } else if (nm(t, "divisibleby")) {
        if (v.kind != JV_INT || x.kind != JV_INT || x.i == 0)
            FAIL("'divisibleby' needs integers");
        *r = v.i % x.i == 0;
    } else if (nm(t, "eq") || nm(t, "equalto") || nm(t, "==")) *r = jv_equal(&v, &x);
    else if (nm(t, "ne") || nm(t, "!=")) *r = !jv_equal(&v, &x);
    else if (nm(t, "lt") || nm(t, "lessthan") || nm(t, "<") || nm(t, "gt") || nm(t, "greaterthan") || nm(t, ">") ||
             nm(t, "le") || nm(t, "<=") || nm(t, "ge") || nm(t, ">=")) {
        bool ok = true;
        int k = jl_vcmp(&v, &x, &ok);
        if (!ok)
            FAIL("cannot compare %s with %s", jv_kind_name(&v), jv_kind_name(&x));
        bool lt = nm(t, "lt") || nm(t, "lessthan") || nm(t, "<"), gt = nm(t, "gt") || nm(t, "greaterthan") ||
                  nm(t, ">");
        *r = lt ? k < 0 : gt ? k > 0 : (t[0] == 'l' || t[0] == '<') ? k <= 0 : k >= 0;
    } else if (nm(t, "in")) {
        *r = false;
        if (x.kind == JV_LIST)
            for (size_t i = 0; i < x.l->n && !*r; i++)
                *r = jv_equal(&v, &x.l->v[i]);
        else if (x.kind == JV_STR && v.kind == JV_STR)
            *r = memmem(x.s->s, x.s->len, v.s->s, v.s->len) != NULL || v.s->len == 0;
        else if (x.kind == JV_DICT && v.kind == JV_STR)
            *r = jv_dict_get(x.d, v.s->s, v.s->len) != NULL;
    } else if (nm(t, "lower") || nm(t, "upper")) {
        *r = false;
        if (v.kind == JV_STR) {
            bool cased = false, ok = true;
            for (size_t i = 0; i < v.s->len; i++) {
                char ch = v.s->s[i];
                if (ch >= 'a' && ch <= 'z') { cased = true; ok &= t[0] == 'l'; }
                if (ch >= 'A' && ch <= 'Z') { cased = true; ok &= t[0] == 'u'; }
            }
            *r = cased && ok;
        }
    } else if (nm(t, "sameas")) {
        *r = v.kind == x.kind && (v.kind == JV_NONE || v.kind == JV_UNDEF ||
                                  (v.kind == JV_BOOL && v.b == x.b) || jv_equal(&v, &x));
        (void)d;
    } else {
        FAIL("unknown test '%.60s'", t);
    }
    return SP_OK;
}

static enum sp_status tojson(struct jctx *c, const struct jnode *n, struct jv v, const struct jargs *a,
                             struct jv *out)
{
    struct jv ind = jx_arg(a, 0, "indent"), sk = jx_arg(a, SIZE_MAX, "sort_keys");
    int indent = ind.kind == JV_INT ? (int)(ind.i < 0 ? 0 : ind.i > 64 ? 64 : ind.i) : -1;
    struct sp_buf b = {0};
    b.limit = c->out_cap;
    int rc = jv_tojson(&b, &v, indent, jv_truthy(&sk), 0);
    if (rc == SP_ERR_INVALID) {
        sp_buf_free(&b);
        FAIL("object of type %s is not JSON serializable", jv_kind_name(&v));
    }
    enum sp_status st = rc ? jx_nomem(c, n) : jl_mkstr(c, n, b.data ? b.data : "", b.len, jl_has_taint(&v, 0), out);
    sp_buf_free(&b);
    return st;
}

static enum sp_status seq_of(struct jctx *c, const struct jnode *n, struct jv v, struct jlist **l)
{
    if (v.kind == JV_LIST) {
        *l = v.l;
        return SP_OK;
    }
    if (v.kind == JV_UNDEF || v.kind == JV_NONE) {
        if (v.kind == JV_NONE)
            FAIL("'NoneType' object is not iterable");
        *l = jl_new_list(c, 0);
        return *l ? SP_OK : jx_nomem(c, n);
    }
    if (v.kind == JV_DICT && !v.d->ns) {
        *l = jl_new_list(c, v.d->n);
        if (!*l)
            return jx_nomem(c, n);
        for (size_t i = 0; i < v.d->n; i++)
            (*l)->v[i] = jv_str(v.d->k[i]);
        (*l)->n = v.d->n;
        return SP_OK;
    }
    if (v.kind == JV_STR) {
        size_t cnt = jv_utf8_len(v.s->s, v.s->len);
        *l = jl_new_list(c, cnt);
        if (!*l)
            return jx_nomem(c, n);
        for (size_t i = 0, b = 0; i < cnt; i++) {
            size_t e = jv_utf8_off(v.s->s, v.s->len, (int64_t)i + 1);
            struct jstr *s = jv_substr(c->ar, v.s, b, e - b);
            if (!s)
                return jx_nomem(c, n);
            (*l)->v[i] = jv_str(s);
            b = e;
        }
        (*l)->n = cnt;
        return SP_OK;
    }
    FAIL("'%s' object is not iterable", jv_kind_name(&v));
}

/* select / reject / selectattr / rejectattr */
static enum sp_status select_items(struct jctx *c, const struct jnode *n, struct jlist *l, const struct jargs *a,
                                   bool attr, bool keep, struct jv *out)
{
    struct jv an = jx_arg(a, 0, NULL);
    if (attr && an.kind != JV_STR)
        FAIL("selectattr/rejectattr need an attribute name");
    struct jv tn = jx_arg(a, attr ? 1 : 0, NULL);
    struct jargs targs;
    shift_args(a, attr ? 2 : 1, &targs);
    struct jlist *r = jl_new_list(c, l->n);
    if (!r)
        return jx_nomem(c, n);
    for (size_t i = 0; i < l->n; i++) {
        struct jv it = attr ? jl_attr_path(l->v[i], an.s) : l->v[i];
        bool ok;
        if (tn.kind == JV_STR) {
            enum sp_status st = jx_test(c, n, tn.s->s, it, &targs, &ok);
            if (st != SP_OK)
                return st;
        } else {
            ok = jv_truthy(&it);
        }
        if (ok == keep)
            r->v[r->n++] = l->v[i];
    }
    *out = jl_list_v(r);
    return SP_OK;
}

static void sort_list(struct jlist *l, const struct jstr *attr, bool rev, bool *ok)
{
    for (size_t i = 1; i < l->n; i++) /* stable insertion sort */
        for (size_t j = i; j > 0; j--) {
            struct jv x = attr ? jl_attr_path(l->v[j - 1], attr) : l->v[j - 1];
            struct jv y = attr ? jl_attr_path(l->v[j], attr) : l->v[j];
            int k = jl_vcmp(&x, &y, ok);
            if (!*ok)
                return;
            if (rev ? k >= 0 : k <= 0)
                break;
            struct jv t = l->v[j];
            l->v[j] = l->v[j - 1];
            l->v[j - 1] = t;
        }
}

static enum sp_status copy_list(struct jctx *c, const struct jnode *n, struct jlist *l, struct jlist **out)
{
    *out = jl_new_list(c, l->n);
    if (!*out)
        return jx_nomem(c, n);
    if (l->n)
        memcpy((*out)->v, l->v, l->n * sizeof *l->v);
    (*out)->n = l->n;
    return SP_OK;
}

enum sp_status jx_filter(struct jctx *c, const struct jnode *n, const char *f, struct jv v, const struct jargs *a,
                         struct jv *out)
{
    struct jv a0 = jx_arg(a, 0, NULL);
    struct jlist *l = NULL;
    enum sp_status st;
    if (nm(f, "default") || nm(f, "d")) {
        struct jv dv = jx_arg(a, 0, "default_value"), bo = jx_arg(a, 1, "boolean");
        bool use = v.kind == JV_UNDEF || (jv_truthy(&bo) && !jv_truthy(&v));
        if (use && dv.kind == JV_UNDEF)
            return jl_mkstr(c, n, "", 0, false, out); /* default_value is '' */
        *out = use ? dv : v;
        return SP_OK;
    }
    if (nm(f, "length") || nm(f, "count")) {
        size_t k = v.kind == JV_STR ? jv_utf8_len(v.s->s, v.s->len) : v.kind == JV_LIST ? v.l->n
                   : v.kind == JV_DICT ? v.d->n : 0;
        if (v.kind != JV_STR && v.kind != JV_LIST && v.kind != JV_DICT && v.kind != JV_UNDEF)
            FAIL("object of type %s has no length", jv_kind_name(&v));
        *out = jv_int((int64_t)k);
        return SP_OK;
    }
    if (nm(f, "safe") || nm(f, "list") || nm(f, "string") || nm(f, "trim") || nm(f, "upper") ||
        nm(f, "lower") || nm(f, "title") || nm(f, "capitalize")) {
        if (nm(f, "safe")) {
            *out = v;
            return SP_OK;
        }
        if (nm(f, "list")) {
            if ((st = seq_of(c, n, v, &l)) != SP_OK || (st = copy_list(c, n, l, &l)) != SP_OK)
                return st;
            *out = jl_list_v(l);
            return SP_OK;
        }
        struct jv s;
        if ((st = jl_to_str(c, n, v, &s)) != SP_OK)
            return st;
        if (nm(f, "string")) {
            *out = s;
            return SP_OK;
        }
        if (nm(f, "trim"))
            return jl_strip(c, n, s.s, a0.kind == JV_STR ? a0.s : NULL, 3, out);
        return jl_casemap(c, n, s.s, f[0] == 'u' ? 1 : f[0] == 'l' ? 2 : f[0] == 't' ? 3 : 4, out);
    }
    if (nm(f, "tojson"))
        return tojson(c, n, v, a, out);
    if (nm(f, "items")) {
        if (v.kind == JV_UNDEF) {
            *out = jl_list_v(jl_new_list(c, 0));
            return out->l ? SP_OK : jx_nomem(c, n);
        }
        if (v.kind != JV_DICT)
            FAIL("items filter needs a mapping");
        bool handled;
        struct jargs none = {0};
        return jx_method(c, n, v, "items", &none, out, &handled);
    }
    if (nm(f, "dictsort")) {
        if (v.kind != JV_DICT)
            FAIL("dictsort needs a mapping");
        bool handled, ok = true;
        struct jargs none = {0};
        if ((st = jx_charge(c, n, (uint64_t)v.d->n * v.d->n)) != SP_OK ||
            (st = jx_method(c, n, v, "items", &none, out, &handled)) != SP_OK)
            return st;
        for (size_t i = 1; i < out->l->n; i++)
            for (size_t j = i; j > 0; j--) {
                struct jv x = out->l->v[j - 1].l->v[0], y = out->l->v[j].l->v[0];
                if (jl_vcmp(&x, &y, &ok) <= 0)
                    break;
                struct jv t = out->l->v[j];
                out->l->v[j] = out->l->v[j - 1];
                out->l->v[j - 1] = t;
            }
        return SP_OK;
    }
    if (nm(f, "join")) {
        struct jv sep = jx_arg(a, 0, "d"), at = jx_arg(a, 1, "attribute");
        if ((st = seq_of(c, n, v, &l)) != SP_OK)
            return st;
        struct jsb sb = {0};
        sb.b.limit = c->out_cap;
        int rc = 0;
        for (size_t i = 0; i < l->n && !rc; i++) {
            if (i && sep.kind == JV_STR)
                rc = jsb_add_str(&sb, sep.s);
            struct jv it = at.kind == JV_STR ? jl_attr_path(l->v[i], at.s) : l->v[i];
            if (!rc)
                rc = jv_to_sb(&sb, &it, false);
        }
        return jl_take(c, n, &sb, rc, out);
    }
    if (nm(f, "first") || nm(f, "last")) {
        if ((st = seq_of(c, n, v, &l)) != SP_OK)
            return st;
        *out = l->n ? l->v[f[0] == 'f' ? 0 : l->n - 1] : jv_undef();
        return SP_OK;
    }
    if (nm(f, "reverse")) {
        if (v.kind == JV_STR) {
            struct jsb sb = {0};
            int rc = 0;
            for (size_t e = v.s->len; e > 0 && !rc;) {
                size_t b = e - 1;
                while (b > 0 && ((unsigned char)v.s->s[b] & 0xC0) == 0x80)
                    b--;
                rc = jsb_add(&sb, v.s->s + b, e - b, v.s->n_taint > 0);
                e = b;
            }
            return jl_take(c, n, &sb, rc, out);
        }
        if ((st = seq_of(c, n, v, &l)) != SP_OK || (st = copy_list(c, n, l, &l)) != SP_OK)
            return st;
        for (size_t i = 0; i < l->n / 2; i++) {
            struct jv t = l->v[i];
            l->v[i] = l->v[l->n - 1 - i];
            l->v[l->n - 1 - i] = t;
        }
        *out = jl_list_v(l);
        return SP_OK;
    }
    if (nm(f, "sort") || nm(f, "unique") || nm(f, "min") || nm(f, "max") || nm(f, "sum")) {
        struct jv at = jx_arg(a, SIZE_MAX, "attribute");
        if ((st = seq_of(c, n, v, &l)) != SP_OK || (st = copy_list(c, n, l, &l)) != SP_OK ||
            (st = jx_charge(c, n, (uint64_t)l->n * l->n)) != SP_OK) /* insertion sort / unique */
            return st;
        bool ok = true;
        if (nm(f, "sum")) {
            struct jv acc = jx_arg(a, SIZE_MAX, "start");
            if (acc.kind == JV_UNDEF)
                acc = jv_int(0);
            for (size_t i = 0; i < l->n; i++) {
                struct jv it = at.kind == JV_STR ? jl_attr_path(l->v[i], at.s) : l->v[i];
                if (acc.kind == JV_INT && it.kind == JV_INT)
                    acc.i += it.i;
                else if ((acc.kind == JV_INT || acc.kind == JV_FLOAT) && (it.kind == JV_INT || it.kind == JV_FLOAT))
                    acc = jv_float((acc.kind == JV_INT ? (double)acc.i : acc.f) +
                                   (it.kind == JV_INT ? (double)it.i : it.f));
                else
                    FAIL("sum() needs numbers");
            }
            *out = acc;
            return SP_OK;
        }
        if (nm(f, "unique")) {
            struct jlist *r = jl_new_list(c, l->n);
            if (!r)
                return jx_nomem(c, n);
            for (size_t i = 0; i < l->n; i++) {
                bool dup = false;
                for (size_t j = 0; j < r->n && !dup; j++)
                    dup = jv_equal(&r->v[j], &l->v[i]);
                if (!dup)
                    r->v[r->n++] = l->v[i];
            }
            *out = jl_list_v(r);
            return SP_OK;
        }
        bool rev = nm(f, "sort") && jv_truthy(&a0);
        struct jv rv = jx_arg(a, SIZE_MAX, "reverse");
        if (rv.kind != JV_UNDEF)
            rev = jv_truthy(&rv);
        sort_list(l, at.kind == JV_STR ? at.s : NULL, rev, &ok);
        if (!ok)
            FAIL("cannot sort values of different types");
        if (nm(f, "sort"))
            *out = jl_list_v(l);
        else
            *out = l->n ? l->v[f[1] == 'i' ? 0 : l->n - 1] : jv_undef();
        return SP_OK;
    }
    if (nm(f, "map")) {
        if ((st = seq_of(c, n, v, &l)) != SP_OK)
            return st;
        struct jv at = jx_arg(a, SIZE_MAX, "attribute"), dflt = jx_arg(a, SIZE_MAX, "default");
        struct jargs fargs;
        shift_args(a, 1, &fargs);
        if (at.kind != JV_STR && a0.kind != JV_STR)
            FAIL("map needs a filter name or attribute=");
        struct jlist *r = jl_new_list(c, l->n);
        if (!r)
            return jx_nomem(c, n);
        for (size_t i = 0; i < l->n; i++) {
            if (at.kind == JV_STR) {
                r->v[i] = jl_attr_path(l->v[i], at.s);
                if (r->v[i].kind == JV_UNDEF && dflt.kind != JV_UNDEF)
                    r->v[i] = dflt;
            } else if ((st = jx_filter(c, n, a0.s->s, l->v[i], &fargs, &r->v[i])) != SP_OK) {
                return st;
            }
        }
        r->n = l->n;
        *out = jl_list_v(r);
        return SP_OK;
    }
    if (nm(f, "select") || nm(f, "reject") || nm(f, "selectattr") || nm(f, "rejectattr")) {
        if ((st = seq_of(c, n, v, &l)) != SP_OK)
            return st;
        return select_items(c, n, l, a, strlen(f) > 6, f[0] == 's', out);
    }
    if (nm(f, "replace")) {
        struct jv s;
        if ((st = jl_to_str(c, n, v, &s)) != SP_OK)
            return st;
        return jl_replace(c, n, s.s, a0, jx_arg(a, 1, "new"), jl_int_arg(jx_arg(a, 2, "count"), -1), out);
    }
    if (nm(f, "int") || nm(f, "float") || nm(f, "abs") || nm(f, "round")) {
        if (nm(f, "int") || nm(f, "float")) {
            double d = 0;
            if (v.kind == JV_INT || v.kind == JV_BOOL)
                d = v.kind == JV_INT ? (double)v.i : v.b;
            else if (v.kind == JV_FLOAT)
                d = v.f;
            else if (v.kind == JV_STR && !sp_parse_double(v.s->s, &d))
                d = 0;
            if (f[0] == 'i')
                *out = v.kind == JV_INT ? v : jv_int(fabs(d) < 9.2e18 ? (int64_t)d : 0);
            else
                *out = jv_float(d);
            return SP_OK;
        }
        if (v.kind == JV_INT) {
            *out = f[0] == 'a' && v.i < 0 && v.i != INT64_MIN ? jv_int(-v.i) : v;
            if (f[0] == 'r')
                *out = jv_float((double)v.i);
            return SP_OK;
        }
        if (v.kind != JV_FLOAT)
            FAIL("%s needs a number", f);
        if (f[0] == 'a') {
            *out = jv_float(fabs(v.f));
        } else {
            int64_t prec = jl_int_arg(jx_arg(a, 0, "precision"), 0);
            double p = pow(10.0, (double)(prec < 0 ? 0 : prec > 15 ? 15 : prec));
            *out = jv_float(nearbyint(v.f * p) / p);
        }
        return SP_OK;
    }
    if (nm(f, "indent")) {
        struct jv s;
        if ((st = jl_to_str(c, n, v, &s)) != SP_OK)
            return st;
        struct jv w = jx_arg(a, 0, "width"), first = jx_arg(a, 1, "first"), blank = jx_arg(a, 2, "blank");
        struct jsb pad = {0}, sb = {0};
        int rc = 0;
        if (w.kind == JV_STR)
            rc = jsb_add_str(&pad, w.s);
        else
            for (int64_t i = 0; i < jl_int_arg(w, 4) && i < 256 && !rc; i++)
                rc = jsb_add(&pad, " ", 1, false);
        bool line_start = jv_truthy(&first);
        for (size_t i = 0; i < s.s->len && !rc; i++) {
            if (line_start && (s.s->s[i] != '\n' || jv_truthy(&blank)))
                rc = sp_buf_append(&sb.b, pad.b.data ? pad.b.data : "", pad.b.len);
            line_start = s.s->s[i] == '\n';
            if (!rc)
                rc = jsb_add(&sb, s.s->s + i, 1, s.s->n_taint > 0);
        }
        jsb_free(&pad);
        return jl_take(c, n, &sb, rc, out);
    }
    if (nm(f, "wordcount")) {
        struct jv s, parts;
        if ((st = jl_to_str(c, n, v, &s)) != SP_OK || (st = jl_split(c, n, s.s, jv_none(), -1, &parts)) != SP_OK)
            return st;
        *out = jv_int((int64_t)parts.l->n);
        return SP_OK;
    }
    if (nm(f, "escape") || nm(f, "e")) {
        struct jv s;
        if ((st = jl_to_str(c, n, v, &s)) != SP_OK)
            return st;
        struct jsb sb = {0};
        int rc = 0;
        bool t = s.s->n_taint > 0;
        for (size_t i = 0; i < s.s->len && !rc; i++) {
            char ch = s.s->s[i];
            const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;"
                            : ch == '\'' ? "&#39;" : NULL;
            rc = e ? jsb_add(&sb, e, strlen(e), t) : jsb_add(&sb, &ch, 1, t);
        }
        return jl_take(c, n, &sb, rc, out);
    }
    if (nm(f, "attr")) {
        *out = a0.kind == JV_STR ? jl_attr_path(v, a0.s) : jv_undef();
        return SP_OK;
    }
    if (nm(f, "format")) {
        if (v.kind != JV_STR)
            FAIL("format needs a format string");
        struct jsb sb = {0};
        int rc = 0;
        size_t k = 0;
        for (size_t i = 0; i < v.s->len && !rc; i++) {
            char ch = v.s->s[i];
            if (ch == '%' && i + 1 < v.s->len && v.s->s[i + 1] == '%') {
                rc = jsb_add(&sb, "%", 1, false);
                i++;
            } else if (ch == '%' && i + 1 < v.s->len && strchr("sdr", v.s->s[i + 1])) {
                struct jv x = jx_arg(a, k++, NULL);
                if (v.s->s[i + 1] == 'd' && x.kind == JV_FLOAT)
                    x = jv_int((int64_t)x.f);
                rc = jv_to_sb(&sb, &x, v.s->s[i + 1] == 'r');
                i++;
            } else {
                rc = jsb_add(&sb, &ch, 1, v.s->n_taint > 0);
            }
        }
        if (k > npos(a) && !rc) {
            jsb_free(&sb);
            FAIL("not enough arguments for format string");
        }
        return jl_take(c, n, &sb, rc, out);
    }
    FAIL("unknown filter '%.60s'", f);
}
