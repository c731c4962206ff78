package cluster_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/cluster"
)

// startH2CUpstream serves HTTP/1.1 and h2c with prior knowledge.
func startH2CUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	u := &upstream{name: name}
	srv := httptest.NewUnstartedServer(u)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	u.srv, u.addr = srv, srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	return u
}

func TestHTTP2Cleartext(t *testing.T) {
	up := startH2CUpstream(t, "h2c")
	for _, tc := range []struct{ name, extra string }{
		{"http2_protocol_options", "http2_protocol_options: {}"},
		{"explicit_http_config", `typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: {http2_protocol_options: {initial_stream_window_size: 131072, connection_keepalive: {interval: 30s, timeout: 5s}}}
    common_http_protocol_options: {idle_timeout: 60s}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			cl := e.add(staticCluster(t, "h2", tc.extra, up.addr))
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
					resp, _, err := cl.RoundTrip(req, cluster.LoadBalancerContext{})
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.Proto != "HTTP/2.0" {
						t.Errorf("proto %s", resp.Proto)
					}
				})
			}
			wg.Wait()
			// Multiplexed: one connection carries everything.
			if got := e.stats.value("cluster.h2.upstream_cx_total"); got != 1 {
				t.Fatalf("upstream_cx_total %d, want 1", got)
			}
			if got := e.stats.value("cluster.h2.upstream_cx_http2_total"); got != 1 {
				t.Fatalf("upstream_cx_http2_total %d", got)
			}
			if got := e.stats.value("cluster.h2.upstream_rq_total"); got != 20 {
				t.Fatalf("upstream_rq_total %d", got)
			}
		})
	}
}

func TestUseDownstreamProtocol(t *testing.T) {
	up := startH2CUpstream(t, "h2c")
	for _, extra := range []string{
		"protocol_selection: USE_DOWNSTREAM_PROTOCOL",
		`typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    use_downstream_protocol_config: {http2_protocol_options: {}}`,
	} {
		e := newEnv(t, nil)
		cl := e.add(staticCluster(t, "down", extra, up.addr))
		for _, h2 := range []bool{false, true, false} {
			req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
			resp, _, err := cl.RoundTrip(req, cluster.LoadBalancerContext{DownstreamHTTP2: h2})
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := "HTTP/1.1"
			if h2 {
				want = "HTTP/2.0"
			}
			if resp.Proto != want || up.proto.Load() != want {
				t.Fatalf("downstream h2=%v: upstream spoke %s, want %s", h2, resp.Proto, want)
			}
		}
		if e.stats.value("cluster.down.upstream_cx_http1_total") != 1 || e.stats.value("cluster.down.upstream_cx_http2_total") != 1 {
			t.Fatal(fmt.Sprint("connection protocol counters: ", e.stats.value("cluster.down.upstream_cx_http1_total"), e.stats.value("cluster.down.upstream_cx_http2_total")))
		}
	}
}

func TestUpgradeOverHTTP1(t *testing.T) {
	// A WebSocket-style upgrade: the 101 response body is the two-way
	// stream, even on an HTTP/2 cluster.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 5)
		n, _ := io.ReadFull(brw, buf)
		conn.Write(buf[:n])
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, nil)
	cl := e.add(staticCluster(t, "ws", "http2_protocol_options: {}", srv.Listener.Addr().String()))
	req, _ := http.NewRequest(http.MethodGet, "http://x/ws", nil)
	req.Header.Set("Upgrade", "echo")
	req.Header.Set("Connection", "Upgrade")
	resp, _, err := cl.RoundTrip(req, cluster.LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriter)
	if !ok {
		t.Fatal("101 body is not writable")
	}
	rw.Write([]byte("hello"))
	got := make([]byte, 5)
	io.ReadFull(rw, got)
	resp.Body.Close()
	if string(got) != "hello" {
		t.Fatalf("echo %q", got)
	}
	if e.stats.value("cluster.ws.upstream_rq_active") != 0 {
		t.Fatal("upgrade request still active after close")
	}
}
