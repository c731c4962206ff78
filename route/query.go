package route

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// queryFirst returns the first value of the query parameter name in a
// :path, undecoded, as Envoy's QueryParamsMulti::parseQueryString and
// getFirstValue: parameters are split on "&", a parameter without "=" has
// the value "".
func queryFirst(path, name string) (string, bool) {
	q := strings.IndexByte(path, '?')
	if q < 0 {
		return "", false
	}
	s := path[q+1:]
	for s != "" {
		var param string
		if i := strings.IndexByte(s, '&'); i >= 0 {
			param, s = s[:i], s[i+1:]
		} else {
			param, s = s, ""
		}
		k, v := param, ""
		if eq := strings.IndexByte(param, '='); eq >= 0 {
			k, v = param[:eq], param[eq+1:]
		}
		if k == name {
			return v, true
		}
	}
	return "", false
}

// queryMatcher is a compiled envoy.config.route.v3.QueryParameterMatcher.
type queryMatcher struct {
	name    string
	present bool // present_match, or no specifier
	sm      stringMatcher
}

func (c *errs) queryMatchers(path string, in []*routev3.QueryParameterMatcher) []queryMatcher {
	var out []queryMatcher
	for i, m := range in {
		p := idx(path, "query_parameters", i)
		c.only(p, m, "name", "string_match", "present_match")
		q := queryMatcher{name: m.GetName()}
		switch s := m.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			q.sm = c.stringMatcher(at(p, "string_match"), s.StringMatch)
		default:
			q.present = true
		}
		out = append(out, q)
	}
	return out
}

func (q *queryMatcher) matches(path string) bool {
	v, ok := queryFirst(path, q.name)
	if !ok {
		return false
	}
	return q.present || q.sm.match(v)
}
