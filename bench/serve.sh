#!/usr/bin/env bash
# bench/serve.sh [BUILD_DIR] [MODEL.gguf] - server overhead benchmark (not a test).
#  1. decode tokens/s through `spoke serve` (streaming, one client, greedy) vs
#     `spoke run` on the same model and prompt, back to back; goal: < 2 % overhead.
#  2. 429 latency under a 10x overload burst (max_concurrency 1, queue 16:
#     170 simultaneous requests); goal: p99 < 50 ms.
# Env: N (tokens, default 200), REPS (default 3), T (threads for both, default 1), PROMPT.
#  --clients 1,4,8 (first argument): continuous batching instead: aggregate
#     streaming t/s of N clients at once, counted as `spoke bench --parallel N
#     --pp PP --tg N` counts (decode only, while all N streams run: see
#     bench/serve_clients.py), the clients' and the server's CPU time, and the
#     p99 inter-token gap of 4 streams while a LONG-token prompt arrives.
#     Env: N (tokens per client, default 128), PP (prompt tokens per client,
#     default 128), REPS (runs per N, the median shown; default 3), LONG
#     (default 2000), CTX (default 2560), T (default 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=
if [ "${1:-}" = "--clients" ]; then
  clients=$2
  shift 2
fi
build=${1:-$root/build}
model=${2:-$root/models/stories260K.gguf}
spoke=$build/spoke
if [ -n "$clients" ]; then
  tmp=$(mktemp -d)
  maxc=$(echo "$clients,5" | tr , '\n' | sort -n | tail -1)
  printf 'models:\n  - from: file:%s\n    name: bench\n    params: {max_concurrency: %s, queue_size: 16, threads: %s, context_size: %s}\nserver:\n  limits: {max_tokens: 100000, timeout_s: 3600}\n' \
    "$model" "$maxc" "${T:-2}" "${CTX:-2560}" > "$tmp/spoke.yaml"
  SPOKE_LOG=error "$spoke" serve -c "$tmp/spoke.yaml" --port 0 --no-history > "$tmp/out" 2>&1 &
  spid=$!
  trap 'kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
  for _ in $(seq 600); do grep -q "listening on" "$tmp/out" && break; sleep 0.1; done
  port=$(grep -o '127.0.0.1:[0-9]*' "$tmp/out" | head -1 | cut -d: -f2)
  echo "model: $model  clients: $clients  tokens per client: ${N:-128}  max_concurrency: $maxc"
  python3 "$root/bench/serve_clients.py" "$port" bench "$clients" "${N:-128}" "${LONG:-2000}" "${PP:-128}" "$spid" "${REPS:-3}"
  exit 0
fi
N=${N:-200}
REPS=${REPS:-3}
T=${T:-1}
PROMPT=${PROMPT:-"Once upon a time, there was a little girl named Lily."}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

echo "model: $model  tokens: $N  reps: $REPS"
# ---- through the server
cat > "$tmp/spoke.yaml" <<EOF
models:
  - from: file:$model
    name: bench
    params: {max_concurrency: 1, queue_size: 16, threads: $T}
server:
  limits: {max_tokens: 100000}
EOF
SPOKE_LOG=error "$spoke" serve -c "$tmp/spoke.yaml" --port 0 --no-history > "$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/out" && break; sleep 0.1; done
port=$(grep -o '127.0.0.1:[0-9]*' "$tmp/out" | head -1 | cut -d: -f2)
python3 - "$port" "$N" "$REPS" "$PROMPT" "$spoke" "$model" "$T" <<'EOF'
import http.client, json, re, statistics, subprocess, sys, threading, time
port, n, reps, prompt = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
spoke, model, threads = sys.argv[5], sys.argv[6], sys.argv[7]
def run_once():
    p = subprocess.run([spoke, "run", model, prompt, "-n", str(n), "-t", threads, "--temp", "0"],
                       capture_output=True, text=True)
    m = re.search(r"decode (\d+) tokens, ([0-9.]+) ms, ([0-9.]+) t/s", p.stderr)
    return float(m.group(3)) if m else 0.0
def ready():
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/v1/ready")
            if c.getresponse().status == 200: return
        except OSError: pass
        time.sleep(0.1)
ready()
def serve_once():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps({"model": "bench", "prompt": prompt, "max_tokens": n,
              "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    t_first = t_last = None; ntok = 0; buf = b""
    while True:
        line = r.fp.readline()
        if not line: break
        if line.startswith(b"data: {"):
            if b'"finish_reason":null' in line:  # a token chunk: no JSON parsing on the hot path
                now = time.perf_counter()
                t_first = t_first or now; t_last = now
            elif b'"usage":{' in line:
                ntok = json.loads(line[6:])["usage"]["completion_tokens"]
        elif line.startswith(b"data: [DONE]"): break
    c.close()
    if t_first and t_last > t_first and ntok > 1:
        return (ntok - 1) / (t_last - t_first)
    return 0.0
runs, served = [], []
for _ in range(reps):  # back to back pairs
    runs.append(run_once())
    served.append(serve_once())
ratios = sorted(s / r for s, r in zip(served, runs) if r > 0)
print("decode t/s (median of %d back-to-back pairs): spoke run %.1f | server (streaming, client-side) %.1f | "
      "overhead (median of pair ratios) %.2f %% [pairs: %s]" % (reps, statistics.median(runs),
      statistics.median(served), 100.0 * (1 - statistics.median(ratios)),
      " ".join("%.0f/%.0f" % (a, b) for a, b in zip(served, runs))))
# ---- 429 latency under a 10x overload burst: one client thread, pre-opened
# connections, every request written back to back, replies timed with select
import selectors, socket
burst = 10 * (1 + 16)
body = json.dumps({"model": "bench", "prompt": prompt, "max_tokens": 64, "temperature": 0}).encode()
req = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(burst)]
time.sleep(0.2)
sel = selectors.DefaultSelector()
t0 = {}
for s in socks:
    t0[s] = time.perf_counter()
    s.sendall(req)
    sel.register(s, selectors.EVENT_READ)
lat429, codes, pending = [], [], set(socks)
while pending:
    for key, _ in sel.select(timeout=60):
        s = key.fileobj
        data = s.recv(65536)
        if not data or s not in t0:
            sel.unregister(s); pending.discard(s); continue
        code = int(data.split(b" ", 2)[1])
        codes.append(code)
        if code == 429:
            lat429.append((time.perf_counter() - t0[s]) * 1000)
        del t0[s]
        if code == 429:
            sel.unregister(s); pending.discard(s)
        else:
            s.settimeout(600)
            while s.recv(65536): pass
            sel.unregister(s); pending.discard(s)
for s in socks: s.close()
lat429.sort()
p = lambda q: lat429[min(len(lat429) - 1, int(q * len(lat429)))] if lat429 else float("nan")
print("overload burst: %d requests -> %d ok, %d 429 | 429 latency ms p50 %.2f p99 %.2f max %.2f" %
      (burst, codes.count(200), codes.count(429), p(0.5), p(0.99), lat429[-1] if lat429 else float("nan")))
EOF
