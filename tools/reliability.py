#!/usr/bin/env python3
"""tools/reliability.py - `make reliability` (not part of `make test`): runs the
reliability campaigns of issue 14 s8 against the real binaries and prints one
table (case, runs, failures, p99 and worst latency, peak RSS, note).

Campaigns (each can be sized by an environment variable; REL_ONLY=a,b picks some):
  fuzz      every libFuzzer harness in FUZZ_BUILD for REL_FUZZ_RUNS executions
            each (default 10^7) on a copy of its seed corpus
  pulls     REL_PULLS (500) pulls of a REL_PULL_MB (64) MiB file from the fake Hub,
            each with a random fault; after each: the file under its final name
            is bit-exact or absent (never anything unverified), and a failed
            pull says why
  killpull  REL_KILLS (50) pulls killed with SIGKILL at a random moment; the final
            name is never partial, the next pull resumes and ends bit-exact
  killhist  REL_HISTORY_KILLS (20) servers killed with SIGKILL while they write
            the task history; PRAGMA integrity_check stays ok
  overload  10x the model's capacity (max_concurrency 1 + queue 2) in concurrent
            clients for REL_OVERLOAD_S (60) s: 429 latency and /health latency
  slow      REL_SLOW_SOCKETS (1000) slow (a header byte per second) and half-open
            sockets from 127.0.0.2 for REL_SLOW_S (20) s: /health latency from
            127.0.0.1 meanwhile
  soak      4 streaming clients for REL_SOAK_S (1800) s: RSS flat within 5 %
            after warm-up, no file-descriptor growth
  sweep     allocation-failure sweeps of every parser (BUILD/allocsweep), each
            parser in its own process so a crash is charged to it
Usage: tools/reliability.py [BUILD [FUZZ_BUILD]]. python3 stdlib only; servers
listen on 127.0.0.1 with OS-picked ports and everything started is stopped."""
import hashlib
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
FUZZ_BUILD = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build-fuzz"))
SPOKE = os.path.join(BUILD, "spoke")
MODEL = os.path.join(ROOT, "models", "stories260K.gguf")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "hub"))
import fakehub  # noqa: E402


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


ONLY = [x for x in os.environ.get("REL_ONLY", "").split(",") if x]
ROWS = []  # (case, runs, failures, p99_ms, worst_ms, peak_rss_kb, note)
TMP = tempfile.mkdtemp(prefix="spoke-rel-")
LIVE = []


def row(case, runs, failures, lat_ms=None, rss_kb=None, note=""):
    lat = sorted(lat_ms or [])
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None
    worst = lat[-1] if lat else None
    ROWS.append((case, runs, failures, p99, worst, rss_kb, note))
    print("  %-34s runs %-9s failures %-4s p99 %s worst %s rss %s %s" %
          (case, runs, failures, fmt_ms(p99), fmt_ms(worst), fmt_kb(rss_kb), note), flush=True)


def fmt_ms(v):
    if v is None:
        return "-"
    return "%.1f ms" % v if v < 10000 else "%.1f s" % (v / 1000)


def fmt_kb(v):
    return "-" if not v else "%.0f MiB" % (v / 1024.0)


def spawn(args, env=None, **kw):
    p = subprocess.Popen(args, env=env, **kw)
    LIVE.append(p)
    return p


def reap(p, sig=None, timeout=30):
    """Wait for p (after sending sig, if given) and return (rc, peak RSS in KiB):
    VmHWM sampled every 10 ms while it runs (wait4's ru_maxrss would include the
    runner's own image, which the child inherits at fork)."""
    rss = vm_hwm_kb(p.pid) or 0
    if sig is not None and p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while True:
        rss = max(rss, vm_hwm_kb(p.pid) or 0)
        try:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:
            p.poll()
            break
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.time() > deadline:
            p.kill()
            deadline = time.time() + 10
        time.sleep(0.01)
    if p in LIVE:
        LIVE.remove(p)
    return p.returncode, rss or None


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def vm_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def n_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


# ---- fuzzers ------------------------------------------------------------------------

