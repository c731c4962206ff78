package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// stalling serves /stall-headers (no response for 3 s), /stall-body
// (headers and part of the body, then nothing for 3 s) and echoes the rest.
func stalling(w http.ResponseWriter, r *http.Request) {
	wait := func() {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}
	switch r.URL.Path {
	case "/stall-headers":
		wait()
	case "/trickle":
		// Ten bytes, 60 ms apart: active for longer than the idle
		// timeout, never idle for it.
		w.WriteHeader(200)
		for i := 0; i < 10; i++ {
			io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(60 * time.Millisecond):
			}
		}
	case "/stall-body":
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		wait()
	default:
		echo("echo")(w, r)
	}
}

// TestCodecType: codec_type HTTP1 refuses HTTP/2 prior knowledge and
// HTTP2 refuses HTTP/1.1.
func TestCodecType(t *testing.T) {
	t.Parallel()
	p := startProxy(t, "hcm_timeouts.yaml", vars{"Echo": startUpstream(t, "echo", http.HandlerFunc(stalling)).Port})
	for _, tc := range []struct {
		listener string
		h1, h2c  bool
	}{{"h1only", true, false}, {"h2only", false, true}} {
		t.Run(tc.listener, func(t *testing.T) {
			for proto, c := range map[string]*http.Client{"http1": h1Client(), "h2c": h2cClient()} {
				want := map[string]bool{"http1": tc.h1, "h2c": tc.h2c}[proto]
				c.Timeout = 2 * time.Second
				resp, err := c.Get(p.url(tc.listener, "/"))
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					resp.Body.Close()
				}
				if ok != want {
					t.Errorf("%s on %s: served=%v (%v), want %v", proto, tc.listener, ok, err, want)
				}
			}
		})
	}
}

