/* tok_jinja_lex.c - Jinja2 lexer for chat templates: source -> tokens.
 *
 * Mirrors Jinja2's lexer with the options Hugging Face uses for chat
 * templates (trim_blocks, lstrip_blocks, keep_trailing_newline off):
 * newlines are normalised to "\n" and one trailing newline is dropped;
 * "{%-"/"{{-"/"{#-" strip all whitespace before the tag and "-%}" etc. all
 * whitespace after it; lstrip_blocks removes spaces/tabs between a line start
 * and a block or comment tag ("{%+" keeps them); trim_blocks removes the
 * first newline after a block or comment tag. Comments vanish, {% raw %}
 * keeps its body as text. Every token has a line and column; errors name
 * them. Token texts and decoded strings live in the caller's arena. */
#include <string.h>

#include "tok/tok_jinja.h"

struct lx {
    const char *s; /* normalised source */
    size_t n, p;
    uint32_t line, col;     /* of position p */
    struct jarena *ar;
    struct jtoks *out;
    struct sp_err *err;
    bool strip_next;        /* the previous tag ended with '-' */
};

static void lx_adv(struct lx *l, size_t k)
{
    for (size_t i = 0; i < k && l->p < l->n; i++, l->p++) {
        if (l->s[l->p] == '\n') {
            l->line++;
            l->col = 1;
        } else if (((unsigned char)l->s[l->p] & 0xC0) != 0x80) {
            l->col++;
        }
    }
}

static enum sp_status lx_err(struct lx *l, const char *msg)
{
    return sp_err_set(l->err, SP_ERR_INVALID, "chat template syntax error at line %u, column %u: %s", l->line,
                      l->col, msg);
}

static struct jtok *lx_push(struct lx *l, uint8_t kind)
{
    struct jtoks *t = l->out;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        struct jtok *nv = ja_alloc(l->ar, nc * sizeof *nv);
        if (!nv)
            return NULL;
        if (t->n)
            memcpy(nv, t->v, t->n * sizeof *nv);
        t->v = nv;
        t->cap = nc;
    }
    struct jtok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->line = l->line;
    k->col = l->col;
    return k;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_id0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_id(char c) { return is_id0(c) || (c >= '0' && c <= '9'); }

/* Text from p to end (exclusive), with whitespace control for the tag at end. */
static enum sp_status lx_text(struct lx *l, size_t end, char tag, char mod)
{
    size_t b = l->p, e = end;
    if (l->strip_next) {
        while (b < e && is_ws(l->s[b]))
            b++;
        l->strip_next = false;
    }
    if (mod == '-') {
        while (e > b && is_ws(l->s[e - 1]))
            e--;
    } else if (mod != '+' && (tag == '%' || tag == '#')) {
        /* lstrip_blocks: drop spaces/tabs between the line start and the tag */
        size_t k = e;
        while (k > b && (l->s[k - 1] == ' ' || l->s[k - 1] == '\t'))
            k--;
        if (k == 0 || l->s[k - 1] == '\n')
            e = k;
    }
    struct jtok t0 = {.line = l->line, .col = l->col};
    lx_adv(l, b - l->p);
    t0.line = l->line, t0.col = l->col;
    if (e > b) {
        struct jtok *t = lx_push(l, JT_TEXT);
        if (!t)
            return sp_err_set(l->err, SP_ERR_NOMEM, "out of memory lexing the chat template");
        t->line = t0.line, t->col = t0.col;
        t->s = l->s + b;
        t->len = e - b;
    }
    lx_adv(l, end - l->p);
    return SP_OK;
}

