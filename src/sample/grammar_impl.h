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

#endif
