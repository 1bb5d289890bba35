#!/usr/bin/env python3
"""test_server_batch.py - continuous batching through `spoke serve`: with
max_concurrency 4 (one step loop, one thread pool, one KV cache of 4
contexts), 4 and then 8 simultaneous streaming and non-streaming greedy
completions with different prompts and lengths return exactly the text each
returns alone; a repeated prompt reuses its cached prefix (usage
prompt_tokens_details.cached_tokens, llm_prompt_cached_tokens_total, and the
ai_completion span's cached_tokens label)."""
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import MODEL, Server, check, model_config, summary  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(0)

PROMPTS = ["Once upon a time", "The little dog ran to the park and", "Tom and Sue went to the beach. They saw a big",
           "One day, a girl named Lily found a shiny", "The sun was hot. The cat", "A bird",
           "Mom said, \"Let's bake a cake!\" The kids were so happy that they",
           "There was a big tree in the garden. Every day, the boy would climb it and"]
LENS = [40, 25, 50, 12, 33, 45, 20, 30]


def body(i, stream):
    return {"model": "stories260K", "prompt": PROMPTS[i], "max_tokens": LENS[i], "temperature": 0,
            "stream": stream}


def run_one(srv, i, stream):
    if stream:
        st, _, events, _ = srv.stream("/v1/completions", body(i, True))
        text = "".join(e["choices"][0].get("text", "") for e in events
                       if isinstance(e, dict) and e.get("choices"))
        return st, text, None
    st, _, j, _ = srv.post("/v1/completions", body(i, False))
    return st, (j["choices"][0]["text"] if j else None), (j or {}).get("usage")


srv = Server(model_config(params={"max_concurrency": 4, "queue_size": 16}))
try:
    srv.wait_ready()
    alone = [run_one(srv, i, False) for i in range(8)]
    check(all(a[0] == 200 for a in alone), "alone runs answer 200")
    for n in (4, 8):
        out = [None] * n
        barrier = threading.Barrier(n)

        def worker(i):
            barrier.wait()
            out[i] = run_one(srv, i, i % 2 == 0)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        same = sum(1 for i in range(n) if out[i] and out[i][0] == 200 and out[i][1] == alone[i][1])
        print("  %d concurrent: %d/%d texts equal to the alone run" % (n, same, n))
        for i in range(n):
            check(out[i] is not None and out[i][0] == 200, "request %d of %d answered 200" % (i, n))
            check(out[i] is not None and out[i][1] == alone[i][1],
                  "request %d of %d: %r != alone %r" % (i, n, out[i] and out[i][1], alone[i][1]))
    # prefix reuse: the same prompt twice in a row
    before = srv.metric("llm_prompt_cached_tokens_total", "stories260K") or 0
    st, text, usage = run_one(srv, 7, False)
    st, text, usage = run_one(srv, 7, False)
    cached = (usage or {}).get("prompt_tokens_details", {}).get("cached_tokens", 0)
    print("  repeated prompt: %s of %s prompt tokens reused" % (cached, (usage or {}).get("prompt_tokens")))
    check(st == 200 and text == alone[7][1], "repeated prompt gives the same text")
    check(cached >= usage["prompt_tokens"] - 2 and cached > 5, "repeated prompt reuses its cached prefix")
    after = srv.metric("llm_prompt_cached_tokens_total", "stories260K") or 0
    check(after - before >= cached, "llm_prompt_cached_tokens_total counts reused tokens (%s -> %s)" % (before, after))
    st, res = srv.sql("SELECT labels FROM task_history WHERE task = 'ai_completion' ORDER BY start_time DESC LIMIT 1")
    rows = res.get("rows") or res.get("data") or []
    labels_text = json.dumps(rows)
    check(st == 200 and "cached_tokens" in labels_text, "span labels carry cached_tokens: %s" % labels_text[:300])
finally:
    srv.stop()
summary("test_server_batch")
