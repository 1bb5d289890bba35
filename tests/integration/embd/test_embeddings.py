#!/usr/bin/env python3
"""test_embeddings.py - embeddings end to end through `spoke serve`.

Synthetic models written by this test (embd_models.py): bert with mean and
cls pooling (F32, and F16 matrices), llama with last and mean pooling (GQA),
and Q8_0 quantizations of two of them (`spoke quantize`; cosine >= 0.995
against the F32 reference);
the bundled stories260K (no pooling type) is the generation-only model.
Reference vectors come from an independent numpy (float64) forward pass.
Checks: every vector's cosine with the reference >= 0.9999 and unit norm;
a batch of inputs returns exactly (bit for bit) the vectors each input gets
alone; text and token-array inputs agree; base64 is the little-endian
float32 of the float vectors; usage counts; `dimensions`; Ollama /api/embed
and /api/embeddings; the 400/404 errors (empty input, too many inputs,
input longer than the context, token id out of range, bad encoding_format,
bad dimensions, a generation-only model, chat on an embedding model); the
metrics and the ai_embedding spans."""
import base64
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server"))
from spoke_server import numpy_or_system_python  # noqa: E402

if not numpy_or_system_python():
    print("SKIP: python3-numpy is not installed (tools/test-deps.sh installs it)")
    sys.exit(77)
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
import embd_models as em  # noqa: E402
from spoke_server import MODEL, Server, check, summary  # noqa: E402
import tempfile  # noqa: E402
import shutil  # noqa: E402

