package route

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func regexAuthority(re string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}},
	}}}
}

func TestHostKeys(t *testing.T) {
	for _, tc := range []struct {
		m    *routev3.HeaderMatcher
		want []string // nil: not indexed
	}{
		{regexAuthority(`(?i:a\.com|B\.com)(?::[0-9]+)?`), []string{"a.com", "b.com"}},
		{regexAuthority(`(?i:a\.com)(?::[0-9]+)?|(?i:b\.com:8000)`), []string{"a.com", "b.com"}},
		{regexAuthority(`api\.(?:x|y)\.com`), []string{"api.x.com", "api.y.com"}},
		{regexAuthority(`h[0-2]\.com:80`), []string{"h0.com", "h1.com", "h2.com"}},
		{regexAuthority(`(?i:[^:]+\.example\.com)(?::[0-9]+)?`), nil},
		{regexAuthority(`(?i:a\.com)(?::[0-9]+)?|(?i:[^:]+\.b\.com)`), nil},
		{regexAuthority(`a\.com(?::[0-9]+)?x`), nil},
		{regexAuthority(`a.com`), nil},
		{regexAuthority(`^a\.com`), nil},
		{&routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Host.example:8080"}, IgnoreCase: true}}}, []string{"host.example"}},
		{&routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "a"}}}}, nil},
		{&routev3.HeaderMatcher{Name: ":authority", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}}, nil},
		{&routev3.HeaderMatcher{Name: "host", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}}, nil},
	} {
		var c errs
		hm := c.headerMatchers("", "headers", []*routev3.HeaderMatcher{tc.m})
		if c.err() != nil {
			t.Fatal(c.err())
		}
		got := hostKeys(hm)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: keys %q, want %q", tc.m, got, tc.want)
		}
	}
}

var hostWords = []string{"a.com", "A.com", "b.com", "b.com:80", "a.com:8000", "x.a.com", "c", "K.com", "ſ.com", "", "a.com,b.com"}

// randomHostTable is one virtual host whose routes mix :authority
// matchers (indexable or not) with path matchers.
func randomHostTable(tb testing.TB, rng *rand.Rand, n int) *Table {
	tb.Helper()
	vh := &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}}
	res := []string{
		`(?i:a\.com|b\.com)(?::[0-9]+)?`, `(?i:a\.com)(?::[0-9]+)?|(?i:b\.com:80)`, `a\.com`, `(?i:[^:]+\.a\.com)(?::[0-9]+)?`,
		`(?i:k\.com)(?::[0-9]+)?`, `(?i:s\.com)`, `c|(?i:a\.com)`, `.*`, `(?:a\.com:[é]|b\.com)`,
	}
	for i := 0; i < n; i++ {
		w := indexWords[rng.IntN(len(indexWords))]
		m := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: w}}
		switch k := rng.IntN(len(res) + 3); {
		case k < len(res):
			m.Headers = append(m.Headers, regexAuthority(res[k]))
		case k == len(res):
			m.Headers = append(m.Headers, &routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: hostWords[rng.IntN(len(hostWords))]}, IgnoreCase: rng.IntN(2) == 0}}})
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

func checkHostIndex(t *testing.T, tbl *Table, host, path string) {
	t.Helper()
	vh := tbl.VirtualHosts()[0]
	h := req(host, path)
	if host == "a.com,b.com" {
		h = req("a.com", path)
		h.Add(":authority", "b.com")
	}
	just, _ := splitQuery(path)
	var want *Route
	for _, r := range vh.routes {
		if r.matches(h, path, just, &RequestInfo{}) {
			want = r
			break
		}
	}
	if got := tbl.Match(h, RequestInfo{}).Route; got != want {
		t.Fatalf("host %q path %q: index picked %v, linear %v", host, path, name(got), name(want))
	}
}

func TestHostIndexMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 200; round++ {
		tbl := randomHostTable(t, rng, minIndexedRoutes+rng.IntN(60))
		if tbl.VirtualHosts()[0].index.hosts == nil {
			t.Fatal("no host index")
		}
		for q := 0; q < 50; q++ {
			path := indexWords[rng.IntN(len(indexWords))] + indexWords[rng.IntN(len(indexWords))]
			if path == "" {
				path = "/"
			}
			checkHostIndex(t, tbl, hostWords[rng.IntN(len(hostWords))], path)
		}
	}
}

func FuzzHostIndex(f *testing.F) {
	f.Add(uint64(1), "a.com:80", "/api")
	f.Add(uint64(2), "B.COM", "/a/b")
	f.Fuzz(func(t *testing.T, seed uint64, host, path string) {
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		checkHostIndex(t, randomHostTable(t, rng, minIndexedRoutes+int(seed%40)), host, path)
	})
}

var hostSetPatterns = []string{
	`(?i:a\.com|b\.com)(?::[0-9]+)?`, `(?i:h[0-2]\.com)`, `(?i:[a-c]x)(?::[0-9]+)?`, `(?i:a\.com)(?::[0-9]+)?|(?i:b\.com:80)`,
	`a\.com(?::[0-9]+)?`, `[aB]\.com`, `(?i:k)`, `(?i:s\.com)(:[0-9]+)?`, `(?i:a(?:\.b)?\.com)(?::[0-9]+)?`,
}

var hostSetValues = []string{"a.com", "A.COM", "a.com:80", "a.com:", "a.com:8x", "a.com:80:1", "b.com", "B.com:0", "h1.com", "H2.COM",
	"h3.com", "ax", "CX:9", "dx", "K", "k", "\u212a", "s.com", "\u017f.com", "a.b.com", "A.B.Com:1", "", ":80", "a.com,b.com"}

func TestHostSetMatchesRegex(t *testing.T) {
	recognized := 0
	for _, p := range hostSetPatterns {
		hm := regexAuthority(p)
		var c errs
		m := c.headerMatchers("", "headers", []*routev3.HeaderMatcher{hm})[0]
		if m.hosts != nil {
			recognized++
		}
		re := regexp.MustCompile("^(?:" + p + ")$")
		for _, v := range hostSetValues {
			if got, want := m.Matches(req(v, "/")), re.MatchString(v); got != want {
				t.Errorf("%s on %q: %v, regex %v (host set %v)", p, v, got, want, m.hosts != nil)
			}
		}
	}
	if recognized < 6 {
		t.Errorf("only %d patterns recognized", recognized)
	}
}

func FuzzHostSet(f *testing.F) {
	f.Add(uint8(0), "A.com:80")
	f.Add(uint8(6), "\u212a")
	f.Fuzz(func(t *testing.T, i uint8, v string) {
		p := hostSetPatterns[int(i)%len(hostSetPatterns)]
		var c errs
		m := c.headerMatchers("", "headers", []*routev3.HeaderMatcher{regexAuthority(p)})[0]
		if got, want := m.Matches(req(v, "/")), regexp.MustCompile("^(?:"+p+")$").MatchString(v); got != want {
			t.Errorf("%s on %q: %v, regex %v", p, v, got, want)
		}
	})
}
