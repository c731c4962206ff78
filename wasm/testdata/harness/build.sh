#!/usr/bin/env bash
# Rebuilds every <stem>.wasm in this directory from <stem>.wat with wat2wasm
# (wabt) and validates it with wasm-validate.
#
# Usage: build.sh [OUT_DIR]
#   OUT_DIR defaults to this directory (i.e. refresh the committed .wasm files);
#   check.sh passes a temporary directory to compare against the committed ones.
#
# The committed binaries were produced by wabt 1.0.32 (Debian bookworm's
# `wabt` package). Other wabt versions may encode the same module differently,
# which check.sh would then report; a warning is printed in that case.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
expected_wabt="1.0.32"
# --debug-names keeps the $names in a "name" section, so traps and stack
# traces show function names.
wat2wasm_flags=(--debug-names)

for tool in wat2wasm wasm-validate; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "harness/build.sh: $tool not found in PATH (install wabt: apt-get install wabt)" >&2
    exit 1
  fi
done

version="$(wat2wasm --version)"
if [[ "$version" != "$expected_wabt" ]]; then
  echo "harness/build.sh: warning: wat2wasm $version, committed .wasm files come from $expected_wabt" >&2
fi

mkdir -p "$out"
shopt -s nullglob
wats=("$here"/*.wat)
if [[ ${#wats[@]} -eq 0 ]]; then
  echo "harness/build.sh: no .wat files in $here" >&2
  exit 1
fi

for wat in "${wats[@]}"; do
  stem="$(basename "$wat" .wat)"
  wat2wasm "${wat2wasm_flags[@]}" "$wat" -o "$out/$stem.wasm"
  wasm-validate "$out/$stem.wasm"
  echo "harness/build.sh: $stem.wasm" >&2
done
