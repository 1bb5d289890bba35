/* grammar.c - the pushdown matcher, the token trie and token masks.
 *
 * A state is a set of stacks of element positions plus a pending partial
 * UTF-8 character, serialised as uint32 words: [n_stacks][partial value]
 * [partial need/total] then each stack as [len][pos...] (top last). The top
 * of every non-empty stack is a CLASS element; an empty stack means the
 * grammar can end. expand() turns "continue at position p" into such stacks
 * (pushing return positions for REFs except in tail position, popping at the
 * end of an alternative); step() advances a whole state by one byte
 * (complete characters move stacks past their class, partial ones keep the
 * stacks whose class can still match). Stack depth and count are capped
 * (stacks past the caps are dropped, which can only forbid text), and so
 * is the work one step may do (MAX_STEP_WORK).
 *
 * The vocabulary is a byte trie in preorder (node i's subtree ends at
 * end[i]; its tokens are toks[tok_at[i] .. tok_at[end[i]]); nodes with many
 * descendants carry a 256-bit summary of the bytes below them). A mask
 * walks it once, keeping one state per depth: a node whose byte kills the
 * state skips its whole subtree; a node reached with a live state allows the
 * tokens ending there. grammar_mask_reference here is that walk plainly;
 * grammar_mask.c gives the same masks faster (memoised steps, cache). */
#include "sample/grammar_impl.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STACKS 256u  /* stacks per state */
/* work units (expand calls + stacks scanned for duplicates) one step may
 * spend; past it further stacks are dropped like those past the caps, so a
 * grammar such as ("a"|){470} costs bounded time per byte instead of
 * hundreds of thousands of expansions (the same bound for a mask and an
 * accept, so both see the same state) */
#define MAX_STEP_WORK (1u << 17)

/* ---- vocabulary trie */
struct vsort {
    const char *pieces;
    const uint32_t *off;
};
static struct vsort g_vs; /* qsort has no context argument: only used under grammar_vocab_new */

static int tok_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = g_vs.off[x + 1] - g_vs.off[x], ly = g_vs.off[y + 1] - g_vs.off[y];
    int c = memcmp(g_vs.pieces + g_vs.off[x], g_vs.pieces + g_vs.off[y], SP_MIN(lx, ly));
    if (c)
        return c;
    return lx != ly ? (lx < ly ? -1 : 1) : (x < y ? -1 : x > y);
}

void grammar_vocab_free(struct grammar_vocab *v)
{
    if (!v)
        return;
    sp_free(v->byte);
    sp_free(v->depth);
    sp_free(v->end);
    sp_free(v->tok_at);
    sp_free(v->toks);
    sp_free(v->sum_at);
    sp_free(v->sum);
    sp_free(v->eog);
    sp_free(v->text);
    sp_free(v->off);
    sp_free(v->kind);
    sp_free(v);
}

int grammar_vocab_size(const struct grammar_vocab *v) { return v->n_vocab; }

