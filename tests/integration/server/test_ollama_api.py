#!/usr/bin/env python3
"""test_ollama_api.py - the Ollama-compatible API of `spoke serve` on the
bundled demo model, spoken in Ollama's wire format (python stdlib only):
/api/version, /api/tags, /api/ps, /api/show (also with ":latest"),
/api/generate and /api/chat streamed (NDJSON lines, done: true with
done_reason and timing fields) and not streamed, options mapped onto
sampling (greedy output equal to the OpenAI route's, num_predict, stop,
seed), Ollama-shaped errors ({"error": "..."}) for at least a dozen bad
requests (format "xml" / unsupported schema keywords refused by name, images, wrong option types, an
unknown model), 405/501 routes, and /api/pull from a fake Hub: progress
lines (pulling manifest, pulling <file> with total/completed, success),
then the pulled model answering /api/chat and listed by /api/tags."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hub"))
from spoke_server import MODEL, Server, check, model_config, summary  # noqa: E402
from fakehub import FakeHub  # noqa: E402

SKIP = 77
if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(SKIP)

hub = FakeHub()
hub.add_repo("org/tiny", {"stories260K-F32.gguf": ("file", MODEL)})
hub.add_repo("org/multi", {"multi-F32.gguf": ("file", MODEL), "multi-Q8_0.gguf": ("file", MODEL)})
hub.start()
srv = Server(model_config(params={"max_concurrency": 2}, server={"max_tokens": 512}),
             env={"HF_ENDPOINT": hub.hub_url, "HF_HUB_OFFLINE": "0", "HF_TOKEN_PATH": "/nonexistent",
                  "SPOKE_HUB_BACKOFF_MS": "10"})


def ndjson(path, obj, timeout=60):
    st, h, data = srv.request("POST", path, obj, timeout=timeout)
    lines = [json.loads(x) for x in data.decode().split("\n") if x.strip()] if st == 200 else []
    return st, h, lines, data


def bad(path, obj, want, what, contains=None):
    st, h, data = srv.request("POST", path, obj)
    try:
        j = json.loads(data)
    except ValueError:
        j = None
    ok = st == want and isinstance(j, dict) and isinstance(j.get("error"), str)
    if ok and contains:
        ok = contains in j["error"]
    check(ok, "%s -> %d {error: string}%s (got %d %s)" % (what, want, " naming " + contains if contains else "", st,
                                                         data[:200]))


try:
    srv.wait_ready()
    st, _, body = srv.request("GET", "/api/version")
    check(st == 200 and isinstance(json.loads(body).get("version"), str), "/api/version")

    st, _, body = srv.request("GET", "/api/tags")
    tags = json.loads(body)["models"] if st == 200 else []
    check(len(tags) == 1 and tags[0]["name"] == "stories260K" and tags[0]["model"] == "stories260K", "/api/tags lists")
    if tags:
        t = tags[0]
        check(t["size"] == os.path.getsize(MODEL), "tags size = file size")
        check(len(t["digest"]) == 64 and t["modified_at"].endswith("Z"), "tags digest / modified_at")
        d = t["details"]
        check(d["format"] == "gguf" and d["family"] == "llama" and d["quantization_level"] == "F32" and
              d["parameter_size"].endswith("K"), "tags details %s" % d)

    st, _, body = srv.request("GET", "/api/ps")
    ps = json.loads(body)["models"] if st == 200 else []
    check(len(ps) == 1 and ps[0]["context_length"] > 0 and ps[0]["size"] > 0 and "expires_at" in ps[0],
          "/api/ps shows the loaded model")

    for name in ("stories260K", "stories260K:latest"):
        st, _, body = srv.request("POST", "/api/show", {"model": name})
        j = json.loads(body) if st == 200 else {}
        check(st == 200 and j.get("model_info", {}).get("general.architecture") == "llama" and
              j["model_info"].get("llama.context_length", 0) > 0 and "completion" in j.get("capabilities", []),
              "/api/show %s" % name)
        check(os.path.dirname(MODEL) not in body.decode(), "/api/show does not reveal local paths")

    # ---- generate, streamed (Ollama's default) and not
    req = {"model": "stories260K", "prompt": "Once upon a time", "raw": True,
           "options": {"temperature": 0, "num_predict": 12}}
    st, h, lines, _ = ndjson("/api/generate", req)
    check(st == 200 and h.get("content-type") == "application/x-ndjson", "generate stream 200 ndjson")
    check(len(lines) >= 2 and all(not x["done"] for x in lines[:-1]) and lines[-1]["done"], "generate done last")
    if lines:
        last = lines[-1]
        for k in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                  "eval_duration"):
            check(isinstance(last.get(k), int), "final line has %s" % k)
        check(last["done_reason"] == "length" and last["eval_count"] == 12, "num_predict 12 -> length, 12 tokens")
        check(all(x["model"] == "stories260K" and x["created_at"].endswith("Z") for x in lines), "model/created_at")
    streamed = "".join(x.get("response", "") for x in lines)
    st, _, j, _ = srv.post("/api/generate", dict(req, stream=False))
    check(st == 200 and j["done"] and j["response"] == streamed, "generate non-stream = streamed text")
    # greedy = the OpenAI completions route's greedy output
    st, _, oj, _ = srv.post("/v1/completions", {"model": "stories260K", "prompt": "Once upon a time",
                                                "max_tokens": 12, "temperature": 0})
    check(st == 200 and oj["choices"][0]["text"] == streamed, "greedy /api/generate = /v1/completions (%r vs %r)" %
          (streamed, oj["choices"][0]["text"] if st == 200 else None))
    # stop
    if " " in streamed.strip():
        word = streamed.strip().split(" ")[1]
        st, _, j, _ = srv.post("/api/generate", dict(req, stream=False, options={"temperature": 0,
                                                                                 "num_predict": 12,
                                                                                 "stop": [word]}))
        check(st == 200 and word not in j["response"] and j["done_reason"] == "stop", "options.stop honoured")
    # seed: same seed, same text at temperature 1
    seeded = dict(req, stream=False, options={"temperature": 1.0, "seed": 42, "num_predict": 16})
    a = srv.post("/api/generate", seeded)[2]
    b = srv.post("/api/generate", seeded)[2]
    check(a and b and a["response"] == b["response"], "options.seed reproduces")

    # ---- chat
    creq = {"model": "stories260K:latest", "messages": [{"role": "system", "content": "Be brief."},
                                                         {"role": "user", "content": "Tell me a story"}],
            "options": {"temperature": 0, "num_predict": 10}}
    st, h, lines, _ = ndjson("/api/chat", creq)
    check(st == 200 and lines and lines[-1]["done"] and lines[-1]["message"]["role"] == "assistant",
          "chat stream final line")
    check(all(x["message"]["role"] == "assistant" for x in lines), "chat lines carry assistant messages")
    ctext = "".join(x["message"]["content"] for x in lines)
    st, _, j, _ = srv.post("/api/chat", dict(creq, stream=False))
    check(st == 200 and j["message"]["content"] == ctext and j["eval_count"] == lines[-1]["eval_count"],
          "chat non-stream = streamed")
    st, _, oj, _ = srv.post("/v1/chat/completions", {"model": "stories260K", "messages": creq["messages"],
                                                     "max_tokens": 10, "temperature": 0})
    check(st == 200 and oj["choices"][0]["message"]["content"] == ctext, "greedy /api/chat = /v1/chat/completions")

    # ---- errors in Ollama's shape
    msgs = [{"role": "user", "content": "hi"}]
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "format": "xml"}, 400, "format xml", "format")
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "format": {"type": "string", "pattern": "a"}}, 400,
        "format schema with an unsupported keyword",
        "format")
    bad("/api/chat", {"model": "nope", "messages": msgs}, 404, "unknown model")
    bad("/api/chat", {"messages": msgs}, 400, "no model", "model")
    bad("/api/chat", {"model": "stories260K"}, 400, "no messages", "messages")
    bad("/api/chat", {"model": "stories260K", "messages": [{"role": "wizard", "content": "x"}]}, 400, "bad role")
    bad("/api/chat", {"model": "stories260K", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]},
        400, "images", "images")
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "options": {"temperature": "hot"}}, 400,
        "temperature string", "temperature")
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "options": {"num_predict": 100000}}, 400,
        "num_predict over limit", "num_predict")
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "options": []}, 400, "options not object")
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "stream": "yes"}, 400, "stream string", "stream")
    bad("/api/chat", {"model": "stories260K", "messages": msgs, "tools": [{"type": "function"}]}, 400, "tools")
    bad("/api/generate", {"model": "stories260K", "prompt": 5}, 400, "prompt number", "prompt")
    bad("/api/generate", {"model": "stories260K", "prompt": "x", "context": [1, 2]}, 400, "context", "context")
    bad("/api/generate", "{not json", 400, "malformed JSON")
    bad("/api/chat", {"model": "nope:latest", "messages": msgs}, 404, "unknown model names /api/tags", "/api/tags")
    bad("/api/show", {"model": "nope"}, 404, "show unknown")
    bad("/api/show", {}, 400, "show without model")
    st, _, body = srv.request("GET", "/api/chat")
    check(st == 405 and "error" in json.loads(body), "GET /api/chat -> 405")
    st, _, body = srv.request("POST", "/api/tags", {})
    check(st == 405, "POST /api/tags -> 405")
    st, _, body = srv.request("POST", "/api/embed", {"model": "stories260K", "input": "x"})
    check(st == 400 and "pooling" in json.loads(body)["error"], "/api/embed on a generation-only model -> 400")
    st, _, body = srv.request("POST", "/api/create", {"model": "x"})
    check(st == 501 and "not supported" in json.loads(body)["error"], "/api/create -> 501")
    st, _, body = srv.request("GET", "/api/nope")
    check(st == 404, "unknown /api route -> 404")
    st, _, _ = srv.request("GET", "/health")
    check(st == 200, "healthy after bad requests")

    # ---- load-only requests (no prompt / empty messages): Ollama clients preload this way
    st, _, j, _ = srv.post("/api/generate", {"model": "stories260K"})
    check(st == 200 and j.get("done") and j.get("done_reason") == "load" and j.get("response") == "",
          "generate without a prompt loads (%s %s)" % (st, j))
    st, _, j, _ = srv.post("/api/chat", {"model": "stories260K:latest", "messages": []})
    check(st == 200 and j.get("done_reason") == "load" and j["message"]["content"] == "", "chat with [] loads")
    bad("/api/generate", {"model": "nope"}, 404, "load of an unknown model")

    # ---- pull from the (fake) Hub, then use the model
    hub.faults.append({"kind": "drip", "rate": 3000000, "count": 1})
    st, h, lines, raw = ndjson("/api/pull", {"model": "org/tiny"}, timeout=120)
    statuses = [x.get("status", "") for x in lines]
    check(st == 200 and statuses[:1] == ["pulling manifest"] and statuses[-1:] == ["success"],
          "pull progress stream %s" % statuses)
    prog = [x for x in lines if x.get("status", "").startswith("pulling stories")]
    check(prog and prog[-1]["total"] == os.path.getsize(MODEL) and prog[-1]["completed"] == prog[-1]["total"],
          "pull reports total/completed (%d progress lines)" % len(prog))
    st, _, body = srv.request("GET", "/api/tags")
    check(st == 200 and "org/tiny" in [m["name"] for m in json.loads(body)["models"]], "pulled model in /api/tags")
    st, _, j, _ = srv.post("/api/chat", {"model": "org/tiny", "messages": msgs, "stream": False,
                                         "options": {"num_predict": 4}})
    check(st == 200 and j["done"] and j["eval_count"] > 0, "pulled model answers /api/chat (%s %s)" % (st, j))
    n_get = len(hub.body_requests())
    st, _, j, _ = srv.post("/api/pull", {"model": "org/tiny", "stream": False})
    check(st == 200 and j == {"status": "success"} and len(hub.body_requests()) == n_get, "second pull: no download")
    st, _, lines, _ = ndjson("/api/pull", {"model": "org/missing"})
    check(st == 200 and "error" in lines[-1], "pull of a missing repo ends with an error line")
    st, _, j, _ = srv.post("/api/pull", {"model": "org/missing", "stream": False})
    check(st in (404, 502) and isinstance(j.get("error"), str), "non-stream pull failure -> error (%s)" % st)
    # Ollama's hf.co/org/repo:QUANT picks the file of that quantization
    n_before = len(hub.body_requests())
    st, _, j, _ = srv.post("/api/pull", {"model": "hf.co/org/multi:Q8_0", "stream": False})
    got = [r["path"] for r in hub.body_requests()[n_before:]]
    check(st == 200 and j == {"status": "success"} and any("multi-Q8_0.gguf" in p for p in got) and
          not any("multi-F32.gguf" in p for p in got), "hf.co/org/repo:Q8_0 pulls the Q8_0 file (%s %s)" % (st, got))
    st, _, j, _ = srv.post("/api/show", {"model": "hf.co/org/multi:Q8_0"})
    check(st == 200 and "multi-Q8_0.gguf" in j.get("modelfile", ""), "the pulled quantization is served")
    st, _, j, _ = srv.post("/api/pull", {"model": "org/../etc", "stream": False})
    check(st == 400 and isinstance(j.get("error"), str), "pull of an invalid id -> 400 (%s %s)" % (st, j))
    check(srv.stop() == 0, "SIGTERM exit 0")
finally:
    srv.stop()
    hub.stop()
summary("test_ollama_api")
