#!/usr/bin/env bash
# Checks that the committed my-filter.wasm matches a fresh build of my-filter.c.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$DIR/build.sh" "$TMP/my-filter.wasm"
if ! cmp -s "$TMP/my-filter.wasm" "$DIR/my-filter.wasm"; then
    echo "my-filter.wasm is stale: run $DIR/build.sh and commit the result" >&2
    exit 1
fi
echo "my-filter.wasm is up to date"
