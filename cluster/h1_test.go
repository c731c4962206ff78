package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h1Cluster is a STATIC cluster of one host at addr (HTTP/1.1 upstream);
// idle is common_http_protocol_options.idle_timeout (0: the default).
func h1Cluster(tb testing.TB, addr string, idle time.Duration) *Cluster {
	tb.Helper()
	m := NewManager(context.Background(), Options{})
	tb.Cleanup(func() { m.Close() })
	if err := m.Add(context.Background(), h1ClusterConfig(tb, "h1", addr, idle)); err != nil {
		tb.Fatal(err)
	}
	return m.Get("h1")
}

// h1ClusterConfig is the configuration of h1Cluster, named name.
func h1ClusterConfig(tb testing.TB, name, addr string, idle time.Duration) *clusterv3.Cluster {
	tb.Helper()
	host, portS, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	port, _ := strconv.Atoi(portS)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}},
				}},
			}}}}},
	}
	if idle > 0 {
		c.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)}
	}
	return c
}

// countingServer is an httptest server that counts the connections it
// accepted and those that closed.
type countingServer struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func startCounting(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) addr() string { return s.Listener.Addr().String() }

// rawServer accepts connections and hands each to serve; it closes them
// and waits for serve to return at cleanup.
type rawServer struct {
	ln             net.Listener
	wg             sync.WaitGroup
	mu             sync.Mutex
	conns          []net.Conn
	opened, closed atomic.Int64
}

func startRaw(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.opened.Add(1))
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				serve(n, c, bufio.NewReader(c))
				c.Close()
				s.closed.Add(1)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func roundTrip(t *testing.T, c *Cluster, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, _, err := c.RoundTrip(req, LoadBalancerContext{})
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return resp, body
}

func newReq(t *testing.T, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://backend"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestH1KeepAliveReuse(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}))
	c := h1Cluster(t, s.addr(), 0)
	for i := 0; i < 20; i++ {
		var body io.Reader
		method := http.MethodGet
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader("payload")
		}
		resp, got := roundTrip(t, c, newReq(t, method, fmt.Sprintf("/r%d", i), body))
		if want := fmt.Sprintf("%s /r%d", method, i); resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("%d %q, want 200 %q", resp.StatusCode, got, want)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections for 20 sequential requests, want 1", n)
	}
}

func TestH1PoolGrowth(t *testing.T) {
	const k = 8
	var arrived sync.WaitGroup
	arrived.Add(k)
	gate := make(chan struct{})
	var first atomic.Int64
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.Add(1) <= k {
			arrived.Done()
			<-gate
		}
		w.Write([]byte("ok"))
	}))
	c := h1Cluster(t, s.addr(), 0)
	var wg sync.WaitGroup
	errs := make(chan error, k)
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _, err := c.RoundTrip(newReq(t, http.MethodGet, "/", nil), LoadBalancerContext{})
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	arrived.Wait() // all k requests are in flight at once
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := s.opened.Load(); n != k {
		t.Fatalf("%d connections for %d concurrent requests", n, k)
	}
	// The pool keeps them: more requests, concurrent or not, dial nothing.
	for i := 0; i < 2*k; i++ {
		roundTrip(t, c, newReq(t, http.MethodGet, "/", nil))
	}
	if n := s.opened.Load(); n != k {
		t.Fatalf("%d connections after reuse, want %d", n, k)
	}
	if idle := c.tr.h1Pool().idleLen(); idle != k {
		t.Fatalf("%d idle connections, want %d", idle, k)
	}
}

// trailerEcho echoes the request body, its length and framing, and sends
// the request's trailers back as response trailers (chunked).
func trailerEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("X-Te", strings.Join(r.TransferEncoding, ","))
	w.Header().Set("X-Cl", strconv.FormatInt(r.ContentLength, 10))
	w.Header().Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(body)))
	for k := range r.Trailer {
		w.Header().Add("Trailer", "X-Echo-"+k)
	}
	w.Header().Add("Trailer", "X-Len")
	n, _ := strconv.Atoi(r.URL.Query().Get("resp"))
	if n == 0 {
		w.Write(body)
	} else {
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for n > 0 {
			m := min(n, len(chunk))
			w.Write(chunk[:m])
			n -= m
		}
	}
	for k, v := range r.Trailer {
		w.Header().Set("X-Echo-"+k, strings.Join(v, ","))
	}
	w.Header().Set("X-Len", strconv.Itoa(len(body)))
}

