#!/usr/bin/env bash
# bench/compare.sh [LLAMA_BENCH] - spoke against llama.cpp (or ik_llama.cpp) on
# the same files, back to back: for each model, `spoke bench --json` and then
# (when a llama-bench binary is given) `llama-bench -o json` with the same
# -p/-n/-r/-t, then one table of t/s and spoke/llama ratios, with the ISA,
# threads, measured read bandwidth and spoke's peak RSS. Not a test; timings
# on a shared machine are noisy: compare ratios from one run.
# Env: MODELS (default: bench/out/*.gguf except the F32 ones, see
# bench/mkmodels.sh), P=512 N=128 R=3 T=$(nproc), BUILD (default build),
# MEMBW=0 skips the bandwidth probe (../shared/bench/membw.c), LLAMA_ARGS
# (extra llama-bench arguments, e.g. "-rtr 1" for ik_llama.cpp's run-time
# repacking). PARALLEL=1,4,8: also batched decode per model, `spoke bench
# --parallel` (128-token prompts, 128 generated each) against
# LLAMA_BATCHED (a llama-batched-bench binary, same shape) when given.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
spoke=$build/spoke
llama=${1:-}
shared=${SPOKE_SHARED:-$root/../shared}
P=${P:-512}; N=${N:-128}; R=${R:-3}; T=${T:-$(nproc)}
[ -x "$spoke" ] || { echo "compare: $spoke not built (make build)" >&2; exit 2; }
[ -z "$llama" ] || [ -x "$llama" ] || { echo "compare: $llama is not an executable llama-bench" >&2; exit 2; }
command -v python3 >/dev/null || { echo "compare: python3 needed for the table" >&2; exit 2; }
if [ -n "${MODELS:-}" ]; then
  read -r -a models <<<"$MODELS"
else
  mapfile -t models < <(ls "$root"/bench/out/*.gguf 2>/dev/null | grep -v -- '-f32\.gguf$' || true)
fi
[ "${#models[@]}" -gt 0 ] || { echo "compare: no models (run bench/mkmodels.sh or set MODELS)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/spoke-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
membw_args=()
if [ "${MEMBW:-1}" != 0 ] && [ -f "$shared/bench/membw.c" ] && command -v gcc >/dev/null; then
  gcc -O3 -march=native -pthread -o "$work/membw" "$shared/bench/membw.c"
  bw=$("$work/membw" -t "$T" | awk '/^read/ {print $3}')
  [ -n "$bw" ] && membw_args=(--membw "$bw") && echo "compare: read bandwidth $bw GB/s ($T threads)"
fi
i=0
for m in "${models[@]}"; do
  echo "compare: $(basename "$m")" >&2
  "$spoke" bench "$m" -p "$P" -n "$N" -r "$R" -t "$T" --json "${membw_args[@]}" >"$work/spoke-$i.json"
  if [ -n "$llama" ]; then
    # shellcheck disable=SC2086
    "$llama" -m "$m" -p "$P" -n "$N" -r "$R" -t "$T" ${LLAMA_ARGS:-} -o json >"$work/llama-$i.json" 2>/dev/null || echo '[]' >"$work/llama-$i.json"
  fi
  if [ -n "${PARALLEL:-}" ]; then
    "$spoke" bench "$m" --parallel "$PARALLEL" -t "$T" --json "${membw_args[@]}" >"$work/spar-$i.json"
    if [ -n "${LLAMA_BATCHED:-}" ]; then
      maxp=$(echo "$PARALLEL" | tr , '\n' | sort -n | tail -1)
      "$LLAMA_BATCHED" -m "$m" -c $((maxp * 256 + 256)) -b 2048 -ub 512 -npp 128 -ntg 128 -npl "$PARALLEL" -t "$T" \
        2>&1 | awk -F'|' '/^\| *128 \| *128 \|/ {gsub(/ /, ""); print $4, $9}' >"$work/lpar-$i.txt" || true
    fi
  fi
  i=$((i + 1))
done
python3 - "$work" "$i" "${models[@]}" <<'PY'
import json, os, sys
work, n, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return []
print("| model | test | spoke t/s | llama t/s | ratio | spoke peak RSS MiB | isa | threads | membw GB/s |")
print("|---|---|---:|---:|---:|---:|---|---:|---:|")
for i in range(n):
    sp = load(os.path.join(work, "spoke-%d.json" % i))
    ll = load(os.path.join(work, "llama-%d.json" % i))
    for r in sp:
        test = r["test"]
        lt = None
        for q in ll:
            qt = "pp%d" % q.get("n_prompt", 0) if q.get("n_gen", 0) == 0 else "tg%d" % q.get("n_gen", 0)
            if qt == test:
                lt = q.get("avg_ts")
        ratio = "%.2f" % (r["avg_ts"] / lt) if lt else "-"
        print("| %s | %s | %.2f | %s | %s | %.0f | %s | %d | %s |" % (
            os.path.basename(models[i]), test, r["avg_ts"], "%.2f" % lt if lt else "-", ratio,
            r.get("peak_rss_mib", 0), r.get("isa", "?"), r.get("n_threads", 0),
            "%.2f" % r["membw_gbs"] if "membw_gbs" in r else "-"))
par = [i for i in range(n) if os.path.exists(os.path.join(work, "spar-%d.json" % i))]
if par:
    print()
    print("| model | sequences | spoke decode t/s | x 1 seq | llama decode t/s | x 1 seq | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
for i in par:
    sp = load(os.path.join(work, "spar-%d.json" % i))
    ll = {}
    try:
        for line in open(os.path.join(work, "lpar-%d.txt" % i)):
            b, ts = line.split()
            ll[int(b)] = float(ts)
    except (OSError, ValueError):
        pass
    base = next((r["decode_ts"] for r in sp if r["n_parallel"] == 1), None)
    for r in sp:
        b, ts = r["n_parallel"], r["decode_ts"]
        lt = ll.get(b)
        print("| %s | %d | %.2f | %s | %s | %s | %s |" % (
            os.path.basename(models[i]), b, ts, "%.2f" % (ts / base) if base else "-",
            "%.2f" % lt if lt else "-", "%.2f" % (lt / ll[1]) if lt and ll.get(1) else "-",
            "%.2f" % (ts / lt) if lt else "-"))
PY
