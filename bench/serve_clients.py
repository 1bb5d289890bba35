#!/usr/bin/env python3
"""bench/serve_clients.py PORT MODEL_NAME CLIENTS N_TOKENS LONG_PROMPT_TOKENS - continuous batching
through `spoke serve` (run by bench/serve.sh --clients; not a test).

1. For each N in CLIENTS (e.g. 1,4,8): N streaming greedy clients with different
   prompts start together and each streams N_TOKENS tokens; aggregate t/s =
   all tokens streamed / wall time from the first token to the last (decode
   only), per-client t/s beside it, and the aggregate as a multiple of N = 1
   measured in the same run.
2. Chunked prefill: 4 streams decode; their inter-token gaps are measured with
   nothing else running (p50 = "unloaded"), then a request with a
   LONG_PROMPT_TOKENS-token prompt arrives while they run; the p99 of their
   gaps from its arrival until its first token is compared to the unloaded p50
   (goal: <= 3x), measured before it arrives and again after it ended (the
   streams' contexts grow meanwhile, so their decode steps cost more). The
   long prompt is LONG_PROMPT_TOKENS tokens: words per token are measured on a
   probe request first (a prompt over the context would be refused)."""
import http.client
import json
import statistics
import sys
import threading
import time

port, name = int(sys.argv[1]), sys.argv[2]
clients = [int(x) for x in sys.argv[3].split(",")]
n_tok, long_tokens = int(sys.argv[4]), int(sys.argv[5])
WORDS = ["Once", "upon", "a", "time", "there", "was", "a", "little", "robot", "who", "liked", "to", "sing"]


def stream(prompt, max_tokens, stamps, started=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    c.request("POST", "/v1/completions", json.dumps({"model": name, "prompt": prompt, "max_tokens": max_tokens,
                                                      "temperature": 0, "stream": True}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    if started:
        started.set()
    while True:
        line = r.fp.readline()
        if not line or line.startswith(b"data: [DONE]"):
            break
        if line.startswith(b"data: {") and b'"finish_reason":null' in line:
            stamps.append(time.perf_counter())
    c.close()


def run_clients(n, max_tokens):
    stamps = [[] for _ in range(n)]
    ts = [threading.Thread(target=stream, args=("%s %d" % (" ".join(WORDS[i % 5:]), i), max_tokens, stamps[i]))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return stamps


# warm-up
run_clients(1, 8)
base = None
print("| clients | tokens | aggregate t/s | per client t/s | x 1 client |")
print("| ------: | -----: | ------------: | -------------: | ---------: |")
for n in clients:
    stamps = run_clients(n, n_tok)
    first = min(s[0] for s in stamps if s)
    last = max(s[-1] for s in stamps if s)
    total = sum(len(s) for s in stamps) - n  # tokens after each client's first
    agg = total / (last - first) if last > first else 0.0
    per = statistics.mean((len(s) - 1) / (s[-1] - s[0]) for s in stamps if len(s) > 1 and s[-1] > s[0])
    base = agg if n == 1 else base
    print("| %7d | %6d | %13.2f | %14.2f | %10s |" % (n, n_tok, agg, per, "%.2f" % (agg / base) if base else "-"))
    sys.stdout.flush()

def prompt_tokens(prompt):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    c.request("POST", "/v1/completions", json.dumps({"model": name, "prompt": prompt, "max_tokens": 1,
                                                      "temperature": 0}), {"Content-Type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return body["usage"]["prompt_tokens"] if r.status == 200 else 0


# LONG_PROMPT_TOKENS tokens: words per token measured on a 200-word probe
# (other word order, so no cached prefix helps the long prompt)
probe = prompt_tokens(" ".join(WORDS[(i + 7) % len(WORDS)] for i in range(200)))
n_words = int(long_tokens * 200 / probe) if probe else long_tokens
long_prompt = " ".join(WORDS[i % len(WORDS)] for i in range(n_words))

# chunked prefill: 4 streams, then a long prompt arrives
stamps = [[] for _ in range(4)]
ts = [threading.Thread(target=stream, args=("%s %d" % (" ".join(WORDS), i), 100000, stamps[i])) for i in range(4)]
for t in ts:
    t.daemon = True
    t.start()
time.sleep(0.5)
while min(len(s) for s in stamps) < 20:
    time.sleep(0.05)
t_quiet0 = time.perf_counter()
time.sleep(3.0)
t_quiet1 = time.perf_counter()


def gaps(t0, t1):
    out = []
    for s in stamps:
        sel = [x for x in list(s) if t0 <= x <= t1]
        out += [b - a for a, b in zip(sel, sel[1:])]
    return sorted(out)


quiet = gaps(t_quiet0, t_quiet1)
long_stamps = []
t_arrive = time.perf_counter()
lt = threading.Thread(target=stream, args=(long_prompt, 4, long_stamps))
lt.start()
lt.join()
if not long_stamps:
    print("the long prompt (%d words) produced no token (refused or failed): nothing measured" % n_words)
    sys.exit(1)
t_first_long = long_stamps[0]
# unloaded again once the long request has ended: the streams' contexts grew
# while it was prefilled (their attention costs more), so both baselines count
t_after0 = time.perf_counter() + 0.5
time.sleep(3.5)
after = gaps(t_after0, time.perf_counter())
loaded = gaps(t_arrive, t_first_long + 0.5)
pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
p50q, p50a, p99l = pct(quiet, .5), pct(after, .5), pct(loaded, .99)
print("long prompt (~%d tokens, %d words) arriving while 4 streams decode: its first token after %.2f s; stream "
      "gaps: unloaded p50 %.1f ms before / %.1f ms after, p99 while it was prefilled %.1f ms (%.2fx / %.2fx; "
      "goal <= 3x), max %.1f ms" %
      (long_tokens, n_words, t_first_long - t_arrive, p50q * 1000, p50a * 1000, p99l * 1000, p99l / p50q,
       p99l / p50a, (loaded[-1] if loaded else 0) * 1000))
print("  gaps ms: unloaded before (%d) p50 %.1f p99 %.1f | while prefilled (%d) p50 %.1f p90 %.1f p99 %.1f | "
      "unloaded after (%d) p50 %.1f p99 %.1f" %
      (len(quiet), p50q * 1000, pct(quiet, .99) * 1000, len(loaded), pct(loaded, .5) * 1000,
       pct(loaded, .9) * 1000, p99l * 1000, len(after), p50a * 1000, pct(after, .99) * 1000))
sys.stdout.flush()
