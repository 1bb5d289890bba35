/* tok_jinja_eval.c - evaluates a parsed chat template: statements write to
 * a taint-keeping string builder, expressions produce values (tok_jinja.h).
 *
 * Scoping follows Jinja2: a for-loop body and a macro body get their own
 * frame (so "set" inside a loop does not leak out, hence namespace()), "if"
 * does not. Undefined names and missing keys are Undefined (prints as "",
 * false, iterates as empty); using one in arithmetic or taking its attribute
 * is an error, as in Jinja2. Bounds: steps (JINJA_MAX_STEPS), macro depth,
 * range() length, output bytes and the arena's byte cap; every error names
 * the template line and column. Also the public entry points tok_tmpl_*. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tok/tok_jinja.h"

enum sp_status jx_fail(struct jctx *c, const struct jnode *n, enum sp_status st, const char *fmt, ...)
{
    if (c->st != SP_OK)
        return c->st;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->st = st;
    if (n)
        sp_err_set(c->err, st, "chat template error at line %u, column %u: %s", n->line, n->col, msg);
    else
        sp_err_set(c->err, st, "chat template error: %s", msg);
    return st;
}

enum sp_status jx_charge(struct jctx *c, const struct jnode *n, uint64_t units)
{
    if (c->st != SP_OK)
        return c->st;
    if (units > JINJA_MAX_STEPS || (c->steps += units) > JINJA_MAX_STEPS)
        return jx_fail(c, n, SP_ERR_LIMIT, "the template ran too long (over %u steps)", JINJA_MAX_STEPS);
    return SP_OK;
}

enum sp_status jx_nomem(struct jctx *c, const struct jnode *n)
{
    return jx_fail(c, n, SP_ERR_LIMIT, "the template needs more memory than allowed (or out of memory)");
}

struct jv jx_arg(const struct jargs *a, size_t pos, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->kw[i] && name && !strcmp(a->kw[i], name))
            return a->v[i];
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++)
        if (!a->kw[i] && k++ == pos)
            return a->v[i];
    return jv_undef();
}


enum sp_status jx_step(struct jctx *c, const struct jnode *n)
{
    if (c->st != SP_OK)
        return c->st;
    if (++c->steps > JINJA_MAX_STEPS)
        return jx_fail(c, n, SP_ERR_LIMIT, "the template ran too long (over %u steps)", JINJA_MAX_STEPS);
    return SP_OK;
}

struct jv *jx_lookup(struct jctx *c, const char *name)
{
    for (struct jframe *f = c->top; f; f = f->parent) {
        struct jv *v = jv_dict_get(&f->vars, name, strlen(name));
        if (v)
            return v;
    }
    return NULL;
}

enum sp_status jx_assign(struct jctx *c, const struct jnode *n, const char *name, struct jv v)
{
    struct jdict *d = &c->top->vars;
    size_t len = strlen(name);
    struct jv *o = jv_dict_get(d, name, len);
    if (o) {
        *o = v;
        return SP_OK;
    }
    /* a loop frame is emptied each iteration: reuse the key left in the next slot */
    if (d->n < d->cap && d->k[d->n] && d->k[d->n]->len == len && !memcmp(d->k[d->n]->s, name, len)) {
        d->v[d->n++] = v;
        return SP_OK;
    }
    struct jstr *k = jv_newstr(c->ar, name, len, false);
    if (!k || jv_dict_set(c->ar, &c->top->vars, k, v))
        return jx_nomem(c, n);
    return SP_OK;
}

enum sp_status jx_emit(struct jctx *c, const struct jnode *n, const struct jv *v)
{
    int rc = jv_to_sb(c->out, v, false);
    if (rc == SP_ERR_LIMIT || c->out->b.len > c->out_cap)
        return jx_fail(c, n, SP_ERR_LIMIT, "the rendered prompt is over %zu bytes", c->out_cap);
    return rc ? jx_nomem(c, n) : SP_OK;
}

