#!/bin/sh
# bench/run.sh [BUILD_DIR] - run `spoke bench` (pp512 / tg128, 2 threads, 2
# repetitions) on the synthetic models that bench/mkmodels.sh writes into
# bench/out/, and print the llama-bench-like table. Not a test: numbers
# depend on the machine (see ../shared/bench/BASELINE.md for llama.cpp's).
# Env: MODELS (space-separated files) overrides the list; THREADS, REPS, P, N.
set -eu
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
SPOKE="$BUILD/spoke"
[ -x "$SPOKE" ] || { echo "bench/run.sh: $SPOKE not built (make build)" >&2; exit 1; }
THREADS=${THREADS:-2}
REPS=${REPS:-2}
P=${P:-512}
N=${N:-128}
if [ -z "${MODELS:-}" ]; then
  MODELS=""
  for f in smol135m-q4_0 smol135m-q8_0 smol135m-q4_k_m tinyllama1b-q4_0 tinyllama1b-q8_0 tinyllama1b-q4_k_m; do
    [ -f "$HERE/out/$f.gguf" ] && MODELS="$MODELS $HERE/out/$f.gguf"
  done
fi
if [ -z "$MODELS" ]; then
  echo "bench/run.sh: no models in $HERE/out (run bench/mkmodels.sh first)" >&2
  exit 1
fi
grep -m1 "model name" /proc/cpuinfo >&2 || true
# shellcheck disable=SC2086
SPOKE_LOG=warn "$SPOKE" bench $MODELS -p "$P" -n "$N" -r "$REPS" -t "$THREADS"
