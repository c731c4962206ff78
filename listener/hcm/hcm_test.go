package hcm

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/filterchain/wasmfilter"
	"github.com/wasmesh/wasmesh/stats"
	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/xds/bootstrap"
)

// staticClusters is a minimal real Clusters: one address per cluster over
// a shared keep-alive transport (the cluster manager replaces it in the
// server; here it keeps the connection manager's tests self-contained).
type staticClusters struct {
	addrs map[string]string
	tr    *http.Transport
}

func (c *staticClusters) Has(name string) bool { _, ok := c.addrs[name]; return ok }

func (c *staticClusters) RoundTrip(name string, req *http.Request, lb router.LBContext) (*http.Response, string, error) {
	addr := c.addrs[name]
	if req.Header == nil {
		req.Header = cluster.HeaderOfFields(lb.Fields)
	}
	req.URL.Scheme, req.URL.Host = "http", addr
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return nil, addr, &router.UpstreamError{Kind: router.FailureConnect, Err: err}
	}
	return resp, addr, nil
}

type fixture struct {
	url      string
	client   *http.Client
	h2c      *http.Client
	store    *stats.Store
	logPath  string
	upstream *httptest.Server
	// hangEnded gets a value when an upstream request to /hang was
	// cancelled (the proxy gave up on it).
	hangEnded chan struct{}
}

func newFixture(t testing.TB, hcmYAML string) *fixture {
	t.Helper()
	ctx := context.Background()
	hangEnded := make(chan struct{}, 16)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
			hangEnded <- struct{}{}
			return
		}
		if r.URL.Path == "/slow" {
			// Answers after ms milliseconds.
			ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		if r.URL.Path == "/with-server" {
			w.Header().Set("Server", "upstream-srv")
		}
		w.Header().Set("x-upstream-path", r.URL.RequestURI())
		w.Header().Set("x-upstream-host", r.Host)
		if r.URL.Path == "/fail" {
			w.WriteHeader(503)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "upstream %s %s %s body=%s", r.Method, r.URL.RequestURI(), r.Header.Get("x-added"), body)
	}))
	t.Cleanup(upstream.Close)
	logPath := filepath.Join(t.TempDir(), "access.log")
	hcmYAML = strings.ReplaceAll(hcmYAML, "ACCESS_LOG", logPath)

	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	clusters := &staticClusters{addrs: map[string]string{"backend": upstream.Listener.Addr().String()}, tr: &http.Transport{}}
	t.Cleanup(clusters.tr.CloseIdleConnections)
	reg := filterchain.NewRegistry()
	router.Register(reg)
	wasmfilter.Register(reg)
	store := stats.New(stats.Options{})
	files := NewLogFiles()
	t.Cleanup(files.Close)
	cfg := &hcmv3.HttpConnectionManager{}
	if err := bootstrap.Parse([]byte(hcmYAML), cfg, false); err != nil {
		t.Fatal(err)
	}
	m, err := Compile(ctx, cfg, Deps{
		Logger: zaptest.NewLogger(t), Registry: reg, Stats: store, AccessLogs: files,
		Env:           &filterchain.Env{Wasm: rt, Concurrency: 2, Values: map[string]any{router.EnvKeyClusters: clusters}},
		ClusterExists: clusters.Has,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveBoth(t, m, ln)
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}}}
	return &fixture{url: "http://" + ln.Addr().String(), client: &http.Client{CheckRedirect: noRedirect}, h2c: h2c, store: store, logPath: logPath, upstream: upstream, hangEnded: hangEnded}
}

// serveBoth serves ln as the listener does: HTTP/1.1 and HTTP/2 (prior
// knowledge) with the manager's codecs.
func serveBoth(t testing.TB, m *Manager, ln net.Listener) {
	t.Helper()
	h1 := m.NewH1Server(zaptest.NewLogger(t))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h1.ServeConn(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h1.Close()
	})
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

