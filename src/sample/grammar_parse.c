/* grammar_parse.c - GBNF text -> struct grammar.
 *
 * A recursive-descent parser over the text. Each rule collects its elements
 * in its own growable array while it is parsed; groups and repetitions
 * become generated rules (x* -> R ::= x R | ; x+ -> x R*; x? -> R ::= x | ;
 * x{m,n} -> m copies of x then a chain of n-m optional rules), so the
 * compiled form only has CLASS, REF, ALT and END. Afterwards: every
 * referenced rule must be defined, `root` must exist, and no rule may reach
 * itself without consuming a character (left recursion; found from the
 * nullable rules and a DFS). Then the rules are flattened into one array.
 * Every count is capped (GRAMMAR_MAX_TEXT, rules, elements, nesting,
 * repetition bounds); errors name the line:column. */
#include "sample/grammar_impl.h"

#include <stdio.h>
#include <string.h>

#define MAX_RULES 8192u
#define NAME_HASH 16384u /* open-addressing table of named rules (> MAX_RULES) */
#define MAX_ELEMS (1u << 20)
#define MAX_NEST 64
#define MAX_REPEAT 1000u
#define MAX_RANGES (1u << 20)

struct prule {
    const char *name; /* into the text; NULL for generated rules */
    size_t name_len;
    struct gelem *el;
    uint32_t n, cap;
    bool defined;
    size_t ref_pos; /* where first referenced (for "undefined rule" errors) */
};

struct parser {
    const char *s;
    size_t n, i;
    struct prule *rules;
    uint32_t n_rules, cap_rules;
    uint32_t *hash; /* [NAME_HASH] rule index + 1, 0 = empty */
    uint32_t total_el;
    struct gclass *cls;
    uint32_t n_cls, cap_cls;
    struct grange *rng;
    uint32_t n_rng, cap_rng;
    struct sp_err *err;
};

static enum sp_status perr(struct parser *p, size_t pos, enum sp_status code, const char *what)
{
    size_t line = 1, col = 1;
    for (size_t k = 0; k < pos && k < p->n; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (p->err)
        p->err->offset = (long long)pos;
    return sp_err_set(p->err, code, "grammar %zu:%zu: %s", line, col, what);
}

static enum sp_status grow(void **arr, uint32_t *cap, uint32_t need, size_t elsz)
{
    if (need <= *cap)
        return SP_OK;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *q = sp_realloc(*arr, (size_t)nc * elsz);
    if (!q)
        return SP_ERR_NOMEM;
    *arr = q;
    *cap = nc;
    return SP_OK;
}

static enum sp_status new_rule(struct parser *p, const char *name, size_t len, uint32_t *out)
{
    if (p->n_rules >= MAX_RULES)
        return perr(p, p->i, SP_ERR_LIMIT, "too many rules (generated ones included; at most 8192)");
    if (grow((void **)&p->rules, &p->cap_rules, p->n_rules + 1, sizeof(*p->rules)))
        return sp_err_set(p->err, SP_ERR_NOMEM, "out of memory parsing a grammar");
    struct prule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->name_len = len;
    r->ref_pos = p->i;
    *out = p->n_rules++;
    return SP_OK;
}

static enum sp_status emit(struct parser *p, uint32_t r, uint32_t type, uint32_t v)
{
    if (p->total_el >= MAX_ELEMS)
        return perr(p, p->i, SP_ERR_LIMIT, "grammar too large (more than 1M elements after expansion)");
    struct prule *pr = &p->rules[r];
    if (grow((void **)&pr->el, &pr->cap, pr->n + 1, sizeof(*pr->el)))
        return sp_err_set(p->err, SP_ERR_NOMEM, "out of memory parsing a grammar");
    pr->el[pr->n++] = (struct gelem){type, v};
    p->total_el++;
    return SP_OK;
}

static enum sp_status add_range(struct parser *p, uint32_t lo, uint32_t hi)
{
    if (p->n_rng >= MAX_RANGES)
        return perr(p, p->i, SP_ERR_LIMIT, "too many character ranges");
    if (grow((void **)&p->rng, &p->cap_rng, p->n_rng + 1, sizeof(*p->rng)))
        return sp_err_set(p->err, SP_ERR_NOMEM, "out of memory parsing a grammar");
    p->rng[p->n_rng++] = (struct grange){lo, hi};
    return SP_OK;
}

/* Start a class; ranges added after this belong to it until class_end. */
static enum sp_status class_begin(struct parser *p, bool neg, uint32_t *idx)
{
    if (grow((void **)&p->cls, &p->cap_cls, p->n_cls + 1, sizeof(*p->cls)))
        return sp_err_set(p->err, SP_ERR_NOMEM, "out of memory parsing a grammar");
    struct gclass *c = &p->cls[p->n_cls];
    memset(c, 0, sizeof(*c));
    c->first = p->n_rng;
    c->neg = neg;
    *idx = p->n_cls++;
    return SP_OK;
}

static void class_end(struct parser *p, uint32_t idx)
{
    struct gclass *c = &p->cls[idx];
    c->n = p->n_rng - c->first;
    for (uint32_t cp = 0; cp < 128; cp++) {
        bool in = false;
        for (uint32_t k = 0; k < c->n && !in; k++)
            in = cp >= p->rng[c->first + k].lo && cp <= p->rng[c->first + k].hi;
        if (in != c->neg)
            c->ascii[cp >> 6] |= 1ull << (cp & 63);
    }
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void skip_ws(struct parser *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->i++;
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n')
                p->i++;
        } else {
            break;
        }
    }
}

