/* tok.h - tokenizers (SentencePiece-style "llama", byte-level BPE "gpt2" and
 * WordPiece "bert") loaded from GGUF tokenizer.ggml.* metadata, matching
 * llama.cpp token for token; streaming detokenizer; chat templates.
 *
 * A struct tok_vocab is immutable after tok_vocab_load and may be used from
 * several threads at once (every call below is reentrant). It copies what it
 * needs from the gg_file, so the file may be closed after loading. */
#ifndef SPOKE_TOK_H
#define SPOKE_TOK_H

#include "base/base.h"
#include "gguf/gguf.h"

struct tok_vocab;

/* Load from tokenizer.ggml.* metadata: model "llama" = SPM (scores, byte
 * fallback), "gpt2" = byte-level BPE (merges; tokenizer.ggml.pre selects the
 * pre-tokenizer regexes, run with PCRE2), "bert" = WordPiece ([CLS]/[SEP] act
 * as BOS/EOS). Other models or an unknown pre -> SP_ERR_UNSUPPORTED; malformed
 * metadata -> SP_ERR_FORMAT; SP_ERR_NOMEM. On error *out is NULL. Takes
 * ~0.2 s for a 128k-token vocabulary with 280k merges. */
enum sp_status tok_vocab_load(const struct gg_file *f, struct tok_vocab **out,
                              struct sp_err *err) SP_MUST_USE;
void tok_vocab_free(struct tok_vocab *v); /* NULL is a no-op */

int32_t tok_n_vocab(const struct tok_vocab *v);
int32_t tok_bos(const struct tok_vocab *v); /* -1 if none */
int32_t tok_eos(const struct tok_vocab *v); /* -1 if none */
/* tokenizer.ggml.add_bos_token, default per model type (SPM true, BPE false). */
bool tok_add_bos(const struct tok_vocab *v);
bool tok_add_eos(const struct tok_vocab *v);
/* End-of-generation: EOS, EOT, <|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>... */
bool tok_is_eog(const struct tok_vocab *v, int32_t id);
bool tok_is_control(const struct tok_vocab *v, int32_t id);

/* Tokenize len bytes of UTF-8 text. add_special: add BOS/EOS per the vocab
 * flags. parse_special: control-token text in the input becomes the control
 * token. Writes up to cap ids to out; *n_out = number produced (SP_ERR_LIMIT if
 * more than cap are needed; then *n_out = the number needed; cap 0 counts).
 * Invalid UTF-8 is tokenized (as U+FFFD for BPE, bytes for SPM), never
 * rejected. Errors: SP_ERR_INVALID (NULL args), SP_ERR_LIMIT (also for text
 * over 64 MiB), SP_ERR_NOMEM. */
enum sp_status tok_encode(const struct tok_vocab *v, const char *text, size_t len,
                          bool add_special, bool parse_special, int32_t *out, size_t cap,
                          size_t *n_out, struct sp_err *err) SP_MUST_USE;

struct tok_span;
/* tok_encode, except that control tokens are never matched inside the sorted,
 * disjoint byte ranges text_spans (request data of a rendered chat prompt:
 * message contents are text, only the template's own markers are special).
 * Ranges past len are ignored. */
enum sp_status tok_encode_spans(const struct tok_vocab *v, const char *text, size_t len,
                                bool add_special, bool parse_special,
                                const struct tok_span *text_spans, size_t n_spans, int32_t *out,
                                size_t cap, size_t *n_out, struct sp_err *err) SP_MUST_USE;

/* Bytes a token stands for (SPM: U+2581 -> ' ', <0xNN> -> byte; BPE: byte-unicode
 * map reversed). Control tokens give "" unless render_special. Returns the byte
 * length (may exceed bufsz: then the output is truncated). buf is not
 * NUL-terminated. Out-of-range ids give 0. */
size_t tok_piece(const struct tok_vocab *v, int32_t id, bool render_special, char *buf,
                 size_t bufsz);
/* Raw vocab string of a token (for logprob display / debugging); NULL for an
 * out-of-range id. Not NUL-terminated: *len is its length. */
const char *tok_text(const struct tok_vocab *v, int32_t id, size_t *len);

/* Decode a whole sequence, appended to out (raw bytes, not validated). As
 * llama_detokenize: for SPM vocabs with the space prefix, the leading space of
 * the first piece that produces text is dropped, so that
 * tok_decode(tok_encode(x)) == x. Control tokens give "" unless render_special.
 * Errors: SP_ERR_INVALID, SP_ERR_NOMEM, SP_ERR_LIMIT (out's limit). */
enum sp_status tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n,
                          bool render_special, struct sp_buf *out) SP_MUST_USE;

