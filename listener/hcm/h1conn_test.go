package hcm

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes req on a fresh connection and reads n responses.
func rawExchange(t *testing.T, addr, req string, n int) ([]*http.Response, []string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: methodOf(req, i)})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	return resps, bodies, &bufConn{Conn: c, r: br}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// methodOf is the method of the i-th request in a pipelined string.
func methodOf(req string, i int) string {
	lines := strings.Split(req, "\r\n")
	k := 0
	for _, l := range lines {
		if strings.Contains(l, " HTTP/1.") {
			if k == i {
				return strings.SplitN(l, " ", 2)[0]
			}
			k++
		}
	}
	return "GET"
}

// closedSoon reports whether the server closes c within a second.
func closedSoon(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestH1Codec(t *testing.T) {
	f := newFixture(t, baseHCM)
	addr := strings.TrimPrefix(f.url, "http://")
	tests := []struct {
		name       string
		req        string
		responses  int
		wantStatus []int
		wantBody   []string // substring per response
		wantHeader map[string]string
		wantClosed bool
	}{
		{
			name:       "pipelined requests answered in order",
			req:        "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /direct HTTP/1.1\r\nHost: x\r\n\r\n",
			responses:  2,
			wantStatus: []int{200, 418},
			wantBody:   []string{"upstream GET /a", "teapot"},
		},
		{
			name:       "chunked request body with trailers",
			req:        "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
			responses:  1,
			wantStatus: []int{200},
			wantBody:   []string{"body=hello world"},
		},
		{
			name:       "content-length body",
			req:        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
			responses:  1,
			wantStatus: []int{200},
			wantBody:   []string{"body=abc"},
		},
		{
			name:       "HTTP/1.0 closes without keep-alive",
			req:        "GET /direct HTTP/1.0\r\n\r\n",
			responses:  1,
			wantStatus: []int{418},
			wantClosed: true,
		},
		{
			name:       "HTTP/1.0 keep-alive stays open",
			req:        "GET /direct HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			responses:  1,
			wantStatus: []int{418},
			wantHeader: map[string]string{"Connection": "keep-alive"},
		},
		{
			name:       "Connection: close",
			req:        "GET /direct HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			responses:  1,
			wantStatus: []int{418},
			wantClosed: true,
		},
		{
			name:       "HEAD has no body",
			req:        "HEAD /direct HTTP/1.1\r\nHost: x\r\n\r\n",
			responses:  1,
			wantStatus: []int{418},
			wantBody:   []string{""},
		},
		{
			name:       "absolute-form target",
			req:        "GET http://other.example/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
			responses:  1,
			wantStatus: []int{200},
			wantBody:   []string{"upstream GET /abs?q=1"},
		},
		{name: "missing Host", req: "GET / HTTP/1.1\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "two Host headers", req: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "content-length and chunked", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "bad content-length", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "conflicting content-lengths", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "unknown transfer-encoding", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", responses: 1, wantStatus: []int{501}, wantClosed: true},
		{name: "space in header name", req: "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "obsolete line folding", req: "GET / HTTP/1.1\r\nHost: x\r\nX-A: v\r\n  folded\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "unknown protocol version", req: "GET / HTTP/3.0\r\nHost: x\r\n\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{name: "bad chunk size", req: "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", responses: 1, wantStatus: []int{400}, wantClosed: true},
		{
			name:       "too many headers",
			req:        "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-H: v\r\n", 101) + "\r\n",
			responses:  1,
			wantStatus: []int{431},
			wantClosed: true,
		},
		{
			name:       "headers over max_request_headers_kb",
			req:        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
			responses:  1,
			wantStatus: []int{431},
			wantClosed: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resps, bodies, c := rawExchange(t, addr, tc.req, tc.responses)
			for i, resp := range resps {
				if resp.StatusCode != tc.wantStatus[i] {
					t.Errorf("response %d: status %d, want %d (body %q)", i, resp.StatusCode, tc.wantStatus[i], bodies[i])
				}
				if tc.wantBody != nil && !strings.Contains(bodies[i], tc.wantBody[i]) {
					t.Errorf("response %d: body %q, want it to contain %q", i, bodies[i], tc.wantBody[i])
				}
				if tc.wantBody != nil && tc.wantBody[i] == "" && bodies[i] != "" {
					t.Errorf("response %d: body %q, want none", i, bodies[i])
				}
			}
			last := resps[len(resps)-1]
			for k, v := range tc.wantHeader {
				if got := last.Header.Get(k); !strings.EqualFold(got, v) {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if got := closedSoon(c); got != tc.wantClosed {
				t.Errorf("connection closed: %v, want %v", got, tc.wantClosed)
			}
		})
	}
}

func TestH1ExpectContinue(t *testing.T) {
	f := newFixture(t, baseHCM)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
		t.Fatalf("first line %q, %v; want 100 Continue before the body is sent", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // blank line after the 100
		t.Fatal(err)
	}
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "body=hello") {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// TestH1ClientGoneCancelsUpstream: a client that closes its connection
// while the upstream has not answered gets its upstream request cancelled
// (Envoy's downstream connection termination).
func TestH1ClientGoneCancelsUpstream(t *testing.T) {
	f := newFixture(t, baseHCM)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case <-f.hangEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled after the client left")
	}
}

// TestH1LargeStreamingResponse: a body of unknown length larger than what
// the codec holds back goes out chunked and complete.
func TestH1LargeBodies(t *testing.T) {
	f := newFixture(t, baseHCM)
	big := strings.Repeat("0123456789", 50_000)
	resp, err := f.client.Post(f.url+"/up", "text/plain", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(string(b), big) {
		t.Fatalf("echoed body has %d bytes, want the %d sent", len(b), len(big))
	}
}

// TestH1RequestTimeoutWithIncompleteBody: request_timeout fires while the
// client still owes most of its body; the client gets Envoy's 408 and the
// connection closes (it cannot carry another request).
func TestH1RequestTimeoutWithIncompleteBody(t *testing.T) {
	f := newFixture(t, baseHCM+"\nrequest_timeout: 0.3s\n")
	start := time.Now()
	resps, bodies, c := rawExchange(t, strings.TrimPrefix(f.url, "http://"),
		"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of it", 1)
	if resps[0].StatusCode != 408 || !strings.Contains(bodies[0], "request timeout") {
		t.Fatalf("%d %q after %v, want 408 request timeout", resps[0].StatusCode, bodies[0], time.Since(start))
	}
	if !closedSoon(c) {
		t.Error("connection still open after a 408 for an incomplete body")
	}
}

// BenchmarkH1DirectResponse measures the HTTP/1.1 codec and the connection
// manager without an upstream: keep-alive GETs answered by a
// direct_response route, 16 requests pipelined per write.
func BenchmarkH1DirectResponse(b *testing.B) {
	f := newFixture(b, benchHCM)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const batch = 16
	req := strings.Repeat("GET /direct HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n", batch)
	br := bufio.NewReaderSize(c, 64<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < batch; j++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 418 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
}

// benchHCM is a connection manager without access log or filters.
const benchHCM = `
stat_prefix: bench
route_config:
  name: local
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/direct"}
      direct_response: {status: 418, body: {inline_string: "teapot"}}
http_filters:
- name: envoy.filters.http.router
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`

// TestServerHeaderTransformation: OVERWRITE (default) always sends
// server_name, APPEND_IF_ABSENT only when the response has no server
// header, PASS_THROUGH never adds or changes one (Envoy's semantics).
func TestServerHeaderTransformation(t *testing.T) {
	for _, tc := range []struct {
		mode             string
		direct, upstream string // want server header for a direct response / an upstream that sends one
	}{
		{"OVERWRITE", "envoy", "envoy"},
		{"APPEND_IF_ABSENT", "envoy", "upstream-srv"},
		{"PASS_THROUGH", "", "upstream-srv"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			f := newFixture(t, baseHCM+"\nserver_header_transformation: "+tc.mode+"\n")
			for path, want := range map[string]string{"/direct": tc.direct, "/with-server": tc.upstream} {
				for _, c := range []*http.Client{f.client, f.h2c} {
					resp, err := c.Get(f.url + path)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if got := resp.Header.Get("Server"); got != want {
						t.Errorf("%s %s: server %q, want %q", resp.Proto, path, got, want)
					}
				}
			}
		})
	}
}
