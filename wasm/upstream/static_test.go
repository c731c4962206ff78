package upstream

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/wasmesh/wasmesh/wasm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// httpBackend is a real server answering callouts:
//
//	/echo  headers x-method, x-path, x-host, x-proto, x-test (echoed), body
//	       "echo:"+request body, trailer x-trailer = request trailer
//	       x-req-trailer (or "none")
//	/slow  waits for the client to go away
//	/big   writes 2 KiB
//	/peer  body is the client's address (connection reuse)
type httpBackend struct {
	srv      *httptest.Server
	slow     chan struct{}
	canceled chan struct{}
}

func newHTTPBackend(t *testing.T, proto Protocol) *httpBackend {
	t.Helper()
	b := &httpBackend{slow: make(chan struct{}, 16), canceled: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Trailer")
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Proto", r.Proto)
		w.Header()["X-Test"] = r.Header["X-Test"]
		_, _ = w.Write(append([]byte("echo:"), body...))
		tr := r.Trailer.Get("X-Req-Trailer")
		if tr == "" {
			tr = "none"
		}
		w.Header().Set("X-Trailer", tr)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		b.slow <- struct{}{}
		select {
		case <-r.Context().Done():
			b.canceled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 2048))
	})
	mux.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.RemoteAddr)
	})
	b.srv = httptest.NewUnstartedServer(mux)
	switch proto {
	case H2C:
		b.srv.Config.Protocols = new(http.Protocols)
		b.srv.Config.Protocols.SetHTTP1(true)
		b.srv.Config.Protocols.SetUnencryptedHTTP2(true)
		b.srv.Start()
	case TLS:
		b.srv.EnableHTTP2 = true
		b.srv.StartTLS()
	default:
		b.srv.Start()
	}
	t.Cleanup(b.srv.Close)
	return b
}

func (b *httpBackend) cluster(proto Protocol) Cluster {
	c := Cluster{Address: b.srv.Listener.Addr().String(), Protocol: proto}
	if proto == TLS {
		pool := x509.NewCertPool()
		pool.AddCert(b.srv.Certificate())
		c.RootCAs = pool
		c.ServerName = "example.com" // in httptest's certificate
	}
	return c
}

