#!/usr/bin/env bash
# bench/compare.sh [LLAMA_BENCH] - spoke against llama.cpp (or ik_llama.cpp) on
# the same files, back to back: for each model, `spoke bench --json` and then
# (when a llama-bench binary is given) `llama-bench -o json` with the same
# -p/-n/-r/-t, then one table of t/s and spoke/llama ratios, with the ISA,
# threads, measured read bandwidth and spoke's peak RSS. Not a test; timings
# on a shared machine are noisy: compare ratios from one run.
# Env: MODELS (default: bench/out/*.gguf except the F32 ones, see
# bench/mkmodels.sh), P=512 N=128 R=3 T=$(nproc), BUILD (default build),
# MEMBW=0 skips the bandwidth probe (../shared/bench/membw.c).
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
    "$llama" -m "$m" -p "$P" -n "$N" -r "$R" -t "$T" -o json >"$work/llama-$i.json" 2>/dev/null || echo '[]' >"$work/llama-$i.json"
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
PY
