package listener

import (
	"net/netip"
	"sync"
)

// Index finds listeners by address for use_original_dst hand-offs, as
// Envoy does: the listener bound to exactly the address, else one bound
// to the wildcard address (0.0.0.0 or ::) of the same port. The server's
// listener manager keeps it current. It is safe for concurrent use.
type Index struct {
	mu sync.RWMutex
	m  map[netip.AddrPort]*Listener
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{m: map[netip.AddrPort]*Listener{}} }

// Set makes l the listener for its configured address (replacing an older
// version).
func (x *Index) Set(l *Listener) {
	x.mu.Lock()
	x.m[l.addr] = l
	x.mu.Unlock()
}

// Delete removes l if it is the listener for its address.
func (x *Index) Delete(l *Listener) {
	x.mu.Lock()
	if x.m[l.addr] == l {
		delete(x.m, l.addr)
	}
	x.mu.Unlock()
}

// Lookup returns the listener for addr, or nil.
func (x *Index) Lookup(addr netip.AddrPort) *Listener {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if l, ok := x.m[addr]; ok {
		return l
	}
	any4 := netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port())
	any6 := netip.AddrPortFrom(netip.IPv6Unspecified(), addr.Port())
	if addr.Addr().Is4() {
		if l, ok := x.m[any4]; ok {
			return l
		}
		return nil
	}
	if l, ok := x.m[any6]; ok {
		return l
	}
	return nil
}
