package kong

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/route"
)

// table translates routes (YAML list items under one service whose host
// is upstream.internal) and compiles the route configuration in the data
// plane's route package.
func table(t *testing.T, routes string) *route.Table {
	t.Helper()
	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://upstream.internal/s\n  routes:\n")
	for _, line := range strings.Split(strings.TrimSpace(routes), "\n") {
		b.WriteString("  " + line + "\n")
	}
	res := mustTranslate(t, b.String(), goldenOptions())
	tbl, err := route.Compile(res.Routes[0], route.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

type req struct {
	method, scheme, host, path string
	headers                    []string
}

func (r req) String() string {
	return fmt.Sprintf("%s %s://%s%s %v", r.method, r.scheme, r.host, r.path, r.headers)
}

// matched returns the Kong route name of the first matching Envoy route
// ("404" for Kong's no-route answer, "426" for the HTTPS upgrade).
func matched(tbl *route.Table, r req) (string, *route.Match, *header.Map) {
	if r.method == "" {
		r.method = "GET"
	}
	if r.scheme == "" {
		r.scheme = "http"
	}
	h := header.New(append([]string{":method", r.method, ":scheme", r.scheme, ":authority", r.host, ":path", r.path}, r.headers...)...)
	m := tbl.Match(h, route.RequestInfo{})
	if m.Route == nil {
		return "<envoy 404>", &m, h
	}
	name := m.Route.Name
	switch {
	case name == "kong.no_route":
		return "404", &m, h
	case strings.HasSuffix(name, ".https_redirect"):
		if m.Route.DirectResponse != nil {
			return "426", &m, h
		}
		return "redirect", &m, h
	}
	name, _, _ = strings.Cut(name, "#")
	return name, &m, h
}

// TestKongRouterExamples runs the examples of Kong's "Traditional router"
// documentation (routing criteria and matching priorities).
func TestKongRouterExamples(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes string
		reqs   map[string]req // want → request (want may repeat with a suffix "/n")
	}{
		{"all configured fields must match", `
- {name: r, hosts: [example.com, foo-service.com], paths: [/foo, /bar], methods: [GET]}`,
			map[string]req{
				"r/1":   {host: "example.com", path: "/foo"},
				"r/2":   {host: "foo-service.com", path: "/bar"},
				"r/3":   {host: "example.com", path: "/foo/hello/world"},
				"404/1": {host: "example.com", path: "/"},
				"404/2": {method: "POST", host: "example.com", path: "/foo"},
				"404/3": {host: "foo.com", path: "/foo"},
			}},
		{"hosts", `
- {name: r, hosts: [my-api.com, example.com]}`,
			map[string]req{
				"r/1": {host: "my-api.com", path: "/"},
				"r/2": {host: "example.com", path: "/x"},
				"r/3": {host: "example.com:8000", path: "/x"},
				"r/4": {host: "example.com:1234", path: "/x"},
				"404": {host: "other.com", path: "/"},
			}},
		{"wildcard hosts", `
- {name: left, hosts: ["*.example.com"]}
- {name: right, hosts: ["example.*"]}`,
			map[string]req{
				"left/1":  {host: "a.example.com", path: "/"},
				"left/2":  {host: "x.y.example.com", path: "/"},
				"left/3":  {host: "a.example.com:8443", path: "/"},
				"right/1": {host: "example.com", path: "/"},
				"right/2": {host: "example.org", path: "/"},
				"404":     {host: "example2.com", path: "/"},
			}},
		{"plain host before wildcard host", `
- {name: wild, hosts: ["*.example.com"]}
- {name: plain, hosts: [api.example.com]}`,
			map[string]req{
				"plain": {host: "api.example.com", path: "/"},
				"wild":  {host: "www.example.com", path: "/"},
			}},
		{"a route with any wildcard host ranks after plain hosts", `
- {name: mixed, hosts: [api.example.com, "*.example.org"]}
- {name: plain, hosts: [api.example.com]}`,
			map[string]req{
				"plain": {host: "api.example.com", path: "/"},
				"mixed": {host: "www.example.org", path: "/"},
			}},
		{"overlapping wildcard hosts", `
- {name: prefix, hosts: ["example.*"]}
- {name: suffix, hosts: ["*.com"], methods: [GET]}`,
			map[string]req{
				"suffix":  {method: "GET", host: "example.com", path: "/"},
				"prefix":  {method: "POST", host: "example.com", path: "/"},
				"404":     {method: "POST", host: "other.com", path: "/"},
				"suffix/": {method: "GET", host: "other.com:81", path: "/"},
			}},
		{"hosts with a port", `
- {name: port, hosts: ["example.com:8000"]}
- {name: wild-port, hosts: ["*.example.com:8443"]}
- {name: any-port, hosts: [other.com]}`,
			map[string]req{
				"port":       {host: "example.com:8000", path: "/"},
				"404/1":      {host: "example.com:9000", path: "/"},
				"404/2":      {host: "example.com", path: "/"},
				"wild-port":  {host: "a.example.com:8443", path: "/"},
				"404/3":      {host: "a.example.com:8000", path: "/"},
				"any-port/1": {host: "other.com:9000", path: "/"},
				"any-port/2": {host: "OTHER.com", path: "/"},
			}},
		{"hostless routes keep their rank among host routes", `
- {name: host-root, hosts: [example.com], paths: [/]}
- {name: any-long, paths: [/a/b], methods: [GET], headers: {x: ["1"]}}
- {name: host-long, hosts: [example.com], paths: [/a/b/c]}`,
			map[string]req{
				"any-long":  {host: "example.com", path: "/a/b/c", headers: []string{"x", "1"}},
				"host-long": {host: "example.com", path: "/a/b/c"},
				"host-root": {host: "example.com", path: "/a/b"},
				"404":       {host: "other.com", path: "/a/b"},
			}},
		{"headers", `
- {name: version, headers: {version: [v1, v2]}}
- {name: regex, headers: {x-tier: ["~*^gold-\\d+$"]}}`,
			map[string]req{
				"version/1": {host: "a", path: "/", headers: []string{"version", "v1"}},
				"version/2": {host: "a", path: "/", headers: []string{"version", "V2"}},
				"regex":     {host: "a", path: "/", headers: []string{"x-tier", "gold-42"}},
				"404/1":     {host: "a", path: "/", headers: []string{"version", "v3"}},
				"404/2":     {host: "a", path: "/"},
			}},
		{"methods", `
- {name: r, methods: [GET, HEAD]}`,
			map[string]req{
				"r/1": {method: "GET", host: "a", path: "/"},
				"r/2": {method: "HEAD", host: "a", path: "/"},
				"404": {method: "POST", host: "a", path: "/"},
			}},
		{"prefix paths", `
- {name: r, paths: [/service, /hello/world]}`,
			map[string]req{
				"r/1": {host: "a", path: "/service"},
				"r/2": {host: "a", path: "/service/resource"},
				"r/3": {host: "a", path: "/hello/world/resource"},
				"r/4": {host: "a", path: "/servicefoo"},
				"404": {host: "a", path: "/hello"},
			}},
		{"regex paths", `
- {name: r, paths: ["~/users/\\d+/profile", /following]}`,
			map[string]req{
				"r/1": {host: "a", path: "/users/123/profile"},
				"r/2": {host: "a", path: "/users/123/profile/photos"},
				"r/3": {host: "a", path: "/following"},
				"404": {host: "a", path: "/users/abc/profile"},
			}},
		{"evaluation order of paths", `
- {name: status, paths: ["~/status/\\d+"], regex_priority: 0}
- {name: version-status, paths: ["~/version/\\d+/status/\\d+"], regex_priority: 6}
- {name: version, paths: [/version]}
- {name: version-any, paths: [/version/any/]}`,
			map[string]req{
				"version-status": {host: "a", path: "/version/1/status/2"},
				"status":         {host: "a", path: "/status/42"},
				"version-any":    {host: "a", path: "/version/any/thing"},
				"version":        {host: "a", path: "/version/1"},
			}},
		{"regex priority decides between regexes", `
- {name: low, paths: ["~/api/.*"], regex_priority: 1}
- {name: high, paths: ["~/api/v\\d+"], regex_priority: 10}`,
			map[string]req{
				"high": {host: "a", path: "/api/v2"},
				"low":  {host: "a", path: "/api/users"},
			}},
		{"regex paths before prefix paths", `
- {name: prefix, paths: [/foo/bar]}
- {name: regex, paths: ["~/foo/\\d+"]}`,
			map[string]req{
				"regex":  {host: "a", path: "/foo/123"},
				"prefix": {host: "a", path: "/foo/bar/baz"},
			}},
		{"longest prefix first", `
- {name: short, paths: [/]}
- {name: long, paths: [/v1/users]}
- {name: mid, paths: [/v1]}`,
			map[string]req{
				"long":  {host: "a", path: "/v1/users/7"},
				"mid":   {host: "a", path: "/v1/orders"},
				"short": {host: "a", path: "/other"},
			}},
		{"priority points: more criteria first", `
- {name: host, hosts: [example.com]}
- {name: host-method, hosts: [example.com], methods: [POST]}`,
			map[string]req{
				"host-method": {method: "POST", host: "example.com", path: "/"},
				"host":        {method: "GET", host: "example.com", path: "/"},
			}},
		{"priority points beat path length", `
- {name: long-path, paths: [/a/very/long/path]}
- {name: header, paths: [/], headers: {x-debug: ["1"]}}`,
			map[string]req{
				"header":    {host: "a", path: "/a/very/long/path", headers: []string{"x-debug", "1"}},
				"long-path": {host: "a", path: "/a/very/long/path"},
			}},
		{"more headers first", `
- {name: one, headers: {version: [v1]}}
- {name: two, headers: {version: [v1], location: [us-east]}}`,
			map[string]req{
				"two": {host: "a", path: "/", headers: []string{"version", "v1", "location", "us-east"}},
				"one": {host: "a", path: "/", headers: []string{"version", "v1"}},
			}},
		{"routes without hosts reach every host", `
- {name: any, paths: [/any]}
- {name: hosted, hosts: [example.com], paths: [/hosted]}`,
			map[string]req{
				"any/1":  {host: "example.com", path: "/any"},
				"any/2":  {host: "unknown.com", path: "/any"},
				"hosted": {host: "example.com", path: "/hosted"},
				"404":    {host: "unknown.com", path: "/hosted"},
			}},
		{"protocols and https_redirect_status_code", `
- {name: secure, protocols: [https], paths: [/secure]}
- {name: moved, protocols: [https], paths: [/moved], https_redirect_status_code: 301}
- {name: plain-only, protocols: [http], paths: [/plain]}`,
			map[string]req{
				"426":        {host: "a", path: "/secure"},
				"secure":     {scheme: "https", host: "a", path: "/secure"},
				"redirect":   {host: "a", path: "/moved"},
				"plain-only": {host: "a", path: "/plain"},
				"404":        {scheme: "https", host: "a", path: "/plain"},
			}},
		{"snis on https requests", `
- {name: sni, protocols: [https], snis: [api.example.com]}`,
			map[string]req{
				"sni": {scheme: "https", host: "api.example.com", path: "/"},
				"404": {scheme: "https", host: "www.example.com", path: "/"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := table(t, tc.routes)
			for want, r := range tc.reqs {
				want, _, _ = strings.Cut(want, "/")
				if got, _, _ := matched(tbl, r); got != want {
					t.Errorf("%s: matched %s, want %s", r, got, want)
				}
			}
		})
	}
}

// TestPathHandling is Kong's path_handling table (service.path "/s").
func TestPathHandling(t *testing.T) {
	tbl := table(t, `
- {name: fv0, paths: [/fv0], path_handling: v0, strip_path: false}
- {name: fv1, paths: [/fv1], path_handling: v1, strip_path: false}
- {name: tv0, paths: [/tv0], path_handling: v0, strip_path: true}
- {name: tv1, paths: [/tv1], path_handling: v1, strip_path: true}
- {name: fv0s, paths: [/fv0/], path_handling: v0, strip_path: false}
- {name: fv1s, paths: [/fv1/], path_handling: v1, strip_path: false}
- {name: tv0s, paths: [/tv0/], path_handling: v0, strip_path: true}
- {name: tv1s, paths: [/tv1/], path_handling: v1, strip_path: true}
- {name: rx, paths: ["~/version/\\d+/service"], strip_path: true}
- {name: root, paths: [/], strip_path: false}`)
	for _, tc := range []struct{ path, want string }{
		{"/fv0req", "/s/fv0req"},
		{"/fv0", "/s/fv0"},
		{"/fv1req", "/sfv1req"},
		{"/fv1", "/sfv1"},
		{"/tv0req", "/s/req"},
		{"/tv0", "/s"},
		{"/tv1req", "/sreq"},
		{"/tv1", "/s"},
		{"/fv0/req", "/s/fv0/req"},
		{"/fv0/", "/s/fv0/"},
		{"/fv1/req", "/sfv1/req"},
		{"/fv1/", "/sfv1/"},
		{"/tv0/req", "/s/req"},
		{"/tv0/", "/s/"},
		{"/tv1/req", "/sreq"},
		{"/tv1/", "/s"},
		{"/version/1/service/path/to/resource", "/s/path/to/resource"},
		{"/", "/s"},
		{"/x?q=1", "/s/x?q=1"},
	} {
		name, m, h := matched(tbl, req{host: "a", path: tc.path})
		if m.Route == nil || name == "404" {
			t.Errorf("%s: no route", tc.path)
			continue
		}
		m.FinalizeRequestHeaders(h, nil, false)
		if got, _ := h.Get(":path"); got != tc.want {
			t.Errorf("%s (route %s): upstream path %q, want %q", tc.path, name, got, tc.want)
		}
	}
}

// TestPreserveHost checks the Host the upstream sees.
func TestPreserveHost(t *testing.T) {
	tbl := table(t, `
- {name: keep, paths: [/keep], preserve_host: true}
- {name: rewrite, paths: [/rewrite]}`)
	for _, tc := range []struct{ path, want string }{
		{"/keep", "client.example.com"},
		{"/rewrite", "upstream.internal"},
	} {
		_, m, h := matched(tbl, req{host: "client.example.com", path: tc.path})
		m.FinalizeRequestHeaders(h, nil, false)
		if got, _ := h.Get(":authority"); got != tc.want {
			t.Errorf("%s: Host %q, want %q", tc.path, got, tc.want)
		}
	}
}
