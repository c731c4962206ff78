package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/internal/rawupstream"
)

// BenchmarkProxyH1 is one proxied request through the whole data plane,
// as bench/run.sh drives it: a keep-alive HTTP/1.1 client, the bench
// bootstrap's listener (connection manager, router, no filter), a pooled
// keep-alive HTTP/1.1 upstream. Client and upstream speak raw bytes, so
// the allocations reported are the proxy's.
func BenchmarkProxyH1(b *testing.B) {
	conn := dialProxy(b, startBenchProxy(b, rawupstream.Start(b, rawupstream.Small)))
	defer conn.Close()
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(conn)
	roundTrip := func() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		status, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) {
			b.Fatalf("status line %q", status)
		}
		length := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break
			}
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "content-length") {
				length, _ = strconv.Atoi(strings.TrimSpace(string(v)))
			}
		}
		if length < 0 {
			b.Fatal("response without content-length")
		}
		if _, err := br.Discard(length); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
}

// startBenchProxy runs the proxy with the bench bootstrap's HTTP/1.1
// listener in front of the upstream at up, and returns its address.
func startBenchProxy(tb testing.TB, up string) string {
	upHost, upPort, _ := net.SplitHostPort(up)
	port, admin := benchFreePort(tb), benchFreePort(tb)
	cfg := fmt.Sprintf(`
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
static_resources:
  listeners:
  - name: h1
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h1
          codec_type: HTTP1
          generate_request_id: false
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: upstream}}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: upstream
    connect_timeout: 2s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}
`, admin, port, upHost, upPort)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, "wasmesh", []string{"--config-yaml", cfg, "-l", "error"}, io.Discard, io.Discard)
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Error("proxy did not stop")
		}
	})
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// dialProxy connects to the proxy once it listens.
func dialProxy(tb testing.TB, addr string) net.Conn {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatalf("proxy not listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func benchFreePort(b testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
