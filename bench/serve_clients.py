#!/usr/bin/env python3
"""bench/serve_clients.py PORT MODEL_NAME CLIENTS N_TOKENS LONG_PROMPT_TOKENS [PROMPT_TOKENS [SERVER_PID [REPS]]] -
continuous batching through `spoke serve` (run by bench/serve.sh --clients; not a test).

1. For each N in CLIENTS (e.g. 1,4,8): N streaming greedy clients start together, each
   with its own PROMPT_TOKENS-token prompt (default 128, sized by a probe request; the
   prompts differ from their first word, so no client reuses another's cached prefix),
   and each streams N_TOKENS tokens. What is counted is what `spoke bench --parallel N
   --pp PROMPT_TOKENS --tg N_TOKENS` counts, so the two compare as they are: decode
   only, while all N streams run. The window runs from the LAST client's first token
   (every prompt is prefilled, every stream decodes) to the FIRST client's last token
   (no stream has ended yet); aggregate t/s = tokens all clients received inside the
   window / its length. Left out on purpose, as the bench leaves them out: prompt
   processing and time to first token, the skew of the clients' starts (a late
   client's prefill runs while the others decode), and the tail where fewer than N
   streams run. Tokens are counted from the SSE chunks (one per token with text),
   scaled per stream by usage.completion_tokens / chunks when a chunk carried several
   tokens. If the N streams never all ran at once, the aggregate is nan. Columns:
   aggregate t/s; mean per-client t/s (each over its own first to last token); x the
   N = 1 aggregate of the same run; the window's share of the N-client run's wall
   time; "first..last" t/s = every token after each client's first / the time from
   the first client's first token to the last client's last (what this script
   counted before: the start skew and the tail included, so it is lower); the CPU
   time (user + sys) per wall second of the whole N-client run of this Python
   process (the clients) and of the server (SERVER_PID, from /proc): both share the
   machine's cores, and on a small machine the clients' share is real. Each N runs
   REPS times (default 3); the row is the run with the median aggregate, and the
   last column lists every run's aggregate (the window is short: it is noisy).
   Goal (issue 9): aggregate >= 0.95x `spoke bench --parallel` at the same N.
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
import os
import resource
import statistics
import sys
import threading
import time

port, name = int(sys.argv[1]), sys.argv[2]
clients = [int(x) for x in sys.argv[3].split(",")]
n_tok, long_tokens = int(sys.argv[4]), int(sys.argv[5])
prompt_len = int(sys.argv[6]) if len(sys.argv) > 6 else 128
server_pid = int(sys.argv[7]) if len(sys.argv) > 7 else 0
reps = max(1, int(sys.argv[8])) if len(sys.argv) > 8 else 3
WORDS = ["Once", "upon", "a", "time", "there", "was", "a", "little", "robot", "who", "liked", "to", "sing"]


def stream(prompt, max_tokens, stamps, started=None, usage=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = {"model": name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    if usage is not None:
        body["stream_options"] = {"include_usage": True}
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if started:
        started.set()
    while True:
        line = r.fp.readline()
        if not line or line.startswith(b"data: [DONE]"):
            break
        if line.startswith(b"data: {"):
            if b'"finish_reason":null' in line:  # a token chunk: no JSON parsing on the hot path
                stamps.append(time.perf_counter())
            elif usage is not None and b'"usage":{' in line:
                usage.append(json.loads(line[6:])["usage"]["completion_tokens"])
    c.close()


def prompt_tokens(prompt):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    c.request("POST", "/v1/completions", json.dumps({"model": name, "prompt": prompt, "max_tokens": 1,
                                                      "temperature": 0}), {"Content-Type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return body["usage"]["prompt_tokens"] if r.status == 200 else 0


def sized_prompt(i, tokens):
    """A prompt of about `tokens` tokens, its own from the first word on (client i):
    words per token measured on the whole word list, then once more on the cut."""
    words = ["%d" % i] + [WORDS[(k * (i + 1) + i) % len(WORDS)] for k in range(2 * tokens)]
    n = len(words)
    for _ in range(2):
        got = prompt_tokens(" ".join(words[:n]))
        if got == tokens or not got:
            break
        n = max(1, min(len(words), int(n * tokens / got)))
    return " ".join(words[:n])


def cpu_server():
    try:
        with open("/proc/%d/stat" % server_pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


for _ in range(6000):  # the model loads after the server listens
    try:
        rc = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        rc.request("GET", "/v1/ready")
        if rc.getresponse().status == 200:
            break
    except OSError:
        pass
    time.sleep(0.1)
prompts = [sized_prompt(i, prompt_len) for i in range(max(clients))]
n_prompt = [prompt_tokens(p) for p in prompts]


def run_clients(n, max_tokens):
    stamps, usage = [[] for _ in range(n)], [[] for _ in range(n)]
    ts = [threading.Thread(target=stream, args=(prompts[i], max_tokens, stamps[i], None, usage[i]))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return stamps, [u[0] if u else 0 for u in usage]


# warm-up
run_clients(1, 8)
base = None
print("prompts: %d clients' prompts of %d..%d tokens (goal %d), %d tokens each generated" %
      (len(prompts), min(n_prompt), max(n_prompt), prompt_len, n_tok))
print("| clients | tokens/client | aggregate t/s | per client t/s | x 1 client | window % | first..last t/s | "
      "client CPU/s | server CPU/s | aggregate of each run |")
print("| ------: | ------------: | ------------: | -------------: | ---------: | -------: | --------------: | "
      "-----------: | -----------: | :-------------------- |")
def measure(n):
    """One run of n clients: the row's numbers (see the top comment)."""
    c0, s0, w0 = cpu_self(), cpu_server(), time.perf_counter()
    stamps, ntok = run_clients(n, n_tok)
    c1, s1, w1 = cpu_self(), cpu_server(), time.perf_counter()
    live = [s for s in stamps if len(s) > 1]
    t0 = max(s[0] for s in live) if live else 0  # every stream decodes from here
    t1 = min(s[-1] for s in live) if live else 0  # ... to here
    got = 0.0
    for s, k in zip(stamps, ntok):
        scale = k / len(s) if s and k > len(s) else 1.0  # chunks that carried several tokens
        got += scale * sum(1 for x in s if t0 < x <= t1)
    agg = got / (t1 - t0) if t1 > t0 and len(live) == n else float("nan")
    span = max(s[-1] for s in live) - min(s[0] for s in live) if live else 0
    whole = sum(len(s) - 1 for s in live) / span if span > 0 else float("nan")
    per = statistics.mean((len(s) - 1) / (s[-1] - s[0]) for s in live if s[-1] > s[0]) if live else 0.0
    return {"agg": agg, "per": per, "win": 100.0 * (t1 - t0) / (w1 - w0), "whole": whole,
            "ntok": "/".join(sorted(set(str(k) for k in ntok))), "ccpu": (c1 - c0) / (w1 - w0),
            "scpu": (s1 - s0) / (w1 - w0)}


for n in clients:
    runs = [measure(n) for _ in range(reps)]
    # the run with the median aggregate (nan, never all N at once, sorts first)
    r = sorted(runs, key=lambda x: (x["agg"] == x["agg"], x["agg"]))[len(runs) // 2]
    base = r["agg"] if n == 1 else base
    print("| %7d | %13s | %13.2f | %14.2f | %10s | %8.1f | %15.2f | %12.2f | %12.2f | %s |" %
          (n, r["ntok"], r["agg"], r["per"], "%.2f" % (r["agg"] / base) if base else "-", r["win"], r["whole"],
           r["ccpu"], r["scpu"], " ".join("%.1f" % x["agg"] for x in runs)))
    sys.stdout.flush()

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
