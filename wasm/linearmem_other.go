//go:build !linux

package wasm

import "github.com/tetratelabs/wazero/experimental"

// allocateLinearMemory keeps guest memory on the Go heap outside Linux.
func allocateLinearMemory(capBytes, maxBytes uint64) experimental.LinearMemory {
	return &heapMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
}
