/* tok_vocab.c - loads a tokenizer from GGUF tokenizer.ggml.* metadata and
 * drives encoding.
 *
 * Token texts are copied into one arena and indexed by an open-addressing
 * hash table (FNV-1a, linear probing, load <= 1/2), so loading a 128k-token
 * vocabulary is a single linear pass. Encoding follows llama.cpp: the input is
 * first partitioned around special tokens (user-defined tokens always,
 * control/unknown tokens only with parse_special; longest text first, with
 * lstrip/rstrip attributes), then each raw fragment goes to the SPM or BPE
 * encoder (tok_spm.c, tok_bpe.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "tok/tok_internal.h"

#define TOK_MAX_TOKENS (1u << 24)

int32_t tok_find_h(const struct tok_vocab *v, const char *a, size_t alen, const char *b,
                   size_t blen, uint64_t h)
{
    uint32_t fp = (uint32_t)(h >> 32);
    size_t len = alen + blen;
    for (size_t i = (size_t)h & v->tok_ht_mask;; i = (i + 1) & v->tok_ht_mask) {
        const struct tok_slot *sl = &v->tok_ht[i];
        if (sl->id < 0)
            return -1;
        if (sl->fp == fp && sl->len == len && memcmp(v->arena + sl->off, a, alen) == 0 &&
            (blen == 0 || memcmp(v->arena + sl->off + alen, b, blen) == 0))
            return sl->id;
    }
}

int32_t tok_find(const struct tok_vocab *v, const char *s, size_t len)
{
    return tok_find_h(v, s, len, NULL, 0, tok_hash_fin(tok_fnv(TOK_FNV_INIT, s, len)));
}

/* Insert id; a later token with the same text replaces the earlier one (as
 * llama.cpp's token_to_id map does). */
static void tok_ht_insert(struct tok_vocab *v, int32_t id)
{
    const struct tok_token *t = &v->toks[id];
    const char *s = v->arena + t->off;
    uint64_t h = tok_hash_fin(tok_fnv(TOK_FNV_INIT, s, t->len));
    uint32_t fp = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & v->tok_ht_mask;; i = (i + 1) & v->tok_ht_mask) {
        struct tok_slot *sl = &v->tok_ht[i];
        if (sl->id < 0 || (sl->fp == fp && sl->len == t->len &&
                           memcmp(v->arena + sl->off, s, t->len) == 0)) {
            *sl = (struct tok_slot){fp, id, t->off, t->len};
            return;
        }
    }
}

enum sp_status tok_ids_push(struct tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t ncap = ids->cap ? ids->cap * 2 : 64;
        int32_t *nv = sp_realloc(ids->v, ncap * sizeof(*nv));
        if (!nv)
            return SP_ERR_NOMEM;
        ids->v = nv;
        ids->cap = ncap;
    }
    ids->v[ids->n++] = id;
    return SP_OK;
}

static uint8_t tok_attr_from_type(int32_t type)
{
    switch (type) {
    case TOK_TYPE_NORMAL: return TOK_ATTR_NORMAL;
    case TOK_TYPE_UNKNOWN: return TOK_ATTR_UNKNOWN;
    case TOK_TYPE_CONTROL: return TOK_ATTR_CONTROL;
    case TOK_TYPE_USER_DEFINED: return TOK_ATTR_USER_DEFINED;
    case TOK_TYPE_UNUSED: return TOK_ATTR_UNUSED;
    case TOK_TYPE_BYTE: return TOK_ATTR_BYTE;
    default: return 0;
    }
}

static int32_t tok_get_id(const struct gg_file *f, const char *key, int32_t n, int32_t dflt)
{
    uint32_t u;
    if (gg_get_u32(f, key, &u))
        return u < (uint32_t)n ? (int32_t)u : -1;
    return dflt < n ? dflt : -1;
}

