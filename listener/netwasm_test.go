package listener

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wasmesh/wasmesh/wasm"
)

// TestNetworkWasmFilter runs the harness's tcp module (see
// wasm/testdata/harness/tcp.wat) in front of tcp_proxy to an echo server.
func TestNetworkWasmFilter(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.InfoLevel)
	rt, err := wasm.NewRuntime(context.Background(), wasm.Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	e.deps.HCM.Env.Wasm = rt
	e.dialer.addrs["echo"] = echoServer(t, "tcp", "127.0.0.1:0")
	l, err := Compile(context.Background(), parseListener(t, `
name: wasm
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
    - name: envoy.filters.network.wasm
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
        config:
          name: tcp
          vm_config:
            vm_id: tcp
            code: {local: {filename: ../wasm/testdata/harness/tcp.wasm}}`+tcpProxyFilter("echo")), e.deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Stop before the runtime closes (cleanups run last-in first-out).
	t.Cleanup(func() { l.Stop() })
	addr := l.Addr().String()

	// Downstream data gets ">" prepended, upstream data "<" appended (once
	// per chunk, so only the stripped text is exact).
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello")
	var got []byte
	buf := make([]byte, 64)
	for strings.ReplaceAll(string(got), "<", "") != ">hello" || !strings.HasSuffix(string(got), "<") {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	c.Close()
	waitFor(t, func() bool { return countLogs(logs, "downstream_close 2") == 1 })

	// 'p' pauses until the end of the stream: nothing reaches the upstream
	// before the client half-closes; then the whole buffer goes at once.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "pause")
	io.WriteString(c, "d!")
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("paused data went through (%d bytes)", n)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if strings.ReplaceAll(string(b), "<", "") != ">paused!" || !strings.HasPrefix(string(b), ">p") {
		t.Fatalf("after pause: %q", b)
	}

	// 'c' closes the connection.
	if got := rawExchange(t, addr, "close please"); got != "" {
		t.Fatalf("closed connection answered %q", got)
	}
	// Each side's close reaches the filter: remote (2) for the client that
	// half-closed, local (1) when the filter closed the connection.
	waitFor(t, func() bool {
		return countLogs(logs, "upstream_close") == 3 && countLogs(logs, "downstream_close 1") == 1
	})
	// 't' traps: fail closed closes the connection.
	if got := rawExchange(t, addr, "trap"); got != "" {
		t.Fatalf("trapped connection answered %q", got)
	}
	waitFor(t, func() bool { return countLogs(logs, "wasm filter failed for this stream") >= 1 })
}

func countLogs(logs *observer.ObservedLogs, prefix string) int {
	n := 0
	for _, e := range logs.All() {
		if strings.HasPrefix(e.Message, prefix) {
			n++
		}
	}
	return n
}
