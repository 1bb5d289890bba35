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

#endif
