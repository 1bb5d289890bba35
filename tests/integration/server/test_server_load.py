#!/usr/bin/env python3
"""test_server_load.py - admission and cancellation of `spoke serve`
(decode slowed with the test-only SPOKE_TEST_DECODE_DELAY_MS): with
max_concurrency 1 and a queue of 2, 10 simultaneous requests give 3
successes and 7 immediate 429s with Retry-After; a disconnected stream, a
disconnected non-streaming request and a disconnected queued request all
free their slot (read back from /metrics); SIGTERM with requests in flight
exits 0 within the grace period; kill -9 during task-history writes leaves a
database that passes PRAGMA integrity_check."""
import http.client
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import MODEL, Server, check, model_config, summary  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(0)

DELAY_MS = 20
CHAT = {"model": "stories260K", "messages": [{"role": "user", "content": "Tell me a long story"}],
        "temperature": 0}


def raw_post(port, obj):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps(obj).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return s


def wait_metric(srv, name, value, timeout):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = srv.metric(name, "stories260K")
        if v == value:
            return True, v
        time.sleep(0.02)
    return False, v


cfg = model_config(params={"max_concurrency": 1, "queue_size": 2, "max_tokens": 4000},
                   server={"shutdown_grace_ms": 500, "max_tokens": 4000})
srv = Server(cfg, env={"SPOKE_TEST_DECODE_DELAY_MS": str(DELAY_MS)})
try:
    srv.wait_ready()
    # ---- 10 simultaneous requests, 1 slot + 2 queued
    results = [None] * 10
    barrier = threading.Barrier(10)

    def worker(i):
        # connect first, then send together: each success takes >= 60 x 20 ms, far longer than
        # the spread of the ten sends even on a loaded machine
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        c.connect()
        body = json.dumps(dict(CHAT, max_tokens=60))
        barrier.wait()
        t0 = time.time()
        c.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        results[i] = (r.status, dict((k.lower(), v) for k, v in r.getheaders()), time.time() - t0)
        c.close()

    th = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    ok = [r for r in results if r[0] == 200]
    rej = [r for r in results if r[0] == 429]
    check(len(ok) == 3 and len(rej) == 7, "3 successes + 7 429s (got %s)" % [r[0] for r in results])
    check(all(r[1].get("retry-after") for r in rej), "429s carry Retry-After")
    slowest_429 = max([r[2] for r in rej] or [0])
    fastest_ok = min([r[2] for r in ok] or [0])
    check(slowest_429 < fastest_ok, "429s are immediate (%.3f s) vs success (%.3f s)" % (slowest_429, fastest_ok))
    check(srv.metric("llm_rejected_total", "stories260K") == 7, "llm_rejected_total == 7")
    check(wait_metric(srv, "llm_in_flight", 0, 5)[0] and wait_metric(srv, "llm_queue_depth", 0, 5)[0],
          "slots and queue back to zero")

    # ---- disconnected stream frees its slot
    s = raw_post(srv.port, dict(CHAT, max_tokens=3000, stream=True))
    buf = b""
    while b"data: " not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    check(b"data: " in buf, "stream started")
    check(srv.metric("llm_in_flight", "stories260K") == 1, "stream holds the slot")
    t0 = time.time()
    s.close()
    freed, v = wait_metric(srv, "llm_in_flight", 0, 3)
    check(freed, "disconnected stream freed its slot (in_flight %s) in %.3f s" % (v, time.time() - t0))

    # ---- disconnected non-streaming request frees its slot
    s = raw_post(srv.port, dict(CHAT, max_tokens=3000))
    busy, _ = wait_metric(srv, "llm_in_flight", 1, 3)
    check(busy, "non-streaming request holds the slot")
    time.sleep(0.2)
    t0 = time.time()
    s.close()
    freed, v = wait_metric(srv, "llm_in_flight", 0, 3)
    check(freed, "disconnected request freed its slot (in_flight %s) in %.3f s" % (v, time.time() - t0))

    # ---- a queued request that disconnects leaves the queue
    holder = raw_post(srv.port, dict(CHAT, max_tokens=3000))
    wait_metric(srv, "llm_in_flight", 1, 3)
    queued = raw_post(srv.port, dict(CHAT, max_tokens=5))
    q, _ = wait_metric(srv, "llm_queue_depth", 1, 3)
    check(q, "second request queued")
    queued.close()
    q, v = wait_metric(srv, "llm_queue_depth", 0, 3)
    check(q, "disconnected waiter left the queue (%s)" % v)
    holder.close()
    freed, _ = wait_metric(srv, "llm_in_flight", 0, 3)
    check(freed, "holder freed")
    st, _, j, _ = srv.post("/v1/chat/completions", dict(CHAT, max_tokens=2))
    check(st == 200, "server serves normally after the disconnects")

    # spans of the cancelled requests say so
    time.sleep(0.3)
    st, res = srv.sql("SELECT count(*) AS n FROM task_history WHERE error_message LIKE 'cancelled%'")
    check(st == 200 and res["rows"][0]["n"] >= 3, "cancelled requests recorded (%s)" % res)

    # ---- SIGTERM with a request in flight: exit 0 within the grace period (+ margin)
    s = raw_post(srv.port, dict(CHAT, max_tokens=3000, stream=True))
    wait_metric(srv, "llm_in_flight", 1, 3)
    t0 = time.time()
    rc = srv.stop(sig=signal.SIGTERM, timeout=20)
    dt = time.time() - t0
    check(rc == 0 and dt < 5, "SIGTERM with a request in flight -> exit 0 in %.2f s (rc %s)" % (dt, rc))
    s.close()
    con = sqlite3.connect(srv.db)
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "history intact after SIGTERM")
    n = con.execute("SELECT count(*) FROM task_history WHERE task='ai_completion'").fetchone()[0]
    check(n >= 14, "history flushed on SIGTERM (%d rows)" % n)
    con.close()
