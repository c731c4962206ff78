package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// namedTCP is a TCP server that greets with "<name>\n" and then echoes.
func namedTCP(t testing.TB, name string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, name+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTCPProxy: tcp_proxy weighted_clusters spread connections; data flows
// both ways; idle_timeout closes an idle connection while the default
// keeps it; the direct_response network filter answers and closes.
func TestTCPProxy(t *testing.T) {
	t.Parallel()
	p := startProxy(t, "tcp.yaml", vars{"A": namedTCP(t, "a"), "B": namedTCP(t, "b")})
	dial := func(listener string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.addr(listener))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, bufio.NewReader(c)
	}
	t.Run("weighted-clusters", func(t *testing.T) {
		got := map[string]int{}
		for i := 0; i < 40; i++ {
			c, r := dial("weighted")
			name, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "ping\n")
			if echo, _ := r.ReadString('\n'); echo != "ping\n" {
				t.Fatalf("echo %q", echo)
			}
			got[strings.TrimSpace(name)]++
			c.Close()
		}
		if got["a"] < 5 || got["b"] < 5 {
			t.Fatalf("weights 1:1 over 40 connections: %v", got)
		}
	})
	t.Run("idle-timeout", func(t *testing.T) {
		c, r := dial("weighted")
		r.ReadString('\n')
		start := time.Now()
		_, err := r.ReadByte()
		if err != io.EOF && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("idle connection: %v after %v, want EOF", err, time.Since(start))
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %v, want about 0.3 s", d)
		}
		_ = c
	})
	t.Run("no-idle-timeout", func(t *testing.T) {
		c, r := dial("single")
		r.ReadString('\n')
		c.SetReadDeadline(time.Now().Add(600 * time.Millisecond))
		if _, err := r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection without idle_timeout ended: %v", err)
		}
	})
	t.Run("direct-response", func(t *testing.T) {
		_, r := dial("direct")
		b, err := io.ReadAll(r)
		if err != nil || string(b) != "hello over tcp\n" {
			t.Fatalf("%q %v", b, err)
		}
	})
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
