/* tok_jinja_stmt.c - the statement half of the chat-template parser
 * (tok_jinja_parse.c has the expressions): if/elif/else, for (tuple targets,
 * inline "if" filter, else), set (name, ns.attr, tuple, block form), macro,
 * call blocks, filter blocks, break/continue, and Hugging Face's generation
 * marker (a plain block here); then jinja_parse, the entry point. Nesting is
 * capped (JINJA_MAX_DEPTH); errors carry the line and column. */
#include <stdio.h>
#include <string.h>

#include "tok/tok_jinja.h"

/* ---- statements */

static struct jnode *block(struct jps *p, const char *const *ends, size_t n_ends);

static bool block_end(struct jps *p)
{
    if (jp_cur(p)->kind == JT_BLOCK_END) {
        p->p++;
        return true;
    }
    jp_perr(p, "expected '%}'");
    return false;
}

static struct jnode *stmt_if(struct jps *p)
{
    struct jnode *n = jp_nn(p, N_IF);
    if (!n || !(n->a = jp_expr(p)) || !block_end(p))
        return NULL;
    static const char *const ends[] = {"elif", "else", "endif"};
    if (!(n->body = block(p, ends, 3)))
        return NULL;
    if (jp_accept_name(p, "elif")) {
        n->alt = stmt_if(p);
        return n->alt ? n : NULL;
    }
    if (jp_accept_name(p, "else")) {
        static const char *const e2[] = {"endif"};
        if (!block_end(p) || !(n->alt = block(p, e2, 1)))
            return NULL;
    }
    if (!jp_accept_name(p, "endif"))
        return jp_perr(p, "expected 'endif'");
    return block_end(p) ? n : NULL;
}

static struct jnode *stmt_for(struct jps *p)
{
    struct jnode *n = jp_nn(p, N_FOR);
    if (!n || !(n->a = jp_target_list(p, true)))
        return NULL;
    if (!jp_accept_name(p, "in"))
        return jp_perr(p, "expected 'in' in a for loop");
    /* the iterable may not contain a conditional expression (its "if" filters) */
    if (!(n->b = jp_or_expr(p)))
        return NULL;
    if (jp_accept_name(p, "if") && !(n->c = jp_or_expr(p)))
        return NULL;
    if (jp_accept_name(p, "recursive"))
        return jp_perr(p, "recursive for loops are not supported");
    if (!block_end(p))
        return NULL;
    static const char *const ends[] = {"else", "endfor"};
    if (!(n->body = block(p, ends, 2)))
        return NULL;
    if (jp_accept_name(p, "else")) {
        static const char *const e2[] = {"endfor"};
        if (!block_end(p) || !(n->alt = block(p, e2, 1)))
            return NULL;
    }
    if (!jp_accept_name(p, "endfor"))
        return jp_perr(p, "expected 'endfor'");
    return block_end(p) ? n : NULL;
}

static struct jnode *stmt_set(struct jps *p)
{
    struct jnode *n = jp_nn(p, N_SET);
    if (!n || !(n->a = jp_target_list(p, true)))
        return NULL;
    if (jp_accept_op(p, "=")) {
        if (!(n->b = jp_target_list(p, false)))
            return NULL;
        return block_end(p) ? n : NULL;
    }
    /* block set: {% set x %}...{% endset %} (optionally with a filter: unsupported) */
    if (n->a->kind != E_NAME)
        return jp_perr(p, "expected '=' in set");
    n->kind = N_SETBLOCK;
    static const char *const ends[] = {"endset"};
    if (!block_end(p) || !(n->body = block(p, ends, 1)))
        return NULL;
    p->p++;
    return block_end(p) ? n : NULL;
}

static struct jnode *stmt_macro(struct jps *p)
{
    struct jnode *n = jp_nn(p, N_MACRO);
    if (!n)
        return NULL;
    if (jp_cur(p)->kind != JT_NAME)
        return jp_perr(p, "expected a macro name");
    n->name = jp_cur(p)->s;
    p->p++;
    if (!jp_expect_op(p, "("))
        return NULL;
    size_t cap = 0;
    while (!jp_is_op(jp_cur(p), ")")) {
        if (n->n_kids && !jp_expect_op(p, ","))
            return NULL;
        if (jp_cur(p)->kind != JT_NAME)
            return jp_perr(p, "expected a parameter name");
        struct jnode *prm = jp_nn(p, E_NAME);
        if (!prm)
            return NULL;
        prm->name = jp_cur(p)->s;
        p->p++;
        if (jp_accept_op(p, "=") && !(prm->a = jp_expr(p)))
            return NULL;
        if (!jp_kid_add(p, n, prm, &cap))
            return NULL;
    }
    p->p++;
    static const char *const ends[] = {"endmacro"};
    if (!block_end(p) || !(n->body = block(p, ends, 1)))
        return NULL;
    p->p++;
    return block_end(p) ? n : NULL;
}

