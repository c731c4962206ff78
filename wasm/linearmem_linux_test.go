package wasm

import (
	"errors"
	"syscall"
	"testing"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// mapped reports whether the page at p is mapped (mincore fails with
// ENOMEM on an unmapped range).
func mapped(p unsafe.Pointer) bool {
	var vec [1]byte
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(p)&^uintptr(syscall.Getpagesize()-1), 1, uintptr(unsafe.Pointer(&vec[0])))
	return !errors.Is(errno, syscall.ENOMEM)
}

func TestLinearMemory(t *testing.T) {
	const page = 65536
	for _, tc := range []struct {
		name      string
		mem       func() experimental.LinearMemory
		fixedBase bool
	}{
		{"mapped", func() experimental.LinearMemory { return allocateLinearMemory(page, 16*page) }, true},
		{"heap", func() experimental.LinearMemory { return &heapMemory{buf: make([]byte, 0, page), max: 16 * page} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mem()
			if _, ok := m.(*mappedMemory); ok != tc.fixedBase {
				t.Fatalf("allocator gave %T", m)
			}
			b := m.Reallocate(page)
			if len(b) != page {
				t.Fatalf("len %d after Reallocate(one page)", len(b))
			}
			b[0], b[page-1] = 1, 2
			base := unsafe.Pointer(&b[0])
			g := m.Reallocate(4 * page)
			if len(g) != 4*page || g[0] != 1 || g[page-1] != 2 {
				t.Fatalf("grown memory lost its bytes: len %d, %d %d", len(g), g[0], g[page-1])
			}
			for i, v := range g[page:] {
				if v != 0 {
					t.Fatalf("new page byte %d is %d, want 0", page+i, v)
				}
			}
			if tc.fixedBase && unsafe.Pointer(&g[0]) != base {
				t.Fatal("a mapped memory moved when it grew")
			}
			if m.Reallocate(17*page) != nil {
				t.Fatal("grew past its maximum")
			}
			g[4*page-1] = 3
			m.Free()
			if tc.fixedBase && mapped(base) {
				t.Fatal("Free left the mapping in place")
			}
		})
	}
}