static size_t name_end(const struct parser *p, size_t i)
{
    while (i < p->n && is_name_char(p->s[i]))
        i++;
    return i;
}

/* Is a `name ::=` rule head at i? */
static bool rule_head_at(const struct parser *p, size_t i)
{
    size_t e = name_end(p, i);
    if (e == i)
        return false;
    while (e < p->n && (p->s[e] == ' ' || p->s[e] == '\t' || p->s[e] == '\n' || p->s[e] == '\r'))
        e++;
    return e + 3 <= p->n && memcmp(p->s + e, "::=", 3) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (escapes, UTF-8) at p->i. */
static enum sp_status read_char(struct parser *p, uint32_t *cp)
{
    if (p->i >= p->n)
        return perr(p, p->i, SP_ERR_INVALID, "unexpected end of grammar");
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '\\') {
        if (p->i + 1 >= p->n)
            return perr(p, p->i, SP_ERR_INVALID, "unexpected end after '\\'");
        char e = p->s[p->i + 1];
        p->i += 2;
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            uint32_t v = 0;
            for (int k = 0; k < digits; k++) {
                int h = p->i < p->n ? hexval(p->s[p->i]) : -1;
                if (h < 0)
                    return perr(p, p->i, SP_ERR_INVALID, "bad hex escape");
                v = v * 16 + (uint32_t)h;
                p->i++;
            }
            if (v > 0x10FFFF)
                return perr(p, p->i, SP_ERR_INVALID, "escape beyond U+10FFFF");
            *cp = v;
            return SP_OK;
        }
        switch (e) {
        case 'n': *cp = '\n'; return SP_OK;
        case 'r': *cp = '\r'; return SP_OK;
        case 't': *cp = '\t'; return SP_OK;
        case '0': *cp = 0; return SP_OK;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '\'':
            *cp = (uint32_t)e;
            return SP_OK;
        default:
            return perr(p, p->i - 2, SP_ERR_INVALID, "unknown escape");
        }
    }
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || p->i + (size_t)len > p->n)
        return perr(p, p->i, SP_ERR_INVALID, "invalid UTF-8 in grammar");
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (int k = 1; k < len; k++) {
        unsigned char d = (unsigned char)p->s[p->i + (size_t)k];
        if ((d & 0xC0) != 0x80)
            return perr(p, p->i, SP_ERR_INVALID, "invalid UTF-8 in grammar");
        v = (v << 6) | (d & 0x3Fu);
    }
    p->i += (size_t)len;
    *cp = v;
    return SP_OK;
}

