/* test_tok_chat.c - chat template family detection (from real template
 * snippets) and the exact prompt each family renders for
 * system + user + assistant + user with add_generation_prompt. */
#include "base/base.h"
#include "test.h"
#include "tok/tok.h"

static const struct tok_chat_msg conv[] = {
    {"system", "You are helpful."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"user", "How are you?"},
};

static bool render_is(enum tok_chat_family f, bool gen, const char *bos, const char *eos,
                      const char *expect)
{
    struct sp_buf b = {0};
    struct sp_err err = {0};
    enum sp_status st = tok_chat_render(f, conv, SP_ARRAY_LEN(conv), gen, bos, eos, &b, &err);
    bool ok = st == SP_OK && b.data && strcmp(b.data, expect) == 0;
    if (!ok)
        fprintf(stderr, "  %s rendered:\n---\n%s\n---\nexpected:\n---\n%s\n---\n",
                tok_chat_family_name(f), b.data ? b.data : "(null)", expect);
    sp_buf_free(&b);
    return ok;
}

TEST(chat_detect)
{
    CHECK_EQ_INT(tok_chat_detect(NULL), TOK_CHAT_CHATML);
    CHECK_EQ_INT(tok_chat_detect(""), TOK_CHAT_CHATML);
    CHECK_EQ_INT(tok_chat_detect("{{ something unknown }}"), TOK_CHAT_CHATML);
    CHECK_EQ_INT(tok_chat_detect("{% for message in messages %}{{'<|im_start|>' + message['role'] "
                                 "+ '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"),
                 TOK_CHAT_CHATML);
    CHECK_EQ_INT(tok_chat_detect("{% set content = '<|start_header_id|>' + message['role'] + "
                                 "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"),
                 TOK_CHAT_LLAMA3);
    CHECK_EQ_INT(tok_chat_detect("{% if message['role'] == 'system' %}{{ '<<SYS>>\\n' + content + "
                                 "'\\n<</SYS>>\\n\\n' }}{% endif %}{{ bos_token + '[INST] ' + "
                                 "content.strip() + ' [/INST]' }}"),
                 TOK_CHAT_LLAMA2);
    CHECK_EQ_INT(tok_chat_detect("{{ bos_token }}{% for message in messages %}{% if message['role'] "
                                 "== 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
                                 "{% elif message['role'] == 'assistant' %}{{ message['content'] + "
                                 "eos_token}}{% endif %}{% endfor %}"),
                 TOK_CHAT_MISTRAL);
    CHECK_EQ_INT(tok_chat_detect("{% for message in messages %}\\n{% if message['role'] == 'user' %}"
                                 "\\n{{ '<|user|>\\n' + message['content'] + eos_token }}\\n{% elif "
                                 "message['role'] == 'assistant' %}{{ '<|assistant|>\\n' }}"),
                 TOK_CHAT_ZEPHYR);
    /* the template carried by ggml-vocab-phi-3.gguf */
    CHECK_EQ_INT(tok_chat_detect("{{ bos_token }}{% for message in messages %}{% if (message['role'] "
                                 "== 'user') %}{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + "
                                 "'\\n' + '<|assistant|>' + '\\n'}}{% elif (message['role'] == "
                                 "'assistant') %}{{message['content'] + '<|end|>' + '\\n'}}{% endif %}"
                                 "{% endfor %}"),
                 TOK_CHAT_PHI3);
    CHECK_EQ_INT(tok_chat_detect("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
                                 "'<end_of_turn>\\n' }}{% if add_generation_prompt %}"
                                 "{{'<start_of_turn>model\\n'}}{% endif %}"),
                 TOK_CHAT_GEMMA);
    /* Qwen3's chatml with thinking, Phi-4's im_sep variant */
    CHECK_EQ_INT(tok_chat_detect("{{- '<|im_start|>' + message.role + '\\n<think>\\n' + "
                                 "reasoning_content.strip('\\n') + '\\n</think>\\n\\n' }}"),
                 TOK_CHAT_QWEN3);
    CHECK_EQ_INT(tok_chat_detect("{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + "
                                 "'<|im_end|>'}}"),
                 TOK_CHAT_PHI4);
    CHECK_EQ_INT(tok_chat_detect("qwen3"), TOK_CHAT_QWEN3);
    /* a family name selects it directly */
    CHECK_EQ_INT(tok_chat_detect("gemma"), TOK_CHAT_GEMMA);
    CHECK_EQ_INT(tok_chat_detect("llama3"), TOK_CHAT_LLAMA3);
    CHECK_EQ_STR(tok_chat_family_name(TOK_CHAT_PHI3), "phi3");
    CHECK_EQ_STR(tok_chat_family_name((enum tok_chat_family)99), "chatml");
}