def c_fuzz():
    runs = env_int("REL_FUZZ_RUNS", 10 ** 7)
    harnesses = sorted(f for f in os.listdir(FUZZ_BUILD) if f.startswith("fuzz_")) \
        if os.path.isdir(FUZZ_BUILD) else []
    if not harnesses:
        row("fuzz (no harnesses built)", 0, 1, note="run `make fuzz` first")
        return
    for h in harnesses:
        work = os.path.join(TMP, "fuzz-" + h)
        corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", h)
        shutil.copytree(corpus, work) if os.path.isdir(corpus) else os.makedirs(work)
        args = [os.path.join(FUZZ_BUILD, h), "-runs=%d" % runs, "-print_final_stats=1",
                "-rss_limit_mb=4096", "-max_len=65536", "-timeout=10", "-report_slow_units=1",
                "-artifact_prefix=%s/" % work, work]
        d = os.path.join(ROOT, "tests", "fuzz", h + ".dict")
        if os.path.exists(d):
            args.insert(1, "-dict=" + d)
        env = dict(os.environ, SPOKE_SHARED=os.path.join(os.path.dirname(ROOT), "shared"))
        p = spawn(args, env=env, stdout=subprocess.DEVNULL, stderr=open(work + ".log", "w"))
        rc, rss = reap(p, timeout=7 * 24 * 3600)
        log = open(work + ".log", errors="replace").read()
        execs, slow, peak = runs, None, rss
        for line in log.splitlines():
            if line.startswith("stat::number_executed_units:"):
                execs = int(line.split(":")[-1])
            if line.startswith("stat::peak_rss_mb:"):
                peak = int(line.split(":")[-1]) * 1024
            if "Slowest unit:" in line:
                slow = float(line.split("Slowest unit:")[1].split()[0]) * 1000
        row("fuzz " + h[5:], execs, 0 if rc == 0 else 1, [slow] if slow else None, peak,
            "" if slow else "no unit slower than 1 s")
        if rc != 0:
            print(log[-3000:])


# ---- pulls ----------------------------------------------------------------------------

def make_big(mb):
    path = os.path.join(TMP, "big.gguf")
    rnd = random.Random(7)
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(rnd.randbytes(1 << 20))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return path, h.hexdigest()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def pull_env(fh, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "SPOKE_HUB"))}
    env.update(SPOKE_HOME=home, HOME=home, HF_ENDPOINT=fh.hub_url, SPOKE_HUB_BACKOFF_MS="5",
               SPOKE_HUB_LOW_SPEED_TIME="2", SPOKE_LOG="warn", no_proxy="*", NO_PROXY="*")
    return env


FAULTS = [None, ("reset", {}), ("truncate", {}), ("corrupt", {}), ("corrupt", {"count": 2}),
          ("status", {"status": 503, "count": 3}), ("status", {"status": 429, "retry_after": "0"}),
          ("norange", {}), ("short200", {"bytes": 4096, "count": 3}), ("status", {"status": 404}),
          ("reset", {"count": 4})]


def c_pulls():
    n = env_int("REL_PULLS", 500)
    big, want = make_big(env_int("REL_PULL_MB", 64))
    fh = fakehub.FakeHub()
    fh.add_repo("org/big", {"big.gguf": ("file", big)})
    fh.start()
    rnd = random.Random(11)
    fails, lat, peak, counts = 0, [], 0, {"ok": 0, "failed cleanly": 0}
    try:
        for i in range(n):
            home = os.path.join(TMP, "pull%d" % (i % 2))
            shutil.rmtree(home, ignore_errors=True)
            os.makedirs(home)
            fh.clear()
            # a fault on the first request, sometimes one more later (a resumed request)
            for _ in range(rnd.choice([1, 1, 2])):
                f = rnd.choice(FAULTS)
                if f:
                    kw = dict(f[1])
                    fh.add_fault(f[0], count=kw.pop("count", 1), path="big.gguf", **kw)
            final = os.path.join(home, "models", "big", "main", "big.gguf")
            seen_bad = []
            stop = threading.Event()

            def watch():
                # nothing unverified under the final name, ever: when it appears it is whole
                while not stop.is_set():
                    if os.path.exists(final) and os.path.getsize(final) != os.path.getsize(big):
                        seen_bad.append(os.path.getsize(final))
                    time.sleep(0.005)
            w = threading.Thread(target=watch)
            w.start()
            t0 = time.time()
            errf = tempfile.TemporaryFile(dir=TMP)
            p = spawn([SPOKE, "pull", "org/big"], env=pull_env(fh, home), stdout=subprocess.DEVNULL,
                      stderr=errf)
            rc, rss = reap(p, timeout=600)
            lat.append((time.time() - t0) * 1000)
            errf.seek(0)
            err = errf.read().decode(errors="replace")
            stop.set()
            w.join()
            peak = max(peak, rss or 0)
            ok = True
            if rc == 0:
                ok = os.path.exists(final) and sha_file(final) == want
                counts["ok"] += 1
            else:
                ok = not os.path.exists(final) and "error:" in err
                counts["failed cleanly"] += 1
            if seen_bad:
                ok = False
            if not ok:
                fails += 1
                print("    pull %d: rc %d, bad final file (%s): %s" % (i, rc, seen_bad[:3], err[-300:]))
    finally:
        fh.stop()
    row("faulted pulls of %d MiB" % env_int("REL_PULL_MB", 64), n, fails, lat, peak,
        "%d ok bit-exact, %d refused cleanly" % (counts["ok"], counts["failed cleanly"]))