static enum sp_status parse_alts(struct parser *p, uint32_t r, int depth);

/* The named rule text[at, e), created (undefined) when new. */
static enum sp_status rule_named(struct parser *p, size_t at, size_t e, uint32_t *out)
{
    uint32_t h = 2166136261u;
    for (size_t k = at; k < e; k++)
        h = (h ^ (uint8_t)p->s[k]) * 16777619u;
    for (uint32_t slot = h & (NAME_HASH - 1);; slot = (slot + 1) & (NAME_HASH - 1)) {
        uint32_t v = p->hash[slot];
        if (!v) {
            p->i = at;
            enum sp_status st = new_rule(p, p->s + at, e - at, out);
            if (st == SP_OK)
                p->hash[slot] = *out + 1;
            return st;
        }
        const struct prule *r = &p->rules[v - 1];
        if (r->name_len == e - at && memcmp(r->name, p->s + at, e - at) == 0) {
            *out = v - 1;
            return SP_OK;
        }
    }
}

/* Copy elements [from, to) of rule src to the end of rule dst. */
static enum sp_status copy_elems(struct parser *p, uint32_t dst, uint32_t src, uint32_t from, uint32_t to)
{
    for (uint32_t k = from; k < to; k++) {
        struct gelem e = p->rules[src].el[k];
        enum sp_status st = emit(p, dst, e.type, e.v);
        if (st)
            return st;
    }
    return SP_OK;
}

/* Apply a repetition {mn, mx} (mx = UINT32_MAX: unbounded) to the last
 * symbol of rule r, elements [last, n). */
static enum sp_status repeat(struct parser *p, uint32_t r, uint32_t last, uint32_t mn, uint32_t mx)
{
    enum sp_status st;
    uint32_t sym;
    if ((st = new_rule(p, NULL, 0, &sym)))
        return st;
    if ((st = copy_elems(p, sym, r, last, p->rules[r].n)) || (st = emit(p, sym, GE_END, 0)))
        return st;
    p->total_el -= p->rules[r].n - last;
    p->rules[r].n = last;
    for (uint32_t k = 0; k < mn; k++)
        if ((st = emit(p, r, GE_REF, sym)))
            return st;
    if (mx == mn)
        return SP_OK;
    uint32_t tail;
    if (mx == UINT32_MAX) { /* tail ::= sym tail | */
        if ((st = new_rule(p, NULL, 0, &tail)))
            return st;
        if ((st = emit(p, tail, GE_REF, sym)) || (st = emit(p, tail, GE_REF, tail)) ||
            (st = emit(p, tail, GE_ALT, 0)) || (st = emit(p, tail, GE_END, 0)))
            return st;
        return emit(p, r, GE_REF, tail);
    }
    /* opt_k ::= sym opt_{k+1} | ; the last one ::= sym | */
    uint32_t next = UINT32_MAX;
    for (uint32_t k = mn; k < mx; k++) {
        uint32_t o;
        if ((st = new_rule(p, NULL, 0, &o)) || (st = emit(p, o, GE_REF, sym)))
            return st;
        if (next != UINT32_MAX && (st = emit(p, o, GE_REF, next)))
            return st;
        if ((st = emit(p, o, GE_ALT, 0)) || (st = emit(p, o, GE_END, 0)))
            return st;
        next = o;
    }
    return emit(p, r, GE_REF, next);
}

static enum sp_status read_count(struct parser *p, uint32_t *out)
{
    size_t s = p->i;
    uint32_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        v = v * 10 + (uint32_t)(p->s[p->i] - '0');
        if (v > MAX_REPEAT)
            return perr(p, s, SP_ERR_LIMIT, "repetition count above 1000");
        p->i++;
    }
    if (p->i == s)
        return perr(p, s, SP_ERR_INVALID, "expected a number");
    *out = v;
    return SP_OK;
}