// streamBody is a body of unknown length that arrives in pieces.
type streamBody struct {
	parts [][]byte
}

func (s *streamBody) Read(p []byte) (int, error) {
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	if len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	return n, nil
}

func TestH1Bodies(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(trailerEcho))
	c := h1Cluster(t, s.addr(), 0)
	big := bytes.Repeat([]byte("wasmesh!"), 300<<10) // 2.4 MB
	sum := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	cases := []struct {
		name      string
		method    string
		body      func() io.Reader
		cl        int64 // -1: unknown
		trailer   http.Header
		respSize  int
		wantTE    string
		wantCL    string
		wantBody  []byte
		wantTrail map[string]string
	}{
		{name: "get no body", method: "GET", cl: 0, wantCL: "0"},
		{name: "post empty", method: "POST", cl: 0, wantCL: "0"},
		{name: "small known length", method: "PUT", body: func() io.Reader { return strings.NewReader("hello") }, cl: 5, wantCL: "5", wantBody: []byte("hello")},
		{name: "large known length", method: "POST", body: func() io.Reader { return bytes.NewReader(big) }, cl: int64(len(big)), wantCL: strconv.Itoa(len(big)), wantBody: big},
		{name: "chunked request with trailers", method: "POST",
			body:    func() io.Reader { return &streamBody{parts: [][]byte{[]byte("ab"), []byte("cde"), []byte("f")}} },
			cl:      -1,
			trailer: http.Header{"Grpc-Status": {"0"}, "X-Check": {"yes"}},
			wantTE:  "chunked", wantCL: "-1", wantBody: []byte("abcdef"),
			wantTrail: map[string]string{"X-Echo-Grpc-Status": "0", "X-Echo-X-Check": "yes", "X-Len": "6"}},
		{name: "unknown length probed empty", method: "POST", body: func() io.Reader { return &streamBody{} }, cl: 0, wantCL: "0"},
		{name: "unknown length probed non-empty", method: "POST", body: func() io.Reader { return &streamBody{parts: [][]byte{[]byte("xyz")}} }, cl: 0, wantTE: "chunked", wantCL: "-1", wantBody: []byte("xyz")},
		{name: "large chunked response", method: "GET", cl: 0, respSize: 3 << 20, wantCL: "0", wantTrail: map[string]string{"X-Len": "0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/echo"
			if tc.respSize > 0 {
				path += "?resp=" + strconv.Itoa(tc.respSize)
			}
			req := newReq(t, tc.method, path, nil)
			if tc.body != nil {
				req.Body = io.NopCloser(tc.body())
			}
			req.ContentLength = tc.cl
			req.Trailer = tc.trailer
			resp, got := roundTrip(t, c, req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			if te := resp.Header.Get("X-Te"); te != tc.wantTE {
				t.Errorf("upstream saw Transfer-Encoding %q, want %q", te, tc.wantTE)
			}
			if cl := resp.Header.Get("X-Cl"); cl != tc.wantCL {
				t.Errorf("upstream saw ContentLength %s, want %s", cl, tc.wantCL)
			}
			if s := resp.Header.Get("X-Sum"); s != sum(tc.wantBody) {
				t.Errorf("upstream got a different body (%d bytes expected)", len(tc.wantBody))
			}
			if tc.respSize > 0 {
				if len(got) != tc.respSize {
					t.Errorf("response body %d bytes, want %d", len(got), tc.respSize)
				}
			} else if !bytes.Equal(got, tc.wantBody) {
				t.Errorf("echo %d bytes, want %d", len(got), len(tc.wantBody))
			}
			if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("response framing: ContentLength %d, TransferEncoding %v, want chunked", resp.ContentLength, resp.TransferEncoding)
			}
			if resp.Header.Get("Trailer") != "" {
				t.Error("Trailer header left in resp.Header")
			}
			want := tc.wantTrail
			if want == nil {
				want = map[string]string{"X-Len": strconv.Itoa(len(tc.wantBody))}
			}
			for k, v := range want {
				if got := resp.Trailer.Get(k); got != v {
					t.Errorf("trailer %s = %q, want %q (all: %v)", k, got, v, resp.Trailer)
				}
			}
			// The connection goes back to the pool (from the body writer
			// when the response ended before it did).
			eventually(t, func() bool { return c.tr.h1Pool().idleLen() == 1 })
		})
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (every exchange ends cleanly)", n)
	}
}