// TestConnectionTimeouts: common_http_protocol_options.idle_timeout
// closes an idle keep-alive connection; stream_idle_timeout answers 504
// when the upstream sends nothing and resets a response that stalls;
// request_timeout answers 408 to a request whose body never completes.
func TestConnectionTimeouts(t *testing.T) {
	t.Parallel()
	p := startProxy(t, "hcm_timeouts.yaml", vars{"Echo": startUpstream(t, "echo", http.HandlerFunc(stalling)).Port})
	raw := func(listener, req string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.addr(listener))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, req)
		return c, bufio.NewReader(c)
	}
	t.Run("idle-timeout", func(t *testing.T) {
		for listener, wantClose := range map[string]bool{"h1only": true, "hops": false} {
			c, r := raw(listener, "GET / HTTP/1.1\r\nHost: e2e\r\n\r\n")
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err = r.ReadByte()
			closed := err == io.EOF || isReset(err)
			if closed != wantClose {
				t.Errorf("%s: idle connection closed=%v after %v (%v), want %v", listener, closed, time.Since(start), err, wantClose)
			}
			if closed && time.Since(start) < 200*time.Millisecond {
				t.Errorf("%s: closed after %v, before idle_timeout", listener, time.Since(start))
			}
		}
	})
	t.Run("stream-idle-timeout-no-response", func(t *testing.T) {
		start := time.Now()
		resp, body := get(t, h1Client(), p.url("idle", "/stall-headers"))
		if resp.StatusCode != 504 || body != "stream timeout" || time.Since(start) > 2*time.Second {
			t.Fatalf("%d %q after %v, want 504 \"stream timeout\" after about 0.3 s", resp.StatusCode, body, time.Since(start))
		}
	})
	t.Run("stream-idle-timeout-later-request-on-connection", func(t *testing.T) {
		// The connection's clock was armed by a first request; a second
		// one, started 0.2 s later, gets its own full 0.3 s.
		c, r := raw("idle", "GET / HTTP/1.1\r\nHost: e2e\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		io.WriteString(c, "GET /stall-headers HTTP/1.1\r\nHost: e2e\r\n\r\n")
		resp, err = http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		took := time.Since(start)
		if resp.StatusCode != 504 || string(b) != "stream timeout" || took < 250*time.Millisecond || took > 2*time.Second {
			t.Fatalf("second request: %d %q after %v, want 504 \"stream timeout\" after about 0.3 s", resp.StatusCode, b, took)
		}
	})
	t.Run("stream-idle-timeout-h2c-streams-on-one-connection", func(t *testing.T) {
		// HTTP/2 streams share their connection's clock: each must be
		// timed from its own last activity.
		c := h2cClient()
		type result struct {
			code int
			body string
			took time.Duration
			err  error
		}
		fetch := func(path string, after time.Duration) chan result {
			ch := make(chan result, 1)
			go func() {
				time.Sleep(after)
				start := time.Now()
				resp, err := c.Get(p.url("idle", path))
				if err != nil {
					ch <- result{err: err, took: time.Since(start)}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				ch <- result{resp.StatusCode, string(b), time.Since(start), err}
			}()
			return ch
		}
		trickle := fetch("/trickle", 0)
		stall1 := fetch("/stall-headers", 0)
		stall2 := fetch("/stall-headers", 200*time.Millisecond)
		plain := fetch("/", 150*time.Millisecond)
		for name, ch := range map[string]chan result{"first stalled": stall1, "later stalled": stall2} {
			r := <-ch
			if r.err != nil || r.code != 504 || r.body != "stream timeout" || r.took < 250*time.Millisecond || r.took > 2*time.Second {
				t.Errorf("%s stream: %d %q %v after %v, want 504 \"stream timeout\" after about 0.3 s", name, r.code, r.body, r.err, r.took)
			}
		}
		if r := <-trickle; r.err != nil || r.code != 200 || r.body != "xxxxxxxxxx" {
			t.Errorf("active stream: %d %q %v after %v, want 200 and all ten bytes", r.code, r.body, r.err, r.took)
		}
		if r := <-plain; r.err != nil || r.code != 200 {
			t.Errorf("plain stream: %d %v", r.code, r.err)
		}
	})
	t.Run("stream-idle-timeout-stalled-body", func(t *testing.T) {
		start := time.Now()
		resp, err := h1Client().Get(p.url("idle", "/stall-body"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || time.Since(start) > 2*time.Second {
			t.Fatalf("stalled body: err %v after %v, want a reset after about 0.3 s", err, time.Since(start))
		}
	})
	t.Run("request-timeout", func(t *testing.T) {
		start := time.Now()
		_, r := raw("reqtimeout", "POST / HTTP/1.1\r\nHost: e2e\r\nContent-Length: 100\r\n\r\nonly part of it")
		resp, err := http.ReadResponse(r, nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no answer after %v", time.Since(start))
		}
		if err != nil {
			t.Fatalf("after %v: %v (want 408)", time.Since(start), err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 408 || !strings.Contains(string(b), "request timeout") {
			t.Errorf("%d %q after %v, want 408 request timeout", resp.StatusCode, b, time.Since(start))
		}
	})
}

// TestXFFTrustedHops: with use_remote_address and xff_num_trusted_hops 1
// the client address is the last x-forwarded-for entry, so a request
// relayed by a trusted proxy from a public address is external.
func TestXFFTrustedHops(t *testing.T) {
	t.Parallel()
	p := startProxy(t, "hcm_timeouts.yaml", vars{"Echo": startUpstream(t, "echo", http.HandlerFunc(stalling)).Port})
	_, body := get(t, h1Client(), p.url("hops", "/"), "x-forwarded-for", "203.0.113.7")
	e := parseEcho(t, body)
	if e.header("x-forwarded-for") != "203.0.113.7,127.0.0.1" || e.header("x-envoy-external-address") != "203.0.113.7" || e.has("x-envoy-internal") {
		t.Errorf("xff %q external %q internal %q", e.header("x-forwarded-for"), e.header("x-envoy-external-address"), e.header("x-envoy-internal"))
	}
}
