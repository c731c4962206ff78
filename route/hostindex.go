package route

import (
	"regexp"
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
		if ms[i].name == authorityName && len(ms[i].keys) > 0 {
			return ms[i].keys
		}
	}
	return nil
}

// authorityInfo is what an :authority regex allows: index keys, and the
// set check when the regex has that shape.
type authorityInfo struct {
	keys []string
	set  *hostSet
}

// analyzeAuthority sets the index keys and the set check of an
// :authority matcher.
func (c *errs) analyzeAuthority(m *HeaderMatcher) {
	var re *regexp.Regexp
	switch {
	case m.kind == hdrRegex:
		re = m.re
	case m.kind == hdrString && m.sm.kind == strRegex:
		re = m.sm.re
	}
	if re != nil {
		info, ok := c.authority[re]
		if !ok {
			info.keys, _ = regexKeys(re)
			info.set = newHostSet(re)
			if c.authority == nil {
				c.authority = map[*regexp.Regexp]authorityInfo{}
			}
			c.authority[re] = info
		}
		m.hosts = info.set
		if !m.invert && !m.treatMissingAsEmpty {
			m.keys = info.keys
		}
		return
	}
	if m.invert || m.treatMissingAsEmpty {
		return
	}
	switch {
	case m.kind == hdrExact && m.value != "": // "" matches any value
		m.keys, _ = literalKeys(m.value)
	case m.kind == hdrString && m.sm.kind == strExact:
		m.keys, _ = literalKeys(m.sm.value) // ignore_case folds ASCII only
	}
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
func regexKeys(re *regexp.Regexp) ([]string, bool) {
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

// hostSet is an :authority regex proven equivalent, for ASCII values, to
// "the lower-cased host part is one of keys, followed by nothing or (port)
// by ':' and one or more digits": the shape of Kong's host matchers,
// checked without running the regex.
type hostSet struct {
	keys map[string]struct{}
	port bool // an optional ":<digits>" may follow
}

// newHostSet recognizes the shape in a compiled full-match regex.
func newHostSet(re *regexp.Regexp) *hostSet {
	if re == nil {
		return nil
	}
	r, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	r = r.Simplify()
	if r.Op != syntax.OpConcat || len(r.Sub) < 3 || r.Sub[0].Op != syntax.OpBeginText || r.Sub[len(r.Sub)-1].Op != syntax.OpEndText {
		return nil
	}
	subs := r.Sub[1 : len(r.Sub)-1]
	hs := &hostSet{}
	if last := subs[len(subs)-1]; isOptionalPort(last) {
		hs.port = true
		subs = subs[:len(subs)-1]
	}
	host := &syntax.Regexp{Op: syntax.OpConcat, Sub: subs}
	if !foldsASCII(host) {
		return nil
	}
	ss, ok := finite(host)
	if !ok || len(ss) == 0 {
		return nil
	}
	hs.keys = make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if strings.IndexByte(s, ':') >= 0 {
			return nil
		}
		hs.keys[s] = struct{}{}
	}
	return hs
}

// isOptionalPort reports whether r is exactly (?::[0-9]+)?.
func isOptionalPort(r *syntax.Regexp) bool {
	if r.Op != syntax.OpQuest {
		return false
	}
	c := r.Sub[0]
	for c.Op == syntax.OpCapture {
		c = c.Sub[0]
	}
	if c.Op != syntax.OpConcat || len(c.Sub) != 2 {
		return false
	}
	colon, digits := c.Sub[0], c.Sub[1]
	return colon.Op == syntax.OpLiteral && len(colon.Rune) == 1 && colon.Rune[0] == ':' &&
		digits.Op == syntax.OpPlus && digits.Sub[0].Op == syntax.OpCharClass &&
		len(digits.Sub[0].Rune) == 2 && digits.Sub[0].Rune[0] == '0' && digits.Sub[0].Rune[1] == '9'
}

// foldsASCII reports whether r is built only from literals, small classes,
// concatenation, alternation, optional parts and groups, with every ASCII
// letter matched in both cases: for ASCII input it matches a string iff it
// matches its lower-cased form.
func foldsASCII(r *syntax.Regexp) bool {
	switch r.Op {
	case syntax.OpEmptyMatch:
		return true
	case syntax.OpLiteral:
		if r.Flags&syntax.FoldCase != 0 {
			return true
		}
		for _, c := range r.Rune {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
				return false
			}
		}
		return true
	case syntax.OpCharClass:
		in := func(c rune) bool {
			for i := 0; i+1 < len(r.Rune); i += 2 {
				if r.Rune[i] <= c && c <= r.Rune[i+1] {
					return true
				}
			}
			return false
		}
		for c := 'a'; c <= 'z'; c++ {
			if in(c) != in(c-'a'+'A') {
				return false
			}
		}
		return true
	case syntax.OpCapture, syntax.OpQuest, syntax.OpConcat, syntax.OpAlternate:
		for _, s := range r.Sub {
			if !foldsASCII(s) {
				return false
			}
		}
		return true
	}
	return false
}

// match decides for an ASCII value; decided is false when the value is
// too long for the stack buffer (the caller runs the regex).
func (hs *hostSet) match(v string) (match, decided bool) {
	host, rest := v, ""
	if i := strings.IndexByte(v, ':'); i >= 0 {
		host, rest = v[:i], v[i:]
	}
	if rest != "" {
		if !hs.port || len(rest) < 2 {
			return false, true
		}
		for i := 1; i < len(rest); i++ {
			if rest[i] < '0' || rest[i] > '9' {
				return false, true
			}
		}
	}
	var buf [256]byte
	if len(host) > len(buf) {
		return false, false
	}
	for i := 0; i < len(host); i++ {
		buf[i] = lowerASCII(host[i])
	}
	_, ok := hs.keys[string(buf[:len(host)])]
	return ok, true
}
