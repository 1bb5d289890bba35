#!/usr/bin/env python3
"""test_server_tools.py - constrained tool calls (issue 11 s2): tool_choice
"required" and a named function force one call whose arguments are valid for
the function's parameter schema, in the tool-call syntax of the model's chat
template. The bundled demo model never learned tools, so the grammar does
all the work. One server serves it four times: with the built-in chatml
template (generic JSON), and with the Qwen2.5 (Hermes <tool_call>), Mistral
Nemo ([TOOL_CALLS] array) and Llama 3.3 ({"name", "parameters"}) templates of
tests/data/chat_templates. Every answer, streamed and not, greedy and
sampled, must parse into tool_calls whose arguments validate (schema_check);
the raw text (read back from the task history) must be in the family's
syntax; unsupported schema keywords give a 400 naming them."""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import ASAN, MODEL, SRC, Server, check, summary  # noqa: E402
from schema_check import validate  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(77)

TPL = os.path.join(SRC, "tests", "data", "chat_templates")
MODELS = {  # name -> chat_template (None: the model's own; stories260K has none -> built-in chatml)
    "generic": None,
    "hermes": os.path.join(TPL, "Qwen-Qwen2.5-7B-Instruct.jinja"),
    "mistral": os.path.join(TPL, "mistralai-Mistral-Nemo-Instruct-2407.jinja"),
    "llama3": None,  # set below
}
# Llama 3.3's own template lists the tools as indented JSON: ~3000 tokens of
# the demo model's tiny vocabulary, over its 2048 context. A compact template
# in its format (with its ipython role) stands in.
LLAMA3 = ("{{- bos_token }}{%- if tools %}<|start_header_id|>system<|end_header_id|>\n\nRespond with a JSON "
          "{\"name\": function name, \"parameters\": arguments}. Functions:{% for t in tools %} "
          "{{ t.function.name }}{% endfor %}<|eot_id|>{%- endif %}{%- for m in messages %}"
          "<|start_header_id|>{{ 'ipython' if m.role == 'tool' else m.role }}<|end_header_id|>\n\n"
          "{{ m.content }}<|eot_id|>{%- endfor %}<|start_header_id|>assistant<|end_header_id|>\n\n")

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 24, "description": "the city"},
            "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "pick_numbers",
        "parameters": {"type": "object", "properties": {
            "numbers": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99},
                        "minItems": 1, "maxItems": 4},
            "options": {"type": "object", "properties": {"fast": {"type": "boolean"},
                                                         "label": {"type": ["string", "null"], "maxLength": 12}},
                        "required": ["fast"]}},
            "required": ["numbers", "options"]}}},
    {"type": "function", "function": {"name": "no_params", "description": "no parameters: arguments {}"}},
    {"type": "function", "function": {
        "name": "schedule.v2",
        "parameters": {"type": "object", "properties": {
            "when": {"type": "string", "format": "date"},
            "count": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
            "note": {"type": "string", "maxLength": 16}},
            "required": ["when", "count"]}}},
]
SCHEMA = {t["function"]["name"]: t["function"].get("parameters", {"type": "object"}) for t in TOOLS}

tmp = tempfile.mkdtemp(prefix="spoke-tools-")
with open(os.path.join(tmp, "llama3.jinja"), "w") as f:
    f.write(LLAMA3)
MODELS["llama3"] = os.path.join(tmp, "llama3.jinja")
# timeout_s 1: a streamed call is held back until whole, a gap microhttpd's idle
# timeout must not cut (it did under ASan: IncompleteRead)
lines = ["server:", "  limits:", "    timeout_s: 1", "  task_history:", "    sql_endpoint: true", "models:"]
for name, tpl in MODELS.items():
    lines += ["  - from: file:%s" % MODEL, "    name: %s" % name, "    params:", "      max_concurrency: 1"]
    if tpl:
        lines.append("      chat_template: %s" % tpl)
srv = Server("\n".join(lines) + "\n", tmp=tmp)


