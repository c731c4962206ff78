package route

import (
	"strings"
	"testing"
)

func TestRewritePath(t *testing.T) {
	cases := []struct {
		match, action, in, want string
		changed                 bool
	}{
		{`{prefix: /prefix/}`, `{cluster: c, prefix_rewrite: /}`, "/prefix/etc?x=1", "/etc?x=1", true},
		{`{prefix: /prefix}`, `{cluster: c, prefix_rewrite: /}`, "/prefix/etc", "//etc", true},
		{`{prefix: /API, case_sensitive: false}`, `{cluster: c, prefix_rewrite: /v2}`, "/api/x", "/v2/x", true},
		{`{path: /exact}`, `{cluster: c, prefix_rewrite: /new}`, "/exact?q", "/new?q", true},
		{`{path_separated_prefix: /api}`, `{cluster: c, prefix_rewrite: /v1}`, "/api/x", "/v1/x", true},
		{`{safe_regex: {regex: "/abc/.*"}}`, `{cluster: c, prefix_rewrite: /new}`, "/abc/def?q", "/new?q", true},
		{`{prefix: /}`, `{cluster: c}`, "/same", "/same", false},
		// Envoy's documented regex_rewrite examples.
		{`{prefix: /}`, `{cluster: c, regex_rewrite: {pattern: {regex: "^/service/([^/]+)(/.*)$"}, substitution: "\\2/instance/\\1"}}`,
			"/service/foo/v1/api?x=1", "/v1/api/instance/foo?x=1", true},
		{`{prefix: /}`, `{cluster: c, regex_rewrite: {pattern: {regex: "one"}, substitution: two}}`,
			"/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz", true},
		{`{prefix: /}`, `{cluster: c, regex_rewrite: {pattern: {regex: "^(.*?)one(.*)$"}, substitution: "\\1two\\2"}}`,
			"/xxx/one/yyy/one/zzz", "/xxx/two/yyy/one/zzz", true},
		{`{prefix: /}`, `{cluster: c, regex_rewrite: {pattern: {regex: "(?i)/xxx/"}, substitution: /yyy/}}`,
			"/aaa/XxX/bbb", "/aaa/yyy/bbb", true},
		// "$" is literal in RE2 substitutions; "\\" is a backslash; \0 the whole match.
		{`{prefix: /}`, `{cluster: c, regex_rewrite: {pattern: {regex: "a(b)"}, substitution: "$1\\\\\\0"}}`,
			"/ab", "/$1\\ab", true},
		// The query is never part of a regex rewrite's subject.
		{`{prefix: /}`, `{cluster: c, regex_rewrite: {pattern: {regex: "x"}, substitution: "y"}}`,
			"/x?x=x", "/y?x=x", true},
	}
	for _, c := range cases {
		tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes: [{name: r, match: `+c.match+`, route: `+c.action+`}]
`)
		m := tbl.Match(req("h", c.in), RequestInfo{})
		if m.Route == nil {
			t.Errorf("%s: %q did not match", c.match, c.in)
			continue
		}
		got, changed := m.Route.RewritePath(c.in)
		if got != c.want || changed != c.changed {
			t.Errorf("%s %s: RewritePath(%q) = %q, %v; want %q, %v", c.match, c.action, c.in, got, changed, c.want, c.changed)
		}
	}
}

func TestRegexSubstitutionErrors(t *testing.T) {
	for sub, want := range map[string]string{
		`\\2`: `\2 names a capture group the pattern does not have`,
		`\\x`: `backslash must be followed by a digit or a backslash`,
		`a\\`: `trailing backslash`,
	} {
		err := compileErr(t, `
virtual_hosts:
- {name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c, regex_rewrite: {pattern: {regex: "(a)"}, substitution: "`+sub+`"}}}]}`)
		if err == nil || !strings.Contains(err.Error(), "routes[0].route.regex_rewrite.substitution: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", sub, err)
		}
	}
}

func TestRedirectLocation(t *testing.T) {
	cases := []struct {
		match, redirect string
		host, path      string
		xfp             string // x-forwarded-proto; the :scheme is http
		want            string
		code            int
	}{
		{`{prefix: /}`, `{https_redirect: true}`, "www.lyft.com", "/foo", "http", "https://www.lyft.com/foo", 301},
		{`{prefix: /}`, `{https_redirect: true}`, "host:80", "/foo", "http", "https://host/foo", 301},
		{`{prefix: /}`, `{https_redirect: true}`, "host:8080", "/foo", "http", "https://host:8080/foo", 301},
		{`{prefix: /}`, `{https_redirect: true}`, "[::1]:80", "/", "http", "https://[::1]/", 301},
		{`{prefix: /}`, `{https_redirect: true}`, "[::1]", "/", "http", "https://[::1]/", 301},
		{`{prefix: /}`, `{scheme_redirect: http}`, "host:443", "/", "https", "http://host/", 301},
		{`{prefix: /}`, `{scheme_redirect: ws}`, "host", "/", "http", "ws://host/", 301},
		{`{prefix: /}`, `{host_redirect: new.lyft.com, response_code: FOUND}`, "old:9000", "/foo?a=b", "http", "http://new.lyft.com/foo?a=b", 302},
		{`{prefix: /}`, `{port_redirect: 8443}`, "host:80", "/x", "http", "http://host:8443/x", 301},
		{`{prefix: /}`, `{host_redirect: h2, port_redirect: 81, response_code: SEE_OTHER}`, "host", "/", "http", "http://h2:81/", 303},
		{`{prefix: /}`, `{path_redirect: /new_path, response_code: TEMPORARY_REDIRECT}`, "h", "/foo?a=b", "http", "http://h/new_path?a=b", 307},
		{`{prefix: /}`, `{path_redirect: "/new_path?c=d", strip_query: true, response_code: PERMANENT_REDIRECT}`, "h", "/foo?a=b", "http", "http://h/new_path?c=d", 308},
		{`{prefix: /}`, `{path_redirect: new_path}`, "h", "/foo", "http", "http://h/new_path", 301},
		{`{prefix: /}`, `{strip_query: true, host_redirect: x}`, "h", "/foo?a=b", "http", "http://x/foo", 301},
		{`{prefix: /prefix}`, `{prefix_rewrite: /new/prefix}`, "h", "/prefix/some/path/?lang=eng&con=US", "http", "http://h/new/prefix/some/path/?lang=eng&con=US", 301},
		{`{prefix: /prefix}`, `{prefix_rewrite: /new, strip_query: true}`, "h", "/prefix/p?q", "http", "http://h/new/p", 301},
		{`{prefix: /}`, `{regex_rewrite: {pattern: {regex: "^/service/([^/]+)(/.*)$"}, substitution: "\\2/instance/\\1"}}`, "h", "/service/foo/v1/api?x=1", "http", "http://h/v1/api/instance/foo?x=1", 301},
	}
	for _, c := range cases {
		tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes: [{name: r, match: `+c.match+`, redirect: `+c.redirect+`}]
`)
		h := req(c.host, c.path, "x-forwarded-proto", c.xfp)
		m := tbl.Match(h, RequestInfo{})
		if m.Route == nil || m.Route.Kind != ActionRedirect {
			t.Errorf("%s: no redirect route", c.redirect)
			continue
		}
		if got := m.Route.Redirect.Location(h); got != c.want {
			t.Errorf("%s %s%s: Location %q, want %q", c.redirect, c.host, c.path, got, c.want)
		}
		if m.Route.Redirect.Code != c.code {
			t.Errorf("%s: code %d, want %d", c.redirect, m.Route.Redirect.Code, c.code)
		}
	}
}