static enum sp_status eval_args(struct jctx *c, const struct jnode *n, struct jargs *a)
{
    a->n = 0;
    for (size_t i = 0; i < n->n_kids && i < SP_ARRAY_LEN(a->v); i++) {
        enum sp_status st = jx_eval(c, n->kids[i], &a->v[i]);
        if (st != SP_OK)
            return st;
        a->kw[i] = n->kids[i]->kw;
        a->n++;
    }
    return SP_OK;
}

/* ---- macros and builtins */
enum sp_status jx_call_macro(struct jctx *c, const struct jnode *n, const struct jnode *m,
                                 const struct jargs *args, const struct jnode *caller_body, struct jv *out)
{
    if (c->call_depth >= JINJA_MAX_CALL_DEPTH)
        return jx_fail(c, n, SP_ERR_LIMIT, "macro calls nested too deeply (limit %d)", JINJA_MAX_CALL_DEPTH);
    struct jframe fr = {.parent = c->root};
    struct jframe *saved_top = c->top;
    struct jsb *saved_out = c->out;
    struct jsb buf = {0};
    buf.b.limit = c->out_cap;
    enum sp_status st = SP_OK;
    c->top = &fr;
    size_t npos = 0;
    for (size_t i = 0; i < m->n_kids && st == SP_OK; i++) {
        const struct jnode *prm = m->kids[i];
        struct jv v = jx_arg(args, SIZE_MAX, prm->name);
        if (v.kind == JV_UNDEF) {
            size_t k = 0;
            for (size_t j = 0; j < args->n; j++)
                if (!args->kw[j] && k++ == npos) {
                    v = args->v[j];
                    npos++;
                    break;
                }
        }
        if (v.kind == JV_UNDEF && prm->a)
            st = jx_eval(c, prm->a, &v);
        if (st == SP_OK)
            st = jx_assign(c, n, prm->name, v);
    }
    if (st == SP_OK && caller_body) {
        struct jnode *cm = ja_alloc(c->ar, sizeof *cm);
        if (!cm) {
            st = jx_nomem(c, n);
        } else {
            cm->kind = N_MACRO;
            cm->body = (struct jnode *)caller_body;
            cm->line = n->line;
            cm->col = n->col;
            struct jv cv = {.kind = JV_MACRO};
            cv.mac = cm;
            st = jx_assign(c, n, "caller", cv);
        }
    }
    c->call_depth++;
    c->out = &buf;
    int flow = 0;
    if (st == SP_OK)
        st = jx_exec(c, m->body, &flow);
    c->out = saved_out;
    c->call_depth--;
    c->top = saved_top;
    if (st == SP_OK) {
        struct jstr *s = jv_sb_take(c->ar, &buf);
        if (!s)
            st = jx_nomem(c, n);
        else
            *out = jv_str(s);
    }
    jsb_free(&buf);
    return st;
}

