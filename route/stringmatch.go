package route

import (
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// regexes caches one compilation's regular expressions: the same pattern
// appears in many routes (every route of a Kong host carries the same
// :authority regex), and a *regexp.Regexp is safe for
// concurrent use, so each distinct pattern is compiled once.
type regexes map[string]regexResult

type regexResult struct {
	re  *regexp.Regexp
	err error
}

// regex compiles pattern, anchored for a full match or not, at most once
// per compilation.
func (c *errs) regex(pattern string, anchored bool) (*regexp.Regexp, error) {
	key := pattern
	if anchored {
		key = "^(?:" + pattern + ")$"
	}
	if r, ok := c.regexes[key]; ok {
		return r.re, r.err
	}
	var r regexResult
	if anchored {
		// The pattern must be valid on its own: "a)|(b" is not, although
		// its anchored form is.
		if _, r.err = c.regex(pattern, false); r.err == nil {
			r.re, r.err = regexp.Compile(key)
		}
	} else {
		r.re, r.err = regexp.Compile(key)
	}
	if c.regexes == nil {
		c.regexes = regexes{}
	}
	c.regexes[key] = r
	return r.re, r.err
}

// compileRegex compiles an envoy.type.matcher.v3.RegexMatcher for full
// matches (RE2 FullMatch): the whole input must match.
func (c *errs) compileRegex(path string, m *matcherv3.RegexMatcher) *regexp.Regexp {
	if m == nil {
		c.errf(path, "missing regex")
		return nil
	}
	// google_re2 (and its max_program_size) is deprecated and only tunes
	// Envoy's program-size guard; RE2 itself is what Go's regexp implements.
	c.only(path, m, "google_re2", "regex")
	re, err := c.regex(m.GetRegex(), true)
	if err != nil {
		c.errf(at(path, "regex"), "invalid regex %q: %v", m.GetRegex(), err)
		return nil
	}
	return re
}

// compileSearchRegex compiles a regex used to find and replace
// substrings (regex_rewrite): not anchored.
func (c *errs) compileSearchRegex(path string, m *matcherv3.RegexMatcher) *regexp.Regexp {
	if m == nil {
		c.errf(path, "missing regex")
		return nil
	}
	c.only(path, m, "google_re2", "regex")
	re, err := c.regex(m.GetRegex(), false)
	if err != nil {
		c.errf(at(path, "regex"), "invalid regex %q: %v", m.GetRegex(), err)
		return nil
	}
	return re
}

type stringKind uint8

const (
	strExact stringKind = iota + 1
	strPrefix
	strSuffix
	strContains
	strRegex
)

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	kind       stringKind
	value      string
	ignoreCase bool // ASCII only, as absl; never for regex
	re         *regexp.Regexp
}

func (c *errs) stringMatcher(path string, m *matcherv3.StringMatcher) stringMatcher {
	var s stringMatcher
	if m == nil {
		c.errf(path, "missing string matcher")
		return s
	}
	c.only(path, m, "exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case")
	if m.GetCustom() != nil {
		return s // reported by only()
	}
	s.ignoreCase = m.GetIgnoreCase()
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		s.kind, s.re = strRegex, c.compileRegex(at(path, "safe_regex"), p.SafeRegex)
		s.ignoreCase = false
	default:
		c.errf(path, "no match pattern set")
	}
	return s
}

func (s *stringMatcher) match(v string) bool {
	switch s.kind {
	case strExact:
		if s.ignoreCase {
			return equalFold(v, s.value)
		}
		return v == s.value
	case strPrefix:
		if s.ignoreCase {
			return hasPrefixFold(v, s.value)
		}
		return strings.HasPrefix(v, s.value)
	case strSuffix:
		if s.ignoreCase {
			return hasSuffixFold(v, s.value)
		}
		return strings.HasSuffix(v, s.value)
	case strContains:
		if s.ignoreCase {
			return containsFold(v, s.value)
		}
		return strings.Contains(v, s.value)
	case strRegex:
		return s.re != nil && s.re.MatchString(v)
	}
	return false
}

func (s *stringMatcher) String() string {
	switch s.kind {
	case strExact:
		return fmt.Sprintf("exact %q", s.value)
	case strPrefix:
		return fmt.Sprintf("prefix %q", s.value)
	case strSuffix:
		return fmt.Sprintf("suffix %q", s.value)
	case strContains:
		return fmt.Sprintf("contains %q", s.value)
	case strRegex:
		return fmt.Sprintf("regex %q", s.re)
	}
	return "unset"
}

// ASCII case folding, as absl's *IgnoreCase helpers: never Unicode folding,
// and never an allocation.

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && equalFold(s[:len(prefix)], prefix)
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && equalFold(s[len(s)-len(suffix):], suffix)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if equalFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