/* Streaming detokenizer: holds back an incomplete UTF-8 sequence between tokens. */
struct tok_stream {
    char pending[8];  /* bytes of an incomplete UTF-8 sequence */
    size_t n_pending;
    bool first;       /* true: drop the SPM space prefix of the next text piece (set it
                       * when decoding a prompt from its start; false after init, which is
                       * right for generated tokens that follow a prompt) */
};
void tok_stream_init(struct tok_stream *s); /* zeroes it (first = false) */
/* Append the text for id to out; only complete UTF-8 is appended, an
 * incomplete tail is kept in s. Invalid bytes become U+FFFD. Control tokens
 * append nothing. */
enum sp_status tok_stream_push(const struct tok_vocab *v, struct tok_stream *s, int32_t id,
                               struct sp_buf *out) SP_MUST_USE;
/* Flush what is pending: invalid leftovers -> U+FFFD. */
enum sp_status tok_stream_flush(struct tok_stream *s, struct sp_buf *out) SP_MUST_USE;

/* ---- chat templates */
enum tok_chat_family {
    TOK_CHAT_CHATML = 0,
    TOK_CHAT_LLAMA2,
    TOK_CHAT_LLAMA3,
    TOK_CHAT_MISTRAL,
    TOK_CHAT_ZEPHYR,
    TOK_CHAT_PHI3,
    TOK_CHAT_GEMMA,
    TOK_CHAT_QWEN3, /* chatml; assistant turns carry <think> blocks (see tok_chat.c) */
    TOK_CHAT_PHI4   /* <|im_start|>role<|im_sep|>content<|im_end|> */
};
struct tok_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
};
/* Recognise the family of a Jinja chat template (tokenizer.chat_template) by
 * its distinctive markers. NULL or unrecognised -> TOK_CHAT_CHATML. */
enum tok_chat_family tok_chat_detect(const char *jinja_template);
const char *tok_chat_family_name(enum tok_chat_family f); /* "chatml", "llama3"... */
/* Render msgs as a prompt, appended to out. bos_text/eos_text: the vocab's
 * BOS/EOS strings (NULL = ""), used by templates that spell them out.
 * add_generation_prompt: end with the assistant turn header. Unknown roles
 * -> SP_ERR_INVALID. */
enum sp_status tok_chat_render(enum tok_chat_family f, const struct tok_chat_msg *msgs, size_t n,
                               bool add_generation_prompt, const char *bos_text,
                               const char *eos_text, struct sp_buf *out,
                               struct sp_err *err) SP_MUST_USE;

/* ---- Jinja chat templates (tok_jinja_*.c): the model's own template text
 * (tokenizer.chat_template), rendered as Python Jinja2 does in Hugging Face's
 * apply_chat_template environment (trim_blocks, lstrip_blocks, loop controls,
 * raise_exception, strftime_now, tojson with Python's json.dumps format). */
struct tok_tmpl;
#define TOK_TMPL_MAX_SOURCE (1u << 20) /* longest template accepted (bytes) */
/* Parse src (len bytes). Syntax errors and unsupported statements give
 * SP_ERR_INVALID with "line L, column C" in the message; SP_ERR_LIMIT (too
 * long, nested too deeply), SP_ERR_NOMEM. The result is immutable and may be
 * rendered from several threads at once. */
enum sp_status tok_tmpl_parse(const char *src, size_t len, struct tok_tmpl **out,
                              struct sp_err *err) SP_MUST_USE;
void tok_tmpl_free(struct tok_tmpl *t); /* NULL is a no-op */

/* A byte range of rendered text. */
struct tok_span {
    size_t off, len;
};
struct tok_rendered {
    char *text;              /* sp_malloc'd, NUL-terminated */
    size_t len;
    struct tok_span *spans;  /* sorted, disjoint: bytes that came from request data */
    size_t n_spans;
};
/* Render with the variables of ctx_json (a JSON object: messages, tools,
 * add_generation_prompt, bos_token, eos_token, any extra flags; vars may add
 * bos_token / eos_token). Every string of
 * ctx_json is request data: its bytes in the output are listed in out->spans (also after trim/slice/concatenation;
 * other transformations of request strings are request data as a whole).
 * Bounded: max_out bytes of output, a step budget, macro depth, range()
 * length and memory proportional to the context. Errors (SP_ERR_INVALID with
 * line and column; raise_exception's message; SP_ERR_LIMIT) leave out empty. */
struct tok_tmpl_vars {
    const char *bos_token, *eos_token; /* set when not NULL and absent from the context */
};
enum sp_status tok_tmpl_render(const struct tok_tmpl *t, const char *ctx_json, size_t ctx_len,
                               const struct tok_tmpl_vars *vars, size_t max_out,
                               struct tok_rendered *out, struct sp_err *err) SP_MUST_USE;
/* Built-in Jinja text of a fixed family name ("chatml", "llama2", "llama3",
 * "mistral", "zephyr", "phi3", "gemma": the templates those model families
 * ship), or NULL for another name. */
const char *tok_tmpl_builtin(const char *name);
void tok_rendered_free(struct tok_rendered *r);

#endif
