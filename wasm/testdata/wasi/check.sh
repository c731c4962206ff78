#!/usr/bin/env bash
# Fails unless the committed calls.wat, calls.wasm and stdio.wasm are
# exactly what build.sh produces today. Builds into a temporary directory;
# changes nothing here. Fix a failure with ./build.sh and commit the files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$here/build.sh" "$tmp"
status=0
for f in calls.wat calls.wasm stdio.wasm; do
  if [[ ! -f "$here/$f" ]]; then
    echo "wasi/check.sh: $f is missing (run build.sh and commit it)" >&2
    status=1
  elif ! cmp -s "$tmp/$f" "$here/$f"; then
    echo "wasi/check.sh: $f is out of date (run build.sh and commit it)" >&2
    status=1
  fi
done
if [[ $status -eq 0 ]]; then
  echo "wasi/check.sh: calls.wat, calls.wasm and stdio.wasm are up to date"
fi
exit $status
