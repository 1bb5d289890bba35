#!/usr/bin/env python3
"""test_server_n.py - n > 1 choices (issue 11 s5) on chat and completions:
one prompt, n choices sampled from its shared KV (engine_generate_n; the
engine test test_engine_n checks the prompt is evaluated once). Greedy n = 2
gives two equal choices equal to n = 1; choice i with seed s is the n = 1
answer with seed s + i, and the same seed reproduces every choice; streamed
chunks carry their choice's index and each choice ends with its own
finish_reason; usage counts the prompt once and every choice's tokens;
logprobs per choice; n above max_concurrency, above 8, below 1, with tools
or past the KV budget -> 400 naming n."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import MODEL, Server, check, model_config, summary  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(77)

srv = Server(model_config(params={"max_concurrency": 4, "n_ctx": 512, "kv_tokens": 512}))
MSGS = [{"role": "user", "content": "Tell me about a cat"}]


def chat(**extra):
    b = {"model": "stories260K", "max_tokens": 24, "temperature": 0, "messages": MSGS}
    b.update(extra)
    return srv.post("/v1/chat/completions", b)


def comp(**extra):
    b = {"model": "stories260K", "max_tokens": 24, "temperature": 0, "prompt": "Once upon a time"}
    b.update(extra)
    return srv.post("/v1/completions", b)


def texts(j, chat_route=True):
    return [c["message"]["content"] if chat_route else c["text"] for c in j["choices"]]


def streamed(path, body):
    st, _, events, raw = srv.stream(path, body)
    out, finish, usage = {}, {}, None
    for e in events:
        if e == "[DONE]":
            continue
        for ch in e["choices"]:
            piece = ch["delta"].get("content") if "delta" in ch else ch.get("text")
            out[ch["index"]] = out.get(ch["index"], "") + (piece or "")
            if ch.get("finish_reason"):
                check(ch["index"] not in finish, "one finish_reason per choice (index %d)" % ch["index"])
                finish[ch["index"]] = ch["finish_reason"]
        usage = e.get("usage") or usage
    return st, out, finish, usage, events


try:
    srv.wait_ready()
    for name, call, is_chat in (("chat", chat, True), ("completions", comp, False)):
        st, _, one, _ = call()
        check(st == 200, "%s n=1 -> 200" % name)
        st, _, two, _ = call(n=2)
        check(st == 200 and len(two["choices"]) == 2 and [c["index"] for c in two["choices"]] == [0, 1],
              "%s greedy n=2: two choices indexed 0, 1 (%s)" % (name, two))
        check(texts(two, is_chat) == texts(one, is_chat) * 2,
              "%s greedy n=2: both choices equal the n=1 answer (%r vs %r)" % (name, texts(two, is_chat),
                                                                             texts(one, is_chat)))
        u1, u2 = one["usage"], two["usage"]
        check(u2["prompt_tokens"] == u1["prompt_tokens"] and u2["completion_tokens"] == 2 * u1["completion_tokens"] and
              u2["total_tokens"] == u2["prompt_tokens"] + u2["completion_tokens"],
              "%s usage: the prompt once, the choices' tokens summed (%s vs %s)" % (name, u2, u1))
        # seeded sampling: reproducible, choice i = n=1 with seed + i
        st, _, a, _ = call(n=3, temperature=1.0, seed=41)
        st2, _, b, _ = call(n=3, temperature=1.0, seed=41)
        check(st == 200 and st2 == 200 and texts(a, is_chat) == texts(b, is_chat),
              "%s n=3 with a seed is reproducible" % name)
        singles = [texts(call(temperature=1.0, seed=41 + i)[2], is_chat)[0] for i in range(3)]
        check(texts(a, is_chat) == singles, "%s choice i with seed s == n=1 with seed s+i (%r vs %r)" %
              (name, texts(a, is_chat), singles))
        check(len(set(texts(a, is_chat))) > 1, "%s sampled choices differ (%r)" % (name, texts(a, is_chat)))
        # streaming: per-index deltas reassemble to the non-streamed choices
        path = "/v1/chat/completions" if is_chat else "/v1/completions"
        body = {"model": "stories260K", "max_tokens": 24, "temperature": 1.0, "seed": 41, "n": 3, "stream": True,
                "stream_options": {"include_usage": True}}
        body.update({"messages": MSGS} if is_chat else {"prompt": "Once upon a time"})
        st, out, finish, usage, events = streamed(path, body)
        check(st == 200 and events[-1] == "[DONE]", "%s n=3 stream ends with [DONE]" % name)
        check([out.get(i) for i in range(3)] == texts(a, is_chat),
              "%s streamed choices (by index) == non-streamed (%r)" % (name, out))
        check(sorted(finish) == [0, 1, 2] and all(f in ("stop", "length") for f in finish.values()),
              "%s every streamed choice has its finish_reason (%s)" % (name, finish))
        check(usage == a["usage"], "%s streamed usage == non-streamed (%s vs %s)" % (name, usage, a["usage"]))
        if is_chat:
            roles = [e["choices"][0]["delta"].get("role") for e in events[:-1] if e["choices"]]
            check(roles.count("assistant") == 3, "chat stream: each choice's first delta has the role (%s)" % roles)

    # logprobs per choice
    st, _, j, _ = chat(n=2, temperature=1.0, seed=3, logprobs=True, top_logprobs=2)
    check(st == 200 and all(len(c["logprobs"]["content"]) >= 1 for c in j["choices"]),
          "chat n=2 logprobs per choice")
    st, _, j, _ = comp(n=2, temperature=1.0, seed=3, logprobs=1)
    check(st == 200 and all(len(c["logprobs"]["tokens"]) >= 1 for c in j["choices"]),
          "completions n=2 logprobs per choice")

    # limits
    for n, why in ((5, "max_concurrency"), (9, "between"), (0, "between")):
        st, _, j, _ = chat(n=n)
        check(st == 400 and j["error"]["param"] == "n" and why in j["error"]["message"],
              "n=%d -> 400 naming n (%s %s)" % (n, st, j))
    tools = [{"type": "function", "function": {"name": "f"}}]
    st, _, j, _ = chat(n=2, tools=tools)
    check(st == 400 and j["error"]["param"] == "n", "n > 1 with tools -> 400 (%s)" % (j,))
    st, _, j, _ = chat(n=2, max_tokens=300)  # 2 x 352 cells > the 512-token KV budget
    check(st == 400 and j["error"]["param"] == "n" and "KV budget" in j["error"]["message"],
          "n past the KV budget -> 400 (%s %s)" % (st, j))
    st, _, j, _ = chat(n=2, max_tokens=150)  # 2 x 224 fit
    check(st == 200 and len(j["choices"]) == 2, "n within the KV budget -> 200")
finally:
    srv.stop()
sys.exit(summary("test_server_n"))