enum sp_status grammar_vocab_new(int n_vocab, const char *pieces, const uint32_t *off, const uint8_t *kind,
                                 struct grammar_vocab **out, struct sp_err *err)
{
    *out = NULL;
    if (n_vocab < 1)
        return sp_err_set(err, SP_ERR_INVALID, "grammar vocabulary is empty");
    struct grammar_vocab *v = sp_calloc(1, sizeof(*v));
    int32_t *ids = sp_calloc((size_t)n_vocab, sizeof(int32_t));
    uint32_t *node_of = sp_calloc((size_t)n_vocab, sizeof(uint32_t)); /* [k]: node of sorted token k */
    size_t max_nodes = 1;
    for (int i = 0; i < n_vocab; i++)
        max_nodes += SP_MIN(off[i + 1] - off[i], (uint32_t)GRAMMAR_MAX_TOK_BYTES);
    if (!v || !ids || !node_of)
        goto nomem;
    v->n_vocab = n_vocab;
    v->byte = sp_calloc(max_nodes, 1);
    v->depth = sp_calloc(max_nodes, 1);
    v->end = sp_calloc(max_nodes, sizeof(uint32_t));
    v->tok_at = sp_calloc(max_nodes + 1, sizeof(uint32_t));
    v->toks = sp_calloc((size_t)n_vocab, sizeof(int32_t));
    v->eog = sp_calloc((size_t)n_vocab, sizeof(int32_t));
    v->text = sp_malloc((size_t)off[n_vocab] + 1);
    v->off = sp_malloc(((size_t)n_vocab + 1) * sizeof(uint32_t));
    v->kind = sp_malloc((size_t)n_vocab);
    if (!v->byte || !v->depth || !v->end || !v->tok_at || !v->toks || !v->eog || !v->text || !v->off ||
        !v->kind)
        goto nomem;
    memcpy(v->text, pieces, off[n_vocab]);
    memcpy(v->off, off, ((size_t)n_vocab + 1) * sizeof(uint32_t));
    memcpy(v->kind, kind, (size_t)n_vocab);
    int n = 0;
    for (int i = 0; i < n_vocab; i++) {
        uint32_t len = off[i + 1] - off[i];
        if (kind[i] == GRAMMAR_TOK_EOG)
            v->eog[v->n_eog++] = i;
        else if (kind[i] == GRAMMAR_TOK_TEXT && len > 0 && len <= GRAMMAR_MAX_TOK_BYTES)
            ids[n++] = i;
    }
    g_vs.pieces = pieces;
    g_vs.off = off;
    qsort(ids, (size_t)n, sizeof(int32_t), tok_cmp);
    /* preorder build from sorted texts: path[d] = node at depth d */
    uint32_t path[GRAMMAR_MAX_TOK_BYTES + 1];
    uint32_t nn = 1, plen = 0; /* node 0 = root, depth 0 */
    path[0] = 0;
    const char *prev = NULL;
    uint32_t prev_len = 0;
    for (int k = 0; k < n; k++) {
        const char *t = pieces + off[ids[k]];
        uint32_t len = off[ids[k] + 1] - off[ids[k]];
        uint32_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && t[lcp] == prev[lcp])
            lcp++;
        if (prev && lcp == len && len == prev_len) { /* same text as the previous token */
            node_of[k] = path[plen];
            continue;
        }
        while (plen > lcp) { /* close nodes deeper than the shared prefix */
            v->end[path[plen]] = nn;
            plen--;
        }
        for (uint32_t d = lcp; d < len; d++) {
            v->byte[nn] = (uint8_t)t[d];
            v->depth[nn] = (uint8_t)(d + 1);
            path[++plen] = nn++;
        }
        node_of[k] = path[plen];
        prev = t;
        prev_len = len;
    }
    while (plen > 0) {
        v->end[path[plen]] = nn;
        plen--;
    }
    v->end[0] = nn;
    v->n_nodes = nn;
    /* tokens grouped by node in preorder (a counting sort), so that a
     * subtree's tokens are toks[tok_at[i] .. tok_at[end[i]]) */
    for (int k = 0; k < n; k++)
        v->tok_at[node_of[k] + 1]++;
    for (uint32_t i = 0; i < nn; i++)
        v->tok_at[i + 1] += v->tok_at[i];
    for (int k = 0; k < n; k++)
        v->toks[v->tok_at[node_of[k]]++] = ids[k];
    for (uint32_t i = nn; i > 0; i--) /* the placing moved each start to the next node's */
        v->tok_at[i] = v->tok_at[i - 1];
    v->tok_at[0] = 0;
    sp_free(ids);
    sp_free(node_of);
    /* byte summaries of big subtrees: the mask skips a subtree whose bytes
     * all lead its state back to itself */
    uint32_t n_sum = 0;
    for (uint32_t i = 0; i < nn; i++)
        n_sum += v->end[i] - i - 1 >= GRAMMAR_SUM_MIN;
    v->sum_at = sp_malloc((size_t)nn * sizeof(uint32_t));
    v->sum = sp_calloc((size_t)n_sum * 4 + 1, sizeof(uint64_t));
    if (!v->sum_at || !v->sum) {
        grammar_vocab_free(v);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory building the grammar vocabulary");
    }
    n_sum = 0;
    for (uint32_t i = 0; i < nn; i++) {
        v->sum_at[i] = UINT32_MAX;
        if (v->end[i] - i - 1 < GRAMMAR_SUM_MIN)
            continue;
        uint64_t *w = v->sum + (size_t)n_sum * 4;
        for (uint32_t j = i + 1; j < v->end[i]; j++)
            w[v->byte[j] >> 6] |= 1ull << (v->byte[j] & 63);
        v->sum_at[i] = n_sum++;
    }
    *out = v;
    return SP_OK;