static enum sp_status builtin(struct jctx *c, const struct jnode *n, struct jv fn, const struct jargs *a,
                              struct jv *out)
{
    switch (fn.fn) {
    case JF_RANGE: {
        int64_t v[3] = {0, 0, 1};
        size_t np = 0;
        for (size_t i = 0; i < a->n; i++) {
            if (a->v[i].kind != JV_INT || np >= 3)
                return jx_fail(c, n, SP_ERR_INVALID, "range() takes 1 to 3 integers");
            v[np++] = a->v[i].i;
        }
        if (np == 0)
            return jx_fail(c, n, SP_ERR_INVALID, "range() takes 1 to 3 integers");
        int64_t start = np == 1 ? 0 : v[0], stop = np == 1 ? v[0] : v[1], stp = np == 3 ? v[2] : 1;
        if (stp == 0)
            return jx_fail(c, n, SP_ERR_INVALID, "range() step must not be zero");
        __int128 cnt = 0; /* no overflow for any int64 bounds */
        if (stp > 0 && stop > start)
            cnt = ((__int128)stop - start - 1) / stp + 1;
        else if (stp < 0 && stop < start)
            cnt = ((__int128)start - stop - 1) / -(__int128)stp + 1;
        if (cnt > JINJA_MAX_RANGE)
            return jx_fail(c, n, SP_ERR_LIMIT, "range() is too long (limit %d)", JINJA_MAX_RANGE);
        struct jlist *l = ja_alloc(c->ar, sizeof *l);
        if (!l || (cnt && !(l->v = ja_alloc(c->ar, (size_t)cnt * sizeof *l->v))))
            return jx_nomem(c, n);
        l->n = (size_t)cnt;
        for (int64_t i = 0; i < (int64_t)cnt; i++)
            l->v[i] = jv_int((int64_t)((__int128)start + (__int128)i * stp));
        out->kind = JV_LIST;
        out->l = l;
        return SP_OK;
    }
    case JF_NAMESPACE:
    case JF_DICT: {
        struct jdict *d = ja_alloc(c->ar, sizeof *d);
        if (!d)
            return jx_nomem(c, n);
        d->ns = fn.fn == JF_NAMESPACE;
        for (size_t i = 0; i < a->n; i++) {
            if (!a->kw[i]) {
                if (a->v[i].kind != JV_DICT)
                    return jx_fail(c, n, SP_ERR_INVALID, "namespace()/dict() take a mapping or keyword arguments");
                for (size_t k = 0; k < a->v[i].d->n; k++)
                    if (jv_dict_set(c->ar, d, a->v[i].d->k[k], a->v[i].d->v[k]))
                        return jx_nomem(c, n);
                continue;
            }
            struct jstr *k = jv_newstr(c->ar, a->kw[i], strlen(a->kw[i]), false);
            if (!k || jv_dict_set(c->ar, d, k, a->v[i]))
                return jx_nomem(c, n);
        }
        out->kind = JV_DICT;
        out->d = d;
        return SP_OK;
    }
    case JF_RAISE: {
        struct jv m = jx_arg(a, 0, NULL);
        return jx_fail(c, n, SP_ERR_INVALID, "%.300s", m.kind == JV_STR ? m.s->s : "raise_exception() called");
    }
    case JF_STRFTIME: {
        struct jv f = jx_arg(a, 0, NULL);
        if (f.kind != JV_STR)
            return jx_fail(c, n, SP_ERR_INVALID, "strftime_now() takes a format string");
        time_t t = time(NULL);
        struct tm tm;
        char buf[256];
        localtime_r(&t, &tm);
        size_t k = strftime(buf, sizeof buf, f.s->s, &tm);
        struct jstr *s = jv_newstr(c->ar, buf, k, false);
        if (!s)
            return jx_nomem(c, n);
        *out = jv_str(s);
        return SP_OK;
    }
    case JF_CYCLE: {
        size_t np = 0;
        for (size_t i = 0; i < a->n; i++)
            np += !a->kw[i];
        if (!np)
            return jx_fail(c, n, SP_ERR_INVALID, "loop.cycle() needs arguments");
        *out = jx_arg(a, (size_t)(fn.i % (int64_t)np), NULL);
        return SP_OK;
    }
    }
    return jx_fail(c, n, SP_ERR_INVALID, "not callable");
}

enum sp_status jx_call_value(struct jctx *c, const struct jnode *n, struct jv fn, const struct jargs *args,
                             struct jv *out)
{
    if (fn.kind == JV_MACRO)
        return jx_call_macro(c, n, fn.mac, args, NULL, out);
    if (fn.kind == JV_FUNC)
        return builtin(c, n, fn, args, out);
    return jx_fail(c, n, SP_ERR_INVALID, "'%s' object is not callable", jv_kind_name(&fn));
}

static const struct { const char *name; int fn; } builtins[] = {
    {"range", JF_RANGE}, {"namespace", JF_NAMESPACE}, {"raise_exception", JF_RAISE},
    {"strftime_now", JF_STRFTIME}, {"dict", JF_DICT},
};

/* ---- expressions */
static enum sp_status get_attr(struct jctx *c, const struct jnode *n, struct jv obj, const char *name,
                               size_t len, struct jv *out)
{
    *out = jv_undef();
    if (obj.kind == JV_UNDEF)
        return jx_fail(c, n, SP_ERR_INVALID, "'%.*s' of an undefined value", (int)SP_MIN(len, 60), name);
    if (obj.kind == JV_DICT) {
        struct jv *v = jv_dict_get(obj.d, name, len);
        if (v)
            *out = *v;
    }
    return SP_OK;
}