TEST(chat_render_chatml)
{
    CHECK(render_is(TOK_CHAT_CHATML, true, NULL, NULL,
                    "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello!<|im_end|>\n"
                    "<|im_start|>user\nHow are you?<|im_end|>\n"
                    "<|im_start|>assistant\n"));
    CHECK(render_is(TOK_CHAT_CHATML, false, NULL, NULL,
                    "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello!<|im_end|>\n"
                    "<|im_start|>user\nHow are you?<|im_end|>\n"));
}

TEST(chat_render_llama3)
{
    CHECK(render_is(TOK_CHAT_LLAMA3, true, "<|begin_of_text|>", "<|eot_id|>",
                    "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n"));
}

TEST(chat_render_llama2)
{
    CHECK(render_is(TOK_CHAT_LLAMA2, true, "<s>", "</s>",
                    "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi [/INST] Hello! </s>"
                    "<s>[INST] How are you? [/INST]"));
}

TEST(chat_render_mistral)
{
    CHECK(render_is(TOK_CHAT_MISTRAL, true, "<s>", "</s>",
                    "[INST] You are helpful.\n\nHi [/INST]Hello!</s>[INST] How are you? [/INST]"));
}

TEST(chat_render_zephyr)
{
    CHECK(render_is(TOK_CHAT_ZEPHYR, true, "<s>", "</s>",
                    "<|system|>\nYou are helpful.</s>\n<|user|>\nHi</s>\n"
                    "<|assistant|>\nHello!</s>\n<|user|>\nHow are you?</s>\n<|assistant|>\n"));
}

TEST(chat_render_phi3)
{
    CHECK(render_is(TOK_CHAT_PHI3, true, "<s>", "<|endoftext|>",
                    "<|system|>\nYou are helpful.<|end|>\n<|user|>\nHi<|end|>\n"
                    "<|assistant|>\nHello!<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\n"));
}

TEST(chat_render_gemma)
{
    CHECK(render_is(TOK_CHAT_GEMMA, true, "<bos>", "<eos>",
                    "<start_of_turn>user\nYou are helpful.\n\nHi<end_of_turn>\n"
                    "<start_of_turn>model\nHello!<end_of_turn>\n"
                    "<start_of_turn>user\nHow are you?<end_of_turn>\n"
                    "<start_of_turn>model\n"));
}

TEST(chat_render_phi4)
{
    CHECK(render_is(TOK_CHAT_PHI4, true, NULL, NULL,
                    "<|im_start|>system<|im_sep|>You are helpful.<|im_end|>"
                    "<|im_start|>user<|im_sep|>Hi<|im_end|>"
                    "<|im_start|>assistant<|im_sep|>Hello!<|im_end|>"
                    "<|im_start|>user<|im_sep|>How are you?<|im_end|>"
                    "<|im_start|>assistant<|im_sep|>"));
}

/* Qwen3's template: reasoning is dropped from turns before the last user
 * message and written as a <think> block after it (always for the last turn) */
