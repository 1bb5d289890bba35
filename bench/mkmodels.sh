#!/usr/bin/env bash
# bench/mkmodels.sh [BUILD_DIR] - build the synthetic benchmark models of
# ../shared/bench/BASELINE.md into bench/out/ (git-ignored): compile mkgguf.c,
# write smol135m-f32.gguf and tinyllama1b-f32.gguf with the exact commands
# there, check their md5, and quantize them with `spoke quantize` into Q8_0,
# Q4_0 and Q4_K_M (and tinyllama F16), printing each file's tensor types.
# Not a test: takes minutes and ~10 GB of disk. Files already present and
# newer than their source are kept (delete bench/out to redo everything).
# Env: MODELS="smol135m tinyllama1b" to pick models, THREADS for quantize.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shared=${SPOKE_SHARED:-$root/../shared}
out=$root/bench/out
spoke=$build/spoke
models=${MODELS:-"smol135m tinyllama1b"}
threads=${THREADS:-$(nproc)}
[ -x "$spoke" ] || { echo "mkmodels: $spoke not built (make build)" >&2; exit 1; }
[ -f "$shared/bench/mkgguf.c" ] || { echo "mkmodels: $shared/bench/mkgguf.c not found" >&2; exit 1; }
mkdir -p "$out"
gcc -O2 -o "$out/mkgguf" "$shared/bench/mkgguf.c"

declare -A md5=(
  [smol135m]=ada186365d81d64062de1a9f2a1743a4
  [tinyllama1b]=e4b86dce9f134ffea4ab39e309d6d4b7
)
declare -A args=(
  [smol135m]="--name smol135m-synthetic --seed 1234 --vocab 49152 --embd 576 --layers 30 --heads 9 --heads-kv 3 --ff 1536 --ctx 8192 --rope-theta 100000 --eps 1e-5"
  [tinyllama1b]="--name tinyllama1b-synthetic --seed 1234 --vocab 32000 --embd 2048 --layers 22 --heads 32 --heads-kv 4 --ff 5632 --ctx 2048 --rope-theta 10000 --eps 1e-5"
)
declare -A quants=(
  [smol135m]="Q8_0 Q4_0 Q4_K_M"
  [tinyllama1b]="Q8_0 Q4_0 Q4_K_M F16"
)

for m in $models; do
  f32=$out/$m-f32.gguf
  if [ ! -f "$f32" ]; then
    echo "mkmodels: writing $f32"
    # shellcheck disable=SC2086
    "$out/mkgguf" -o "$f32.part" ${args[$m]}
    mv "$f32.part" "$f32"
  fi
  got=$(md5sum "$f32" | cut -d' ' -f1)
  if [ "$got" != "${md5[$m]}" ]; then
    echo "mkmodels: $f32 md5 $got, expected ${md5[$m]}" >&2
    exit 1
  fi
  echo "mkmodels: $m-f32.gguf md5 ok ($got)"
  for q in ${quants[$m]}; do
    dst=$out/$m-$(echo "$q" | tr 'A-Z' 'a-z').gguf
    if [ -f "$dst" ] && [ "$dst" -nt "$f32" ] && [ "$dst" -nt "$spoke" ]; then
      echo "mkmodels: $dst exists"
      continue
    fi
    echo "mkmodels: quantize $m $q"
    "$spoke" quantize "$f32" "$dst" "$q" --threads "$threads"
  done
done
echo "mkmodels: done; files in $out"