func TestH1ConnectionClose(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte("ok"))
	}))
	c := h1Cluster(t, s.addr(), 0)
	steps := []struct {
		path      string
		reqClose  bool
		wantConns int64
	}{
		{"/a", false, 1},
		{"/a", false, 1},
		{"/close", false, 1}, // answered on the pooled one, which then closes
		{"/a", false, 2},
		{"/a", true, 2}, // Connection: close from us
		{"/a", false, 3},
	}
	for i, st := range steps {
		req := newReq(t, http.MethodGet, st.path, nil)
		req.Close = st.reqClose
		resp, body := roundTrip(t, c, req)
		if string(body) != "ok" {
			t.Fatalf("step %d: %q", i, body)
		}
		if st.path == "/close" && !resp.Close {
			t.Errorf("step %d: resp.Close false after Connection: close", i)
		}
		if n := s.opened.Load(); n != st.wantConns {
			t.Fatalf("step %d (%s close=%v): %d connections, want %d", i, st.path, st.reqClose, n, st.wantConns)
		}
	}
}

func TestH1HTTP10Upstream(t *testing.T) {
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/keepalive":
				io.WriteString(c, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nka")
			default: // no length: the body runs to the close
				io.WriteString(c, "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil close")
				return
			}
		}
	})
	c := h1Cluster(t, s.addr(), 0)
	for i, tc := range []struct{ path, body string }{{"/keepalive", "ka"}, {"/keepalive", "ka"}, {"/eof", "until close"}, {"/keepalive", "ka"}} {
		resp, body := roundTrip(t, c, newReq(t, http.MethodGet, tc.path, nil))
		if string(body) != tc.body || resp.Proto != "HTTP/1.0" || resp.ProtoMinor != 0 {
			t.Fatalf("step %d: %s %q", i, resp.Proto, body)
		}
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1NoBodyResponses(t *testing.T) {
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/204":
				io.WriteString(c, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
			case "/304":
				// A length of the representation, with no body.
				io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nEtag: \"x\"\r\n\r\n")
			case "/100":
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
			default: // HEAD
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
			}
		}
	})
	c := h1Cluster(t, s.addr(), 0)
	cases := []struct {
		method, path string
		code         int
		cl           int64
		body         string
	}{
		{http.MethodHead, "/head", 200, 5, ""},
		{http.MethodGet, "/204", 204, 0, ""},
		{http.MethodGet, "/304", 304, 0, ""},
		{http.MethodGet, "/100", 200, 5, "final"},
		{http.MethodHead, "/head", 200, 5, ""},
	}
	for _, tc := range cases {
		resp, body := roundTrip(t, c, newReq(t, tc.method, tc.path, nil))
		if resp.StatusCode != tc.code || resp.ContentLength != tc.cl || string(body) != tc.body {
			t.Fatalf("%s %s: %d cl %d %q, want %d cl %d %q", tc.method, tc.path, resp.StatusCode, resp.ContentLength, body, tc.code, tc.cl, tc.body)
		}
		if tc.body == "" && resp.Body != http.NoBody {
			// Through Cluster.RoundTrip the body is NoBody itself.
			t.Errorf("%s %s: body %T, want http.NoBody", tc.method, tc.path, resp.Body)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestH1StaleConnection(t *testing.T) {
	// The upstream answers the first request of each connection, then
	// reads the next request and closes without answering (a keep-alive
	// connection that was closed under the request); /prime requests are
	// always answered; on /closeidle it closes the connection right after
	// answering.
	var attempts sync.Map // path -> *atomic.Int64
	hit := func(p string) int64 {
		v, _ := attempts.LoadOrStore(p, new(atomic.Int64))
		return v.(*atomic.Int64).Add(1)
	}
	count := func(p string) int64 {
		v, ok := attempts.Load(p)
		if !ok {
			return 0
		}
		return v.(*atomic.Int64).Load()
	}
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for n := 0; ; n++ {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			hit(req.URL.Path)
			if n > 0 && !strings.HasPrefix(req.URL.Path, "/prime") {
				return // closed before answering
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			if req.URL.Path == "/closeidle" {
				return
			}
		}
	})
	c := h1Cluster(t, s.addr(), 0)

	// An idle connection the upstream closed is noticed before use, so
	// even a request that could not be retried goes through.
	roundTrip(t, c, newReq(t, http.MethodGet, "/closeidle", nil))
	eventually(t, func() bool { return s.closed.Load() == 1 })
	time.Sleep(2 * h1PeekAfter) // idle long enough to be checked
	fresh := newReq(t, http.MethodGet, "/fresh", nil)
	fresh.Body = io.NopCloser(&streamBody{}) // not replayable
	roundTrip(t, c, fresh)                   // conn #2, first request

	cases := []struct {
		name     string
		req      func() *http.Request
		wantOK   bool
		attempts int64
	}{
		{"replayable get is retried", func() *http.Request { return newReq(t, http.MethodGet, "/get", nil) }, true, 2},
		{"post is not retried", func() *http.Request { return newReq(t, http.MethodPost, "/post", strings.NewReader("x")) }, false, 1},
		{"get with a non-replayable body is not retried", func() *http.Request {
			r := newReq(t, http.MethodGet, "/opaque", nil)
			r.Body = io.NopCloser(&streamBody{}) // like the router's empty body
			return r
		}, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Make sure a used connection is in the pool.
			roundTrip(t, c, newReq(t, http.MethodGet, "/prime-"+tc.name, nil))
			req := tc.req()
			resp, _, err := c.RoundTrip(req, LoadBalancerContext{})
			if tc.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else if !errors.Is(err, ErrUpstreamReset) {
				t.Fatalf("err %v, want ErrUpstreamReset", err)
			}
			if n := count(req.URL.Path); n != tc.attempts {
				t.Fatalf("upstream saw %d attempts, want %d", n, tc.attempts)
			}
		})
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestH1Upgrade(t *testing.T) {
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		req, _, err := readRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "echo" {
			return
		}
		// 101, and the first echoed bytes in the same write.
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello:")
		io.Copy(c, br)
	})
	c := h1Cluster(t, s.addr(), 0)
	req := newReq(t, http.MethodGet, "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	ctx, cancel := context.WithCancel(context.Background())
	resp, _, err := c.RoundTrip(req.WithContext(ctx), LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the tunnel outlives the request's context
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != 101 || !ok {
		t.Fatalf("%d %T", resp.StatusCode, resp.Body)
	}
	defer rw.Close()
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("hello:ping"))
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "hello:ping" {
		t.Fatalf("%q %v", buf, err)
	}
}

func TestH1Cancel(t *testing.T) {
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/partial":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
			case "/ok":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			// Hang (no head, or half a body) until the client goes.
			io.Copy(io.Discard, br)
			return
		}
	})
	c := h1Cluster(t, s.addr(), 0)
	cases := []struct {
		name, path string
		mk         func() (context.Context, context.CancelFunc)
		want       error
	}{
		{"cancel before the head", "/hang", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline before the head", "/hang", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel mid-body", "/partial", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.mk()
			defer cancel()
			req := newReq(t, http.MethodGet, tc.path, nil).WithContext(ctx)
			if tc.path == "/hang" {
				if tc.want == context.Canceled {
					time.AfterFunc(50*time.Millisecond, cancel)
				}
				start := time.Now()
				_, _, err := c.RoundTrip(req, LoadBalancerContext{})
				if !errors.Is(err, tc.want) || !errors.Is(err, ErrUpstreamReset) {
					t.Fatalf("err %v, want %v and ErrUpstreamReset", err, tc.want)
				}
				if el := time.Since(start); el > 2*time.Second {
					t.Fatalf("took %v", el)
				}
				return
			}
			resp, _, err := c.RoundTrip(req, LoadBalancerContext{})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
				t.Fatalf("%q %v", buf, err)
			}
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err = io.ReadAll(resp.Body)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("body err %v, want context.Canceled", err)
			}
			resp.Body.Close()
		})
	}
	// The pool still works (the cancelled connections were not reused).
	if _, body := roundTrip(t, c, newReq(t, http.MethodGet, "/ok", nil)); string(body) != "ok" {
		t.Fatalf("%q", body)
	}
}

