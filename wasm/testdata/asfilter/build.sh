#!/usr/bin/env bash
# Builds the AssemblyScript Proxy-Wasm test filter into build/filter.wasm.
#
# - Installs the pinned npm dependencies with `npm ci` only when node_modules
#   is missing or older than package-lock.json.
# - Recompiles only when build/filter.wasm is older than any source.
# - On success prints the absolute path of the .wasm (and nothing else) on
#   stdout; progress and compiler output go to stderr. Exits non-zero on failure.
# - Concurrent invocations are serialised with flock when it is available.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

out="build/filter.wasm"
mkdir -p build

if command -v flock >/dev/null 2>&1; then
  exec 9>build/.lock
  flock 9
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "asfilter: $tool not found in PATH" >&2
    exit 1
  fi
done

asc="node_modules/.bin/asc"
if [[ ! -d node_modules || ! -x "$asc" || package-lock.json -nt node_modules ]]; then
  echo "asfilter: npm ci" >&2
  npm ci --no-audit --no-fund >&2
  touch node_modules
fi

sources=(assembly package.json package-lock.json build.sh)
if [[ -f "$out" ]] && [[ -z "$(find "${sources[@]}" -newer "$out" -print -quit)" ]]; then
  echo "asfilter: $out is up to date" >&2
else
  echo "asfilter: compiling $out" >&2
  tmp="build/filter.wasm.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  "$asc" assembly/index.ts \
    --binaryFile "$tmp" \
    --use abort=abort_proc_exit \
    --optimize >&2
  if [[ ! -s "$tmp" ]]; then
    echo "asfilter: asc produced no output" >&2
    exit 1
  fi
  mv -f "$tmp" "$out"
fi

echo "$here/$out"