static int tok_special_cmp(const void *a, const void *b, void *ud)
{
    const struct tok_vocab *v = ud;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->toks[x].len != v->toks[y].len)
        return v->toks[x].len > v->toks[y].len ? -1 : 1;
    return x < y ? -1 : (x > y);
}

static bool tok_text_is(const struct tok_vocab *v, int32_t id, const char *s)
{
    size_t n = strlen(s);
    return v->toks[id].len == n && memcmp(v->arena + v->toks[id].off, s, n) == 0;
}

static void tok_eog_add(struct tok_vocab *v, int32_t id)
{
    if (id < 0 || id >= v->n)
        return;
    for (size_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id)
            return;
    if (v->n_eog < TOK_MAX_EOG)
        v->eog[v->n_eog++] = id;
}

/* Names that llama.cpp treats as end-of-generation tokens. */
static const char *const tok_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"),
    "<|end\xe2\x96\x81of\xe2\x96\x81sentence|>", "<|return|>", "<|call|>",
};

/* Fill toks/arena/hash from the tokens, scores and token_type arrays. */
static enum sp_status tok_load_tokens(struct tok_vocab *v, const struct gg_file *f,
                                      struct sp_err *err)
{
    enum gg_value_type et;
    uint64_t count;
    if (!gg_get_arr(f, "tokenizer.ggml.tokens", &et, &count) || et != GG_VAL_STRING)
        return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.tokens",
                           "the model has no tokenizer.ggml.tokens string array");
    if (count == 0 || count > TOK_MAX_TOKENS)
        return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.tokens",
                           "vocabulary size %llu out of range (1..%u)",
                           (unsigned long long)count, TOK_MAX_TOKENS);
    v->n = (int32_t)count;

    const float *scores = NULL;
    uint64_t n_scores = 0;
    if (gg_get_arr(f, "tokenizer.ggml.scores", &et, &n_scores)) {
        if (et != GG_VAL_F32 || n_scores != count)
            return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.scores",
                               "tokenizer.ggml.scores must be %llu f32 values",
                               (unsigned long long)count);
        scores = gg_arr_data(f, "tokenizer.ggml.scores");
    }
    const unsigned char *types = NULL;
    uint64_t n_types = 0;
    if (gg_get_arr(f, "tokenizer.ggml.token_type", &et, &n_types)) {
        if ((et != GG_VAL_I32 && et != GG_VAL_U32) || n_types != count)
            return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.token_type",
                               "tokenizer.ggml.token_type must be %llu i32 values",
                               (unsigned long long)count);
        types = gg_arr_data(f, "tokenizer.ggml.token_type");
    }
    if ((n_scores && !scores) || (n_types && !types))
        return sp_err_set(err, SP_ERR_FORMAT, "tokenizer arrays are unreadable");

    v->toks = sp_calloc(count, sizeof(*v->toks));
    if (!v->toks)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading %llu tokens",
                          (unsigned long long)count);
    uint64_t total = 0;
    for (uint64_t i = 0; i < count; i++) {
        struct gg_str s;
        if (!gg_arr_str(f, "tokenizer.ggml.tokens", i, &s))
            return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.tokens",
                               "token %llu is unreadable", (unsigned long long)i);
        total += s.len;
        if (total >= UINT32_MAX)
            return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.tokens",
                               "token texts exceed 4 GiB");
    }
    v->arena = sp_malloc((size_t)total + 1);
    if (!v->arena)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading token texts");
    uint32_t off = 0;
    for (uint64_t i = 0; i < count; i++) {
        struct gg_str s;
        (void)gg_arr_str(f, "tokenizer.ggml.tokens", i, &s);
        if (s.len)
            memcpy(v->arena + off, s.ptr, (size_t)s.len);
        struct tok_token *t = &v->toks[i];
        t->off = off;
        t->len = (uint32_t)s.len;
        off += (uint32_t)s.len;
        if (scores)
            memcpy(&t->score, (const char *)scores + i * 4, 4);
        int32_t type = TOK_TYPE_NORMAL;
        if (types)
            memcpy(&type, types + i * 4, 4);
        t->attr = tok_attr_from_type(type);
    }
    v->arena[off] = '\0';

    size_t slots = 16;
    while (slots < count * 2)
        slots <<= 1;
    v->tok_ht = sp_malloc(slots * sizeof(*v->tok_ht));
    if (!v->tok_ht)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory indexing tokens");
    for (size_t i = 0; i < slots; i++)
        v->tok_ht[i].id = -1;
    v->tok_ht_mask = slots - 1;
    for (int32_t i = 0; i < v->n; i++)
        tok_ht_insert(v, i);
    return SP_OK;
}