func newStatic(t *testing.T, cfg Config) *Static {
	t.Helper()
	cfg.Logger = zaptest.NewLogger(t)
	s, err := NewStatic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

type httpResult struct {
	resp *wasm.HTTPCallResponse
	err  error
}

// call sends one HTTP callout and waits for its result.
func call(t *testing.T, s *Static, cluster string, req *wasm.HTTPCallRequest, timeout time.Duration) httpResult {
	t.Helper()
	ch := make(chan httpResult, 1)
	_, err := s.HTTPCall(context.Background(), cluster, req, timeout, func(r *wasm.HTTPCallResponse, err error) {
		ch <- httpResult{r, err}
	})
	if err != nil {
		t.Fatalf("HTTPCall: %v", err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no callout result")
	}
	return httpResult{}
}

func get(fields []wasm.Field, key string) string {
	var vs []string
	for _, f := range fields {
		if f.Key == key {
			vs = append(vs, f.Value)
		}
	}
	return strings.Join(vs, ",")
}

func req(method, path string, kv ...string) *wasm.HTTPCallRequest {
	r := &wasm.HTTPCallRequest{Headers: []wasm.Field{
		{Key: ":method", Value: method}, {Key: ":path", Value: path}, {Key: ":authority", Value: "callout.test"},
	}}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Headers = append(r.Headers, wasm.Field{Key: kv[i], Value: kv[i+1]})
	}
	return r
}

func TestHTTPCallProtocols(t *testing.T) {
	for _, tc := range []struct {
		proto     Protocol
		wantProto string
	}{
		{HTTP1, "HTTP/1.1"},
		{H2C, "HTTP/2.0"},
		{TLS, "HTTP/2.0"},
	} {
		t.Run(tc.proto.String(), func(t *testing.T) {
			b := newHTTPBackend(t, tc.proto)
			s := newStatic(t, Config{Clusters: map[string]Cluster{"web": b.cluster(tc.proto)}})
			r := req("POST", "/echo?q=1", "x-test", "a", "x-test", "b", "connection", "close")
			r.Body = []byte("hello")
			r.Trailers = []wasm.Field{{Key: "x-req-trailer", Value: "tv"}}
			res := call(t, s, "web", r, 5*time.Second)
			if res.err != nil {
				t.Fatal(res.err)
			}
			h := res.resp.Headers
			if h[0] != (wasm.Field{Key: ":status", Value: "200"}) {
				t.Errorf("first header %v, want :status 200", h[0])
			}
			for k, want := range map[string]string{
				"x-method": "POST", "x-path": "/echo?q=1", "x-host": "callout.test",
				"x-proto": tc.wantProto, "x-test": "a,b",
			} {
				if got := get(h, k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if string(res.resp.Body) != "echo:hello" {
				t.Errorf("body %q", res.resp.Body)
			}
			if got := get(res.resp.Trailers, "x-trailer"); got != "tv" {
				t.Errorf("trailer x-trailer = %q, want tv (trailers %v)", got, res.resp.Trailers)
			}
		})
	}
}

func TestHTTPCallTrailersWithoutBody(t *testing.T) {
	b := newHTTPBackend(t, HTTP1)
	s := newStatic(t, Config{Clusters: map[string]Cluster{"web": b.cluster(HTTP1)}})
	r := req("POST", "/echo")
	r.Trailers = []wasm.Field{{Key: "x-req-trailer", Value: "only"}}
	res := call(t, s, "web", r, 5*time.Second)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := get(res.resp.Trailers, "x-trailer"); got != "only" {
		t.Errorf("x-trailer = %q", got)
	}
}

func TestHTTPCallConnectionReuse(t *testing.T) {
	for _, proto := range []Protocol{HTTP1, H2C, TLS} {
		t.Run(proto.String(), func(t *testing.T) {
			b := newHTTPBackend(t, proto)
			s := newStatic(t, Config{Clusters: map[string]Cluster{"web": b.cluster(proto)}})
			first := call(t, s, "web", req("GET", "/peer"), 5*time.Second)
			second := call(t, s, "web", req("GET", "/peer"), 5*time.Second)
			if first.err != nil || second.err != nil {
				t.Fatal(first.err, second.err)
			}
			if string(first.resp.Body) != string(second.resp.Body) {
				t.Errorf("two calls used two connections: %s and %s", first.resp.Body, second.resp.Body)
			}
		})
	}
}

func TestHTTPCallFailures(t *testing.T) {
	b := newHTTPBackend(t, HTTP1)
	refused := closedPort(t)
	s := newStatic(t, Config{
		Clusters: map[string]Cluster{
			"web":     b.cluster(HTTP1),
			"refused": {Address: refused},
		},
		MaxResponseBytes: 1024,
	})
	for _, tc := range []struct {
		name    string
		cluster string
		req     *wasm.HTTPCallRequest
		timeout time.Duration
		check   func(error) bool
	}{
		{"timeout", "web", req("GET", "/slow"), 50 * time.Millisecond, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"connection refused", "refused", req("GET", "/"), time.Second, func(err error) bool {
			var op *net.OpError
			return errors.As(err, &op)
		}},
		{"too large", "web", req("GET", "/big"), time.Second, func(err error) bool { return errors.Is(err, ErrResponseTooLarge) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, s, tc.cluster, tc.req, tc.timeout)
			if res.err == nil || !tc.check(res.err) {
				t.Fatalf("err = %v, resp %v", res.err, res.resp)
			}
		})
	}
}

func TestHTTPCallRefusedAtOnce(t *testing.T) {
	s := newStatic(t, Config{Clusters: map[string]Cluster{"web": {Address: "127.0.0.1:1"}}})
	done := func(*wasm.HTTPCallResponse, error) { t.Error("done called for a call not started") }
	if _, err := s.HTTPCall(context.Background(), "nope", req("GET", "/"), 0, done); !errors.Is(err, wasm.ErrUnknownCluster) {
		t.Errorf("unknown cluster: %v", err)
	}
	if _, err := s.HTTPCall(context.Background(), "web", req("GET", "no-slash"), 0, done); err == nil {
		t.Error("bad :path accepted")
	}
	if _, err := s.HTTPCall(context.Background(), "web", req("BAD METHOD", "/"), 0, done); err == nil {
		t.Error("bad :method accepted")
	}
}

func TestHTTPCallCancel(t *testing.T) {
	b := newHTTPBackend(t, HTTP1)
	s := newStatic(t, Config{Clusters: map[string]Cluster{"web": b.cluster(HTTP1)}})
	ch := make(chan error, 1)
	cancel, err := s.HTTPCall(context.Background(), "web", req("GET", "/slow"), 0, func(_ *wasm.HTTPCallResponse, err error) { ch <- err })
	if err != nil {
		t.Fatal(err)
	}
	b.waitSlow(t)
	cancel()
	if err := <-ch; !errors.Is(err, context.Canceled) {
		t.Errorf("done(%v), want context.Canceled", err)
	}
	select {
	case <-b.canceled:
	case <-time.After(5 * time.Second):
		t.Error("server did not see the cancellation")
	}
}

func TestCloseEndsCallsInFlight(t *testing.T) {
	b := newHTTPBackend(t, HTTP1)
	s, err := NewStatic(Config{Clusters: map[string]Cluster{"web": b.cluster(HTTP1)}})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	if _, err := s.HTTPCall(context.Background(), "web", req("GET", "/slow"), 0, func(_ *wasm.HTTPCallResponse, err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	b.waitSlow(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ch:
		if err == nil {
			t.Error("call in flight succeeded after Close")
		}
	default:
		t.Error("Close returned before the call in flight ended")
	}
	if _, err := s.HTTPCall(context.Background(), "web", req("GET", "/"), 0, func(*wasm.HTTPCallResponse, error) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestNewStaticReportsEveryBadCluster(t *testing.T) {
	_, err := NewStatic(Config{Clusters: map[string]Cluster{
		"ok":       {Address: "127.0.0.1:80"},
		"noport":   {Address: "127.0.0.1"},
		"badport":  {Address: "127.0.0.1:http"},
		"badproto": {Address: "127.0.0.1:80", Protocol: Protocol(9)},
		"plainca":  {Address: "127.0.0.1:80", ServerName: "x"},
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"noport": address`, `"badport": address`, `"badproto": protocol`, `"plainca": protocol`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"ok"`) {
		t.Errorf("error blames a good cluster:\n%v", err)
	}
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitSlow waits until the backend's /slow handler is running.
func (b *httpBackend) waitSlow(t *testing.T) {
	t.Helper()
	select {
	case <-b.slow:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the server")
	}
}
