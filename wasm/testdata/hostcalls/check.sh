#!/usr/bin/env bash
# Checks that the committed hostcalls.wasm matches a fresh build of hostcalls.c.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$DIR/build.sh" "$TMP/hostcalls.wasm"
if ! cmp -s "$TMP/hostcalls.wasm" "$DIR/hostcalls.wasm"; then
    echo "hostcalls.wasm is stale: run $DIR/build.sh and commit the result" >&2
    exit 1
fi
echo "hostcalls.wasm is up to date"