static void tok_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Special-token cache, per-model attributes, EOG set. */
static enum sp_status tok_load_special(struct tok_vocab *v, const struct gg_file *f,
                                       struct sp_err *err)
{
    struct gg_str name = {0};
    char lname[128] = "";
    if (gg_get_str(f, "general.name", &name)) {
        size_t n = SP_MIN((size_t)name.len, sizeof(lname) - 1);
        memcpy(lname, name.ptr, n);
        lname[n] = '\0';
        tok_lower(lname);
    }
    size_t ns = 0;
    for (int32_t i = 0; i < v->n; i++)
        if (v->toks[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            ns++;
    v->special = sp_malloc((ns ? ns : 1) * sizeof(*v->special));
    if (!v->special)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < v->n; i++)
        if (v->toks[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            v->special[v->n_special++] = i;
    qsort_r(v->special, v->n_special, sizeof(*v->special), tok_special_cmp, v);

    /* llama.cpp: Phi-3 special tokens strip whitespace to their right. */
    if (strstr(lname, "phi-3") || strstr(lname, "phi3")) {
        for (size_t i = 0; i < v->n_special; i++)
            v->toks[v->special[i]].attr |= TOK_ATTR_RSTRIP;
        int32_t id = tok_find(v, "</s>", 4);
        if (id >= 0)
            v->toks[id].attr |= TOK_ATTR_RSTRIP;
        static const char *const no_rstrip[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < SP_ARRAY_LEN(no_rstrip); i++) {
            id = tok_find(v, no_rstrip[i], strlen(no_rstrip[i]));
            if (id >= 0)
                v->toks[id].attr &= (uint8_t)~TOK_ATTR_RSTRIP;
        }
    }

    tok_eog_add(v, v->eos);
    tok_eog_add(v, tok_get_id(f, "tokenizer.ggml.eot_token_id", v->n, -1));
    tok_eog_add(v, tok_get_id(f, "tokenizer.ggml.eom_token_id", v->n, -1));
    for (size_t i = 0; i < v->n_special; i++) {
        int32_t id = v->special[i];
        for (size_t k = 0; k < SP_ARRAY_LEN(tok_eog_texts); k++)
            if (tok_text_is(v, id, tok_eog_texts[k]))
                tok_eog_add(v, id);
    }
    return SP_OK;
}

enum sp_status tok_vocab_load(const struct gg_file *f, struct tok_vocab **out,
                              struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct tok_vocab *v = NULL;
    if (!f || !out)
        return sp_err_set(err, SP_ERR_INVALID, "tok_vocab_load: NULL argument");
    *out = NULL;

    struct gg_str model;
    if (!gg_get_str(f, "tokenizer.ggml.model", &model))
        return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.model",
                           "the model has no tokenizer (tokenizer.ggml.model missing)");
    char mname[32];
    size_t ml = SP_MIN((size_t)model.len, sizeof(mname) - 1);
    memcpy(mname, model.ptr, ml);
    mname[ml] = '\0';
    enum tok_kind kind;
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0)
        kind = TOK_KIND_SPM;
    else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0)
        kind = TOK_KIND_BPE;
    else if (model.len == 4 && memcmp(model.ptr, "bert", 4) == 0)
        kind = TOK_KIND_WPM;
    else
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, "tokenizer.ggml.model",
                           "tokenizer model '%s' is not supported (supported: llama = "
                           "SentencePiece, gpt2 = byte-level BPE, bert = WordPiece)", mname);

    v = sp_calloc(1, sizeof(*v));
    if (!v)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    v->kind = kind;
    for (size_t i = 0; i < 256; i++)
        v->byte_tok[i] = -1;
    result = tok_load_tokens(v, f, err);
    if (result != SP_OK)
        goto fail;

    bool spm = kind == TOK_KIND_SPM;
    v->bos = tok_get_id(f, "tokenizer.ggml.bos_token_id", v->n, spm ? 1 : -1);
    v->eos = tok_get_id(f, "tokenizer.ggml.eos_token_id", v->n, spm ? 2 : -1);
    v->unk = tok_get_id(f, "tokenizer.ggml.unknown_token_id", v->n, spm ? 0 : -1);
    v->add_bos = spm;
    v->add_eos = false;
    v->add_space_prefix = spm;
    if (!gg_get_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix))
        v->add_space_prefix = spm;

    if (kind == TOK_KIND_WPM) {
        /* [CLS] text [SEP]: CLS acts as BOS and SEP as EOS */
        v->bos = tok_get_id(f, "tokenizer.ggml.cls_token_id", v->n, v->bos);
        v->eos = tok_get_id(f, "tokenizer.ggml.seperator_token_id", v->n, v->eos);
        v->unk = tok_get_id(f, "tokenizer.ggml.unknown_token_id", v->n, 100);
        v->add_bos = v->add_eos = true;
        v->add_space_prefix = true; /* decode drops the first word's marker space */
        for (int32_t i = 0; i < v->n; i++)
            v->max_token_len = SP_MAX(v->max_token_len, (size_t)v->toks[i].len);
        sp_strlcpy(v->pre, "wordpiece", sizeof(v->pre));
    } else if (spm) {
        for (int b = 0; b < 256; b++) {
            char hex[8];
            int hn = snprintf(hex, sizeof(hex), "<0x%02X>", b);
            v->byte_tok[b] = tok_find(v, hex, (size_t)hn);
        }
        sp_strlcpy(v->pre, "default", sizeof(v->pre));
    } else {
        result = tok_bpe_init(v, f, err); /* may set add_bos / ignore_merges */
        if (result != SP_OK)
            goto fail;
    }
    bool b;
    if (gg_get_bool(f, "tokenizer.ggml.add_bos_token", &b))
        v->add_bos = b;
    if (gg_get_bool(f, "tokenizer.ggml.add_eos_token", &b))
        v->add_eos = b;

    result = tok_load_special(v, f, err);
    if (result != SP_OK)
        goto fail;
    LOG_DEBUG("tok", "vocab: %s/%s, %d tokens, %zu special, bos %d eos %d",
              spm ? "spm" : kind == TOK_KIND_BPE ? "bpe" : "wpm", v->pre, (int)v->n, v->n_special, (int)v->bos, (int)v->eos);
    *out = v;
    return SP_OK;
