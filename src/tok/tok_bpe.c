/* tok_bpe.c - byte-level BPE ("gpt2") encoder, as llama.cpp does it.
 *
 * Load: the GPT-2 byte <-> code point map, the merges (tokenizer.ggml.merges,
 * "left right" lines, rank = line index) into a hash table keyed by the pair
 * of token ids (value: rank and merged token id), and the pre-tokenizer
 * regexes chosen by tokenizer.ggml.pre, compiled with PCRE2 (UTF, Unicode
 * properties, JIT).
 * Encode: invalid UTF-8 becomes U+FFFD; each regex in turn splits every piece
 * into its matches and the gaps between them (a piece is the regex subject,
 * so lookaheads never see past it); each resulting word is merged pairwise by
 * lowest rank (tok_heap keyed by -rank, ties to the leftmost pair) starting from one
 * symbol per byte. */
#include <string.h>

#include "obs/log.h"
#include "tok/tok_internal.h"

/* ---- pre-tokenizer regex sets (llama.cpp llm_tokenizer_bpe) */

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define RX_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"

enum bpe_pre {
    PRE_DEFAULT, PRE_LLAMA3, PRE_DEEPSEEK_LLM, PRE_DEEPSEEK3, PRE_DEEPSEEK_CODER, PRE_FALCON,
    PRE_STARCODER, PRE_GPT2, PRE_QWEN2, PRE_PORO, PRE_VIKING, PRE_TEKKEN, PRE_GPT4O,
    PRE_CHAMELEON, PRE_COUNT
};

