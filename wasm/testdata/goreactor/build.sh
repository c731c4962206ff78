#!/usr/bin/env bash
# Builds goreactor.wasm, a Proxy-Wasm filter built by the Go toolchain as a
# WASI reactor, from main.go.
#
# Usage: build.sh [OUT_FILE]
#   OUT_FILE defaults to goreactor.wasm in this directory (refresh the
#   committed binary); check.sh passes a temporary file.
#
# The build is reproducible: -trimpath drops local paths, -buildid= drops
# the build id, GOTOOLCHAIN=local and GOFLAGS= keep the environment out,
# and the module has no dependencies. The same Go version always gives the
# same bytes; another version gives different ones (the runtime is linked
# in), so the committed binary names the version it needs below.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/goreactor.wasm}"
expected_go="go1.26.8"

if ! command -v go >/dev/null 2>&1; then
  echo "goreactor/build.sh: go not found in PATH" >&2
  exit 1
fi
version="$(GOTOOLCHAIN=local go env GOVERSION)"
if [[ "$version" != "$expected_go" ]]; then
  echo "goreactor/build.sh: warning: $version, the committed goreactor.wasm comes from $expected_go" >&2
fi

cd "$here"
GOTOOLCHAIN=local GOFLAGS= GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 \
  go build -buildmode=c-shared -trimpath -ldflags="-buildid=" -o "$out" .
echo "goreactor/build.sh: $out" >&2
