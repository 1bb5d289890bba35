/* tok_jinja_parse.c - recursive-descent parser for the Jinja2 subset that
 * chat templates use, expression half (statements: tok_jinja_stmt.c):
 * tokens -> AST (struct jnode, in the template's arena). Expressions follow
 * Jinja2's precedence: conditional < or < and < not < comparisons / in / is
 * < + - < ~ < * / // % < ** < unary - + < postfix (. [] () |filter is-test).
 * Nesting is capped (JINJA_MAX_DEPTH); every error carries line and column. */
#include <stdio.h>
#include <string.h>

#include "tok/tok_jinja.h"


const struct jtok *jp_cur(struct jps *p) { return &p->t->v[p->p]; }
const struct jtok *jp_peek(struct jps *p, size_t k)
{
    size_t i = p->p + k < p->t->n ? p->p + k : p->t->n - 1;
    return &p->t->v[i];
}

struct jnode *jp_perr(struct jps *p, const char *msg)
{
    if (!p->failed) {
        const struct jtok *t = jp_cur(p);
        sp_err_set(p->err, SP_ERR_INVALID, "chat template syntax error at line %u, column %u: %s", t->line, t->col,
                   msg);
        p->failed = true;
    }
    return NULL;
}

struct jnode *jp_nomem(struct jps *p)
{
    if (!p->failed) {
        sp_err_set(p->err, SP_ERR_NOMEM, "out of memory parsing the chat template");
        p->failed = true;
    }
    return NULL;
}

struct jnode *jp_nn(struct jps *p, int kind)
{
    struct jnode *n = ja_alloc(p->ar, sizeof *n);
    if (!n) {
        if (!p->failed) {
            sp_err_set(p->err, SP_ERR_NOMEM, "out of memory parsing the chat template");
            p->failed = true;
        }
        return NULL;
    }
    n->kind = (uint16_t)kind;
    n->line = jp_cur(p)->line;
    n->col = jp_cur(p)->col;
    return n;
}

bool jp_is_op(const struct jtok *t, const char *op) { return t->kind == JT_OP && !strcmp(t->op, op); }
bool jp_is_name(const struct jtok *t, const char *s) { return t->kind == JT_NAME && !strcmp(t->s, s); }
bool jp_accept_op(struct jps *p, const char *op)
{
    if (jp_is_op(jp_cur(p), op)) {
        p->p++;
        return true;
    }
    return false;
}
bool jp_accept_name(struct jps *p, const char *s)
{
    if (jp_is_name(jp_cur(p), s)) {
        p->p++;
        return true;
    }
    return false;
}
bool jp_expect_op(struct jps *p, const char *op)
{
    if (jp_accept_op(p, op))
        return true;
    char m[64];
    snprintf(m, sizeof m, "expected '%s'", op);
    jp_perr(p, m);
    return false;
}

/* growable child list in the arena */
bool jp_kid_add(struct jps *p, struct jnode *parent, struct jnode *k, size_t *cap)
{
    if (!k)
        return false;
    if (parent->n_kids == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        struct jnode **nv = ja_alloc(p->ar, nc * sizeof *nv);
        if (!nv) {
            jp_nn(p, 0); /* reports NOMEM */
            return false;
        }
        if (parent->n_kids)
            memcpy(nv, parent->kids, parent->n_kids * sizeof *nv);
        parent->kids = nv;
        *cap = nc;
    }
    parent->kids[parent->n_kids++] = k;
    return true;
}

struct jnode *jp_expr(struct jps *p);
static struct jnode *jp_unary(struct jps *p, bool with_filter);

/* (args) after a callee: positional and name=value */
bool jp_call_args(struct jps *p, struct jnode *call)
{
    size_t cap = 0;
    if (!jp_expect_op(p, "("))
        return false;
    while (!jp_is_op(jp_cur(p), ")")) {
        if (call->n_kids && !jp_expect_op(p, ","))
            return false;
        if (jp_is_op(jp_cur(p), ")"))
            break;
        const char *kw = NULL;
        if (jp_cur(p)->kind == JT_NAME && jp_is_op(jp_peek(p, 1), "=")) {
            kw = jp_cur(p)->s;
            p->p += 2;
        }
        struct jnode *a = jp_expr(p);
        if (!a)
            return false;
        a->kw = kw;
        if (!jp_kid_add(p, call, a, &cap))
            return false;
        if (call->n_kids > 12) {
            jp_perr(p, "too many arguments (at most 12)");
            return false;
        }
    }
    p->p++;
    return true;
}

