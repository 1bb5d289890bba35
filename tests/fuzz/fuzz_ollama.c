/* fuzz_ollama.c - libFuzzer harness for the Ollama request readers
 * (server_ollama_parse as /api/chat and /api/generate, and
 * server_ollama_model_name): any body must parse or fail with a status,
 * never crash, hang or leak; accepted requests must hold the invariants the
 * generation path relies on. */
#include "server/server_ollama.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server_opts o;
    server_opts_default(&o);
    for (int chat = 0; chat < 2; chat++) {
        struct server_request r;
        struct sp_err e;
        sp_err_clear(&e);
        if (server_ollama_parse((const char *)data, size, chat != 0, &o.limits, &r, &e) == SP_OK) {
            if (!r.model || (r.chat && (r.n_msgs == 0 || !r.msgs || !r.tmpl_ctx)) || (!r.chat && !r.prompt) ||
                (chat && !r.chat))
                __builtin_trap();
            if (r.max_tokens < 0 || r.max_tokens > o.limits.max_tokens || r.n_stop > (size_t)o.limits.max_stop)
                __builtin_trap();
            for (size_t i = 0; i < r.n_msgs; i++)
                if (!r.msgs[i].role || !r.msgs[i].content)
                    __builtin_trap();
        } else if (e.code == SP_OK) {
            __builtin_trap();
        }
        server_request_free(&r);
    }
    char *name = NULL;
    bool stream = false;
    struct sp_err e;
    sp_err_clear(&e);
    if (server_ollama_model_name((const char *)data, size, &name, &stream, &e) == SP_OK) {
        if (!name || !name[0] || strlen(name) > 512)
            __builtin_trap();
    } else if (e.code == SP_OK || name) {
        __builtin_trap();
    }
    sp_free(name);
    return 0;
}
