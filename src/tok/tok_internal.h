/* tok_internal.h - the tok_vocab representation shared by the files of
 * src/tok (not a public header: only the .c files of src/tok include it). */
#ifndef SPOKE_TOK_INTERNAL_H
#define SPOKE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tok/tok.h"

enum tok_kind { TOK_KIND_SPM = 0, TOK_KIND_BPE, TOK_KIND_WPM };

/* Token types as stored in tokenizer.ggml.token_type. */
enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6
};

/* Per-token attribute bits (as llama.cpp derives them from the type). */
#define TOK_ATTR_NORMAL 0x01u
#define TOK_ATTR_UNKNOWN 0x02u
#define TOK_ATTR_CONTROL 0x04u
#define TOK_ATTR_USER_DEFINED 0x08u
#define TOK_ATTR_UNUSED 0x10u
#define TOK_ATTR_BYTE 0x20u
#define TOK_ATTR_LSTRIP 0x40u
#define TOK_ATTR_RSTRIP 0x80u

#define TOK_MAX_REGEX 8
#define TOK_MAX_EOG 16
#define TOK_MAX_TEXT (64u << 20) /* longest input accepted by tok_encode (bytes) */

struct tok_token {
    uint32_t off;  /* text offset in vocab->arena */
    uint32_t len;  /* text length in bytes */
    float score;   /* SPM merge score */
    uint8_t attr;  /* TOK_ATTR_* */
};

/* Token-text hash slot: id -1 = empty; fp = high hash bits, off/len copied
 * from the token so that probing touches only the slot and the text. */
struct tok_slot {
    uint32_t fp;
    int32_t id;
    uint32_t off, len;
};

/* BPE merge slot: key = ((left+1) << 32) | (right+1), 0 = empty. */
struct tok_merge {
    uint64_t key;
    uint32_t rank;  /* line index in tokenizer.ggml.merges (lower merges first) */
    int32_t out;    /* token id of left+right */
};

struct tok_vocab {
    enum tok_kind kind;
    int32_t n;                /* tokens */
    char *arena;              /* all token texts, concatenated */
    struct tok_token *toks;   /* [n] */
    struct tok_slot *tok_ht;  /* text -> id, open addressing (linear probing) */
    size_t tok_ht_mask;       /* slots - 1 (power of two) */

    /* BPE merges: (left id, right id) -> rank and merged id */
    struct tok_merge *mg;
    size_t mg_mask;

    int32_t byte_tok[256];    /* SPM: <0xNN> token; BPE: token of the byte's unicode char; -1 */
    uint16_t byte_cp[256];    /* BPE: GPT-2 byte -> code point */
    uint8_t cp_byte[324];     /* BPE: code point (< 324) -> byte, valid if cp_byte_ok */
    uint8_t cp_byte_ok[324];

    int32_t bos, eos, unk;    /* -1 if none */
    int32_t eog[TOK_MAX_EOG];
    size_t n_eog;
    bool add_bos, add_eos;
    bool add_space_prefix;    /* SPM: prefix raw text with a space */
    bool ignore_merges;       /* BPE: a whole pre-token found in the vocab is used as is */
    size_t max_token_len;     /* WPM: longest token text (bytes) */

    int32_t *special;         /* CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    size_t n_special;

    pcre2_general_context *gctx;
    pcre2_code *re[TOK_MAX_REGEX]; /* BPE pre-tokenizer, applied in order */
    size_t n_re;
    char pre[32];             /* tokenizer.ggml.pre (for logs) */
};

/* Growable id vector used while encoding. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
enum sp_status tok_ids_push(struct tok_ids *ids, int32_t id) SP_MUST_USE;

/* FNV-1a over bytes (continuable: pass the previous state as h; start with
 * TOK_FNV_INIT), then tok_hash_fin mixes it into the final hash. */
#define TOK_FNV_INIT 1469598103934665603ull
static inline uint64_t tok_fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}
static inline uint64_t tok_hash_fin(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

/* Text -> id (exact bytes), or -1. tok_find_h takes the hash of a + b
 * (tok_hash_fin(tok_fnv(tok_fnv(INIT, a), b))) and matches their concatenation. */
int32_t tok_find(const struct tok_vocab *v, const char *s, size_t len);
int32_t tok_find_h(const struct tok_vocab *v, const char *a, size_t alen, const char *b,
                   size_t blen, uint64_t h);

/* A candidate merge of two adjacent symbols, queued by the SPM and BPE
 * encoders in a binary heap: the highest key pops first, ties to the smaller
 * left (the leftmost pair). */
struct tok_bigram {
    double key;    /* SPM: the merged token's score; BPE: -rank */
    int32_t left;  /* left symbol */
    union {
        int32_t right; /* SPM: right symbol */
        int32_t out;   /* BPE: token id of left+right */
    };
    uint32_t size; /* bytes of left + right when queued (staleness check) */
};
struct tok_heap {
    struct tok_bigram *v;
    size_t n, cap;
};
/* Add b (SP_ERR_NOMEM when growing fails; the heap is unchanged then). */
enum sp_status tok_heap_push(struct tok_heap *h, struct tok_bigram b) SP_MUST_USE;
/* Remove and return the first bigram; h->n must be > 0. */
struct tok_bigram tok_heap_pop(struct tok_heap *h);

/* Model-specific encoders: append the ids of one raw-text fragment. */
/* SPM: prefix_space adds the leading space (tokenizer.ggml.add_space_prefix);
 * spaces become U+2581 before merging. */
enum sp_status tok_spm_encode(const struct tok_vocab *v, const char *text, size_t len,
                              bool prefix_space, struct tok_ids *out,
                              struct sp_err *err) SP_MUST_USE;
enum sp_status tok_wpm_encode(const struct tok_vocab *v, const char *text, size_t len,
                              struct tok_ids *out, struct sp_err *err) SP_MUST_USE;
enum sp_status tok_bpe_encode(const struct tok_vocab *v, const char *text, size_t len,
                              struct tok_ids *out, struct sp_err *err) SP_MUST_USE;
/* BPE setup at load: byte map, merges table, regexes for tokenizer.ggml.pre. */
enum sp_status tok_bpe_init(struct tok_vocab *v, const struct gg_file *f, struct sp_err *err) SP_MUST_USE;
void tok_bpe_fini(struct tok_vocab *v);

/* Decode one UTF-8 code point leniently as llama.cpp does: returns its length
 * (1..4) and sets *cp, or 0 if the sequence at s is invalid/truncated. */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Encode cp (<= 0x10FFFF) as UTF-8 into out[4]; returns the length. */
size_t tok_utf8_encode(uint32_t cp, char *out);

#endif
