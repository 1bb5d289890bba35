#!/usr/bin/env python3
"""test_arch_cli.py - every model of ../shared/models/arch (llama3, qwen3,
gemma3, phi3 in F32 and quantized) works with no flags: `spoke run FILE PROMPT`
and `spoke run --chat` exit 0 with text on stdout and stats on stderr, and
one `spoke serve` holding all of them answers a chat completion and a
streamed completion for each with 200. Every file must work (the IQ4_NL /
IQ4_XS files too: their kernels are in)."""
import glob, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration", "server"))
import spoke_server as ss  # noqa: E402
import subprocess  # noqa: E402

shared = os.environ.get("SPOKE_SHARED", "../shared")
files = sorted(glob.glob(os.path.join(shared, "models", "arch", "*.gguf")))
if not files:
    print("SKIP: ../shared/models/arch not found")
    sys.exit(0)
env = dict(os.environ, SPOKE_LOG="warn", HF_HUB_OFFLINE="1")


def run(args):
    return subprocess.run([ss.SPOKE] + args, capture_output=True, env=env, timeout=120)


served = []
for f in files:
    name = os.path.basename(f)
    p = run(["run", f, "Once upon a time", "-n", "8"])
    err = p.stderr.decode("utf-8", "replace")
    ss.check(p.returncode == 0 and len(p.stdout) > 0 and "t/s" in err, "run %s (rc %d: %s)" % (name, p.returncode,
                                                                                           err[-300:]))
    p = run(["run", f, "Hi", "--chat", "-n", "4"])
    ss.check(p.returncode == 0, "run --chat %s" % name)
    served.append(f)

cfg = ["models:"]
for i, f in enumerate(served):
    cfg += ["  - from: file:%s" % os.path.abspath(f), "    name: m%d" % i]
srv = ss.Server("\n".join(cfg) + "\n")
try:
    srv.wait_ready()
    for i, f in enumerate(served):
        name = os.path.basename(f)
        st, _, j, raw = srv.post("/v1/chat/completions", {"model": "m%d" % i, "max_tokens": 6,
                                                          "messages": [{"role": "user", "content": "Hi"}]})
        ss.check(st == 200 and j and j["usage"]["completion_tokens"] >= 1, "serve chat %s: %d %s" % (name, st, raw[-200:]))
        st, _, events, raw = srv.stream("/v1/completions", {"model": "m%d" % i, "prompt": "Once", "max_tokens": 6,
                                                            "stream": True})
        ss.check(st == 200 and events and events[-1] == "[DONE]", "serve stream %s: %d" % (name, st))
finally:
    ss.check(srv.stop() == 0, "server exits 0 on SIGTERM")
ss.summary("test_arch_cli")
