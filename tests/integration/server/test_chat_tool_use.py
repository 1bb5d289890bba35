#!/usr/bin/env python3
"""test_chat_tool_use.py - a model's named template variant
tokenizer.chat_template.tool_use renders the requests that carry tools; the
default tokenizer.chat_template renders the others, and a model without the
variant renders both with its default one. Synthetic llama files written by
embd_models.make_llama (numpy); which template rendered is seen in
usage.prompt_tokens: the tool-use template also lists the tools' names. A
tool-use template that does not parse is dropped with a warning, and then the
default one renders requests with tools."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server"))
from spoke_server import numpy_or_system_python  # noqa: E402

if not numpy_or_system_python():
    print("SKIP: python3-numpy is not installed (tools/test-deps.sh installs it)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "embd"))
import embd_models as em  # noqa: E402
from spoke_server import Server, check, summary  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

DEFAULT = "{% for m in messages %}{{ m.content }} {% endfor %}"
TOOL_USE = ("<tool_call> {% for t in tools %}{{ t.function.name }} {{ t.function.description }} {% endfor %}"
            "{% for m in messages %}{{ m.content }} {% endfor %}")
TOOLS = [{"type": "function", "function": {"name": "the", "description": "a little cat and a dog",
                                           "parameters": {"type": "object", "properties": {}}}}]

tmp = tempfile.mkdtemp(prefix="spoke-tooluse-")
srv = None
try:
    files = {
        "both": {"tokenizer.chat_template": DEFAULT, "tokenizer.chat_template.tool_use": TOOL_USE},
        "plain": {"tokenizer.chat_template": DEFAULT},
        "badvariant": {"tokenizer.chat_template": DEFAULT, "tokenizer.chat_template.tool_use": "{% if %}"},
    }
    lines = ["models:"]
    for name, meta in files.items():
        path = os.path.join(tmp, name + ".gguf")
        em.make_llama(path, None, seed=7, meta_extra=meta)
        lines += ["  - from: file:%s" % path, "    name: %s" % name]
    srv = Server("\n".join(lines) + "\n", tmp=tmp)
    srv.wait_ready()

    def prompt_tokens(model, tools):
        body = {"model": model, "max_tokens": 1, "temperature": 0,
                "messages": [{"role": "user", "content": "once upon a time"}]}
        if tools:
            body["tools"] = TOOLS
        st, _, j, _ = srv.post("/v1/chat/completions", body)
        if not check(st == 200, "%s tools=%s: 200 (%s %s)" % (model, tools, st, j)):
            return -1
        return j["usage"]["prompt_tokens"]

    b0, b1 = prompt_tokens("both", False), prompt_tokens("both", True)
    p0, p1 = prompt_tokens("plain", False), prompt_tokens("plain", True)
    x0, x1 = prompt_tokens("badvariant", False), prompt_tokens("badvariant", True)
    check(b0 == p0, "without tools the default template renders (%d == %d)" % (b0, p0))
    check(b1 > b0 + 5, "with tools the tool_use variant renders, listing the tools (%d > %d + 5)" % (b1, b0))
    check(p1 == p0, "a model without the variant renders tools requests with its default template (%d == %d)" %
          (p1, p0))
    check(x1 == x0 == p0, "a variant that does not parse is dropped (%d %d %d)" % (x0, x1, p0))
    check("tool-use chat template cannot be used" in srv.logtext(), "the dropped variant is named in a warning")
finally:
    if srv:
        srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(summary("test_chat_tool_use"))