def body(model, tool_choice, **extra):
    b = {"model": model, "max_tokens": 300, "temperature": 0, "tools": TOOLS, "tool_choice": tool_choice,
         "messages": [{"role": "user", "content": "Once upon a time there was a"}]}
    b.update(extra)
    return b


def check_call(what, calls, allowed):
    """calls: [(name, arguments string)]; exactly one, of an allowed tool, valid arguments."""
    if not check(len(calls) == 1, "%s: one tool call (%r)" % (what, calls)):
        return None
    name, args = calls[0]
    check(name in allowed, "%s: the call names an allowed tool (%s)" % (what, name))
    try:
        a = json.loads(args)
    except ValueError:
        check(False, "%s: arguments parse as JSON (%r)" % (what, args))
        return None
    errs = validate(a, SCHEMA.get(name, {}))
    check(isinstance(a, dict) and not errs, "%s: arguments validate against %s's schema (%r %s)" %
          (what, name, a, errs))
    return name, a


def id_ok(model, i):
    return re.fullmatch("[0-9a-f]{9}" if model == "mistral" else "call_[0-9a-f]{24}", i or "") is not None


def full(model, tool_choice, allowed, **extra):
    what = "%s %s %s" % (model, json.dumps(tool_choice), json.dumps(extra))
    st, _, j, _ = srv.post("/v1/chat/completions", body(model, tool_choice, **extra))
    if not check(st == 200, "%s: 200 (%s %s)" % (what, st, j)):
        return None
    ch = j["choices"][0]
    check(ch["finish_reason"] == "tool_calls", "%s: finish_reason tool_calls (%s)" % (what, ch["finish_reason"]))
    check(ch["message"]["content"] is None, "%s: no content besides the call (%r)" % (what, ch["message"]))
    tcs = ch["message"].get("tool_calls") or []
    for tc in tcs:
        check(tc["type"] == "function" and id_ok(model, tc["id"]), "%s: OpenAI tool_call shape, id %s" % (what, tc["id"]))
    return check_call(what, [(tc["function"]["name"], tc["function"]["arguments"]) for tc in tcs], allowed)


def streamed(model, tool_choice, allowed, **extra):
    what = "%s stream %s %s" % (model, json.dumps(tool_choice), json.dumps(extra))
    st, _, events, raw = srv.stream("/v1/chat/completions", body(model, tool_choice, stream=True, **extra))
    if not check(st == 200 and events and events[-1] == "[DONE]", "%s: 200 ending with [DONE]" % what):
        return None
    calls, finish = {}, None
    for e in events[:-1]:
        for ch in e["choices"]:
            for d in ch["delta"].get("tool_calls") or []:
                c = calls.setdefault(d["index"], ["", ""])
                fn = d.get("function") or {}
                c[0] += fn.get("name") or ""
                c[1] += fn.get("arguments") or ""
            check(not ch["delta"].get("content"), "%s: no content deltas (%r)" % (what, ch["delta"]))
            finish = ch["finish_reason"] or finish
    check(finish == "tool_calls", "%s: finish_reason tool_calls (%s)" % (what, finish))
    return check_call(what, [tuple(calls[k]) for k in sorted(calls)], allowed)


# The ASan build (-O0, ~30x slower prefill) skips the two real templates: their
# prompts list the tools as JSON, ~1000 tokens of this vocabulary (135 s there)
RUN = ("generic", "llama3") if ASAN else tuple(MODELS)

