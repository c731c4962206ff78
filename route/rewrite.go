package route

import (
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// RegexRewrite is a compiled envoy.type.matcher.v3.RegexMatchAndSubstitute:
// every non-overlapping match of Pattern is replaced by the substitution,
// where \0-\9 name capture groups and \\ is a backslash (RE2's
// GlobalReplace).
type RegexRewrite struct {
	re       *regexp.Regexp
	template string // the substitution in Go's Expand syntax
	// Substitution is the configured substitution, for display.
	Substitution string
}

func (c *errs) regexRewrite(path string, m *matcherv3.RegexMatchAndSubstitute) *RegexRewrite {
	if m == nil {
		return nil
	}
	c.only(path, m, "pattern", "substitution")
	re := c.compileSearchRegex(at(path, "pattern"), m.GetPattern())
	if re == nil {
		return nil
	}
	tmpl, err := re2Template(m.GetSubstitution(), re.NumSubexp())
	if err != nil {
		c.add(at(path, "substitution"), err)
		return nil
	}
	return &RegexRewrite{re: re, template: tmpl, Substitution: m.GetSubstitution()}
}

// re2Template converts an RE2 rewrite string to Go's template syntax.
func re2Template(sub string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		ch := sub[i]
		switch ch {
		case '$':
			b.WriteString("$$")
		case '\\':
			if i+1 >= len(sub) {
				return "", fmt.Errorf("invalid rewrite %q: trailing backslash", sub)
			}
			i++
			d := sub[i]
			switch {
			case d == '\\':
				b.WriteByte('\\')
			case d >= '0' && d <= '9':
				n := int(d - '0')
				if n > groups {
					return "", fmt.Errorf("invalid rewrite %q: \\%d names a capture group the pattern does not have (it has %d)", sub, n, groups)
				}
				fmt.Fprintf(&b, "${%d}", n)
			default:
				return "", fmt.Errorf("invalid rewrite %q: backslash must be followed by a digit or a backslash", sub)
			}
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

// ReplaceAll rewrites every match in s.
func (r *RegexRewrite) ReplaceAll(s string) string {
	return r.re.ReplaceAllString(s, r.template)
}

// Pattern is the regular expression.
func (r *RegexRewrite) Pattern() string { return r.re.String() }

// splitQuery splits a :path into the path proper and the query and
// fragment (Envoy's PathUtil::removeQueryAndFragment).
func splitQuery(p string) (path, rest string) {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// rewritePath applies a prefix rewrite (replacing the matched prefix) or a
// regex rewrite (over the path without its query) to a full :path value.
func rewritePath(p, matched, prefixRewrite string, rx *RegexRewrite) (string, bool) {
	if prefixRewrite != "" {
		if len(matched) > len(p) {
			matched = p
		}
		return prefixRewrite + p[len(matched):], true
	}
	if rx != nil {
		just, rest := splitQuery(p)
		return rx.ReplaceAll(just) + rest, true
	}
	return p, false
}