static const char *const bpe_regexes[PRE_COUNT][TOK_MAX_REGEX] = {
    [PRE_DEFAULT] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
    [PRE_LLAMA3] = {RX_LLAMA3},
    [PRE_DEEPSEEK_LLM] = {
        "[\r\n]",
        "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
        "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
        "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"
        "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}"
        "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
        "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
        "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}"
        "\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
        "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
        "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
        "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
        "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"
        "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
        "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
        "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
        "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
        "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
        "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
        "\\s+$",
        RX_CJK,
        "\\p{N}+",
    },
    [PRE_DEEPSEEK3] = {
        "\\p{N}{1,3}",
        "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
        " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    },
    [PRE_DEEPSEEK_CODER] = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"},
    [PRE_FALCON] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"},
    [PRE_STARCODER] = {"\\p{N}", RX_GPT2},
    [PRE_GPT2] = {RX_GPT2},
    [PRE_QWEN2] = {RX_QWEN2},
    [PRE_PORO] = {RX_PORO},
    [PRE_VIKING] = {RX_PORO, "\\p{N}"},
    [PRE_TEKKEN] = {
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?"
        "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    },
    [PRE_GPT4O] = {
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
        "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    },
    [PRE_CHAMELEON] = {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                       "([\\t\\n]|    |  )", "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", RX_GPT2},
};

struct bpe_pre_name {
    const char *name;
    enum bpe_pre pre;
    bool ignore_merges;
    bool add_bos;
};

/* tokenizer.ggml.pre values (as llama.cpp names them). */
static const struct bpe_pre_name bpe_pre_names[] = {
    {"default", PRE_DEFAULT, false, false},
    {"llama3", PRE_LLAMA3, true, true},
    {"llama-v3", PRE_LLAMA3, true, true},
    {"llama-bpe", PRE_LLAMA3, true, true},
    {"falcon3", PRE_LLAMA3, true, true},
    {"falcon-h1", PRE_LLAMA3, true, true},
    {"pixtral", PRE_LLAMA3, true, true},
    {"dbrx", PRE_LLAMA3, false, false},
    {"smaug-bpe", PRE_LLAMA3, false, false},
    {"chatglm-bpe", PRE_LLAMA3, false, false},
    {"deepseek-llm", PRE_DEEPSEEK_LLM, false, false},
    {"deepseek-v3", PRE_DEEPSEEK3, false, false},
    {"deepseek-coder", PRE_DEEPSEEK_CODER, false, false},
    {"falcon", PRE_FALCON, false, false},
    {"mpt", PRE_GPT2, false, false},
    {"starcoder", PRE_STARCODER, false, false},
    {"refact", PRE_STARCODER, false, false},
    {"command-r", PRE_STARCODER, false, false},
    {"smollm", PRE_STARCODER, false, false},
    {"codeshell", PRE_STARCODER, false, false},
    {"exaone", PRE_STARCODER, false, false},
    {"minerva-7b", PRE_STARCODER, false, false},
    {"gpt-2", PRE_GPT2, false, false},
    {"phi-2", PRE_GPT2, false, false},
    {"jina-es", PRE_GPT2, false, false},
    {"jina-de", PRE_GPT2, false, false},
    {"jina-v1-en", PRE_GPT2, false, false},
    {"jina-v2-es", PRE_GPT2, false, false},
    {"jina-v2-de", PRE_GPT2, false, false},
    {"jina-v2-code", PRE_GPT2, false, false},
    {"gigachat", PRE_GPT2, false, false},
    {"roberta-bpe", PRE_GPT2, false, false},
    {"olmo", PRE_GPT2, false, false},
    {"jais", PRE_GPT2, false, false},
    {"trillion", PRE_GPT2, false, false},
    {"qwen2", PRE_QWEN2, false, false},
    {"deepseek-r1-qwen", PRE_QWEN2, false, false},
    {"megrez", PRE_QWEN2, false, false},
    {"stablelm2", PRE_QWEN2, false, false},
    {"hunyuan", PRE_QWEN2, false, false},
    {"poro-chat", PRE_PORO, false, false},
    {"bloom", PRE_PORO, false, false},
    {"gpt3-finnish", PRE_PORO, false, false},
    {"viking", PRE_VIKING, false, false},
    {"tekken", PRE_TEKKEN, true, false},
    {"gpt-4o", PRE_GPT4O, false, false},
    {"llama4", PRE_GPT4O, true, true},
    {"chameleon", PRE_CHAMELEON, false, true},
};

/* ---- PCRE2 allocations go through the counted allocator */

static void *bpe_pcre_malloc(size_t n, void *ud)
{
    SP_UNUSED(ud);
    return sp_malloc(n);
}

static void bpe_pcre_free(void *p, void *ud)
{
    SP_UNUSED(ud);
    sp_free(p);
}

/* ---- merges table */

static size_t bpe_slot(uint64_t key, size_t mask)
{
    return (size_t)tok_hash_fin(key) & mask;
}

static void bpe_merge_lookup(const struct tok_vocab *v, int32_t l, int32_t r, uint32_t *rank,
                             int32_t *outid)
{
    *outid = -1;
    if (l < 0 || r < 0 || !v->mg)
        return;
    uint64_t key = ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1);
    for (size_t i = bpe_slot(key, v->mg_mask);; i = (i + 1) & v->mg_mask) {
        const struct tok_merge *m = &v->mg[i];
        if (m->key == 0)
            return;
        if (m->key == key) {
            *rank = m->rank;
            *outid = m->out;
            return;
        }
    }
}

/* One merge line being resolved (merges are processed in batches so that the
 * hash-table cache misses of a batch overlap, via prefetching). */
struct bpe_pending {
    const char *l, *r;
    size_t ll, rl;
    uint64_t hl, hr, ho;
    int32_t il, ir, io;
    uint64_t key;
};

#define BPE_BATCH 32

static enum sp_status bpe_load_merges(struct tok_vocab *v, const struct gg_file *f,
                                      struct sp_err *err)
{
    enum gg_value_type et;
    uint64_t count = 0;
    if (!gg_get_arr(f, "tokenizer.ggml.merges", &et, &count))
        return SP_OK; /* no merges: every word stays bytes (still valid) */
    if (et != GG_VAL_STRING)
        return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.merges",
                           "tokenizer.ggml.merges must be a string array");
    if (count > (1u << 24))
        return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.merges", "too many merges (%llu)",
                           (unsigned long long)count);
    size_t slots = 16;
    while (slots < count + count / 2)
        slots <<= 1;
    v->mg = sp_calloc(slots, sizeof(*v->mg));
    if (!v->mg)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory loading %llu merges",
                          (unsigned long long)count);
    v->mg_mask = slots - 1;
    size_t skipped = 0;
    struct bpe_pending pb[BPE_BATCH];
    for (uint64_t base = 0; base < count; base += BPE_BATCH) {
        size_t nb = (size_t)SP_MIN((uint64_t)BPE_BATCH, count - base);
        for (size_t j = 0; j < nb; j++) { /* split, hash, prefetch the token slots */
            struct bpe_pending *p = &pb[j];
            struct gg_str s;
            p->key = 0;
            if (!gg_arr_str(f, "tokenizer.ggml.merges", base + j, &s))
                return sp_err_setc(err, SP_ERR_FORMAT, "tokenizer.ggml.merges",
                                   "merge %llu is unreadable", (unsigned long long)(base + j));
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
            if (!sp) {
                p->l = NULL;
                continue;
            }
            p->l = s.ptr;
            p->ll = (size_t)(sp - s.ptr);
            p->r = sp + 1;
            p->rl = (size_t)s.len - p->ll - 1;
            uint64_t hl = tok_fnv(TOK_FNV_INIT, p->l, p->ll);
            p->hl = tok_hash_fin(hl);
            p->hr = tok_hash_fin(tok_fnv(TOK_FNV_INIT, p->r, p->rl));
            p->ho = tok_hash_fin(tok_fnv(hl, p->r, p->rl));
            __builtin_prefetch(&v->tok_ht[p->hl & v->tok_ht_mask]);
            __builtin_prefetch(&v->tok_ht[p->hr & v->tok_ht_mask]);
            __builtin_prefetch(&v->tok_ht[p->ho & v->tok_ht_mask]);
        }
        for (size_t j = 0; j < nb; j++) { /* resolve ids, prefetch the merge slot */
            struct bpe_pending *p = &pb[j];
            if (!p->l)
                continue;
            p->il = tok_find_h(v, p->l, p->ll, NULL, 0, p->hl);
            p->ir = tok_find_h(v, p->r, p->rl, NULL, 0, p->hr);
            p->io = tok_find_h(v, p->l, p->ll, p->r, p->rl, p->ho);
            if (p->il < 0 || p->ir < 0 || p->io < 0)
                continue;
            p->key = ((uint64_t)(uint32_t)(p->il + 1) << 32) | (uint32_t)(p->ir + 1);
            __builtin_prefetch(&v->mg[bpe_slot(p->key, v->mg_mask)]);
        }
        for (size_t j = 0; j < nb; j++) { /* insert; the first (lowest) rank wins */
            const struct bpe_pending *p = &pb[j];
            if (p->key == 0) {
                skipped++;
                continue;
            }
            size_t k = bpe_slot(p->key, v->mg_mask);
            while (v->mg[k].key != 0 && v->mg[k].key != p->key)
                k = (k + 1) & v->mg_mask;
            if (v->mg[k].key == p->key)
                continue;
            v->mg[k] = (struct tok_merge){p->key, (uint32_t)(base + j), p->io};
        }
    }
    if (skipped)
        LOG_DEBUG("tok", "%zu merges skipped (malformed or not in the vocabulary)", skipped);
    return SP_OK;
}