func TestH1CloseBeforeEOF(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(bytes.Repeat([]byte("x"), n))
	}))
	c := h1Cluster(t, s.addr(), 0)
	// A small remainder already buffered is skipped: the connection stays.
	resp, _, err := c.RoundTrip(newReq(t, http.MethodGet, "/?n=10", nil), LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return resp.Body.(*body).rc.(*h1Body).pc.br.Buffered() == 10 })
	resp.Body.Close()
	roundTrip(t, c, newReq(t, http.MethodGet, "/?n=1", nil))
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections after closing a buffered body, want 1", n)
	}
	// A large remainder is not read: the connection closes.
	resp, _, err = c.RoundTrip(newReq(t, http.MethodGet, "/?n=1000000", nil), LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	roundTrip(t, c, newReq(t, http.MethodGet, "/?n=1", nil))
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections after closing a large body early, want 2", n)
	}
}

func (t *h1Transport) idleLen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, st := range t.idle {
		n += len(st.conns)
	}
	return n
}

func TestH1IdleTimeout(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	c := h1Cluster(t, s.addr(), 100*time.Millisecond)
	roundTrip(t, c, newReq(t, http.MethodGet, "/", nil))
	start := time.Now()
	eventually(t, func() bool { return s.closed.Load() == 1 })
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("closed after %v, before idle_timeout", el)
	}
	if n := c.tr.h1Pool().idleLen(); n != 0 {
		t.Fatalf("%d idle connections left", n)
	}
	roundTrip(t, c, newReq(t, http.MethodGet, "/", nil))
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1CloseIdleOnClusterClose(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	c := h1Cluster(t, s.addr(), 0)
	roundTrip(t, c, newReq(t, http.MethodGet, "/", nil))
	c.Close()
	eventually(t, func() bool { return s.closed.Load() == 1 })
}