try:
    srv.wait_ready()
    names = [t["function"]["name"] for t in TOOLS]
    n_calls = 0
    for model in RUN:
        # required: any of the tools; greedy and two seeds
        # (the ASan build, ~10x slower, runs a third of the cases)
        for extra in ({}, {"temperature": 1.0, "seed": 11}, {"temperature": 0.8, "seed": 5})[:1 if ASAN else 3]:
            a = full(model, "required", names, **extra)
            b = streamed(model, "required", names, **extra)
            n_calls += 2
            if extra == {} or "seed" in extra:  # greedy, or seeded: the same call either way
                check(a is not None and a == b, "%s required %s: streamed call == non-streamed (%r %r)" %
                      (model, extra, a, b))
        # named: that function, every one of them
        for n in (names[::2] if ASAN else names):
            choice = {"type": "function", "function": {"name": n}}
            a = full(model, choice, [n], temperature=0.9, seed=3)
            b = streamed(model, choice, [n], temperature=0.9, seed=3)
            n_calls += 2
            check(a is not None and a == b, "%s named %s: streamed call == non-streamed" % (model, n))

    # the raw text is in the family's syntax (the task history keeps it)
    call = r'\{\s*"name"\s*:\s*"[^"]+"\s*,\s*"%s"\s*:.*\}'
    syntax = {"generic": "^" + call % "arguments" + "$",
              "hermes": "^<tool_call>\n" + call % "arguments" + "\n</tool_call>$",
              "mistral": r"^\[" + call % "arguments" + r"\]$",
              "llama3": "^" + call % "parameters" + "$"}
    time.sleep(0.3)  # spans are written behind the requests
    for model, pat in syntax.items():
        if model not in RUN:
            continue
        st, rows = srv.sql("SELECT captured_output FROM task_history WHERE task = 'ai_completion' AND "
                           "json_extract(labels, '$.model') = '%s' AND json_extract(labels, '$.http_status') = 200"
                           % model)
        outs = [r["captured_output"] for r in rows["rows"]] if st == 200 else []
        good = [o for o in outs if o and re.match(pat, o, re.S)]
        check(len(outs) >= (6 if ASAN else 10) and len(good) == len(outs), "%s: every raw call is in its syntax %r "
              "(%d of %d; e.g. %r)" % (model, pat, len(good), len(outs), outs[:1]))
    st, _, j, _ = srv.post("/v1/chat/completions", body("generic", "auto", max_tokens=8))
    check(st == 200 and j["choices"][0]["finish_reason"] in ("stop", "length"),
          "tool_choice auto stays free text on a model that knows no tools (%s)" % (j,))

    # the call sent back (assistant content null + a tool message): the built-in chatml
    # template concatenates content, so spoke renders null as "" for it
    back = [{"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "a1b2c3d4e", "type": "function", "function": {"name": "no_params", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": "sunny"}]  # Mistral wants 9 alphanumerics
    for model in RUN:
        st, _, j, _ = srv.post("/v1/chat/completions", body(model, "auto", messages=back, max_tokens=4))
        check(st == 200, "%s: a tool call and its result sent back -> 200 (%s %s)" % (model, st, j))

    # a call cut short by max_tokens: 200 with finish_reason length, no crash
    st, _, j, _ = srv.post("/v1/chat/completions", body("llama3", "required", max_tokens=3))
    check(st == 200 and j["choices"][0]["finish_reason"] == "length", "a call cut by max_tokens -> length (%s)" % (j,))

    # unsupported parameter schemas -> 400 naming the keyword (only when constrained)
    bad_tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$"}}}}}]
    for choice in ("required", {"type": "function", "function": {"name": "f"}}):
        st, _, j, _ = srv.post("/v1/chat/completions", body("llama3", choice, tools=bad_tools))
        check(st == 400 and "pattern" in j["error"]["message"] and j["error"]["param"] == "tools",
              "unsupported keyword with tool_choice %s -> 400 naming it (%s %s)" % (json.dumps(choice), st, j))
    st, _, j, _ = srv.post("/v1/chat/completions", body("llama3", "auto", tools=bad_tools, max_tokens=4))
    check(st == 200, "the same schema with tool_choice auto is not compiled -> 200 (%s)" % st)
    st, _, j, _ = srv.post("/v1/chat/completions", body("generic", "required", response_format={"type": "json_object"}))
    check(st == 400 and j["error"]["param"] == "tool_choice", "required + response_format -> 400 (%s)" % (j,))
    st, _, j, _ = srv.post("/v1/chat/completions", body("generic", "required", grammar='root ::= "x"'))
    check(st == 400 and j["error"]["param"] == "tool_choice", "required + grammar -> 400 (%s)" % (j,))
    print("  %d forced tool calls checked (%d syntaxes, required and named, streamed and not)" % (n_calls, len(RUN)))
finally:
    srv.stop()
sys.exit(summary("test_server_tools"))