static enum sp_status parse_seq(struct parser *p, uint32_t r, int depth)
{
    enum sp_status st;
    uint32_t last = UINT32_MAX; /* start of the last symbol */
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n)
            return SP_OK;
        char c = p->s[p->i];
        if (c == '|' || c == ')')
            return SP_OK;
        if (is_name_char(c)) {
            if (rule_head_at(p, p->i)) {
                if (depth > 0)
                    return perr(p, p->i, SP_ERR_INVALID, "rule definition inside a group (missing ')')");
                return SP_OK;
            }
            size_t e = name_end(p, p->i);
            uint32_t ref;
            if ((st = rule_named(p, p->i, e, &ref)))
                return st;
            last = p->rules[r].n;
            if ((st = emit(p, r, GE_REF, ref)))
                return st;
            p->i = e;
        } else if (c == '"') {
            last = p->rules[r].n;
            p->i++;
            while (p->i < p->n && p->s[p->i] != '"') {
                uint32_t cp, ci;
                if ((st = read_char(p, &cp)) || (st = class_begin(p, false, &ci)) || (st = add_range(p, cp, cp)))
                    return st;
                class_end(p, ci);
                if ((st = emit(p, r, GE_CLASS, ci)))
                    return st;
            }
            if (p->i >= p->n)
                return perr(p, p->i, SP_ERR_INVALID, "unterminated string literal");
            p->i++;
            if (last == p->rules[r].n)
                last = UINT32_MAX; /* "" matches the empty string: nothing to repeat */
        } else if (c == '[') {
            size_t at = p->i++;
            bool neg = p->i < p->n && p->s[p->i] == '^';
            if (neg)
                p->i++;
            uint32_t ci;
            if ((st = class_begin(p, neg, &ci)))
                return st;
            while (p->i < p->n && p->s[p->i] != ']') {
                uint32_t lo, hi;
                if ((st = read_char(p, &lo)))
                    return st;
                hi = lo;
                if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
                    p->i++;
                    if ((st = read_char(p, &hi)))
                        return st;
                    if (hi < lo)
                        return perr(p, at, SP_ERR_INVALID, "character range is reversed");
                }
                if ((st = add_range(p, lo, hi)))
                    return st;
            }
            if (p->i >= p->n)
                return perr(p, at, SP_ERR_INVALID, "expected ']' to close the character class");
            p->i++;
            class_end(p, ci);
            last = p->rules[r].n;
            if ((st = emit(p, r, GE_CLASS, ci)))
                return st;
        } else if (c == '.') {
            uint32_t ci;
            if ((st = class_begin(p, true, &ci)))
                return st;
            class_end(p, ci);
            p->i++;
            last = p->rules[r].n;
            if ((st = emit(p, r, GE_CLASS, ci)))
                return st;
        } else if (c == '(') {
            size_t at = p->i++;
            if (depth + 1 > MAX_NEST)
                return perr(p, at, SP_ERR_LIMIT, "groups nested too deeply (more than 64)");
            uint32_t g;
            if ((st = new_rule(p, NULL, 0, &g)) || (st = parse_alts(p, g, depth + 1)))
                return st;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ')')
                return perr(p, at, SP_ERR_INVALID, "expected ')' to close the group");
            p->i++;
            last = p->rules[r].n;
            if ((st = emit(p, r, GE_REF, g)))
                return st;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            size_t at = p->i++;
            if (last == UINT32_MAX)
                return perr(p, at, SP_ERR_INVALID, "repetition without a preceding symbol");
            uint32_t mn = c == '+' ? 1 : 0, mx = c == '?' ? 1 : UINT32_MAX;
            if (c == '{') {
                skip_ws(p);
                if ((st = read_count(p, &mn)))
                    return st;
                skip_ws(p);
                mx = mn;
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    skip_ws(p);
                    mx = UINT32_MAX;
                    if (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9' && (st = read_count(p, &mx)))
                        return st;
                    skip_ws(p);
                }
                if (p->i >= p->n || p->s[p->i] != '}')
                    return perr(p, at, SP_ERR_INVALID, "expected '}' to close the repetition");
                p->i++;
                if (mx < mn)
                    return perr(p, at, SP_ERR_INVALID, "repetition maximum below its minimum");
            }
            if ((st = repeat(p, r, last, mn, mx)))
                return st;
            last = UINT32_MAX;
        } else {
            return perr(p, p->i, SP_ERR_INVALID, "unexpected character");
        }
    }
}