enum sp_status tok_bpe_init(struct tok_vocab *v, const struct gg_file *f, struct sp_err *err)
{
    /* GPT-2 bytes_to_unicode */
    memset(v->cp_byte_ok, 0, sizeof(v->cp_byte_ok));
    uint16_t extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint16_t cp = keep ? (uint16_t)b : (uint16_t)(256 + extra++);
        v->byte_cp[b] = cp;
        v->cp_byte[cp] = (uint8_t)b;
        v->cp_byte_ok[cp] = 1;
        char u[4];
        size_t ul = tok_utf8_encode(cp, u);
        v->byte_tok[b] = tok_find(v, u, ul);
    }

    struct gg_str pre = {"default", 7};
    if (!gg_get_str(f, "tokenizer.ggml.pre", &pre)) {
        LOG_WARN("tok", "no tokenizer.ggml.pre in the model: using the default BPE "
                        "pre-tokenizer (re-convert the model if its text tokenizes oddly)");
        pre.ptr = "default";
        pre.len = 7;
    }
    size_t pl = SP_MIN((size_t)pre.len, sizeof(v->pre) - 1);
    memcpy(v->pre, pre.ptr, pl);
    v->pre[pl] = '\0';
    const struct bpe_pre_name *pn = NULL;
    for (size_t i = 0; i < SP_ARRAY_LEN(bpe_pre_names); i++)
        if (strlen(bpe_pre_names[i].name) == pre.len &&
            memcmp(bpe_pre_names[i].name, pre.ptr, (size_t)pre.len) == 0)
            pn = &bpe_pre_names[i];
    if (!pn)
        return sp_err_setc(err, SP_ERR_UNSUPPORTED, "tokenizer.ggml.pre",
                           "pre-tokenizer '%s' is not supported (known: llama-bpe, qwen2, gpt-2, "
                           "deepseek-llm, deepseek-coder, falcon, starcoder, refact, mpt, ...)",
                           v->pre);
    v->ignore_merges = pn->ignore_merges;
    v->add_bos = pn->add_bos;

    v->gctx = pcre2_general_context_create(bpe_pcre_malloc, bpe_pcre_free, NULL);
    if (!v->gctx)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    pcre2_compile_context *cctx = pcre2_compile_context_create(v->gctx);
    if (!cctx)
        return sp_err_set(err, SP_ERR_NOMEM, "out of memory");
    enum sp_status result = SP_OK;
    for (size_t i = 0; i < TOK_MAX_REGEX && bpe_regexes[pn->pre][i]; i++) {
        const char *rx = bpe_regexes[pn->pre][i];
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo,
                                       cctx);
        if (!re && ec == PCRE2_ERROR_HEAP_FAILED) {
            result = sp_err_set(err, SP_ERR_NOMEM, "out of memory compiling the pre-tokenizer");
            break;
        }
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            result = sp_err_setc(err, SP_ERR_INTERNAL, v->pre,
                                 "pre-tokenizer regex %zu does not compile at %zu: %s", i,
                                 (size_t)eo, (const char *)msg);
            break;
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
        v->re[v->n_re++] = re;
    }
    pcre2_compile_context_free(cctx);
    if (result != SP_OK)
        return result;
    return bpe_load_merges(v, f, err);
}

