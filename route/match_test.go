package route

import (
	"testing"
)

// oneRoute compiles a table whose only virtual host has the given match
// (YAML flow mapping) and a second catch-all route named "fallback".
func oneRoute(t *testing.T, match string, extra ...string) *Table {
	t.Helper()
	pre := ""
	if len(extra) > 0 {
		pre = extra[0]
	}
	return mustCompile(t, pre+`
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: hit
    match: `+match+`
    route: {cluster: c}
`)
}

type matchCase struct {
	name string
	h    []string // path, then header pairs
	info RequestInfo
	want bool
}

func runMatchCases(t *testing.T, tbl *Table, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		h := req("host", c.h[0], c.h[1:]...)
		got := routeName(tbl, h, c.info) == "hit"
		if got != c.want {
			t.Errorf("%s: %s matched=%v, want %v", c.name, indent(h.String()), got, c.want)
		}
	}
}

func TestPathMatchers(t *testing.T) {
	tests := []struct {
		match string
		cases []matchCase
	}{
		{`{prefix: /api}`, []matchCase{
			{"prefix", []string{"/api/v1"}, RequestInfo{}, true},
			{"prefix equal", []string{"/api"}, RequestInfo{}, true},
			{"prefix no segment boundary", []string{"/apix"}, RequestInfo{}, true},
			{"prefix case", []string{"/API"}, RequestInfo{}, false},
			{"prefix other", []string{"/ap"}, RequestInfo{}, false},
		}},
		{`{prefix: /api, case_sensitive: false}`, []matchCase{
			{"case-insensitive prefix", []string{"/API/x"}, RequestInfo{}, true},
			{"case-insensitive prefix ascii only", []string{"/\u212api"}, RequestInfo{}, false},
		}},
		{`{prefix: "/a?b"}`, []matchCase{
			// The query is removed before prefix matching.
			{"prefix sees no query", []string{"/a?b=1"}, RequestInfo{}, false},
		}},
		{`{path: /exact}`, []matchCase{
			{"path", []string{"/exact"}, RequestInfo{}, true},
			{"path with query", []string{"/exact?x=1"}, RequestInfo{}, true},
			{"path with fragment", []string{"/exact#frag"}, RequestInfo{}, true},
			{"path longer", []string{"/exact/"}, RequestInfo{}, false},
			{"path case", []string{"/EXACT"}, RequestInfo{}, false},
		}},
		{`{path: /exact, case_sensitive: false}`, []matchCase{
			{"case-insensitive path", []string{"/ExAcT?q"}, RequestInfo{}, true},
		}},
		{`{safe_regex: {regex: "/v[0-9]+/.*"}}`, []matchCase{
			{"regex", []string{"/v12/users"}, RequestInfo{}, true},
			{"regex query excluded", []string{"/v1/x?y=/z"}, RequestInfo{}, true},
			{"regex full match only", []string{"/api/v1/users"}, RequestInfo{}, false},
			{"regex no digits", []string{"/v/users"}, RequestInfo{}, false},
		}},
		{`{safe_regex: {regex: "/a|/b"}, case_sensitive: false}`, []matchCase{
			// case_sensitive does not apply to regexes; alternation is anchored as a whole.
			{"regex alt", []string{"/b"}, RequestInfo{}, true},
			{"regex case", []string{"/B"}, RequestInfo{}, false},
			{"regex alt anchored", []string{"/bc"}, RequestInfo{}, false},
		}},
		// Envoy's documented example: /api/dev matches /api/dev, /api/dev/,
		// /api/dev/v1 and /api/dev?param=true but not /api/developer.
		{`{path_separated_prefix: /api/dev}`, []matchCase{
			{"sep exact", []string{"/api/dev"}, RequestInfo{}, true},
			{"sep slash", []string{"/api/dev/"}, RequestInfo{}, true},
			{"sep sub", []string{"/api/dev/v1"}, RequestInfo{}, true},
			{"sep query", []string{"/api/dev?param=true"}, RequestInfo{}, true},
			{"sep longer segment", []string{"/api/developer"}, RequestInfo{}, false},
			{"sep shorter", []string{"/api/de"}, RequestInfo{}, false},
		}},
		{`{path_separated_prefix: /api/dev, case_sensitive: false}`, []matchCase{
			{"sep case-insensitive", []string{"/API/Dev/x"}, RequestInfo{}, true},
		}},
		{`{connect_matcher: {}}`, []matchCase{
			{"connect", []string{"/", ":method", "CONNECT"}, RequestInfo{}, true},
			{"connect-udp", []string{"/", ":method", "CONNECT", ":protocol", "connect-udp"}, RequestInfo{}, true},
			{"extended connect websocket", []string{"/", ":method", "CONNECT", ":protocol", "websocket"}, RequestInfo{}, false},
			{"not connect", []string{"/"}, RequestInfo{}, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.match, func(t *testing.T) {
			runMatchCases(t, oneRoute(t, tt.match), tt.cases)
		})
	}
}

func TestPathlessRequests(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: prefix, match: {prefix: ""}, route: {cluster: c}}
  - {name: connect, match: {connect_matcher: {}}, route: {cluster: c}}
`)
	h := req("host:443", "")
	h.Del(":path")
	h.Set(":method", "CONNECT")
	if got := routeName(tbl, h, RequestInfo{}); got != "connect" {
		t.Errorf("a request without :path skips path routes: got %q", got)
	}
}

func TestIgnorePathParameters(t *testing.T) {
	tbl := oneRoute(t, `{path: /a/b}`, "ignore_path_parameters_in_path_matching: true\n")
	runMatchCases(t, tbl, []matchCase{
		{"params ignored", []string{"/a/b;jsessionid=1"}, RequestInfo{}, true},
		{"params and query", []string{"/a/b;x=1?q=2"}, RequestInfo{}, true},
	})
	tbl = oneRoute(t, `{path: /a/b, query_parameters: [{name: q, string_match: {exact: "2"}}]}`, "ignore_path_parameters_in_path_matching: true\n")
	runMatchCases(t, tbl, []matchCase{
		{"query parameters still seen", []string{"/a/b;x=1?q=2"}, RequestInfo{}, true},
	})
	tbl = oneRoute(t, `{path: /a/b}`)
	runMatchCases(t, tbl, []matchCase{
		{"params by default", []string{"/a/b;jsessionid=1"}, RequestInfo{}, false},
	})
}

func TestHeaderMatchers(t *testing.T) {
	tests := []struct {
		headers string
		cases   []matchCase
	}{
		{`[{name: x-a, exact_match: v}]`, []matchCase{
			{"exact", []string{"/", "x-a", "v"}, RequestInfo{}, true},
			{"exact other", []string{"/", "x-a", "w"}, RequestInfo{}, false},
			{"exact absent", []string{"/"}, RequestInfo{}, false},
			{"exact repeated joined", []string{"/", "x-a", "v", "x-a", "w"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, exact_match: "v,w"}]`, []matchCase{
			{"repeated values are joined with ','", []string{"/", "x-a", "v", "x-a", "w"}, RequestInfo{}, true},
		}},
		{`[{name: X-A, exact_match: ""}]`, []matchCase{
			// An empty exact_match matches any value; names are lower-cased.
			{"empty exact", []string{"/", "x-a", "anything"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, safe_regex_match: {regex: "\\d{3}"}}]`, []matchCase{
			{"regex", []string{"/", "x-a", "123"}, RequestInfo{}, true},
			{"regex full", []string{"/", "x-a", "1234"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, safe_regex_match: {regex: "\\d{3}"}, invert_match: true}]`, []matchCase{
			// Envoy's documented example: \d{3} does not match 1234, so inverted it matches.
			{"regex inverted", []string{"/", "x-a", "1234"}, RequestInfo{}, true},
			{"regex inverted absent", []string{"/"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, range_match: {start: -10, end: 0}}]`, []matchCase{
			// Envoy's documented example: [-10,0) matches -1 but not 0, somestring, 10.9, -1somestring.
			{"range in", []string{"/", "x-a", "-1"}, RequestInfo{}, true},
			{"range -10", []string{"/", "x-a", "-10"}, RequestInfo{}, true},
			{"range end", []string{"/", "x-a", "0"}, RequestInfo{}, false},
			{"range string", []string{"/", "x-a", "somestring"}, RequestInfo{}, false},
			{"range float", []string{"/", "x-a", "10.9"}, RequestInfo{}, false},
			{"range suffix", []string{"/", "x-a", "-1somestring"}, RequestInfo{}, false},
			{"range plus", []string{"/", "x-a", "+0"}, RequestInfo{}, false},
			{"range empty", []string{"/", "x-a", ""}, RequestInfo{}, false},
		}},
		{`[{name: x-a, range_match: {start: -10, end: 0}, invert_match: true}]`, []matchCase{
			{"range inverted", []string{"/", "x-a", "-1"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, present_match: true}]`, []matchCase{
			{"present", []string{"/", "x-a", ""}, RequestInfo{}, true},
			{"present absent", []string{"/"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, present_match: false}]`, []matchCase{
			{"absent wanted, present", []string{"/", "x-a", "v"}, RequestInfo{}, false},
			{"absent wanted, absent", []string{"/"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, present_match: true, invert_match: true}]`, []matchCase{
			{"present inverted, absent", []string{"/"}, RequestInfo{}, true},
			{"present inverted, present", []string{"/", "x-a", "v"}, RequestInfo{}, false},
		}},
		{`[{name: x-a}]`, []matchCase{
			{"no specifier means present", []string{"/", "x-a", "v"}, RequestInfo{}, true},
			{"no specifier absent", []string{"/"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, prefix_match: abcd}]`, []matchCase{
			{"prefix", []string{"/", "x-a", "abcdxyz"}, RequestInfo{}, true},
			{"prefix no", []string{"/", "x-a", "abcxyz"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, suffix_match: abcd}]`, []matchCase{
			{"suffix", []string{"/", "x-a", "xyzabcd"}, RequestInfo{}, true},
			{"suffix no", []string{"/", "x-a", "xyzbcd"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, contains_match: abcd}]`, []matchCase{
			{"contains", []string{"/", "x-a", "xyzabcdpqr"}, RequestInfo{}, true},
			{"contains no", []string{"/", "x-a", "xyzbcdpqr"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, string_match: {exact: Foo, ignore_case: true}}]`, []matchCase{
			{"string exact ignore_case", []string{"/", "x-a", "fOO"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, string_match: {exact: Foo}}]`, []matchCase{
			{"string exact case", []string{"/", "x-a", "fOO"}, RequestInfo{}, false},
			{"string exact", []string{"/", "x-a", "Foo"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, string_match: {prefix: Ab, ignore_case: true}}]`, []matchCase{
			{"string prefix ignore_case", []string{"/", "x-a", "aBc"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, string_match: {suffix: Yz, ignore_case: true}}]`, []matchCase{
			{"string suffix ignore_case", []string{"/", "x-a", "xYZ"}, RequestInfo{}, true},
			{"string suffix no", []string{"/", "x-a", "xY"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, string_match: {contains: Mid, ignore_case: true}}]`, []matchCase{
			{"string contains ignore_case", []string{"/", "x-a", "amIDz"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, string_match: {contains: Mid}}]`, []matchCase{
			{"string contains case", []string{"/", "x-a", "amIDz"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, string_match: {safe_regex: {regex: "[a-c]+"}, ignore_case: true}}]`, []matchCase{
			// ignore_case has no effect on regexes.
			{"string regex", []string{"/", "x-a", "abc"}, RequestInfo{}, true},
			{"string regex ignore_case ignored", []string{"/", "x-a", "ABC"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, range_match: {start: 0, end: 10}, invert_match: true, treat_missing_header_as_empty: true}]`, []matchCase{
			// Envoy's documented examples for treat_missing_header_as_empty.
			{"missing as empty, inverted range", []string{"/"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, range_match: {start: 0, end: 10}, invert_match: true}]`, []matchCase{
			{"missing, inverted range", []string{"/"}, RequestInfo{}, false},
		}},
		{`[{name: x-a, string_match: {safe_regex: {regex: "^$"}}, treat_missing_header_as_empty: true}]`, []matchCase{
			{"missing as empty, empty regex", []string{"/"}, RequestInfo{}, true},
		}},
		{`[{name: x-a, string_match: {safe_regex: {regex: "^$"}}}]`, []matchCase{
			{"missing, empty regex", []string{"/"}, RequestInfo{}, false},
		}},
		{`[{name: ":method", string_match: {exact: POST}}, {name: x-b, present_match: true}]`, []matchCase{
			{"all headers must match", []string{"/", ":method", "POST", "x-b", "1"}, RequestInfo{}, true},
			{"one fails", []string{"/", ":method", "GET", "x-b", "1"}, RequestInfo{}, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.headers, func(t *testing.T) {
			runMatchCases(t, oneRoute(t, `{prefix: /, headers: `+tt.headers+`}`), tt.cases)
		})
	}
}

func TestQueryParameterMatchers(t *testing.T) {
	tests := []struct {
		query string
		cases []matchCase
	}{
		{`[{name: debug, string_match: {exact: "1"}}]`, []matchCase{
			{"exact", []string{"/?debug=1"}, RequestInfo{}, true},
			{"exact among others", []string{"/x?a=b&debug=1&c"}, RequestInfo{}, true},
			{"first value wins", []string{"/?debug=2&debug=1"}, RequestInfo{}, false},
			{"not decoded", []string{"/?debug=%31"}, RequestInfo{}, false},
			{"absent", []string{"/?debugx=1"}, RequestInfo{}, false},
			{"no query", []string{"/"}, RequestInfo{}, false},
		}},
		{`[{name: debug, string_match: {prefix: "Y", ignore_case: true}}]`, []matchCase{
			{"prefix ignore_case", []string{"/?debug=yes"}, RequestInfo{}, true},
		}},
		{`[{name: debug, present_match: true}]`, []matchCase{
			{"present without value", []string{"/?debug"}, RequestInfo{}, true},
			{"present empty value", []string{"/?debug="}, RequestInfo{}, true},
			{"absent", []string{"/?x=1"}, RequestInfo{}, false},
		}},
		{`[{name: debug}]`, []matchCase{
			{"no specifier means present", []string{"/?debug=0"}, RequestInfo{}, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			runMatchCases(t, oneRoute(t, `{prefix: /, query_parameters: `+tt.query+`}`), tt.cases)
		})
	}
}

func TestGrpcMatch(t *testing.T) {
	runMatchCases(t, oneRoute(t, `{prefix: /, grpc: {}}`), []matchCase{
		{"grpc", []string{"/svc/M", "content-type", "application/grpc"}, RequestInfo{}, true},
		{"grpc+proto", []string{"/svc/M", "content-type", "application/grpc+proto"}, RequestInfo{}, true},
		{"grpc-web is not grpc", []string{"/svc/M", "content-type", "application/grpc-web"}, RequestInfo{}, false},
		{"json", []string{"/svc/M", "content-type", "application/json"}, RequestInfo{}, false},
		{"none", []string{"/svc/M"}, RequestInfo{}, false},
	})
}

func TestRuntimeFraction(t *testing.T) {
	tbl := oneRoute(t, `{prefix: /, runtime_fraction: {default_value: {numerator: 25, denominator: HUNDRED}, runtime_key: some.key}}`)
	runMatchCases(t, tbl, []matchCase{
		{"random 24", []string{"/"}, RequestInfo{Random: 24}, true},
		{"random 25", []string{"/"}, RequestInfo{Random: 25}, false},
		{"random 124", []string{"/"}, RequestInfo{Random: 124}, true},
	})
	tbl = oneRoute(t, `{prefix: /, runtime_fraction: {default_value: {numerator: 5, denominator: TEN_THOUSAND}}}`)
	runMatchCases(t, tbl, []matchCase{
		{"ten thousand in", []string{"/"}, RequestInfo{Random: 10004}, true},
		{"ten thousand out", []string{"/"}, RequestInfo{Random: 10005}, false},
	})
	tbl = oneRoute(t, `{prefix: /, runtime_fraction: {default_value: {numerator: 1, denominator: MILLION}}}`)
	runMatchCases(t, tbl, []matchCase{
		{"million in", []string{"/"}, RequestInfo{Random: 3000000}, true},
		{"million out", []string{"/"}, RequestInfo{Random: 3000001}, false},
	})
}

func TestTLSContextMatch(t *testing.T) {
	runMatchCases(t, oneRoute(t, `{prefix: /, tls_context: {presented: true}}`), []matchCase{
		{"presented", []string{"/"}, RequestInfo{PeerCertPresented: true}, true},
		{"not presented", []string{"/"}, RequestInfo{}, false},
	})
	runMatchCases(t, oneRoute(t, `{prefix: /, tls_context: {presented: false}}`), []matchCase{
		{"presented false", []string{"/"}, RequestInfo{}, true},
		{"presented false, presented", []string{"/"}, RequestInfo{PeerCertPresented: true}, false},
	})
	runMatchCases(t, oneRoute(t, `{prefix: /, tls_context: {validated: true}}`), []matchCase{
		{"validated", []string{"/"}, RequestInfo{PeerCertPresented: true, PeerCertValidated: true}, true},
		{"presented, not validated", []string{"/"}, RequestInfo{PeerCertPresented: true}, false},
	})
	runMatchCases(t, oneRoute(t, `{prefix: /, tls_context: {}}`), []matchCase{
		{"empty tls_context", []string{"/"}, RequestInfo{}, true},
	})
}

func TestFirstMatchWins(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: first, match: {prefix: /a, headers: [{name: x, exact_match: "1"}]}, route: {cluster: c}}
  - {name: second, match: {prefix: /a/b}, route: {cluster: c}}
  - {name: third, match: {prefix: /}, route: {cluster: c}}
`)
	cases := []struct {
		h    []string
		want string
	}{
		{[]string{"/a/b", "x", "1"}, "first"},
		{[]string{"/a/b"}, "second"},
		{[]string{"/a"}, "third"},
		{[]string{"/zzz"}, "third"},
	}
	for _, c := range cases {
		if got := routeName(tbl, req("h", c.h[0], c.h[1:]...), RequestInfo{}); got != c.want {
			t.Errorf("%v: got %q, want %q", c.h, got, c.want)
		}
	}
	if got := routeName(mustCompile(t, `
virtual_hosts:
- {name: vh, domains: ["*"], routes: [{name: only, match: {path: /x}, route: {cluster: c}}]}
`), req("h", "/y"), RequestInfo{}); got != "vh:vh" {
		t.Errorf("no route in the virtual host: got %q", got)
	}
}

func TestRequireTLS(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: all
  domains: ["all.com"]
  require_tls: ALL
  routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]
- name: ext
  domains: ["ext.com"]
  require_tls: EXTERNAL_ONLY
  routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]
`)
	cases := []struct {
		host, proto string
		internal    bool
		redirect    bool
	}{
		{"all.com", "http", false, true},
		{"all.com", "http", true, true},
		{"all.com", "https", false, false},
		{"ext.com", "http", false, true},
		{"ext.com", "http", true, false},
		{"ext.com", "https", false, false},
	}
	for _, c := range cases {
		h := req(c.host, "/p?q=1", "x-forwarded-proto", c.proto)
		if c.internal {
			h.Add("x-envoy-internal", "true")
		}
		m := tbl.Match(h, RequestInfo{})
		if m.Route == nil {
			t.Fatalf("%+v: no route", c)
		}
		isRedirect := m.Route.Kind == ActionRedirect
		if isRedirect != c.redirect {
			t.Errorf("%+v: redirect=%v", c, isRedirect)
			continue
		}
		if isRedirect {
			if m.Route.Redirect.Code != 301 {
				t.Errorf("%+v: code %d", c, m.Route.Redirect.Code)
			}
			if loc := m.Route.Redirect.Location(h); loc != "https://"+c.host+"/p?q=1" {
				t.Errorf("%+v: Location %q", c, loc)
			}
			if m.Route.Index() != -1 || m.Route.Proto() != nil {
				t.Errorf("the TLS redirect is not a configured route")
			}
		}
	}
}

func TestSchemeFallback(t *testing.T) {
	tbl := oneRoute(t, `{prefix: /}`)
	h := req("h", "/")
	h.Del("x-forwarded-proto")
	if got := routeName(tbl, h, RequestInfo{}); got != "hit" {
		t.Errorf("without x-forwarded-proto, :scheme is used: got %q", got)
	}
	h.Del(":scheme")
	if got := routeName(tbl, h, RequestInfo{}); got != "vh:vh" {
		t.Errorf("without any scheme Envoy routes nothing: got %q", got)
	}
}
