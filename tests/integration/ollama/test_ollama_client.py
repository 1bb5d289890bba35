#!/usr/bin/env python3
"""test_ollama_client.py - the official `ollama` npm client (pinned in
tests/integration/ollama/package-lock.json, installed into .cache/ollama-js
by tools/test-deps.sh) against a real `spoke serve` with the demo model:
version, list, show, ps, generate and chat streamed and not (same text),
aborting a stream, errors surfacing as the client's ResponseError with the
right status, pull. Skips (exit 77) when node or the client is not
installed (no npm registry on this machine)."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
from spoke_server import MODEL, SRC, Server, check, model_config, summary  # noqa: E402

SKIP = 77
JS = os.path.join(SRC, ".cache", "ollama-js")
if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(SKIP)
if not shutil.which("node"):
    print("SKIP: node is not installed (tools/test-deps.sh installs it)")
    sys.exit(SKIP)
if not os.path.exists(os.path.join(JS, "node_modules", "ollama", "package.json")):
    print("SKIP: the ollama npm client is not installed in %s (tools/test-deps.sh; needs the npm registry)" % JS)
    sys.exit(SKIP)

srv = Server(model_config(params={"max_concurrency": 2}))
try:
    srv.wait_ready()
    r = subprocess.run(["node", os.path.join(HERE, "client_test.cjs"), JS, "http://127.0.0.1:%d" % srv.port,
                        "stories260K"], capture_output=True, text=True, timeout=120)
    print(r.stdout, end="")
    print(r.stderr, end="")
    check(r.returncode == 0, "ollama npm client checks (exit %d)" % r.returncode)
    st, _, _ = srv.request("GET", "/health")
    check(st == 200, "server healthy after the client run")
    check(srv.stop() == 0, "SIGTERM exit 0")
finally:
    srv.stop()
summary("test_ollama_client")
