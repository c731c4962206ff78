package kong

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bigDeclarative is n services with 5 routes each on one upstream; retries
// differs between versions, so every reload changes every cluster.
func bigDeclarative(n int, upstream string, retries int) []byte {
	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n")
	for s := range n {
		fmt.Fprintf(&b, "- name: svc-%d\n  url: %s/api\n  retries: %d\n  routes:\n", s, upstream, retries)
		for r := range 5 {
			fmt.Fprintf(&b, "  - name: r-%d-%d\n    paths: [/s%d/r%d, \"~/s%d/v\\\\d+/r%d\"]\n    methods: [GET, POST]\n", s, r, s, r, s, r)
			if r != 0 {
				fmt.Fprintf(&b, "    hosts: [h%d.example.com]\n", (s*5+r)%max(n/10, 1))
			}
		}
	}
	return []byte(b.String())
}

// TestReloadManyServices applies 50 services and 250 routes and routes a
// request to the last one (the benchmark does 1,000 and 5,000).
func TestReloadManyServices(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }))
	defer up.Close()
	s, _, err := LoadSettings(Sources{Env: []string{"KONG_PROXY_LISTEN=127.0.0.1:0", "KONG_ADMIN_LISTEN=off", "KONG_LOG_LEVEL=error"}, NumCPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Options{Settings: s, Declarative: bigDeclarative(50, up.URL, 1), DrainTime: time.Second, Warn: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Reload(context.Background(), bigDeclarative(50, up.URL, 2)); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+g.ProxyAddr(0).String()+"/s49/r0/x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "/api/x" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// benchN is the benchmark's service count (the 1,000 services and
// 5,000 routes); figures and the command to rerun are in docs/kong.md.
const benchN = 1000

// BenchmarkKong1000Services5000Routes applies a configuration of 1,000
// services and 5,000 routes whose every cluster changed: parse, translate
// to xDS, compile (clusters, listener, route table, filter plans) and
// apply, as POST /config does. Besides time and allocations it reports the
// live heap after a GC with the configuration applied and the process's
// peak RSS (Linux; includes starting the gateway with the first config).
func BenchmarkKong1000Services5000Routes(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	s, _, err := LoadSettings(Sources{Env: []string{"KONG_PROXY_LISTEN=127.0.0.1:0", "KONG_ADMIN_LISTEN=off", "KONG_LOG_LEVEL=error"}, NumCPU: 1})
	if err != nil {
		b.Fatal(err)
	}
	cfgs := [][]byte{bigDeclarative(benchN, up.URL, 1), bigDeclarative(benchN, up.URL, 2)}
	g, err := Start(context.Background(), Options{Settings: s, Declarative: cfgs[0], DrainTime: time.Second, Warn: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := g.Reload(context.Background(), cfgs[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-heap-MB")
	if kb := peakRSSKB(); kb > 0 {
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MB")
	}
}

// peakRSSKB is the process's peak resident set (VmHWM), 0 when unknown.
func peakRSSKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
