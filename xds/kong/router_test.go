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

// TestKongPriority covers the cases where Kong's traditional_compat
// priority (kong/router/compat.lua get_priority, see router.go) orders
// routes differently from ranking by methods/hosts/headers/snis points
// alone: paths count as a match-weight point, only routes whose hosts are
// all plain get the plain-host bit (a route without hosts does not), and
// the plain-host bit and the header count rank above the regex bit,
// regex_priority and path length. Each case is a kong.yml fragment, the
// requests and the route Kong picks for each. The cases marked "same
// before" also held with the points-only ranking; the others did not.
func TestKongPriority(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes string
		reqs   map[string]req // want → request (want may repeat with a suffix "/n")
	}{
		// get_priority adds one to match_weight for non-empty paths, as
		// for methods: both routes weigh 1; neither has hosts, so no
		// plain-host bit; the path's length (2) is the tie-breaker.
		{"paths-only before methods-only", `
- {name: methods, methods: [GET]}
- {name: paths, paths: [/p]}`,
			map[string]req{
				"paths":   {host: "a", path: "/p/x"},
				"methods": {host: "a", path: "/q"},
			}},
		// paths+methods weigh 2, hosts alone 1: match weight is the most
		// significant field, above the plain-host bit. Same before.
		{"paths+methods before hosts-only", `
- {name: hosts, hosts: [example.com]}
- {name: paths-methods, paths: [/api], methods: [GET]}`,
			map[string]req{
				"paths-methods": {host: "example.com", path: "/api/v1"},
				"hosts/1":       {host: "example.com", path: "/other"},
				"hosts/2":       {method: "POST", host: "example.com", path: "/api"},
			}},
		// A regex path weighs 1 like methods, and REGEX_URL_BIT is set.
		{"regex-only before methods-only", `
- {name: methods, methods: [GET]}
- {name: regex, paths: ["~/r/\\d+"]}`,
			map[string]req{
				"regex":   {host: "a", path: "/r/1"},
				"methods": {host: "a", path: "/r/x"},
			}},
		// paths+one header weighs 2, two headers alone weigh 1: match
		// weight (bits 61-63) ranks above the header count (bits 52-59).
		{"paths point outranks header count", `
- {name: two-headers, headers: {x-a: ["1"], x-b: ["1"]}}
- {name: path-header, paths: [/h], headers: {x-a: ["1"]}}`,
			map[string]req{
				"path-header": {host: "a", path: "/h", headers: []string{"x-a", "1", "x-b", "1"}},
				"two-headers": {host: "a", path: "/other", headers: []string{"x-a", "1", "x-b", "1"}},
			}},
		// Equal weight (1 each): the header count decides before the
		// paths do. Same before.
		{"header count before path at equal weight", `
- {name: path, paths: [/a/long/path]}
- {name: header, headers: {x-a: ["1"]}}`,
			map[string]req{
				"header": {host: "a", path: "/a/long/path", headers: []string{"x-a", "1"}},
				"path":   {host: "a", path: "/a/long/path"},
			}},
		// Both weigh 2 (hosts+paths, methods+paths): PLAIN_HOST_ONLY_BIT
		// (bit 60) is set for the host route only, "type(hosts) ==
		// table" and no "*", and ranks above the path length.
		{"plain host before a longer hostless path", `
- {name: hostless-long, methods: [GET], paths: [/api/v1]}
- {name: host-short, hosts: [example.com], paths: [/api]}`,
			map[string]req{
				"host-short":    {host: "example.com", path: "/api/v1/users"},
				"hostless-long": {host: "other.com", path: "/api/v1/users"},
			}},
		// Both weigh 2; the plain-host bit (60) ranks above the regex
		// bit (51).
		{"plain host prefix before hostless regex", `
- {name: regex, methods: [GET], paths: ["~/api/\\d+"]}
- {name: prefix, hosts: [example.com], paths: [/api]}`,
			map[string]req{
				"prefix": {host: "example.com", path: "/api/1"},
				"regex":  {host: "other.com", path: "/api/1"},
			}},
		// Equal weight, no plain host on either side, no headers: a regex
		// path ranks before a prefix path of any length. Same before.
		{"regex before prefix at equal counts", `
- {name: prefix, methods: [GET], paths: [/api/v1/users/long-prefix]}
- {name: regex, methods: [GET], paths: ["~/api/v\\d+/users/l"]}`,
			map[string]req{
				"regex": {host: "a", path: "/api/v1/users/long-prefix"},
			}},
		// Both weigh 2, neither gets the plain-host bit (a wildcard host,
		// no hosts): the longer path ranks first.
		{"longer path first between wildcard and hostless", `
- {name: hostless-short, methods: [GET], paths: [/]}
- {name: wildcard-long, hosts: ["*.example.com"], paths: [/long]}`,
			map[string]req{
				"wildcard-long":    {host: "www.example.com", path: "/long/x"},
				"hostless-short/1": {host: "www.example.com", path: "/short"},
				"hostless-short/2": {host: "other.com", path: "/long/x"},
			}},
		// Each prefix length of a route is its own ATC route
		// (split_routes_and_services_by_path), so one route's long path
		// outranks another route's middle one and its short one does not.
		// Same before.
		{"paths of one route ranked by their own length", `
- {name: both, methods: [GET], paths: [/a, /a/b/c]}
- {name: mid, methods: [GET], paths: [/a/b]}`,
			map[string]req{
				"both/1": {host: "a", path: "/a/b/c/d"},
				"mid":    {host: "a", path: "/a/b/x"},
				"both/2": {host: "a", path: "/a/x"},
			}},
		// Same priority (weight 1, no plain-host bit, no path): Kong's
		// docs leave the choice undefined; we keep definition order.
		{"equal priority keeps definition order", `
- {name: wildcard, hosts: ["*.example.com"]}
- {name: methods, methods: [GET]}`,
			map[string]req{
				"wildcard": {host: "www.example.com", path: "/"},
				"methods":  {host: "other.com", path: "/"},
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

// TestPriorityBits checks priority against the bit layout of Kong's
// get_priority.
func TestPriorityBits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     Route
		path  string
		regex bool
		want  uint64
	}{
		{"methods only", Route{Methods: []string{"GET"}}, "", false, 1 << 61},
		{"prefix path", Route{Paths: []string{"/abc"}}, "/abc", false, 1<<61 | 4},
		{"plain hosts and a path", Route{Hosts: []string{"a.com", "b.com"}, Paths: []string{"/"}}, "/", false, 2<<61 | 1<<60 | 1},
		{"wildcard host", Route{Hosts: []string{"a.com", "*.b.com"}}, "", false, 1 << 61},
		{"headers", Route{Headers: map[string][]string{"x-a": {"1"}, "x-b": {"2", "3"}}}, "", false, 1<<61 | 2<<52},
		{"regex, priority 5", Route{Paths: []string{"~/x"}, RegexPriority: 5}, "/x", true, 1<<61 | 1<<51 | (1<<31+5)<<19},
		{"regex, priority -1", Route{Paths: []string{"~/x"}, RegexPriority: -1}, "/x", true, 1<<61 | 1<<51 | (1<<31-1)<<19},
		{"all five", Route{Methods: []string{"GET"}, Hosts: []string{"a.com"}, Headers: map[string][]string{"x": {"1"}}, SNIs: []string{"a.com"}, Paths: []string{"/ab"}}, "/ab", false, 5<<61 | 1<<60 | 1<<52 | 3},
	} {
		if got := priority(&tc.r, tc.path, tc.regex); got != tc.want {
			t.Errorf("%s: priority %#x, want %#x", tc.name, got, tc.want)
		}
	}
}
