#!/usr/bin/env python3
"""test_server_api.py - `spoke serve` end to end on the bundled demo model:
every route and field, streaming chunk format and [DONE], usage, stop,
max_tokens, logprobs, greedy output equal to `spoke run`, at least 40 bad
requests each answered with the expected 4xx while the server stays
healthy, /health while 100 idle sockets are open, slow headers closed by
the timeout, task-history rows matching the requests (read back through
/v1/sql and `spoke sql`), writes through /v1/sql refused, promtool on
/metrics, and SIGTERM exiting 0."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import (ASAN, MODEL, SPOKE, Server, check, model_config, summary)  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(0)

srv = Server(model_config(params={"max_concurrency": 2, "queue_size": 4},
                          server={"max_body_bytes": 65536, "max_tokens": 512, "timeout_s": 2,
                                  "max_connections_per_client": 256}))
n_completions = 0  # completion requests that reached the handler (for the task-history check)


def post(path, obj, **kw):
    global n_completions
    if path in ("/v1/chat/completions", "/v1/completions"):
        n_completions += 1
    return srv.post(path, obj, **kw)


try:
    srv.wait_ready()
    # ---- simple routes
    st, h, body = srv.request("GET", "/health")
    check(st == 200 and body == b"ok", "/health -> 200 ok")
    st, _, body = srv.request("GET", "/v1/ready")
    check(st == 200, "/v1/ready -> 200")
    st, _, body = srv.request("GET", "/v1/models")
    j = json.loads(body)
    check(st == 200 and j["object"] == "list" and j["data"][0]["id"] == "stories260K", "/v1/models lists the model")
    check(j["data"][0]["status"] == "ready" and j["data"][0]["object"] == "model", "/v1/models status ready")
    st, _, body = srv.request("GET", "/v1/models/stories260K")
    check(st == 200 and json.loads(body)["id"] == "stories260K", "/v1/models/{id}")
    st, _, body = srv.request("GET", "/v1/models/nope")
    check(st == 404 and json.loads(body)["error"]["code"] == "model_not_found", "/v1/models/nope -> 404")
    st, _, _ = srv.request("GET", "/nope")
    check(st == 404, "unknown path -> 404")

    # ---- chat, non-streaming
    st, h, j, _ = post("/v1/chat/completions", {"model": "stories260K", "max_tokens": 16, "temperature": 0,
                                                "messages": [{"role": "system", "content": "Be brief."},
                                                             {"role": "user", "content": "Once upon a time"}]})
    check(st == 200, "chat 200 (got %s %s)" % (st, j))
    if st == 200:
        check(j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-"), "chat object/id")
        check(isinstance(j["created"], int) and j["model"] == "stories260K", "chat created/model")
        c = j["choices"][0]
        check(c["index"] == 0 and c["message"]["role"] == "assistant" and isinstance(c["message"]["content"], str),
              "chat message")
        check(c["finish_reason"] in ("stop", "length"), "chat finish_reason")
        u = j["usage"]
        check(u["prompt_tokens"] > 0 and 0 < u["completion_tokens"] <= 16 and
              u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], "chat usage %s" % u)
        check(h.get("content-type", "").startswith("application/json"), "chat content-type")
    # max_completion_tokens + length
    st, _, j, _ = post("/v1/chat/completions", {"model": "stories260K", "max_completion_tokens": 3,
                                                "messages": [{"role": "user", "content": "Hi"}]})
    check(st == 200 and j["usage"]["completion_tokens"] <= 3, "max_completion_tokens honoured")
    # content parts
    st, _, j, _ = post("/v1/chat/completions", {"model": "stories260K", "max_tokens": 2,
                                                "messages": [{"role": "user", "content": [{"type": "text",
                                                                                           "text": "Hi"}]}]})
    check(st == 200, "content as text parts")
    # logprobs / top_logprobs
    st, _, j, _ = post("/v1/chat/completions", {"model": "stories260K", "max_tokens": 4, "logprobs": True,
                                                "top_logprobs": 3, "temperature": 0,
                                                "messages": [{"role": "user", "content": "Hi"}]})
    check(st == 200, "logprobs request 200")
    if st == 200:
        lp = j["choices"][0]["logprobs"]["content"]
        check(len(lp) == j["usage"]["completion_tokens"], "one logprob entry per token")
        check(all(isinstance(e["token"], str) and e["logprob"] <= 0 and isinstance(e["bytes"], list) and
                  len(e["top_logprobs"]) == 3 for e in lp), "logprob entries shaped like OpenAI's")
    # seed determinism with sampling
    req = {"model": "stories260K", "max_tokens": 12, "temperature": 1.0, "seed": 42, "top_p": 0.9,
           "presence_penalty": 0.5, "frequency_penalty": 0.5, "user": "ignored",
           "messages": [{"role": "user", "content": "Tell a story"}]}
    a = post("/v1/chat/completions", req)[2]
    b = post("/v1/chat/completions", req)[2]
    check(a and b and a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"],
          "same seed -> same output")

    # ---- completions, non-streaming + greedy vs spoke run
    prompt = "Once upon a time, there was a little"
    st, _, j, _ = post("/v1/completions", {"model": "stories260K", "prompt": prompt, "max_tokens": 24,
                                           "temperature": 0})
    check(st == 200 and j["object"] == "text_completion" and j["id"].startswith("cmpl-"), "completion object")
    http_text = j["choices"][0]["text"] if st == 200 else None
    run = subprocess.run([SPOKE, "run", MODEL, prompt, "-n", "24", "--temp", "0"], capture_output=True, text=True,
                         timeout=120)
    if run.returncode == 0:
        out = run.stdout[:-1] if run.stdout.endswith("\n") else run.stdout
        check(out == http_text, "greedy HTTP output equals spoke run (%r vs %r)" % (http_text, out))
    else:
        print("  note: spoke run unavailable (%s); greedy comparison skipped" % run.stderr.strip()[:200])
    # completions logprobs
    st, _, j, _ = post("/v1/completions", {"prompt": "Hi", "max_tokens": 3, "logprobs": 2, "temperature": 0})
    check(st == 200 and len(j["choices"][0]["logprobs"]["tokens"]) == j["usage"]["completion_tokens"],
          "completions logprobs (model defaulted)")
    # stop string: generate greedily, then stop at a piece of the output
    st, _, j, _ = post("/v1/completions", {"prompt": prompt, "max_tokens": 24, "temperature": 0})
    full = j["choices"][0]["text"] if st == 200 else ""
    words = full.split()
    if len(words) >= 3:
        stop = " " + words[2]
        st, _, j, _ = post("/v1/completions", {"prompt": prompt, "max_tokens": 24, "temperature": 0,
                                               "stop": [stop]})
        check(st == 200 and j["choices"][0]["finish_reason"] == "stop" and stop not in j["choices"][0]["text"] and
              full.startswith(j["choices"][0]["text"]), "stop string ends the output (%r)" % j)

    # ---- streaming
    st, ctype, ev, raw = srv.stream("/v1/chat/completions", {"model": "stories260K", "stream": True,
                                                              "max_tokens": 8, "temperature": 0,
                                                              "stream_options": {"include_usage": True},
                                                              "messages": [{"role": "user", "content": "Hi"}]})
    n_completions += 1
    check(st == 200 and ctype.startswith("text/event-stream"), "stream content-type")
    check(ev and ev[-1] == "[DONE]", "stream ends with [DONE]")
    chunks = [e for e in ev if e != "[DONE]"]
    check(all(c["object"] == "chat.completion.chunk" for c in chunks), "chunk object")
    check(len(set(c["id"] for c in chunks)) == 1, "one id per stream")
    check(chunks[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has the role")
    check(chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0, "final usage chunk")
    fin = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    check(len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] in ("stop", "length"), "one finish chunk")
    check(all("usage" in c for c in chunks), "include_usage: usage key on every chunk")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    st, _, j, _ = post("/v1/chat/completions", {"model": "stories260K", "max_tokens": 8, "temperature": 0,
                                                "messages": [{"role": "user", "content": "Hi"}]})
    check(st == 200 and j["choices"][0]["message"]["content"] == text, "streamed text == non-streamed text")
    st, _, ev, _ = srv.stream("/v1/completions", {"prompt": prompt, "stream": True, "max_tokens": 24,
                                                   "temperature": 0})
    n_completions += 1
    chunks = [e for e in ev if e != "[DONE]"]
    check(ev[-1] == "[DONE]" and all(c["object"] == "text_completion" for c in chunks), "completion stream")
    check("".join(c["choices"][0]["text"] for c in chunks) == http_text, "streamed completion == greedy text")
    check(all("usage" not in c for c in chunks), "no usage key without include_usage")

    # ---- bad requests: (method, path, body, expected status)
    big = "x" * 70000
    chat = "/v1/chat/completions"
    comp = "/v1/completions"
    msgs = [{"role": "user", "content": "hi"}]
    bad = [
        ("POST", chat, b"{", 400), ("POST", chat, b"", 400), ("POST", chat, b"[]", 400), ("POST", chat, b"null", 400),
        ("POST", chat, b'{"model":"stories260K","messages":[{"role":"user","content":"hi"}]', 400),
        ("POST", chat, b'{"messages": "hi"}', 400), ("POST", chat, b'{"messages": []}', 400),
        ("POST", chat, b'{"model": 5, "messages": [{"role":"user","content":"hi"}]}', 400),
        ("POST", chat, {"messages": [{"role": "wizard", "content": "hi"}]}, 400),
        ("POST", chat, {"messages": [{"role": "user"}]}, 400),
        ("POST", chat, {"messages": [{"role": "user", "content": 5}]}, 400),
        ("POST", chat, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400),
        ("POST", chat, {"messages": ["hi"]}, 400),
        ("POST", chat, b'{"messages":[{"role":"user","content":"\xff\xfe"}]}', 400),
        ("POST", chat, b'{"messages":[{"role":"user","content":"a\\u0000b"}]}', 400),
        ("POST", chat, b'{"messages":[{"role":"user","content":"\\ud800"}]}', 400),
        ("POST", chat, {"messages": msgs, "max_tokens": -1}, 400),
        ("POST", chat, {"messages": msgs, "max_tokens": 0}, 400),
        ("POST", chat, {"messages": msgs, "max_tokens": "5"}, 400),
        ("POST", chat, {"messages": msgs, "max_tokens": 1.5}, 400),
        ("POST", chat, {"messages": msgs, "max_tokens": 10 ** 6}, 400),
        ("POST", chat, b'{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}', 400),
        ("POST", chat, b'{"messages":[{"role":"user","content":"hi"}],"max_tokens":99999999999999999999999}', 400),
        ("POST", chat, {"messages": msgs, "temperature": 3}, 400),
        ("POST", chat, {"messages": msgs, "temperature": "hot"}, 400),
        ("POST", chat, {"messages": msgs, "top_p": 1.5}, 400),
        ("POST", chat, {"messages": msgs, "presence_penalty": 9}, 400),
        ("POST", chat, {"messages": msgs, "frequency_penalty": -9}, 400),
        ("POST", chat, {"messages": msgs, "seed": "x"}, 400),
        ("POST", chat, {"messages": msgs, "n": 3}, 400),  # above max_concurrency 2
        ("POST", chat, {"messages": msgs, "logprobs": True, "top_logprobs": 10 ** 9}, 400),
        ("POST", chat, {"messages": msgs, "logprobs": True, "top_logprobs": 21}, 400),
        ("POST", chat, {"messages": msgs, "top_logprobs": 2}, 400),
        ("POST", chat, {"messages": msgs, "logprobs": "yes"}, 400),
        ("POST", chat, {"messages": msgs, "stream": "yes"}, 400),
        ("POST", chat, {"messages": msgs, "stream_options": {"include_usage": True}}, 400),
        ("POST", chat, {"messages": msgs, "stop": 5}, 400),
        ("POST", chat, {"messages": msgs, "stop": ["a", "b", "c", "d", "e"]}, 400),
        ("POST", chat, {"messages": msgs, "stop": [1]}, 400),
        ("POST", chat, {"model": "nope", "messages": msgs}, 404),
        ("POST", chat, {"messages": [{"role": "user", "content": big}]}, 413),
        ("POST", chat, {"messages": [{"role": "user", "content": "word " * 12000}]}, 400),
        ("POST", chat, b'{"messages":[{"role":"user","content":"hi"}],"messages":[]}', 400),
        ("POST", chat, b"[" * 5000 + b"]" * 5000, 400),
        ("POST", comp, {"prompt": 5}, 400), ("POST", comp, {}, 400),
        ("POST", comp, {"prompt": ["a", "b"]}, 400), ("POST", comp, {"prompt": [1, 2, 3]}, 400),
        ("POST", comp, {"prompt": "hi", "echo": True}, 400), ("POST", comp, {"prompt": "hi", "logprobs": 50}, 400),
        ("POST", comp, {"prompt": "hi", "best_of": 3}, 400), ("POST", comp, {"prompt": "hi", "suffix": "x"}, 400),
        ("POST", comp, {"model": "nope", "prompt": "hi"}, 404),
        ("GET", chat, None, 405), ("DELETE", "/health", None, 405), ("POST", "/v1/models", b"{}", 405),
        ("POST", "/v1/sql", b"DELETE FROM task_history", 400),
    ]
    for i, (method, path, body, want) in enumerate(bad):
        if path in (chat, comp):
            n_completions += 1 if method == "POST" else 0
        st, h, data = srv.request(method, path, body)
        ok = check(st == want, "bad request %d (%s %s %.60r): want %d got %d %.200r" %
                   (i, method, path, body, want, st, data))
        if ok and st != 405:
            try:
                e = json.loads(data)["error"]
                check(isinstance(e["message"], str) and "type" in e and "param" in e and "code" in e,
                      "bad request %d: OpenAI error shape" % i)
            except (ValueError, KeyError, TypeError):
                check(False, "bad request %d: body is not an OpenAI error: %.200r" % (i, data))
        st, _, _ = srv.request("GET", "/health")
        check(st == 200, "healthy after bad request %d" % i)
    check(len(bad) >= 40, "at least 40 bad requests (%d)" % len(bad))
    # declared Content-Length above the limit: refused before reading
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 999999999\r\n\r\n{")
    resp = s.recv(4096)
    s.close()
    check(b" 413 " in resp.split(b"\r\n")[0], "huge Content-Length -> 413 (%r)" % resp[:60])
    n_completions += 1

    # ---- slow headers are closed by the connection timeout (timeout_s: 2)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    t0 = time.time()
    try:
        got = s.recv(100)
    except (ConnectionResetError, socket.timeout):
        got = b""
    check(got == b"" and time.time() - t0 < 8, "slow-header connection closed by the timeout")
    s.close()

    # ---- /health with 100 idle sockets open
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(100)]
    t0 = time.time()
    st, _, _ = srv.request("GET", "/health", timeout=5)
    dt = time.time() - t0
    check(st == 200 and dt < (2.0 if ASAN else 1.0), "/health with 100 idle sockets: %d in %.3f s" % (st, dt))
    st, _, _ = srv.request("GET", "/metrics", timeout=5)
    check(st == 200, "/metrics with 100 idle sockets")
    for s in idle:
        s.close()

    # ---- metrics
    text = srv.metrics()
    for name in ("llm_requests_total", "llm_failures_total", "llm_internal_request_duration_ms_bucket",
                 "llm_prompt_tokens_total", "llm_completion_tokens_total", "llm_time_to_first_token_seconds_bucket",
                 "llm_inter_token_latency_seconds_bucket", "llm_queue_depth", "llm_in_flight", "llm_rejected_total",
                 "llm_model_load_seconds", "spoke_memory_in_use_bytes", "spoke_task_history_dropped_spans_total"):
        check(name in text, "metric %s exposed" % name)
    check("# HELP llm_requests_total" in text and "# TYPE llm_requests_total counter" in text, "HELP/TYPE lines")
    check(srv.metric("llm_requests_total", "stories260K") >= 10, "llm_requests counted")
    check(srv.metric("llm_failures_total", "stories260K") >= 1, "llm_failures counted")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        problems = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
        # the guide mandates this exact name; promtool's lint dislikes the "_ms" unit in it
        problems = [l for l in problems if not l.startswith("llm_internal_request_duration_ms metric names should "
                                                            "not contain abbreviated units")]
        check(not problems, "promtool check metrics: %s" % problems)
    else:
        print("  note: promtool not installed; skipped")

    # ---- task history
    time.sleep(0.3)
    st, res = srv.sql("SELECT count(*) AS n FROM task_history WHERE task = 'ai_completion'")
    check(st == 200 and res["rows"][0]["n"] == n_completions,
          "ai_completion rows match requests (%s vs %d)" % (res, n_completions))
    st, res = srv.sql("SELECT count(*) AS n FROM task_history WHERE task = 'health'")
    check(st == 200 and res["rows"][0]["n"] >= 50, "health spans recorded (%s)" % res)
    st, res = srv.sql("SELECT input, captured_output, labels, execution_duration_ms, trace_id, span_id, start_time,"
                      " end_time FROM task_history WHERE task='ai_completion' AND error_message IS NULL"
                      " ORDER BY start_time LIMIT 1")
    row = res["rows"][0]
    lab = json.loads(row["labels"])
    check(lab["model"] == "stories260K" and lab["total_tokens"] == lab["prompt_tokens"] + lab["completion_tokens"],
          "labels carry model and token usage (%s)" % lab)
    check(row["captured_output"] is not None and "messages" in row["input"], "input and captured output stored")
    check(len(row["trace_id"]) == 32 and len(row["span_id"]) == 16 and row["start_time"].endswith("Z"),
          "span ids and times")
    st, res = srv.sql("SELECT count(*) AS n FROM task_history WHERE error_message IS NOT NULL")
    check(st == 200 and res["rows"][0]["n"] >= 40, "failed requests carry error_message")
    for q in ("DELETE FROM task_history", "DROP TABLE task_history", "INSERT INTO task_history(task) VALUES('x')",
              "ATTACH DATABASE '/tmp/x.db' AS x", "PRAGMA journal_mode=DELETE", "SELECT load_extension('x')",
              "SELECT 1; DELETE FROM task_history", "UPDATE task_history SET task = 'x'"):
        st, res = srv.sql(q)
        check(st == 400 and "error" in res, "/v1/sql refuses %r (%d)" % (q, st))
    st, res = srv.sql(b'{"sql": "SELECT count(*) AS n FROM task_history"}')
    check(st == 200 and res["rows"][0]["n"] > 0, "/v1/sql JSON body")
    p = subprocess.run([SPOKE, "sql", "--db", srv.db, "SELECT task, count(*) AS n FROM task_history GROUP BY task"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and "ai_completion" in p.stdout and "health" in p.stdout, "spoke sql table: %s %s" %
          (p.stdout[:300], p.stderr[:300]))
    p = subprocess.run([SPOKE, "sql", "--db", srv.db, "--json", "SELECT count(*) AS n FROM task_history WHERE "
                        "task='ai_completion'"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and json.loads(p.stdout)["rows"][0]["n"] == n_completions, "spoke sql --json")
    p = subprocess.run([SPOKE, "sql", "--db", srv.db, "DELETE FROM task_history"], capture_output=True, text=True)
    check(p.returncode != 0 and "refused" in p.stderr, "spoke sql refuses writes")
finally:
    rc = srv.stop()
check(rc == 0, "SIGTERM -> exit 0 (got %s)" % rc)
# ---- CLI errors: one clear line, usage exit codes
for args, want_rc, want in (
        (["--host", "nothost", "--port", "0"], 2, "invalid listen address 'nothost'"),
        (["-c", "/nonexistent/spoke.yaml"], 3, "cannot open config /nonexistent/spoke.yaml"),
        (["--port", "99999"], 2, "--port must be"),
        (["--bogus"], 2, "unknown or incomplete option")):
    p = subprocess.run([SPOKE, "serve"] + args + ["--no-history"], capture_output=True, text=True, timeout=30)
    check(p.returncode == want_rc and want in p.stderr, "spoke serve %s -> rc %d, %r (got %d %r)" %
          (args, want_rc, want, p.returncode, p.stderr[-300:]))
bad_cfg = os.path.join(srv.tmp, "bad.yaml")
with open(bad_cfg, "w") as f:
    f.write("models:\n  - from: file:/x.gguf\n    name: m\n    params:\n      max_concurrency: many\n")
p = subprocess.run([SPOKE, "serve", "-c", bad_cfg, "--no-history"], capture_output=True, text=True, timeout=30)
check(p.returncode == 2 and "bad.yaml:5: models[0].params.max_concurrency" in p.stderr,
      "config error names file, line and key (%r)" % p.stderr[-300:])
summary("test_server_api")
