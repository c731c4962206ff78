#!/usr/bin/env bash
# Rebuilds shared.wasm from shared.wat (wabt's wat2wasm, names kept for
# readable traps) and validates it. The committed .wasm came from wabt 1.0.32.
#
# Usage: build.sh [OUT_DIR]   (OUT_DIR defaults to this directory)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
for tool in wat2wasm wasm-validate; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "shared/build.sh: $tool not found (apt-get install wabt)" >&2
    exit 1
  }
done
mkdir -p "$out"
for wat in "$here"/*.wat; do
  stem="$(basename "$wat" .wat)"
  wat2wasm --debug-names "$wat" -o "$out/$stem.wasm"
  wasm-validate "$out/$stem.wasm"
  echo "shared/build.sh: $stem.wasm" >&2
done
