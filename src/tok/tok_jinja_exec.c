/* tok_jinja_exec.c - statements of the chat-template interpreter (output,
 * if, for with loop.* and else, set / namespace attributes / block set,
 * macro definitions, call blocks, break / continue) and the public entry
 * points tok_tmpl_parse / tok_tmpl_render (tok.h).
 *
 * A render builds its values in a fresh arena (capped from the context size)
 * and writes the prompt into a taint-keeping builder: the returned spans are
 * the byte ranges that came from strings of the context JSON (the request:
 * messages, tools, template kwargs), never from the template or vars. */
#include <string.h>

#include "tok/tok_jinja.h"

static enum sp_status bind_target(struct jctx *c, const struct jnode *t, struct jv v)
{
    if (t->kind == E_NAME)
        return jx_assign(c, t, t->name, v);
    if (t->kind == E_TUPLE) {
        if (v.kind != JV_LIST || v.l->n != t->n_kids)
            return jx_fail(c, t, SP_ERR_INVALID, "cannot unpack %s into %zu names", jv_kind_name(&v), t->n_kids);
        for (size_t i = 0; i < t->n_kids; i++) {
            enum sp_status st = bind_target(c, t->kids[i], v.l->v[i]);
            if (st != SP_OK)
                return st;
        }
        return SP_OK;
    }
    if (t->kind == E_ATTR) {
        struct jv obj;
        enum sp_status st = jx_eval(c, t->a, &obj);
        if (st != SP_OK)
            return st;
        if (obj.kind != JV_DICT || !obj.d->ns)
            return jx_fail(c, t, SP_ERR_INVALID, "can only set attributes of a namespace()");
        struct jstr *k = jv_newstr(c->ar, t->name, strlen(t->name), false);
        if (!k || jv_dict_set(c->ar, obj.d, k, v))
            return jx_nomem(c, t);
        return SP_OK;
    }
    return jx_fail(c, t, SP_ERR_INVALID, "cannot assign to this expression");
}

/* the items a for loop walks */
static enum sp_status iter_items(struct jctx *c, const struct jnode *n, struct jv v, struct jlist **out)
{
    static struct jlist empty;
    *out = &empty;
    if (v.kind == JV_UNDEF)
        return SP_OK;
    if (v.kind == JV_LIST) {
        *out = v.l;
        return SP_OK;
    }
    struct jlist *l = ja_alloc(c->ar, sizeof *l);
    if (!l)
        return jx_nomem(c, n);
    if (v.kind == JV_DICT && !v.d->ns) {
        if (v.d->n && !(l->v = ja_alloc(c->ar, v.d->n * sizeof *l->v)))
            return jx_nomem(c, n);
        for (size_t i = 0; i < v.d->n; i++)
            l->v[i] = jv_str(v.d->k[i]);
        l->n = v.d->n;
    } else if (v.kind == JV_STR) {
        size_t cnt = jv_utf8_len(v.s->s, v.s->len);
        if (cnt && !(l->v = ja_alloc(c->ar, cnt * sizeof *l->v)))
            return jx_nomem(c, n);
        for (size_t i = 0, b = 0; i < cnt; i++) {
            size_t e = jv_utf8_off(v.s->s, v.s->len, (int64_t)i + 1);
            struct jstr *s = jv_substr(c->ar, v.s, b, e - b);
            if (!s)
                return jx_nomem(c, n);
            l->v[i] = jv_str(s);
            b = e;
        }
        l->n = cnt;
    } else {
        return jx_fail(c, n, SP_ERR_INVALID, "'%s' object is not iterable", jv_kind_name(&v));
    }
    *out = l;
    return SP_OK;
}

static int loop_set(struct jctx *c, struct jdict *d, const char *k, struct jv v)
{
    struct jv *o = jv_dict_get(d, k, strlen(k));
    if (o) {
        *o = v;
        return 0;
    }
    struct jstr *ks = jv_newstr(c->ar, k, strlen(k), false);
    return ks ? jv_dict_set(c->ar, d, ks, v) : -1;
}

