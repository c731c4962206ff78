package wasm

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mappedMemory is a guest's linear memory in an anonymous mapping of its
// maximum size (the module's maximum, at most the page limit) instead of
// a []byte on the Go heap. The mapping reserves address space only: the
// kernel commits a page when the guest first touches it. Growing the
// memory moves no bytes (a Go-heap memory is reallocated and copied), and
// the guest's memory is not counted in the Go heap, whose collection
// target is a multiple of the live heap (GOGC): with a Go-heap memory a
// guest holding 20 MB made the process grow by about five times that
// before a collection. Free unmaps it when the module closes.
type mappedMemory struct{ buf []byte }

// allocateLinearMemory is the wazero memory allocator: an anonymous
// mapping, or the Go heap when the mapping fails.
func allocateLinearMemory(capBytes, maxBytes uint64) experimental.LinearMemory {
	if maxBytes > 0 && maxBytes <= 1<<32 {
		b, err := syscall.Mmap(-1, 0, int(maxBytes), syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
		if err == nil {
			return &mappedMemory{buf: b[:0]}
		}
	}
	return &heapMemory{buf: make([]byte, 0, capBytes), max: maxBytes}
}

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(m.buf)) {
		return nil
	}
	// Pages past the old length were never written: they read as zero,
	// as new Wasm pages must.
	m.buf = m.buf[:size]
	return m.buf
}

func (m *mappedMemory) Free() {
	if b := m.buf[:cap(m.buf)]; len(b) > 0 {
		_ = syscall.Munmap(b)
	}
	m.buf = nil
}
