#!/usr/bin/env python3
"""test_replicas.py - the reference multi-replica deployment, for real on
loopback: 3 `spoke serve` processes sharing one model cache directory
($SPOKE_HOME) pull the model from a (fake) Hub at the same time, behind
haproxy running deploy/haproxy/haproxy.cfg. Checks: the model file is
downloaded once for all three (the cache lock), all become ready, requests
through haproxy reach every replica, one replica killed -9 under load
leaves no failed request after one client retry, and a rolling restart
(SIGTERM one replica at a time, wait for it to drain and come back) under
load gives zero failed requests. Prints the numbers. Skips (77) without
haproxy."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hub"))
from fakehub import FakeHub  # noqa: E402
from spoke_server import MODEL, SPOKE, SRC, check, summary  # noqa: E402

SKIP = 77
HAPROXY = shutil.which("haproxy")
if not HAPROXY:
    print("SKIP: haproxy is not installed (tools/test-deps.sh installs it)")
    sys.exit(SKIP)
if not os.path.exists(MODEL):
    print("SKIP: %s missing" % MODEL)
    sys.exit(SKIP)

FILE = "stories260K.gguf"
N = 3
tmp = tempfile.mkdtemp(prefix="spoke-replicas-")
home = os.path.join(tmp, "home")  # the shared model cache
os.makedirs(home)
hub = FakeHub()
hub.add_repo("org/tiny", {FILE: ("file", MODEL)})
hub.start()
hub.add_fault("drip", rate=1500000)  # ~0.8 s download: the three pulls overlap


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


ports = [free_port() for _ in range(N)]
fe_port = free_port()
cfg = ("models:\n  - from: huggingface:huggingface.co/org/tiny@main\n    name: tiny\n    files:\n"
       "      - path: %s\n    params:\n      max_concurrency: 2\n      queue_size: 64\n      initial_load: true\n"
       "server:\n  limits:\n    shutdown_grace_ms: 10000\n" % FILE)
cfg_path = os.path.join(tmp, "spoke.yaml")
with open(cfg_path, "w") as f:
    f.write(cfg)
env = dict(os.environ, SPOKE_HOME=home, HF_ENDPOINT=hub.hub_url, HF_HUB_OFFLINE="0", SPOKE_LOG="warn",
           HF_TOKEN_PATH=os.path.join(tmp, "no-token"), HF_HOME=os.path.join(tmp, "hf"),
           SPOKE_HUB_BACKOFF_MS="10")
env.pop("HF_TOKEN", None)
env.pop("HUGGING_FACE_HUB_TOKEN", None)
procs = [None] * N
logs = []


def start(i):
    log = open(os.path.join(tmp, "replica%d.log" % i), "a")
    logs.append(log)
    procs[i] = subprocess.Popen([SPOKE, "serve", "-c", cfg_path, "--port", str(ports[i]), "--history",
                                 os.path.join(tmp, "history%d.db" % i)], stdout=log, stderr=log, env=env)


def get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return None, b""
    finally:
        c.close()


def wait_ready(i, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if get(ports[i], "/v1/ready")[0] == 200:
            return True
        if procs[i].poll() is not None:
            return False
        time.sleep(0.05)
    return False


def complete(port=None, timeout=30):
    """One completion through haproxy (or a replica); True when it succeeded."""
    c = http.client.HTTPConnection("127.0.0.1", port or fe_port, timeout=timeout)
    try:
        c.request("POST", "/v1/completions", json.dumps({"model": "tiny", "prompt": "Once upon a time",
                                                         "max_tokens": 8}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        return r.status == 200 and json.loads(body)["usage"]["completion_tokens"] > 0
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return False
    finally:
        c.close()


def served(i):
    st, body = get(ports[i], "/metrics")
    for line in body.decode().splitlines() if st == 200 else []:
        if line.startswith('llm_requests_total{model="tiny"} '):
            return int(float(line.split()[-1]))
    return 0


class Load:
    """Clients sending completions through haproxy until stopped."""

    def __init__(self, n, retry_once):
        self.retry_once = retry_once
        self.ok = self.failed = self.retried = 0
        self.mu = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop.is_set():
            ok = complete()
            retried = False
            if not ok and self.retry_once:
                retried = True
                ok = complete()
            with self.mu:
                self.ok += ok
                self.failed += not ok
                self.retried += retried

    def wait_ok(self, n, timeout=60):
        """until n more requests succeeded (slow builds, e.g. ASan, need longer)"""
        with self.mu:
            goal = self.ok + n
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.mu:
                if self.ok >= goal:
                    return
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


haproxy = None
t0 = time.time()
try:
    for i in range(N):
        start(i)
    ready = [wait_ready(i) for i in range(N)]
    check(all(ready), "all %d replicas ready (%s)" % (N, ready))
    downloads = [r for r in hub.body_requests() if FILE in r["path"]]
    print("downloads of the model file: %d for %d replicas (%.1f s to all ready)" % (len(downloads), N,
                                                                                   time.time() - t0))
    check(len(downloads) == 1, "one download for all replicas (got %d)" % len(downloads))

    with open(os.path.join(SRC, "deploy", "haproxy", "haproxy.cfg")) as f:
        hcfg = f.read()
    servers = "".join("    server r%d 127.0.0.1:%d check\n" % (i, p) for i, p in enumerate(ports))
    hcfg = hcfg.replace("@FRONTEND@", "127.0.0.1:%d" % fe_port).replace("@SERVERS@", servers)
    hpath = os.path.join(tmp, "haproxy.cfg")
    with open(hpath, "w") as f:
        f.write(hcfg)
    hlog = open(os.path.join(tmp, "haproxy.log"), "w")
    haproxy = subprocess.Popen([HAPROXY, "-f", hpath, "-db"], stdout=hlog, stderr=hlog)
    deadline = time.time() + 20
    while time.time() < deadline and get(fe_port, "/v1/ready")[0] != 200:
        time.sleep(0.05)
    time.sleep(1.0)  # every replica passes its first health checks (rise 2)

    # ---- requests spread
    before = [served(i) for i in range(N)]
    results = [complete() for _ in range(30)]
    after = [served(i) for i in range(N)]
    spread = [a - b for a, b in zip(after, before)]
    print("30 requests through haproxy: %d ok, per replica %s" % (sum(results), spread))
    check(all(results), "all 30 requests succeed")
    check(all(x > 0 for x in spread) and sum(spread) == 30, "requests reach every replica %s" % spread)

    # ---- kill -9 one replica under load; clients retry once
    load = Load(4, retry_once=True)
    load.wait_ok(10)
    procs[0].kill()
    procs[0].wait()
    time.sleep(1.5)  # haproxy notices (health checks every 300 ms) while requests keep coming
    load.wait_ok(30)
    load.finish()
    print("kill -9 of replica 0 under load: %d ok, %d failed after retry-once, %d retried" %
          (load.ok, load.failed, load.retried))
    check(load.ok >= 40 and load.failed == 0, "no failed request after retry-once when a replica dies")

    # ---- rolling restart: SIGTERM one at a time (replica 0 comes back first)
    start(0)
    check(wait_ready(0), "replica 0 back")
    time.sleep(1.0)
    load = Load(4, retry_once=False)
    load.wait_ok(5)
    t_roll = time.time()
    restarts_ok = True
    for i in range(N):
        procs[i].send_signal(signal.SIGTERM)
        try:
            rc = procs[i].wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        restarts_ok &= rc == 0
        start(i)
        restarts_ok &= wait_ready(i)
        time.sleep(1.0)  # haproxy sees it up again (rise 2 x 300 ms) before the next one goes
        load.wait_ok(5)  # and it serves under load before the next one goes
    load.finish()
    print("rolling restart of %d replicas (%.1f s): %d ok, %d failed (no client retry)" %
          (N, time.time() - t_roll, load.ok, load.failed))
    check(restarts_ok, "each replica drains, exits 0 on SIGTERM and comes back ready")
    check(load.ok >= 20 and load.failed == 0, "zero failed requests during the rolling restart")
    check(len([r for r in hub.body_requests() if FILE in r["path"]]) == 1, "restarts download nothing")
finally:
    if haproxy:
        haproxy.terminate()
        try:
            haproxy.wait(10)
        except subprocess.TimeoutExpired:
            haproxy.kill()
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait()
    hub.stop()
    for log in logs:
        log.close()
    print("total %.1f s" % (time.time() - t0))
    if os.environ.get("KEEP_TMP"):
        print("kept", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
summary("test_replicas")
