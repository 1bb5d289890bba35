#!/usr/bin/env python3
"""test_server_abuse.py - bounded memory and fair use of `spoke serve`
(issue 14 s2, s3): peak RSS of the server process (/proc/PID/status VmHWM)
under 32 parallel 1 MiB prompts stays within 256 MiB of the loaded server;
slowloris sockets from another address (127.0.0.2) neither lock out
/health (per-client connection cap) nor live past request_timeout_s
although they keep sending bytes (absolute deadline); a stream whose client
stops reading loses its slot after write_timeout_s; a client that
half-closes after its request still gets the answer (plain and streamed);
/v1/sql refuses fts3_tokenizer, answers 413 over the byte cap and stops
sending at the time limit; SIGTERM during a stream ends it with an error
event and [DONE] in a complete HTTP body."""
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import ASAN, MODEL, Server, check, model_config, summary  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(0)
if not os.path.exists("/proc/self/status"):
    print("SKIP: no /proc")
    sys.exit(0)

MiB = 1 << 20
N_ATTACK = 32
T0 = time.time()


def mark(what):
    print("  [%5.1f s] %s" % (time.time() - T0, what), flush=True)
CHAT = {"model": "stories260K", "messages": [{"role": "user", "content": "Tell me a story"}], "temperature": 0}


