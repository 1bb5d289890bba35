#!/usr/bin/env python3
"""test_model_file_change.py - a served .gguf truncated (and rewritten) underneath
`spoke serve` under load. Weights are views into the mapping, so this used to
kill the server with SIGBUS. Now: the server stays up, /health answers, the
affected model goes to `error` with a message saying its file changed (503),
another model keeps serving throughout, and after the file is restored the next
request reloads it (and SIGHUP does too) with the same greedy output as before."""
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoke_server import MODEL, Server, check, summary  # noqa: E402

if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(0)

REQ = {"prompt": "Once upon a time", "max_tokens": 48, "temperature": 0}


def completion(srv, name, timeout=60):
    st, _, j, raw = srv.post("/v1/completions", dict(REQ, model=name), timeout=timeout)
    text = j["choices"][0]["text"] if st == 200 and j else None
    msg = j["error"]["message"] if j and "error" in j else raw.decode(errors="replace")[:300]
    return st, text, msg


def model_entry(srv, name):
    _, _, data = srv.request("GET", "/v1/models")
    for m in json.loads(data)["data"]:
        if m["id"] == name:
            return m
    return None


def wait_status(srv, name, status, timeout=60, poke=False):
    deadline = time.time() + timeout
    m = None
    while time.time() < deadline:
        if poke:
            completion(srv, name)
        m = model_entry(srv, name)
        if m and m["status"] == status:
            return m
        time.sleep(0.05)
    return m


tmp = tempfile.mkdtemp(prefix="spoke-fchg-")
a_path = os.path.join(tmp, "a.gguf")
b_path = os.path.join(tmp, "b.gguf")
shutil.copy(MODEL, a_path)
shutil.copy(MODEL, b_path)
with open(MODEL, "rb") as f:
    original = f.read()
cfg = ("models:\n"
       "  - from: file:%s\n    name: a\n    params: {max_concurrency: 2, initial_load: true}\n"
       "  - from: file:%s\n    name: b\n    params: {max_concurrency: 1, initial_load: true}\n"
       % (a_path, b_path))
srv = Server(cfg, env={"SPOKE_TEST_DECODE_DELAY_MS": "2", "SPOKE_LOG": "info"})
try:
    srv.wait_ready()
    st, before, msg = completion(srv, "a")
    check(st == 200 and before, "a serves before the change (%s %s)" % (st, msg))
    st, b_text, msg = completion(srv, "b")
    check(st == 200 and b_text == before, "b serves the same model (%s %s)" % (st, msg))

    # ---- load on both models, truncate a's file under it
    stop = threading.Event()
    results = {"a": [], "b": []}

    def load(name, streaming):
        while not stop.is_set():
            if streaming:
                st, _, raw = srv.request("POST", "/v1/completions", dict(REQ, model=name, stream=True))
                raw = raw.decode(errors="replace")
                if st == 200:
                    err = [b for b in raw.split("\n\n") if b.startswith('data: {"error"')]
                    if err:
                        st, raw = 503, json.loads(err[0][6:])["error"]["message"]
                    else:
                        check(raw.rstrip().endswith("data: [DONE]"), "a stream ends with [DONE]")
                else:
                    raw = json.loads(raw)["error"]["message"]
                results[name].append((st, raw))
            else:
                st, text, msg = completion(srv, name)
                results[name].append((st, msg if st != 200 else text))

    threads = [threading.Thread(target=load, args=("a", False)), threading.Thread(target=load, args=("a", True)),
               threading.Thread(target=load, args=("b", False))]
    for t in threads:
        t.start()
    time.sleep(0.5)
    os.truncate(a_path, 4096)
    time.sleep(1.5)
    check(srv.proc.poll() is None, "the server survived the truncation (exit %s)" % srv.proc.poll())
    stop.set()
    for t in threads:
        t.join(120)
    check(srv.proc.poll() is None, "the server is still up after the load (exit %s)" % srv.proc.poll())
    st, _, body = srv.request("GET", "/health")
    check(st == 200, "/health answers after the truncation (%s)" % st)
    st, _, msg = completion(srv, "a")
    check(st == 503 and "changed on disk" in msg and "a.gguf" in msg,
          "a answers 503 naming the changed file (%s: %s)" % (st, msg))
    m = model_entry(srv, "a")
    check(m and m["status"] == "error" and "changed on disk" in m.get("error", ""),
          "/v1/models shows a in error with the reason (%s)" % m)
    changed = [r for r in results["a"] if r[0] != 200]
    check(changed and all(s == 503 for s, _ in changed), "a's failed requests are 503s: %s" % changed[:3])
    check(any("changed on disk" in str(r[1]) for r in changed),
          "a's in-flight failures say the file changed: %s" % changed[:3])
    check(results["b"] and all(s == 200 and t == before for s, t in results["b"]),
          "b kept serving throughout (%d requests, failures %s)" %
          (len(results["b"]), [r for r in results["b"] if r[0] != 200][:3]))
    log = srv.logtext()
    print("# a: %d requests (%d failed), b: %d requests; fault absorbed: %s" %
          (len(results["a"]), len(changed), len(results["b"]), "truncated or overwritten" in log))

    # ---- restore the file: the next request reloads it
    with open(a_path, "wb") as f:  # same inode, rewritten
        f.write(original)
    m = wait_status(srv, "a", "ready", poke=True)
    check(m and m["status"] == "ready", "a reloads on the next request after the restore (%s)" % m)
    st, text, msg = completion(srv, "a")
    check(st == 200 and text == before, "a serves the same greedy text again (%s %s)" % (st, msg))

    # ---- truncated again, restored, then SIGHUP (no request needed)
    os.truncate(a_path, 100)
    st, _, msg = completion(srv, "a")
    check(st == 503 and "changed on disk" in msg, "second change noticed at request start (%s %s)" % (st, msg))
    st, _, msg = completion(srv, "a")
    check(st == 503 and ("reloading it failed" in msg or "loading" in msg),
          "a reload of the broken file fails cleanly (%s %s)" % (st, msg))
    with open(a_path, "wb") as f:
        f.write(original)
    srv.proc.send_signal(signal.SIGHUP)
    m = wait_status(srv, "a", "ready")
    check(m and m["status"] == "ready", "SIGHUP reloads a (%s)" % m)
    st, text, msg = completion(srv, "a")
    check(st == 200 and text == before, "a serves after SIGHUP (%s %s)" % (st, msg))
    st, text, msg = completion(srv, "b")
    check(st == 200 and text == before, "b untouched by SIGHUP (%s %s)" % (st, msg))
    check(srv.stop() == 0, "clean shutdown")
finally:
    srv.stop(sig=signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)
summary("test_model_file_change")
