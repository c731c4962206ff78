#!/usr/bin/env bash
# Rebuilds every <stem>.wasm in this directory from <stem>.wat with wat2wasm
# (wabt) and validates it with wasm-validate. Commit the .wasm with the .wat.
#
# Usage: build.sh [OUT_DIR]   (OUT_DIR defaults to this directory)
#
# The committed binaries come from wabt 1.0.32 (Debian bookworm's `wabt`);
# another version may encode the same module differently (a warning is
# printed). --debug-names keeps function names for trap messages.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
expected_wabt="1.0.32"

for tool in wat2wasm wasm-validate; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "callouts/build.sh: $tool not found in PATH (install wabt: apt-get install wabt)" >&2
    exit 1
  fi
done

version="$(wat2wasm --version)"
if [[ "$version" != "$expected_wabt" ]]; then
  echo "callouts/build.sh: warning: wat2wasm $version, committed .wasm files come from $expected_wabt" >&2
fi

mkdir -p "$out"
for wat in "$here"/*.wat; do
  stem="$(basename "$wat" .wat)"
  wat2wasm --debug-names "$wat" -o "$out/$stem.wasm"
  wasm-validate "$out/$stem.wasm"
  echo "callouts/build.sh: $stem.wasm" >&2
done