void tok_bpe_fini(struct tok_vocab *v)
{
    for (size_t i = 0; i < v->n_re; i++)
        pcre2_code_free(v->re[i]);
    v->n_re = 0;
    pcre2_general_context_free(v->gctx);
    v->gctx = NULL;
    sp_free(v->mg);
    v->mg = NULL;
}

/* ---- encoding */

struct bpe_span {
    size_t off, len;
};

struct bpe_spans {
    struct bpe_span *v;
    size_t n, cap;
};

static bool bpe_spans_push(struct bpe_spans *s, size_t off, size_t len)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct bpe_span *nv = sp_realloc(s->v, ncap * sizeof(*nv));
        if (!nv)
            return false;
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = (struct bpe_span){off, len};
    return true;
}

struct bpe_sym {
    int32_t prev, next, id;
    uint32_t n; /* bytes; 0 once merged away */
};

static bool bpe_try_pair(const struct tok_vocab *v, const struct bpe_sym *syms, int32_t left,
                         int32_t right, struct tok_heap *h)
{
    if (left < 0 || right < 0)
        return true;
    uint32_t rank = 0;
    int32_t out;
    bpe_merge_lookup(v, syms[left].id, syms[right].id, &rank, &out);
    if (out < 0)
        return true;
    struct tok_bigram b = {.key = -(double)rank, .left = left, .out = out,
                           .size = syms[left].n + syms[right].n};
    return tok_heap_push(h, b) == SP_OK;
}

struct bpe_work {
    struct bpe_sym *syms;
    size_t syms_cap;
    struct tok_heap heap;
    char *enc;            /* byte-encoded word (ignore_merges lookup) */
    size_t enc_cap;
};

/* Merge one pre-tokenized word (raw bytes) and append its ids. */
static bool bpe_word(const struct tok_vocab *v, const unsigned char *w, size_t n,
                     struct bpe_work *wk, struct tok_ids *out)
{
    if (v->ignore_merges) {
        if (n * 2 > wk->enc_cap) {
            char *ne = sp_realloc(wk->enc, n * 2);
            if (!ne)
                return false;
            wk->enc = ne;
            wk->enc_cap = n * 2;
        }
        size_t el = 0;
        for (size_t i = 0; i < n; i++)
            el += tok_utf8_encode(v->byte_cp[w[i]], wk->enc + el);
        int32_t id = tok_find(v, wk->enc, el);
        if (id >= 0)
            return tok_ids_push(out, id) == SP_OK;
    }
    if (n > wk->syms_cap) {
        struct bpe_sym *ns = sp_realloc(wk->syms, n * sizeof(*ns));
        if (!ns)
            return false;
        wk->syms = ns;
        wk->syms_cap = n;
    }
    struct bpe_sym *syms = wk->syms;
    for (size_t i = 0; i < n; i++)
        syms[i] = (struct bpe_sym){(int32_t)i - 1, i + 1 == n ? -1 : (int32_t)i + 1,
                                   v->byte_tok[w[i]], 1};
    wk->heap.n = 0;
    for (size_t i = 1; i < n; i++)
        if (!bpe_try_pair(v, syms, (int32_t)i - 1, (int32_t)i, &wk->heap))
            return false;
    while (wk->heap.n) {
        struct tok_bigram b = tok_heap_pop(&wk->heap);
        struct bpe_sym *l = &syms[b.left];
        /* current iff left is alive with its queued length: then its next is
         * the queued right (a symbol only disappears into its left neighbour),
         * and the total length tells whether that right grew since */
        if (l->n == 0 || l->next < 0)
            continue;
        struct bpe_sym *r = &syms[l->next];
        if (l->n + r->n != b.size || l->n >= b.size)
            continue;
        l->n += r->n;
        l->id = b.out;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        if (!bpe_try_pair(v, syms, l->prev, b.left, &wk->heap) ||
            !bpe_try_pair(v, syms, b.left, l->next, &wk->heap))
            return false;
    }
    for (int32_t i = 0; i != -1 && n > 0; i = syms[i].next)
        if (syms[i].id >= 0 && tok_ids_push(out, syms[i].id) != SP_OK)
            return false;
    return true;
}