static enum sp_status get_index(struct jctx *c, const struct jnode *n, struct jv obj, struct jv key,
                                struct jv *out)
{
    *out = jv_undef();
    if (obj.kind == JV_UNDEF)
        return jx_fail(c, n, SP_ERR_INVALID, "subscript of an undefined value");
    if (key.kind == JV_STR)
        return get_attr(c, n, obj, key.s->s, key.s->len, out);
    if (key.kind != JV_INT && key.kind != JV_BOOL)
        return SP_OK;
    int64_t i = key.kind == JV_INT ? key.i : key.b;
    if (obj.kind == JV_LIST) {
        if (i < 0)
            i += (int64_t)obj.l->n;
        if (i >= 0 && (size_t)i < obj.l->n)
            *out = obj.l->v[i];
    } else if (obj.kind == JV_STR) {
        int64_t len = (int64_t)jv_utf8_len(obj.s->s, obj.s->len);
        if (i < 0)
            i += len;
        if (i >= 0 && i < len) {
            size_t b = jv_utf8_off(obj.s->s, obj.s->len, i), e = jv_utf8_off(obj.s->s, obj.s->len, i + 1);
            struct jstr *s = jv_substr(c->ar, obj.s, b, e - b);
            if (!s)
                return jx_nomem(c, n);
            *out = jv_str(s);
        }
    }
    return SP_OK;
}

static enum sp_status slice(struct jctx *c, const struct jnode *n, struct jv obj, struct jv *out)
{
    struct jv pv[3] = {jv_none(), jv_none(), jv_none()};
    const struct jnode *pn[3] = {n->b, n->c, n->body};
    for (int i = 0; i < 3; i++) {
        if (pn[i] && jx_eval(c, pn[i], &pv[i]) != SP_OK)
            return c->st;
        if (pv[i].kind != JV_NONE && pv[i].kind != JV_INT)
            return jx_fail(c, n, SP_ERR_INVALID, "slice indices must be integers");
    }
    if (obj.kind != JV_LIST && obj.kind != JV_STR)
        return jx_fail(c, n, SP_ERR_INVALID, "cannot slice a %s", jv_kind_name(&obj));
    int64_t len = obj.kind == JV_LIST ? (int64_t)obj.l->n : (int64_t)jv_utf8_len(obj.s->s, obj.s->len);
    int64_t stp = pv[2].kind == JV_INT ? pv[2].i : 1;
    if (stp == 0)
        return jx_fail(c, n, SP_ERR_INVALID, "slice step cannot be zero");
    int64_t lo = stp > 0 ? 0 : -1, hi = stp > 0 ? len : len - 1;
    int64_t b = stp > 0 ? lo : hi, e = stp > 0 ? hi : lo;
    if (pv[0].kind == JV_INT) {
        b = pv[0].i < 0 ? pv[0].i + len : pv[0].i;
        b = b < lo ? lo : b > hi ? hi : b;
    }
    if (pv[1].kind == JV_INT) {
        e = pv[1].i < 0 ? pv[1].i + len : pv[1].i;
        e = e < lo ? lo : e > hi ? hi : e;
    }
    /* element count, then index k is b + k * stp (no overflow: |b|, |e| <= len) */
    size_t cnt = 0;
    if (stp > 0 && e > b)
        cnt = (size_t)((e - b - 1) / stp + 1);
    else if (stp < 0 && e < b)
        cnt = (size_t)((b - e - 1) / (stp == INT64_MIN ? INT64_MAX : -stp) + 1);
    if (obj.kind == JV_STR && stp == 1) {
        size_t ob = jv_utf8_off(obj.s->s, obj.s->len, b), oe = jv_utf8_off(obj.s->s, obj.s->len, e);
        struct jstr *s = jv_substr(c->ar, obj.s, ob, oe > ob ? oe - ob : 0);
        if (!s)
            return jx_nomem(c, n);
        *out = jv_str(s);
        return SP_OK;
    }
    if (obj.kind == JV_STR) {
        struct jsb sb = {0};
        int rc = 0;
        for (size_t k = 0; !rc && k < cnt; k++) {
            int64_t i = b + (int64_t)k * stp;
            size_t ob = jv_utf8_off(obj.s->s, obj.s->len, i), oe = jv_utf8_off(obj.s->s, obj.s->len, i + 1);
            rc = jsb_add(&sb, obj.s->s + ob, oe - ob, obj.s->n_taint > 0);
        }
        struct jstr *s = rc ? NULL : jv_sb_take(c->ar, &sb);
        jsb_free(&sb);
        if (!s)
            return jx_nomem(c, n);
        *out = jv_str(s);
        return SP_OK;
    }
    struct jlist *l = ja_alloc(c->ar, sizeof *l);
    if (!l || (cnt && !(l->v = ja_alloc(c->ar, cnt * sizeof *l->v))))
        return jx_nomem(c, n);
    for (size_t k = 0; k < cnt; k++)
        l->v[l->n++] = obj.l->v[b + (int64_t)k * stp];
    out->kind = JV_LIST;
    out->l = l;
    return SP_OK;
}

