#!/usr/bin/env bash
# Rebuilds the WASI test modules: generates calls.wat with gen.sh, then
# compiles every <stem>.wat here to <stem>.wasm with wat2wasm (wabt) and
# validates it.
#
# Usage: build.sh [OUT_DIR]
#   OUT_DIR defaults to this directory (refresh the committed files);
#   check.sh passes a temporary directory. calls.wat is written to OUT_DIR
#   too, so check.sh can tell a stale calls.wat from a stale calls.wasm.
#
# The committed binaries come from wabt 1.0.32 (Debian bookworm); another
# version may encode the same module differently (a warning is printed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
expected_wabt="1.0.32"

for tool in wat2wasm wasm-validate; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "wasi/build.sh: $tool not found in PATH (install wabt: apt-get install wabt)" >&2
    exit 1
  fi
done
version="$(wat2wasm --version)"
if [[ "$version" != "$expected_wabt" ]]; then
  echo "wasi/build.sh: warning: wat2wasm $version, committed .wasm files come from $expected_wabt" >&2
fi

mkdir -p "$out"
"$here/gen.sh" >"$out/calls.wat.tmp"
mv "$out/calls.wat.tmp" "$out/calls.wat"

for wat in "$out/calls.wat" "$here"/stdio.wat; do
  stem="$(basename "$wat" .wat)"
  wat2wasm --debug-names "$wat" -o "$out/$stem.wasm"
  wasm-validate "$out/$stem.wasm"
  echo "wasi/build.sh: $stem.wasm" >&2
done