func TestH1ConnClosedByClusterLeavesPool(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	c := h1Cluster(t, s.addr(), 0)
	roundTrip(t, c, newReq(t, http.MethodGet, "/", nil))
	if n := c.tr.h1Pool().idleLen(); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	// What a host removal does to the host's connections.
	c.conns.closeAll(c.Hosts()[0])
	if n := c.tr.h1Pool().idleLen(); n != 0 {
		t.Fatalf("%d idle connections after closeAll, want 0", n)
	}
	roundTrip(t, c, newReq(t, http.MethodGet, "/", nil))
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1EarlyResponse(t *testing.T) {
	// The upstream answers 413 after the head and closes without reading
	// the body: the answer reaches the caller, the write error does not.
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig")
		c.(*net.TCPConn).CloseWrite()
		time.Sleep(50 * time.Millisecond) // let the client read before the reset
	})
	c := h1Cluster(t, s.addr(), 0)
	for _, size := range []int{60 << 10, 16 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			req := newReq(t, http.MethodPost, "/upload", bytes.NewReader(make([]byte, size)))
			resp, body := roundTrip(t, c, req)
			if resp.StatusCode != 413 || string(body) != "big" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
		})
	}
}

// TestH1MaxRequestsPerConnection: max_requests_per_connection closes an
// upstream connection after that many requests (also through the
// deprecated top-level field), and an HTTP/2 cluster refuses it by name.
func TestH1MaxRequestsPerConnection(t *testing.T) {
	s := startCounting(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	c2 := func() *Cluster {
		host, portS, _ := net.SplitHostPort(s.addr())
		port, _ := strconv.Atoi(portS)
		pc := &clusterv3.Cluster{
			Name:                 "maxreq",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       durationpb.New(time.Second),
			CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
				MaxRequestsPerConnection: wrapperspb.UInt32(2),
			},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "maxreq",
				Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}},
					}},
				}}}}},
		}
		m := NewManager(context.Background(), Options{})
		t.Cleanup(func() { m.Close() })
		if err := m.Add(context.Background(), pc); err != nil {
			t.Fatal(err)
		}
		h2 := proto.Clone(pc).(*clusterv3.Cluster)
		h2.Name = "maxreq-h2"
		h2.LoadAssignment.ClusterName = "maxreq-h2"
		h2.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
		err := m.Add(context.Background(), h2)
		if err == nil || !strings.Contains(err.Error(), "common_http_protocol_options.max_requests_per_connection") {
			t.Errorf("HTTP/2 cluster with max_requests_per_connection: err %v, want one naming the field", err)
		}
		return m.Get("maxreq")
	}()
	for i := 0; i < 5; i++ {
		resp, got := roundTrip(t, c2, newReq(t, http.MethodGet, "/", nil))
		if resp.StatusCode != 200 || string(got) != "ok" {
			t.Fatalf("%d %q", resp.StatusCode, got)
		}
	}
	if n := s.opened.Load(); n != 3 {
		t.Fatalf("%d connections for 5 sequential requests at 2 per connection, want 3", n)
	}
}