static enum sp_status parse_alts(struct parser *p, uint32_t r, int depth)
{
    enum sp_status st;
    if ((st = parse_seq(p, r, depth)))
        return st;
    while (p->i < p->n && p->s[p->i] == '|') {
        p->i++;
        if ((st = emit(p, r, GE_ALT, 0)) || (st = parse_seq(p, r, depth)))
            return st;
    }
    return emit(p, r, GE_END, 0);
}

/* Refuse left recursion: a rule reaching itself through references at the
 * start of an alternative (past nullable rules). */
static enum sp_status check_left_rec(struct parser *p)
{
    uint32_t n = p->n_rules;
    bool *nullable = sp_calloc(n, sizeof(bool));
    uint8_t *color = sp_calloc(n, 1);
    uint32_t *stk = sp_calloc(n, sizeof(uint32_t) * 2);
    enum sp_status st = SP_OK;
    if (!nullable || !color || !stk) {
        st = sp_err_set(p->err, SP_ERR_NOMEM, "out of memory checking a grammar");
        goto done;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < n; r++) {
            if (nullable[r])
                continue;
            bool alt_ok = true;
            for (uint32_t k = 0; k < p->rules[r].n; k++) {
                struct gelem e = p->rules[r].el[k];
                if (e.type == GE_ALT || e.type == GE_END) {
                    if (alt_ok) {
                        nullable[r] = changed = true;
                        break;
                    }
                    alt_ok = true;
                } else if (e.type == GE_CLASS || (e.type == GE_REF && !nullable[e.v])) {
                    alt_ok = false;
                }
            }
        }
    }
    /* iterative DFS over "left" edges; stk holds (rule, element cursor) */
    for (uint32_t s = 0; s < n && st == SP_OK; s++) {
        if (color[s])
            continue;
        uint32_t sp = 0;
        stk[0] = s;
        stk[1] = 0;
        color[s] = 1;
        sp = 1;
        while (sp > 0 && st == SP_OK) {
            uint32_t r = stk[2 * (sp - 1)], *cur = &stk[2 * (sp - 1) + 1];
            bool pushed = false;
            bool at_start = true;
            /* find the next left edge from *cur: an element reachable at the
             * start of its alternative */
            for (uint32_t k = 0; k < p->rules[r].n; k++) {
                struct gelem e = p->rules[r].el[k];
                if (e.type == GE_ALT || e.type == GE_END) {
                    at_start = true;
                    continue;
                }
                bool left = at_start && e.type == GE_REF;
                if (e.type == GE_CLASS || (e.type == GE_REF && !nullable[e.v]))
                    at_start = false;
                if (!left || k < *cur)
                    continue;
                *cur = k + 1;
                if (color[e.v] == 1) {
                    const struct prule *pr = &p->rules[e.v];
                    char msg[160];
                    if (pr->name)
                        (void)snprintf(msg, sizeof msg, "rule '%.*s' is left-recursive", (int)SP_MIN(pr->name_len, 64),
                                       pr->name);
                    else
                        (void)snprintf(msg, sizeof msg, "a group or repetition is left-recursive");
                    st = perr(p, pr->ref_pos, SP_ERR_INVALID, msg);
                    break;
                }
                if (color[e.v] == 0) {
                    color[e.v] = 1;
                    stk[2 * sp] = e.v;
                    stk[2 * sp + 1] = 0;
                    sp++;
                    pushed = true;
                    break;
                }
            }
            if (!pushed && st == SP_OK) {
                color[r] = 2;
                sp--;
            }
        }
    }
done:
    sp_free(nullable);
    sp_free(color);
    sp_free(stk);
    return st;
}

size_t grammar_n_rules(const struct grammar *g) { return g ? g->n_rules : 0; }

void grammar_free(struct grammar *g)
{
    if (!g)
        return;
    sp_free(g->el);
    sp_free(g->rule_start);
    sp_free(g->cls);
    sp_free(g->rng);
    sp_free(g);
}