func TestFinalizeHostAndPath(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: lit, match: {prefix: /lit/}, route: {cluster: c, host_rewrite_literal: new.host, prefix_rewrite: /, append_x_forwarded_host: true}}
  - {name: hdr, match: {prefix: /hdr}, route: {cluster: c, host_rewrite_header: x-host}}
  - {name: rx, match: {prefix: /rx}, route: {cluster: c, host_rewrite_path_regex: {pattern: {regex: "^/rx/([^/]+)/.*$"}, substitution: "\\1"}}}
  - name: wc
    match: {prefix: /wc}
    route:
      weighted_clusters:
        clusters: [{name: a, weight: 1, host_rewrite_literal: wc.host}]
`)
	type want struct{ authority, path, xfh, orig string }
	cases := []struct {
		path  string
		extra []string
		w     want
	}{
		{"/lit/x?q", nil, want{"new.host", "/x?q", "orig", "/lit/x?q"}},
		{"/lit/x", []string{"x-forwarded-host", "a,orig"}, want{"new.host", "/x", "a,orig", "/lit/x"}}, // idempotent append
		{"/lit/x", []string{"x-forwarded-host", "a"}, want{"new.host", "/x", "a,orig", "/lit/x"}},
		{"/hdr", []string{"x-host", "from.header"}, want{"from.header", "/hdr", "", ""}},
		{"/hdr", nil, want{"orig", "/hdr", "", ""}}, // no header: no rewrite
		{"/rx/envoyproxy.io/some/path", nil, want{"envoyproxy.io", "/rx/envoyproxy.io/some/path", "", ""}},
		{"/wc", nil, want{"wc.host", "/wc", "", ""}},
	}
	for _, c := range cases {
		h := req("orig", c.path, c.extra...)
		m := tbl.Match(h, RequestInfo{})
		m.FinalizeRequestHeaders(h, nil, true)
		got := want{}
		got.authority, _ = h.Get(":authority")
		got.path, _ = h.Get(":path")
		got.xfh, _ = h.Get("x-forwarded-host")
		got.orig, _ = h.Get("x-envoy-original-path")
		if got != c.w {
			t.Errorf("%s: got %+v, want %+v", c.path, got, c.w)
		}
	}
	// Without insertOriginalPath there is no x-envoy-original-path.
	h := req("orig", "/lit/x")
	m := tbl.Match(h, RequestInfo{})
	m.FinalizeRequestHeaders(h, nil, false)
	if _, ok := h.Get("x-envoy-original-path"); ok {
		t.Errorf("x-envoy-original-path without insertOriginalPath")
	}
	// auto_host_rewrite is applied by the router with the upstream host.
	a := actionOf(t, `{cluster: c, auto_host_rewrite: true}`)
	h = req("orig", "/")
	a.RewriteHostForUpstream(h, "upstream.internal")
	if v, _ := h.Get(":authority"); v != "upstream.internal" {
		t.Errorf("auto_host_rewrite: %q", v)
	}
	a = actionOf(t, `{cluster: c}`)
	h = req("orig", "/")
	a.RewriteHostForUpstream(h, "upstream.internal")
	if v, _ := h.Get(":authority"); v != "orig" {
		t.Errorf("no auto_host_rewrite: %q", v)
	}
}
