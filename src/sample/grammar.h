/* grammar.h - constrained output: GBNF grammars, a pushdown matcher over the
 * bytes of generated text, and per-token masks over a vocabulary.
 *
 * struct grammar: compiled rules (immutable, shareable). Parsed from GBNF
 * text (llama.cpp's format: `name ::= alt | alt`, "literals", [classes],
 * [^negated], ., ( groups ), * + ? {m} {m,} {m,n}, # comments; the start
 * rule is `root`). Bounded: text size, rules, elements, nesting and
 * repetition counts are capped; left recursion is refused.
 *
 * struct grammar_vocab: the token texts of one model as a byte trie in
 * preorder (built once per model), so a mask walks shared prefixes once.
 *
 * struct grammar_matcher: the state of one generation (a set of stacks of
 * rule positions plus a pending partial UTF-8 character). grammar_mask marks
 * the tokens whose whole text can be accepted next (end-of-generation tokens
 * only when the grammar can end here); grammar_accept advances by the chosen
 * token. Stack count and depth are bounded, so a state never blows up. */
#ifndef SPOKE_GRAMMAR_H
#define SPOKE_GRAMMAR_H

#include "base/base.h"

struct grammar;
struct grammar_vocab;
struct grammar_matcher;

#define GRAMMAR_MAX_TEXT (1u << 20) /* bytes of GBNF text */

/* Parse GBNF text (len bytes, need not be NUL-terminated). Errors are
 * SP_ERR_INVALID with the byte offset in err->offset and the line:column in
 * the message ("grammar 3:14: expected ']'"), SP_ERR_LIMIT past a bound,
 * SP_ERR_NOMEM. */
enum sp_status grammar_parse(const char *text, size_t len, struct grammar **out, struct sp_err *err) SP_MUST_USE;
void grammar_free(struct grammar *g); /* NULL is a no-op */
size_t grammar_n_rules(const struct grammar *g);

/* Token kinds for grammar_vocab_new. */
enum { GRAMMAR_TOK_TEXT = 0, GRAMMAR_TOK_EOG = 1, GRAMMAR_TOK_NEVER = 2 };

/* Build the trie of n_vocab token texts: token i's bytes are
 * pieces[off[i] .. off[i+1]); kind[i] is GRAMMAR_TOK_* (EOG tokens are
 * allowed when the grammar can end; NEVER tokens, e.g. control tokens, are
 * never allowed; empty texts are never allowed). */
enum sp_status grammar_vocab_new(int n_vocab, const char *pieces, const uint32_t *off, const uint8_t *kind,
                                 struct grammar_vocab **out, struct sp_err *err) SP_MUST_USE;
void grammar_vocab_free(struct grammar_vocab *v);
int grammar_vocab_size(const struct grammar_vocab *v);

/* A matcher at the start of g's root rule (g and v are borrowed and must
 * outlive it). */
enum sp_status grammar_matcher_new(const struct grammar *g, const struct grammar_vocab *v,
                                   struct grammar_matcher **out, struct sp_err *err) SP_MUST_USE;
void grammar_matcher_free(struct grammar_matcher *m);

/* allow[i] = 1 when token i may come next, else 0 (n_vocab bytes). Returns
 * the number of allowed tokens (0: the state is dead; the caller stops).
 * Masks of states seen before come from a small cache. */
int grammar_mask(struct grammar_matcher *m, uint8_t *allow);
/* Advance by token tok's text (an EOG token ends: accepted iff the grammar
 * can end). Returns false (state unchanged) when tok is not allowed. */
bool grammar_accept(struct grammar_matcher *m, int32_t tok);
/* Advance by raw bytes (tests, the fuzzer). false (state unchanged) if not accepted. */
bool grammar_accept_bytes(struct grammar_matcher *m, const char *s, size_t n);
/* The text so far is a complete sentence of the grammar. */
bool grammar_can_end(const struct grammar_matcher *m);
/* Complete, and no further byte can be accepted (generation should stop). */
bool grammar_done(const struct grammar_matcher *m);

/* GBNF of any JSON object (response_format json_object), static text. */
const char *grammar_json_object_gbnf(void);

/* JSON schema (JSON text, len bytes) -> GBNF text (*out, sp_malloc'd) whose
 * sentences are JSON documents valid for the schema. Supported: type (also
 * an array of types), properties/required (properties kept in schema
 * order; additionalProperties false/true/a schema for maps), enum, const,
 * anyOf, items with minItems/maxItems, string minLength/maxLength and the
 * formats date, time, date-time, uuid, integer minimum/maximum (minimum
 * 0 or 1 unbounded, or ranges of at most 256 values), nested objects;
 * annotations (title, description, default...) are ignored. Anything else
 * is SP_ERR_UNSUPPORTED naming the keyword and where (err->context holds
 * the schema path); malformed schemas SP_ERR_INVALID. */
enum sp_status json_schema_gbnf(const char *schema, size_t len, char **out, struct sp_err *err) SP_MUST_USE;

/* Building blocks for grammars that embed several schemas (tool calls):
 * grammar_json_primitives_gbnf is the JSON primitive rules (value, object,
 * array, string, number, integer, ws, date, time) without a root, to be
 * included once. json_schema_gbnf_rules appends the rules of one schema to
 * out, numbered r<*next>, r<*next + 1>... (*next advances past them; start
 * at 1), and sets *root to the number of the schema's own rule (r<*root>);
 * rule names r<N> and m<N>_... are taken, other names are free for the
 * caller. Errors as json_schema_gbnf (out may hold a partial rule then). */
struct sp_buf;
const char *grammar_json_primitives_gbnf(void);
enum sp_status json_schema_gbnf_rules(const char *schema, size_t len, struct sp_buf *out, int *next, int *root,
                                      struct sp_err *err) SP_MUST_USE;

#endif
