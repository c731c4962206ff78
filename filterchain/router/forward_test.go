package router_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/route"
)

// slowUpstream answers "/slow..." never (until the connection closes) and
// every other body-less request at once; it counts connections.
func slowUpstream(t *testing.T) (addr string, conns *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int32{}
	var open []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			open = append(open, c)
			go func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					slow := strings.Contains(line, " /slow")
					for {
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if strings.TrimRight(l, "\r\n") == "" {
							break
						}
					}
					if slow {
						io.Copy(io.Discard, br)
						return
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range open {
			c.Close()
		}
	})
	return ln.Addr().String(), conns
}

type fixture struct {
	cfg   *router.Config
	table *route.Table
}

func newFixture(t *testing.T, addr, routeJSON string) *fixture {
	m := cluster.NewManager(context.Background(), cluster.Options{})
	t.Cleanup(func() { m.Close() })
	host, port, _ := net.SplitHostPort(addr)
	cc := &clusterv3.Cluster{}
	unmarshalYAML(t, fmt.Sprintf(`
name: up
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: up
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: %q, port_value: %s}}}
`, host, port), cc)
	if err := m.Add(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	rc := &routev3.RouteConfiguration{}
	unmarshalYAML(t, `
name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - `+routeJSON, rc)
	table, err := route.Compile(rc, route.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cfg: compileRouter(t, benchClusters{m}, false), table: table}
}

func (f *fixture) forward(ctx context.Context, path string) (*http.Response, *filterchain.LocalReply, *filterchain.StreamInfo) {
	h := header.New(":method", "GET", ":path", path, ":authority", "example.com", ":scheme", "http")
	info := &filterchain.StreamInfo{Protocol: "HTTP/1.1"}
	s := filterchain.NewStream(ctx, nil, info)
	s.RequestHeaders = h
	m := f.table.Match(h, route.RequestInfo{})
	resp, lr := f.cfg.Forward(&router.Request{Stream: s, Match: &m})
	return resp, lr, info
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestForwardTimeouts: the route timeout and the per-try timeout end a
// request an HTTP/1.1 upstream does not answer (504, UT); the deadline of a
// request that ended in time does not stay on its pooled connection; the
// client going away ends the upstream request.
func TestForwardTimeouts(t *testing.T) {
	addr, conns := slowUpstream(t)
	for _, tc := range []struct {
		name, route, details string
		attempts             int
	}{
		{"route", `{match: {prefix: "/"}, route: {cluster: up, timeout: 0.1s}}`, "upstream_response_timeout", 1},
		{"per-try", `{match: {prefix: "/"}, route: {cluster: up, timeout: 5s, retry_policy: {retry_on: "5xx", num_retries: 1, per_try_timeout: 0.1s, retry_back_off: {base_interval: 0.001s}}}}`, "upstream_per_try_timeout", 2},
		{"per-try-after-route", `{match: {prefix: "/"}, route: {cluster: up, timeout: 0.1s, retry_policy: {retry_on: "5xx", num_retries: 1, per_try_timeout: 5s}}}`, "upstream_response_timeout", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, addr, tc.route)
			start := time.Now()
			resp, lr, info := f.forward(context.Background(), "/slow")
			if resp != nil {
				resp.Body.Close()
				t.Fatalf("got a response %d", resp.StatusCode)
			}
			if lr.Status != http.StatusGatewayTimeout || lr.Details != tc.details || string(lr.Body) != "upstream request timeout" {
				t.Fatalf("reply %d %q %q", lr.Status, lr.Details, lr.Body)
			}
			if info.ResponseFlags&filterchain.FlagUpstreamRequestTimeout == 0 || info.Attempts != tc.attempts {
				t.Fatalf("flags %v attempts %d", info.ResponseFlags, info.Attempts)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
	t.Run("deadline-cleared-on-reuse", func(t *testing.T) {
		f := newFixture(t, addr, `{match: {prefix: "/"}, route: {cluster: up, timeout: 0.05s}}`)
		before := conns.Load()
		for i := range 3 {
			resp, lr, _ := f.forward(context.Background(), "/fast")
			if lr != nil {
				t.Fatalf("request %d: local reply %d %s", i, lr.Status, lr.Details)
			}
			if got := readAll(t, resp); got != "ok" {
				t.Fatalf("body %q", got)
			}
			// Outlive the request's deadline while the connection idles.
			time.Sleep(80 * time.Millisecond)
		}
		if n := conns.Load() - before; n != 1 {
			t.Fatalf("%d connections for 3 sequential requests, want 1", n)
		}
	})
	t.Run("client-cancel", func(t *testing.T) {
		f := newFixture(t, addr, `{match: {prefix: "/"}, route: {cluster: up}}`)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(50 * time.Millisecond)
			cancel()
		}()
		start := time.Now()
		resp, lr, info := f.forward(ctx, "/slow")
		if resp != nil {
			resp.Body.Close()
			t.Fatal("got a response")
		}
		if lr.Status == http.StatusGatewayTimeout || info.ResponseFlags&filterchain.FlagUpstreamRequestTimeout != 0 {
			t.Fatalf("cancellation reported as a timeout: %d %s", lr.Status, lr.Details)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("cancellation took %v", d)
		}
	})
}
