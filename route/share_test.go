package route

import (
	"fmt"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// TestSharedRoutes: equal routes of virtual hosts with equal settings are
// one *Route; a virtual host whose settings differ gets its own; Routes
// visits a shared route once; matching and header mutations stay per
// virtual host.
func TestSharedRoutes(t *testing.T) {
	const r = `[{name: a, match: {prefix: /a}, route: {cluster: ca}}, {name: b, match: {safe_regex: {regex: "/b[0-9]+"}}, route: {cluster: cb}}]`
	tbl := mustCompile(t, `
virtual_hosts:
- {name: one, domains: [one], routes: `+r+`}
- {name: two, domains: [two], routes: [{name: own, match: {prefix: /own}, route: {cluster: co}}, `+strings.Trim(r, "[]")+`]}
- {name: three, domains: [three], routes: `+r+`, request_headers_to_add: [{header: {key: x-vh, value: three}}]}
`)
	vhs := tbl.VirtualHosts()
	one, two, three := vhs[0].Routes(), vhs[1].Routes(), vhs[2].Routes()
	if one[0] != two[1] || one[1] != two[2] {
		t.Error("equal routes of equal virtual hosts are not shared")
	}
	if one[0] == three[0] || one[1] == three[1] {
		t.Error("a virtual host with other request headers shares routes")
	}
	if one[0].VirtualHost() != vhs[0] || one[0].Index() != 0 {
		t.Errorf("shared route: virtual host %q index %d, want the first holder's", one[0].VirtualHost().Name, one[0].Index())
	}
	var visited []string
	tbl.Routes(func(r *Route) bool {
		visited = append(visited, r.VirtualHost().Name+"/"+r.Name)
		return true
	})
	if got, want := strings.Join(visited, " "), "one/a one/b two/own three/a three/b"; got != want {
		t.Errorf("Routes visited %q, want %q", got, want)
	}
	for _, host := range []string{"one", "two", "three"} {
		m := tbl.Match(req(host, "/b12"), RequestInfo{})
		if m.Route == nil || m.Route.Name != "b" || m.VirtualHost.Name != host || m.Cluster != "cb" {
			t.Fatalf("%s /b12: %+v", host, m)
		}
		h := req(host, "/b12")
		m.FinalizeRequestHeaders(h, FormatterFunc(func(c *FormatCommand) string { return "" }), false)
		if v, _ := h.Get("x-vh"); (v == "three") != (host == "three") {
			t.Errorf("%s: x-vh %q", host, v)
		}
	}
}

// TestSharedRoutesByPointerAndContent: a route message used twice and two
// equal messages are both shared, and the table keeps its own copy.
func TestSharedRoutesByPointerAndContent(t *testing.T) {
	rc := parseRC(t, `
virtual_hosts:
- {name: one, domains: [one], routes: [{name: a, match: {prefix: /}, route: {cluster: c}}]}
- {name: two, domains: [two], routes: [{name: a, match: {prefix: /}, route: {cluster: c}}]}
`)
	rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: "three", Domains: []string{"three"},
		Routes: []*routev3.Route{rc.VirtualHosts[0].Routes[0]}})
	tbl, err := Compile(rc, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vhs := tbl.VirtualHosts()
	if vhs[0].Routes()[0] != vhs[1].Routes()[0] || vhs[0].Routes()[0] != vhs[2].Routes()[0] {
		t.Error("not shared")
	}
	p := vhs[0].Routes()[0].Proto()
	if p == rc.VirtualHosts[0].Routes[0] || p == rc.VirtualHosts[1].Routes[0] {
		t.Error("the table holds the caller's route message")
	}
	if !proto.Equal(tbl.Proto(), rc) {
		t.Error("the table's copy differs from the configuration")
	}
	rc.VirtualHosts[0].Routes[0].Name = "changed"
	if vhs[2].Routes()[0].Name != "a" || p.GetName() != "a" {
		t.Error("the table changed with the caller's message")
	}
}

// TestSharedRouteErrors: a route that does not compile or validate is
// reported at every place it appears.
func TestSharedRouteErrors(t *testing.T) {
	const bad = `[{match: {safe_regex: {regex: "("}}, route: {cluster: c}}, {match: {prefix: /}, route: {cluster: ""}}]`
	err := compileErr(t, `
virtual_hosts:
- {name: one, domains: [one], routes: `+bad+`}
- {name: two, domains: [two], routes: `+bad+`}
`)
	if err == nil {
		t.Fatal("no error")
	}
	for _, p := range []string{"virtual_hosts[0].routes[0].match.safe_regex.regex", "virtual_hosts[1].routes[0].match.safe_regex.regex",
		"virtual_hosts[0].routes[1].route.cluster", "virtual_hosts[1].routes[1].route.cluster"} {
		if !strings.Contains(err.Error(), p+":") {
			t.Errorf("no error at %s:\n%v", p, err)
		}
	}
}

// BenchmarkCompileRepeatedRoutes compiles 100 virtual hosts that each
// hold the same 1,000 routes (as Kong's hostless routes are translated)
// plus 20 of their own.
func BenchmarkCompileRepeatedRoutes(b *testing.B) {
	rc := &routev3.RouteConfiguration{Name: "big"}
	common := parseRC(b, "virtual_hosts: [{name: x, domains: [x], routes: ["+repeatRoutes("c", 1000)+"]}]").VirtualHosts[0].Routes
	for v := range 100 {
		own := parseRC(b, "virtual_hosts: [{name: x, domains: [x], routes: ["+repeatRoutes(fmt.Sprintf("v%d", v), 20)+"]}]").VirtualHosts[0].Routes
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: fmt.Sprintf("vh%d", v), Domains: []string{fmt.Sprintf("h%d", v)},
			// Copies, as after unmarshalling: no pointer is shared.
			Routes: append(own, cloneRoutes(common)...)})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(rc, CompileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func repeatRoutes(prefix string, n int) string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf(`{name: %s%d, match: {safe_regex: {regex: "/%s/v[0-9]+/%d.*"}, headers: [{name: ":method", string_match: {safe_regex: {regex: "GET|POST"}}}]}, route: {cluster: c%d, regex_rewrite: {pattern: {regex: "^/%s/%d(/?)(.*)"}, substitution: "/api/\\2"}}}`,
			prefix, i, prefix, i, i, prefix, i))
	}
	return strings.Join(s, ",")
}

func cloneRoutes(rs []*routev3.Route) []*routev3.Route {
	out := make([]*routev3.Route, len(rs))
	for i, r := range rs {
		out[i] = proto.Clone(r).(*routev3.Route)
	}
	return out
}
