package kong

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/server"
)

// startTranslated runs the translation in the real data plane: the
// listeners, clusters and secrets as a bootstrap's static resources.
func startTranslated(t *testing.T, res *Resources) *server.Server {
	t.Helper()
	o, err := server.ParseFlags([]string{"-l", "error", "--concurrency", "1", "--drain-time-s", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := res.Bootstrap(&corev3.Node{Id: "kong", Cluster: "kong"})
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	logging, err := server.NewLogging(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := server.New(ctx, o, b, logging)
	if err != nil {
		logging.Close()
		t.Fatalf("server.New: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close(ctx)
		logging.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		s.Close(context.Background())
		logging.Close()
	})
	return s
}

// filtersDir copies the walk-through filter into a fresh filters/ directory.
func filtersDir(t *testing.T) string {
	t.Helper()
	wasm, err := os.ReadFile("../../examples/filters/my-filter/my-filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "filters")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "my-filter.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestWalkThrough is Kong's WebAssembly walk-through: a route with a
// filter chain whose filter sets X-Greeting from its configuration.
func TestWalkThrough(t *testing.T) {
	var gotPath, gotHost string
	var gotHeaders http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotHost, gotHeaders = r.URL.Path, r.Host, r.Header
		io.WriteString(w, "hello from the upstream\n")
	}))
	defer up.Close()
	cfg, err := Parse([]byte(fmt.Sprintf(`_format_version: "3.0"
services:
- name: my-wasm-service
  url: %s
  routes:
  - name: my-wasm-route
    paths: ["/"]
    filter_chains:
    - filters:
      - name: my-filter
        config: '{"my_greeting": "Hello from wasmesh using WebAssembly!"}'
`, up.URL)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(cfg, Options{FiltersPath: filtersDir(t), ProxyListen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, res)
	s := startTranslated(t, res)
	proxy := "http://" + s.ListenerAddr("kong_proxy_0").String()

	resp, body := get(t, proxy+"/anything?x=1")
	if resp.StatusCode != 200 || body != "hello from the upstream\n" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if g := resp.Header.Get("X-Greeting"); g != "Hello from wasmesh using WebAssembly!" {
		t.Fatalf("X-Greeting = %q; headers %v", g, resp.Header)
	}
	if v := resp.Header.Get("Via"); v != "1.1 kong/3.9.0" {
		t.Errorf("Via = %q", v)
	}
	for _, h := range []string{"X-Kong-Proxy-Latency", "X-Kong-Upstream-Latency"} {
		if v := resp.Header.Get(h); v == "" || strings.Trim(v, "0123456789") != "" {
			t.Errorf("%s = %q", h, v)
		}
	}
	if gotPath != "/anything" || gotHost != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("upstream saw path %q host %q", gotPath, gotHost)
	}
	for k, want := range map[string]string{"X-Real-Ip": "127.0.0.1", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http"} {
		if got := gotHeaders.Get(k); got != want {
			t.Errorf("upstream saw %s: %q, want %q", k, got, want)
		}
	}
}

// TestNoRouteAndChains checks Kong's 404, and that a route runs its
// service's filters and its own, while a disabled chain does not run.
func TestNoRouteAndChains(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	defer up.Close()
	cfg, err := Parse([]byte(fmt.Sprintf(`_format_version: "3.0"
services:
- name: svc
  url: %s/base
  filter_chains:
  - filters:
    - {name: my-filter, config: '{"my_greeting": "from the service"}'}
  routes:
  - name: plain
    paths: [/plain]
  - name: own
    paths: [/own]
    filter_chains:
    - filters:
      - {name: my-filter, config: '{"my_greeting": "from the route"}'}
- name: quiet
  url: %s
  routes:
  - name: disabled-chain
    paths: [/off]
    filter_chains:
    - enabled: false
      filters: [{name: my-filter, config: '{"my_greeting": "never"}'}]
  - name: disabled-filter
    paths: [/off-filter]
    filter_chains:
    - filters:
      - {name: my-filter, enabled: false, config: '{"my_greeting": "never"}'}
      - {name: my-filter, config: '{"my_greeting": "second instance"}'}
`, up.URL, up.URL)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(cfg, Options{FiltersPath: filtersDir(t), ProxyListen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, res)
	s := startTranslated(t, res)
	proxy := "http://" + s.ListenerAddr("kong_proxy_0").String()

	resp, body := get(t, proxy+"/nowhere")
	if resp.StatusCode != 404 || body != NoRouteBody || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("no route: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	for _, tc := range []struct{ path, upstream, greetings string }{
		{"/plain/x", "/base/x", "from the service"},
		// Both run: the service's filter comes first in the chain, so on
		// the response (filters in reverse order) it replaces the
		// header the route's filter set.
		{"/own", "/base", "from the service"},
		{"/off", "/", ""},
		{"/off-filter", "/", "second instance"},
	} {
		resp, body := get(t, proxy+tc.path)
		if resp.StatusCode != 200 || body != tc.upstream {
			t.Errorf("%s: %d %q, want upstream path %q", tc.path, resp.StatusCode, body, tc.upstream)
		}
		if g := strings.Join(resp.Header.Values("X-Greeting"), ","); g != tc.greetings {
			t.Errorf("%s: X-Greeting %q, want %q", tc.path, g, tc.greetings)
		}
	}
}
