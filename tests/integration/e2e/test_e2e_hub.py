#!/usr/bin/env python3
"""test_e2e_hub.py - `spoke serve` and `spoke run` pulling a model from a
(fake) Hugging Face Hub end to end. The fake Hub + CDN (tests/integration/hub/
fakehub.py) serves stories260K.gguf as an LFS file of the gated repo org/name
(and org/gated, which wants a different token); SPOKE_HOME, HF_HOME are temp
dirs and HF_ENDPOINT points at the fake hub. Checks:
 1. serve with `from: huggingface:huggingface.co/org/name@main`, files, a
    ${secrets:HF_TOKEN} token and initial_load: true pulls on start:
    /v1/ready 503 -> 200 (a completion while loading is 503 "loading"), greedy
    /v1/completions == `spoke run FILE --temp 0`, the cached file is
    bit-identical, the hub saw the token and the CDN never saw Authorization,
    spoke_download_bytes_total counts the file.
 2. initial_load: false: /v1/ready is 200 at once, nothing is requested from
    the hub until the first completion, which waits for the pull and succeeds.
 3. a gated repo with a wrong token: the first completion gives 503 with the
    actionable 401 message, /v1/models shows status error with it, the server
    stays healthy, and the token appears nowhere (stdout, stderr at debug log
    level, task history via `spoke sql`, /metrics).
 4. an invalid revision (@../../etc) stops `spoke serve` at startup with the
    DESIGN.md message and a non-zero exit, before any request to the hub.
 5. `spoke run org/name PROMPT -n 16 --temp 0` pulls then generates; again
    with HF_HUB_OFFLINE=1 it works from the cache without any hub request."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hub"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
from fakehub import FakeHub  # noqa: E402
from spoke_server import SPOKE, Server, check, summary  # noqa: E402

SRC = os.environ.get("SPOKE_SRC_DIR", os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
SHARED = os.environ.get("SPOKE_SHARED", "")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf") if SHARED else ""
if not MODEL or not os.path.exists(MODEL):
    MODEL = os.path.join(SRC, "models", "stories260K.gguf")  # bundled copy: always there
if not os.path.exists(MODEL):
    print("SKIP: no stories260K.gguf (looked in $SPOKE_SHARED/models and $SPOKE_SRC_DIR/models)")
    sys.exit(0)

FILE = "stories260K.gguf"
TOKEN = "hf_e2eGoodToken0123456789"          # what org/name wants
GATED_TOKEN = "hf_e2eOtherToken9876543210"   # what org/gated wants
WRONG = "hf_e2eWrongSecretZYXW4242"          # what the config gives org/gated
PROMPT = "Once upon a time"
N = 16
AUTH_MSG = "set hf_token and accept the model's license on the Hub; check the token has read scope"
REV_MSG = "use alphanumerics, underscores and dashes; commit SHAs are safe"

tmp_root = tempfile.mkdtemp(prefix="spoke-e2e-")
hub = FakeHub()
hub.add_repo("org/name", {FILE: ("file", MODEL)}, gated=True, token=TOKEN)
hub.add_repo("org/gated", {FILE: ("file", MODEL)}, gated=True, token=GATED_TOKEN)
hub.start()
servers = []


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def home(tag):
    d = os.path.join(tmp_root, tag)
    os.makedirs(os.path.join(d, "hf"), exist_ok=True)
    return d


def hub_env(d, **extra):
    """Environment for a spoke process using the fake hub with its home in d."""
    e = {"SPOKE_HOME": d, "HF_HOME": os.path.join(d, "hf"), "HF_ENDPOINT": hub.hub_url, "HF_HUB_OFFLINE": "0",
         "HF_TOKEN": TOKEN, "SPOKE_HUB_BACKOFF_MS": "10", "SPOKE_HUB_BACKOFF_CAP_MS": "50",
         "HF_TOKEN_PATH": os.path.join(d, "hf", "no-token")}
    e.pop("HUGGING_FACE_HUB_TOKEN", None)
    e.update(extra)
    return e


def spoke(args, env, timeout=120):
    e = dict(os.environ)
    e.pop("HUGGING_FACE_HUB_TOKEN", None)
    e.update(env)
    return subprocess.run([SPOKE] + args, capture_output=True, text=True, env=e, timeout=timeout)


def start(tag, yaml, **extra):
    d = home(tag)
    s = Server(yaml, env=hub_env(d, **extra), tmp=d)
    servers.append(s)
    return s


def hf_model(name, repo, initial_load, rev="main", token="${secrets:HF_TOKEN}"):
    return ("  - from: huggingface:huggingface.co/%s@%s\n    name: %s\n    files:\n      - path: %s\n"
            "    params:\n      hf_token: %s\n      max_concurrency: 1\n      initial_load: %s\n"
            % (repo, rev, name, FILE, token, "true" if initial_load else "false"))


def complete(srv, model, timeout=60):
    return srv.post("/v1/completions", {"model": model, "prompt": PROMPT, "max_tokens": N, "temperature": 0},
                    timeout=timeout)


def run_text(r):
    return r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout


def model_entry(srv, name):
    st, _, body = srv.request("GET", "/v1/models")
    if st != 200:
        return {}
    return next((m for m in json.loads(body)["data"] if m["id"] == name), {})


try:
    t_start = time.time()
    ref = spoke(["run", MODEL, PROMPT, "-n", str(N), "--temp", "0"], {"HF_HUB_OFFLINE": "1"})
    check(ref.returncode == 0, "spoke run on the local file works (%s)" % ref.stderr.strip()[-300:])
    expected = run_text(ref)
    model_sha = sha256(MODEL)

    # ---- 1. initial_load: true pulls on start; ready 503 -> 200 ------------------------
    print("1. serve, initial_load: true", flush=True)
    hub.clear()
    a = start("serve-initial", "models:\n" + hf_model("tiny", "org/name", True) +
              hf_model("locked", "org/gated", False, token=WRONG),
              SPOKE_TEST_LOAD_DELAY_MS="800", SPOKE_LOG="debug")
    st, _, _ = a.request("GET", "/v1/ready")
    check(st == 503, "/v1/ready is 503 while the initial_load model is pulled/loaded (got %s)" % st)
    st, _, j, _ = complete(a, "tiny")
    msg = (j or {}).get("error", {}).get("message", "")
    check(st == 503 and "loading" in msg, "completion while loading -> 503 loading (got %s %r)" % (st, msg))
    a.wait_ready(timeout=60)
    check(True, "/v1/ready -> 200 after the pull")
    check(model_entry(a, "tiny").get("status") == "ready", "/v1/models: tiny ready")
    st, _, j, _ = complete(a, "tiny")
    got = j["choices"][0]["text"] if st == 200 else None
    check(st == 200 and got == expected, "greedy completion equals spoke run (%r vs %r)" % (got, expected))
    cached = os.path.join(a.tmp, "models", "name", "main", FILE)
    check(os.path.isfile(cached) and sha256(cached) == model_sha,
          "pulled file in $SPOKE_HOME/models/name/main/ is bit-identical (%s)" %
          (os.listdir(os.path.join(a.tmp, "models")) if os.path.isdir(os.path.join(a.tmp, "models")) else "none"))
    r = spoke(["run", cached, PROMPT, "-n", str(N), "--temp", "0"], {"HF_HUB_OFFLINE": "1"})
    check(r.returncode == 0 and run_text(r) == got, "spoke run on the pulled file gives the same text")
    check(not hub.cdn_auth, "the CDN never saw an Authorization header (%s)" % hub.cdn_auth)
    hub_reqs = hub.requests(origin="hub", contains="org/name")
    check(hub_reqs and all(r["auth"] == "Bearer " + TOKEN for r in hub_reqs),
          "every hub request for org/name carried the ${secrets:HF_TOKEN} token (%d requests)" % len(hub_reqs))
    check(len(hub.requests(origin="cdn")) >= 1, "the file came from the CDN")
    dl = a.metric("spoke_download_bytes_total", "tiny")
    check(dl == os.path.getsize(MODEL), "spoke_download_bytes_total{model=tiny} == file size (%s)" % dl)

    # ---- 3. gated repo, wrong token ------------------------------------------------------
    print("3. gated repo with a wrong token", flush=True)
    check(model_entry(a, "locked").get("status") == "not_loaded", "locked (initial_load: false) not loaded yet")
    st, _, j, _ = complete(a, "locked")
    msg = (j or {}).get("error", {}).get("message", "")
    check(st == 503 and AUTH_MSG in msg, "gated completion -> 503 with the 401 advice (got %s %r)" % (st, msg))
    e = model_entry(a, "locked")
    check(e.get("status") == "error" and AUTH_MSG in e.get("error", ""),
          "/v1/models: locked status error with the 401 advice (%s)" % e)
    st, _, j, _ = complete(a, "locked")
    check(st == 503 and AUTH_MSG in (j or {}).get("error", {}).get("message", ""), "second gated request -> 503 too")
    check(hub.requests(origin="hub", contains="org/gated"), "the gated repo was asked")
    check(all(r["auth"] != "Bearer " + GATED_TOKEN for r in hub.requests(contains="org/gated")),
          "the good token of org/gated was never sent")
    st, _, body = a.request("GET", "/health")
    check(st == 200 and body == b"ok", "server healthy after the failed pull")
    st, _, _ = a.request("GET", "/v1/ready")
    check(st == 200, "/v1/ready stays 200 (locked is not initial_load)")
    st, _, j, _ = complete(a, "tiny")
    check(st == 200 and j["choices"][0]["text"] == expected, "tiny still serves after the failed pull")
    metrics = a.metrics()
    check(a.proc.poll() is None, "server still running")
    rc = a.stop()
    check(rc == 0, "SIGTERM -> exit 0 (got %s)" % rc)
    out = "".join(a.stdout_lines)
    err_text = open(a.log.name).read()
    hist = spoke(["sql", "SELECT * FROM task_history", "--db", a.db, "--json"], {})
    check(hist.returncode == 0 and "locked" in hist.stdout, "task history readable and has the gated request")
    for what, text in (("stdout", out), ("stderr", err_text), ("task history", hist.stdout + hist.stderr),
                       ("metrics", metrics)):
        for tok in (TOKEN, WRONG, WRONG[3:]):
            check(tok not in text, "a token appears in the server %s" % what)
    check("using the Hugging Face token from" in err_text, "the log names the token source (DESIGN.md s5)")
    check("no token sent there" in err_text, "the log notes the cross-origin redirect without the token")

    # ---- 2. initial_load: false: ready at once, first request pulls ------------------------
    print("2. serve, initial_load: false", flush=True)
    hub.clear()
    b = start("serve-lazy", "models:\n" + hf_model("lazy", "org/name", False), SPOKE_TEST_LOAD_DELAY_MS="500")
    st, _, _ = b.request("GET", "/v1/ready")
    check(st == 200, "/v1/ready is 200 at once with no initial_load model (got %s)" % st)
    check(model_entry(b, "lazy").get("status") == "not_loaded", "lazy not_loaded before the first request")
    check(not hub.requests(), "no hub request before the first completion (%d)" % len(hub.requests()))
    res = {}
    th = threading.Thread(target=lambda: res.update(r=complete(b, "lazy")))
    th.start()
    seen_loading = False
    while th.is_alive():
        seen_loading = seen_loading or model_entry(b, "lazy").get("status") == "loading"
        st, _, _ = b.request("GET", "/health")
        check(st == 200, "/health answers while the model is pulled")
        time.sleep(0.05)
    th.join()
    check(seen_loading, "/v1/models showed lazy loading during the first request")
    st, _, j, _ = res["r"]
    check(st == 200 and j["choices"][0]["text"] == expected,
          "first completion waits for the pull and succeeds (%s %s)" % (st, j))
    check(hub.requests(origin="cdn"), "the first request pulled from the hub/CDN")
    check(sha256(os.path.join(b.tmp, "models", "name", "main", FILE)) == model_sha, "lazy pull bit-identical")
    check(b.stop() == 0, "lazy server exits 0")

    # ---- 4. invalid revision: rejected at startup -------------------------------------------
    print("4. invalid revision in the config", flush=True)
    hub.clear()
    d = home("bad-rev")
    cfg = os.path.join(d, "spoke.yaml")
    with open(cfg, "w") as f:
        f.write("models:\n" + hf_model("bad", "org/name", True, rev="../../etc"))
    try:
        r = spoke(["serve", "-c", cfg, "--port", "0", "--no-history"], hub_env(d), timeout=10)
        rc, text = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as ex:  # it started serving: subprocess.run killed it
        rc, text = None, str(ex.stdout or "") + str(ex.stderr or "")
    check(rc is not None and rc != 0, "serve with @../../etc exits non-zero at startup (rc %s)" % rc)
    check("invalid revision" in text and REV_MSG in text, "the DESIGN.md revision message (%r)" % text[-400:])
    check("listening on" not in text, "it never started listening")
    check(not hub.requests(), "no request reached the hub (%d)" % len(hub.requests()))

    # ---- 5. spoke run org/name: pull, then offline from the cache ----------------------------
    print("5. spoke run org/name", flush=True)
    hub.clear()
    d = home("run")
    r = spoke(["run", "org/name", PROMPT, "-n", str(N), "--temp", "0"], hub_env(d))
    check(r.returncode == 0 and run_text(r) == expected,
          "spoke run org/name pulls then generates (rc %s, %r, %s)" % (r.returncode, run_text(r), r.stderr[-300:]))
    check(hub.requests(origin="cdn"), "spoke run downloaded from the CDN")
    check(not hub.cdn_auth, "the CDN never saw an Authorization header")
    check(TOKEN not in r.stdout + r.stderr, "the token is not printed by spoke run")
    hub.clear()
    r = spoke(["run", "org/name", PROMPT, "-n", str(N), "--temp", "0"], hub_env(d, HF_HUB_OFFLINE="1"))
    check(r.returncode == 0 and run_text(r) == expected,
          "HF_HUB_OFFLINE=1 spoke run org/name works from the cache (rc %s, %s)" % (r.returncode, r.stderr[-300:]))
    check(not hub.requests(), "offline run made no request (%s)" % hub.requests())
    print("elapsed %.1f s" % (time.time() - t_start))
finally:
    for s in servers:
        s.stop()
    hub.stop()
    shutil.rmtree(tmp_root, ignore_errors=True)

summary("test_e2e_hub")
