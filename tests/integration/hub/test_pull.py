#!/usr/bin/env python3
"""test_pull.py - end-to-end tests of `spoke pull / ls / rm` against the fake
Hub (fakehub.py) on 127.0.0.1. Drives the real binary ($SPOKE_BIN) with
SPOKE_HOME and HOME in temporary directories and HF_ENDPOINT at the fake hub.
python3 stdlib only; everything started here is stopped here."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakehub  # noqa: E402

SPOKE = os.environ.get("SPOKE_BIN") or os.path.join(os.getcwd(), "spoke")
ASAN = bool(os.environ.get("SPOKE_ASAN"))
GOOD_TOKEN = "hf_goodTOKEN123"

rnd = __import__("random").Random(1234)


def blob(n):
    return bytes(rnd.getrandbits(8) for _ in range(n)) if n < 4096 else os.urandom(n)


FILES = {
    "model": {"model-Q4_K_M.gguf": blob(256 * 1024), "model-Q8_0.gguf": blob(64 * 1024),
              "model-Q4_0.gguf": blob(32 * 1024), "config.json": b'{"a": 1}\n',
              "README.md": b"# model\n"},
    "split": {"big-Q4_K_M-00001-of-00003.gguf": blob(40000),
              "big-Q4_K_M-00002-of-00003.gguf": blob(40000),
              "big-Q4_K_M-00003-of-00003.gguf": blob(1234),
              "big-Q8_0.gguf": blob(1000)},
    "gated": {"g-Q4_0.gguf": blob(20000)},
    "faulty": {"f.gguf": blob(512 * 1024), "small.json": b"x" * 3000},
    "conc": {"c-Q4_K_M.gguf": blob(256 * 1024)},
    "huge": {"h-Q4_0.gguf": ("huge", 1 << 60)},
}


class Ctx:
    def __init__(self, fh, root):
        self.fh = fh
        self.root = root
        self.n = 0

    def home(self):
        self.n += 1
        d = os.path.join(self.root, "case%d" % self.n)
        os.makedirs(os.path.join(d, "home"))
        return d

    def env(self, home, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "HUGGING", "SPOKE_HUB")) and
               k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.update(SPOKE_HOME=home, HOME=os.path.join(home, "home"), HF_ENDPOINT=self.fh.hub_url,
                   SPOKE_HUB_BACKOFF_MS="10", SPOKE_HUB_LOW_SPEED_TIME="1",
                   SPOKE_HUB_LOW_SPEED_LIMIT="1000", no_proxy="*", NO_PROXY="*", SPOKE_LOG="info")
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def run(self, args, home, timeout=60, **extra):
        return subprocess.run([SPOKE] + args, env=self.env(home, **extra), capture_output=True,
                              text=True, timeout=timeout)


def fpath(home, name, rev, f):
    return os.path.join(home, "models", name, rev, f)


def check(cond, msg=""):
    if not cond:
        raise AssertionError(msg)


def assert_exact(path, content):
    check(os.path.isfile(path), "missing %s" % path)
    with open(path, "rb") as f:
        data = f.read()
    check(data == content, "content differs for %s (%d vs %d bytes)" % (path, len(data), len(content)))


def assert_no_scratch(home):
    for dp, _, fns in os.walk(os.path.join(home, "models")):
        for fn in fns:
            check(not fn.endswith(".lock"), "stray lock %s" % os.path.join(dp, fn))


def rc_ok(r):
    check(r.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, r.stderr))


# ---- cases -------------------------------------------------------------------------

def t_basic_and_drift(c):
    h = c.home()
    r = c.run(["pull", "org/model"], h)
    rc_ok(r)
    assert_exact(fpath(h, "model", "main", "model-Q4_K_M.gguf"), FILES["model"]["model-Q4_K_M.gguf"])
    commit = c.fh.repos["org/model"].commit
    check("drift" in r.stderr and commit in r.stderr, "no drift warning naming the commit: " + r.stderr)
    meta = json.load(open(fpath(h, "model", "main", ".spoke-meta.json")))
    check(meta["commit"] == commit and meta["files"][0]["size"] == 256 * 1024, str(meta))
    check(meta["files"][0]["sha256"] == hashlib.sha256(FILES["model"]["model-Q4_K_M.gguf"]).hexdigest())
    check(not any(e["auth"] for e in c.fh.log), "an Authorization header was sent without a token")
    assert_no_scratch(h)
    # a second pull makes no request at all
    c.fh.clear()
    r = c.run(["pull", "org/model"], h)
    rc_ok(r)
    check(c.fh.body_requests() == [], "second pull made a body request")
    check(c.fh.log == [], "second pull made requests: %s" % c.fh.log)
    # --json output
    r = c.run(["pull", "org/model", "--json"], h)
    rc_ok(r)
    last = json.loads(r.stdout.strip().splitlines()[-1])
    check(last["status"] == "ok" and last["path"].endswith("model-Q4_K_M.gguf"), r.stdout)
    # ls / ls --json / rm
    r = c.run(["ls", "--json"], h)
    rc_ok(r)
    ls = json.loads(r.stdout)
    check(len(ls) == 1 and ls[0]["name"] == "model" and ls[0]["commit"] == commit, r.stdout)
    r = c.run(["ls"], h)
    rc_ok(r)
    check("model" in r.stdout and commit[:12] in r.stdout, r.stdout)
    r = c.run(["rm", "model@main"], h)
    rc_ok(r)
    check(not os.path.exists(os.path.join(h, "models", "model")), "rm left the model")
    r = c.run(["rm", "model"], h)
    check(r.returncode == 3, "rm of a missing model: %d" % r.returncode)


def t_quant_file_pinned(c):
    h = c.home()
    rc_ok(c.run(["pull", "org/model", "--quant", "Q8_0"], h))
    assert_exact(fpath(h, "model", "main", "model-Q8_0.gguf"), FILES["model"]["model-Q8_0.gguf"])
    check(not os.path.exists(fpath(h, "model", "main", "model-Q4_K_M.gguf")))
    commit = c.fh.repos["org/model"].commit
    r = c.run(["pull", "hf:org/model@" + commit, "--file", "config.json", "--name", "mine"], h)
    rc_ok(r)
    check("drift" not in r.stderr, "pinned pull warned about drift")
    assert_exact(fpath(h, "mine", commit, "config.json"), FILES["model"]["config.json"])
    r = c.run(["pull", "org/model", "--quant", "Q5_K_M"], h)
    check(r.returncode == 3 and "Q5_K_M" in r.stderr, r.stderr)
    # another repo under a name already in use is refused, not served from the cache
    r = c.run(["pull", "org/split", "--name", "model"], h)
    check(r.returncode == 2 and "already holds org/model" in r.stderr, r.stderr)


def t_split(c):
    h = c.home()
    r = c.run(["pull", "org/split", "--json"], h)
    rc_ok(r)
    for f, data in FILES["split"].items():
        if "-of-" in f:
            assert_exact(fpath(h, "split", "main", f), data)
    check(json.loads(r.stdout.strip().splitlines()[-1])["path"].endswith("00001-of-00003.gguf"))
    check(not os.path.exists(fpath(h, "split", "main", "big-Q8_0.gguf")))
    # naming the second shard brings the whole set too
    h2 = c.home()
    rc_ok(c.run(["pull", "org/split", "--file", "big-Q4_K_M-00002-of-00003.gguf"], h2))
    for f, data in FILES["split"].items():
        if "-of-" in f:
            assert_exact(fpath(h2, "split", "main", f), data)


def fault_case(c, kind, expect_ok=True, count=1, path="f.gguf", want_range=False, extra=None,
               **kw):
    h = c.home()
    c.fh.clear()
    c.fh.add_fault(kind, count=count, path=path, **kw)
    t0 = time.time()
    r = c.run(["pull", "org/faulty", "--file", path], h, **(extra or {}))
    dt = time.time() - t0
    final = fpath(h, "faulty", "main", path)
    if expect_ok:
        rc_ok(r)
        assert_exact(final, FILES["faulty"][path])
        if want_range:
            check(any(e["range"] for e in c.fh.body_requests()), "no Range request after %s" % kind)
    else:
        check(r.returncode != 0, "fault %s: expected failure" % kind)
        check(not os.path.exists(final), "a file appeared under the final name after %s" % kind)
        check("error:" in r.stderr, r.stderr)
    assert_no_scratch(h)
    return r, dt


def t_fault_status(c):
    r, dt = fault_case(c, "status", status=503, count=2, retry_after="0")
    r, dt = fault_case(c, "status", status=429, count=1, retry_after="1")
    check(dt >= 0.9, "Retry-After: 1 not honoured (%.2fs)" % dt)
    r, dt = fault_case(c, "status", status=500, count=1, path="small.json")
    # endless 503: bounded attempts, clear error, exit 5
    r, _ = fault_case(c, "status", expect_ok=False, status=503, count=1000,
                      extra={"SPOKE_HUB_ATTEMPTS": "3"})
    check(r.returncode == 5 and "503" in r.stderr, r.stderr)
    # Retry-After capped
    t0 = time.time()
    r, dt = fault_case(c, "status", status=503, count=1, retry_after="3600",
                       extra={"SPOKE_HUB_RETRY_AFTER_CAP_MS": "200"})
    check(dt < 20, "Retry-After not capped")
    # the revision API itself busy
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("api_status", count=2, path="org/faulty", status=503, retry_after="0")
    rc_ok(c.run(["pull", "org/faulty", "--file", "small.json"], h))


def t_fault_body(c):
    fault_case(c, "reset", want_range=True)
    fault_case(c, "truncate", want_range=True)
    fault_case(c, "corrupt")
    # a reset, then a server that ignores Range (200 with everything): restart at 0
    c.fh.clear()
    h = c.home()
    c.fh.add_fault("reset", path="f.gguf")
    c.fh.add_fault("norange", path="f.gguf")
    rc_ok(c.run(["pull", "org/faulty", "--file", "f.gguf"], h))
    assert_exact(fpath(h, "faulty", "main", "f.gguf"), FILES["faulty"]["f.gguf"])
    check(any(e["range"] for e in c.fh.requests(origin="cdn")), "no Range request was tried")
    r, _ = fault_case(c, "corrupt", expect_ok=False, count=100)
    check(r.returncode == 6 and "verification" in r.stderr, r.stderr)
    r, dt = fault_case(c, "drip", rate=300, want_range=True)
    fault_case(c, "reset", path="small.json")
    r, _ = fault_case(c, "loop", expect_ok=False)
    check(r.returncode == 5 and "redirect" in r.stderr, r.stderr)


def cdn_gets(c):
    return [e for e in c.fh.requests(origin="cdn", method="GET")]


def t_bounded_retries(c):
    # a CDN that answers every Range request with 200 and a short body: each
    # answer "progresses" a few bytes, which used to reset the retry budget
    # (~400 requests, then a misleading verification error)
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("reset", path="f.gguf")
    c.fh.add_fault("short200", count=100000, path="f.gguf", bytes=1000)
    r = c.run(["pull", "org/faulty", "--file", "f.gguf"], h, SPOKE_HUB_ATTEMPTS="4")
    n = len(cdn_gets(c))
    check(r.returncode == 5, "exit %d: %s" % (r.returncode, r.stderr[-600:]))
    check(n <= 8, "%d CDN requests for 4 attempts without progress" % n)
    check("gave up" in r.stderr and "Range request" in r.stderr and "with 200" in r.stderr and
          "in a row" in r.stderr, r.stderr[-800:])
    check(not os.path.exists(fpath(h, "faulty", "main", "f.gguf")))
    assert_no_scratch(h)
    # the total number of attempts is bounded even when every attempt is allowed to fail
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("status", count=100000, path="f.gguf", status=503)
    r = c.run(["pull", "org/faulty", "--file", "f.gguf"], h, SPOKE_HUB_ATTEMPTS="100",
              SPOKE_HUB_TOTAL_ATTEMPTS="3")
    check(r.returncode == 5 and "attempts in all" in r.stderr and "503" in r.stderr, r.stderr[-600:])
    check(len(cdn_gets(c)) == 3, "%d CDN requests for a total of 3" % len(cdn_gets(c)))
    # so is the time without progress
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("status", count=100000, path="f.gguf", status=503)
    t0 = time.time()
    r = c.run(["pull", "org/faulty", "--file", "f.gguf"], h, SPOKE_HUB_ATTEMPTS="100",
              SPOKE_HUB_STALL_MS="600", SPOKE_HUB_BACKOFF_MS="50")
    check(r.returncode == 5 and "time without progress" in r.stderr, r.stderr[-600:])
    check(time.time() - t0 < 30, "the stall bound did not stop the pull")


def t_failed_first_pull_leaves_nothing(c):
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("status", count=100000, path="f.gguf", status=503)
    r = c.run(["pull", "org/faulty", "--file", "f.gguf"], h, SPOKE_HUB_ATTEMPTS="2")
    check(r.returncode == 5, r.stderr)
    left = [os.path.join(dp, x) for dp, ds, fs in os.walk(os.path.join(h, "models")) for x in ds + fs]
    check(left == [], "a failed first pull left %s" % left)
    r = c.run(["ls", "--json"], h)
    rc_ok(r)
    check(json.loads(r.stdout) == [], "ls lists a failed pull: " + r.stdout)
    # an older spoke's leftovers: a revision directory with only a 0-byte .incomplete
    d = os.path.join(h, "models", "old", "main")
    os.makedirs(d)
    open(os.path.join(d, "x.gguf.incomplete"), "wb").close()
    os.makedirs(os.path.join(h, "models", "empty", "main"))
    r = c.run(["ls"], h)
    check("no models" in r.stdout, "ls lists empty entries: " + r.stdout)
    check(json.loads(c.run(["ls", "--json"], h).stdout) == [], "ls --json lists empty entries")
    # a pull that got half way: listed, marked partial, then resumed
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("reset", path="f.gguf")
    c.fh.add_fault("status", count=100000, path="f.gguf", status=503)
    r = c.run(["pull", "org/faulty", "--file", "f.gguf"], h, SPOKE_HUB_ATTEMPTS="2")
    check(r.returncode == 5, r.stderr)
    inc = fpath(h, "faulty", "main", "f.gguf.incomplete")
    check(os.path.getsize(inc) > 0, "the partial download was not kept")
    ls = json.loads(c.run(["ls", "--json"], h).stdout)
    check(len(ls) == 1 and ls[0]["complete"] is False and ls[0]["partial_files"] == 1 and
          ls[0]["files"] == 0 and ls[0]["partial_bytes"] == os.path.getsize(inc), str(ls))
    r = c.run(["ls"], h)
    check("partial" in r.stdout and "spoke pull resumes" in r.stdout, r.stdout)
    c.fh.clear()
    rc_ok(c.run(["pull", "org/faulty", "--file", "f.gguf"], h))
    assert_exact(fpath(h, "faulty", "main", "f.gguf"), FILES["faulty"]["f.gguf"])
    ls = json.loads(c.run(["ls", "--json"], h).stdout)
    check(len(ls) == 1 and ls[0]["complete"] is True and ls[0]["files"] == 1, str(ls))


def t_disk_space(c):
    h = c.home()
    c.fh.clear()
    r = c.run(["pull", "org/huge"], h)
    check(r.returncode == 10, "exit %d: %s" % (r.returncode, r.stderr[-400:]))
    check("not enough disk space" in r.stderr and str(1 << 60) in r.stderr and
          "free" in r.stderr, r.stderr)
    check(cdn_gets(c) == [], "a body was requested although it cannot fit")
    left = [os.path.join(dp, x) for dp, ds, fs in os.walk(os.path.join(h, "models")) for x in ds + fs]
    check(left == [], "the refused pull left %s" % left)


def t_gated_and_cdn_token(c):
    h = c.home()
    c.fh.clear()
    r = c.run(["pull", "org/gated"], h)
    check(r.returncode == 4 and "hf_token" in r.stderr and "read scope" in r.stderr, r.stderr)
    check(not os.path.exists(fpath(h, "gated", "main", "g-Q4_0.gguf")))
    r = c.run(["pull", "org/gated"], h, HF_TOKEN="hf_wrong")
    check(r.returncode == 4 and "rejected" in r.stderr, r.stderr)
    check("hf_wrong" not in r.stderr, "token printed")
    c.fh.clear()
    r = c.run(["pull", "org/gated"], h, HF_TOKEN=GOOD_TOKEN)
    rc_ok(r)
    check(GOOD_TOKEN not in r.stderr + r.stdout, "token printed")
    check("$HF_TOKEN" in r.stderr, "token source not logged: " + r.stderr)
    assert_exact(fpath(h, "gated", "main", "g-Q4_0.gguf"), FILES["gated"]["g-Q4_0.gguf"])
    cdn = c.fh.requests(origin="cdn")
    check(cdn, "no CDN request")
    check(all(e["auth"] is None for e in cdn), "the CDN saw a token: %s" % cdn)
    hub = c.fh.requests(origin="hub")
    check(all(e["auth"] == "Bearer " + GOOD_TOKEN for e in hub), "hub requests without token")


def t_not_found(c):
    h = c.home()
    r = c.run(["pull", "org/nope"], h)
    check(r.returncode == 3 and "org/nope" in r.stderr and "not found" in r.stderr, r.stderr)
    r = c.run(["pull", "org/model@nope"], h)
    check(r.returncode == 3 and "revision" in r.stderr, r.stderr)
    r = c.run(["pull", "org/model", "--file", "nope.gguf"], h)
    check(r.returncode == 3 and "nope.gguf" in r.stderr, r.stderr)
    check(not os.path.exists(os.path.join(h, "models")) or os.listdir(os.path.join(h, "models")) == [],
          "failed pulls left directories: %s" % os.listdir(os.path.join(h, "models")))


def t_kill9_resume(c):
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("stall", count=1, path="f.gguf")
    env = c.env(h)
    p = subprocess.Popen([SPOKE, "pull", "org/faulty", "--file", "f.gguf"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    inc = fpath(h, "faulty", "main", "f.gguf.incomplete")
    half = len(FILES["faulty"]["f.gguf"]) // 2
    deadline = time.time() + 30
    try:
        while time.time() < deadline:
            if os.path.exists(inc) and os.path.getsize(inc) >= half:
                break
            time.sleep(0.02)
        check(os.path.exists(inc) and os.path.getsize(inc) >= half, "no partial download")
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        c.fh.release.set()
    check(not os.path.exists(fpath(h, "faulty", "main", "f.gguf")), "final name exists after kill")
    c.fh.clear()
    r = c.run(["pull", "org/faulty", "--file", "f.gguf"], h)
    rc_ok(r)
    assert_exact(fpath(h, "faulty", "main", "f.gguf"), FILES["faulty"]["f.gguf"])
    ranges = [e["range"] for e in c.fh.requests(origin="cdn") if e["range"]]
    check(ranges == ["bytes=%d-" % half], "expected one Range resume from %d: %s" % (half, ranges))
    check("resuming" in r.stderr, r.stderr)
    assert_no_scratch(h)


def t_concurrent(c):
    h = c.home()
    c.fh.clear()
    c.fh.add_fault("drip", count=1, path="c-Q4_K_M.gguf", rate=400 * 1024)
    env = c.env(h, SPOKE_HUB_LOW_SPEED_LIMIT="1")
    procs = [subprocess.Popen([SPOKE, "pull", "org/conc"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = []
    for p in procs:
        o, e = p.communicate(timeout=60)
        outs.append((p.returncode, o, e))
    for rc, o, e in outs:
        check(rc == 0, "concurrent pull failed: %s" % e)
    body = c.fh.body_requests()
    check(len([b for b in body if b["origin"] == "cdn"]) == 1,
          "expected one download, got %d: %s" % (len(body), body))
    assert_exact(fpath(h, "conc", "main", "c-Q4_K_M.gguf"), FILES["conc"]["c-Q4_K_M.gguf"])
    assert_no_scratch(h)


def t_token_sources(c):
    h = c.home()
    home = os.path.join(h, "home")
    os.makedirs(os.path.join(home, ".cache", "huggingface"))
    with open(os.path.join(home, ".cache", "huggingface", "token"), "w") as f:
        f.write(GOOD_TOKEN + "\n")
    hfh = os.path.join(h, "hfhome")
    os.makedirs(hfh)
    with open(os.path.join(hfh, "token"), "w") as f:
        f.write("hf_wrong_hfhome\n")
    tp = os.path.join(h, "tokpath")
    with open(tp, "w") as f:
        f.write(GOOD_TOKEN)
    rm = lambda: shutil.rmtree(os.path.join(h, "models"), ignore_errors=True)  # noqa: E731
    # ~/.cache/huggingface/token alone
    r = c.run(["pull", "org/gated"], h)
    rc_ok(r)
    check("~/.cache/huggingface/token" in r.stderr and GOOD_TOKEN not in r.stderr, r.stderr)
    rm()
    # $HF_HOME/token (wrong) beats ~/.cache
    r = c.run(["pull", "org/gated"], h, HF_HOME=hfh)
    check(r.returncode == 4 and "HF_HOME" in r.stderr, r.stderr)
    # $HF_TOKEN_PATH beats $HF_HOME
    r = c.run(["pull", "org/gated"], h, HF_HOME=hfh, HF_TOKEN_PATH=tp)
    rc_ok(r)
    rm()
    # $HUGGING_FACE_HUB_TOKEN (wrong) beats the files
    r = c.run(["pull", "org/gated"], h, HF_HOME=hfh, HF_TOKEN_PATH=tp, HUGGING_FACE_HUB_TOKEN="hf_bad")
    check(r.returncode == 4 and "HUGGING_FACE_HUB_TOKEN" in r.stderr, r.stderr)
    # $HF_TOKEN beats $HUGGING_FACE_HUB_TOKEN
    r = c.run(["pull", "org/gated"], h, HUGGING_FACE_HUB_TOKEN="hf_bad", HF_TOKEN=GOOD_TOKEN)
    rc_ok(r)
    rm()
    # --token beats $HF_TOKEN
    r = c.run(["pull", "org/gated", "--token", "hf_bad2"], h, HF_TOKEN=GOOD_TOKEN)
    check(r.returncode == 4 and "explicit" in r.stderr and "hf_bad2" not in r.stderr, r.stderr)


def t_caches(c):
    # files placed by huggingface-cli download --local-dir: used with no request
    h = c.home()
    d = os.path.join(h, "models", "model", "main")
    os.makedirs(os.path.join(d, ".cache", "huggingface"))
    with open(os.path.join(d, "model-Q4_K_M.gguf"), "wb") as f:
        f.write(FILES["model"]["model-Q4_K_M.gguf"])
    c.fh.clear()
    r = c.run(["pull", "org/model"], h)
    rc_ok(r)
    check(c.fh.log == [], "local-dir files caused requests")
    r = c.run(["ls", "--json"], h)
    check(json.loads(r.stdout)[0]["files"] == 1, r.stdout)
    # the standard HF cache: hard-linked, no body request
    h = c.home()
    commit = c.fh.repos["org/model"].commit
    hub = os.path.join(h, "hfcache")
    snap = os.path.join(hub, "models--org--model", "snapshots", commit)
    blobs = os.path.join(hub, "models--org--model", "blobs")
    os.makedirs(snap)
    os.makedirs(blobs)
    data = FILES["model"]["model-Q8_0.gguf"]
    sha = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, sha), "wb") as f:
        f.write(data)
    os.symlink("../../blobs/" + sha, os.path.join(snap, "model-Q8_0.gguf"))
    os.makedirs(os.path.join(hub, "models--org--model", "refs"))
    with open(os.path.join(hub, "models--org--model", "refs", "main"), "w") as f:
        f.write(commit)
    c.fh.clear()
    r = c.run(["pull", "org/model", "--file", "model-Q8_0.gguf"], h, HF_HUB_CACHE=hub)
    rc_ok(r)
    check(c.fh.body_requests() == [], "HF cache file was downloaded")
    dest = fpath(h, "model", "main", "model-Q8_0.gguf")
    assert_exact(dest, data)
    check(os.stat(dest).st_nlink == 2, "not hard-linked")
    # offline: the HF cache still serves (via refs/main), nothing else does
    c.fh.clear()
    r = c.run(["pull", "org/model", "--file", "model-Q4_0.gguf"], h, HF_HUB_OFFLINE="1",
              HF_HUB_CACHE=hub)
    check(r.returncode == 9 and "HF_HUB_OFFLINE" in r.stderr, r.stderr)
    shutil.copy(os.path.join(blobs, sha), os.path.join(blobs, "x"))
    os.symlink("../../blobs/x", os.path.join(snap, "model-Q4_0.gguf"))
    h2 = c.home()
    r = c.run(["pull", "org/model", "--file", "model-Q4_0.gguf"], h2, HF_HUB_OFFLINE="1",
              HF_HUB_CACHE=hub)
    rc_ok(r)
    r = c.run(["pull", "org/model", "--file", "model-Q8_0.gguf"], h, HF_HUB_OFFLINE="1")
    rc_ok(r)
    check(c.fh.log == [], "offline mode made requests")


HOSTILE = [
    # ids
    ["pull", ""], ["pull", "org"], ["pull", "/org/name"], ["pull", "org/"], ["pull", "../org/name"],
    ["pull", "org/../name"], ["pull", "org/name/../../x"], ["pull", "org\\name"],
    ["pull", "org/na..me"], ["pull", "org/.hidden"], ["pull", "org/-x"], ["pull", "or%2e%2e/name"],
    ["pull", "org/n%00"], ["pull", "org/n\u0430me"], ["pull", "org/name\u2215x"],
    ["pull", "o" * 200 + "/name"], ["pull", "org/" + "n" * 200], ["pull", "org/name\n"],
    ["pull", "org/name x"], ["pull", "file:///etc/passwd"],
    # revisions
    ["pull", "org/model@"], ["pull", "org/model@.."], ["pull", "org/model@../../etc"],
    ["pull", "org/model@a/b"], ["pull", "org/model@a\\b"], ["pull", "org/model@%2e%2e"],
    ["pull", "org/model@."], ["pull", "org/model@" + "a" * 129], ["pull", "org/model@\uff0e\uff0e"],
    ["pull", "org/model@ma in"], ["pull", "org/model:..%2f"], ["pull", "org/model@refs/pr/1"],
    # paths
    ["pull", "org/model", "--file", ""], ["pull", "org/model", "--file", "../x.gguf"],
    ["pull", "org/model", "--file", "/etc/passwd"], ["pull", "org/model", "--file", "a\\b.gguf"],
    ["pull", "org/model", "--file", "a/../../b.gguf"], ["pull", "org/model", "--file", "%2e%2e/x"],
    ["pull", "org/model", "--file", "x%00.gguf"], ["pull", "org/model", "--file", "a//b"],
    ["pull", "org/model", "--file", "\u2025/x.gguf"], ["pull", "org/model", "--file", "\uff0e\uff0e/x"],
    ["pull", "org/model", "--file", "a/" * 40 + "x"], ["pull", "org/model", "--file", "x" * 1100],
    ["pull", "org/model", "--file", ".spoke-meta.json"], ["pull", "org/model", "--file", "x.gguf.lock"],
    ["pull", "org/model", "--file", "C:x.gguf"], ["pull", "org/model", "--file", "dir/"],
    # cache names
    ["pull", "org/model", "--name", ".."], ["pull", "org/model", "--name", "a/b"],
    ["pull", "org/model", "--name", ""], ["pull", "org/model", "--quant", "../x"],
    ["rm", ".."], ["rm", "../x"], ["rm", "/tmp"], ["rm", "model@../.."], ["rm", "model@"],
]


def t_hostile(c):
    check(len(HOSTILE) >= 40)
    h = c.home()
    # something that must survive: a model and a file next to the cache
    rc_ok(c.run(["pull", "org/model", "--file", "config.json"], h))
    sentinel = os.path.join(h, "outside.txt")
    with open(sentinel, "w") as f:
        f.write("keep")
    before = sorted(os.path.join(dp, fn) for dp, _, fns in os.walk(c.root) for fn in fns)
    c.fh.clear()
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda a: (a, c.run(a, h)), HOSTILE))
    for args, r in results:
        check(r.returncode == 2, "%r: expected exit 2, got %d (%s)" % (args, r.returncode, r.stderr))
        check("error" in r.stderr or "usage" in r.stderr, "%r: no message" % args)
    check(c.fh.log == [], "hostile input caused requests: %s" % c.fh.log)
    after = sorted(os.path.join(dp, fn) for dp, _, fns in os.walk(c.root) for fn in fns)
    check(before == after, "files changed: %s" % (set(before) ^ set(after)))
    r = c.run(["pull", "org/model@../../etc"], h)
    check("invalid revision" in r.stderr and
          "use alphanumerics, underscores and dashes; commit SHAs are safe" in r.stderr, r.stderr)


CASES = [t_basic_and_drift, t_quant_file_pinned, t_split, t_not_found, t_gated_and_cdn_token,
         t_token_sources, t_fault_status, t_fault_body, t_kill9_resume, t_concurrent, t_caches,
         t_hostile, t_bounded_retries, t_failed_first_pull_leaves_nothing, t_disk_space]


def main():
    if not os.path.exists(SPOKE):
        print("SKIP: spoke binary not found at %s" % SPOKE)
        return 0
    only = sys.argv[1:]
    root = tempfile.mkdtemp(prefix="spoke-pull-")
    fh = fakehub.FakeHub()
    fh.add_repo("org/model", FILES["model"])
    fh.add_repo("org/split", FILES["split"])
    fh.add_repo("org/gated", FILES["gated"], gated=True, token=GOOD_TOKEN)
    fh.add_repo("org/faulty", FILES["faulty"])
    fh.add_repo("org/conc", FILES["conc"])
    fh.add_repo("org/huge", FILES["huge"])
    fh.start()
    failed = 0
    try:
        c = Ctx(fh, root)
        for case in CASES:
            if only and case.__name__ not in only:
                continue
            fh.clear()
            t0 = time.time()
            try:
                case(c)
                print("ok     %s (%.1fs)" % (case.__name__, time.time() - t0))
            except Exception:
                failed += 1
                print("not ok %s" % case.__name__)
                traceback.print_exc()
            sys.stdout.flush()
        # over every case above: the CDN origin never received a token
        if fh.cdn_auth:
            failed += 1
            print("not ok cdn_never_sees_a_token: %s" % fh.cdn_auth)
        else:
            print("ok     cdn_never_sees_a_token (%d CDN requests over all cases)" % fh.cdn_count)
    finally:
        fh.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
