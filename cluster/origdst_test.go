package cluster_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/cluster"
)

func TestOriginalDst(t *testing.T) {
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	now := time.Now()
	clock := func() time.Time { return now }
	e := newEnv(t, func(o *cluster.Options) { o.Now = clock })
	cl := e.add(`
name: passthrough
type: ORIGINAL_DST
lb_policy: CLUSTER_PROVIDED
connect_timeout: 1s
cleanup_interval: 3600s
original_dst_lb_config: {use_http_header: true}
`)
	if len(cl.Hosts()) != 0 {
		t.Fatal("hosts before traffic")
	}
	// The connection's original destination.
	name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{OriginalDst: netip.MustParseAddrPort(a.addr)})
	if err != nil || name != "a" {
		t.Fatalf("original dst: %q %v", name, err)
	}
	// The header wins when present.
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.Header.Set("x-envoy-original-dst-host", b.addr)
	resp, h, err := cl.RoundTrip(req, cluster.LoadBalancerContext{OriginalDst: netip.MustParseAddrPort(a.addr)})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("x-upstream") != "b" || h.Address() != b.addr {
		t.Fatalf("header destination: went to %s", resp.Header.Get("x-upstream"))
	}
	if len(cl.Hosts()) != 2 || e.stats.value("cluster.passthrough.membership_total") != 2 {
		t.Fatalf("hosts %v", addrsOf(cl))
	}
	// No destination at all, or a bad header: no host.
	if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); !errors.Is(err, cluster.ErrNoHealthyUpstream) {
		t.Fatalf("no destination: %v", err)
	}
	req.Header.Set("x-envoy-original-dst-host", "not-an-address")
	if _, _, err := cl.RoundTrip(req, cluster.LoadBalancerContext{}); !errors.Is(err, cluster.ErrNoHealthyUpstream) {
		t.Fatalf("bad header: %v", err)
	}
	// The same destination reuses its host.
	if _, h2, _ := roundTripHost(t, cl, cluster.LoadBalancerContext{OriginalDst: netip.MustParseAddrPort(b.addr)}); h2 != h {
		t.Fatal("host not reused")
	}
}

func roundTripHost(t *testing.T, cl *cluster.Cluster, lbc cluster.LoadBalancerContext) (string, *cluster.Host, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	resp, h, err := cl.RoundTrip(req, lbc)
	if err != nil {
		return "", h, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("x-upstream"), h, nil
}

func TestOriginalDstCleanupAndPortOverride(t *testing.T) {
	a := startUpstream(t, "a")
	e := newEnv(t, nil)
	_, port := hostPort(t, a.addr)
	cl := e.add(`
name: od
type: ORIGINAL_DST
lb_policy: CLUSTER_PROVIDED
connect_timeout: 1s
cleanup_interval: 0.05s
original_dst_lb_config: {upstream_port_override: ` + port + `}
`)
	// Port 1 is overridden with the upstream's port.
	name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{OriginalDst: netip.MustParseAddrPort("127.0.0.1:1")})
	if err != nil || name != "a" {
		t.Fatalf("port override: %q %v", name, err)
	}
	// Unused hosts go after the cleanup interval, with their connections.
	eventually(t, 5*time.Second, "cleanup", func() bool { return len(cl.Hosts()) == 0 })
	eventually(t, 5*time.Second, "connections closed", func() bool {
		return e.stats.value("cluster.od.upstream_cx_active") == 0
	})
}

func TestDial(t *testing.T) {
	// An echo server stands in for a TCP upstream.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	e := newEnv(t, nil)
	cl := e.add(staticCluster(t, "tcp", "circuit_breakers: {thresholds: [{max_connections: 1}]}", ln.Addr().String()))
	conn, h, err := cl.Dial(context.Background(), cluster.LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Address() != ln.Addr().String() || h.Stats().CxActive != 1 {
		t.Fatalf("host %s cx_active %d", h.Address(), h.Stats().CxActive)
	}
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	io.ReadFull(conn, buf)
	if string(buf) != "ping" {
		t.Fatalf("echo %q", buf)
	}
	// max_connections 1: a second connection overflows.
	if _, _, err := cl.Dial(context.Background(), cluster.LoadBalancerContext{}); !errors.Is(err, cluster.ErrOverflow) {
		t.Fatalf("second dial: %v", err)
	}
	if e.stats.value("cluster.tcp.upstream_cx_overflow") != 1 {
		t.Fatal("upstream_cx_overflow")
	}
	conn.Close()
	if e.stats.value("cluster.tcp.upstream_cx_active") != 0 || e.stats.value("cluster.tcp.upstream_cx_total") != 1 {
		t.Fatal("connection stats")
	}
	c2, _, err := cl.Dial(context.Background(), cluster.LoadBalancerContext{})
	if err != nil {
		t.Fatalf("dial after close: %v", err)
	}
	c2.Close()
	// Connect failures.
	dead := e.add(staticCluster(t, "dead", "", deadAddr(t)))
	if _, _, err := dead.Dial(context.Background(), cluster.LoadBalancerContext{}); !errors.Is(err, cluster.ErrConnectFailure) {
		t.Fatalf("dead dial: %v", err)
	}
}

func TestConnectTimeoutCoversTLSHandshake(t *testing.T) {
	// A server that accepts but never answers the TLS hello: the handshake
	// is part of connecting, bounded by connect_timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	e := newEnv(t, nil)
	cl := e.add(staticCluster(t, "hs", `connect_timeout: 0.1s
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext}`, ln.Addr().String()))
	start := time.Now()
	_, _, err = get(t, cl, "/", cluster.LoadBalancerContext{})
	if !errors.Is(err, cluster.ErrConnectFailure) {
		t.Fatalf("err = %v, want a connect failure", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("connect_timeout 100ms took %v", el)
	}
	if e.stats.value("cluster.hs.upstream_cx_connect_timeout") != 1 || e.stats.value("cluster.hs.upstream_cx_active") != 0 {
		t.Fatal("connect timeout stats")
	}
}