struct jnode *jp_primary(struct jps *p)
{
    const struct jtok *t = jp_cur(p);
    struct jnode *n = NULL;
    if (t->kind == JT_NAME) {
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") || !strcmp(t->s, "False")) {
            if (!(n = jp_nn(p, E_LIT)))
                return NULL;
            n->lit = jv_bool(t->s[0] == 't' || t->s[0] == 'T');
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            if (!(n = jp_nn(p, E_LIT)))
                return NULL;
            n->lit = jv_none();
        } else {
            if (!(n = jp_nn(p, E_NAME)))
                return NULL;
            n->name = t->s;
        }
        p->p++;
        return n;
    }
    if (t->kind == JT_STRING) {
        if (!(n = jp_nn(p, E_LIT)))
            return NULL;
        /* adjacent string literals concatenate */
        struct jsb sb = {0};
        while (jp_cur(p)->kind == JT_STRING) {
            if (jsb_add(&sb, jp_cur(p)->s, jp_cur(p)->len, false)) {
                jsb_free(&sb);
                return jp_nomem(p);
            }
            p->p++;
        }
        struct jstr *s = jv_sb_take(p->ar, &sb);
        jsb_free(&sb);
        if (!s)
            return jp_nomem(p);
        n->lit = jv_str(s);
        return n;
    }
    if (t->kind == JT_INT || t->kind == JT_FLOAT) {
        if (!(n = jp_nn(p, E_LIT)))
            return NULL;
        n->lit = t->kind == JT_INT ? jv_int(t->i) : jv_float(t->f);
        p->p++;
        return n;
    }
    if (jp_is_op(t, "(")) {
        p->p++;
        if (jp_accept_op(p, ")"))
            return jp_nn(p, E_TUPLE);
        struct jnode *e = jp_expr(p);
        if (!e)
            return NULL;
        if (jp_is_op(jp_cur(p), ",")) {
            struct jnode *tu = jp_nn(p, E_TUPLE);
            size_t cap = 0;
            if (!tu || !jp_kid_add(p, tu, e, &cap))
                return NULL;
            while (jp_accept_op(p, ",")) {
                if (jp_is_op(jp_cur(p), ")"))
                    break;
                if (!jp_kid_add(p, tu, jp_expr(p), &cap))
                    return NULL;
            }
            e = tu;
        }
        return jp_expect_op(p, ")") ? e : NULL;
    }
    if (jp_is_op(t, "[")) {
        p->p++;
        if (!(n = jp_nn(p, E_LIST)))
            return NULL;
        size_t cap = 0;
        while (!jp_is_op(jp_cur(p), "]")) {
            if (n->n_kids && !jp_expect_op(p, ","))
                return NULL;
            if (jp_is_op(jp_cur(p), "]"))
                break;
            if (!jp_kid_add(p, n, jp_expr(p), &cap))
                return NULL;
        }
        p->p++;
        return n;
    }
    if (jp_is_op(t, "{")) {
        p->p++;
        if (!(n = jp_nn(p, E_DICT)))
            return NULL;
        size_t cap = 0;
        while (!jp_is_op(jp_cur(p), "}")) {
            if (n->n_kids && !jp_expect_op(p, ","))
                return NULL;
            if (jp_is_op(jp_cur(p), "}"))
                break;
            if (!jp_kid_add(p, n, jp_expr(p), &cap) || !jp_expect_op(p, ":") || !jp_kid_add(p, n, jp_expr(p), &cap))
                return NULL;
        }
        p->p++;
        return n;
    }
    return jp_perr(p, "expected an expression");
}

struct jnode *jp_postfix(struct jps *p, struct jnode *n)
{
    for (;;) {
        if (!n)
            return NULL;
        if (jp_is_op(jp_cur(p), ".")) {
            p->p++;
            const struct jtok *t = jp_cur(p);
            struct jnode *a = jp_nn(p, E_ATTR);
            if (!a)
                return NULL;
            if (t->kind == JT_NAME) {
                a->name = t->s;
            } else if (t->kind == JT_INT) {
                a->kind = E_INDEX;
                struct jnode *i = jp_nn(p, E_LIT);
                if (!i)
                    return NULL;
                i->lit = jv_int(t->i);
                a->b = i;
            } else {
                return jp_perr(p, "expected an attribute name after '.'");
            }
            p->p++;
            a->a = n;
            n = a;
        } else if (jp_is_op(jp_cur(p), "[")) {
            p->p++;
            struct jnode *ix = jp_nn(p, E_INDEX);
            if (!ix)
                return NULL;
            ix->a = n;
            struct jnode *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (jp_is_op(jp_cur(p), ":")) {
                    slice = true;
                    p->p++;
                    if (++np > 2)
                        return jp_perr(p, "bad slice");
                    continue;
                }
                if (jp_is_op(jp_cur(p), "]"))
                    break;
                if (parts[np])
                    return jp_perr(p, "expected ']'");
                if (!(parts[np] = jp_expr(p)))
                    return NULL;
            }
            p->p++;
            if (slice) {
                ix->kind = E_SLICE;
                ix->b = parts[0];
                ix->c = parts[1];
                ix->body = parts[2];
            } else {
                if (!parts[0])
                    return jp_perr(p, "empty subscript");
                ix->b = parts[0];
            }
            n = ix;
        } else if (jp_is_op(jp_cur(p), "(")) {
            struct jnode *c = jp_nn(p, E_CALL);
            if (!c)
                return NULL;
            c->a = n;
            if (!jp_call_args(p, c))
                return NULL;
            n = c;
        } else {
            return n;
        }
    }
}

