/* tok_unicode.c - lookups over the generated tables of tok_unicode_data.c
 * (binary search) plus the hard-coded whitespace set llama.cpp uses. */
#include "tok/tok_unicode.h"

enum tok_ucat tok_ucat(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return TOK_UCAT_UNDEFINED;
    size_t lo = 0, hi = tok_ucat_ranges_n; /* last entry with first <= cp */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tok_ucat_ranges[mid].first <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return (enum tok_ucat)tok_ucat_ranges[lo].cat;
}

bool tok_uspace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t tok_ulower(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    size_t lo = 0, hi = tok_lower_pairs_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tok_lower_pairs[mid].from < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < tok_lower_pairs_n && tok_lower_pairs[lo].from == cp ? tok_lower_pairs[lo].to : cp;
}

uint32_t tok_unfd_first(uint32_t cp)
{
    if (cp < 0xC0)
        return cp;
    size_t lo = 0, hi = tok_nfd_ranges_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tok_nfd_ranges[mid].last < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < tok_nfd_ranges_n && tok_nfd_ranges[lo].first <= cp)
        return tok_nfd_ranges[lo].to;
    return cp;
}