static enum sp_status eval_call(struct jctx *c, const struct jnode *n, struct jv *out)
{
    struct jargs a;
    const struct jnode *f = n->a;
    enum sp_status st;
    if (f->kind == E_ATTR) {
        struct jv obj;
        if ((st = jx_eval(c, f->a, &obj)) != SP_OK || (st = eval_args(c, n, &a)) != SP_OK)
            return st;
        if (obj.kind == JV_STR || obj.kind == JV_LIST || (obj.kind == JV_DICT && !obj.d->ns)) {
            bool handled = false;
            st = jx_method(c, n, obj, f->name, &a, out, &handled);
            if (st != SP_OK || handled)
                return st;
        }
        struct jv fn;
        if ((st = get_attr(c, f, obj, f->name, strlen(f->name), &fn)) != SP_OK)
            return st;
        if (fn.kind == JV_UNDEF)
            return jx_fail(c, n, SP_ERR_INVALID, "%s has no method '%.60s'", jv_kind_name(&obj), f->name);
        return jx_call_value(c, n, fn, &a, out);
    }
    struct jv fn;
    if (f->kind == E_NAME && !jx_lookup(c, f->name)) {
        fn = jv_undef();
        for (size_t i = 0; i < SP_ARRAY_LEN(builtins); i++)
            if (!strcmp(f->name, builtins[i].name)) {
                fn.kind = JV_FUNC;
                fn.fn = builtins[i].fn;
            }
        if (fn.kind == JV_UNDEF)
            return jx_fail(c, n, SP_ERR_INVALID, "'%.60s' is undefined", f->name);
    } else if ((st = jx_eval(c, f, &fn)) != SP_OK) {
        return st;
    }
    if ((st = eval_args(c, n, &a)) != SP_OK)
        return st;
    return jx_call_value(c, n, fn, &a, out);
}

static enum sp_status eval_bin(struct jctx *c, const struct jnode *n, struct jv *out);

