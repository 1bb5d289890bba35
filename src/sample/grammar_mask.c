/* grammar_mask.c - token masks: a trie walk over a memo of the matcher's
 * byte steps, and a cache of recent masks.
 *
 * The mask of a state is a walk of the vocabulary trie keeping one state
 * per depth (grammar.c's grammar_mask_reference does exactly that with one
 * grammar_step per node). Here states are interned by their words into a
 * small lazily built DFA: state ids, and per state a row of 256 successor
 * ids (unknown until first needed, then the interned result of
 * grammar_step, or dead). grammar_step is a pure function of the state's
 * words and the byte (its caps and work budget included), so the memo gives
 * exactly the reference's masks, while most trie nodes cost one table
 * lookup: inside a JSON string nearly every byte leads back to the same
 * few states (partial UTF-8 characters included, see canon_partial). Masks are cached per state id (GRAMMAR_N_MASKS, replaced in
 * turn) as bitsets.
 *
 * Bounded: at most GDFA_MAX_STATES states and GDFA_MAX_WORDS words; a full
 * DFA is emptied before a mask (when over 3/4 full) or when a walk fills
 * it (the walk is redone once on the empty DFA, then falls back to the
 * reference walk), and out of memory falls back the same way. Memory per
 * matcher: rows 512 bytes and loop bits 64 bytes per state (4.5 MiB at
 * most), words 2 MiB at most, the hash 64 KiB, masks GRAMMAR_N_MASKS *
 * n_vocab / 8 bytes (300 KiB for 150k tokens). The vocabulary adds 4 bytes
 * per trie node and 32 per summarised node (grammar.c). */
#include "sample/grammar_impl.h"

#include <string.h>

#define GDFA_MAX_STATES 8192u /* fits the int16 rows */
#define GDFA_MAX_WORDS (1u << 19)
#define GDFA_HCAP (2 * GDFA_MAX_STATES)
#define GDFA_FAIL (-3) /* full or out of memory: the walk cannot go on */

void grammar_mask_free(struct grammar_matcher *m)
{
    struct gdfa *d = &m->dfa;
    sp_free(d->words.w);
    sp_free(d->at);
    sp_free(d->next);
    sp_free(d->loops);
    sp_free(d->mask);
    sp_free(d->slot);
    sp_free(d->scratch.w);
    d->words.w = NULL;
    d->at = NULL;
    d->next = NULL;
    d->loops = NULL;
    d->mask = NULL;
    d->slot = NULL;
    d->scratch.w = NULL;
    d->n = d->cap = 0;
    d->words.n = d->words.cap = d->scratch.n = d->scratch.cap = 0;
    for (int i = 0; i < GRAMMAR_N_MASKS; i++) {
        sp_free(m->masks[i].bits);
        m->masks[i].bits = NULL;
        m->masks[i].state = -1;
    }
}

static uint32_t dfa_limit(const struct gdfa *d)
{
    return d->max_states && d->max_states < GDFA_MAX_STATES ? d->max_states : GDFA_MAX_STATES;
}

static void dfa_reset(struct grammar_matcher *m)
{
    struct gdfa *d = &m->dfa;
    d->n_resets++;
    d->n = 0;
    d->words.n = 0;
    if (d->slot)
        memset(d->slot, 0, GDFA_HCAP * sizeof(uint32_t));
    for (int i = 0; i < GRAMMAR_N_MASKS; i++)
        m->masks[i].state = -1;
}

