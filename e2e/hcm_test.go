package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startHCM starts hcm.yaml; extra is appended to the custom access log
// format.
func startHCM(t *testing.T, extra ...string) (*proxy, *upstream, string) {
	up := startUpstream(t, "echo", nil)
	dir := t.TempDir()
	defaultLog := filepath.Join(dir, "default.log")
	p := startProxy(t, "hcm.yaml", vars{"Echo": up.Port, "DefaultLog": defaultLog, "Extra": strings.Join(extra, "")})
	return p, up, defaultLog
}

// recordingClient is an HTTP/1.1 client that remembers the local address
// of its last connection.
type recordingClient struct {
	*http.Client
	mu    sync.Mutex
	local string
}

func newRecordingClient() *recordingClient {
	rc := &recordingClient{}
	d := &net.Dialer{}
	rc.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols: protocols(true, false, false),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				rc.mu.Lock()
				rc.local = c.LocalAddr().String()
				rc.mu.Unlock()
			}
			return c, err
		},
	}}
	return rc
}

// TestAccessLogFormats: every supported command of a custom format, and
// Envoy's default format, written for a real request.
func TestAccessLogFormats(t *testing.T) {
	t.Parallel()
	p, up, defaultLog := startHCM(t)
	c := newRecordingClient()
	before := time.Now()
	resp, body := get(t, c.Client, p.url("edge", "/logged?x=1"), "x-custom", "custom-value", "x-delay-ms", "60", "user-agent", "e2e-agent")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	fields := strings.Split(waitLines(t, accessLog(p), 1)[0], "|")
	if len(fields) != 12 {
		t.Fatalf("custom log line has %d fields: %q", len(fields), fields)
	}
	start, err := time.Parse("2006-01-02T15:04:05.000Z", fields[0])
	if err != nil || start.Before(before.Add(-time.Second)) || start.After(time.Now()) {
		t.Errorf("%%START_TIME%% %q (%v)", fields[0], err)
	}
	dur, _ := strconv.Atoi(fields[8])
	want := map[int]string{
		1: "custom-value", 2: "cus", 3: "/logged?x=1", 4: "echo", 5: "200", 6: "-",
		7: strconv.Itoa(len(body)), 9: up.Addr(), 10: c.local, 11: "-",
	}
	names := map[int]string{1: "REQ(X-CUSTOM)", 2: "REQ(X-CUSTOM):3", 3: "REQ(:PATH)", 4: "RESP(X-UPSTREAM)", 5: "RESPONSE_CODE",
		6: "RESPONSE_FLAGS", 7: "BYTES_SENT", 9: "UPSTREAM_HOST", 10: "DOWNSTREAM_REMOTE_ADDRESS", 11: "REQ(X-MISSING)"}
	for i, w := range want {
		if fields[i] != w {
			t.Errorf("%%%s%% = %q, want %q", names[i], fields[i], w)
		}
	}
	if dur < 60 || dur > 5000 {
		t.Errorf("%%DURATION%% %q, want >= 60 ms (the upstream's delay)", fields[8])
	}

	var js map[string]any
	if err := json.Unmarshal([]byte(waitLines(t, filepath.Join(p.Dir, "json.log"), 1)[0]), &js); err != nil {
		t.Fatalf("json_format line: %v", err)
	}
	if js["path"] != "/logged?x=1" || js["upstream"] != up.Addr() || js["custom"] != "custom-value" {
		t.Errorf("json_format line %v", js)
	}
	t.Run("json-typed-values", func(t *testing.T) {
		if js["code"] != 200.0 {
			t.Errorf("json_format code %#v, want the number 200", js["code"])
		}
	})

	// [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
	// %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
	// "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
	def := waitLines(t, defaultLog, 1)[0]
	re := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /logged\?x=1 HTTP/1\.1" 200 - 0 (\d+) (\d+) (\d+) "127\.0\.0\.1" "e2e-agent" "[0-9a-f-]{36}" "` +
		regexp.QuoteMeta(p.addr("edge")) + `" "` + regexp.QuoteMeta(up.Addr()) + `"$`)
	m := re.FindStringSubmatch(def)
	if m == nil {
		t.Fatalf("default format line %q does not match %s", def, re)
	}
	if m[1] != strconv.Itoa(len(body)) {
		t.Errorf("default format BYTES_SENT %s, want %d", m[1], len(body))
	}
}

// TestAccessLogStartTimeFormat: %START_TIME(<strftime>)% with a '%'
// inside the parentheses.
func TestAccessLogStartTimeFormat(t *testing.T) {
	t.Parallel()
	p, _, _ := startHCM(t, "|%START_TIME(%s)%|%START_TIME(%Y/%m/%d)%")
	before := time.Now().Unix()
	get(t, h1Client(), p.url("edge", "/"))
	fields := strings.Split(waitLines(t, accessLog(p), 1)[0], "|")
	secs, _ := strconv.ParseInt(fields[len(fields)-2], 10, 64)
	if secs < before || secs > time.Now().Unix() {
		t.Errorf("%%START_TIME(%%s)%% %q", fields[len(fields)-2])
	}
	if day := fields[len(fields)-1]; day != time.Unix(secs, 0).UTC().Format("2006/01/02") {
		t.Errorf("%%START_TIME(%%Y/%%m/%%d)%% %q", day)
	}
}