static enum sp_status lx_string(struct lx *l, struct jtok *t)
{
    char q = l->s[l->p];
    size_t i = l->p + 1;
    struct sp_buf b = {0};
    while (i < l->n && l->s[i] != q) {
        char c = l->s[i];
        int rc;
        if (c == '\\' && i + 1 < l->n) {
            char e = l->s[i + 1];
            char o = 0;
            switch (e) {
            case 'n': o = '\n'; break;
            case 't': o = '\t'; break;
            case 'r': o = '\r'; break;
            case '\\': o = '\\'; break;
            case '\'': o = '\''; break;
            case '"': o = '"'; break;
            case '0': o = '\0'; break;
            case 'a': o = '\a'; break;
            case 'b': o = '\b'; break;
            case 'f': o = '\f'; break;
            case 'v': o = '\v'; break;
            case '\n': i += 2; continue;
            default: break;
            }
            if (o || e == '0') {
                rc = sp_buf_append(&b, &o, 1);
                i += 2;
            } else if (e == 'u' || e == 'x' || e == 'U') {
                size_t nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                uint32_t cp = 0;
                size_t k = 0;
                for (; k < nd && i + 2 + k < l->n; k++) {
                    char h = l->s[i + 2 + k];
                    int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (v < 0)
                        break;
                    cp = cp * 16 + (uint32_t)v;
                }
                if (k != nd || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    sp_buf_free(&b);
                    return lx_err(l, "bad \\x/\\u escape in a string literal");
                }
                char u[4];
                size_t ul = tok_utf8_encode(cp, u);
                rc = sp_buf_append(&b, u, ul);
                i += 2 + nd;
            } else {
                rc = sp_buf_append(&b, l->s + i, 2);
                i += 2;
            }
        } else {
            rc = sp_buf_append(&b, &c, 1);
            i++;
        }
        if (rc) {
            sp_buf_free(&b);
            return sp_err_set(l->err, SP_ERR_NOMEM, "out of memory lexing the chat template");
        }
    }
    if (i >= l->n) {
        sp_buf_free(&b);
        return lx_err(l, "unterminated string literal");
    }
    char *s = ja_alloc(l->ar, b.len + 1);
    if (!s) {
        sp_buf_free(&b);
        return sp_err_set(l->err, SP_ERR_NOMEM, "out of memory lexing the chat template");
    }
    if (b.len)
        memcpy(s, b.data, b.len);
    t->s = s;
    t->len = b.len;
    sp_buf_free(&b);
    lx_adv(l, i + 1 - l->p);
    return SP_OK;
}

static const char *const lx_ops2[] = {"==", "!=", "<=", ">=", "//", "**"};

/* Tokens inside {{ }} or {% %} up to the closing delimiter. */
static enum sp_status lx_expr(struct lx *l, char close, char tag, bool *raw)
{
    size_t n_in_tag = 0;
    for (;;) {
        while (l->p < l->n && is_ws(l->s[l->p]))
            lx_adv(l, 1);
        if (l->p >= l->n)
            return lx_err(l, close == '}' ? "unclosed '{{'" : "unclosed '{%'");
        const char *c = l->s + l->p;
        size_t left = l->n - l->p;
        bool minus = left >= 3 && c[0] == '-' && c[1] == close && c[2] == '}';
        bool plus = left >= 3 && c[0] == '+' && c[1] == close && c[2] == '}';
        if (minus || plus || (left >= 2 && c[0] == close && c[1] == '}')) {
            struct jtok *t = lx_push(l, close == '}' ? JT_VAR_END : JT_BLOCK_END);
            if (!t)
                return sp_err_set(l->err, SP_ERR_NOMEM, "out of memory lexing the chat template");
            lx_adv(l, minus || plus ? 3 : 2);
            if (minus)
                l->strip_next = true;
            else if (tag == '%' && l->p < l->n && l->s[l->p] == '\n' && !*raw)
                lx_adv(l, 1); /* trim_blocks */
            return SP_OK;
        }
        struct jtok *t = lx_push(l, JT_OP);
        if (!t)
            return sp_err_set(l->err, SP_ERR_NOMEM, "out of memory lexing the chat template");
        if (is_id0(c[0])) {
            size_t k = 1;
            while (k < left && is_id(c[k]))
                k++;
            t->kind = JT_NAME;
            char *s = ja_alloc(l->ar, k + 1);
            if (!s)
                return sp_err_set(l->err, SP_ERR_NOMEM, "out of memory lexing the chat template");
            memcpy(s, c, k);
            t->s = s;
            t->len = k;
            if (n_in_tag == 0 && tag == '%' && k == 3 && !memcmp(c, "raw", 3))
                *raw = true;
            lx_adv(l, k);
        } else if (c[0] >= '0' && c[0] <= '9') {
            size_t k = 0;
            bool flt = false;
            char num[64];
            size_t nn = 0;
            while (k < left && ((c[k] >= '0' && c[k] <= '9') || c[k] == '_' ||
                                (c[k] == '.' && !flt && k + 1 < left && c[k + 1] >= '0' && c[k + 1] <= '9') ||
                                ((c[k] == 'e' || c[k] == 'E') && k + 1 < left))) {
                if (c[k] == 'e' || c[k] == 'E') {
                    flt = true;
                    if (nn < sizeof num - 1)
                        num[nn++] = c[k];
                    k++;
                    if (k < left && (c[k] == '+' || c[k] == '-') && nn < sizeof num - 1)
                        num[nn++] = c[k++];
                    continue;
                }
                if (c[k] == '.')
                    flt = true;
                if (c[k] != '_' && nn < sizeof num - 1)
                    num[nn++] = c[k];
                k++;
            }
            num[nn] = 0;
            if (flt) {
                t->kind = JT_FLOAT;
                if (!sp_parse_double(num, &t->f))
                    return lx_err(l, "bad number literal");
            } else {
                t->kind = JT_INT;
                if (!sp_parse_i64(num, 0, INT64_MAX, &t->i))
                    return lx_err(l, "integer literal out of range");
            }
            lx_adv(l, k);
        } else if (c[0] == '\'' || c[0] == '"') {
            t->kind = JT_STRING;
            enum sp_status st = lx_string(l, t);
            if (st != SP_OK)
                return st;
        } else {
            size_t k = 1;
            for (size_t i = 0; i < SP_ARRAY_LEN(lx_ops2); i++)
                if (left >= 2 && c[0] == lx_ops2[i][0] && c[1] == lx_ops2[i][1])
                    k = 2;
            if (k == 1 && !strchr("()[]{}.,:|~+-*/%=<>!", c[0]))
                return lx_err(l, "unexpected character in an expression");
            memcpy(t->op, c, k);
            lx_adv(l, k);
        }
        n_in_tag++;
    }
}