def c_killpull():
    n = env_int("REL_KILLS", 50)
    big = os.path.join(TMP, "big.gguf")
    if not os.path.exists(big):
        make_big(env_int("REL_PULL_MB", 64))
    want = sha_file(big)
    fh = fakehub.FakeHub()
    fh.add_repo("org/big", {"big.gguf": ("file", big)})
    fh.start()
    rnd = random.Random(13)
    home = os.path.join(TMP, "killpull")
    os.makedirs(home, exist_ok=True)
    final = os.path.join(home, "models", "big", "main", "big.gguf")
    fails, lat, peak, done = 0, [], 0, 0
    try:
        for i in range(n):
            if os.path.exists(final):
                shutil.rmtree(os.path.join(home, "models"), ignore_errors=True)
            fh.clear()
            fh.add_fault("drip", path="big.gguf", rate=rnd.choice([8, 32, 128]) << 20)
            p = spawn([SPOKE, "pull", "org/big"], env=pull_env(fh, home), stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0.05, 1.0))
            rc, rss = reap(p, sig=signal.SIGKILL)
            peak = max(peak, rss or 0)
            if os.path.exists(final):
                done += 1
                if sha_file(final) != want:
                    fails += 1
                    print("    kill %d: a partial file under the final name" % i)
        # the survivor resumes and ends bit-exact
        fh.clear()
        t0 = time.time()
        errf = tempfile.TemporaryFile(dir=TMP)
        p = spawn([SPOKE, "pull", "org/big"], env=pull_env(fh, home), stdout=subprocess.DEVNULL,
                  stderr=errf)
        rc, rss = reap(p, timeout=600)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        lat.append((time.time() - t0) * 1000)
        if rc != 0 or sha_file(final) != want:
            fails += 1
            print("    final pull after the kills failed: %s" % err[-300:])
    finally:
        fh.stop()
    row("kill -9 during pulls", n, fails, lat, peak, "%d finished before the kill; resume ok" % done)


# ---- servers --------------------------------------------------------------------------