static uint32_t hash_words(const uint32_t *w, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        h ^= w[i];
        h *= 0xFF51AFD7ED558CCDull;
        h ^= h >> 29;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static bool dfa_grow(struct gdfa *d)
{
    if (d->n < d->cap)
        return true;
    uint32_t nc = SP_MIN(d->cap ? d->cap * 2 : 64, GDFA_MAX_STATES);
    size_t *at = sp_realloc(d->at, ((size_t)nc + 1) * sizeof(size_t));
    if (!at)
        return false;
    d->at = at;
    int32_t *mask = sp_realloc(d->mask, (size_t)nc * sizeof(int32_t));
    if (!mask)
        return false;
    d->mask = mask;
    int16_t *next = sp_realloc(d->next, (size_t)nc * 256 * sizeof(int16_t));
    if (!next)
        return false;
    d->next = next;
    uint64_t *loops = sp_realloc(d->loops, (size_t)nc * 8 * sizeof(uint64_t));
    if (!loops)
        return false;
    d->loops = loops;
    d->cap = nc;
    return true;
}

/* The id of the state w[0..n), added when new; GDFA_FAIL when full. */
static int32_t dfa_intern(struct gdfa *d, const uint32_t *w, size_t n)
{
    if (!d->slot && !(d->slot = sp_calloc(GDFA_HCAP, sizeof(uint32_t))))
        return GDFA_FAIL;
    uint32_t h = hash_words(w, n) & (GDFA_HCAP - 1);
    for (;; h = (h + 1) & (GDFA_HCAP - 1)) {
        uint32_t s = d->slot[h];
        if (s == 0)
            break;
        s--;
        if (d->at[s + 1] - d->at[s] == n && memcmp(d->words.w + d->at[s], w, n * sizeof(uint32_t)) == 0)
            return (int32_t)s;
    }
    if (d->n >= dfa_limit(d) || d->words.n + n > GDFA_MAX_WORDS || !dfa_grow(d) ||
        !grammar_wb_reserve(&d->words, n))
        return GDFA_FAIL;
    uint32_t id = d->n++;
    d->at[id] = d->words.n;
    memcpy(d->words.w + d->words.n, w, n * sizeof(uint32_t));
    d->words.n += n;
    d->at[id + 1] = d->words.n;
    for (int b = 0; b < 256; b++)
        d->next[(size_t)id * 256 + (size_t)b] = GDFA_UNKNOWN;
    memset(d->loops + (size_t)id * 8, 0, 8 * sizeof(uint64_t));
    d->mask[id] = -1;
    d->slot[h] = id + 1;
    return (int32_t)id;
}

/* Does class c treat every code point >= 0x80 alike (all in or all out)? */
static bool class_flat_high(const struct grammar *g, const struct gclass *c)
{
    for (uint32_t k = 0; k < c->n; k++) {
        const struct grange *r = &g->rng[c->first + k];
        if (r->hi >= 0x80 && !(r->lo <= 0x80 && r->hi >= 0x10FFFF))
            return false;
    }
    return true;
}

/* A state w inside a multi-byte character whose stacks' classes all treat
 * non-ASCII code points alike has the same future for every partial value
 * with the same UTF-8 validity constraints left (E0 and ED, F0 and F4 lead
 * bytes restrict the next byte; ED A0..BF completes to a surrogate): give
 * it one representative value, so that the trie's thousands of partial
 * characters make a handful of states instead of one each. */
static void canon_partial(const struct grammar *g, uint32_t *w)
{
    uint32_t need = w[2] & 0xFF, tot = w[2] >> 8, pval = w[1];
    if (need == 0)
        return;
    const uint32_t *s = w + 3;
    for (uint32_t k = 0; k < w[0]; k++) {
        if (s[0] == 0 || !class_flat_high(g, &g->cls[g->el[s[s[0]]].v]))
            return;
        s += 1 + s[0];
    }
    if (tot == 2)
        pval = 0x02; /* C2..DF */
    else if (tot == 3 && need == 2)
        pval = pval == 0x0 || pval == 0xD ? pval : 0x1; /* E1..EC, EE, EF */
    else if (tot == 3)
        pval = pval >> 5 == 0x1B ? 0x360 : 0x40; /* ED A0..BF (surrogates) or any valid */
    else if (need == 3)
        pval = pval == 0x0 || pval == 0x4 ? pval : 0x1; /* F1..F3 */
    else
        pval = need == 2 ? 0x40 : 0x1000; /* every completion is valid */
    w[1] = pval;
}

/* Successor of state s by byte b (computed and remembered). */
static int32_t dfa_next(struct grammar_matcher *m, int32_t s, uint8_t b)
{
    struct gdfa *d = &m->dfa;
    struct wbuf in = {.w = d->words.w, .n = d->words.n, .cap = d->words.cap};
    d->scratch.n = 0;
    d->scratch.oom = false;
    bool live = grammar_step(m->g, &in, d->at[s], &d->scratch, m->path, b);
    if (d->scratch.oom)
        return GDFA_FAIL; /* a state missing stacks must not be remembered */
    if (live)
        canon_partial(m->g, d->scratch.w);
    int32_t t = live ? dfa_intern(d, d->scratch.w, d->scratch.n) : GDFA_DEAD;
    if (t != GDFA_FAIL)
        d->next[(size_t)s * 256 + b] = (int16_t)t;
    return t;
}

/* Does every byte of sum (a subtree's summary) lead state t back to t?
 * 1 yes, 0 no, GDFA_FAIL when the DFA filled up. Then every node below
 * has state t: all their tokens are allowed. */
static int all_loop(struct grammar_matcher *m, int32_t t, const uint64_t *sum)
{
    struct gdfa *d = &m->dfa;
    const uint64_t *no = d->loops + (size_t)t * 8 + 4;
    if ((sum[0] & no[0]) | (sum[1] & no[1]) | (sum[2] & no[2]) | (sum[3] & no[3]))
        return 0;
    for (int w = 0; w < 4; w++) {
        uint64_t need = sum[w] & ~d->loops[(size_t)t * 8 + (size_t)w];
        while (need) {
            int b = w * 64 + __builtin_ctzll(need);
            uint64_t bit = need & -need;
            need &= need - 1;
            int32_t x = d->next[(size_t)t * 256 + (size_t)b];
            if (x == GDFA_UNKNOWN && (x = dfa_next(m, t, (uint8_t)b)) == GDFA_FAIL)
                return GDFA_FAIL;
            /* dfa_next may have moved loops */
            d->loops[(size_t)t * 8 + (x == t ? 0 : 4) + (size_t)w] |= bit;
            if (x != t)
                return 0;
        }
    }
    return 1;
}

/* Set the bits of the tokens allowed from state root; the count, or -1
 * when the DFA filled up or memory ran out. */
static int walk(struct grammar_matcher *m, int32_t root, uint64_t *bits)
{
    const struct grammar_vocab *v = m->v;
    struct gdfa *d = &m->dfa;
    int32_t sid[GRAMMAR_MAX_TOK_BYTES + 1];
    sid[0] = root;
    int n = 0;
    uint32_t i = 1;
    while (i < v->n_nodes) {
        uint32_t dep = v->depth[i];
        int32_t s = sid[dep - 1];
        int32_t t = d->next[(size_t)s * 256 + v->byte[i]];
        if (t == GDFA_UNKNOWN && (t = dfa_next(m, s, v->byte[i])) == GDFA_FAIL)
            return -1;
        if (t < 0) {
            i = v->end[i];
            continue;
        }
        sid[dep] = t;
        uint32_t si = v->sum_at[i];
        if (si != UINT32_MAX) {
            int r = all_loop(m, t, v->sum + (size_t)si * 4);
            if (r == GDFA_FAIL)
                return -1;
            if (r) {
                for (uint32_t j = v->tok_at[i]; j < v->tok_at[v->end[i]]; j++) {
                    int32_t k = v->toks[j];
                    bits[k >> 6] |= 1ull << (k & 63);
                    n++;
                }
                i = v->end[i];
                continue;
            }
        }
        for (uint32_t j = v->tok_at[i]; j < v->tok_at[i + 1]; j++) {
            int32_t k = v->toks[j];
            bits[k >> 6] |= 1ull << (k & 63);
            n++;
        }
        i++;
    }
    return n;
}

/* The cached mask of the current state, computed if needed; NULL when the
 * DFA cannot hold it. */
static struct gmask_ent *mask_of_state(struct grammar_matcher *m)
{
    struct gdfa *d = &m->dfa;
    size_t nw = ((size_t)m->v->n_vocab + 63) / 64;
    if (d->n > dfa_limit(d) / 4 * 3 || d->words.n > GDFA_MAX_WORDS / 4 * 3)
        dfa_reset(m);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt)
            dfa_reset(m);
        int32_t s = dfa_intern(d, m->st.w, m->st.n);
        if (s < 0)
            continue;
        if (d->mask[s] >= 0)
            return &m->masks[d->mask[s]];
        int slot = m->mask_next;
        struct gmask_ent *e = &m->masks[slot];
        if (e->state >= 0 && e->state < (int32_t)d->n)
            d->mask[e->state] = -1;
        e->state = -1;
        if (!e->bits && !(e->bits = sp_malloc(nw * sizeof(uint64_t))))
            return NULL;
        memset(e->bits, 0, nw * sizeof(uint64_t));
        d->n_walks++;
        int n = walk(m, s, e->bits);
        if (n < 0)
            continue;
        m->mask_next = (slot + 1) % GRAMMAR_N_MASKS;
        e->state = s;
        e->n_allowed = n;
        d->mask[s] = slot;
        return e;
    }
    return NULL;
}

