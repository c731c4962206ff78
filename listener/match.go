package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/wasmesh/wasmesh/internal/protocheck"
)

// chainMatch is one filter chain's compiled filter_chain_match.
type chainMatch struct {
	index       int
	port        uint32 // 0: any
	dst         []netip.Prefix
	serverNames []string // exact names, and "*.x" wildcards kept as ".x"
	transport   string
	appProtos   []string
	directSrc   []netip.Prefix
	srcType     listenerv3.FilterChainMatch_ConnectionSourceType
	src         []netip.Prefix
	srcPorts    []uint32
}

// facts are what filter chain matching looks at.
type facts struct {
	local     netip.AddrPort // after original_dst restored it
	remote    netip.AddrPort
	direct    netip.AddrPort // the directly connected peer
	sni       string
	transport string
	alpn      []string
}

// compileMatch compiles a filter_chain_match (nil matches everything).
func compileMatch(path string, index int, m *listenerv3.FilterChainMatch) (*chainMatch, []error) {
	cm := &chainMatch{index: index}
	if m == nil {
		return cm, nil
	}
	errs := protocheck.Only(path, m, "destination_port", "prefix_ranges", "server_names", "transport_protocol",
		"application_protocols", "direct_source_prefix_ranges", "source_type", "source_prefix_ranges", "source_ports")
	cm.port = m.GetDestinationPort().GetValue()
	var e []error
	cm.dst, e = compileRanges(path+".prefix_ranges", m.GetPrefixRanges())
	errs = append(errs, e...)
	cm.directSrc, e = compileRanges(path+".direct_source_prefix_ranges", m.GetDirectSourcePrefixRanges())
	errs = append(errs, e...)
	cm.src, e = compileRanges(path+".source_prefix_ranges", m.GetSourcePrefixRanges())
	errs = append(errs, e...)
	for i, n := range m.GetServerNames() {
		p := fmt.Sprintf("%s.server_names[%d]", path, i)
		switch {
		case n == "":
			errs = append(errs, fmt.Errorf("%s: empty server name", p))
		case strings.HasPrefix(n, "*."):
			if strings.Contains(n[2:], "*") {
				errs = append(errs, fmt.Errorf("%s: partial wildcards are not supported: %q", p, n))
				continue
			}
			cm.serverNames = append(cm.serverNames, n[1:])
		case strings.Contains(n, "*"):
			errs = append(errs, fmt.Errorf("%s: partial wildcards are not supported: %q (only a leading \"*.\")", p, n))
		default:
			cm.serverNames = append(cm.serverNames, n)
		}
	}
	cm.transport = m.GetTransportProtocol()
	cm.appProtos = m.GetApplicationProtocols()
	cm.srcType = m.GetSourceType()
	cm.srcPorts = m.GetSourcePorts()
	return cm, errs
}

func compileRanges(path string, rs []*corev3.CidrRange) ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var errs []error
	for i, r := range rs {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d].address_prefix: %v", path, i, err))
			continue
		}
		a = a.Unmap()
		bits := int(r.GetPrefixLen().GetValue())
		if bits > a.BitLen() {
			errs = append(errs, fmt.Errorf("%s[%d].prefix_len: %d is longer than the address", path, i, bits))
			continue
		}
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out, errs
}

// checkDuplicates rejects filter chains whose matching rules overlap
// exactly, as Envoy does ("multiple filter chains with the same matching
// rules are defined").
func checkDuplicates(ms []*chainMatch) error {
	const maxKeys = 1 << 16
	seen := map[string]int{}
	var errs []error
	for _, m := range ms {
		keys := []string{""}
		grow := func(vals []string) {
			if len(keys)*len(vals) > maxKeys {
				keys = nil
				return
			}
			next := make([]string, 0, len(keys)*len(vals))
			for _, k := range keys {
				for _, v := range vals {
					next = append(next, k+"\x00"+v)
				}
			}
			keys = next
		}
		grow([]string{fmt.Sprint(m.port)})
		grow(prefixKeys(m.dst))
		grow(orEmpty(m.serverNames))
		grow([]string{m.transport})
		grow(orEmpty(m.appProtos))
		grow(prefixKeys(m.directSrc))
		grow([]string{m.srcType.String()})
		grow(prefixKeys(m.src))
		ports := []string{"0"}
		if len(m.srcPorts) > 0 {
			ports = ports[:0]
			for _, p := range m.srcPorts {
				ports = append(ports, fmt.Sprint(p))
			}
		}
		grow(ports)
		for _, k := range keys {
			if j, ok := seen[k]; ok && j != m.index {
				errs = append(errs, fmt.Errorf("filter_chains[%d]: multiple filter chains with the same matching rules are defined (also filter_chains[%d])", m.index, j))
				break
			}
			seen[k] = m.index
		}
	}
	return errors.Join(errs...)
}