const baseHCM = `
stat_prefix: ingress_http
access_log:
- name: envoy.access_loggers.file
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: ACCESS_LOG
route_config:
  name: local
  virtual_hosts:
  - name: all
    domains: ["*"]
    response_headers_to_add: [{header: {key: x-vhost, value: "yes"}}]
    routes:
    - match: {prefix: "/direct"}
      direct_response: {status: 418, body: {inline_string: "teapot"}}
    - match: {prefix: "/redirect"}
      redirect: {host_redirect: example.com, response_code: TEMPORARY_REDIRECT}
    - match: {prefix: "/nocluster"}
      route: {cluster_header: x-cluster}
    - match: {prefix: "/api/"}
      route: {cluster: backend, prefix_rewrite: "/v2/"}
      request_headers_to_add: [{header: {key: x-added, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}]
    - match: {prefix: "/"}
      route: {cluster: backend}
http_filters:
- name: greeting
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
    config:
      name: greeting
      configuration: {"@type": type.googleapis.com/google.protobuf.StringValue, value: '{"my_greeting":"hi from wasm"}'}
      vm_config:
        vm_id: greeting
        code: {local: {filename: ../../examples/filters/my-filter/my-filter.wasm}}
- name: envoy.filters.http.router
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`

func TestConnectionManagerEndToEnd(t *testing.T) {
	f := newFixture(t, baseHCM)
	tests := []struct {
		name, path  string
		h2          bool
		reqHeaders  map[string]string
		wantStatus  int
		wantBody    string
		wantHeaders map[string]string
	}{
		{name: "proxied through the wasm filter over HTTP/1.1", path: "/hello", wantStatus: 200,
			wantBody: "upstream GET /hello", wantHeaders: map[string]string{"x-greeting": "hi from wasm", "x-vhost": "yes", "server": "envoy"}},
		{name: "proxied over h2c", path: "/hello", h2: true, wantStatus: 200,
			wantBody: "upstream GET /hello", wantHeaders: map[string]string{"x-greeting": "hi from wasm"}},
		{name: "prefix rewrite and header formatter", path: "/api/x?q=1", wantStatus: 200,
			wantBody: "upstream GET /v2/x?q=1 127.0.0.1", wantHeaders: map[string]string{"x-upstream-path": "/v2/x?q=1"}},
		{name: "direct response runs response filters", path: "/direct", wantStatus: 418, wantBody: "teapot",
			wantHeaders: map[string]string{"x-greeting": "hi from wasm", "x-vhost": "yes"}},
		{name: "redirect", path: "/redirect/a", wantStatus: 307, wantHeaders: map[string]string{"location": "http://example.com/redirect/a"}},
		{name: "missing cluster header is 503 NC", path: "/nocluster", wantStatus: 503},
		{name: "upstream status passes through", path: "/fail", wantStatus: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.client
			if tc.h2 {
				c = f.h2c
			}
			req, _ := http.NewRequest("GET", f.url+tc.path, nil)
			for k, v := range tc.reqHeaders {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && !strings.HasPrefix(string(body), tc.wantBody) {
				t.Fatalf("body %q, want prefix %q", body, tc.wantBody)
			}
			for k, v := range tc.wantHeaders {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tc.h2 && resp.ProtoMajor != 2 {
				t.Errorf("proto %s, want HTTP/2", resp.Proto)
			}
		})
	}
	if got := f.store.Counter("http.ingress_http.downstream_rq_total").Value(); got != uint64(len(tests)) {
		t.Errorf("downstream_rq_total = %d, want %d", got, len(tests))
	}
	if got := f.store.Counter("http.ingress_http.downstream_rq_2xx").Value(); got != 3 {
		t.Errorf("downstream_rq_2xx = %d, want 3", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(f.logPath)
		lines := strings.Count(string(b), "\n")
		if lines >= len(tests) {
			if !strings.Contains(string(b), `"GET /hello HTTP/1.1" 200 - 0 `) || !strings.Contains(string(b), " 503 NC ") {
				t.Fatalf("access log lacks the expected lines:\n%s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want %d:\n%s", lines, len(tests), b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoRouteIs404NR(t *testing.T) {
	f := newFixture(t, strings.Replace(baseHCM, `domains: ["*"]`, `domains: ["only.example"]`, 1))
	resp, err := f.client.Get(f.url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	b, _ := os.ReadFile(f.logPath)
	if !strings.Contains(string(b), " 404 NR ") {
		t.Fatalf("access log: %s", b)
	}
}

func TestPostBodyStreamsThrough(t *testing.T) {
	f := newFixture(t, baseHCM)
	resp, err := f.client.Post(f.url+"/echo", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "body=payload") {
		t.Fatalf("body %q", body)
	}
}