/* allow[t] = bit t of bits, eight tokens at a time. */
static void bits_to_bytes(const uint64_t *bits, uint8_t *allow, size_t n)
{
    size_t t = 0;
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; t + 8 <= n; t += 8) {
        uint64_t x = (bits[t >> 6] >> (t & 63)) & 0xFF;
        /* bits 0..6 spread to bytes 0..6 (the shifted copies of a 7-bit
         * value do not overlap, so no carries), bit 7 to byte 7 */
        uint64_t y = (((x & 0x7F) * 0x0002040810204081ull) & 0x0101010101010101ull) | (x >> 7) << 56;
        memcpy(allow + t, &y, 8);
    }
#endif
    for (; t < n; t++)
        allow[t] = (bits[t >> 6] >> (t & 63)) & 1;
}

int grammar_mask(struct grammar_matcher *m, uint8_t *allow)
{
    const struct grammar_vocab *v = m->v;
    if (m->ended) {
        memset(allow, 0, (size_t)v->n_vocab);
        return 0;
    }
    struct gmask_ent *e = mask_of_state(m);
    if (!e) {
        m->dfa.n_fallbacks++;
        return grammar_mask_reference(m, allow);
    }
    bits_to_bytes(e->bits, allow, (size_t)v->n_vocab);
    int n = e->n_allowed;
    if (grammar_state_can_end(m->st.w))
        for (int i = 0; i < v->n_eog; i++) {
            allow[v->eog[i]] = 1;
            n++;
        }
    return n;
}
