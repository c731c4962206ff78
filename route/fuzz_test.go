package route

import (
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/header"
)

// fuzzTableYAML exercises every matcher and action kind.
const fuzzTableYAML = `
name: fuzz
ignore_path_parameters_in_path_matching: true
request_headers_to_add: [{header: {key: x-rc, value: "%REQ(x-a)%"}}]
virtual_hosts:
- name: tls
  domains: ["secure.example", "*.secure.example"]
  require_tls: EXTERNAL_ONLY
  routes: [{match: {prefix: /}, route: {cluster: c}}]
- name: main
  domains: ["*"]
  virtual_clusters: [{name: vc, headers: [{name: ":method", exact_match: POST}]}]
  routes:
  - match: {prefix: /api/, case_sensitive: false, headers: [{name: x-a, range_match: {start: 0, end: 100}}]}
    route: {cluster: api, prefix_rewrite: /v2/, hash_policy: [{header: {header_name: x-a}}, {query_parameter: {name: q}}]}
  - match: {path: /exact, query_parameters: [{name: q, string_match: {prefix: a, ignore_case: true}}]}
    redirect: {https_redirect: true, port_redirect: 8443, strip_query: true}
  - match: {safe_regex: {regex: "/re/([^/]+)/(.*)"}}
    route: {cluster: re, regex_rewrite: {pattern: {regex: "^/re/([^/]+)/(.*)$"}, substitution: "/\\2/\\1"}, host_rewrite_path_regex: {pattern: {regex: "^/re/([^/]*).*$"}, substitution: "\\1"}}
  - match: {path_separated_prefix: /sep, grpc: {}}
    route: {cluster_header: x-cluster}
  - match: {prefix: /redir}
    redirect: {regex_rewrite: {pattern: {regex: "r"}, substitution: "R"}, host_redirect: other}
  - match: {prefix: /w, runtime_fraction: {default_value: {numerator: 50}}}
    route:
      weighted_clusters:
        header_name: x-pick
        clusters:
        - {name: a, weight: 3, request_headers_to_add: [{header: {key: x-w, value: a}}], host_rewrite_literal: a.host}
        - {cluster_header: x-cluster, weight: 5}
  - match: {connect_matcher: {}}
    route: {cluster: tunnel}
  - match: {prefix: /, headers: [{name: x-b, string_match: {safe_regex: {regex: "[a-z]+"}}, invert_match: true}], tls_context: {presented: true}}
    direct_response: {status: 418, body: {inline_string: teapot}}
  - match: {prefix: /}
    route: {cluster: fallback, host_rewrite_header: x-host, append_x_forwarded_host: true}
`

func FuzzMatch(f *testing.F) {
	tbl := mustCompile(f, fuzzTableYAML)
	f.Add("secure.example", "/", "GET", "http", "x-a", "5", uint64(1), false)
	f.Add("x.secure.example:80", "/api/x?q=1", "POST", "https", "x-envoy-internal", "true", uint64(7), true)
	f.Add("host", "/API/x;p=1?q=1", "GET", "http", "x-a", "-1", uint64(0), false)
	f.Add("host", "/exact?q=Abc", "GET", "http", "", "", uint64(0), false)
	f.Add("host", "/re/a/b/c?x", "GET", "http", "", "", uint64(0), false)
	f.Add("host", "/sep/x", "POST", "http", "content-type", "application/grpc", uint64(0), false)
	f.Add("host", "/redir/r", "GET", "http", "", "", uint64(0), false)
	f.Add("host", "/w", "GET", "http", "x-pick", "4", uint64(2), false)
	f.Add("[::1]:443", "", "CONNECT", "https", "", "", uint64(0), false)
	f.Add("host", "/tea", "GET", "http", "x-b", "1", uint64(0), true)
	f.Add("HOST", "", "GET", "", "cookie", "a=b", uint64(1<<63), false)
	f.Fuzz(func(t *testing.T, authority, path, method, proto, k, v string, random uint64, cert bool) {
		h := header.New(":authority", authority, ":method", method, "x-forwarded-proto", proto)
		if path != "" {
			h.Add(":path", path)
		}
		if k != "" {
			h.Add(header.Lower(k), v)
			h.Add(header.Lower(k), v+v)
		}
		m := tbl.Match(h, RequestInfo{Random: random, PeerCertPresented: cert})
		if m.Route != nil && m.VirtualHost == nil {
			t.Fatal("route without virtual host")
		}
		if m.Route == nil {
			return
		}
		if m.Route.Index() >= 0 && !slices.Contains(m.VirtualHost.Routes(), m.Route) {
			t.Fatal("route of another virtual host")
		}
		switch m.Route.Kind {
		case ActionRedirect:
			loc := m.Route.Redirect.Location(h)
			if !strings.Contains(loc, "://") {
				t.Fatalf("Location %q", loc)
			}
		case ActionRoute:
			if m.Route.Action.Cluster != "" && m.Cluster != m.Route.Action.Cluster {
				t.Fatalf("cluster %q", m.Cluster)
			}
		}
		m.VirtualHost.VirtualCluster(h)
		_ = m.FilterOverride("f")
		f := FormatterFunc(func(c *FormatCommand) string { return c.Arg })
		m.FinalizeRequestHeaders(h, f, true)
		m.FinalizeResponseHeaders(header.New(":status", "200"), f)
		if a := m.Route.Action; a != nil && a.Hash != nil {
			a.Hash.Hash(HashInput{Headers: h})
		}
	})
}

