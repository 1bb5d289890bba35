#!/usr/bin/env bash
# tools/deps.sh - install the Debian packages spoke needs to build and test,
# only when some are missing. Uses apt-get directly as root, else sudo.
# `tools/deps.sh --check` only reports what is missing (exit 1 if anything).
set -euo pipefail

PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev libyaml-dev
      libsqlite3-dev libpcre2-dev libssl-dev
      python3 curl sqlite3 prometheus
      python3-jinja2)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing packages: ${missing[*]}"
  exit 1
fi

echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "deps: missing packages (${missing[*]}) and neither root nor passwordless sudo." >&2
  echo "deps: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
