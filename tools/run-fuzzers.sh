#!/usr/bin/env bash
# tools/run-fuzzers.sh BUILD_DIR SECONDS - run every built libFuzzer harness
# (BUILD_DIR/fuzz_*) for SECONDS on a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name>/). Fails if any harness finds a crash, a leak or
# a timeout; the input that did it is kept in BUILD_DIR/fuzz-artifacts/<name>/
# (add it to the harness's corpus once fixed, as a regression seed).
set -euo pipefail
build=${1:-build-fuzz}
secs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
n=0; failed=0
for f in "$build"/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  work=$(mktemp -d)
  if [ -d "$root/tests/fuzz/corpus/$name" ]; then
    cp -r "$root/tests/fuzz/corpus/$name/." "$work/"
  fi
  extra=()
  [ -f "$root/tests/fuzz/$name.dict" ] && extra+=("-dict=$root/tests/fuzz/$name.dict")
  echo "fuzz: $name for ${secs}s"
  if ! SPOKE_SHARED="$(cd "$root/.." && pwd)/shared" "$f" -max_total_time="$secs" -rss_limit_mb=4096 \
        -max_len=65536 -timeout=10 -artifact_prefix="$work/" "${extra[@]}" "$work" >"$work/log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 "$work/log"; failed=$((failed+1))
    keep="$build/fuzz-artifacts/$name"; mkdir -p "$keep"
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
      cp "$a" "$keep/" && echo "fuzz: reproducer kept: $keep/$(basename "$a")"
    done
  else
    tail -1 "$work/log"
  fi
  rm -rf "$work"
  n=$((n+1))
done
echo "fuzz: $n harnesses, $failed failed"
[ "$failed" -eq 0 ]
