package route

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var indexWords = []string{"/", "/a", "/ab", "/a/", "/a/b", "/api", "/api/", "/api/v1", "/API", "/b", "/b/c", "/x", ""}

// randomTable builds a virtual host whose routes mix every path matcher,
// with keys drawn from a small vocabulary so that they nest and collide.
func randomTable(tb testing.TB, rng *rand.Rand, n int) *Table {
	tb.Helper()
	vh := &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}}
	for i := 0; i < n; i++ {
		w := indexWords[rng.IntN(len(indexWords))] + indexWords[rng.IntN(len(indexWords))]
		m := &routev3.RouteMatch{}
		switch rng.IntN(6) {
		case 0, 1:
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: w}
		case 2:
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: w}
		case 3:
			re := []string{w + ".*", "(?i)" + w + ".*", w + "|/b.*", "[a-z/]+", w + "x?"}[rng.IntN(5)]
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}
		case 4:
			w = strings.TrimRight(w, "/")
			if w == "" {
				w = "/a"
			}
			m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: w}
		case 5:
			m.PathSpecifier = &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}
		}
		if rng.IntN(4) == 0 {
			m.CaseSensitive = wrapperspb.Bool(false)
		}
		if rng.IntN(5) == 0 {
			m.Headers = []*routev3.HeaderMatcher{{Name: "x-h", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}
		}
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name:   fmt.Sprint(i),
			Match:  m,
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
		})
	}
	t, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh}}, CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// linear is the reference: Envoy's plain first-match scan.
func linear(vh *VirtualHost, path string, hasH bool) *Route {
	h := req("h", path)
	if hasH {
		h.Add("x-h", "1")
	}
	just, _ := splitQuery(path)
	for _, r := range vh.routes {
		if r.matches(h, path, just, &RequestInfo{}) {
			return r
		}
	}
	return nil
}

func TestIndexMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		tbl := randomTable(t, rng, minIndexedRoutes+rng.IntN(60))
		vh := tbl.VirtualHosts()[0]
		if vh.index == nil {
			t.Fatal("no index")
		}
		for q := 0; q < 50; q++ {
			path := indexWords[rng.IntN(len(indexWords))] + indexWords[rng.IntN(len(indexWords))] + []string{"", "?q=/a", "/zz", "#f"}[rng.IntN(4)]
			if path == "" {
				path = "/"
			}
			hasH := rng.IntN(2) == 0
			h := req("h", path)
			if hasH {
				h.Add("x-h", "1")
			}
			got := tbl.Match(h, RequestInfo{}).Route
			if want := linear(vh, path, hasH); got != want {
				t.Fatalf("round %d path %q x-h=%v: index picked %v, linear %v", round, path, hasH, name(got), name(want))
			}
		}
	}
}

func name(r *Route) string {
	if r == nil {
		return "<none>"
	}
	return r.Name + " " + r.Proto().GetMatch().String()
}

func FuzzIndex(f *testing.F) {
	f.Add(uint64(1), "/api/v1")
	f.Add(uint64(7), "/a/b?x")
	f.Fuzz(func(t *testing.T, seed uint64, path string) {
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		tbl := randomTable(t, rng, minIndexedRoutes+int(seed%40))
		vh := tbl.VirtualHosts()[0]
		got := tbl.Match(req("h", path), RequestInfo{}).Route
		if want := linear(vh, path, false); got != want {
			t.Fatalf("path %q: index %v, linear %v", path, name(got), name(want))
		}
	})
}
