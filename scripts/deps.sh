#!/usr/bin/env bash
# Installs what the test suite needs, checking each tool first so a machine
# that already has everything does no work.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang-14 || need+=(clang-14)
have wasm-ld-14 || need+=(lld-14)
[ -e /usr/include/wasm32-wasi/stdlib.h ] || need+=(wasi-libc)
ls /usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev-wasm32)
have wat2wasm || need+=(wabt)
have iptables || need+=(iptables)
have ip || need+=(iproute2)
have node || need+=(nodejs)
have npm || need+=(npm)

if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