fail:
    tok_vocab_free(v);
    return result;
}

void tok_vocab_free(struct tok_vocab *v)
{
    if (!v)
        return;
    tok_bpe_fini(v);
    sp_free(v->special);
    sp_free(v->tok_ht);
    sp_free(v->arena);
    sp_free(v->toks);
    sp_free(v);
}

int32_t tok_n_vocab(const struct tok_vocab *v) { return v->n; }
int32_t tok_bos(const struct tok_vocab *v) { return v->bos; }
int32_t tok_eos(const struct tok_vocab *v) { return v->eos; }
bool tok_add_bos(const struct tok_vocab *v) { return v->add_bos && v->bos >= 0; }
bool tok_add_eos(const struct tok_vocab *v) { return v->add_eos && v->eos >= 0; }

bool tok_is_eog(const struct tok_vocab *v, int32_t id)
{
    for (size_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id)
            return true;
    return false;
}

bool tok_is_control(const struct tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n && (v->toks[id].attr & TOK_ATTR_CONTROL);
}

const char *tok_text(const struct tok_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->toks[id].len;
    return v->arena + v->toks[id].off;
}

/* ---- special-token partition */

struct tok_frag {
    int32_t id;   /* token id, or -1 for raw text */
    size_t off;   /* raw text: byte range of the input */
    size_t len;
};

