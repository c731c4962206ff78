#!/usr/bin/env bash
# Rebuilds hostcalls.wasm (Proxy-Wasm ABI v0.2.1 reactor module) from hostcalls.c.
#
#   ./build.sh            writes hostcalls.wasm next to this script
#   ./build.sh OUT.wasm   writes OUT.wasm instead (used by check.sh)
#
# Requires clang-14 with the wasm32-wasi target and wasi-libc (Debian packages
# clang-14, lld-14, wasi-libc). The output is deterministic for a given
# toolchain: no debug info, no absolute paths, fixed flags.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$DIR/hostcalls.wasm}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
CC="${CC:-clang-14}"

cd "$DIR"
"$CC" --target=wasm32-wasi -mexec-model=reactor \
    -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror \
    -ffile-prefix-map="$DIR"=. \
    -Wl,--export=malloc -Wl,--strip-debug \
    -o "$OUT" hostcalls.c

if command -v wasm-validate >/dev/null 2>&1; then
    wasm-validate "$OUT"
fi
