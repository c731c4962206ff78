#!/usr/bin/env bash
# Every committed .wasm built from project sources must match its source.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for check in $(git ls-files '*check.sh' | grep -v '^scripts/'); do
	echo "check-wasm: $check" >&2
	if ! "$check"; then
		echo "check-wasm: $check: committed .wasm is stale; rebuild with $(dirname "$check")/build.sh" >&2
		status=1
	fi
done
exit $status
