#!/usr/bin/env python3
"""test_server_auth.py - who may call `spoke serve` (issue 14 s1, s7):
API keys from spoke.yaml (${env:...}), --api-key and SPOKE_API_KEY
(Bearer, 401 in OpenAI's shape, /health and /v1/ready open, /metrics closed
unless metrics_public), keys never in logs / history / metrics / /v1/models;
Host allowlist (DNS rebinding), Origin allowlist with CORS preflight,
Content-Type: application/json required (415), control bytes in the path
(400), duplicate Content-Length or Content-Length + Transfer-Encoding (one
400, then the connection closes), /v1/sql off by default, history database
0600 and its directory 0700, a non-loopback --host refused without keys,
a port clash reported before any model load, /v1/models without absolute
paths, and the "request waited for the load" log + metric."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import MODEL, SPOKE, Server, check, model_config, summary  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(0)

KEY1, KEY2, KEY3 = "sk-yaml-4f1c2a9e7b", "sk-flag-0d93b7c1aa", "sk-env-77e2c0ffee"
CHAT = {"model": "stories260K", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}


def raw(port, data, timeout=5):
    """send bytes, read until the server closes; returns everything read"""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def auth(key):
    return {"Authorization": "Bearer " + key}


cfg = model_config(params={"max_concurrency": 1}, sql_endpoint=False, extra_server="""
api_keys:
  - ${env:SPOKE_TEST_KEY}
