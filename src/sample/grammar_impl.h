/* grammar_impl.h - (internal to src/sample) the compiled form of a grammar,
 * shared by the parser (grammar_parse.c) and the matcher (grammar.c).
 *
 * Rules are flattened into one element array: rule r starts at
 * rule_start[r]; its alternatives are sequences of CLASS (one character from
 * a class) and REF (another rule) elements separated by ALT and closed by
 * END. A position is an index into that array. */
#ifndef SPOKE_GRAMMAR_IMPL_H
#define SPOKE_GRAMMAR_IMPL_H

#include "sample/grammar.h"

enum { GE_END = 0, GE_ALT, GE_REF, GE_CLASS };

struct gelem {
    uint32_t type;
    uint32_t v; /* REF: rule index; CLASS: class index */
};

struct grange {
    uint32_t lo, hi; /* code points, inclusive */
};

struct gclass {
    uint32_t first, n; /* ranges rng[first .. first + n) */
    bool neg;          /* matches code points NOT in the ranges */
    uint64_t ascii[2]; /* the answer for code points < 128 */
};

struct grammar {
    struct gelem *el;
    uint32_t n_el;
    uint32_t *rule_start; /* [n_rules] */
    uint32_t n_rules;
    uint32_t root;
    struct gclass *cls;
    uint32_t n_cls;
    struct grange *rng;
    uint32_t n_rng;
};

/* ---- the matcher (grammar.c) and its token masks (grammar_mask.c) */
#define GRAMMAR_MAX_DEPTH 128u /* positions per stack */
#define GRAMMAR_MAX_TOK_BYTES 96 /* longer token texts are never allowed */
#define GRAMMAR_SUM_MIN 8        /* descendants for a node to get a byte summary */

struct grammar_vocab {
    int n_vocab;
    uint32_t n_nodes;
    uint8_t *byte;      /* [n_nodes] */
    uint8_t *depth;     /* [n_nodes] */
    uint32_t *end;      /* [n_nodes] */
    uint32_t *tok_at;   /* [n_nodes + 1] node i's tokens: toks[tok_at[i] .. tok_at[i + 1]) */
    int32_t *toks;      /* the allowed-text tokens, grouped by node in preorder */
    uint32_t *sum_at;   /* [n_nodes] index of node i's summary in sum, UINT32_MAX none */
    uint64_t *sum;      /* [4 each] the bytes below node i (nodes with GRAMMAR_SUM_MIN+ descendants) */
    int32_t *eog;       /* EOG token ids */
    int n_eog;
    char *text;         /* copy of the token texts (for grammar_accept) */
    uint32_t *off;      /* [n_vocab + 1] */
    uint8_t *kind;      /* [n_vocab] GRAMMAR_TOK_* */
};

struct wbuf {
    uint32_t *w;
    size_t n, cap;
    bool oom;
};

/* Memo of step() (grammar_mask.c): states interned by their words, and
 * per state a row of 256 successors (GDFA_UNKNOWN until computed). */
#define GDFA_UNKNOWN (-1)
#define GDFA_DEAD (-2)
struct gdfa {
    struct wbuf words;   /* the states' words, back to back */
    size_t *at;          /* [cap] where state i starts in words */
    int16_t *next;       /* [cap * 256] successors */
    uint64_t *loops;     /* [cap * 8] bytes known to lead state i back to itself, then bytes known not to */
    int32_t *mask;       /* [cap] cached mask slot of state i, -1 none */
    uint32_t *slot;      /* [2 * GDFA_MAX_STATES] open-addressed hash: state id + 1, 0 empty */
    uint32_t n, cap;
    uint32_t max_states; /* 0: GDFA_MAX_STATES (tests set fewer) */
    uint32_t n_walks, n_resets, n_fallbacks; /* statistics (tests, bench) */
    struct wbuf scratch; /* step() output before interning */
};

struct gmask_ent {
    int32_t state;  /* DFA state id, -1 none */
    int n_allowed;
    uint64_t *bits; /* [n_vocab bits] */
};
#define GRAMMAR_N_MASKS 16

struct grammar_matcher {
    const struct grammar *g;
    const struct grammar_vocab *v;
    struct wbuf st;    /* the current state */
    struct wbuf tmp;   /* scratch for accept */
    struct wbuf arena; /* reference mask walk: states per depth */
    uint32_t path[GRAMMAR_MAX_DEPTH + 1];
    bool ended;        /* an EOG token was accepted */
    struct gdfa dfa;
    struct gmask_ent masks[GRAMMAR_N_MASKS];
    int mask_next;
};

bool grammar_wb_reserve(struct wbuf *b, size_t more);
/* Advance the state at inb->w[inoff..] by byte b, appending the result to
 * out (out may be inb). false (out unchanged) when no stack survives. */
bool grammar_step(const struct grammar *g, const struct wbuf *inb, size_t inoff, struct wbuf *out, uint32_t *path,
                  uint8_t b);
bool grammar_state_can_end(const uint32_t *st);
/* The mask of the current state by a plain trie walk with step() per node
 * (no memo, no cache): the reference the fast mask must equal (tests). */
int grammar_mask_reference(struct grammar_matcher *m, uint8_t *allow);
void grammar_mask_free(struct grammar_matcher *m); /* the DFA and the mask cache */

#endif
