package tlsctx

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/wasmesh/wasmesh/internal/protocheck"
)

type sanKind int

const (
	sanAny sanKind = iota
	sanDNS
	sanEmail
	sanURI
	sanIP
)

type sanMatcher struct {
	kind sanKind
	m    stringMatcher
}

type stringMatcher struct {
	exact, prefix, suffix, contains string
	kind                            int // 0 exact, 1 prefix, 2 suffix, 3 contains, 4 regex
	re                              *regexp.Regexp
	ignoreCase                      bool
}

func (s stringMatcher) match(v string) bool {
	if s.ignoreCase && s.kind != 4 {
		v = strings.ToLower(v)
	}
	switch s.kind {
	case 0:
		return v == s.exact
	case 1:
		return strings.HasPrefix(v, s.prefix)
	case 2:
		return strings.HasSuffix(v, s.suffix)
	case 3:
		return strings.Contains(v, s.contains)
	default:
		return s.re.MatchString(v)
	}
}

func compileStringMatcher(path string, m *matcherv3.StringMatcher) (stringMatcher, error) {
	if errs := protocheck.Only(path, m, "match_pattern", "ignore_case"); len(errs) > 0 {
		return stringMatcher{}, errors.Join(errs...)
	}
	s := stringMatcher{ignoreCase: m.GetIgnoreCase()}
	low := func(v string) string {
		if s.ignoreCase {
			return strings.ToLower(v)
		}
		return v
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.exact = 0, low(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.prefix = 1, low(p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.suffix = 2, low(p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.contains = 3, low(p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		expr := "^(?:" + p.SafeRegex.GetRegex() + ")$"
		if s.ignoreCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return s, fmt.Errorf("%s.safe_regex.regex: invalid regex %q: %v", path, p.SafeRegex.GetRegex(), err)
		}
		s.kind, s.re = 4, re
	default:
		return s, fmt.Errorf("%s: unsupported match pattern", path)
	}
	return s, nil
}

func compileSAN(path string, m *tlsv3.SubjectAltNameMatcher) (sanMatcher, error) {
	if errs := protocheck.Only(path, m, "san_type", "matcher"); len(errs) > 0 {
		return sanMatcher{}, errors.Join(errs...)
	}
	var k sanKind
	switch m.GetSanType() {
	case tlsv3.SubjectAltNameMatcher_DNS:
		k = sanDNS
	case tlsv3.SubjectAltNameMatcher_EMAIL:
		k = sanEmail
	case tlsv3.SubjectAltNameMatcher_URI:
		k = sanURI
	case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		k = sanIP
	default:
		return sanMatcher{}, fmt.Errorf("%s.san_type: %s is not supported", path, m.GetSanType())
	}
	sm, err := compileStringMatcher(path+".matcher", m.GetMatcher())
	if err != nil {
		return sanMatcher{}, err
	}
	return sanMatcher{kind: k, m: sm}, nil
}

// matchSANs reports whether any of the leaf's SANs matches any matcher.
func matchSANs(ms []sanMatcher, c *x509.Certificate) bool {
	for _, m := range ms {
		if m.kind == sanAny || m.kind == sanDNS {
			for _, d := range c.DNSNames {
				if m.matchDNS(d) {
					return true
				}
			}
		}
		if m.kind == sanAny || m.kind == sanEmail {
			for _, e := range c.EmailAddresses {
				if m.m.match(e) {
					return true
				}
			}
		}
		if m.kind == sanAny || m.kind == sanURI {
			for _, u := range c.URIs {
				if m.m.match(u.String()) {
					return true
				}
			}
		}
		if m.kind == sanAny || m.kind == sanIP {
			for _, ip := range c.IPAddresses {
				if m.m.match(ip.String()) {
					return true
				}
			}
		}
	}
	return false
}

// matchDNS matches a DNS SAN; an exact matcher also accepts a wildcard SAN
// ("*.example.com") covering the name, as Envoy does.
func (m sanMatcher) matchDNS(san string) bool {
	if m.m.match(san) {
		return true
	}
	if m.m.kind != 0 || !strings.HasPrefix(san, "*.") {
		return false
	}
	name := m.m.exact
	i := strings.IndexByte(name, '.')
	if i <= 0 {
		return false
	}
	suffix := san[1:]
	if m.m.ignoreCase {
		suffix = strings.ToLower(suffix)
	}
	return name[i:] == suffix
}