struct tok_frags {
    struct tok_frag *v;
    size_t n, cap;
};

static enum sp_status tok_frags_push(struct tok_frags *fr, int32_t id, size_t off, size_t len)
{
    if (fr->n == fr->cap) {
        size_t ncap = fr->cap ? fr->cap * 2 : 16;
        struct tok_frag *nv = sp_realloc(fr->v, ncap * sizeof(*nv));
        if (!nv)
            return SP_ERR_NOMEM;
        fr->v = nv;
        fr->cap = ncap;
    }
    fr->v[fr->n++] = (struct tok_frag){id, off, len};
    return SP_OK;
}

/* Split every raw fragment of *cur around occurrences of special token id
 * (llama.cpp tokenizer_st_partition), writing the result to *next. Returns
 * SP_OK and sets *changed when anything was split. */
/* Does [off, off+len) overlap one of the sorted, disjoint spans? */
static bool tok_in_spans(const struct tok_span *sp, size_t n, size_t off, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first span ending after off */
        size_t mid = lo + (hi - lo) / 2;
        if (sp[mid].off + sp[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sp[lo].off < off + len;
}

/* text_spans: byte ranges where control tokens must not be matched (request
 * data inside a rendered chat prompt). */
static enum sp_status tok_split_one(const struct tok_vocab *v, const char *text, int32_t id,
                                    const struct tok_frags *cur, struct tok_frags *next,
                                    bool *changed, const struct tok_span *text_spans, size_t n_spans)
{
    bool guarded = n_spans && (v->toks[id].attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN));
    const struct tok_token *t = &v->toks[id];
    const char *needle = v->arena + t->off;
    size_t nl = t->len;
    next->n = 0;
    *changed = false;
    for (size_t i = 0; i < cur->n; i++) {
        struct tok_frag fr = cur->v[i];
        if (fr.id >= 0 || fr.len < nl) {
            if (tok_frags_push(next, fr.id, fr.off, fr.len) != SP_OK)
                return SP_ERR_NOMEM;
            continue;
        }
        size_t off = fr.off, len = fr.len, from = off;
        for (;;) {
            size_t rest = off + len - from;
            const char *m = rest >= nl ? memmem(text + from, rest, needle, nl) : NULL;
            if (m && guarded && tok_in_spans(text_spans, n_spans, (size_t)(m - text), nl)) {
                from = (size_t)(m - text) + 1; /* request data: the text stays text */
                continue;
            }
            if (!m) {
                if (len > 0 && tok_frags_push(next, -1, off, len) != SP_OK)
                    return SP_ERR_NOMEM;
                break;
            }
            *changed = true;
            size_t mpos = (size_t)(m - text);
            size_t llen = mpos - off;
            if (t->attr & TOK_ATTR_LSTRIP)
                while (llen > 0 && isspace((unsigned char)text[off + llen - 1]))
                    llen--;
            if (llen > 0 && tok_frags_push(next, -1, off, llen) != SP_OK)
                return SP_ERR_NOMEM;
            if (tok_frags_push(next, id, 0, 0) != SP_OK)
                return SP_ERR_NOMEM;
            size_t roff = mpos + nl, rlen = off + len - roff;
            if (t->attr & TOK_ATTR_RSTRIP)
                while (rlen > 0 && isspace((unsigned char)text[roff])) {
                    roff++;
                    rlen--;
                }
            off = roff;
            len = rlen;
            from = off;
        }
    }
    return SP_OK;
}

enum sp_status tok_encode(const struct tok_vocab *v, const char *text, size_t len,
                          bool add_special, bool parse_special, int32_t *out, size_t cap,
                          size_t *n_out, struct sp_err *err)
{
    return tok_encode_spans(v, text, len, add_special, parse_special, NULL, 0, out, cap, n_out, err);
}

enum sp_status tok_encode_spans(const struct tok_vocab *v, const char *text, size_t len,
                                bool add_special, bool parse_special, const struct tok_span *text_spans,
                                size_t n_spans, int32_t *out, size_t cap, size_t *n_out,
                                struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct tok_frags a = {0}, b = {0};
    struct tok_ids ids = {0};
    if (n_out)
        *n_out = 0;
    if (!v || !n_out || (!text && len) || (!out && cap) || (!text_spans && n_spans))
        return sp_err_set(err, SP_ERR_INVALID, "tok_encode: NULL argument");
    if (len > TOK_MAX_TEXT)
        return sp_err_set(err, SP_ERR_LIMIT, "text of %zu bytes is too long to tokenize "
                          "(limit %u MiB)", len, TOK_MAX_TEXT >> 20);

    if (len > 0 && tok_frags_push(&a, -1, 0, len) != SP_OK)
        goto nomem;
    /* bytes present in the text: most special tokens can be skipped without a search */
    uint64_t present[4] = {0};
    if (v->n_special > 0)
        for (size_t i = 0; i < len; i++)
            present[(unsigned char)text[i] >> 6] |= 1ull << ((unsigned char)text[i] & 63);
    for (size_t i = 0; i < v->n_special && a.n > 0; i++) {
        int32_t id = v->special[i];
        const struct tok_token *t = &v->toks[id];
        if (t->len == 0 || t->len > len)
            continue;
        unsigned char c0 = (unsigned char)v->arena[t->off];
        if (!(present[c0 >> 6] & (1ull << (c0 & 63))))
            continue;
        if (!parse_special && (t->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
            continue;
        bool changed;
        if (tok_split_one(v, text, id, &a, &b, &changed, text_spans, n_spans) != SP_OK)
            goto nomem;
        if (changed) {
            struct tok_frags tmp = a;
            a = b;
            b = tmp;
        }
    }

    if (add_special && v->add_bos && v->bos >= 0 && tok_ids_push(&ids, v->bos) != SP_OK)
        goto nomem;
    bool prev_special = true;
    for (size_t i = 0; i < a.n; i++) {
        const struct tok_frag *fr = &a.v[i];
        if (fr->id >= 0) {
            if (tok_ids_push(&ids, fr->id) != SP_OK)
                goto nomem;
            prev_special = true;
            continue;
        }
        if (v->kind == TOK_KIND_SPM)
            result = tok_spm_encode(v, text + fr->off, fr->len,
                                    v->add_space_prefix && prev_special, &ids, err);
        else if (v->kind == TOK_KIND_WPM)
            result = tok_wpm_encode(v, text + fr->off, fr->len, &ids, err);
        else
            result = tok_bpe_encode(v, text + fr->off, fr->len, &ids, err);
        if (result != SP_OK)
            goto fail;
        prev_special = false;
    }
    if (add_special && v->add_eos && v->eos >= 0 && tok_ids_push(&ids, v->eos) != SP_OK)
        goto nomem;

    *n_out = ids.n;
    if (ids.n > cap) {
        result = sp_err_set(err, SP_ERR_LIMIT, "text needs %zu tokens, room for %zu", ids.n, cap);
        goto fail;
    }
    if (ids.n)
        memcpy(out, ids.v, ids.n * sizeof(*out));
    goto done;
nomem:
    result = sp_err_set(err, SP_ERR_NOMEM, "out of memory while tokenizing");
fail:
done:
    sp_free(a.v);
    sp_free(b.v);
    sp_free(ids.v);
    return result;
}
