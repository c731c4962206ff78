package kong

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/route"
)

// bigConfig is n services with 5 routes each: up to n/10 distinct hosts
// (one in five routes has none), prefix and regex paths, methods, headers.
func bigConfig(tb testing.TB, n int) *Config {
	tb.Helper()
	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n")
	for s := 0; s < n; s++ {
		fmt.Fprintf(&b, "- name: svc-%d\n  url: http://backend-%d.internal:8080/api\n  routes:\n", s, s%50)
		for r := 0; r < 5; r++ {
			fmt.Fprintf(&b, "  - name: r-%d-%d\n    paths: [/s%d/r%d, \"~/s%d/v\\\\d+/r%d\"]\n    methods: [GET, POST]\n", s, r, s, r, s, r)
			if r != 0 {
				fmt.Fprintf(&b, "    hosts: [h%d.example.com]\n", (s*5+r)%(n/10))
			}
			if r == 4 {
				b.WriteString("    headers: {x-canary: [\"1\"]}\n")
			}
		}
	}
	cfg, err := Parse([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// TestManyServicesCompile translates 100 services and 500 routes and
// compiles the result (the benchmarks below do 1,000 and 5,000).
func TestManyServicesCompile(t *testing.T) {
	res, err := Translate(bigConfig(t, 100), goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) != 100 {
		t.Fatalf("%d clusters", len(res.Clusters))
	}
	if _, err := route.Compile(res.Routes[0], route.CompileOptions{}); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkTranslate1000Services5000Routes(b *testing.B) {
	cfg := bigConfig(b, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Translate(cfg, goldenOptions()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslateAndCompile1000Services5000Routes includes the data
// plane's route table compilation.
func BenchmarkTranslateAndCompile1000Services5000Routes(b *testing.B) {
	cfg := bigConfig(b, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Translate(cfg, goldenOptions())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := route.Compile(res.Routes[0], route.CompileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse1000Services5000Routes(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("_format_version: \"3.0\"\nservices:\n")
	for s := 0; s < 1000; s++ {
		fmt.Fprintf(&sb, "- name: svc-%d\n  url: http://backend.internal/api\n  routes:\n", s)
		for r := 0; r < 5; r++ {
			fmt.Fprintf(&sb, "  - {name: r-%d-%d, paths: [/s%d/r%d], hosts: [h%d.example.com]}\n", s, r, s, r, r)
		}
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch1000Services5000Routes routes requests through the
// compiled table of the 1,000-service configuration: a route with a host,
// a hostless route reached through a host, and Kong's 404.
func BenchmarkMatch1000Services5000Routes(b *testing.B) {
	res, err := Translate(bigConfig(b, 1000), goldenOptions())
	if err != nil {
		b.Fatal(err)
	}
	tbl, err := route.Compile(res.Routes[0], route.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, host, path, want string }{
		{"host", "h37.example.com:8000", "/s507/r2/x", "r-507-2#0"},
		{"hostless", "h37.example.com", "/s507/v3/r0", "r-507-0#1"},
		{"404", "h37.example.com", "/nothing", "kong.no_route"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := header.New(":method", "GET", ":scheme", "http", ":authority", tc.host, ":path", tc.path)
			if got := tbl.Match(h, route.RequestInfo{}).Route; got == nil || got.Name != tc.want {
				b.Fatalf("matched %v, want %s", got, tc.want)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				tbl.Match(h, route.RequestInfo{})
			}
		})
	}
}