static struct jnode *jp_filters(struct jps *p, struct jnode *n)
{
    for (;;) {
        if (!n)
            return NULL;
        if (jp_is_op(jp_cur(p), "|")) {
            p->p++;
            if (jp_cur(p)->kind != JT_NAME)
                return jp_perr(p, "expected a filter name after '|'");
            struct jnode *f = jp_nn(p, E_FILTER);
            if (!f)
                return NULL;
            f->name = jp_cur(p)->s;
            p->p++;
            /* dotted filter names do not exist in the templates we render */
            f->a = n;
            if (jp_is_op(jp_cur(p), "(") && !jp_call_args(p, f))
                return NULL;
            n = f;
        } else if (jp_is_name(jp_cur(p), "is")) {
            p->p++;
            struct jnode *t = jp_nn(p, E_TEST);
            if (!t)
                return NULL;
            t->negate = jp_accept_name(p, "not");
            const struct jtok *k = jp_cur(p);
            if (k->kind == JT_NAME)
                t->name = k->s;
            else if (jp_is_op(k, "==") || jp_is_op(k, "!=") || jp_is_op(k, "<") || jp_is_op(k, ">") || jp_is_op(k, "<=") ||
                     jp_is_op(k, ">="))
                t->name = k->op;
            else
                return jp_perr(p, "expected a test name after 'is'");
            p->p++;
            t->a = n;
            if (jp_is_op(jp_cur(p), "(")) {
                if (!jp_call_args(p, t))
                    return NULL;
            } else {
                /* one argument without parentheses: "is divisibleby 3", "is sameas none" */
                const struct jtok *x = jp_cur(p);
                if (x->kind == JT_STRING || x->kind == JT_INT || x->kind == JT_FLOAT ||
                    (x->kind == JT_NAME && strcmp(x->s, "and") && strcmp(x->s, "or") && strcmp(x->s, "else") &&
                     strcmp(x->s, "if") && strcmp(x->s, "in") && strcmp(x->s, "is") && strcmp(x->s, "not"))) {
                    size_t cap = 0;
                    if (!jp_kid_add(p, t, jp_postfix(p, jp_primary(p)), &cap))
                        return NULL;
                }
            }
            n = t;
        } else {
            return n;
        }
    }
}

static struct jnode *jp_unary(struct jps *p, bool with_filter)
{
    if (++p->depth > JINJA_MAX_DEPTH)
        return jp_perr(p, "expression nested too deeply");
    struct jnode *n;
    if (jp_is_op(jp_cur(p), "-") || jp_is_op(jp_cur(p), "+")) {
        n = jp_nn(p, jp_is_op(jp_cur(p), "-") ? E_NEG : E_POS);
        if (!n)
            return NULL;
        p->p++;
        n->a = jp_unary(p, false);
        if (!n->a)
            return NULL;
    } else {
        n = jp_postfix(p, jp_primary(p));
    }
    if (with_filter)
        n = jp_filters(p, n);
    p->depth--;
    return n;
}

static struct jnode *binop(struct jps *p, int op, struct jnode *l, struct jnode *r)
{
    if (!l || !r)
        return NULL;
    struct jnode *n = jp_nn(p, E_BIN);
    if (!n)
        return NULL;
    n->op = (uint16_t)op;
    n->a = l;
    n->b = r;
    n->line = l->line;
    n->col = l->col;
    return n;
}

static struct jnode *power(struct jps *p)
{
    struct jnode *l = jp_unary(p, true);
    while (l && jp_is_op(jp_cur(p), "**")) {
        p->p++;
        l = binop(p, OP_POW, l, jp_unary(p, true));
    }
    return l;
}

