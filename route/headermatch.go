package route

import (
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wasmesh/wasmesh/header"
)

type headerKind uint8

const (
	hdrPresent headerKind = iota
	hdrExact
	hdrRegex
	hdrRange
	hdrPrefix
	hdrSuffix
	hdrContains
	hdrString
)

// HeaderMatcher is a compiled envoy.config.route.v3.HeaderMatcher. It is
// also used for retriable_headers and virtual clusters.
type HeaderMatcher struct {
	name                string
	kind                headerKind
	value               string
	present             bool
	start, end          int64
	re                  *regexp.Regexp
	sm                  stringMatcher
	invert              bool
	treatMissingAsEmpty bool
	hosts               *hostSet // an :authority regex checked without the regex
	keys                []string // host index keys (hostindex.go), nil if none
}

func (c *errs) headerMatchers(path, field string, in []*routev3.HeaderMatcher) []HeaderMatcher {
	if len(in) == 0 {
		return nil
	}
	out := make([]HeaderMatcher, 0, len(in))
	for i, m := range in {
		out = append(out, c.headerMatcher(idx(path, field, i), m))
	}
	return out
}

func (c *errs) headerMatcher(path string, m *routev3.HeaderMatcher) HeaderMatcher {
	c.only(path, m, "name", "exact_match", "safe_regex_match", "range_match", "present_match",
		"prefix_match", "suffix_match", "contains_match", "string_match", "invert_match",
		"treat_missing_header_as_empty")
	h := HeaderMatcher{
		name:                header.Lower(m.GetName()),
		invert:              m.GetInvertMatch(),
		treatMissingAsEmpty: m.GetTreatMissingHeaderAsEmpty(),
	}
	switch s := m.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		h.kind, h.value = hdrExact, s.ExactMatch
	case *routev3.HeaderMatcher_SafeRegexMatch:
		h.kind, h.re = hdrRegex, c.compileRegex(at(path, "safe_regex_match"), s.SafeRegexMatch)
	case *routev3.HeaderMatcher_RangeMatch:
		h.kind, h.start, h.end = hdrRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_PresentMatch:
		h.kind, h.present = hdrPresent, s.PresentMatch
	case *routev3.HeaderMatcher_PrefixMatch:
		h.kind, h.value = hdrPrefix, s.PrefixMatch
	case *routev3.HeaderMatcher_SuffixMatch:
		h.kind, h.value = hdrSuffix, s.SuffixMatch
	case *routev3.HeaderMatcher_ContainsMatch:
		h.kind, h.value = hdrContains, s.ContainsMatch
	case *routev3.HeaderMatcher_StringMatch:
		h.kind, h.sm = hdrString, c.stringMatcher(at(path, "string_match"), s.StringMatch)
	default:
		// No specifier: the header must be present (Envoy's default).
		h.kind, h.present = hdrPresent, true
	}
	if h.name == authorityName {
		c.analyzeAuthority(&h)
	}
	return h
}

// headerValue returns the value of name, every value joined with ","
// when the header is repeated, as Envoy matches. It allocates only for
// repeated headers.
func headerValue(h *header.Map, name string) (string, bool) {
	fields := h.Fields()
	first := -1
	for i := range fields {
		if fields[i].Key == name {
			if first >= 0 {
				var b strings.Builder
				b.WriteString(fields[first].Value)
				for j := i; j < len(fields); j++ {
					if fields[j].Key == name {
						b.WriteByte(',')
						b.WriteString(fields[j].Value)
					}
				}
				return b.String(), true
			}
			first = i
		}
	}
	if first < 0 {
		return "", false
	}
	return fields[first].Value, true
}

// Matches reports whether the headers satisfy the matcher, as Envoy's
// HeaderUtility::matchHeaders.
func (m *HeaderMatcher) Matches(h *header.Map) bool {
	v, ok := headerValue(h, m.name)
	if !ok && !m.treatMissingAsEmpty {
		if m.invert {
			return m.kind == hdrPresent && m.present
		}
		return m.kind == hdrPresent && !m.present
	}
	if m.hosts != nil && isASCII(v) {
		if match, ok := m.hosts.match(v); ok {
			return match != m.invert
		}
	}
	var match bool
	switch m.kind {
	case hdrExact:
		match = m.value == "" || v == m.value
	case hdrRegex:
		match = m.re != nil && m.re.MatchString(v)
	case hdrRange:
		n, err := strconv.ParseInt(v, 10, 64)
		match = err == nil && n >= m.start && n < m.end
	case hdrPresent:
		match = m.present
	case hdrPrefix:
		match = strings.HasPrefix(v, m.value)
	case hdrSuffix:
		match = strings.HasSuffix(v, m.value)
	case hdrContains:
		match = strings.Contains(v, m.value)
	case hdrString:
		match = m.sm.match(v)
	}
	return match != m.invert
}

// Name is the lower-case header name the matcher reads.
func (m *HeaderMatcher) Name() string { return m.name }

func matchAllHeaders(ms []HeaderMatcher, h *header.Map) bool {
	for i := range ms {
		if !ms[i].Matches(h) {
			return false
		}
	}
	return true
}
