package route

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wasmesh/wasmesh/header"
)

// bigTable has one virtual host of n routes: prefix and exact path routes
// in turn, every tenth with a header matcher, then a catch-all.
func bigTable(tb testing.TB, n int) *Table {
	tb.Helper()
	vh := &routev3.VirtualHost{Name: "big", Domains: []string{"big.example", "*.big.example"}}
	for i := 0; i < n-1; i++ {
		m := &routev3.RouteMatch{}
		if i%2 == 0 {
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/service-%d/", i)}
		} else {
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: fmt.Sprintf("/exact/%d", i)}
		}
		if i%10 == 0 {
			m.Headers = []*routev3.HeaderMatcher{{Name: "x-tenant", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}
		}
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name:   fmt.Sprintf("r%d", i),
			Match:  m,
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprintf("c%d", i)}}},
		})
	}
	vh.Routes = append(vh.Routes, &routev3.Route{
		Name:   "fallback",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "fallback"}}},
	})
	rc := &routev3.RouteConfiguration{Name: "big", VirtualHosts: []*routev3.VirtualHost{vh}}
	for i := 0; i < 200; i++ {
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    fmt.Sprintf("other-%d", i),
			Domains: []string{fmt.Sprintf("other-%d.example", i), fmt.Sprintf("*.other-%d.example", i)},
			Routes:  vh.Routes[len(vh.Routes)-1:],
		})
	}
	t, err := Compile(rc, CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

var benchRequests = []struct {
	name, authority, path, want string
}{
	{"first", "big.example", "/service-0/x", "fallback"}, // header matcher fails: falls through
	{"prefix-mid", "big.example", "/service-502/users/42?page=1", "r502"},
	{"path-mid", "api.big.example", "/exact/501", "r501"},
	{"prefix-last", "big.example", "/service-998/x", "r998"},
	{"fallback", "big.example", "/nothing/here", "fallback"},
	{"other-vhost", "x.other-150.example", "/", "fallback"},
}

func TestBigTable(t *testing.T) {
	tbl := bigTable(t, 1000)
	for _, r := range benchRequests {
		m := tbl.Match(req(r.authority, r.path), RequestInfo{})
		if m.Route == nil {
			t.Errorf("%s: no route", r.name)
			continue
		}
		if r.want != "" && m.Route.Name != r.want {
			t.Errorf("%s: route %q, want %q", r.name, m.Route.Name, r.want)
		}
	}
}

// TestMatchDoesNotAllocate guards the hot path: virtual host lookup and
// prefix / path matching allocate nothing.
func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := bigTable(t, 1000)
	for _, r := range benchRequests {
		h := req(r.authority, r.path, "x-tenant", "t1")
		if n := testing.AllocsPerRun(100, func() { tbl.Match(h, RequestInfo{Random: 1}) }); n != 0 {
			t.Errorf("%s: %v allocations per Match", r.name, n)
		}
	}
}

func BenchmarkMatch1000Routes(b *testing.B) {
	tbl := bigTable(b, 1000)
	for _, r := range benchRequests {
		b.Run(r.name, func(b *testing.B) {
			h := req(r.authority, r.path)
			b.ReportAllocs()
			for b.Loop() {
				tbl.Match(h, RequestInfo{Random: 1})
			}
		})
	}
}

func BenchmarkFinalizeRequestHeaders(b *testing.B) {
	tbl := mustCompile(b, levelsYAML)
	in := req("h", "/w/x", "x-remove-me", "1")
	b.ReportAllocs()
	for b.Loop() {
		h := header.New()
		h.Reset(in.Fields())
		m := tbl.Match(h, RequestInfo{})
		m.FinalizeRequestHeaders(h, nil, true)
	}
}

func BenchmarkCompile1000Routes(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		bigTable(b, 1000)
	}
}