func prefixKeys(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return []string{"0.0.0.0/0", "::/0"}
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func orEmpty(s []string) []string {
	if len(s) == 0 {
		return []string{""}
	}
	return s
}

// selectChain picks the filter chain for a connection with Envoy's
// algorithm: criteria in a fixed order, and at each step only the chains
// that match most specifically go on (no backtracking). It returns -1
// when none is left.
func selectChain(ms []*chainMatch, f *facts) int {
	cands := make([]*chainMatch, 0, len(ms))
	cands = append(cands, ms...)
	local, remote, direct := f.local.Addr().Unmap(), f.remote.Addr().Unmap(), f.direct.Addr().Unmap()
	steps := []func(m *chainMatch) (int, bool){
		// 1. destination port.
		func(m *chainMatch) (int, bool) {
			if m.port == 0 {
				return 0, true
			}
			return 1, uint32(f.local.Port()) == m.port
		},
		// 2. destination IP: the longest matching prefix.
		func(m *chainMatch) (int, bool) { return prefixScore(m.dst, local) },
		// 3. server name: exact, then the longest wildcard suffix.
		func(m *chainMatch) (int, bool) { return serverNameScore(m.serverNames, f.sni) },
		// 4. transport protocol.
		func(m *chainMatch) (int, bool) {
			if m.transport == "" {
				return 0, true
			}
			return 1, m.transport == f.transport
		},
		// 5. application protocols: the first of the connection's that a
		// chain lists.
		func(m *chainMatch) (int, bool) {
			if len(m.appProtos) == 0 {
				return 0, true
			}
			for i, p := range f.alpn {
				for _, q := range m.appProtos {
					if p == q {
						return len(f.alpn) - i, true
					}
				}
			}
			return 0, false
		},
		// 6. directly connected source IP.
		func(m *chainMatch) (int, bool) { return prefixScore(m.directSrc, direct) },
		// 7. source type.
		func(m *chainMatch) (int, bool) {
			isLocal := remote.IsLoopback() || remote == local
			switch m.srcType {
			case listenerv3.FilterChainMatch_ANY:
				return 0, true
			case listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK:
				return 1, isLocal
			default:
				return 1, !isLocal
			}
		},
		// 8. source IP.
		func(m *chainMatch) (int, bool) { return prefixScore(m.src, remote) },
		// 9. source port.
		func(m *chainMatch) (int, bool) {
			if len(m.srcPorts) == 0 {
				return 0, true
			}
			for _, p := range m.srcPorts {
				if p == uint32(f.remote.Port()) {
					return 1, true
				}
			}
			return 0, false
		},
	}
	for _, step := range steps {
		best := -1
		n := 0
		for _, m := range cands {
			s, ok := step(m)
			if !ok {
				continue
			}
			switch {
			case s > best:
				best = s
				n = 0
				cands[n] = m
				n++
			case s == best:
				cands[n] = m
				n++
			}
		}
		cands = cands[:n]
		if n == 0 {
			return -1
		}
	}
	return cands[0].index
}

// prefixScore is the length of the longest prefix containing a (0 with
// no prefixes: the catch-all).
func prefixScore(ps []netip.Prefix, a netip.Addr) (int, bool) {
	if len(ps) == 0 {
		return 0, true
	}
	best := -1
	for _, p := range ps {
		if p.Contains(a) && p.Bits() > best {
			best = p.Bits()
		}
	}
	// A /0 ranks with the catch-all, as in Envoy's trie.
	return best, best >= 0
}

// serverNameScore ranks an exact name above wildcards, longer wildcard
// suffixes above shorter ones, and chains without names last.
func serverNameScore(names []string, sni string) (int, bool) {
	if len(names) == 0 {
		return 0, true
	}
	best := -1
	for _, n := range names {
		switch {
		case n == sni && sni != "":
			return 1 << 20, true
		case n[0] == '.' && len(sni) > len(n) && strings.HasSuffix(sni, n):
			if len(n) > best {
				best = len(n)
			}
		}
	}
	return best, best > 0
}
