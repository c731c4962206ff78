package hcm

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keepAlive is a raw HTTP/1.1 client connection that sends one request at
// a time.
type keepAlive struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, f *fixture) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{t: t, c: c, br: bufio.NewReader(c)}
}

// get sends GET path and reads the response; the i-th request of a
// sequence is named in failures.
func (k *keepAlive) get(i int, path string) {
	k.t.Helper()
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(k.c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		k.t.Fatalf("request %d (%s): %v", i, path, err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.t.Fatalf("request %d (%s): %v", i, path, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode >= 500 {
		k.t.Fatalf("request %d (%s): status %d, body %v", i, path, resp.StatusCode, err)
	}
}

// waitClosed returns when the server closed the connection, failing the
// test when it is still open after limit.
func (k *keepAlive) waitClosed(limit time.Duration) time.Time {
	k.t.Helper()
	_ = k.c.SetReadDeadline(time.Now().Add(limit))
	var b [1]byte
	n, err := k.br.Read(b[:])
	at := time.Now()
	var ne net.Error
	if n > 0 || errors.As(err, &ne) && ne.Timeout() {
		k.t.Fatalf("connection still open after %v (read %d bytes, %v)", limit, n, err)
	}
	return at
}

// TestH1IdleTimeout: idle_timeout closes a keep-alive connection that
// waited that long for its next request, counted from the end of the last
// response whatever ran on the connection before; a connection whose
// requests come more often stays open however long it lives.
func TestH1IdleTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	f := newFixture(t, baseHCM+"\ncommon_http_protocol_options: {idle_timeout: 0.15s}\n")
	// The server starts timing when it has written the response, a bit
	// before the client has read it.
	const minIdle = timeout * 8 / 10
	tests := []struct {
		name string
		run  func(k *keepAlive)
	}{
		{"after many requests", func(k *keepAlive) {
			for i := range 50 {
				k.get(i, "/direct")
			}
		}},
		{"paced requests keep it open", func(k *keepAlive) {
			// Three timeouts long: the clock fires on a connection that
			// was busy or idle for less than the timeout, and waits on.
			for i := range 15 {
				if i > 0 {
					time.Sleep(timeout / 5)
				}
				k.get(i, "/direct")
			}
		}},
		{"request longer than the timeout", func(k *keepAlive) {
			// The clock fires twice while /slow runs; the request is
			// answered, and the idle time starts at its end.
			k.get(0, "/direct")
			k.get(1, "/slow?ms=400")
		}},
		{"after pipelined requests", func(k *keepAlive) {
			_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(k.c, strings.Repeat("GET /direct HTTP/1.1\r\nHost: x\r\n\r\n", 8))
			for i := range 8 {
				resp, err := http.ReadResponse(k.br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := dialKeepAlive(t, f)
			tc.run(k)
			end := time.Now()
			closed := k.waitClosed(10 * time.Second)
			if idle := closed.Sub(end); idle < minIdle {
				t.Fatalf("closed %v after the last response, want idle_timeout %v", idle, timeout)
			}
		})
	}
}

// TestH1IdleTimeoutNewConnection: a connection that never sends a request
// is closed after idle_timeout too.
func TestH1IdleTimeoutNewConnection(t *testing.T) {
	f := newFixture(t, baseHCM+"\ncommon_http_protocol_options: {idle_timeout: 0.05s}\n")
	k := dialKeepAlive(t, f)
	start := time.Now()
	if idle := k.waitClosed(10 * time.Second).Sub(start); idle < 40*time.Millisecond {
		t.Fatalf("closed after %v, want idle_timeout 50ms", idle)
	}
}

// TestH1ClientGoneAfterShortRequests: the background read that notices a
// client going away still starts for a long request that follows many
// short ones on the connection (its timer is armed lazily, once for
// several requests).
func TestH1ClientGoneAfterShortRequests(t *testing.T) {
	f := newFixture(t, baseHCM)
	for _, n := range []int{1, 50} {
		k := dialKeepAlive(t, f)
		for i := range n {
			k.get(i, "/direct")
		}
		// Pacing: the first connection's timer has stopped again by the
		// time /hang starts, the second's is pending.
		if n == 1 {
			time.Sleep(10 * backgroundReadDelay)
		}
		io.WriteString(k.c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
		k.c.Close()
		select {
		case <-f.hangEnded:
		case <-time.After(10 * time.Second):
			t.Fatalf("after %d requests: the upstream request was not cancelled after the client left", n)
		}
	}
}

// TestH1BackgroundReadKeepsPipelinedByte: a background read that takes
// the first byte of a pipelined request holds it for the connection's
// reader; a later request served from the buffer must not start another
// read that overwrites it.
func TestH1BackgroundReadKeepsPipelinedByte(t *testing.T) {
	f := newFixture(t, baseHCM)
	k := dialKeepAlive(t, f)
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	slow := "/slow?ms=" + strconv.Itoa(int(20*backgroundReadDelay/time.Millisecond))
	// A and B in one write: B's head is buffered while A runs, and B is
	// served without reading the socket.
	io.WriteString(k.c, "GET "+slow+"&r=a HTTP/1.1\r\nHost: x\r\n\r\nGET "+slow+"&r=b HTTP/1.1\r\nHost: x\r\n\r\n")
	// C arrives while A runs, after A's background read started: it
	// takes C's first byte.
	time.Sleep(5 * backgroundReadDelay)
	io.WriteString(k.c, "GET /plain?r=c HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"upstream GET " + slow + "&r=a ", "upstream GET " + slow + "&r=b ", "upstream GET /plain?r=c "} {
		resp, err := http.ReadResponse(k.br, nil)
		if err != nil {
			t.Fatalf("response to %q: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want) {
			t.Fatalf("got %d %q, want 200 %q... (request line damaged?)", resp.StatusCode, body, want)
		}
	}
}