tmp = tempfile.mkdtemp(prefix="spoke-embd-")
try:
    models = {
        "bert-mean": (em.make_bert(os.path.join(tmp, "bert-mean.gguf"), "mean", seed=1), em.bert_ref, em.bert_tokenize),
        "bert-cls": (em.make_bert(os.path.join(tmp, "bert-cls.gguf"), "cls", seed=3), em.bert_ref, em.bert_tokenize),
        "bert-f16": (em.make_bert(os.path.join(tmp, "bert-f16.gguf"), "mean", seed=5, f16=True), em.bert_ref,
                     em.bert_tokenize),
        "llama-last": (em.make_llama(os.path.join(tmp, "llama-last.gguf"), "last", seed=2), em.llama_ref,
                       em.llama_tokenize),
        "llama-mean": (em.make_llama(os.path.join(tmp, "llama-mean.gguf"), "mean", seed=4), em.llama_ref,
                       em.llama_tokenize),
    }
    em.make_bert(os.path.join(tmp, "bert-nopool.gguf"), None, seed=6)
    # Q8_0 files by `spoke quantize`: compared with the F32 numpy reference of their source
    import subprocess
    from spoke_server import SPOKE  # noqa: E402
    for src, dst in (("bert-mean", "bert-q8"), ("llama-mean", "llama-q8")):
        subprocess.run([SPOKE, "quantize", os.path.join(tmp, src + ".gguf"), os.path.join(tmp, dst + ".gguf"), "Q8_0"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        models[dst] = models[src]
    COS_MIN = {"bert-q8": 0.995, "llama-q8": 0.995}  # Q8_0 weights and activations against F32
    cfg = ["models:"]
    for name in models:
        cfg += ["  - from: file:%s" % os.path.join(tmp, name + ".gguf"), "    name: %s" % name, "    params:",
                "      max_concurrency: 2"]
    cfg += ["  - from: file:%s" % MODEL, "    name: stories260K", "  - from: file:%s" % os.path.join(tmp, "bert-nopool.gguf"),
            "    name: bert-nopool", "    params:", "      initial_load: false",
            "server:", "  task_history:", "    sql_endpoint: true"]
    srv = Server("\n".join(cfg) + "\n")
    srv.wait_ready()

    TEXTS = ["the cat sat on the mat", "a dog ran in the park", "Hello World", "the sun was hot",
             "we go home now and you go home fast", "blue sky"]

    def emb(model, inp, **kw):
        body = {"model": model, "input": inp}
        body.update(kw)
        return srv.post("/v1/embeddings", body)

    def cos(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    for name, (W, ref, tokenize) in models.items():
        ids = [tokenize(W, t) for t in TEXTS]
        refs = [ref(W, x) for x in ids]
        # token arrays, batched
        st, _, j, raw = emb(name, ids)
        ok = check(st == 200 and j and len(j["data"]) == len(ids), "%s: batched token inputs answer 200 (%s %s)" %
                   (name, st, raw[:300]))
        if not ok:
            continue
        vecs = [d["embedding"] for d in j["data"]]
        check([d["index"] for d in j["data"]] == list(range(len(ids))) and j["object"] == "list" and
              all(d["object"] == "embedding" for d in j["data"]) and j["model"] == name, "%s: OpenAI shape" % name)
        check(all(len(v) == W["E"] for v in vecs), "%s: %d dimensions" % (name, W["E"]))
        cs = [cos(v, r) for v, r in zip(vecs, refs)]
        print("  %s: cosine vs numpy min %.7f" % (name, min(cs)))
        want = COS_MIN.get(name, 0.9999)
        check(min(cs) >= want, "%s: cosine with the numpy reference >= %g (%s)" % (name, want, cs))
        check(all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vecs), "%s: unit vectors" % name)
        n_tok = sum(len(x) for x in ids)
        check(j["usage"] == {"prompt_tokens": n_tok, "total_tokens": n_tok}, "%s: usage %s (want %d)" %
              (name, j["usage"], n_tok))
        # one by one equals batched, bit for bit
        alone = []
        for x in ids:
            st1, _, j1, _ = emb(name, x)
            alone.append(j1["data"][0]["embedding"] if st1 == 200 else None)
        check(alone == vecs, "%s: each input alone gives exactly its batched vector" % name)
        # text inputs (tokenized by spoke) equal the token inputs
        if name.startswith("bert"):
            st2, _, j2, raw2 = emb(name, TEXTS)
            check(st2 == 200 and [d["embedding"] for d in j2["data"]] == vecs,
                  "%s: text inputs equal their token ids (%s %s)" % (name, st2, raw2[:200]))
            st2, _, j2, _ = emb(name, TEXTS[0])
            check(st2 == 200 and j2["data"][0]["embedding"] == vecs[0], "%s: a single string input" % name)
        # base64: little-endian float32
        st3, _, j3, _ = emb(name, ids, encoding_format="base64")
        if check(st3 == 200, "%s: base64 answers 200" % name):
            dec = [list(struct.unpack("<%df" % W["E"], base64.b64decode(d["embedding"]))) for d in j3["data"]]
            check(dec == [list(np.float32(v)) for v in vecs], "%s: base64 decodes to the float vectors" % name)
        st4, _, j4, _ = emb(name, ids[0], dimensions=W["E"])
        check(st4 == 200 and j4["data"][0]["embedding"] == vecs[0], "%s: dimensions = the model's width" % name)

    # a batch longer than one forward pass of the decoder (inputs fed in chunks, many sequences)
    W, ref, tok = models["llama-mean"]
    long_ids = [[1] + [3 + (i * 7 + k) % 30 for k in range(100 + i)] for i in range(12)]
    st, _, j, raw = emb("llama-mean", long_ids)
    if check(st == 200, "llama-mean: 12 inputs of 101..112 tokens (%s %s)" % (st, raw[:200])):
        cs = [cos(d["embedding"], ref(W, x)) for d, x in zip(j["data"], long_ids)]
        check(min(cs) >= 0.9999, "llama-mean: long inputs match numpy (min cosine %.7f)" % min(cs))
        st1, _, j1, _ = emb("llama-mean", long_ids[5])
        check(st1 == 200 and j1["data"][0]["embedding"] == j["data"][5]["embedding"], "llama-mean: long input alone")
    # the batch (256 tokens here: context 128 x 2 sequences) ends one token before an input's end:
    # that input is not split into a 1-token chunk, so it still equals its vector alone
    edge = [[1] + [3 + (i * 5 + k) % 30 for k in range(n - 1)] for i, n in enumerate((100, 100, 57, 9))]
    st, _, j, raw = emb("llama-mean", edge)
    if check(st == 200, "llama-mean: inputs crossing the batch end (%s %s)" % (st, raw[:200])):
        for i, x in enumerate(edge):
            st1, _, j1, _ = emb("llama-mean", x)
            check(st1 == 200 and j1["data"][0]["embedding"] == j["data"][i]["embedding"],
                  "llama-mean: input %d of %d tokens alone equals its batched vector" % (i, len(x)))
    # generation still works on a decoder with a pooling type, and embeddings do not disturb it
    st, _, j, _ = srv.post("/v1/completions", {"model": "llama-last", "prompt": "the cat", "max_tokens": 4,
                                               "temperature": 0})
    check(st == 200, "a decoder with a pooling type still generates (%s)" % st)

    # embeddings while a generation streams on the same decoder (the step loop pauses, then goes on)
    import threading
    W, ref, tok = models["llama-last"]
    ids = [tok(W, t) for t in TEXTS]
    st, _, j0, _ = emb("llama-last", ids)
    base_vecs = [d["embedding"] for d in j0["data"]]
    gen = {}

    def run_gen():
        gen["r"] = srv.stream("/v1/completions", {"model": "llama-last", "prompt": "the cat sat", "max_tokens": 60,
                                                  "temperature": 0, "stream": True})
    th = threading.Thread(target=run_gen)
    th.start()
    same = True
    for _ in range(5):
        st, _, j1, _ = emb("llama-last", ids)
        same = same and st == 200 and [d["embedding"] for d in j1["data"]] == base_vecs
    th.join()
    check(same, "llama-last: embeddings during a streaming generation equal the ones before")
    check(gen.get("r") and gen["r"][0] == 200 and gen["r"][2][-1] == "[DONE]", "the generation finished normally")

    # ---- Ollama
    Wb = models["bert-mean"][0]
    st, _, j, _ = emb("bert-mean", TEXTS[:2])
    want = [d["embedding"] for d in j["data"]]
    st, _, jo, raw = srv.post("/api/embed", {"model": "bert-mean", "input": TEXTS[:2]})
    check(st == 200 and jo["embeddings"] == want and jo["model"] == "bert-mean" and
          jo["prompt_eval_count"] == sum(len(em.bert_tokenize(Wb, t)) for t in TEXTS[:2]) and
          "total_duration" in jo, "/api/embed with two inputs (%s %s)" % (st, raw[:200]))
    st, _, jo, _ = srv.post("/api/embed", {"model": "bert-mean:latest", "input": TEXTS[0]})
    check(st == 200 and jo["embeddings"] == want[:1], "/api/embed with a string and :latest")
    st, _, jo, _ = srv.post("/api/embeddings", {"model": "bert-mean", "prompt": TEXTS[1]})
    check(st == 200 and jo == {"embedding": want[1]}, "/api/embeddings (legacy) returns one vector")
    longtext = " ".join(["the"] * 80)  # 82 tokens > context 64
    st, _, jo, _ = srv.post("/api/embed", {"model": "bert-mean", "input": longtext})
    check(st == 200 and jo["prompt_eval_count"] == 64, "/api/embed truncates to the context by default (%s)" %
          (jo if st != 200 else jo["prompt_eval_count"]))
    st, _, jo, _ = srv.post("/api/embed", {"model": "bert-mean", "input": longtext, "truncate": False})
    check(st == 400 and "context" in jo.get("error", ""), "/api/embed truncate=false refuses a long input (%s)" % jo)
    st, _, jo, _ = srv.post("/api/embed", {"model": "nope", "input": "x"})
    check(st == 404 and "error" in jo, "/api/embed unknown model -> 404")
    st, _, jo, _ = srv.post("/api/embed", {"model": "bert-mean", "input": [1, 2]})
    check(st == 400, "/api/embed refuses token arrays")

    # ---- errors
    def err(body, status, param=None, what="", path="/v1/embeddings"):
        st, _, j, raw = srv.post(path, body)
        ok = st == status and j and "error" in j and j["error"].get("message")
        if ok and param is not None:
            ok = j["error"].get("param") == param
        check(ok, "%s -> %d%s (%s %s)" % (what or body, status, " param " + param if param else "", st, raw[:300]))
        return j

    err({"model": "bert-mean", "input": ""}, 400, "input", "empty string")
    err({"model": "bert-mean", "input": []}, 400, "input", "empty array")
    err({"model": "bert-mean", "input": [[]]}, 400, "input[0]", "empty token array")
    err({"model": "bert-mean", "input": ["ok", ""]}, 400, "input[1]", "empty string in an array")
    err({"model": "bert-mean"}, 400, "input", "missing input")
    err({"model": "bert-mean", "input": 5}, 400, "input", "number input")
    err({"model": "bert-mean", "input": [[1, -2]]}, 400, "input[0]", "negative token id")
    err({"model": "bert-mean", "input": ["x"] * 2049}, 400, "input", "2049 inputs")
    err({"model": "bert-mean", "input": longtext}, 400, "input", "input longer than the context")
    err({"model": "bert-mean", "input": [["x"]]}, 400, "input[0]", "array of arrays of strings")
    err({"model": "bert-mean", "input": [2] + [4] * 70}, 400, "input", "token input longer than the context")
    err({"model": "bert-mean", "input": [[2, 99999]]}, 400, "input", "token id out of the vocabulary")
    err({"model": "bert-mean", "input": "hi", "encoding_format": "int8"}, 400, "encoding_format", "encoding_format")
    err({"model": "bert-mean", "input": "hi", "dimensions": 16}, 400, "dimensions", "dimensions below the width")
    err({"model": "bert-mean", "input": "hi", "dimensions": 0}, 400, "dimensions", "dimensions 0")
    err({"model": "bert-mean", "input": "hi", "dimensions": "64"}, 400, "dimensions", "dimensions as a string")
    err({"model": "nope", "input": "hi"}, 404, "model", "unknown model")
    err({"input": "hi"}, 400, "model", "no model with several configured")
    j = err({"model": "stories260K", "input": "hi"}, 400, "model", "generation-only model")
    check(j and "pooling" in j["error"]["message"], "the generation-only refusal names the pooling type")
    err({"model": "bert-nopool", "input": "hi"}, 503, "model", "bert without a pooling type fails to load")
    st, _, data = srv.request("POST", "/v1/embeddings", b"{not json")
    check(st == 400, "malformed JSON -> 400")
    st, _, data = srv.request("GET", "/v1/embeddings")
    check(st == 405, "GET /v1/embeddings -> 405")
    j = err({"model": "bert-mean", "messages": [{"role": "user", "content": "hi"}]}, 400, None,
            "chat on an embedding model", path="/v1/chat/completions")
    check(j and "embedding model" in j["error"]["message"], "chat on bert says it is an embedding model")

    # ---- metrics and spans
    n = srv.metric("llm_requests_total", "bert-mean") or srv.metric("llm_requests", "bert-mean")
    check(n is not None and n >= 10, "llm_requests counts embedding requests (%s)" % n)
    pt = srv.metric("llm_prompt_tokens_total", "bert-mean")
    check(pt is not None and pt > 0, "prompt tokens counted (%s)" % pt)
    import time
    time.sleep(0.5)
    st, res = srv.sql("SELECT count(*) AS n FROM task_history WHERE task = 'ai_embedding' AND error_message IS NULL")
    check(st == 200 and res["rows"][0]["n"] >= 20, "ai_embedding spans recorded (%s)" % res)
    st, res = srv.sql("SELECT labels FROM task_history WHERE task = 'ai_embedding' AND error_message IS NOT NULL "
                      "LIMIT 1")
    check(st == 200 and res["rows"] and "http_status" in res["rows"][0]["labels"], "failed embeddings are spanned")
    rc = srv.stop()
    log = srv.logtext()
    check(rc == 0 and "Sanitizer" not in log and "runtime error" not in log,
          "the server stops cleanly (rc %s; no sanitizer report)%s" % (rc, "" if rc == 0 else log[-1500:]))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
summary("test_embeddings")