def proc_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def post_raw(port, body, path="/v1/chat/completions", rcvbuf=None, src=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return s


def read_all(s):
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def wait_metric(srv, name, value, timeout):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = srv.metric(name, "stories260K")
        if v == value:
            return True, v
        time.sleep(0.05)
    return False, v


cfg = model_config(params={"max_concurrency": 1, "queue_size": 2},
                   server={"max_body_bytes": 2 * MiB, "max_tokens": 2000, "max_connections": 100,
                           "max_connections_per_client": 64, "request_timeout_s": 2, "write_timeout_s": 1,
                           "timeout_s": 30, "shutdown_grace_ms": 200, "sql_time_ms": 2000,
                           "sql_max_bytes": 2 * MiB})
srv = Server(cfg, env={"SPOKE_TEST_DECODE_DELAY_MS": "5"})
pid = srv.proc.pid
try:
    srv.wait_ready()
    port = srv.port
    st, _, j, _ = srv.post("/v1/chat/completions", dict(CHAT, max_tokens=4))
    check(st == 200, "warm-up completion")

    # ---- s3: 48 parallel 1 MiB prompts; peak RSS stays within 256 MiB of the loaded server
    rss0 = proc_kb(pid, "VmRSS")
    big_prompt = json.dumps({"model": "stories260K", "prompt": "once upon a time " * (MiB // 17),
                             "max_tokens": 4}).encode()
    parts = [{"type": "text", "text": "ab"}] * (MiB // 30)
    big_chat = json.dumps({"model": "stories260K", "messages": [{"role": "user", "content": parts}]}).encode()
    check(MiB <= len(big_prompt) < 2 * MiB and MiB - 65536 <= len(big_chat) < 2 * MiB, "attack bodies are ~1 MiB")
    statuses = []
    lock = threading.Lock()

    def attacker(i):
        chat = i % 8 == 0  # 1 in 8: a chat body of 35,000 content parts (the heaviest JSON tree)
        body = big_chat if chat else big_prompt
        path = "/v1/chat/completions" if chat else "/v1/completions"
        try:
            s = post_raw(port, body, path)
            out = read_all(s)
            s.close()
            code = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else 0
        except OSError:
            code = -1
        with lock:
            statuses.append(code)

    t0 = time.time()
    th = [threading.Thread(target=attacker, args=(i,)) for i in range(N_ATTACK)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    peak = proc_kb(pid, "VmHWM")
    grew_mib = (peak - rss0) / 1024.0
    print("  RSS before %.1f MiB, peak %.1f MiB (+%.1f MiB) under %d x 1 MiB prompts in %.2f s; statuses %s" %
          (rss0 / 1024.0, peak / 1024.0, grew_mib, N_ATTACK, dt, sorted(set(statuses))), flush=True)
    check(all(c in (400, 413, 429) for c in statuses), "every 1 MiB prompt refused with a 4xx (%s)" % statuses)
    if ASAN:
        print("  note: ASan build: RSS includes ASan's quarantine; the 256 MiB bound is checked in the plain build")
    else:
        check(grew_mib < 256, "peak RSS within model + KV + 256 MiB (+%.1f MiB)" % grew_mib)
    st, _, _ = srv.request("GET", "/health")
    check(st == 200, "healthy after the body attack")

    mark("a client that half-closes")
    # ---- s3: a client that half-closes after its request still gets the answer
    body = json.dumps(dict(CHAT, max_tokens=8)).encode()
    s = post_raw(port, body)
    s.shutdown(socket.SHUT_WR)
    out = read_all(s)
    s.close()
    final = out.split(b"HTTP/1.1 100 Continue\r\n\r\n")[-1]
    check(final.startswith(b"HTTP/1.1 200") and b'"chat.completion"' in final,
          "half-closed client gets its answer (%r)" % out[:120])
    s = post_raw(port, json.dumps(dict(CHAT, max_tokens=8, stream=True)).encode())
    s.shutdown(socket.SHUT_WR)
    out = read_all(s)
    s.close()
    check(b" 200 OK" in out and b"data: [DONE]" in out, "half-closed client gets its whole stream (%r)" % out[-80:])
    check(wait_metric(srv, "llm_in_flight", 0, 5)[0], "slot free after the half-closed requests")

    mark("a stream whose client stops re")
    # ---- s3: a stream whose client stops reading loses its slot after write_timeout_s (1 s)
    body = json.dumps(dict(CHAT, max_tokens=1500, stream=True, logprobs=True, top_logprobs=20)).encode()
    s = post_raw(port, body, rcvbuf=4096)
    ok, _ = wait_metric(srv, "llm_in_flight", 1, 5)
    check(ok, "stalled stream holds the slot at first")
    t0 = time.time()
    freed, v = wait_metric(srv, "llm_in_flight", 0, 45 if ASAN else 15)  # ASan: ~10x slower tokens
    dt_free = time.time() - t0
    st, res = srv.sql("SELECT error_message FROM task_history WHERE task='ai_completion' ORDER BY start_time DESC "
                      "LIMIT 1")
    err = res["rows"][0]["error_message"] if st == 200 and res["rows"] else None
    check(freed and err and "stopped reading" in err,
          "a client that stops reading loses its slot (%.2f s, span error %r)" % (dt_free, err))
    s.close()

    mark("slowloris from")
    # ---- s3: slowloris from 127.0.0.2: /health stays reachable, sockets die at request_timeout_s (2 s)
    try:
        probe = socket.socket()
        probe.bind(("127.0.0.2", 0))
        probe.close()
        have_alias = True
    except OSError:
        have_alias = False
        print("  note: cannot bind 127.0.0.2; slowloris part skipped")
    if have_alias:
        slow = []
        for _ in range(150):
            k = socket.socket()
            k.bind(("127.0.0.2", 0))
            k.settimeout(5)
            try:
                k.connect(("127.0.0.1", port))
                k.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                slow.append(k)
            except OSError:
                k.close()
        t_start = time.time()
        lat = []
        alive_at = {}
        while time.time() - t_start < 4.0:
            for k in slow:  # one byte per socket, about every 300 ms
                try:
                    k.send(b"X")
                except OSError:
                    pass
            t1 = time.time()
            try:
                st, _, _ = srv.request("GET", "/health", timeout=5)
            except OSError:
                st = 0
            lat.append((time.time() - t1, st))
            time.sleep(0.3)
        for k in slow:  # a closed socket reads EOF (or a reset) at once
            k.setblocking(False)
            try:
                alive = k.recv(1) == b"" and False
            except BlockingIOError:
                alive = True
            except OSError:
                alive = False
            alive_at[k] = alive
            k.close()
        n_alive = sum(1 for a in alive_at.values() if a)
        worst = max(l for l, _ in lat)
        print("  slowloris: 150 sockets from 127.0.0.2, /health worst %.3f s over %d probes, %d sockets still open "
              "after 4 s" % (worst, len(lat), n_alive), flush=True)
        check(all(st == 200 for _, st in lat) and worst < (2.0 if ASAN else 1.0),
              "/health reachable during slowloris (worst %.3f s, %s)" % (worst, [s for _, s in lat]))
        check(n_alive == 0, "slow sockets closed by the absolute deadline although they kept sending (%d open)" %
              n_alive)

    mark("/v1/sql allowlist")
    # ---- s2: /v1/sql allowlist, byte cap (413), time limit covering the sending
    st, res = srv.sql("SELECT hex(fts3_tokenizer('simple')) AS p")
    check(st == 400 and "fts3_tokenizer" in res["error"]["message"], "fts3_tokenizer refused (%s %s)" % (st, res))
    st, res = srv.sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<30) "
                      "SELECT printf('%.*c', 100000, 'x') AS s FROM c")
    check(st == 413 and res["error"]["code"] == "result_too_large" and "cap" in res["error"]["message"],
          "result over sql_max_bytes -> 413 (%s %s)" % (st, str(res)[:200]))
    q = json.dumps({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<18) "
                           "SELECT printf('%.*c', 100000, 'y') AS s FROM c"}).encode()
    s = post_raw(port, q, "/v1/sql", rcvbuf=4096)
    time.sleep(3.5)  # read nothing past the 2 s limit
    out = read_all(s)
    s.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    clen = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    check(head.startswith(b"HTTP/1.1 200") and clen and len(rest) < clen[0],
          "a slow reader of /v1/sql is cut at the time limit (%d of %s bytes)" % (len(rest), clen))
    st, res = srv.sql("SELECT count(*) AS n FROM task_history")
    check(st == 200 and res["rows"][0]["n"] > 0, "/v1/sql still answers")

    mark("SIGTERM during a stream")
    # ---- s3: SIGTERM during a stream: an error event and [DONE], body complete
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/chat/completions", body=json.dumps(dict(CHAT, max_tokens=1500, stream=True)),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    first = r.read(64)  # the stream has started
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rest = r.read()
        complete = True
    except http.client.IncompleteRead as e:
        rest = e.partial
        complete = False
    c.close()
    text = (first + rest).decode("utf-8", "replace")
    check(complete, "SIGTERM: the stream's HTTP body is complete")
    check("shutting_down" in text and text.rstrip().endswith("data: [DONE]"),
          "SIGTERM: error event then [DONE] (%r)" % text[-200:])
    rc = srv.proc.wait(20)
    check(rc == 0, "exit 0 after SIGTERM (%s)" % rc)
finally:
    srv.stop(sig=signal.SIGKILL)
summary("test_server_abuse")
