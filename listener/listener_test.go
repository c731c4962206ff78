package listener

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHTTPConnectionManagerChain(t *testing.T) {
	for _, tc := range []struct{ name, addr, network string }{
		{"ipv4", "127.0.0.1", "tcp4"},
		{"ipv6", "::1", "tcp6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			l := e.start(fmt.Sprintf(`
name: http
address: {socket_address: {address: %q, port_value: 0}}
filter_chains:
- filters:%s
`, tc.addr, hcmFilter("hello")))
			url := "http://" + l.Addr().String() + "/"
			if body, proto := get(t, &http.Client{}, url); body != "hello" || proto != "HTTP/1.1" {
				t.Fatalf("HTTP/1.1: %q %s", body, proto)
			}
			if body, proto := get(t, h2cClient(), url); body != "hello" || proto != "HTTP/2.0" {
				t.Fatalf("h2c: %q %s", body, proto)
			}
			prefix := StatPrefix(l.Config())
			if got := e.counter(prefix + "downstream_cx_total"); got < 2 {
				t.Fatalf("%sdownstream_cx_total = %d", prefix, got)
			}
			if got := e.counter("http.ingress.downstream_rq_total"); got != 2 {
				t.Fatalf("downstream_rq_total = %d", got)
			}
		})
	}
}

func TestStatPrefixNames(t *testing.T) {
	for _, tc := range []struct{ y, want string }{
		{`address: {socket_address: {address: 0.0.0.0, port_value: 10000}}`, "listener.0.0.0.0_10000."},
		{`address: {socket_address: {address: "::1", port_value: 80}}`, "listener.[__1]_80."},
		{"stat_prefix: ingress\naddress: {socket_address: {address: \"::1\", port_value: 80}}", "listener.ingress."},
	} {
		if got := StatPrefix(parseListener(t, tc.y)); got != tc.want {
			t.Errorf("StatPrefix(%s) = %q, want %q", tc.y, got, tc.want)
		}
	}
}

func TestTCPProxyEcho(t *testing.T) {
	e := newEnv(t)
	e.dialer.addrs["echo"] = echoServer(t, "tcp", "127.0.0.1:0")
	l := e.start(`
name: tcp
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:` + tcpProxyFilter("echo"))
	addr := l.Addr().String()
	if got := rawExchange(t, addr, "hello"); got != "hello" {
		t.Fatalf("echo = %q", got)
	}
	// A large payload in both directions at once exercises flow control.
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if werr := <-errc; werr != nil {
		t.Fatal(werr)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want %d identical", len(got), len(payload))
	}
	if n := e.counter("tcp.echo.downstream_cx_total"); n != 2 {
		t.Errorf("tcp.echo.downstream_cx_total = %d", n)
	}
	if n := e.counter("tcp.echo.downstream_cx_rx_bytes_total"); n != uint64(len(payload))+5 {
		t.Errorf("rx bytes = %d", n)
	}
	if n := e.counter("tcp.echo.downstream_cx_tx_bytes_total"); n != uint64(len(payload))+5 {
		t.Errorf("tx bytes = %d", n)
	}
	waitFor(t, func() bool { return e.store.Gauge(StatPrefix(l.Config())+"downstream_cx_active", 0).Value() == 0 })
	if n := e.counter(StatPrefix(l.Config()) + "downstream_cx_destroy"); n != 2 {
		t.Errorf("downstream_cx_destroy = %d", n)
	}
}

func TestTCPProxyIdleTimeoutAndNoUpstream(t *testing.T) {
	e := newEnv(t)
	e.dialer.addrs["echo"] = echoServer(t, "tcp", "127.0.0.1:0")
	l := e.start(`
name: tcp
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: tcp
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: idle
      cluster: echo
      idle_timeout: 0.1s
`)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "x")
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	// Nothing more: the proxy closes after the idle timeout.
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read after idle timeout succeeded")
	}
	if n := e.counter("tcp.idle.idle_timeout"); n != 1 {
		t.Fatalf("idle_timeout = %d", n)
	}

	// An unknown cluster closes the connection at once.
	l2 := e.start(`
name: tcp2
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:` + tcpProxyFilter("missing"))
	if got := rawExchange(t, l2.Addr().String(), "x"); got != "" {
		t.Fatalf("got %q", got)
	}
}

func TestDirectResponse(t *testing.T) {
	e := newEnv(t)
	l := e.start(`
name: direct
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:` + directFilter("canned\n"))
	for i := 0; i < 3; i++ {
		if got := rawExchange(t, l.Addr().String(), ""); got != "canned\n" {
			t.Fatalf("got %q", got)
		}
	}
	// Without half-closing first: the response comes and the connection
	// closes.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if string(b) != "canned\n" {
		t.Fatalf("got %q", b)
	}
}

// waitFor polls cond (the condition is eventually true; the poll is not an
// assertion on timing).
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = strings.Contains
