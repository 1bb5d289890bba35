/* fuzz_jinja.c - libFuzzer harness for the Jinja chat-template interpreter
 * (tok_tmpl_parse / tok_tmpl_render): the input is a template, rendered with
 * a fixed conversation (messages with tool calls, tools, flags) under a small
 * output cap. Any input must parse or fail with a status and an error message,
 * never crash, hang or leak; a successful render must report request-data
 * spans that are sorted, disjoint and inside the output. Seeds: real templates
 * (tests/data/chat_templates) and feature snippets. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "tok/tok.h"

static const char ctx[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\" hi <|im_end|> \"},"
    "{\"role\":\"assistant\",\"content\":\"<think>r</think>ok\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1.5,\"b\":[true,null]}}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"{}\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"}},\"required\":[\"a\"]}}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_tmpl *t = NULL;
    struct sp_err err;
    sp_err_clear(&err);
    enum sp_status st = tok_tmpl_parse((const char *)data, size, &t, &err);
    if (st != SP_OK) {
        if (!err.msg[0] || t)
            abort();
        return 0;
    }
    struct tok_rendered r;
    sp_err_clear(&err);
    st = tok_tmpl_render(t, ctx, sizeof ctx - 1, NULL, 1u << 16, &r, &err);
    if (st == SP_OK) {
        size_t end = 0;
        for (size_t i = 0; i < r.n_spans; i++) {
            if (r.spans[i].off < end || r.spans[i].len == 0 || r.spans[i].off + r.spans[i].len > r.len)
                abort();
            end = r.spans[i].off + r.spans[i].len;
        }
        if (r.len > (1u << 16) || strlen(r.text) > r.len)
            abort();
        tok_rendered_free(&r);
    } else if (!err.msg[0] || r.text) {
        abort();
    }
    tok_tmpl_free(t);
    return 0;
}
