package route

import (
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"github.com/wasmesh/wasmesh/header"
)

// Host keys narrow a virtual host's candidate routes by the :authority
// header, for configurations that keep every route in one virtual host and
// constrain hosts with :authority matchers (Kong's translation). A route's
// keys are a finite set of lower-case host parts (an authority up to its
// first ':') such that every ASCII :authority value its matcher accepts
// has its host part in the set. The index only skips routes that cannot
// match; every candidate still runs all its matchers, so the first match is
// the linear scan's. Matchers whose accepted values are not a small finite
// set of host parts (wildcards, prefixes, inverted matchers) leave the
// route unindexed: it is a candidate for every host.

// maxHostKeys bounds the host parts derived from one matcher.
const maxHostKeys = 4096

// authorityName is the header whose matchers are indexed: matchers read
// it by name, whatever vhost_header selects virtual hosts with.
const authorityName = ":authority"

// hostKeys returns the keys of the first indexable :authority matcher of
// a route, nil when there is none.
func hostKeys(ms []HeaderMatcher) []string {
	for i := range ms {
		if ms[i].name != authorityName {
			continue
		}
		if keys, ok := ms[i].hostKeys(); ok && len(keys) > 0 {
			return keys
		}
	}
	return nil
}

func (m *HeaderMatcher) hostKeys() ([]string, bool) {
	if m.invert || m.treatMissingAsEmpty {
		return nil, false
	}
	switch m.kind {
	case hdrExact:
		if m.value == "" { // matches any value
			return nil, false
		}
		return literalKeys(m.value)
	case hdrRegex:
		return regexKeys(m.re)
	case hdrString:
		switch m.sm.kind {
		case strExact:
			return literalKeys(m.sm.value) // ignore_case folds ASCII only
		case strRegex:
			return regexKeys(m.sm.re)
		}
	}
	return nil, false
}

func literalKeys(v string) ([]string, bool) {
	if !isASCII(v) {
		return nil, false
	}
	return []string{hostPart(strings.ToLower(v))}, true
}

func hostPart(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		return v[:i]
	}
	return v
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// regexKeys derives keys from a compiled full-match regex ("^(?:p)$").
func regexKeys(re interface{ String() string }) ([]string, bool) {
	if re == nil {
		return nil, false
	}
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil, false
	}
	r = r.Simplify()
	// Strip the anchors the compiler added.
	if r.Op != syntax.OpConcat || len(r.Sub) < 2 || r.Sub[0].Op != syntax.OpBeginText || r.Sub[len(r.Sub)-1].Op != syntax.OpEndText {
		return nil, false
	}
	inner := &syntax.Regexp{Op: syntax.OpConcat, Sub: r.Sub[1 : len(r.Sub)-1]}
	keys, ok := hostParts(inner)
	if !ok {
		return nil, false
	}
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, true
}

// hostParts returns the lower-case host parts of the ASCII strings r
// matches in full.
func hostParts(r *syntax.Regexp) ([]string, bool) {
	switch r.Op {
	case syntax.OpAlternate:
		var out []string
		for _, s := range r.Sub {
			k, ok := hostParts(s)
			if !ok || len(out)+len(k) > maxHostKeys {
				return nil, false
			}
			out = append(out, k...)
		}
		return out, true
	case syntax.OpCapture:
		return hostParts(r.Sub[0])
	case syntax.OpConcat:
		if len(r.Sub) == 1 {
			return hostParts(r.Sub[0])
		}
		// A part that only matches strings starting with ':' (or, last,
		// such a part made optional) ends the host part: what precedes
		// it decides the key.
		for i, s := range r.Sub {
			if colonLed(s) || (i == len(r.Sub)-1 && s.Op == syntax.OpQuest && colonLed(s.Sub[0])) {
				return finiteHostParts(&syntax.Regexp{Op: syntax.OpConcat, Sub: r.Sub[:i]})
			}
		}
	}
	return finiteHostParts(r)
}

func finiteHostParts(r *syntax.Regexp) ([]string, bool) {
	ss, ok := finite(r)
	if !ok {
		return nil, false
	}
	for i, s := range ss {
		ss[i] = hostPart(s)
	}
	return ss, true
}

// colonLed reports whether every string r matches starts with ':'.
func colonLed(r *syntax.Regexp) bool {
	switch r.Op {
	case syntax.OpLiteral:
		return len(r.Rune) > 0 && r.Rune[0] == ':'
	case syntax.OpConcat, syntax.OpCapture, syntax.OpPlus:
		return len(r.Sub) > 0 && colonLed(r.Sub[0])
	case syntax.OpAlternate:
		for _, s := range r.Sub {
			if !colonLed(s) {
				return false
			}
		}
		return true
	}
	return false
}

// finite returns the lower-cased ASCII strings r matches in full, when
// there are at most maxHostKeys of them. Non-ASCII alternatives are left
// out: they never match the ASCII values the index serves.
func finite(r *syntax.Regexp) ([]string, bool) {
	switch r.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		var b strings.Builder
		for _, c := range r.Rune {
			if c >= utf8.RuneSelf {
				// A folded literal may match an ASCII rune (K matches
				// the Kelvin sign's fold); give up rather than reason.
				return nil, false
			}
			b.WriteByte(lowerASCII(byte(c)))
		}
		return []string{b.String()}, true
	case syntax.OpCharClass:
		var out []string
		seen := map[byte]bool{}
		for i := 0; i+1 < len(r.Rune); i += 2 {
			lo, hi := r.Rune[i], min(r.Rune[i+1], utf8.RuneSelf-1)
			for c := lo; c <= hi; c++ {
				b := lowerASCII(byte(c))
				if !seen[b] {
					seen[b] = true
					out = append(out, string(b))
				}
				if len(out) > 64 {
					return nil, false
				}
			}
		}
		return out, true
	case syntax.OpCapture:
		return finite(r.Sub[0])
	case syntax.OpQuest:
		s, ok := finite(r.Sub[0])
		if !ok || len(s) >= maxHostKeys {
			return nil, false
		}
		return append(s, ""), true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range r.Sub {
			s, ok := finite(sub)
			if !ok || len(out)+len(s) > maxHostKeys {
				return nil, false
			}
			out = append(out, s...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range r.Sub {
			s, ok := finite(sub)
			if !ok || len(out)*len(s) > maxHostKeys {
				return nil, false
			}
			next := make([]string, 0, len(out)*len(s))
			for _, a := range out {
				for _, b := range s {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return out, true
	}
	return nil, false
}

// hostKey is the key of the request's :authority, lower-cased into buf;
// ok is false when the value is not ASCII or too long for buf (the caller
// then scans every route). present is false without an :authority.
func hostKey(h *header.Map, buf []byte) (key []byte, present, ok bool) {
	v, present := headerValue(h, authorityName)
	if !present {
		return nil, false, true
	}
	// The whole value must be ASCII: the keys leave out non-ASCII
	// alternatives anywhere in a matcher's strings.
	if !isASCII(v) {
		return nil, true, false
	}
	v = hostPart(v)
	if len(v) > len(buf) {
		return nil, true, false
	}
	for i := 0; i < len(v); i++ {
		buf[i] = lowerASCII(v[i])
	}
	return buf[:len(v)], true, true
}
