/* tok_jinja_builtin.c - the Jinja text of the fixed chat families, used
 * when a model has no tokenizer.chat_template (chatml) or when
 * params.chat_template names a family: each is the template a well-known
 * model of that family ships (tests/data/chat_templates/SOURCES.md), so they
 * render through the same interpreter (and the same request-data tracking)
 * as a model's own template. */
#include <string.h>

#include "tok/tok.h"

static const struct {
    const char *name;
    const char *text;
} builtin[] = {
    /* teknium/OpenHermes-2.5-Mistral-7B */
    {"chatml",
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'"
    "] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assista"
    "nt\\n' }}{% endif %}"},
    /* meta-llama/Llama-2-13b-chat-hf */
    {"llama2",
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system"
    "_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set syst"
    "em_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] =="
    " 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message "
    "!= false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['"
    "content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'"
    "] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['ro"
    "le'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"},
    /* meta-llama/Meta-Llama-3-8B-Instruct */
    {"llama3",
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|sta"
    "rt_header_id|>' + message['role'] + '<|end_header_id|>\n"
    "\n"
    "'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos"
    "_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|"
    "start_header_id|>assistant<|end_header_id|>\n"
    "\n"
    "' }}{% endif %}"},
    /* mistralai/Mixtral-8x7B-Instruct-v0.1 */
    {"mistral",
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.inde"
    "x0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/as"
    "sistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['conten"
    "t'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_tok"
    "en}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif"
    " %}{% endfor %}"},
    /* HuggingFaceH4/zephyr-7b-beta */
    {"zephyr",
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n"
    "' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n"
    "' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n"
    "'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"},
    /* microsoft/Phi-3-mini-4k-instruct */
    {"phi3",
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n"
    "' + message['content'] + '<|end|>\n"
    "'}}{% elif message['role'] == 'user' %}{{'<|user|>\n"
    "' + message['content'] + '<|end|>\n"
    "'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n"
    "' + message['content'] + '<|end|>\n"
    "'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n"
    "' }}{% else %}{{ eos_token }}{% endif %}"},
    /* google/gemma-7b-it */
    {"gemma",
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assista"
    "nt/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role ="
    " 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role"
    " + '\n"
    "' + message['content'] | trim + '<end_of_turn>\n"
    "' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n"
    "'}}{% endif %}"},
};

const char *tok_tmpl_builtin(const char *name)
{
    for (size_t i = 0; name && i < SP_ARRAY_LEN(builtin); i++)
        if (!strcmp(name, builtin[i].name))
            return builtin[i].text;
    return NULL;
}