static struct jnode *statement(struct jps *p)
{
    const struct jtok *t = jp_cur(p);
    if (t->kind != JT_NAME)
        return jp_perr(p, "expected a statement name after '{%'");
    p->p++;
    if (!strcmp(t->s, "if"))
        return stmt_if(p);
    if (!strcmp(t->s, "for"))
        return stmt_for(p);
    if (!strcmp(t->s, "set"))
        return stmt_set(p);
    if (!strcmp(t->s, "macro"))
        return stmt_macro(p);
    if (!strcmp(t->s, "break") || !strcmp(t->s, "continue")) {
        struct jnode *n = jp_nn(p, t->s[0] == 'b' ? N_BREAK : N_CONTINUE);
        return n && block_end(p) ? n : NULL;
    }
    if (!strcmp(t->s, "generation")) {
        static const char *const ends[] = {"endgeneration"};
        struct jnode *n;
        if (!block_end(p) || !(n = block(p, ends, 1)))
            return NULL;
        p->p++;
        return block_end(p) ? n : NULL;
    }
    if (!strcmp(t->s, "filter")) {
        /* {% filter name(args) %}body{% endfilter %}: a = the filter (input: the body) */
        struct jnode *n = jp_nn(p, N_FILTERBLOCK), *f = jp_nn(p, E_FILTER);
        if (!n || !f)
            return NULL;
        if (jp_cur(p)->kind != JT_NAME)
            return jp_perr(p, "expected a filter name");
        f->name = jp_cur(p)->s;
        p->p++;
        if (jp_is_op(jp_cur(p), "(") && !jp_call_args(p, f))
            return NULL;
        n->a = f;
        static const char *const ends[] = {"endfilter"};
        if (!block_end(p) || !(n->body = block(p, ends, 1)))
            return NULL;
        p->p++;
        return block_end(p) ? n : NULL;
    }
    if (!strcmp(t->s, "call")) {
        struct jnode *n = jp_nn(p, N_CALLBLOCK);
        if (!n || !(n->a = jp_expr(p)) || n->a->kind != E_CALL)
            return n ? jp_perr(p, "expected a macro call after 'call'") : NULL;
        static const char *const ends[] = {"endcall"};
        if (!block_end(p) || !(n->body = block(p, ends, 1)))
            return NULL;
        p->p++;
        return block_end(p) ? n : NULL;
    }
    p->p--;
    char m[96];
    snprintf(m, sizeof m, "unsupported statement '%.40s'", t->s);
    return jp_perr(p, m);
}

/* Statements until one of ends (the end tag is left at the cursor, after its
 * '{%'), or EOF when n_ends == 0. */
static struct jnode *block(struct jps *p, const char *const *ends, size_t n_ends)
{
    if (++p->depth > JINJA_MAX_DEPTH)
        return jp_perr(p, "statements nested too deeply");
    struct jnode *seq = jp_nn(p, N_SEQ);
    size_t cap = 0;
    if (!seq)
        return NULL;
    for (;;) {
        const struct jtok *t = jp_cur(p);
        if (t->kind == JT_EOF) {
            if (n_ends)
                return jp_perr(p, n_ends == 1 ? "unexpected end of template (missing an end tag)"
                                           : "unexpected end of template (missing an end tag)");
            break;
        }
        struct jnode *s = NULL;
        if (t->kind == JT_TEXT) {
            if (!(s = jp_nn(p, N_TEXT)))
                return NULL;
            struct jstr *str = jv_newstr(p->ar, t->s, t->len, false);
            if (!str)
                return jp_nomem(p);
            s->lit = jv_str(str);
            p->p++;
        } else if (t->kind == JT_VAR_BEGIN) {
            p->p++;
            if (!(s = jp_nn(p, N_OUT)) || !(s->a = jp_expr(p)))
                return NULL;
            if (jp_cur(p)->kind != JT_VAR_END)
                return jp_perr(p, "expected '}}'");
            p->p++;
        } else if (t->kind == JT_BLOCK_BEGIN) {
            const struct jtok *k = jp_peek(p, 1);
            for (size_t i = 0; i < n_ends; i++)
                if (k->kind == JT_NAME && !strcmp(k->s, ends[i])) {
                    p->p++;
                    p->depth--;
                    return seq;
                }
            p->p++;
            if (!(s = statement(p)))
                return NULL;
        } else {
            return jp_perr(p, "unexpected token");
        }
        if (!jp_kid_add(p, seq, s, &cap))
            return NULL;
    }
    p->depth--;
    return seq;
}

enum sp_status jinja_parse(const struct jtoks *toks, struct jarena *ar, struct jnode **root, struct sp_err *err)
{
    struct jps p = {.t = toks, .ar = ar, .err = err};
    *root = block(&p, NULL, 0);
    if (!*root)
        return err && err->code != SP_OK ? err->code : SP_ERR_INVALID;
    return SP_OK;
}