allowed_hosts: [spoke.test]
cors_origins: [http://app.test]
""")
srv = Server(cfg, env={"SPOKE_TEST_KEY": KEY1, "SPOKE_API_KEY": KEY3, "SPOKE_LOG": "debug"},
             args=["--api-key", KEY2])
try:
    srv.wait_ready()
    port = srv.port
    # ---- keys
    st, _, body = srv.request("GET", "/health")
    check(st == 200 and body == b"ok", "/health open without a key")
    st, _, _ = srv.request("GET", "/v1/ready")
    check(st == 200, "/v1/ready open without a key")
    st, h, body = srv.request("GET", "/v1/models")
    e = json.loads(body).get("error", {}) if body else {}
    check(st == 401 and e.get("code") == "invalid_api_key" and "message" in e and "type" in e and "param" in e,
          "no key -> 401 in OpenAI's shape (%s %r)" % (st, body[:200]))
    check(h.get("www-authenticate", "").startswith("Bearer"), "401 carries WWW-Authenticate: Bearer")
    st, _, _ = srv.request("GET", "/v1/models", headers=auth("sk-wrong"))
    check(st == 401, "wrong key -> 401")
    st, _, _ = srv.request("GET", "/v1/models", headers=auth(KEY1 + "x"))
    check(st == 401, "key with a suffix -> 401")
    st, _, _ = srv.request("GET", "/v1/models", headers={"Authorization": "Basic " + KEY1})
    check(st == 401, "non-Bearer scheme -> 401")
    for k, where in ((KEY1, "spoke.yaml ${env:}"), (KEY2, "--api-key"), (KEY3, "SPOKE_API_KEY")):
        st, _, _ = srv.request("GET", "/v1/models", headers=auth(k))
        check(st == 200, "key from %s accepted (%s)" % (where, st))
    st, _, _ = srv.request("GET", "/metrics")
    check(st == 401, "/metrics needs a key unless metrics_public")
    st, _, j, _ = srv.post("/v1/chat/completions", CHAT)
    check(st == 401, "completion without a key -> 401")
    st, _, j, _ = srv.post("/v1/chat/completions", CHAT, headers=auth(KEY1))
    check(st == 200, "completion with a key -> 200 (%s %s)" % (st, j))
    st, _, _ = srv.request("POST", "/v1/sql", b"SELECT 1", headers=dict(auth(KEY1), **{"Content-Type":
                                                                                       "application/sql"}))
    check(st == 404, "/v1/sql is off unless task_history.sql_endpoint (%s)" % st)
    st, _, _ = srv.request("POST", "/v1/sql", b"SELECT 1", headers={"Content-Type": "application/sql"})
    check(st == 401, "/v1/sql needs a key")

    # ---- Content-Type
    body = json.dumps(CHAT)
    for ctype, want in (("text/plain", 415), ("application/x-www-form-urlencoded", 415), (None, 415),
                        ("application/json; charset=utf-8", 200), ("Application/JSON", 200)):
        hdr = auth(KEY1)
        if ctype:
            hdr["Content-Type"] = ctype
        c = __import__("http.client").client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.putrequest("POST", "/v1/chat/completions")
        for k, v in hdr.items():
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(body)))
        c.endheaders(body.encode())
        r = c.getresponse()
        data = r.read()
        c.close()
        check(r.status == want, "Content-Type %r -> %d (got %d %r)" % (ctype, want, r.status, data[:120]))
        if want == 415:
            check(json.loads(data)["error"]["code"] == "unsupported_media_type", "415 in OpenAI's shape")

    # ---- Host (DNS rebinding)
    for host, want in (("evil.example", 403), ("evil.example:%d" % port, 403), ("spoke.test", 200),
                       ("SPOKE.test:%d" % port, 200), ("localhost:%d" % port, 200), ("127.0.0.1:%d" % port, 200),
                       ("[::1]:%d" % port, 200)):
        st, _, body = srv.request("GET", "/v1/models", headers=dict(auth(KEY1), Host=host))
        check(st == want, "Host %s -> %d (got %d %r)" % (host, want, st, body[:100]))
    st, _, _ = srv.request("GET", "/health", headers={"Host": "rebind.attacker.example"})
    check(st == 403, "a foreign Host is refused on every route, /health included")

    # ---- Origin / CORS
    st, h, _ = srv.request("GET", "/v1/models", headers=dict(auth(KEY1), Origin="http://evil.example"))
    check(st == 403, "foreign Origin -> 403 (%s)" % st)
    st, _, j, _ = srv.post("/v1/chat/completions", CHAT, headers=dict(auth(KEY1), Origin="http://evil.example"))
    check(st == 403 and j["error"]["code"] == "origin_not_allowed", "foreign Origin POST -> 403")
    st, h, _ = srv.request("GET", "/v1/models", headers=dict(auth(KEY1), Origin="http://app.test"))
    check(st == 200 and h.get("access-control-allow-origin") == "http://app.test" and "Origin" in h.get("vary", ""),
          "listed Origin -> 200 with CORS headers (%s %s)" % (st, h))
    st, h, _ = srv.request("OPTIONS", "/v1/chat/completions",
                           headers={"Origin": "http://app.test", "Access-Control-Request-Method": "POST",
                                    "Access-Control-Request-Headers": "authorization, content-type"})
    check(st == 204 and h.get("access-control-allow-origin") == "http://app.test" and
          "authorization" in h.get("access-control-allow-headers", "").lower() and
          "POST" in h.get("access-control-allow-methods", ""), "CORS preflight answered without a key (%s %s)" %
          (st, h))
    st, h, _ = srv.request("OPTIONS", "/v1/chat/completions", headers={"Origin": "http://evil.example",
                                                                       "Access-Control-Request-Method": "POST"})
    check(st == 403 and "access-control-allow-origin" not in h, "preflight from a foreign Origin -> 403")
    st, _, _ = srv.request("GET", "/v1/models", headers=dict(auth(KEY1), Origin="http://127.0.0.1:%d" % port,
                                                             Host="127.0.0.1:%d" % port))
    check(st == 200, "same-origin request (web console) allowed")

    # ---- path bytes
    for path in ("/health%00", "/v1/sql%00.txt", "/v1/models%0a", "/health%7f"):
        out = raw(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400"), "%s -> 400 (%r)" % (path, out[:40]))
    out = raw(port, b"POST /v1/sql%00.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY1.encode() +
              b"\r\nContent-Type: application/sql\r\nContent-Length: 8\r\nConnection: close\r\n\r\nSELECT 1")
    check(out.startswith(b"HTTP/1.1 400"), "POST /v1/sql%%00.txt -> 400 (%r)" % out[:40])

    # ---- framing: duplicate Content-Length / CL + TE -> one 400, then close
    inner = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY1.encode() + b"\r\n\r\n"
    body1 = json.dumps(CHAT).encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY1.encode() +
           b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n" %
           (len(body1), len(body1) + len(inner)) + body1 + inner)
    out = raw(port, req)
    check(out.count(b"HTTP/1.1 ") == 1 and out.startswith(b"HTTP/1.1 400"),
          "duplicate Content-Length -> exactly one response, 400 (%r)" % out[:300])
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY1.encode() +
           b"\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"0\r\n\r\n" + inner)
    out = raw(port, req)
    check(out.count(b"HTTP/1.1 ") == 1 and out.startswith(b"HTTP/1.1 400"),
          "Content-Length + Transfer-Encoding -> exactly one response, 400 (%r)" % out[:300])

    for bad_cl in (b"12abc", b"-1", b"0x10", b""):
        req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY1.encode() +
               b"\r\nContent-Type: application/json\r\nContent-Length: " + bad_cl + b"\r\n\r\n" + body1 + inner)
        out = raw(port, req)
        # libmicrohttpd refuses these itself, before spoke sees the request (0.9.75 writes its 400
        # header block twice); what matters is that nothing after the bad header is run as a request
        check(out.startswith(b"HTTP/1.1 400") and b" 200 " not in out and b"Connection: close" in out and
              b'"object":"list"' not in out,
              "malformed Content-Length %r -> 400, connection closed, no smuggled request (%r)" % (bad_cl, out[:100]))

    # ---- keys never leak
    st, _, models = srv.request("GET", "/v1/models", headers=auth(KEY1))
    st, _, metrics = srv.request("GET", "/metrics", headers=auth(KEY1))
    check(b"spoke_http_rejected_total{reason=\"auth\"}" in metrics, "refusals counted by reason")
    time.sleep(0.3)
finally:
    rc = srv.stop()
check(rc == 0, "SIGTERM -> exit 0")
blob = srv.logtext().encode()
with open(srv.log.name, "rb") as f:
    blob = f.read()
for suffix in ("", "-wal", "-shm"):
    try:
        with open(srv.db + suffix, "rb") as f:
            blob += f.read()
    except OSError:
        pass
blob += models + metrics + "".join(srv.stdout_lines).encode()
for k in (KEY1, KEY2, KEY3):
    check(k.encode() not in blob, "key %s... absent from logs, history, metrics, /v1/models" % k[:7])
check(os.path.exists(srv.db), "history database written")
mode = stat.S_IMODE(os.stat(srv.db).st_mode)
check(mode == 0o600, "history database is 0600 (%o)" % mode)

# ---- no keys: /v1/models shows no absolute path; sql off by default; history dir 0700
home = tempfile.mkdtemp(prefix="spoke-auth-")
lazy = model_config(sql_endpoint=False) + """  - from: file:%s
    name: lazy
    params: {initial_load: false}
""" % MODEL
with open(os.path.join(home, "spoke.yaml"), "w") as f:
    f.write(lazy)
env = dict(os.environ, SPOKE_HOME=os.path.join(home, "newhome"), SPOKE_TEST_LOAD_DELAY_MS="300", SPOKE_LOG="warn")
env.pop("SPOKE_API_KEY", None)
logf = open(os.path.join(home, "log"), "w+")
p = subprocess.Popen([SPOKE, "serve", "-c", os.path.join(home, "spoke.yaml"), "--port", "0"], stdout=subprocess.PIPE,
                     stderr=logf, env=env, text=True)
try:
    port = None
    for _ in range(50):
        line = p.stdout.readline()
        if "listening on http://" in line:
            port = int(line.strip().rsplit(":", 1)[1])
            break
    check(port is not None, "server without keys starts")
    import http.client

    def get(path, method="GET", body=None, ctype="application/json"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request(method, path, body=body, headers={"Content-Type": ctype})
        r = c.getresponse()
        d = r.read()
        c.close()
        return r.status, d
    deadline = time.time() + 30
    while time.time() < deadline and get("/v1/ready")[0] != 200:
        time.sleep(0.05)
    st, body = get("/v1/models")
    data = json.loads(body)["data"]
    check(all(not m["from"].startswith("file:/") and os.path.dirname(MODEL) not in m["from"] for m in data) and
          data[0]["from"] == "file:stories260K.gguf", "/v1/models without absolute paths (%s)" %
          [m["from"] for m in data])
    st, _ = get("/v1/sql", "POST", b"SELECT 1", "application/sql")
    check(st == 404, "/v1/sql off by default (%s)" % st)
    hd = os.path.join(home, "newhome")
    check(os.path.isdir(hd) and stat.S_IMODE(os.stat(hd).st_mode) == 0o700,
          "history directory created 0700 (%o)" % stat.S_IMODE(os.stat(hd).st_mode))
    # a request that waits for a lazy load: logged once with the advice, counted
    for _ in range(2):
        st, _ = get("/v1/chat/completions", "POST", json.dumps(dict(CHAT, model="lazy")))
        check(st == 200, "lazy model answers (%s)" % st)
    st, body = get("/metrics")
    line = [l for l in body.decode().splitlines() if l.startswith('llm_load_waits_total{model="lazy"}')]
    check(line and float(line[0].split()[-1]) == 1, "llm_load_waits_total counts the one wait (%s)" % line)
finally:
    p.send_signal(signal.SIGTERM)
    p.wait(20)
logf.seek(0)
log = logf.read()
check(log.count("initial_load: true") == 1 and "waited" in log, "the wait is logged once with the advice (%r)" %
      log[-600:])
mode = stat.S_IMODE(os.stat(os.path.join(home, "newhome", "task_history.db")).st_mode)
check(mode == 0o600, "default history database is 0600 (%o)" % mode)

# ---- metrics_public: /metrics open for scrapers, everything else still needs the key
pub = Server(model_config(sql_endpoint=False, extra_server="metrics_public: true\n"), args=["--api-key", KEY2],
             env={"SPOKE_API_KEY": ""})
try:
    st, _, body = pub.request("GET", "/metrics")
    check(st == 200 and b"llm_requests_total" in body, "metrics_public: /metrics without a key (%s)" % st)
    st, _, _ = pub.request("GET", "/v1/models")
    check(st == 401, "metrics_public leaves /v1/models closed")
finally:
    check(pub.stop() == 0, "metrics_public server exits 0")

# ---- a non-loopback host needs keys (refused before binding anything)
r = subprocess.run([SPOKE, "serve", "--host", "192.0.2.1", "--port", "0", "--no-history"], capture_output=True,
                   text=True, timeout=30, env=dict(os.environ, SPOKE_API_KEY=""))
check(r.returncode == 2 and "--insecure-no-auth" in r.stderr and "api_keys" in r.stderr,
      "non-loopback --host without keys refused (%d %r)" % (r.returncode, r.stderr[-300:]))
r = subprocess.run([SPOKE, "serve", "--host", "192.0.2.1", "--port", "0", "--no-history", "--insecure-no-auth"],
                   capture_output=True, text=True, timeout=30, env=dict(os.environ, SPOKE_API_KEY=""))
check(r.returncode != 0 and "cannot listen on 192.0.2.1" in r.stderr and "WITHOUT authentication" in r.stderr,
      "--insecure-no-auth passes the check with a warning (then 192.0.2.1 cannot be bound) (%r)" % r.stderr[-400:])

# ---- a port clash is reported before any model load
blocker = socket.socket()
blocker.bind(("127.0.0.1", 0))
blocker.listen(1)
bport = blocker.getsockname()[1]
t0 = time.time()
r = subprocess.run([SPOKE, "serve", "--port", str(bport), "--no-history", "--model", MODEL], capture_output=True,
                   text=True, timeout=60, env=dict(os.environ, SPOKE_TEST_LOAD_DELAY_MS="4000"))
dt = time.time() - t0
blocker.close()
check(r.returncode != 0 and "cannot listen" in r.stderr and dt < 3.0,
      "port clash reported at once (rc %d in %.2f s: %r)" % (r.returncode, dt, r.stderr[-200:]))
summary("test_server_auth")