func FuzzRewritePath(f *testing.F) {
	tbl := mustCompile(f, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /p/}
    route: {cluster: c, prefix_rewrite: /}
  - match: {prefix: /r}
    route: {cluster: c, regex_rewrite: {pattern: {regex: "([a-z]*)/"}, substitution: "\\1\\1-"}}
  - match: {safe_regex: {regex: ".*"}}
    route: {cluster: c, prefix_rewrite: /all}
`)
	for _, s := range []string{"/p/x?y", "/r/a/b/?q=a/", "/", "/p/", "/r", "/x#frag?", "/p/%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		m := tbl.Match(req("h", p), RequestInfo{})
		if m.Route == nil {
			return
		}
		got, changed := m.Route.RewritePath(p)
		if !changed {
			t.Fatalf("%q: not rewritten", p)
		}
		_, rest := splitQuery(p)
		if !strings.HasSuffix(got, rest) {
			t.Fatalf("%q -> %q lost the query %q", p, got, rest)
		}
		switch m.Route.Index() {
		case 0:
			if got != "/"+p[len("/p/"):] {
				t.Fatalf("%q -> %q", p, got)
			}
		case 2:
			if got != "/all"+rest {
				t.Fatalf("%q -> %q", p, got)
			}
		}
	})
}

func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"plain", "100%%", "%A%", "%REQ(x):3%", "%START_TIME(%s)%", "%", "%%%", "%A(", "%A:%", "%A(b):12345678901234567890%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		fs, err := parseFormat(v)
		if err != nil {
			return
		}
		// A literal-only result means every "%" was escaped.
		if fs.static() && strings.Contains(strings.ReplaceAll(v, "%%", ""), "%") {
			t.Fatalf("%q parsed as a literal", v)
		}
		for _, p := range fs.parts {
			if p.cmd != nil && (p.cmd.Name == "" || p.cmd.MaxLen < 0) {
				t.Fatalf("%q: bad command %+v", v, p.cmd)
			}
		}
		fs.expand(FormatterFunc(func(c *FormatCommand) string { return c.Arg }))
	})
}

// FuzzCompile feeds arbitrary RouteConfiguration messages to Compile: it
// may reject them, never panic, and a table it returns must match safely.
func FuzzCompile(f *testing.F) {
	for _, y := range []string{fuzzTableYAML, domainsYAML, levelsYAML} {
		b, err := proto.Marshal(parseRC(f, y))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rc := &routev3.RouteConfiguration{}
		if proto.Unmarshal(b, rc) != nil {
			return
		}
		tbl, err := Compile(rc, CompileOptions{})
		if err != nil {
			return
		}
		for _, p := range []string{"/", "/api/x?q=1", "/exact"} {
			m := tbl.Match(req("host", p), RequestInfo{Random: 3})
			m.FinalizeRequestHeaders(req("host", p), nil, true)
			if m.Route != nil && m.Route.Redirect != nil {
				m.Route.Redirect.Location(req("host", p))
			}
		}
	})
}