static enum sp_status exec_for(struct jctx *c, const struct jnode *n)
{
    struct jv seq;
    struct jlist *items;
    enum sp_status st = jx_eval(c, n->b, &seq);
    if (st != SP_OK || (st = iter_items(c, n->b, seq, &items)) != SP_OK)
        return st;
    struct jframe fr = {.parent = c->top};
    struct jframe *saved = c->top;
    c->top = &fr;
    if (n->c) { /* inline filter: keep the items whose condition holds */
        struct jlist *kept = ja_alloc(c->ar, sizeof *kept);
        if (!kept || (items->n && !(kept->v = ja_alloc(c->ar, items->n * sizeof *kept->v)))) {
            c->top = saved;
            return jx_nomem(c, n);
        }
        for (size_t i = 0; i < items->n && st == SP_OK; i++) {
            struct jv cond;
            if ((st = bind_target(c, n->a, items->v[i])) == SP_OK && (st = jx_eval(c, n->c, &cond)) == SP_OK &&
                jv_truthy(&cond))
                kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    /* one loop object per loop, updated in place (keys allocated once) */
    struct jdict *lp = ja_alloc(c->ar, sizeof *lp);
    struct jv lv = {.kind = JV_DICT};
    lv.d = lp;
    if (!lp && items->n)
        st = jx_nomem(c, n);
    for (size_t i = 0; i < items->n && st == SP_OK; i++) {
        int64_t len = (int64_t)items->n, ix = (int64_t)i;
        struct jv cyc = {.kind = JV_FUNC, .fn = JF_CYCLE};
        cyc.i = ix;
        if (loop_set(c, lp, "index", jv_int(ix + 1)) || loop_set(c, lp, "index0", jv_int(ix)) ||
            loop_set(c, lp, "revindex", jv_int(len - ix)) || loop_set(c, lp, "revindex0", jv_int(len - ix - 1)) ||
            loop_set(c, lp, "first", jv_bool(i == 0)) || loop_set(c, lp, "last", jv_bool(ix == len - 1)) ||
            loop_set(c, lp, "length", jv_int(len)) || loop_set(c, lp, "depth", jv_int(1)) ||
            loop_set(c, lp, "depth0", jv_int(0)) || loop_set(c, lp, "cycle", cyc) ||
            loop_set(c, lp, "previtem", i ? items->v[i - 1] : jv_undef()) ||
            loop_set(c, lp, "nextitem", ix + 1 < len ? items->v[i + 1] : jv_undef())) {
            st = jx_nomem(c, n);
            break;
        }
        fr.vars.n = 0; /* each iteration starts with a fresh scope */
        if ((st = jx_assign(c, n, "loop", lv)) != SP_OK || (st = bind_target(c, n->a, items->v[i])) != SP_OK)
            break;
        int flow = FLOW_NONE;
        st = jx_exec(c, n->body, &flow);
        if (flow == FLOW_BREAK)
            break;
    }
    c->top = saved;
    if (st == SP_OK && items->n == 0 && n->alt) {
        int flow = FLOW_NONE;
        st = jx_exec(c, n->alt, &flow);
    }
    return st;
}

/* Run a block's body into a fresh buffer ({% set x %}...{% endset %},
 * {% filter %}) and return its text as a string value in *out. */
static enum sp_status capture_body(struct jctx *c, const struct jnode *n, int *flow, struct jstr **out)
{
    struct jsb buf = {0}, *saved = c->out;
    buf.b.limit = c->out_cap;
    c->out = &buf;
    enum sp_status st = jx_exec(c, n->body, flow);
    c->out = saved;
    *out = st == SP_OK ? jv_sb_take(c->ar, &buf) : NULL;
    jsb_free(&buf);
    if (st != SP_OK)
        return st;
    return *out ? SP_OK : jx_nomem(c, n);
}

enum sp_status jx_exec(struct jctx *c, const struct jnode *n, int *flow)
{
    enum sp_status st = jx_step(c, n);
    if (st != SP_OK)
        return st;
    struct jv v;
    switch (n->kind) {
    case N_SEQ:
        for (size_t i = 0; i < n->n_kids && st == SP_OK && *flow == FLOW_NONE; i++)
            st = jx_exec(c, n->kids[i], flow);
        return st;
    case N_TEXT: return jx_emit(c, n, &n->lit);
    case N_OUT:
        if ((st = jx_eval(c, n->a, &v)) != SP_OK)
            return st;
        return jx_emit(c, n, &v);
    case N_IF:
        if ((st = jx_eval(c, n->a, &v)) != SP_OK)
            return st;
        if (jv_truthy(&v))
            return jx_exec(c, n->body, flow);
        return n->alt ? jx_exec(c, n->alt, flow) : SP_OK;
    case N_FOR: return exec_for(c, n);
    case N_SET:
        if ((st = jx_eval(c, n->b, &v)) != SP_OK)
            return st;
        return bind_target(c, n->a, v);
    case N_SETBLOCK: {
        struct jstr *s = NULL;
        if ((st = capture_body(c, n, flow, &s)) != SP_OK)
            return st;
        return bind_target(c, n->a, jv_str(s));
    }
    case N_FILTERBLOCK: {
        struct jstr *s = NULL;
        if ((st = capture_body(c, n, flow, &s)) != SP_OK)
            return st;
        struct jargs a = {0};
        for (size_t i = 0; i < n->a->n_kids && i < SP_ARRAY_LEN(a.v); i++, a.n++) {
            if ((st = jx_eval(c, n->a->kids[i], &a.v[i])) != SP_OK)
                return st;
            a.kw[i] = n->a->kids[i]->kw;
        }
        if ((st = jx_filter(c, n->a, n->a->name, jv_str(s), &a, &v)) != SP_OK)
            return st;
        return jx_emit(c, n, &v);
    }
    case N_MACRO: {
        struct jv m = {.kind = JV_MACRO};
        m.mac = n;
        return jx_assign(c, n, n->name, m);
    }
    case N_CALLBLOCK: {
        /* {% call m(args) %}body{% endcall %}: m sees the body as caller() */
        const struct jnode *call = n->a;
        struct jv fn;
        struct jargs a = {0};
        if ((st = jx_eval(c, call->a, &fn)) != SP_OK)
            return st;
        for (size_t i = 0; i < call->n_kids && i < SP_ARRAY_LEN(a.v); i++, a.n++) {
            if ((st = jx_eval(c, call->kids[i], &a.v[i])) != SP_OK)
                return st;
            a.kw[i] = call->kids[i]->kw;
        }
        if (fn.kind != JV_MACRO)
            return jx_fail(c, n, SP_ERR_INVALID, "call block needs a macro");
        if ((st = jx_call_macro(c, n, fn.mac, &a, n->body, &v)) != SP_OK)
            return st;
        return jx_emit(c, n, &v);
    }
    case N_BREAK: *flow = FLOW_BREAK; return SP_OK;
    case N_CONTINUE: *flow = FLOW_CONTINUE; return SP_OK;
    }
    return jx_fail(c, n, SP_ERR_INTERNAL, "bad statement node");
}

/* ---- public API */
enum sp_status tok_tmpl_parse(const char *src, size_t len, struct tok_tmpl **out, struct sp_err *err)
{
    *out = NULL;
    if (!src)
        return sp_err_set(err, SP_ERR_INVALID, "no chat template");
    if (len > TOK_TMPL_MAX_SOURCE)
        return sp_err_set(err, SP_ERR_LIMIT, "chat template is %zu bytes (limit %u)", len, TOK_TMPL_MAX_SOURCE);
    struct tok_tmpl *t = sp_calloc(1, sizeof *t);
    if (!t)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory parsing the chat template");
    t->ar.cap = 64u * len + (4u << 20);
    struct jtoks toks;
    enum sp_status st = jinja_lex(src, len, &t->ar, &toks, err);
    if (st == SP_OK)
        st = jinja_parse(&toks, &t->ar, &t->root, err);
    if (st != SP_OK) {
        tok_tmpl_free(t);
        return st;
    }
    *out = t;
    return SP_OK;
}

void tok_tmpl_free(struct tok_tmpl *t)
{
    if (!t)
        return;
    ja_free_all(&t->ar);
    sp_free(t);
}

void tok_rendered_free(struct tok_rendered *r)
{
    if (!r)
        return;
    sp_free(r->text);
    sp_free(r->spans);
    memset(r, 0, sizeof *r);
}

enum sp_status tok_tmpl_render(const struct tok_tmpl *t, const char *ctx_json, size_t ctx_len,
                               const struct tok_tmpl_vars *vars, size_t max_out, struct tok_rendered *out,
                               struct sp_err *err)
{
    memset(out, 0, sizeof *out);
    if (!t || !ctx_json)
        return sp_err_set(err, SP_ERR_INVALID, "tok_tmpl_render: NULL argument");
    struct jarena ar = {.cap = (size_t)32 * ctx_len + (32u << 20)};
    struct jsb sb = {0};
    sb.b.limit = max_out;
    struct jframe root = {0};
    struct jctx c = {.ar = &ar, .out = &sb, .out_cap = max_out, .top = &root, .root = &root, .err = err};
    struct jv ctx;
    enum sp_status st = jv_from_json(&ar, ctx_json, ctx_len, NULL, &ctx, err);
    if (st == SP_OK) {
        root.vars = *ctx.d;
        const char *names[2] = {"bos_token", "eos_token"};
        const char *vals[2] = {vars ? vars->bos_token : NULL, vars ? vars->eos_token : NULL};
        for (int i = 0; i < 2 && st == SP_OK; i++)
            if (vals[i] && !jv_dict_get(&root.vars, names[i], strlen(names[i]))) {
                struct jstr *s = jv_newstr(&ar, vals[i], strlen(vals[i]), false);
                st = s ? jx_assign(&c, NULL, names[i], jv_str(s)) : jx_nomem(&c, NULL);
            }
    }
    if (st == SP_OK) {
        int flow = FLOW_NONE;
        st = jx_exec(&c, t->root, &flow);
    }
    if (st == SP_OK) {
        out->len = sb.b.len;
        out->text = sp_buf_take(&sb.b);
        if (sb.nr && (out->spans = sp_calloc(sb.nr, sizeof *out->spans)) != NULL) {
            for (size_t i = 0; i < sb.nr; i++)
                out->spans[i] = (struct tok_span){sb.r[i].off, sb.r[i].len};
            out->n_spans = sb.nr;
        }
        if (!out->text || (sb.nr && !out->spans))
            st = sp_err_set(err, SP_ERR_NOMEM, "out of memory rendering the chat template");
    }
    jsb_free(&sb);
    ja_free_all(&ar);
    if (st != SP_OK)
        tok_rendered_free(out);
    return st;
}
