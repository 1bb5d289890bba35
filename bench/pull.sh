#!/usr/bin/env bash
# bench/pull.sh [BUILD_DIR] [SIZE_MIB] - download throughput of `spoke pull`
# against `curl -o`, back to back, from the fake hub on loopback
# (tests/integration/hub/fakehub.py). Both write into the same directory;
# spoke also hashes (sha256), fsyncs and renames, as it always does.
# Also times `curl -o` followed by an fsync of the file, which is the same
# durability spoke pays for. BENCH_DIR picks the filesystem (default $TMPDIR
# or /tmp; /dev/shm takes the disk out of the comparison).
# Prints the rates and the ratios (goal: spoke >= 0.9x curl). Not a test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
mib=${2:-1024}
spoke="$root/$build/spoke"
[ -x "$spoke" ] || { echo "bench/pull.sh: build spoke first ($spoke missing)" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench/pull.sh: curl not found" >&2; exit 2; }
work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/spoke-bench-pull.XXXXXX")
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
echo "bench/pull: making a ${mib} MiB file"
head -c "$((mib * 1024 * 1024))" /dev/urandom > "$work/bench-Q4_K_M.gguf"
python3 "$root/tests/integration/hub/fakehub.py" --serve org/bench "$work/bench-Q4_K_M.gguf" \
    --port-file "$work/ports" & hub_pid=$!
for _ in $(seq 100); do [ -f "$work/ports" ] && break; sleep 0.1; done
read -r hub_port _ < "$work/ports"
url="http://127.0.0.1:$hub_port/org/bench/resolve/main/bench-Q4_K_M.gguf"
curl -sI "$url" > /dev/null   # warm: the fake hub hashes the file once
export NO_PROXY='*' no_proxy='*'
now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.1f' % ($mib / (float(sys.argv[2]) - float(sys.argv[1]))))" "$1" "$2"; }
results=()
for round in 1 2 3; do
  rm -rf "$work/curl.out" "$work/home"
  sync
  t0=$(now); curl -sSfL -o "$work/curl.out" "$url"; t1=$(now)
  c=$(rate "$t0" "$t1")
  rm -f "$work/curl.out"; sync
  t0=$(now); curl -sSfL -o "$work/curl.out" "$url"
  python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$work/curl.out"
  t1=$(now)
  cf=$(rate "$t0" "$t1")
  sync
  t0=$(now)
  SPOKE_HOME="$work/home" HF_ENDPOINT="http://127.0.0.1:$hub_port" SPOKE_LOG=info \
    "$spoke" pull org/bench --file bench-Q4_K_M.gguf > /dev/null 2> "$work/spoke.err" < /dev/null
  t1=$(now)
  s=$(rate "$t0" "$t1")
  cmp -s "$work/curl.out" "$work/home/models/bench/main/bench-Q4_K_M.gguf" || { echo "bench/pull: files differ" >&2; exit 1; }
  echo "round $round: curl -o ${c} MiB/s, curl -o + fsync ${cf} MiB/s, spoke pull ${s} MiB/s ($(grep -o "downloaded.*" "$work/spoke.err"))"
  results+=("$c $s $cf")
done
python3 - "${results[@]}" <<'PY'
import sys
pairs = [tuple(map(float, a.split())) for a in sys.argv[1:]]
med = lambda v: sorted(v)[len(v) // 2]
for label, f in (("best", max), ("median", med)):
    c, s, cf = (f([p[i] for p in pairs]) for i in range(3))
    print("%-6s curl -o %.1f MiB/s, curl -o + fsync %.1f MiB/s, spoke pull %.1f MiB/s: "
          "ratio %.2fx of curl -o, %.2fx of curl -o + fsync (goal >= 0.90x)" % (label, c, cf, s, s / c, s / cf))
PY
