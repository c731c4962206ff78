#!/usr/bin/env bash
# Fails unless the committed goreactor.wasm is exactly what build.sh builds
# from main.go today. Builds into a temporary directory; changes nothing
# here. Fix a failure with ./build.sh and commit goreactor.wasm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$here/build.sh" "$tmp/goreactor.wasm"
if [[ ! -f "$here/goreactor.wasm" ]]; then
  echo "goreactor/check.sh: goreactor.wasm is missing (run build.sh and commit it)" >&2
  exit 1
fi
if ! cmp -s "$tmp/goreactor.wasm" "$here/goreactor.wasm"; then
  echo "goreactor/check.sh: goreactor.wasm is out of date with main.go (run build.sh and commit it)" >&2
  exit 1
fi
echo "goreactor/check.sh: goreactor.wasm is up to date"