finally:
    srv.stop(sig=signal.SIGKILL)

# ---- kill -9 while spans are being written
srv2 = Server(model_config(), tmp=None)
try:
    srv2.wait_ready()
    stop = threading.Event()

    def prober():
        while not stop.is_set():
            try:
                srv2.request("GET", "/health", timeout=2)
            except OSError:
                return

    th = [threading.Thread(target=prober) for _ in range(4)]
    for t in th:
        t.start()
    time.sleep(0.6)
    srv2.proc.send_signal(signal.SIGKILL)
    srv2.proc.wait()
    stop.set()
    for t in th:
        t.join()
finally:
    srv2.stop(sig=signal.SIGKILL)
con = sqlite3.connect(srv2.db)
check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "kill -9 during writes: integrity_check ok")
n = con.execute("SELECT count(*) FROM task_history").fetchone()[0]
check(n > 0, "rows written before kill -9 survive (%d)" % n)
con.close()

# ---- while the initial load runs: /v1/ready 503, requests 503 "loading" with Retry-After
srv4 = Server(model_config(), env={"SPOKE_TEST_LOAD_DELAY_MS": "1500"})
try:
    st, h, body = srv4.request("GET", "/v1/ready")
    check(st == 503 and h.get("retry-after"), "/v1/ready 503 while loading (%s)" % st)
    st, _, body = srv4.request("GET", "/v1/models/stories260K")
    check(st == 200 and json.loads(body)["status"] == "loading", "/v1/models says loading")
    st, h, j, _ = srv4.post("/v1/chat/completions", dict(CHAT, max_tokens=2))
    check(st == 503 and "loading" in j["error"]["message"] and h.get("retry-after"),
          "request while loading -> 503 loading (%s %s)" % (st, j))
    st, _, _ = srv4.request("GET", "/health")
    check(st == 200, "/health 200 while loading")
    srv4.wait_ready()
    st, _, j, _ = srv4.post("/v1/chat/completions", dict(CHAT, max_tokens=2))
    check(st == 200, "served after the load")
finally:
    check(srv4.stop() == 0, "srv4 SIGTERM exit 0")

# ---- a model that fails to load: 503 with the reason; lazy loading on first request
bad_cfg = model_config(sql_endpoint=False) + """  - from: file:/nonexistent/missing.gguf
    name: broken
    params: {initial_load: false}
  - from: file:%s
    name: lazy
    params: {initial_load: false}
  - from: hf:nobody-spoke-test/nothing@main
    name: remote
    files:
      - path: model-Q4_0.gguf
    params: {initial_load: false}
""" % MODEL
srv3 = Server(bad_cfg)
try:
    srv3.wait_ready()
    st, _, body = srv3.request("GET", "/v1/models/lazy")
    check(st == 200 and json.loads(body)["status"] == "not_loaded", "lazy model not loaded at start")
    st, _, j, _ = srv3.post("/v1/chat/completions", dict(CHAT, model="lazy", max_tokens=2))
    check(st == 200, "lazy model loads on first request (%s)" % st)
    st, h, j, _ = srv3.post("/v1/chat/completions", dict(CHAT, model="broken", max_tokens=2))
    check(st == 503 and "missing.gguf" in j["error"]["message"] and h.get("retry-after"),
          "failed load -> 503 with the reason (%s %s)" % (st, j))
    st, _, j, _ = srv3.post("/v1/completions", {"model": "remote", "prompt": "hi", "max_tokens": 2})
    check(st == 503 and "remote" in j["error"]["message"], "Hub model offline -> 503 with the hub's reason (%s %s)" %
          (st, j))
    st, _, body = srv3.request("GET", "/v1/models/broken")
    m = json.loads(body)
    check(m["status"] == "error" and "missing.gguf" in m["error"], "/v1/models shows the load error")
    st, _, _ = srv3.request("GET", "/v1/ready")
    check(st == 200, "ready: lazy models do not gate readiness")
finally:
    check(srv3.stop() == 0, "srv3 SIGTERM exit 0")
summary("test_server_load")
