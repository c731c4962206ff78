#!/usr/bin/env bash
# Rebuilds every <stem>.wasm in this directory from <stem>.wat with wat2wasm
# (wabt) and validates it. The committed binaries come from wabt 1.0.32
# (Debian bookworm's wabt package); see ../edge/README.md for the conventions.
#
# Usage: build.sh [OUT_DIR]   (OUT_DIR defaults to this directory)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"

for tool in wat2wasm wasm-validate; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "props/build.sh: $tool not found in PATH (install wabt)" >&2
    exit 1
  fi
done
if [[ "$(wat2wasm --version)" != "1.0.32" ]]; then
  echo "props/build.sh: warning: wat2wasm $(wat2wasm --version), committed .wasm files come from 1.0.32" >&2
fi

mkdir -p "$out"
for wat in "$here"/*.wat; do
  stem="$(basename "$wat" .wat)"
  wat2wasm --debug-names "$wat" -o "$out/$stem.wasm"
  wasm-validate "$out/$stem.wasm"
  echo "props/build.sh: $stem.wasm" >&2
done