enum sp_status jx_eval(struct jctx *c, const struct jnode *n, struct jv *out)
{
    enum sp_status st = jx_step(c, n);
    if (st != SP_OK)
        return st;
    *out = jv_undef();
    struct jv x;
    switch (n->kind) {
    case E_LIT: *out = n->lit; return SP_OK;
    case E_NAME: {
        struct jv *v = jx_lookup(c, n->name);
        if (v) {
            *out = *v;
        } else {
            for (size_t i = 0; i < SP_ARRAY_LEN(builtins); i++)
                if (!strcmp(n->name, builtins[i].name)) {
                    out->kind = JV_FUNC;
                    out->fn = builtins[i].fn;
                }
        }
        return SP_OK;
    }
    case E_ATTR:
        if ((st = jx_eval(c, n->a, &x)) != SP_OK)
            return st;
        return get_attr(c, n, x, n->name, strlen(n->name), out);
    case E_INDEX: {
        struct jv k;
        if ((st = jx_eval(c, n->a, &x)) != SP_OK || (st = jx_eval(c, n->b, &k)) != SP_OK)
            return st;
        return get_index(c, n, x, k, out);
    }
    case E_SLICE:
        if ((st = jx_eval(c, n->a, &x)) != SP_OK)
            return st;
        return slice(c, n, x, out);
    case E_CALL: return eval_call(c, n, out);
    case E_FILTER: {
        struct jargs a;
        if ((st = jx_eval(c, n->a, &x)) != SP_OK || (st = eval_args(c, n, &a)) != SP_OK)
            return st;
        return jx_filter(c, n, n->name, x, &a, out);
    }
    case E_TEST: {
        struct jargs a;
        bool r = false;
        if ((st = jx_eval(c, n->a, &x)) != SP_OK || (st = eval_args(c, n, &a)) != SP_OK ||
            (st = jx_test(c, n, n->name, x, &a, &r)) != SP_OK)
            return st;
        *out = jv_bool(r != n->negate);
        return SP_OK;
    }
    case E_NEG:
    case E_POS:
        if ((st = jx_eval(c, n->a, &x)) != SP_OK)
            return st;
        if (x.kind == JV_BOOL)
            x = jv_int(x.b);
        if (x.kind == JV_INT && n->kind == E_NEG && x.i == INT64_MIN)
            return jx_fail(c, n, SP_ERR_RANGE, "integer overflow");
        if (x.kind == JV_INT)
            *out = jv_int(n->kind == E_NEG ? -x.i : x.i);
        else if (x.kind == JV_FLOAT)
            *out = jv_float(n->kind == E_NEG ? -x.f : x.f);
        else
            return jx_fail(c, n, SP_ERR_INVALID, "bad operand type for unary -: %s", jv_kind_name(&x));
        return SP_OK;
    case E_NOT:
        if ((st = jx_eval(c, n->a, &x)) != SP_OK)
            return st;
        *out = jv_bool(!jv_truthy(&x));
        return SP_OK;
    case E_AND:
    case E_OR:
        if ((st = jx_eval(c, n->a, &x)) != SP_OK)
            return st;
        if (jv_truthy(&x) == (n->kind == E_OR)) {
            *out = x;
            return SP_OK;
        }
        return jx_eval(c, n->b, out);
    case E_COND:
        if ((st = jx_eval(c, n->a, &x)) != SP_OK)
            return st;
        if (jv_truthy(&x))
            return jx_eval(c, n->b, out);
        return n->c ? jx_eval(c, n->c, out) : SP_OK;
    case E_LIST:
    case E_TUPLE: {
        struct jlist *l = ja_alloc(c->ar, sizeof *l);
        if (!l || (n->n_kids && !(l->v = ja_alloc(c->ar, n->n_kids * sizeof *l->v))))
            return jx_nomem(c, n);
        for (size_t i = 0; i < n->n_kids; i++)
            if ((st = jx_eval(c, n->kids[i], &l->v[i])) != SP_OK)
                return st;
        l->n = n->n_kids;
        out->kind = JV_LIST;
        out->l = l;
        return SP_OK;
    }
    case E_DICT: {
        struct jdict *d = ja_alloc(c->ar, sizeof *d);
        if (!d)
            return jx_nomem(c, n);
        for (size_t i = 0; i + 1 < n->n_kids; i += 2) {
            struct jv k, v;
            if ((st = jx_eval(c, n->kids[i], &k)) != SP_OK || (st = jx_eval(c, n->kids[i + 1], &v)) != SP_OK)
                return st;
            if (k.kind != JV_STR)
                return jx_fail(c, n, SP_ERR_UNSUPPORTED, "dict keys must be strings here");
            if (jv_dict_set(c->ar, d, k.s, v))
                return jx_nomem(c, n);
        }
        out->kind = JV_DICT;
        out->d = d;
        return SP_OK;
    }
    case E_BIN: return eval_bin(c, n, out);
    }
    return jx_fail(c, n, SP_ERR_INTERNAL, "bad expression node");
}

