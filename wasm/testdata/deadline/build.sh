#!/usr/bin/env bash
# Rebuilds the deadline test modules from their .wat sources (wat2wasm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for w in *.wat; do
  wat2wasm "$w" -o "${w%.wat}.wasm"
done