// onlyDeadline adds a deadline to its parent the way the router's route
// and per-try timeouts do (a deadlineContext): the pool enforces it with
// the connection's deadline clock.
type onlyDeadline struct {
	context.Context
	d time.Time
}

func (c onlyDeadline) Deadline() (time.Time, bool)     { return c.d, true }
func (c onlyDeadline) DeadlineParent() context.Context { return c.Context }
func (c onlyDeadline) Err() error {
	if !time.Now().Before(c.d) {
		return context.DeadlineExceeded
	}
	return c.Context.Err()
}

// TestH1DeadlineClock: a deadline's timer outlives the exchange it was
// armed for. A later exchange on the same connection must not be aborted
// by it, and an earlier deadline must still abort at its time.
func TestH1DeadlineClock(t *testing.T) {
	s := startRaw(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/hang" {
				io.Copy(io.Discard, br)
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := h1Cluster(t, s.addr(), 0)
	get := func(path string, timeout time.Duration) error {
		ctx := onlyDeadline{context.Background(), time.Now().Add(timeout)}
		resp, _, err := c.RoundTrip(newReq(t, http.MethodGet, path, nil).WithContext(ctx), LoadBalancerContext{})
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && string(body) != "ok" {
			err = fmt.Errorf("body %q", body)
		}
		return err
	}
	for i := 0; i < 5; i++ {
		if err := get("/ok", 40*time.Millisecond); err != nil {
			t.Fatalf("short deadline, request %d: %v", i, err)
		}
	}
	// The timer armed for those fires while no exchange runs.
	time.Sleep(60 * time.Millisecond)
	if err := get("/ok", 10*time.Second); err != nil {
		t.Fatalf("after the timer fired idle: %v", err)
	}
	// Deadlines that pass while later exchanges run: every firing finds
	// a later deadline and re-arms.
	for start := time.Now(); time.Since(start) < 150*time.Millisecond; {
		if err := get("/ok", 20*time.Millisecond); err != nil {
			t.Fatalf("busy connection: %v", err)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d upstream connections, want 1 (no exchange aborted)", n)
	}
	// An earlier deadline than the armed one (10 s) still aborts on time.
	start := time.Now()
	err := get("/hang", 80*time.Millisecond)
	el := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging upstream: err %v, want DeadlineExceeded", err)
	}
	if el < 80*time.Millisecond || el > 2*time.Second {
		t.Fatalf("deadline of 80ms ended the exchange after %v", el)
	}
	// The aborted connection is not reused.
	if err := get("/ok", 10*time.Second); err != nil {
		t.Fatalf("after the abort: %v", err)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d upstream connections, want 2 (the aborted one closed)", n)
	}
}