nomem:
    sp_free(ids);
    sp_free(node_of);
    grammar_vocab_free(v);
    return sp_err_set(err, SP_ERR_NOMEM, "out of memory building the grammar vocabulary");
}

/* ---- states */
bool grammar_wb_reserve(struct wbuf *b, size_t more)
{
    if (b->n + more <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap * 2 : 1024;
    while (nc < b->n + more)
        nc *= 2;
    uint32_t *q = sp_realloc(b->w, nc * sizeof(uint32_t));
    if (!q) {
        b->oom = true;
        return false;
    }
    b->w = q;
    b->cap = nc;
    return true;
}

/* Add stack path[0..len) to the state being built at out[base..) unless present. */
static void add_stack(struct wbuf *out, size_t base, const uint32_t *path, uint32_t len, uint32_t *work)
{
    uint32_t ns = out->w[base];
    if (ns >= MAX_STACKS || *work >= MAX_STEP_WORK)
        return;
    *work += ns;
    size_t at = base + 3;
    for (uint32_t s = 0; s < ns; s++) {
        uint32_t l = out->w[at];
        if (l == len && memcmp(out->w + at + 1, path, len * sizeof(uint32_t)) == 0)
            return;
        at += 1 + l;
    }
    if (!grammar_wb_reserve(out, (size_t)len + 1))
        return;
    out->w[out->n++] = len;
    memcpy(out->w + out->n, path, len * sizeof(uint32_t));
    out->n += len;
    out->w[base]++;
}

/* Stacks for "path[0..len) with execution continuing at position pos". */
static void expand(const struct grammar *g, struct wbuf *out, size_t base, uint32_t *path, uint32_t len, uint32_t pos,
                   uint32_t *work)
{
    if (++*work >= MAX_STEP_WORK)
        return;
    const struct gelem *e = &g->el[pos];
    if (e->type == GE_END || e->type == GE_ALT) {
        if (len == 0) {
            add_stack(out, base, path, 0, work);
            return;
        }
        uint32_t ret = path[len - 1];
        expand(g, out, base, path, len - 1, ret, work);
        path[len - 1] = ret; /* deeper calls may have reused the slot */
        return;
    }
    if (len >= GRAMMAR_MAX_DEPTH)
        return;
    if (e->type == GE_CLASS) {
        uint32_t old = path[len];
        path[len] = pos;
        add_stack(out, base, path, len + 1, work);
        path[len] = old;
        return;
    }
    /* REF */
    uint32_t nl = len, old = path[len];
    uint32_t nt = g->el[pos + 1].type;
    if (nt != GE_END && nt != GE_ALT)
        path[nl++] = pos + 1;
    uint32_t a = g->rule_start[e->v];
    for (;;) {
        expand(g, out, base, path, nl, a, work);
        if (nl > len)
            path[len] = pos + 1;
        while (g->el[a].type != GE_ALT && g->el[a].type != GE_END)
            a++;
        if (g->el[a].type == GE_END)
            break;
        a++;
    }
    path[len] = old;
}

static bool class_has(const struct grammar *g, const struct gclass *c, uint32_t cp)
{
    if (cp < 128)
        return (c->ascii[cp >> 6] >> (cp & 63)) & 1;
    bool in = false;
    for (uint32_t k = 0; k < c->n && !in; k++)
        in = cp >= g->rng[c->first + k].lo && cp <= g->rng[c->first + k].hi;
    return in != c->neg;
}

/* Can class c match some code point in [lo, hi]? */
static bool class_meets(const struct grammar *g, const struct gclass *c, uint32_t lo, uint32_t hi)
{
    if (!c->neg) {
        for (uint32_t k = 0; k < c->n; k++)
            if (g->rng[c->first + k].lo <= hi && g->rng[c->first + k].hi >= lo)
                return true;
        return false;
    }
    /* negated: true unless the ranges cover [lo, hi] entirely */
    uint32_t cur = lo;
    for (bool moved = true; moved && cur <= hi;) {
        moved = false;
        for (uint32_t k = 0; k < c->n; k++)
            if (g->rng[c->first + k].lo <= cur && g->rng[c->first + k].hi >= cur) {
                if (g->rng[c->first + k].hi >= hi)
                    return false;
                cur = g->rng[c->first + k].hi + 1;
                moved = true;
            }
    }
    return true;
}

/* Advance state in[] by byte b into out (appended at out->n). Returns false
 * (out unchanged) when no stack survives. */
bool grammar_step(const struct grammar *g, const struct wbuf *inb, size_t inoff, struct wbuf *out, uint32_t *path,
                  uint8_t b)
{
    const uint32_t *in = inb->w + inoff;
    uint32_t pval = in[1], pneed = in[2] & 0xFF, ptot = in[2] >> 8;
    uint32_t cp = 0;
    bool complete = false;
    if (pneed == 0) {
        if (b < 0x80) {
            cp = b;
            complete = true;
        } else if (b >= 0xC2 && b <= 0xDF) {
            pval = b & 0x1Fu, pneed = 1, ptot = 2;
        } else if ((b & 0xF0) == 0xE0) {
            pval = b & 0x0Fu, pneed = 2, ptot = 3;
        } else if (b >= 0xF0 && b <= 0xF4) {
            pval = b & 0x07u, pneed = 3, ptot = 4;
        } else {
            return false;
        }
    } else {
        if ((b & 0xC0) != 0x80)
            return false;
        pval = (pval << 6) | (b & 0x3Fu);
        if (--pneed == 0) {
            cp = pval;
            complete = true;
            static const uint32_t minv[5] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp < minv[ptot] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return false;
        }
    }
    if (!grammar_wb_reserve(out, 3))
        return false;
    size_t base = out->n;
    out->w[base] = 0;
    out->w[base + 1] = complete ? 0 : pval;
    out->w[base + 2] = complete ? 0 : (pneed | ptot << 8);
    out->n += 3;
    uint32_t lo = 0, hi = 0;
    if (!complete) {
        lo = pval << (6 * pneed);
        hi = lo | ((1u << (6 * pneed)) - 1);
        static const uint32_t minv[5] = {0, 0, 0x80, 0x800, 0x10000};
        lo = SP_MAX(lo, minv[ptot]);
        hi = SP_MIN(hi, 0x10FFFFu);
        if (lo > hi) {
            out->n = base;
            return false;
        }
    }
    uint32_t ns = inb->w[inoff], work = 0;
    size_t soff = inoff + 3;
    for (uint32_t k = 0; k < ns; k++) {
        const uint32_t *s = inb->w + soff; /* out may be inb: re-read after growth */
        uint32_t len = s[0];
        if (len > 0) {
            uint32_t top = s[len];
            const struct gclass *c = &g->cls[g->el[top].v];
            if (complete ? class_has(g, c, cp) : class_meets(g, c, lo, hi)) {
                memcpy(path, s + 1, len * sizeof(uint32_t));
                if (complete)
                    expand(g, out, base, path, len - 1, top + 1, &work);
                else
                    add_stack(out, base, path, len, &work);
            }
        }
        soff += 1 + len;
    }
    if (out->w[base] == 0) {
        out->n = base;
        return false;
    }
    return true;
}

bool grammar_state_can_end(const uint32_t *st)
{
    if (st[2] != 0)
        return false;
    const uint32_t *s = st + 3;
    for (uint32_t k = 0; k < st[0]; k++) {
        if (s[0] == 0)
            return true;
        s += 1 + s[0];
    }
    return false;
}

enum sp_status grammar_matcher_new(const struct grammar *g, const struct grammar_vocab *v,
                                   struct grammar_matcher **out, struct sp_err *err)
{
    *out = NULL;
    struct grammar_matcher *m = sp_calloc(1, sizeof(*m));
    if (!m)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a grammar matcher");
    m->g = g;
    m->v = v;
    for (int i = 0; i < GRAMMAR_N_MASKS; i++)
        m->masks[i].state = -1;
    if (!grammar_wb_reserve(&m->st, 3)) {
        grammar_matcher_free(m);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a grammar matcher");
    }
    m->st.w[0] = m->st.w[1] = m->st.w[2] = 0;
    m->st.n = 3;
    uint32_t work = 0;
    expand(g, &m->st, 0, m->path, 0, g->rule_start[g->root], &work);
    if (m->st.oom) {
        grammar_matcher_free(m);
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory creating a grammar matcher");
    }
    *out = m;
    return SP_OK;
}

void grammar_matcher_free(struct grammar_matcher *m)
{
    if (!m)
        return;
    sp_free(m->st.w);
    sp_free(m->tmp.w);
    sp_free(m->arena.w);
    grammar_mask_free(m);
    sp_free(m);
}

bool grammar_can_end(const struct grammar_matcher *m) { return m->ended || grammar_state_can_end(m->st.w); }

bool grammar_done(const struct grammar_matcher *m)
{
    if (m->ended)
        return true;
    return m->st.w[0] == 1 && m->st.w[2] == 0 && m->st.w[3] == 0; /* only the empty stack */
}

bool grammar_accept_bytes(struct grammar_matcher *m, const char *s, size_t n)
{
    if (m->ended)
        return n == 0;
    m->tmp.n = 0;
    if (!grammar_wb_reserve(&m->tmp, m->st.n))
        return false;
    memcpy(m->tmp.w, m->st.w, m->st.n * sizeof(uint32_t));
    m->tmp.n = m->st.n;
    size_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        size_t next = m->tmp.n;
        if (!grammar_step(m->g, &m->tmp, cur, &m->tmp, m->path, (uint8_t)s[i]))
            return false;
        cur = next;
    }
    /* keep only the last state */
    size_t len = m->tmp.n - cur;
    m->st.n = 0;
    if (!grammar_wb_reserve(&m->st, len))
        return false;
    memcpy(m->st.w, m->tmp.w + cur, len * sizeof(uint32_t));
    m->st.n = len;
    return true;
}