/* ---- operators */
static bool num_of(const struct jv *v, double *d, bool *is_int, int64_t *i)
{
    if (v->kind == JV_INT || v->kind == JV_BOOL) {
        *i = v->kind == JV_INT ? v->i : v->b;
        *d = (double)*i;
        *is_int = true;
        return true;
    }
    if (v->kind == JV_FLOAT) {
        *d = v->f;
        *is_int = false;
        return true;
    }
    return false;
}

static int cmp_str(const struct jstr *a, const struct jstr *b)
{
    size_t m = a->len < b->len ? a->len : b->len;
    int r = memcmp(a->s, b->s, m);
    return r ? r : a->len < b->len ? -1 : a->len > b->len;
}

static enum sp_status contains(struct jctx *c, const struct jnode *n, struct jv item, struct jv box, bool *r)
{
    *r = false;
    if (box.kind == JV_STR) {
        if (item.kind != JV_STR)
            return jx_fail(c, n, SP_ERR_INVALID, "'in <string>' requires a string on the left");
        *r = item.s->len == 0 || memmem(box.s->s, box.s->len, item.s->s, item.s->len) != NULL;
    } else if (box.kind == JV_LIST) {
        for (size_t i = 0; i < box.l->n && !*r; i++)
            *r = jv_equal(&item, &box.l->v[i]);
    } else if (box.kind == JV_DICT) {
        *r = item.kind == JV_STR && jv_dict_get(box.d, item.s->s, item.s->len);
    } else if (box.kind != JV_UNDEF) {
        return jx_fail(c, n, SP_ERR_INVALID, "argument of type %s is not iterable", jv_kind_name(&box));
    }
    return SP_OK;
}

