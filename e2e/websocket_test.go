package e2e

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// wsDial sends a WebSocket upgrade request to addr and returns the
// response and, on 101, the connection.
func wsDial(t *testing.T, addr, path string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	_, err = conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
			t.Errorf("Sec-WebSocket-Accept %q", got)
		}
		return resp, conn, br
	}
	resp.Body.Close()
	return resp, nil, nil
}

// TestWebSocket upgrades through upgrade_configs and echoes frames both
// ways; without upgrade_configs (or with the route disabling it) the
// upgrade is refused with 403.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "ws", http.HandlerFunc(wsEcho))
	p := startProxy(t, "websocket.yaml", vars{"Up": up.Port})

	t.Run("echo", func(t *testing.T) {
		resp, conn, br := wsDial(t, p.addr("ws"), "/chat")
		if resp.StatusCode != 101 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for _, msg := range []string{"hello", string(make([]byte, 70000))} {
			if err := wsWrite(conn, 1, []byte(msg), true); err != nil {
				t.Fatal(err)
			}
			op, got, err := wsRead(br)
			if err != nil {
				t.Fatal(err)
			}
			if op != 1 || string(got) != msg {
				t.Fatalf("echo op %d len %d, want text len %d", op, len(got), len(msg))
			}
		}
		if err := wsWrite(conn, 8, []byte{3, 232}, true); err != nil {
			t.Fatal(err)
		}
		if op, _, err := wsRead(br); err != nil || op != 8 {
			t.Fatalf("close: op %d err %v", op, err)
		}
	})
	for name, tc := range map[string]struct{ listener, path string }{
		"no-upgrade-configs": {"plain", "/chat"},
		"route-disabled":     {"ws", "/no-ws"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, conn, _ := wsDial(t, p.addr(tc.listener), tc.path)
			if resp.StatusCode != http.StatusForbidden || conn != nil {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
		})
	}
}