// TestForwardedForAndRequestID: use_remote_address appends the peer to
// x-forwarded-for; without it x-forwarded-for passes unchanged;
// generate_request_id adds x-request-id unless turned off.
func TestForwardedForAndRequestID(t *testing.T) {
	t.Parallel()
	p, _, _ := startHCM(t)
	c := h1Client()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

	_, body := get(t, c, p.url("edge", "/"), "x-forwarded-for", "203.0.113.7")
	e := parseEcho(t, body)
	if got := e.header("x-forwarded-for"); got != "203.0.113.7,127.0.0.1" {
		t.Errorf("use_remote_address: upstream x-forwarded-for %q, want 203.0.113.7,127.0.0.1", got)
	}
	if !uuid.MatchString(e.header("x-request-id")) {
		t.Errorf("generate_request_id: x-request-id %q", e.header("x-request-id"))
	}
	if e.header("x-forwarded-proto") != "http" {
		t.Errorf("x-forwarded-proto %q", e.header("x-forwarded-proto"))
	}
	_, body = get(t, c, p.url("edge", "/"))
	if e := parseEcho(t, body); e.header("x-forwarded-for") != "127.0.0.1" || e.header("x-envoy-internal") != "true" {
		t.Errorf("loopback client: x-forwarded-for %q x-envoy-internal %q", e.header("x-forwarded-for"), e.header("x-envoy-internal"))
	}
	_, body = get(t, c, p.url("edge", "/"), "x-request-id", "client-chosen")
	if e := parseEcho(t, body); e.header("x-request-id") != "client-chosen" {
		t.Errorf("an edge request's x-request-id from an internal client: %q", e.header("x-request-id"))
	}

	_, body = get(t, c, p.url("inner", "/"), "x-forwarded-for", "203.0.113.7")
	e = parseEcho(t, body)
	if got := e.header("x-forwarded-for"); got != "203.0.113.7" {
		t.Errorf("without use_remote_address: x-forwarded-for %q, want it unchanged", got)
	}
	if e.has("x-request-id") {
		t.Errorf("generate_request_id false: x-request-id %q added", e.header("x-request-id"))
	}
}

// TestServerName: server_name replaces the upstream's server header; the
// default is "envoy".
func TestServerName(t *testing.T) {
	t.Parallel()
	p, _, _ := startHCM(t)
	for listener, want := range map[string]string{"edge": "wasmesh-e2e", "inner": "envoy"} {
		for _, c := range []*http.Client{h1Client(), h2cClient()} {
			resp, _ := get(t, c, p.url(listener, "/"))
			if got := resp.Header.Get("Server"); got != want {
				t.Errorf("%s %s: server %q, want %q", listener, resp.Proto, got, want)
			}
		}
	}
}

// TestMaxRequestHeadersKB: headers over max_request_headers_kb (2 KiB on
// "edge") get 431; the same headers pass the 60 KiB default.
func TestMaxRequestHeadersKB(t *testing.T) {
	t.Parallel()
	p, _, _ := startHCM(t)
	for _, tc := range []struct {
		listener string
		size     int
		want     int
	}{
		{"edge", 1000, 200},
		{"edge", 3000, 431},
		{"edge", 9000, 431},
		{"inner", 9000, 200},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.listener, tc.size), func(t *testing.T) {
			resp, _ := get(t, h1Client(), p.url(tc.listener, "/"), "x-big", strings.Repeat("a", tc.size))
			if resp.StatusCode != tc.want {
				t.Errorf("HTTP/1.1: %d-byte header: status %d, want %d", tc.size, resp.StatusCode, tc.want)
			}
			// HTTP/2: Envoy resets the stream (or answers 431); either way
			// the request must not reach the upstream.
			req := mustReq(t, "GET", p.url(tc.listener, "/"), nil)
			req.Header.Set("x-big", strings.Repeat("a", tc.size))
			resp, err := h2cClient().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case tc.want == 200 && (err != nil || resp.StatusCode != 200):
				t.Errorf("HTTP/2: %d-byte header: %v %v", tc.size, err, resp)
			case tc.want != 200 && err == nil && resp.StatusCode != tc.want:
				t.Errorf("HTTP/2: %d-byte header: status %d, want %d or a reset", tc.size, resp.StatusCode, tc.want)
			}
		})
	}
}

// TestRequestHeadersTimeout: a client that stops in the middle of its
// request headers is cut off after request_headers_timeout (0.3 s).
func TestRequestHeadersTimeout(t *testing.T) {
	t.Parallel()
	p, _, _ := startHCM(t)
	for listener, wantCut := range map[string]bool{"edge": true, "inner": false} {
		t.Run(listener, func(t *testing.T) {
			conn, err := net.Dial("tcp", p.addr(listener))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: e2e\r\nX-Partial: ")); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			b, err := io.ReadAll(bufio.NewReader(conn))
			elapsed := time.Since(start)
			var ne net.Error
			timedOut := err != nil && errorsAs(err, &ne) && ne.Timeout()
			if wantCut {
				if timedOut || elapsed > 900*time.Millisecond {
					t.Fatalf("connection still open after %v", elapsed)
				}
				if elapsed < 250*time.Millisecond {
					t.Errorf("cut after %v, before the 0.3 s timeout", elapsed)
				}
				t.Run("408", func(t *testing.T) {
					if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
						t.Errorf("closed after %v without a 408 (got %q)", elapsed, b)
					}
				})
			} else if !timedOut {
				t.Fatalf("without request_headers_timeout the connection ended after %v: %q %v", elapsed, b, err)
			}
		})
	}
}