bool grammar_accept(struct grammar_matcher *m, int32_t tok)
{
    const struct grammar_vocab *v = m->v;
    if (tok < 0 || tok >= v->n_vocab || m->ended)
        return false;
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == tok) {
            if (!grammar_state_can_end(m->st.w))
                return false;
            m->ended = true;
            return true;
        }
    uint32_t len = v->off[tok + 1] - v->off[tok];
    if (v->kind[tok] != GRAMMAR_TOK_TEXT || len == 0 || len > GRAMMAR_MAX_TOK_BYTES)
        return false;
    return grammar_accept_bytes(m, v->text + v->off[tok], len);
}

int grammar_mask_reference(struct grammar_matcher *m, uint8_t *allow)
{
    const struct grammar_vocab *v = m->v;
    memset(allow, 0, (size_t)v->n_vocab);
    if (m->ended)
        return 0;
    size_t lvl[GRAMMAR_MAX_TOK_BYTES + 1], endof[GRAMMAR_MAX_TOK_BYTES + 1];
    struct wbuf *a = &m->arena;
    a->n = 0;
    a->oom = false;
    if (!grammar_wb_reserve(a, m->st.n))
        return 0;
    memcpy(a->w, m->st.w, m->st.n * sizeof(uint32_t));
    lvl[0] = 0;
    endof[0] = a->n = m->st.n;
    int n_allowed = 0;
    uint32_t i = 1;
    while (i < v->n_nodes) {
        uint32_t d = v->depth[i];
        a->n = endof[d - 1]; /* drop the states of the previous subtree */
        if (!grammar_step(m->g, a, lvl[d - 1], a, m->path, v->byte[i])) {
            i = v->end[i];
            continue;
        }
        lvl[d] = endof[d - 1];
        endof[d] = a->n;
        for (uint32_t k = v->tok_at[i]; k < v->tok_at[i + 1]; k++) {
            allow[v->toks[k]] = 1;
            n_allowed++;
        }
        i++;
    }
    if (grammar_state_can_end(m->st.w))
        for (int k = 0; k < v->n_eog; k++) {
            allow[v->eog[k]] = 1;
            n_allowed++;
        }
    return n_allowed;
}