enum sp_status grammar_parse(const char *text, size_t len, struct grammar **out, struct sp_err *err)
{
    *out = NULL;
    struct parser p;
    memset(&p, 0, sizeof(p));
    p.s = text;
    p.n = len;
    p.err = err;
    enum sp_status st = SP_OK;
    struct grammar *g = NULL;
    if (len > GRAMMAR_MAX_TEXT)
        return sp_err_set(err, SP_ERR_LIMIT, "grammar is %zu bytes (at most %u)", len, GRAMMAR_MAX_TEXT);
    p.hash = sp_calloc(NAME_HASH, sizeof(uint32_t));
    if (!p.hash)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory parsing a grammar");
    for (;;) {
        skip_ws(&p);
        if (p.i >= p.n)
            break;
        size_t at = p.i, e = name_end(&p, p.i);
        if (e == at) {
            st = perr(&p, at, SP_ERR_INVALID, "expected a rule name");
            goto fail;
        }
        p.i = e;
        skip_ws(&p);
        if (p.i + 3 > p.n || memcmp(p.s + p.i, "::=", 3) != 0) {
            st = perr(&p, p.i, SP_ERR_INVALID, "expected '::=' after the rule name");
            goto fail;
        }
        p.i += 3;
        size_t body = p.i;
        uint32_t r;
        if ((st = rule_named(&p, at, e, &r)))
            goto fail;
        p.i = body;
        if (p.rules[r].defined) {
            st = perr(&p, at, SP_ERR_INVALID, "rule defined twice");
            goto fail;
        }
        p.rules[r].defined = true;
        if ((st = parse_alts(&p, r, 0)))
            goto fail;
        if (p.i < p.n && p.s[p.i] == ')') {
            st = perr(&p, p.i, SP_ERR_INVALID, "unbalanced ')'");
            goto fail;
        }
    }
    uint32_t root = UINT32_MAX;
    for (uint32_t k = 0; k < p.n_rules; k++) {
        struct prule *pr = &p.rules[k];
        if (pr->name && !pr->defined) {
            char msg[128];
            (void)snprintf(msg, sizeof msg, "rule '%.*s' is used but not defined", (int)SP_MIN(pr->name_len, 64),
                           pr->name);
            st = perr(&p, pr->ref_pos, SP_ERR_INVALID, msg);
            goto fail;
        }
        if (!pr->name)
            pr->defined = true;
        if (pr->name && pr->name_len == 4 && memcmp(pr->name, "root", 4) == 0)
            root = k;
    }
    if (root == UINT32_MAX) {
        st = sp_err_set(err, SP_ERR_INVALID, "grammar has no 'root' rule");
        goto fail;
    }
    if ((st = check_left_rec(&p)))
        goto fail;
    g = sp_calloc(1, sizeof(*g));
    if (!g || !(g->rule_start = sp_calloc(p.n_rules, sizeof(uint32_t))) ||
        !(g->el = sp_calloc(p.total_el ? p.total_el : 1, sizeof(struct gelem)))) {
        st = sp_err_set(err, SP_ERR_NOMEM, "out of memory compiling a grammar");
        goto fail;
    }
    for (uint32_t k = 0; k < p.n_rules; k++) {
        g->rule_start[k] = g->n_el;
        memcpy(g->el + g->n_el, p.rules[k].el, p.rules[k].n * sizeof(struct gelem));
        g->n_el += p.rules[k].n;
    }
    g->n_rules = p.n_rules;
    g->root = root;
    g->cls = p.cls;
    g->n_cls = p.n_cls;
    g->rng = p.rng;
    g->n_rng = p.n_rng;
    p.cls = NULL;
    p.rng = NULL;
    *out = g;
    g = NULL;
fail:
    for (uint32_t k = 0; k < p.n_rules; k++)
        sp_free(p.rules[k].el);
    sp_free(p.rules);
    sp_free(p.hash);
    sp_free(p.cls);
    sp_free(p.rng);
    grammar_free(g);
    return st;
}
