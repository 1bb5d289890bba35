/* tok_unicode.h - Unicode helpers for the WordPiece pre-tokenizer (private to
 * src/tok): general-category class, whitespace, simple lowercase, and the
 * first code point of a character's NFD form (accent stripping as llama.cpp). */
#ifndef SPOKE_TOK_UNICODE_H
#define SPOKE_TOK_UNICODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum tok_ucat {
    TOK_UCAT_UNDEFINED = 0, TOK_UCAT_NUMBER = 1, TOK_UCAT_LETTER = 2, TOK_UCAT_SEPARATOR = 3,
    TOK_UCAT_MARK = 4, TOK_UCAT_PUNCT = 5, TOK_UCAT_SYMBOL = 6, TOK_UCAT_CONTROL = 7
};

struct tok_ucat_range { uint32_t first; uint8_t cat; };      /* class from first to the next entry */
struct tok_upair { uint32_t from, to; };
struct tok_nfd_range { uint32_t first, last, to; };

extern const struct tok_ucat_range tok_ucat_ranges[];
extern const size_t tok_ucat_ranges_n;
extern const struct tok_upair tok_lower_pairs[];
extern const size_t tok_lower_pairs_n;
extern const struct tok_nfd_range tok_nfd_ranges[];
extern const size_t tok_nfd_ranges_n;

enum tok_ucat tok_ucat(uint32_t cp);
bool tok_uspace(uint32_t cp);
uint32_t tok_ulower(uint32_t cp);
uint32_t tok_unfd_first(uint32_t cp);

#endif
