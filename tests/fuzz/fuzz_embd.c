/* fuzz_embd.c - libFuzzer harness for the embedding request reader
 * (srv_embd_parse in the three wire formats: OpenAI /v1/embeddings, Ollama
 * /api/embed and /api/embeddings) and the base64 encoder: any body must
 * parse or fail with a status, never crash, hang or leak; accepted requests
 * must hold the invariants the route relies on (1..SRV_EMBD_MAX_INPUTS
 * inputs, each a non-empty text or a non-empty array of token ids >= 0). */
#include "server/server_embd.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int w = SRV_EMBD_OPENAI; w <= SRV_EMBD_OLLAMA_OLD; w++) {
        struct srv_embd_req r;
        struct sp_err e;
        sp_err_clear(&e);
        if (srv_embd_parse((const char *)data, size, (enum srv_embd_wire)w, &r, &e) == SP_OK) {
            if (r.n < 1 || r.n > SRV_EMBD_MAX_INPUTS || !r.in || r.dimensions < 0 ||
                (w == SRV_EMBD_OLLAMA_OLD && r.n != 1))
                __builtin_trap();
            for (size_t i = 0; i < r.n; i++) {
                const struct srv_embd_input *in = &r.in[i];
                if (in->text ? in->len == 0 || strlen(in->text) != in->len : !in->toks || in->n_toks < 1)
                    __builtin_trap();
                if (in->text && w != SRV_EMBD_OPENAI && in->toks)
                    __builtin_trap();
                for (int t = 0; !in->text && t < in->n_toks; t++)
                    if (in->toks[t] < 0)
                        __builtin_trap();
            }
        } else if (e.code == SP_OK) {
            __builtin_trap();
        }
        srv_embd_req_free(&r);
    }
    struct sp_buf b = {0};
    if (srv_base64_append(&b, data, size) == 0 && b.len != (size + 2) / 3 * 4)
        __builtin_trap();
    sp_buf_free(&b);
    return 0;
}
