#!/usr/bin/env python3
"""test_cli.py - `spoke run` and `spoke bench` end to end on stories260K:
greedy output equals llama.cpp's reference text, the prompt can come from
stdin, --chat works, stats go to stderr, a missing model fails cleanly
(offline, non-zero exit, one error line), and `spoke bench --json` reports
pp/tg tests with positive speeds."""
import json, os, subprocess, sys

shared = os.environ.get("SPOKE_SHARED", "../shared")
spoke = os.environ.get("SPOKE_BIN", "build/spoke")
model = os.path.join(shared, "models", "stories260K.gguf")
ref_path = os.path.join(shared, "models", "reference-outputs", "stories260K.gguf.greedy.json")
if not os.path.exists(model) or not os.path.exists(ref_path):
    print("SKIP: shared models not found")
    sys.exit(0)
env = dict(os.environ, SPOKE_LOG="warn", HF_HUB_OFFLINE="1", SPOKE_HOME=os.path.join(os.getcwd(), "cli-test-home"))
ref = json.load(open(ref_path))["results"]
fails = 0

def check(cond, what):
    global fails
    print(("ok     " if cond else "not ok ") + what)
    if not cond:
        fails += 1

def run(args, stdin=None):
    return subprocess.run([spoke] + args, input=stdin, capture_output=True, env=env, timeout=120)

for r in ref:
    p = run(["run", model, r["prompt"], "-n", str(r["n_predict"]), "--temp", "0", "-t", "2"])
    out = p.stdout.decode("utf-8", "replace").rstrip("\n")
    check(p.returncode == 0 and out == r["generated_text"], "run greedy '%s' equals llama.cpp" % r["prompt"])
    check(b"prompt" in p.stderr and b"t/s" in p.stderr, "run prints stats to stderr")

p = run(["run", model, "-n", "8", "--temp", "0"], stdin=b"Once upon a time")
check(p.returncode == 0 and p.stdout.decode().startswith(", there was"), "run reads the prompt from stdin")
p = run(["run", model, "Hi", "--chat", "-n", "4", "--seed", "1"])
check(p.returncode == 0, "run --chat")
p = run(["run", "/nonexistent/dir/x.gguf", "hello"])
err = p.stderr.decode()
check(p.returncode != 0 and "error" in err and len(err.strip().splitlines()) >= 1, "missing model fails cleanly")
p = run(["run", model, "x", "--temp"])
check(p.returncode == 2, "bad option is a usage error")
p = run(["bench", model, "-p", "32", "-n", "16", "-r", "2", "-t", "2", "--json", "--membw", "17.5"])
try:
    rows = json.loads(p.stdout.decode())
except ValueError:
    rows = []
check(p.returncode == 0 and [x["test"] for x in rows] == ["pp32", "tg16"] and all(x["avg_ts"] > 0 for x in rows),
      "bench --json")
check(all(x.get("isa") in ("ref", "avx2", "avx512") and x.get("n_threads") == 2 and x.get("membw_gbs") == 17.5
          and x.get("peak_rss_mib", 0) > 0 for x in rows), "bench --json records isa, threads, membw, peak RSS")
p = run(["bench", model, "-p", "32", "-n", "16", "-r", "1"])
check(p.returncode == 0 and b"| model" in p.stdout and b"pp32" in p.stdout and b"tg16" in p.stdout
      and b"peak RSS" in p.stdout, "bench table")
p = run(["bench", model, "--membw", "fast"])
check(p.returncode == 2, "bad --membw is a usage error")
print("%d failed" % fails)
sys.exit(1 if fails else 0)