class Srv:
    def __init__(self, params, server=None, history=True, extra_env=None):
        self.dir = tempfile.mkdtemp(dir=TMP)
        p = {"max_concurrency": 1}
        p.update(params or {})
        lines = ["models:", "  - from: file:%s" % MODEL, "    name: m", "    params:"]
        lines += ["      %s: %s" % (k, v) for k, v in p.items()]
        if server:
            lines += ["server:", "  limits:"] + ["    %s: %s" % (k, v) for k, v in server.items()]
        cfg = os.path.join(self.dir, "spoke.yaml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.db = os.path.join(self.dir, "history.db")
        env = dict(os.environ, SPOKE_HOME=self.dir, HF_HUB_OFFLINE="1", SPOKE_LOG="error")
        env.update(extra_env or {})
        args = [SPOKE, "serve", "-c", cfg, "--port", "0"] + (["--history", self.db] if history else
                                                             ["--no-history"])
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.p = spawn(args, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.port is None:
            line = self.p.stdout.readline()
            if not line:
                break
            if "listening on http://" in line:
                self.port = int(line.strip().rsplit(":", 1)[1])
        if self.port is None:
            reap(self.p, sig=signal.SIGKILL)
            raise RuntimeError("server did not start: " + open(self.log.name).read()[-2000:])
        threading.Thread(target=lambda: [None for _ in self.p.stdout], daemon=True).start()
        while time.time() < deadline:
            try:
                if self.get("/v1/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)

    def get(self, path, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post(self, obj, timeout=120, path="/v1/completions"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self, sig=signal.SIGTERM):
        return reap(self.p, sig=sig)


def c_killhist():
    n = env_int("REL_HISTORY_KILLS", 20)
    rnd = random.Random(17)
    fails, lat, peak = 0, [], 0
    for i in range(n):
        t0 = time.time()
        s = Srv({"max_concurrency": 2, "queue_size": 8})
        lat.append((time.time() - t0) * 1000)
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    s.post({"model": "m", "prompt": "Once", "max_tokens": 4}, timeout=5)
                except OSError:
                    return
        ts = [threading.Thread(target=load) for _ in range(3)]
        for t in ts:
            t.start()
        time.sleep(rnd.uniform(0.3, 1.5))
        rc, rss = s.stop(sig=signal.SIGKILL)
        peak = max(peak, rss or 0)
        stop.set()
        for t in ts:
            t.join()
        try:
            con = sqlite3.connect(s.db)
            ok = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = con.execute("SELECT count(*) FROM task_history").fetchone()[0]
            con.close()
        except sqlite3.Error as e:
            ok, rows = False, str(e)
        if not ok:
            fails += 1
            print("    kill %d: history database damaged (%s)" % (i, rows))
    row("kill -9 during history writes", n, fails, lat, peak, "integrity_check ok after each; latency = start")


def health_prober(s, stop, out, period=0.05):
    while not stop.is_set():
        t0 = time.time()
        try:
            st, _ = s.get("/health", timeout=10)
            out.append(((time.time() - t0) * 1000, st == 200, st))
        except OSError as e:
            out.append(((time.time() - t0) * 1000, False, type(e).__name__))
        time.sleep(period)


def failed_kinds(health):
    kinds = {}
    for h in health:
        if not h[1]:
            kinds[h[2]] = kinds.get(h[2], 0) + 1
    return ", ".join("%s x %d" % (k, v) for k, v in sorted(kinds.items(), key=str)) if kinds else ""


def c_overload():
    secs = env_int("REL_OVERLOAD_S", 60)
    s = Srv({"max_concurrency": 1, "queue_size": 2})
    clients = 10 * 3
    stop = threading.Event()
    lat429, other, ok200, health = [], [], [0], []

    def client():
        while not stop.is_set():
            t0 = time.time()
            try:
                st, _ = s.post({"model": "m", "prompt": "Once upon a time", "max_tokens": 32}, timeout=60)
            except OSError:
                st = -1
            dt = (time.time() - t0) * 1000
            if st == 429:
                lat429.append(dt)
            elif st == 200:
                ok200[0] += 1
            else:
                other.append(st)
    ts = [threading.Thread(target=client) for _ in range(clients)]
    hp = threading.Thread(target=health_prober, args=(s, stop, health))
    for t in ts + [hp]:
        t.start()
    time.sleep(secs)
    stop.set()
    for t in ts + [hp]:
        t.join()
    rc, rss = s.stop()
    row("overload 10x for %d s: 429s" % secs, len(lat429) + ok200[0] + len(other), len(other), lat429, rss,
        "%d x 429, %d x 200, other %s" % (len(lat429), ok200[0], sorted(set(other))[:5]))
    row("overload 10x: /health", len(health), sum(1 for h in health if not h[1]), [h[0] for h in health], rss,
        failed_kinds(health))


def c_slow():
    n = env_int("REL_SLOW_SOCKETS", 1000)
    secs = env_int("REL_SLOW_S", 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    s = Srv({"max_concurrency": 1})
    socks, refused = [], 0
    for i in range(n):
        try:
            # from another loopback address: the server's per-client cap is meant to stop
            # them, and /health is probed from 127.0.0.1 (another client) meanwhile
            k = socket.create_connection(("127.0.0.1", s.port), timeout=5, source_address=("127.0.0.2", 0))
            k.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            if i % 2:
                k.shutdown(socket.SHUT_WR)  # half-open: nothing more will come
            socks.append(k)
        except OSError:
            refused += 1
    stop = threading.Event()
    health = []
    hp = threading.Thread(target=health_prober, args=(s, stop, health, 0.1))
    hp.start()
    t_end = time.time() + secs
    while time.time() < t_end:
        for k in socks[::2]:
            try:
                k.send(b"X")  # one header byte per second
            except OSError:
                pass
        time.sleep(1)
    stop.set()
    hp.join()
    for k in socks:
        k.close()
    rc, rss = s.stop()
    row("%d slow/half-open sockets: /health" % n, len(health), sum(1 for h in health if not h[1]),
        [h[0] for h in health], rss, "%d connects refused; %s" % (refused, failed_kinds(health)))


def c_soak():
    secs = env_int("REL_SOAK_S", 1800)
    s = Srv({"max_concurrency": 4, "queue_size": 8})
    stop = threading.Event()
    lat, bad = [], []

    def client():
        while not stop.is_set():
            t0 = time.time()
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            try:
                c.request("POST", "/v1/completions", body=json.dumps(
                    {"model": "m", "prompt": "Once upon a time", "max_tokens": 64, "stream": True}),
                    headers={"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                if r.status != 200 or not body.rstrip().endswith(b"data: [DONE]"):
                    bad.append(r.status)
            except OSError as e:
                bad.append(str(e))
            finally:
                c.close()
            lat.append((time.time() - t0) * 1000)
    ts = [threading.Thread(target=client) for _ in range(4)]
    for t in ts:
        t.start()
    samples = []
    t_end = time.time() + secs
    while time.time() < t_end:
        samples.append((time.time(), vm_rss_kb(s.p.pid), n_fds(s.p.pid)))
        time.sleep(min(5.0, max(0.5, secs / 200.0)))
    stop.set()
    for t in ts:
        t.join()
    samples.append((time.time(), vm_rss_kb(s.p.pid), n_fds(s.p.pid)))
    rc, rss = s.stop()
    warm = samples[len(samples) // 5:]  # the first fifth is warm-up
    k = max(1, len(warm) // 5)
    first = sum(r for _, r, _ in warm[:k]) / k
    last = sum(r for _, r, _ in warm[-k:]) / k
    growth = (last - first) / first * 100 if first else 0
    fd0, fd1 = warm[0][2], warm[-1][2]
    fails = len(bad) + (1 if abs(growth) > 5 else 0) + (1 if fd1 > fd0 else 0)
    row("soak 4 streams %d s" % secs, len(lat), fails, lat, rss,
        "RSS %.1f -> %.1f MiB (%+.1f %%), fds %d -> %d" % (first / 1024, last / 1024, growth, fd0, fd1))


def c_sweep():
    sweep = os.path.join(BUILD, "allocsweep")
    if not os.path.exists(sweep):
        row("alloc sweeps (allocsweep not built)", 0, 1)
        return
    maxr = str(env_int("REL_SWEEP_MAX", 100000))
    for name, json_mode in [("gguf+vocab", None), ("request_json", None), ("request_json", "plain-json"),
                            ("hub_json+meta", None), ("config_yaml", None), ("model_id", None),
                            ("tokenizer", None)]:
        args = [sweep, ROOT, maxr, name] + ([json_mode] if json_mode else [])
        errf = tempfile.TemporaryFile(dir=TMP)
        outf = tempfile.TemporaryFile(dir=TMP)
        p = spawn(args, env=dict(os.environ, SPOKE_LOG="off"), stdout=outf, stderr=errf)
        rc, rss = reap(p, timeout=24 * 3600)
        errf.seek(0)
        err = errf.read()
        outf.seek(0)
        out = outf.read()
        label = "alloc sweep " + name + (" (jansson on malloc)" if json_mode else "")
        line = [x for x in out.decode().splitlines() if x.startswith("SWEEP ")]
        if line:
            _, _, inputs, runs, failures, worst = line[0].split()
            row(label, int(runs), int(failures), [float(worst)], rss, "%s seed inputs" % inputs)
        else:
            sig = -rc if rc and rc < 0 else None
            why = err.decode(errors="replace").strip().splitlines()
            row(label, "?", 1, None, rss, "crashed (%s): %s%s" % (
                "signal %d" % sig if sig else "exit %d" % rc, why[0][:90] if why else "",
                "; json_loadb itself crashes when one of its allocations fails (libjansson, "
                "reproduced without spoke)" if name == "request_json" and not json_mode else ""))


CAMPAIGNS = [("sweep", c_sweep), ("fuzz", c_fuzz), ("pulls", c_pulls), ("killpull", c_killpull),
             ("killhist", c_killhist), ("overload", c_overload), ("slow", c_slow), ("soak", c_soak)]


def main():
    if not os.path.exists(SPOKE):
        print("reliability: %s not built (make build)" % SPOKE)
        return 2
    t0 = time.time()
    try:
        for name, fn in CAMPAIGNS:
            if ONLY and name not in ONLY:
                continue
            print("== %s" % name, flush=True)
            try:
                fn()
            except Exception as e:  # a broken campaign is a failure row, the others still run
                import traceback
                traceback.print_exc()
                row(name + " (campaign error)", 0, 1, note=str(e)[:80])
    finally:
        for p in list(LIVE):
            reap(p, sig=signal.SIGKILL)
        shutil.rmtree(TMP, ignore_errors=True)
    print("\nreliability: %.0f s" % (time.time() - t0))
    hdr = ("case", "runs", "failures", "p99", "worst", "peak RSS", "note")
    table = [hdr] + [(c, str(r), str(f), fmt_ms(p), fmt_ms(w), fmt_kb(k), n) for c, r, f, p, w, k, n in ROWS]
    widths = [max(len(t[i]) for t in table) for i in range(6)]
    for t in table:
        print("| " + " | ".join(t[i].ljust(widths[i]) for i in range(6)) + " | " + t[6])
    failed = sum(1 for r in ROWS if r[2])
    print("reliability: %d case(s), %d with failures" % (len(ROWS), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
