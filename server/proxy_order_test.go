package server

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/internal/rawupstream"
)

// TestUpstreamResponseHeaderOrder: the response head reaches the client
// with the upstream's fields in the upstream's order (names lower-case, as
// Envoy's HTTP/1.1 codec writes them), repeated fields kept apart, and the
// hop-by-hop fields dropped.
func TestUpstreamResponseHeaderOrder(t *testing.T) {
	up := rawupstream.Start(t, "HTTP/1.1 200 OK\r\nZ-First: 1\r\nA-Second: 2\r\nKeep-Alive: timeout=5\r\nM-Third: 3\r\n"+
		"A-Second: 2b\r\nContent-Length: 2\r\n\r\nok")
	conn := dialProxy(t, startBenchProxy(t, up))
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /order HTTP/1.1\r\nHost: order\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var names []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			switch k {
			case "z-first", "a-second", "m-third", "keep-alive":
				names = append(names, k+"="+strings.TrimSpace(v))
			}
		}
	}
	want := "z-first=1 a-second=2 m-third=3 a-second=2b"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("upstream fields reached the client as %q, want %q", got, want)
	}
}
