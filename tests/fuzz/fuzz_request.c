/* fuzz_request.c - libFuzzer harness for the OpenAI request reader
 * (server_request_parse), as chat and as completions: any body must parse or
 * fail with a status, never crash, hang or leak; accepted requests must hold
 * the invariants the generation code relies on. */
#include "server/server_req.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server_opts o;
    server_opts_default(&o);
    for (int chat = 0; chat < 2; chat++) {
        struct server_request r;
        struct sp_err e;
        if (server_request_parse((const char *)data, size, chat != 0, &o.limits, &r, &e) == SP_OK) {
            if (chat && (r.n_msgs == 0 || !r.msgs))
                __builtin_trap();
            if (!chat && !r.prompt)
                __builtin_trap();
            if (r.max_tokens < 0 || r.max_tokens > o.limits.max_tokens || r.top_logprobs < 0 || r.top_logprobs > 20 ||
                r.n_stop > (size_t)o.limits.max_stop)
                __builtin_trap();
            for (size_t i = 0; i < r.n_msgs; i++)
                if (!r.msgs[i].role || !r.msgs[i].content)
                    __builtin_trap();
        } else if (e.code == SP_OK) {
            __builtin_trap();
        }
        server_request_free(&r);
    }
    return 0;
}
