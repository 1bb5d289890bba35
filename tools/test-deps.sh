#!/usr/bin/env bash
# tools/test-deps.sh - install the tools only the tests use (run by `make test`,
# not by `make run`): Debian packages (tmux for the interactive `spoke run`
# test, chromium for the web-console test, haproxy for the multi-replica test,
# python3-numpy for the embedding test's reference vectors)
# and the pinned npm packages under tests/ (the official `ollama` client, from
# tests/integration/ollama/package-lock.json, into .cache/ollama-js, and the
# official `openai` SDK, from tests/integration/openai/package-lock.json, into
# .cache/openai-js); python3-yaml
# for the Kubernetes manifest check.
# Best effort: whatever cannot be installed (no root, no network, no npm
# registry) is reported and the tests that need it skip themselves.
# `tools/test-deps.sh --check` only reports what is missing.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
PKGS=(tmux chromium haproxy python3-yaml python3-numpy)
registry="${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org/}"

# node and npm only matter when the npm registry can be reached (the npm
# client tests skip otherwise): do not install them for nothing
npm_reachable() { curl -sS -m 5 -o /dev/null "$registry" 2>/dev/null; }
if npm_reachable; then
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # a node/npm from elsewhere (nvm, nodesource) is as good as Debian's
    case "$p" in nodejs) command -v node >/dev/null 2>&1 && continue;; npm) command -v npm >/dev/null 2>&1 && continue;; esac
    missing+=("$p")
  fi
done

# the pinned npm clients: <tests/integration dir> = <package>, installed into .cache/<dir>-js
JS_CLIENTS=(ollama openai)
js_ok() { [ -f "$root/.cache/$1-js/node_modules/$1/package.json" ] &&
          cmp -s "$root/tests/integration/$1/package-lock.json" "$root/.cache/$1-js/package-lock.json"; }

if [ "${1:-}" = "--check" ]; then
  rc=0
  [ ${#missing[@]} -eq 0 ] || { echo "test-deps: missing packages: ${missing[*]}"; rc=1; }
  for c in "${JS_CLIENTS[@]}"; do
    js_ok "$c" || { echo "test-deps: the $c npm client is not installed in $root/.cache/$c-js"; rc=1; }
  done
  exit $rc
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    SUDO=(false)
  fi
  echo "test-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
    echo "test-deps: could not install ${missing[*]}; the tests needing them will skip" >&2
  fi
fi

for c in "${JS_CLIENTS[@]}"; do
  js_dir="$root/.cache/$c-js"
  js_src="$root/tests/integration/$c"
  if ! js_ok "$c" && command -v npm >/dev/null 2>&1 && npm_reachable; then
    mkdir -p "$js_dir"
    cp "$js_src/package.json" "$js_src/package-lock.json" "$js_dir/"
    if (cd "$js_dir" && timeout 120 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
          --fetch-timeout=20000 --fetch-retries=1) >&2; then
      echo "test-deps: $c npm client installed in $js_dir" >&2
    else
      rm -rf "$js_dir/node_modules"
      echo "test-deps: npm ci failed; the $c client test will skip" >&2
    fi
  fi
  if ! js_ok "$c" && ! npm_reachable; then
    echo "test-deps: the npm registry ($registry) is unreachable; the $c client test will skip" >&2
  fi
done
exit 0
