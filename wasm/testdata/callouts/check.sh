#!/usr/bin/env bash
# Fails unless every committed .wasm in this directory is exactly what
# build.sh produces from its .wat today (and no .wat lacks its .wasm, and no
# .wasm lacks its .wat). Builds into a temporary directory; touches nothing
# here. Fix a failure with ./build.sh and commit the .wasm files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$here/build.sh" "$tmp"

status=0
shopt -s nullglob
for wat in "$here"/*.wat; do
  stem="$(basename "$wat" .wat)"
  if [[ ! -f "$here/$stem.wasm" ]]; then
    echo "callouts/check.sh: $stem.wasm is missing (run build.sh and commit it)" >&2
    status=1
  elif ! cmp -s "$tmp/$stem.wasm" "$here/$stem.wasm"; then
    echo "callouts/check.sh: $stem.wasm is out of date with $stem.wat (run build.sh and commit it)" >&2
    status=1
  fi
done
for wasm in "$here"/*.wasm; do
  stem="$(basename "$wasm" .wasm)"
  if [[ ! -f "$here/$stem.wat" ]]; then
    echo "callouts/check.sh: $stem.wasm has no $stem.wat" >&2
    status=1
  fi
done

if [[ $status -eq 0 ]]; then
  echo "callouts/check.sh: all .wasm files are up to date"
fi
exit $status
