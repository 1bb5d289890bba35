#!/usr/bin/env python3
"""test_openai_sdk.py - the official `openai` npm SDK (pinned in
tests/integration/openai/package-lock.json, installed into .cache/openai-js
by tools/test-deps.sh) against a real `spoke serve` with the demo model
(sdk_test.cjs): models, chat streamed and not (and the SDK's stream
helper), completions, forced tool calls with valid arguments, streamed
tool-call deltas assembled by the SDK, a tool result sent back, structured
outputs (response_format json_schema parsed by the SDK, json_object),
logprobs, n > 1 streamed and not, errors as the SDK's typed exceptions;
embeddings (the SDK asks for base64 and decodes it; and float) of a
synthetic bert (tests/integration/embd/embd_models.py) against its numpy
reference, when numpy is there (Debian's python3-numpy). Skips (exit 77)
when node or the SDK is not installed (no npm registry)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
from spoke_server import numpy_or_system_python  # noqa: E402

HAVE_NP = numpy_or_system_python()
from spoke_server import MODEL, SRC, Server, check, model_config, summary  # noqa: E402

SKIP = 77
JS = os.path.join(SRC, ".cache", "openai-js")
if not os.path.exists(MODEL):
    print("SKIP: bundled model %s missing" % MODEL)
    sys.exit(SKIP)
if not shutil.which("node"):
    print("SKIP: node is not installed (tools/test-deps.sh installs it)")
    sys.exit(SKIP)
if not os.path.exists(os.path.join(JS, "node_modules", "openai", "package.json")):
    print("SKIP: the openai npm SDK is not installed in %s (tools/test-deps.sh; needs the npm registry)" % JS)
    sys.exit(SKIP)

tmp = tempfile.mkdtemp(prefix="spoke-sdk-")
cfg = model_config(params={"max_concurrency": 4})
embd = "-"
if HAVE_NP:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "embd"))
    import embd_models as em  # noqa: E402
    W = em.make_bert(os.path.join(tmp, "embedder.gguf"), "mean", seed=1)
    texts = ["the cat sat on the mat", "a dog ran in the park"]
    embd = os.path.join(tmp, "embd.json")
    with open(embd, "w") as f:
        json.dump({"model": "embedder", "texts": texts,
                   "vectors": [[float(x) for x in em.bert_ref(W, em.bert_tokenize(W, t))] for t in texts]}, f)
    cfg = cfg.replace("models:\n", "models:\n  - from: file:%s\n    name: embedder\n" %
                      os.path.join(tmp, "embedder.gguf"), 1)
else:
    print("  note: numpy missing: the embeddings case is left out")
srv = Server(cfg, tmp=tmp)
try:
    srv.wait_ready()
    r = subprocess.run(["node", os.path.join(HERE, "sdk_test.cjs"), JS, "http://127.0.0.1:%d" % srv.port,
                        "stories260K", embd], capture_output=True, text=True, timeout=150)
    print(r.stdout, end="")
    print(r.stderr, end="")
    check(r.returncode == 0, "openai npm SDK checks (exit %d)" % r.returncode)
    st, _, _ = srv.request("GET", "/health")
    check(st == 200, "server healthy after the SDK run")
finally:
    srv.stop()
sys.exit(summary("test_openai_sdk"))
