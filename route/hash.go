package route

import (
	"github.com/wasmesh/wasmesh/internal/xxhash"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wasmesh/wasmesh/header"
)

// HashPolicy is a compiled hash_policy list: the request hash for the
// RING_HASH and MAGLEV load balancers (Envoy's HashPolicyImpl, with xxHash64
// of the same inputs, so the same request hashes as in Envoy).
type HashPolicy struct {
	methods []hashMethod
}

type hashKind uint8

const (
	hashHeader hashKind = iota + 1
	hashCookie
	hashSourceIP
	hashQuery
)

type hashMethod struct {
	kind     hashKind
	name     string // header name, cookie name or query parameter
	rewrite  *RegexRewrite
	path     string // cookie path
	ttl      time.Duration
	hasTTL   bool
	attrs    []CookieAttribute
	terminal bool
}

// CookieAttribute is a name=value attribute of a generated hash cookie.
type CookieAttribute struct {
	Name, Value string
}

// HashInput is what a hash policy reads from the request.
type HashInput struct {
	Headers *header.Map
	// RemoteAddr is the downstream address for connection_properties.source_ip.
	RemoteAddr netip.Addr
	// AddCookie is called for a cookie policy with a ttl when the request
	// has no such cookie: it must arrange a Set-Cookie on the response and
	// return the cookie's value, which is then hashed. Nil skips the policy.
	AddCookie func(name, path string, ttl time.Duration, attrs []CookieAttribute) string
}

func (c *errs) hashPolicy(path string, in []*routev3.RouteAction_HashPolicy) *HashPolicy {
	if len(in) == 0 {
		return nil
	}
	hp := &HashPolicy{}
	for i, p := range in {
		pp := idx(path, "hash_policy", i)
		c.only(pp, p, "header", "cookie", "connection_properties", "query_parameter", "terminal")
		m := hashMethod{terminal: p.GetTerminal()}
		switch s := p.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			c.only(at(pp, "header"), s.Header, "header_name", "regex_rewrite")
			m.kind, m.name = hashHeader, header.Lower(s.Header.GetHeaderName())
			m.rewrite = c.regexRewrite(at(pp, "header.regex_rewrite"), s.Header.GetRegexRewrite())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			c.only(at(pp, "cookie"), s.Cookie, "name", "ttl", "path", "attributes")
			m.kind, m.name, m.path = hashCookie, s.Cookie.GetName(), s.Cookie.GetPath()
			if s.Cookie.GetTtl() != nil {
				m.hasTTL, m.ttl = true, time.Duration(s.Cookie.GetTtl().GetSeconds())*time.Second
			}
			for _, a := range s.Cookie.GetAttributes() {
				m.attrs = append(m.attrs, CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			c.only(at(pp, "connection_properties"), s.ConnectionProperties, "source_ip")
			if !s.ConnectionProperties.GetSourceIp() {
				continue
			}
			m.kind = hashSourceIP
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			c.only(at(pp, "query_parameter"), s.QueryParameter, "name")
			m.kind, m.name = hashQuery, s.QueryParameter.GetName()
		default:
			if p.GetFilterState() == nil {
				c.errf(pp, "no hash policy specifier set")
			}
			continue
		}
		hp.methods = append(hp.methods, m)
	}
	return hp
}

// Hash computes the request hash; ok is false when no policy produced one.
func (p *HashPolicy) Hash(in HashInput) (hash uint64, ok bool) {
	if p == nil {
		return 0, false
	}
	for i := range p.methods {
		m := &p.methods[i]
		h, got := m.evaluate(in)
		if got {
			var old uint64
			if ok {
				old = bits.RotateLeft64(hash, 1)
			}
			hash, ok = old^h, true
		}
		if m.terminal && ok {
			break
		}
	}
	return hash, ok
}

func (m *hashMethod) evaluate(in HashInput) (uint64, bool) {
	switch m.kind {
	case hashHeader:
		var vals []string
		for _, f := range in.Headers.Fields() {
			if f.Key == m.name {
				v := f.Value
				if m.rewrite != nil {
					v = m.rewrite.ReplaceAll(v)
				}
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			return 0, false
		}
		if len(vals) == 1 {
			return xxhash64([]byte(vals[0])), true
		}
		slices.Sort(vals)
		var buf []byte
		for _, v := range vals {
			buf = append(buf, v...)
		}
		return xxhash64(buf), true
	case hashCookie:
		v, _ := cookieValue(in.Headers, m.name)
		if v == "" && m.hasTTL {
			if in.AddCookie == nil {
				return 0, false
			}
			v = in.AddCookie(m.name, m.path, m.ttl, m.attrs)
			return xxhash64([]byte(v)), true
		}
		if v == "" {
			return 0, false
		}
		return xxhash64([]byte(v)), true
	case hashSourceIP:
		if !in.RemoteAddr.IsValid() {
			return 0, false
		}
		return xxhash64([]byte(in.RemoteAddr.Unmap().String())), true
	case hashQuery:
		p, _ := in.Headers.Get(":path")
		v, ok := queryFirst(p, m.name)
		if !ok {
			return 0, false
		}
		return xxhash64([]byte(v)), true
	}
	return 0, false
}

// cookieValue finds the first cookie called name in the Cookie headers,
// as Envoy's Utility::parseCookieValue (surrounding double quotes removed).
func cookieValue(h *header.Map, name string) (string, bool) {
	for _, f := range h.Fields() {
		if f.Key != "cookie" {
			continue
		}
		s := f.Value
		for s != "" {
			var part string
			if i := indexByte(s, ';'); i >= 0 {
				part, s = s[:i], s[i+1:]
			} else {
				part, s = s, ""
			}
			eq := indexByte(part, '=')
			if eq < 0 {
				continue
			}
			k := part[:eq]
			for k != "" && k[0] == ' ' {
				k = k[1:]
			}
			if k != name {
				continue
			}
			v := part[eq+1:]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// xxhash64 is XXH64 with seed 0, the hash Envoy's HashUtil::xxHash64 uses.
func xxhash64(b []byte) uint64 { return xxhash.Sum64(b, 0) }