/* After {% raw %}: everything up to {% endraw %} is text. */
static enum sp_status lx_raw(struct lx *l)
{
    for (size_t i = l->p; i + 1 < l->n; i++) {
        if (l->s[i] != '{' || l->s[i + 1] != '%')
            continue;
        size_t k = i + 2;
        if (k < l->n && (l->s[k] == '-' || l->s[k] == '+'))
            k++;
        while (k < l->n && is_ws(l->s[k]))
            k++;
        if (l->n - k >= 6 && !memcmp(l->s + k, "endraw", 6)) {
            char mod = l->s[i + 2] == '-' ? '-' : 0;
            enum sp_status st = lx_text(l, i, '%', mod);
            if (st != SP_OK)
                return st;
            return SP_OK;
        }
    }
    return lx_err(l, "{% raw %} without {% endraw %}");
}

enum sp_status jinja_lex(const char *src, size_t len, struct jarena *ar, struct jtoks *out, struct sp_err *err)
{
    memset(out, 0, sizeof *out);
    /* normalise newlines, drop one trailing newline */
    char *s = ja_alloc(ar, len + 1);
    if (!s)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory lexing the chat template");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n > 0 && s[n - 1] == '\n')
        n--;
    s[n] = 0;
    struct lx l = {.s = s, .n = n, .line = 1, .col = 1, .ar = ar, .out = out, .err = err};
    enum sp_status st;
    while (l.p < l.n) {
        const char *m = NULL;
        for (size_t i = l.p; i + 1 < l.n; i++)
            if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) {
                m = s + i;
                break;
            }
        if (!m) {
            if ((st = lx_text(&l, l.n, 0, 0)) != SP_OK)
                return st;
            break;
        }
        size_t at = (size_t)(m - s);
        char tag = m[1];
        char mod = at + 2 < l.n && (m[2] == '-' || m[2] == '+') ? m[2] : 0;
        if ((st = lx_text(&l, at, tag, mod)) != SP_OK)
            return st;
        if (tag == '#') {
            const char *e = NULL;
            for (size_t i = l.p + 2; i + 1 < l.n; i++)
                if (s[i] == '#' && s[i + 1] == '}') {
                    e = s + i;
                    break;
                }
            if (!e)
                return lx_err(&l, "unclosed comment '{#'");
            size_t ep = (size_t)(e - s);
            bool minus = ep > l.p + 2 && s[ep - 1] == '-';
            lx_adv(&l, ep + 2 - l.p);
            if (minus)
                l.strip_next = true;
            else if (l.p < l.n && s[l.p] == '\n')
                lx_adv(&l, 1);
            continue;
        }
        struct jtok *t = lx_push(&l, tag == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN);
        if (!t)
            return sp_err_set(err, SP_ERR_NOMEM, "out of memory lexing the chat template");
        lx_adv(&l, mod ? 3 : 2);
        bool raw = false;
        if ((st = lx_expr(&l, tag == '{' ? '}' : '%', tag, &raw)) != SP_OK)
            return st;
        if (raw) {
            /* drop the raw tag's tokens; its body is text */
            out->n -= 3;
            if ((st = lx_raw(&l)) != SP_OK)
                return st;
            /* skip the {% endraw %} tag */
            while (l.p < l.n && !(s[l.p] == '%' && l.p + 1 < l.n && s[l.p + 1] == '}'))
                lx_adv(&l, 1);
            bool minus = l.p > 0 && s[l.p - 1] == '-';
            lx_adv(&l, 2);
            if (minus)
                l.strip_next = true;
            else if (l.p < l.n && s[l.p] == '\n')
                lx_adv(&l, 1);
        }
    }
    struct jtok *e = lx_push(&l, JT_EOF);
    if (!e)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory lexing the chat template");
    return SP_OK;
}