static enum sp_status eval_bin(struct jctx *c, const struct jnode *n, struct jv *out)
{
    struct jv x, y;
    enum sp_status st;
    if ((st = jx_eval(c, n->a, &x)) != SP_OK || (st = jx_eval(c, n->b, &y)) != SP_OK)
        return st;
    double a = 0, b = 0;
    int64_t ia = 0, ib = 0;
    bool xi = false, yi = false;
    bool nums = num_of(&x, &a, &xi, &ia) && num_of(&y, &b, &yi, &ib);
    int op = n->op;
    switch (op) {
    case OP_EQ: *out = jv_bool(jv_equal(&x, &y)); return SP_OK;
    case OP_NE: *out = jv_bool(!jv_equal(&x, &y)); return SP_OK;
    case OP_IN:
    case OP_NOTIN: {
        bool r;
        if ((st = contains(c, n, x, y, &r)) != SP_OK)
            return st;
        *out = jv_bool(r == (op == OP_IN));
        return SP_OK;
    }
    case OP_LT: case OP_GT: case OP_LE: case OP_GE: {
        int r;
        if (nums)
            r = a < b ? -1 : a > b;
        else if (x.kind == JV_STR && y.kind == JV_STR)
            r = cmp_str(x.s, y.s);
        else
            return jx_fail(c, n, SP_ERR_INVALID, "cannot compare %s with %s", jv_kind_name(&x), jv_kind_name(&y));
        *out = jv_bool(op == OP_LT ? r < 0 : op == OP_GT ? r > 0 : op == OP_LE ? r <= 0 : r >= 0);
        return SP_OK;
    }
    case OP_CAT: {
        struct jsb sb = {0};
        int rc = jv_to_sb(&sb, &x, false);
        if (!rc)
            rc = jv_to_sb(&sb, &y, false);
        struct jstr *s = rc ? NULL : jv_sb_take(c->ar, &sb);
        jsb_free(&sb);
        if (!s)
            return jx_nomem(c, n);
        *out = jv_str(s);
        return SP_OK;
    }
    default: break;
    }
    if (x.kind == JV_UNDEF || y.kind == JV_UNDEF)
        return jx_fail(c, n, SP_ERR_INVALID, "arithmetic on an undefined value");
    if (op == OP_ADD && x.kind == JV_STR && y.kind == JV_STR) {
        struct jstr *s = jv_concat(c->ar, x.s, y.s);
        if (!s)
            return jx_nomem(c, n);
        *out = jv_str(s);
        return SP_OK;
    }
    if (op == OP_ADD && x.kind == JV_LIST && y.kind == JV_LIST) {
        struct jlist *l = ja_alloc(c->ar, sizeof *l);
        size_t cnt = x.l->n + y.l->n;
        if (!l || (cnt && !(l->v = ja_alloc(c->ar, cnt * sizeof *l->v))))
            return jx_nomem(c, n);
        if (x.l->n)
            memcpy(l->v, x.l->v, x.l->n * sizeof *l->v);
        if (y.l->n)
            memcpy(l->v + x.l->n, y.l->v, y.l->n * sizeof *l->v);
        l->n = cnt;
        out->kind = JV_LIST;
        out->l = l;
        return SP_OK;
    }
    if (op == OP_MUL && ((x.kind == JV_STR && y.kind == JV_INT) || (x.kind == JV_INT && y.kind == JV_STR))) {
        const struct jstr *s = x.kind == JV_STR ? x.s : y.s;
        int64_t k = x.kind == JV_INT ? x.i : y.i;
        if (s->len == 0 || k <= 0)
            k = 0;
        else if ((uint64_t)k > c->out_cap / s->len + 1)
            return jx_fail(c, n, SP_ERR_LIMIT, "string repetition over %zu bytes", c->out_cap);
        struct jsb sb = {0};
        sb.b.limit = c->out_cap;
        int rc = 0;
        for (int64_t i = 0; i < k && !rc; i++)
            rc = jsb_add_str(&sb, s);
        struct jstr *r = rc ? NULL : jv_sb_take(c->ar, &sb);
        jsb_free(&sb);
        if (!r)
            return jx_nomem(c, n);
        *out = jv_str(r);
        return SP_OK;
    }
    if (!nums)
        return jx_fail(c, n, SP_ERR_INVALID, "unsupported operand types: %s and %s", jv_kind_name(&x),
                       jv_kind_name(&y));
    bool ints = xi && yi;
    int64_t ir;
    switch (op) {
    case OP_ADD:
        if (ints && sp_add_i64(ia, ib, &ir)) { *out = jv_int(ir); return SP_OK; }
        *out = jv_float(a + b);
        return SP_OK;
    case OP_SUB:
        if (ints && !__builtin_sub_overflow(ia, ib, &ir)) { *out = jv_int(ir); return SP_OK; }
        *out = jv_float(a - b);
        return SP_OK;
    case OP_MUL:
        if (ints && sp_mul_i64(ia, ib, &ir)) { *out = jv_int(ir); return SP_OK; }
        *out = jv_float(a * b);
        return SP_OK;
    case OP_DIV:
        if (b == 0)
            return jx_fail(c, n, SP_ERR_INVALID, "division by zero");
        *out = jv_float(a / b);
        return SP_OK;
    case OP_FDIV:
    case OP_MOD:
        if (b == 0)
            return jx_fail(c, n, SP_ERR_INVALID, "division by zero");
        if (ints) {
            if (ia == INT64_MIN && ib == -1)
                return jx_fail(c, n, SP_ERR_RANGE, "integer overflow");
            int64_t q = ia / ib, r = ia % ib;
            if (r != 0 && ((r < 0) != (ib < 0))) {
                q--;
                r += ib;
            }
            *out = jv_int(op == OP_FDIV ? q : r);
        } else {
            double q = __builtin_floor(a / b);
            *out = jv_float(op == OP_FDIV ? q : a - q * b);
        }
        return SP_OK;
    case OP_POW:
        if (ints && ib >= 0) {
            int64_t r = 1, base = ia, e = ib; /* by squaring: at most 63 rounds */
            while (e > 0) {
                if ((e & 1) && !sp_mul_i64(r, base, &r))
                    return jx_fail(c, n, SP_ERR_RANGE, "integer overflow in **");
                e >>= 1;
                if (e > 0 && !sp_mul_i64(base, base, &base))
                    return jx_fail(c, n, SP_ERR_RANGE, "integer overflow in **");
            }
            *out = jv_int(r);
        } else {
            *out = jv_float(__builtin_pow(a, b));
        }
        return SP_OK;
    }
    return jx_fail(c, n, SP_ERR_INTERNAL, "bad operator");
}

