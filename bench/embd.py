#!/usr/bin/env python3
"""bench/embd.py [BUILD_DIR] - embedding throughput benchmark (not a test).

Writes a synthetic BERT of all-MiniLM-L6's shape (6 layers, width 384, 12
heads, FFN 1536, context 512; random weights, numpy) and its Q8_0
quantization (`spoke quantize`), serves both with `spoke serve`, and times,
back to back per model: N inputs of T tokens in ONE /v1/embeddings request
(batched forward passes) against the same N inputs as N requests. Prints
inputs/s of each and their ratio. Env: N (default 64), T (default 32),
THREADS (default 2). Needs python3-numpy. Absolute numbers depend on the
machine's load; compare the ratio, measured back to back."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build")
os.environ["SPOKE_BIN"] = os.path.join(build, "spoke")
sys.path.insert(0, os.path.join(root, "tests", "integration", "embd"))
sys.path.insert(0, os.path.join(root, "tests", "integration", "server"))
import numpy as np  # noqa: E402
import embd_models as em  # noqa: E402
from spoke_server import Server  # noqa: E402

N, T, THREADS = int(os.environ.get("N", 64)), int(os.environ.get("T", 32)), int(os.environ.get("THREADS", 2))
d = tempfile.mkdtemp(prefix="spoke-embd-bench-")
try:
    em.make_bert(os.path.join(d, "minilm.gguf"), "mean", seed=1, E=384, H=12, F=1536, L=6, ctx=512)
    subprocess.run([os.environ["SPOKE_BIN"], "quantize", os.path.join(d, "minilm.gguf"),
                    os.path.join(d, "minilm-q8_0.gguf"), "Q8_0"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    names = ["minilm", "minilm-q8_0"]
    cfg = ["models:"]
    for n in names:
        cfg += ["  - from: file:%s" % os.path.join(d, n + ".gguf"), "    name: %s" % n, "    params:",
                "      n_threads: %d" % THREADS]
    srv = Server("\n".join(cfg) + "\n")
    srv.wait_ready()
    rng = np.random.default_rng(0)
    ids = [[2] + [int(t) for t in rng.integers(4, 37, size=T - 2)] + [3] for _ in range(N)]
    print("%d inputs of %d tokens, %d threads" % (N, T, THREADS))
    for n in names:
        srv.post("/v1/embeddings", {"model": n, "input": ids[:2]})  # warm up
        t0 = time.time()
        st, _, j, _ = srv.post("/v1/embeddings", {"model": n, "input": ids})
        t1 = time.time()
        assert st == 200, st
        for x in ids:
            assert srv.post("/v1/embeddings", {"model": n, "input": x})[0] == 200
        t2 = time.time()
        print("%-12s one request: %7.1f inputs/s   %d requests: %7.1f inputs/s   ratio %.2fx" %
              (n, N / (t1 - t0), N, N / (t2 - t1), (t2 - t1) / (t1 - t0)))
    srv.stop()
finally:
    shutil.rmtree(d, ignore_errors=True)