/* Copy text with invalid UTF-8 replaced by U+FFFD (llama.cpp decodes
 * leniently, then re-encodes code points). */
static char *bpe_sanitize(const char *text, size_t len, size_t *out_len)
{
    size_t cap;
    if (!sp_mul_size(len, 3, &cap))
        return NULL;
    char *buf = sp_malloc(cap + 1);
    if (!buf)
        return NULL;
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = tok_utf8_decode(s + i, len - i, &cp);
        if (cl == 0) {
            cp = 0xFFFD;
            cl = 1;
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            cp = 0xFFFD;
        n += tok_utf8_encode(cp, buf + n);
        i += cl;
    }
    *out_len = n;
    return buf;
}

enum sp_status tok_bpe_encode(const struct tok_vocab *v, const char *text, size_t len,
                              struct tok_ids *out, struct sp_err *err)
{
    enum sp_status result = SP_OK;
    struct bpe_spans a = {0}, b = {0};
    struct bpe_work wk = {0};
    pcre2_match_data *md = NULL;
    size_t n = 0;
    char *buf = bpe_sanitize(text, len, &n);
    if (!buf)
        goto nomem;
    if (n == 0)
        goto done;
    md = pcre2_match_data_create(4, v->gctx);
    if (!md || !bpe_spans_push(&a, 0, n))
        goto nomem;
    for (size_t r = 0; r < v->n_re; r++) {
        b.n = 0;
        for (size_t k = 0; k < a.n; k++) {
            const char *subj = buf + a.v[k].off;
            size_t slen = a.v[k].len, pos = 0, last = 0;
            while (pos <= slen) {
                int rc = pcre2_match(v->re[r], (PCRE2_SPTR)subj, slen, pos, PCRE2_NO_UTF_CHECK,
                                     md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH)
                    break;
                if (rc == PCRE2_ERROR_NOMEMORY)
                    goto nomem;
                if (rc < 0) {
                    PCRE2_UCHAR msg[128];
                    pcre2_get_error_message(rc, msg, sizeof(msg));
                    result = sp_err_set(err, SP_ERR_LIMIT, "pre-tokenizer regex failed: %s",
                                        (const char *)msg);
                    goto fail;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me <= ms) { /* empty match: step one character */
                    pos = ms + 1;
                    while (pos < slen && ((unsigned char)subj[pos] & 0xC0) == 0x80)
                        pos++;
                    continue;
                }
                if (ms > last && !bpe_spans_push(&b, a.v[k].off + last, ms - last))
                    goto nomem;
                if (!bpe_spans_push(&b, a.v[k].off + ms, me - ms))
                    goto nomem;
                last = pos = me;
            }
            if (last < slen && !bpe_spans_push(&b, a.v[k].off + last, slen - last))
                goto nomem;
        }
        struct bpe_spans t = a;
        a = b;
        b = t;
    }
    for (size_t k = 0; k < a.n; k++)
        if (!bpe_word(v, (const unsigned char *)buf + a.v[k].off, a.v[k].len, &wk, out))
            goto nomem;
    goto done;
nomem:
    result = sp_err_set(err, SP_ERR_NOMEM, "out of memory while tokenizing");
fail:
done:
    pcre2_match_data_free(md);
    sp_free(wk.syms);
    sp_free(wk.heap.v);
    sp_free(wk.enc);
    sp_free(a.v);
    sp_free(b.v);
    sp_free(buf);
    return result;
}