static struct jnode *math2(struct jps *p)
{
    struct jnode *l = power(p);
    for (;;) {
        int op = jp_is_op(jp_cur(p), "*") ? OP_MUL : jp_is_op(jp_cur(p), "/") ? OP_DIV : jp_is_op(jp_cur(p), "//") ? OP_FDIV
                 : jp_is_op(jp_cur(p), "%") ? OP_MOD : 0;
        if (!l || !op)
            return l;
        p->p++;
        l = binop(p, op, l, power(p));
    }
}

static struct jnode *concat(struct jps *p)
{
    struct jnode *l = math2(p);
    while (l && jp_is_op(jp_cur(p), "~")) {
        p->p++;
        l = binop(p, OP_CAT, l, math2(p));
    }
    return l;
}

static struct jnode *math1(struct jps *p)
{
    struct jnode *l = concat(p);
    for (;;) {
        int op = jp_is_op(jp_cur(p), "+") ? OP_ADD : jp_is_op(jp_cur(p), "-") ? OP_SUB : 0;
        if (!l || !op)
            return l;
        p->p++;
        l = binop(p, op, l, concat(p));
    }
}

static struct jnode *compare(struct jps *p)
{
    struct jnode *l = math1(p);
    for (;;) {
        if (!l)
            return NULL;
        const struct jtok *t = jp_cur(p);
        int op = jp_is_op(t, "==") ? OP_EQ : jp_is_op(t, "!=") ? OP_NE : jp_is_op(t, "<") ? OP_LT : jp_is_op(t, ">") ? OP_GT
                 : jp_is_op(t, "<=") ? OP_LE : jp_is_op(t, ">=") ? OP_GE : jp_is_name(t, "in") ? OP_IN : 0;
        if (!op && jp_is_name(t, "not") && jp_is_name(jp_peek(p, 1), "in")) {
            op = OP_NOTIN;
            p->p++;
        }
        if (!op)
            return l;
        p->p++;
        /* chained comparisons (a < b < c) are rare in templates; treated left-assoc */
        l = binop(p, op, l, math1(p));
    }
}

static struct jnode *not_expr(struct jps *p)
{
    if (jp_is_name(jp_cur(p), "not")) {
        struct jnode *n = jp_nn(p, E_NOT);
        if (!n)
            return NULL;
        p->p++;
        if (++p->depth > JINJA_MAX_DEPTH)
            return jp_perr(p, "expression nested too deeply");
        n->a = not_expr(p);
        p->depth--;
        return n->a ? n : NULL;
    }
    return compare(p);
}

static struct jnode *and_expr(struct jps *p)
{
    struct jnode *l = not_expr(p);
    while (l && jp_is_name(jp_cur(p), "and")) {
        p->p++;
        struct jnode *n = binop(p, 0, l, not_expr(p));
        if (n)
            n->kind = E_AND;
        l = n;
    }
    return l;
}

struct jnode *jp_or_expr(struct jps *p)
{
    struct jnode *l = and_expr(p);
    while (l && jp_is_name(jp_cur(p), "or")) {
        p->p++;
        struct jnode *n = binop(p, 0, l, and_expr(p));
        if (n)
            n->kind = E_OR;
        l = n;
    }
    return l;
}

struct jnode *jp_expr(struct jps *p)
{
    if (++p->depth > JINJA_MAX_DEPTH)
        return jp_perr(p, "expression nested too deeply");
    struct jnode *l = jp_or_expr(p);
    while (l && jp_is_name(jp_cur(p), "if")) {
        p->p++;
        struct jnode *c = jp_nn(p, E_COND);
        if (!c)
            return NULL;
        c->a = jp_or_expr(p); /* condition */
        c->b = l;          /* then */
        if (!c->a)
            return NULL;
        if (jp_accept_name(p, "else") && !(c->c = jp_or_expr(p)))
            return NULL;
        l = c;
    }
    p->depth--;
    return l;
}

/* expression list "a, b" (tuple without parentheses), for for-targets and set */
struct jnode *jp_target_list(struct jps *p, bool names_only)
{
    struct jnode *first = names_only ? jp_primary(p) : jp_expr(p);
    if (!first)
        return NULL;
    if (names_only) {
        first = jp_postfix(p, first);
        if (!first)
            return NULL;
    }
    if (!jp_is_op(jp_cur(p), ","))
        return first;
    struct jnode *tu = jp_nn(p, E_TUPLE);
    size_t cap = 0;
    if (!tu || !jp_kid_add(p, tu, first, &cap))
        return NULL;
    while (jp_accept_op(p, ",")) {
        struct jnode *k = names_only ? jp_primary(p) : jp_expr(p);
        if (!jp_kid_add(p, tu, k, &cap))
            return NULL;
    }
    return tu;
}