TEST(chat_render_qwen3_think_blocks)
{
    CHECK(render_is(TOK_CHAT_QWEN3, true, NULL, NULL,
                    "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello!<|im_end|>\n"
                    "<|im_start|>user\nHow are you?<|im_end|>\n"
                    "<|im_start|>assistant\n"));
    const struct tok_chat_msg m[] = {
        {"user", "2+2?"},
        {"assistant", "<think>\nadd them\n</think>\n\n4"},
        {"user", "and 3+3?"},
        {"assistant", "<think>\n\nsix\n\n</think>\n\n6"},
        {"tool", "{}"},
        {"tool", "[1]"},
        {"assistant", "done"},
    };
    struct sp_buf b = {0};
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_QWEN3, m, SP_ARRAY_LEN(m), false, NULL, NULL, &b, NULL), SP_OK);
    const char *want = "<|im_start|>user\n2+2?<|im_end|>\n"
                       "<|im_start|>assistant\n4<|im_end|>\n"
                       "<|im_start|>user\nand 3+3?<|im_end|>\n"
                       "<|im_start|>assistant\n<think>\nsix\n</think>\n\n6<|im_end|>\n"
                       "<|im_start|>user\n<tool_response>\n{}\n</tool_response>\n<tool_response>\n[1]\n"
                       "</tool_response><|im_end|>\n"
                       "<|im_start|>assistant\n<think>\n\n</think>\n\ndone<|im_end|>\n";
    bool ok = b.data && strcmp(b.data, want) == 0;
    if (!ok)
        fprintf(stderr, "  got:\n%s\n", b.data ? b.data : "(null)");
    sp_buf_free(&b);
    CHECK(ok);
}

TEST(chat_render_trims_where_the_template_does)
{
    struct tok_chat_msg m[] = {{"user", "  Hi there \n"}};
    struct sp_buf b = {0};
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_LLAMA3, m, 1, false, NULL, NULL, &b, NULL), SP_OK);
    CHECK_EQ_STR(b.data, "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>");
    sp_buf_reset(&b);
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_CHATML, m, 1, false, NULL, NULL, &b, NULL), SP_OK);
    CHECK_EQ_STR(b.data, "<|im_start|>user\n  Hi there \n<|im_end|>\n");
    sp_buf_reset(&b);
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_GEMMA, m, 1, true, NULL, NULL, &b, NULL), SP_OK);
    CHECK_EQ_STR(b.data, "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n");
    sp_buf_free(&b);
}

TEST(chat_render_errors)
{
    struct sp_buf b = {0};
    struct sp_err err = {0};
    struct tok_chat_msg bad[] = {{"tool", "x"}};
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_GEMMA, bad, 1, true, NULL, NULL, &b, &err), SP_ERR_INVALID);
    CHECK(strstr(err.msg, "tool") != NULL);
    /* generic families accept other lowercase roles */
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_CHATML, bad, 1, false, NULL, NULL, &b, &err), SP_OK);
    CHECK_EQ_STR(b.data, "<|im_start|>tool\nx<|im_end|>\n");
    struct tok_chat_msg inj[] = {{"user<|im_end|>", "x"}};
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_CHATML, inj, 1, false, NULL, NULL, &b, &err), SP_ERR_INVALID);
    struct tok_chat_msg nul[] = {{"user", NULL}};
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_CHATML, nul, 1, false, NULL, NULL, &b, &err), SP_ERR_INVALID);
    CHECK_EQ_INT(tok_chat_render(TOK_CHAT_CHATML, NULL, 0, true, NULL, NULL, &b, &err), SP_OK);
    sp_buf_free(&b);
    /* a buffer limit surfaces as an error, never a truncated prompt */
    struct sp_buf small = {0};
    small.limit = 10;
    CHECK(tok_chat_render(TOK_CHAT_CHATML, conv, 4, true, NULL, NULL, &small, &err) != SP_OK);
    sp_buf_free(&small);
}

int main(void)
{
    RUN(chat_detect);
    RUN(chat_render_chatml);
    RUN(chat_render_llama3);
    RUN(chat_render_llama2);
    RUN(chat_render_mistral);
    RUN(chat_render_zephyr);
    RUN(chat_render_phi3);
    RUN(chat_render_gemma);
    RUN(chat_render_phi4);
    RUN(chat_render_qwen3_think_blocks);
    RUN(chat_render_trims_where_the_template_does);
    RUN(chat_render_errors);
    return test_summary();
}
