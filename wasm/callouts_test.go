package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/upstream"
)

// The tests below drive wasm/testdata/callouts/callouts.wasm (see the
// contract at the top of callouts.wat) against real HTTP and gRPC servers on
// 127.0.0.1 through upstream.Static, and read what the guest saw from its
// log lines.

// ---- servers ----

// calloutHTTPServer answers every path like /echo below, and:
//
//	/slow   waits for the client to go away (and reports it)
//	/trap   adds header x-trap (the guest traps on it)
//	/local  adds header x-local (the guest answers the stream with 403)
//
// /trap and /local answer only once gate is closed, which the tests do after
// OnRequestHeaders returned: HTTPStream.run reads the stream's failure
// state (failed, local) without the instance lock while afterAsync, on the
// callout's goroutine, writes it, so a response racing the data plane's own
// call is a data race in the host today.
type calloutHTTPServer struct {
	srv      *httptest.Server
	slow     chan struct{}
	canceled chan struct{}
	gate     chan struct{}
}

func newCalloutHTTPServer(t *testing.T) *calloutHTTPServer {
	t.Helper()
	s := &calloutHTTPServer{slow: make(chan struct{}, 16), canceled: make(chan struct{}, 16), gate: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			s.slow <- struct{}{}
			select {
			case <-r.Context().Done():
				s.canceled <- struct{}{}
			case <-time.After(10 * time.Second):
			}
			return
		case "/trap":
			<-s.gate
			w.Header().Set("X-Trap", "1")
		case "/local":
			<-s.gate
			w.Header().Set("X-Local", "1")
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Trailer")
		w.Header().Set("X-Test", r.Header.Get("X-Test"))
		_, _ = fmt.Fprintf(w, "%s:%s", r.Host, body)
		w.Header().Set("X-Trailer", r.Trailer.Get("X-Req-Trailer"))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *calloutHTTPServer) addr() string { return s.srv.Listener.Addr().String() }

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// rawCodec passes gRPC message bytes through.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return *(v.(*[]byte)), nil
}
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// calloutGRPCServer is a grpc-go server with a generic handler:
//
//	/test.Echo/Unary   "echo:<msg> x-in=<metadata x-in>"
//	/test.Echo/Stream  header x-md: stream, echoes each message, trailer
//	                   x-tr: done
//	/test.Echo/Fail    PERMISSION_DENIED "nope"
//	/test.Echo/Slow    waits for the client to go away (and reports it)
type calloutGRPCServer struct {
	addr     string
	slow     chan struct{}
	canceled chan struct{}
}

func newCalloutGRPCServer(t *testing.T) *calloutGRPCServer {
	t.Helper()
	s := &calloutGRPCServer{slow: make(chan struct{}, 16), canceled: make(chan struct{}, 16)}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(s.handle))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return s
}

func (s *calloutGRPCServer) handle(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	md, _ := metadata.FromIncomingContext(ss.Context())
	switch method {
	case "/test.Echo/Unary":
		var msg []byte
		if err := ss.RecvMsg(&msg); err != nil {
			return err
		}
		return ss.SendMsg([]byte(fmt.Sprintf("echo:%s x-in=%s", msg, strings.Join(md.Get("x-in"), ","))))
	case "/test.Echo/Stream":
		_ = ss.SendHeader(metadata.Pairs("x-md", "stream"))
		for {
			var msg []byte
			err := ss.RecvMsg(&msg)
			if errors.Is(err, io.EOF) {
				ss.SetTrailer(metadata.Pairs("x-tr", "done"))
				return nil
			}
			if err != nil {
				return err
			}
			if err := ss.SendMsg(append([]byte("echo:"), msg...)); err != nil {
				return err
			}
		}
	case "/test.Echo/Fail":
		return status.Error(codes.PermissionDenied, "nope")
	case "/test.Echo/Slow":
		s.slow <- struct{}{}
		<-ss.Context().Done()
		s.canceled <- struct{}{}
		return ss.Context().Err()
	}
	return status.Errorf(codes.Unimplemented, "no %s", method)
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ---- host setup ----

type calloutEnv struct {
	rt     *wasm.Runtime
	vm     *wasm.VM
	plugin *wasm.Plugin
	logs   *observer.ObservedLogs
}

type envOpts struct {
	upstreams wasm.Upstreams
	config    string
	policy    wasm.FailurePolicy
	instances int
}

// leakCheck fails the test if goroutines it started outlive it (cleanups
// run first: it must be the test's first cleanup).
func leakCheck(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// newStatic serves the clusters "web" (HTTP/1.1), "grpc" (h2c) and
// "refused" (nothing listening).
func newStatic(t *testing.T, web *calloutHTTPServer, g *calloutGRPCServer) *upstream.Static {
	t.Helper()
	clusters := map[string]upstream.Cluster{"refused": {Address: closedAddr(t)}}
	if web != nil {
		clusters["web"] = upstream.Cluster{Address: web.addr()}
	}
	if g != nil {
		clusters["grpc"] = upstream.Cluster{Address: g.addr, Protocol: upstream.H2C}
	}
	s, err := upstream.NewStatic(upstream.Config{Clusters: clusters, Logger: zaptest.NewLogger(t)})
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

func newCalloutEnv(t *testing.T, o envOpts) *calloutEnv {
	t.Helper()
	ctx := context.Background()
	code, err := os.ReadFile("testdata/callouts/callouts.wasm")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: log, Upstreams: o.upstreams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(ctx) })
	if o.instances == 0 {
		o.instances = 1
	}
	vm, err := rt.VM(ctx, wasm.VMConfig{ID: "callouts", Code: code, Instances: o.instances})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close(ctx) })
	p, err := vm.NewPlugin(ctx, wasm.PluginConfig{
		Name: "callouts", Configuration: []byte(o.config), FailurePolicy: o.policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	return &calloutEnv{rt: rt, vm: vm, plugin: p, logs: logs}
}

// waitLog waits for a log line starting with prefix and returns it.
func (e *calloutEnv) waitLog(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range e.logs.All() {
			if strings.HasPrefix(l.Message, prefix) {
				return l.Message
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q; lines:\n%s", prefix, e.lines())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hasLog reports whether a line starting with prefix was logged.
func (e *calloutEnv) hasLog(prefix string) bool {
	for _, l := range e.logs.All() {
		if strings.HasPrefix(l.Message, prefix) {
			return true
		}
	}
	return false
}

func (e *calloutEnv) lines() string {
	var b strings.Builder
	for _, l := range e.logs.All() {
		b.WriteString(l.Message)
		b.WriteByte('\n')
	}
	return b.String()
}

// waitPending waits until the VM has n callouts in flight.
func (e *calloutEnv) waitPending(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.vm.PendingCallouts() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callouts pending, want %d", e.vm.PendingCallouts(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// streamEvents records what the filter asked of the data plane.
type streamEvents struct{ ch chan string }

func newStreamEvents() *streamEvents { return &streamEvents{ch: make(chan string, 16)} }

func (s *streamEvents) ContinueStream(t wasm.StreamType) { s.ch <- fmt.Sprintf("continue %d", t) }
func (s *streamEvents) CloseStream(t wasm.StreamType)    { s.ch <- fmt.Sprintf("close %d", t) }
func (s *streamEvents) SendLocalResponse(r *wasm.LocalResponse) {
	s.ch <- fmt.Sprintf("local %d %s", r.StatusCode, r.Body)
}
func (s *streamEvents) ClearRouteCache() {}

func (s *streamEvents) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-s.ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("the filter never acted on the stream")
	}
	return ""
}

func pairs(kv ...string) string {
	var fs []wasm.Field
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, wasm.Field{Key: kv[i], Value: kv[i+1]})
	}
	return string(wasm.SerializePairs(fs))
}

// httpCallHeaders are request headers making the guest call cluster.
func httpCallHeaders(cluster, path, timeoutMS string, extra ...string) *wasm.Headers {
	h := wasm.NewHeaders(":method", "GET", ":path", "/", ":authority", "front",
		"x-http-cluster", cluster,
		"x-http-headers", pairs(":method", "POST", ":path", path, ":authority", "svc.test", "x-test", "v"),
		"x-timeout", timeoutMS)
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

// ---- HTTP callouts ----

func TestHTTPCalloutFromStreamResumesIt(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, nil)})
	// Two streams in turn: the second callout gets the next HTTP id.
	for n, wantID := range []int{4, 8} {
		ev := newStreamEvents()
		s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
		h := httpCallHeaders("web", "/echo", "5000",
			"x-http-body", "ping", "x-http-trailers", pairs("x-req-trailer", "tv"))
		if a := s.OnRequestHeaders(h, true); a != wasm.ActionPause {
			t.Fatalf("action %d, want pause; failure %v\n%s", a, s.Failure(), e.lines())
		}
		if got := ev.next(t); got != "continue 0" {
			t.Fatalf("stream event %q, want continue 0", got)
		}
		want := fmt.Sprintf("http_response root=1 id=%d headers=", wantID)
		line := e.waitLog(t, want)
		for _, part := range []string{"body=13 trailers=1 status=200 trailer=tv data=svc.test:ping get_status=0 "} {
			if !strings.HasSuffix(line, part) {
				t.Errorf("response line %q does not end with %q", line, part)
			}
		}
		if v, _ := s.RequestHeaders().Get("x-callout-status"); v != "200" {
			t.Errorf("x-callout-status = %q", v)
		}
		e.waitLog(t, fmt.Sprintf("resumed ctx=%d status=0", 2+n))
		s.Close()
	}
	e.waitPending(t, 0)
}

func TestHTTPCalloutLocalResponse(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, nil)})
	ev := newStreamEvents()
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
	if a := s.OnRequestHeaders(httpCallHeaders("web", "/local", "5000"), true); a != wasm.ActionPause {
		t.Fatalf("action %d", a)
	}
	close(web.gate)
	if got := ev.next(t); got != "local 403 svc.test:" {
		t.Fatalf("stream event %q", got)
	}
	e.waitLog(t, "local_response status=0")
	if lr := s.LocalResponse(); lr == nil || lr.StatusCode != 403 || lr.Details != "callout" {
		t.Errorf("local response %+v", lr)
	}
	s.Close()
}

func TestHTTPCalloutFromRootContext(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	// The configuration names the cluster proxy_on_configure calls.
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, nil), config: "web"})
	e.waitLog(t, "root http_call status=0 id=4")
	line := e.waitLog(t, "http_response root=1 id=4 ")
	if !strings.Contains(line, "status=200") || !strings.Contains(line, "data=root.test:") {
		t.Errorf("response line %q", line)
	}
	e.waitPending(t, 0)
}

func TestHTTPCalloutRejected(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	static := newStatic(t, web, nil)
	for _, tc := range []struct {
		name      string
		upstreams wasm.Upstreams
		headers   *wasm.Headers
		want      string
	}{
		{"unknown cluster", static, httpCallHeaders("nope", "/", "0"), "http_call status=2 id=0"},
		{"no upstreams", nil, httpCallHeaders("web", "/", "0"), "http_call status=2 id=0"},
		{"missing :authority", static, httpCallHeaders("web", "/", "0",
			"x-http-headers", pairs(":method", "GET", ":path", "/")), "http_call status=2 id=0"},
		{"missing :method", static, httpCallHeaders("web", "/", "0",
			"x-http-headers", pairs(":path", "/", ":authority", "a")), "http_call status=2 id=0"},
		{"missing :path", static, httpCallHeaders("web", "/", "0",
			"x-http-headers", pairs(":method", "GET", ":authority", "a")), "http_call status=2 id=0"},
		{"no headers", static, httpCallHeaders("web", "/", "0", "x-http-headers", ""), "http_call status=2 id=0"},
		{"malformed headers", static, httpCallHeaders("web", "/", "0",
			"x-http-headers", "\x05\x00\x00\x00"), "http_call status=2 id=0"},
		{"malformed trailers", static, httpCallHeaders("web", "/", "0",
			"x-http-trailers", "\x01\x00\x00\x00\xff\x00\x00\x00"), "http_call status=2 id=0"},
		{"timeout past int32", static, httpCallHeaders("web", "/", "3000000000"), "http_call status=2 id=0"},
		{"path refused by the upstream", static, httpCallHeaders("web", "no-slash", "0"), "http_call status=10 id=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCalloutEnv(t, envOpts{upstreams: tc.upstreams})
			s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
			if a := s.OnRequestHeaders(tc.headers, true); a != wasm.ActionContinue {
				t.Errorf("action %d", a)
			}
			e.waitLog(t, tc.want)
			if n := e.vm.PendingCallouts(); n != 0 {
				t.Errorf("%d callouts pending", n)
			}
			s.Close()
		})
	}
}

// noTimeouts is an Upstreams that ignores callout timeouts, so the host's
// own timer has to end the call.
type noTimeouts struct{ wasm.Upstreams }

func (n noTimeouts) HTTPCall(ctx context.Context, cluster string, req *wasm.HTTPCallRequest, _ time.Duration, done func(*wasm.HTTPCallResponse, error)) (func(), error) {
	return n.Upstreams.HTTPCall(ctx, cluster, req, 0, done)
}

func (n noTimeouts) GRPCStream(ctx context.Context, cluster, service, method string, md []wasm.Field, _ time.Duration, h wasm.GRPCHandler) (wasm.GRPCStream, error) {
	return n.Upstreams.GRPCStream(ctx, cluster, service, method, md, 0, h)
}

func TestHTTPCalloutFailures(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	static := newStatic(t, web, nil)
	for _, tc := range []struct {
		name, cluster, path, timeoutMS string
		upstreams                      wasm.Upstreams
		wantStatus                     string
	}{
		{"timeout by the upstream", "web", "/slow", "50", static, "get_status=11 timeout"},
		{"timeout by the host", "web", "/slow", "50", noTimeouts{static}, "get_status=11 timeout"},
		{"connection refused", "refused", "/", "10000", static, "get_status=11 reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCalloutEnv(t, envOpts{upstreams: tc.upstreams})
			ev := newStreamEvents()
			s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
			if a := s.OnRequestHeaders(httpCallHeaders(tc.cluster, tc.path, tc.timeoutMS), true); a != wasm.ActionPause {
				t.Fatalf("action %d\n%s", a, e.lines())
			}
			if got := ev.next(t); got != "continue 0" {
				t.Fatalf("stream event %q", got)
			}
			// Envoy's failure shape: no headers, body or trailers.
			want := "http_response root=1 id=4 headers=0 body=0 trailers=0 " + tc.wantStatus
			if line := e.waitLog(t, "http_response"); line != want {
				t.Errorf("response line\n%q\nwant\n%q", line, want)
			}
			if v, _ := s.RequestHeaders().Get("x-callout-status"); v != "none" {
				t.Errorf("x-callout-status = %q", v)
			}
			if tc.path == "/slow" {
				// A request that reached the server before the timeout is
				// cancelled there too (one that did not may never arrive).
				select {
				case <-web.slow:
					waitChan(t, web.canceled, "the server to see the call end")
				default:
				}
			}
			e.waitPending(t, 0)
			s.Close()
		})
	}
}

func TestHTTPCalloutStreamClosedBeforeResponse(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, nil)})
	ev := newStreamEvents()
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
	if a := s.OnRequestHeaders(httpCallHeaders("web", "/slow", "0"), true); a != wasm.ActionPause {
		t.Fatalf("action %d", a)
	}
	waitChan(t, web.slow, "the callout to reach the server")
	s.Close()
	// Closing the stream cancelled the callout at once.
	if n := e.vm.PendingCallouts(); n != 0 {
		t.Errorf("%d callouts pending after the stream closed", n)
	}
	waitChan(t, web.canceled, "the server to see the callout cancelled")
	if e.hasLog("http_response") {
		t.Errorf("callback ran for a closed stream:\n%s", e.lines())
	}
	select {
	case got := <-ev.ch:
		t.Errorf("closed stream got %q", got)
	default:
	}
}

func TestHTTPCalloutTrapAppliesFailurePolicy(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, nil), policy: wasm.FailClosed})
	ev := newStreamEvents()
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
	if a := s.OnRequestHeaders(httpCallHeaders("web", "/trap", "5000"), true); a != wasm.ActionPause {
		t.Fatalf("action %d", a)
	}
	close(web.gate)
	// The trap in proxy_on_http_call_response answers the paused stream at
	// once, without waiting for another data-plane call.
	if got := ev.next(t); got != "local 503 wasm filter failed\n" {
		t.Fatalf("stream event %q", got)
	}
	var f *wasm.InstanceFailure
	if !errors.As(s.Failure(), &f) || f.Kind != wasm.FailureTrap {
		t.Errorf("failure %v", s.Failure())
	}
	if n := e.rt.Failures().Get(wasm.FailureTrap); n != 1 {
		t.Errorf("%d traps counted", n)
	}
	s.Close()
}

// syncUpstreams answers an HTTP callout from inside HTTPCall, on the
// guest's own goroutine: the host must not deadlock on its instance lock.
type syncUpstreams struct{ wasm.Upstreams }

func (syncUpstreams) HTTPCall(_ context.Context, _ string, _ *wasm.HTTPCallRequest, _ time.Duration, done func(*wasm.HTTPCallResponse, error)) (func(), error) {
	done(&wasm.HTTPCallResponse{Headers: []wasm.Field{{Key: ":status", Value: "204"}}}, nil)
	return func() {}, nil
}

func TestHTTPCalloutAnsweredSynchronously(t *testing.T) {
	leakCheck(t)
	e := newCalloutEnv(t, envOpts{upstreams: syncUpstreams{}})
	ev := newStreamEvents()
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
	if a := s.OnRequestHeaders(httpCallHeaders("any", "/", "0"), true); a != wasm.ActionPause {
		t.Fatalf("action %d", a)
	}
	if got := ev.next(t); got != "continue 0" {
		t.Fatalf("stream event %q", got)
	}
	e.waitLog(t, "http_response root=1 id=4 headers=1 body=0 trailers=0 status=204")
	s.Close()
}

func TestHTTPCalloutsConcurrentStreams(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, nil), instances: 4})
	const streams = 32
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for n := 0; n < streams; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := newStreamEvents()
			s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
			defer s.Close()
			path := fmt.Sprintf("/n%d", n)
			if a := s.OnRequestHeaders(httpCallHeaders("web", path, "5000"), true); a != wasm.ActionPause {
				errs <- fmt.Errorf("stream %d: action %d", n, a)
				return
			}
			select {
			case got := <-ev.ch:
				if got != "continue 0" {
					errs <- fmt.Errorf("stream %d: event %q", n, got)
				}
			case <-time.After(10 * time.Second):
				errs <- fmt.Errorf("stream %d never resumed", n)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.waitPending(t, 0)
}

// ---- gRPC callouts ----

// grpcCallHeaders are request headers making the guest call method on
// upstream (a cluster name or a serialized GrpcService).
func grpcCallHeaders(upstream, method, msg, timeoutMS string, extra ...string) *wasm.Headers {
	h := wasm.NewHeaders(":method", "GET", ":path", "/", ":authority", "front",
		"x-grpc-cluster", upstream, "x-grpc-service", "test.Echo", "x-grpc-method", method,
		"x-grpc-md", pairs("x-in", "guest"), "x-grpc-msg", msg, "x-timeout", timeoutMS)
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func grpcService(t *testing.T, svc *corev3.GrpcService) string {
	t.Helper()
	b, err := proto.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGRPCCalloutUnary(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	static := newStatic(t, nil, g)
	envoyGRPC := grpcService(t, &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "grpc"}},
		InitialMetadata: []*corev3.HeaderValue{{Key: "x-in", Value: "service"}},
	})
	for _, tc := range []struct {
		name, upstream, wantMsg string
	}{
		{"cluster name", "grpc", "echo:hi x-in=guest"},
		{"GrpcService", envoyGRPC, "echo:hi x-in=service,guest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCalloutEnv(t, envOpts{upstreams: static})
			ev := newStreamEvents()
			s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
			if a := s.OnRequestHeaders(grpcCallHeaders(tc.upstream, "Unary", "hi", "5000"), true); a != wasm.ActionPause {
				t.Fatalf("action %d\n%s", a, e.lines())
			}
			e.waitLog(t, "grpc_call status=0 id=5")
			if got := ev.next(t); got != "continue 0" {
				t.Fatalf("stream event %q", got)
			}
			want := fmt.Sprintf("grpc_receive id=5 size=%d msg=%s", len(tc.wantMsg), tc.wantMsg)
			if line := e.waitLog(t, "grpc_receive"); line != want {
				t.Errorf("receive line\n%q\nwant\n%q", line, want)
			}
			// Like Envoy, a successful unary call reports only its reply.
			for _, l := range []string{"grpc_initial_metadata", "grpc_trailing_metadata", "grpc_close"} {
				if e.hasLog(l) {
					t.Errorf("unexpected %s:\n%s", l, e.lines())
				}
			}
			e.waitPending(t, 0)
			s.Close()
		})
	}
}

func TestGRPCCalloutFailures(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	static := newStatic(t, nil, g)
	for _, tc := range []struct {
		name, cluster, method string
		upstreams             wasm.Upstreams
		want                  string
	}{
		{"error status", "grpc", "Fail", static, "grpc_close id=5 code=7 get_status=7 nope"},
		{"deadline by the upstream", "grpc", "Slow", static, "grpc_close id=5 code=4 get_status=4 "},
		{"deadline by the host", "grpc", "Slow", noTimeouts{static}, "grpc_close id=5 code=4 get_status=4 timeout"},
		{"connection refused", "refused", "Unary", static, "grpc_close id=5 code=14 get_status=14 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCalloutEnv(t, envOpts{upstreams: tc.upstreams})
			ev := newStreamEvents()
			s := e.plugin.NewHTTPStream(wasm.StreamOptions{Callbacks: ev})
			if a := s.OnRequestHeaders(grpcCallHeaders(tc.cluster, tc.method, "x", "100"), true); a != wasm.ActionPause {
				t.Fatalf("action %d\n%s", a, e.lines())
			}
			if got := ev.next(t); got != "continue 0" {
				t.Fatalf("stream event %q", got)
			}
			if line := e.waitLog(t, "grpc_close"); !strings.HasPrefix(line, tc.want) {
				t.Errorf("close line\n%q\nwant prefix\n%q", line, tc.want)
			}
			if e.hasLog("grpc_receive") {
				t.Errorf("failed call delivered a message:\n%s", e.lines())
			}
			e.waitPending(t, 0)
			s.Close()
		})
	}
}

func TestGRPCCalloutRejected(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	static := newStatic(t, nil, g)
	googleOnly := grpcService(t, &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: g.addr}},
	})
	unknownCluster := grpcService(t, &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "nope"}},
	})
	for _, tc := range []struct {
		name      string
		upstreams wasm.Upstreams
		headers   *wasm.Headers
		want      string
	}{
		{"unknown cluster name", static, grpcCallHeaders("nope", "Unary", "x", "0"), "grpc_call status=4 id=0"},
		{"unknown envoy_grpc cluster", static, grpcCallHeaders(unknownCluster, "Unary", "x", "0"), "grpc_call status=4 id=0"},
		{"google_grpc only", static, grpcCallHeaders(googleOnly, "Unary", "x", "0"), "grpc_call status=2 id=0"},
		{"no upstreams", nil, grpcCallHeaders("grpc", "Unary", "x", "0"), "grpc_call status=4 id=0"},
		{"malformed metadata", static, grpcCallHeaders("grpc", "Unary", "x", "0", "x-grpc-md", "\x02"), "grpc_call status=2 id=0"},
		{"stream to unknown cluster", static, grpcCallHeaders("nope", "Stream", "x", "0", "x-grpc-stream", "1"), "grpc_stream status=4 id=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCalloutEnv(t, envOpts{upstreams: tc.upstreams})
			s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
			if a := s.OnRequestHeaders(tc.headers, true); a != wasm.ActionContinue {
				t.Errorf("action %d", a)
			}
			e.waitLog(t, tc.want)
			s.Close()
		})
	}
}

func TestGRPCCalloutStreaming(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, nil, g)})
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
	h := grpcCallHeaders("grpc", "Stream", "a", "0", "x-grpc-stream", "1")
	if a := s.OnRequestHeaders(h, false); a != wasm.ActionContinue {
		t.Fatalf("action %d\n%s", a, e.lines())
	}
	e.waitLog(t, "grpc_stream status=0 id=6")
	e.waitLog(t, "grpc_send status=0")
	e.waitLog(t, "grpc_initial_metadata id=6 n=")
	if line := e.waitLog(t, "grpc_initial_metadata"); !strings.HasSuffix(line, " x-md=stream") {
		t.Errorf("initial metadata line %q", line)
	}
	e.waitLog(t, "grpc_receive id=6 size=6 msg=echo:a")
	// Each request body chunk is one message; the last half-closes.
	if _, a := s.OnRequestBody([]byte("b"), false); a != wasm.ActionContinue {
		t.Fatalf("action %d", a)
	}
	e.waitLog(t, "grpc_receive id=6 size=6 msg=echo:b")
	s.OnRequestBody([]byte("c"), true)
	e.waitLog(t, "grpc_receive id=6 size=6 msg=echo:c")
	e.waitLog(t, "grpc_trailing_metadata id=6 n=1 x-tr=done")
	e.waitLog(t, "grpc_close id=6 code=0 get_status=0 ")
	// Both sides closed: the stream is forgotten.
	e.waitPending(t, 0)
	s.OnRequestTrailers(wasm.NewHeaders("close", "1"))
	e.waitLog(t, "grpc_close status=1")
	var order []string
	for _, l := range e.logs.All() {
		if strings.HasPrefix(l.Message, "grpc_") && !strings.HasPrefix(l.Message, "grpc_send") {
			order = append(order, strings.SplitN(l.Message, " ", 2)[0])
		}
	}
	want := "grpc_stream grpc_initial_metadata grpc_receive grpc_receive grpc_receive grpc_trailing_metadata grpc_close grpc_close"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("callback order\n%s\nwant\n%s", got, want)
	}
	s.Close()
}

func TestGRPCCalloutCloseWhileOpen(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, nil, g)})
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
	s.OnRequestHeaders(grpcCallHeaders("grpc", "Stream", "a", "0", "x-grpc-stream", "1"), false)
	e.waitLog(t, "grpc_receive id=6 size=6 msg=echo:a")
	// proxy_grpc_close half-closes: the server finishes and the rest arrives.
	s.OnRequestTrailers(wasm.NewHeaders("close", "1"))
	e.waitLog(t, "grpc_close status=0")
	e.waitLog(t, "grpc_trailing_metadata id=6 n=1 x-tr=done")
	e.waitLog(t, "grpc_close id=6 code=0")
	e.waitPending(t, 0)
	s.Close()
}

func TestGRPCCalloutCancel(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, nil, g)})
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
	s.OnRequestHeaders(grpcCallHeaders("grpc", "Slow", "a", "0", "x-grpc-stream", "1"), false)
	e.waitLog(t, "grpc_stream status=0 id=6")
	waitChan(t, g.slow, "the stream to reach the server")
	s.OnRequestTrailers(wasm.NewHeaders("cancel", "1"))
	e.waitLog(t, "grpc_cancel status=0")
	waitChan(t, g.canceled, "the server to see the cancellation")
	if n := e.vm.PendingCallouts(); n != 0 {
		t.Errorf("%d callouts pending", n)
	}
	// The id is gone: a second cancel does not find it.
	s.OnRequestTrailers(wasm.NewHeaders("cancel", "1"))
	e.waitLog(t, "grpc_cancel status=1")
	if e.hasLog("grpc_close id=") {
		t.Errorf("callback after cancel:\n%s", e.lines())
	}
	s.Close()
}

func TestGRPCCalloutStreamClosedCancelsIt(t *testing.T) {
	leakCheck(t)
	g := newCalloutGRPCServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, nil, g)})
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
	s.OnRequestHeaders(grpcCallHeaders("grpc", "Slow", "a", "0", "x-grpc-stream", "1"), false)
	waitChan(t, g.slow, "the stream to reach the server")
	s.Close()
	waitChan(t, g.canceled, "the server to see the cancellation")
	if n := e.vm.PendingCallouts(); n != 0 {
		t.Errorf("%d callouts pending", n)
	}
}

func TestGRPCCalloutBadIDs(t *testing.T) {
	leakCheck(t)
	web := newCalloutHTTPServer(t)
	g := newCalloutGRPCServer(t)
	e := newCalloutEnv(t, envOpts{upstreams: newStatic(t, web, g)})
	// A pending HTTP call (id 4) and a pending unary gRPC call (id 5).
	httpStream := e.plugin.NewHTTPStream(wasm.StreamOptions{})
	httpStream.OnRequestHeaders(httpCallHeaders("web", "/slow", "0"), true)
	e.waitLog(t, "http_call status=0 id=4")
	s := e.plugin.NewHTTPStream(wasm.StreamOptions{})
	s.OnRequestHeaders(grpcCallHeaders("grpc", "Slow", "x", "0"), true)
	e.waitLog(t, "grpc_call status=0 id=5")
	s.OnRequestTrailers(wasm.NewHeaders("bogus", "1"))
	// NOT_FOUND for ids that are not pending; BAD_ARGUMENT for pending
	// callouts of the wrong kind (a unary call to send on, an HTTP call).
	want := "bogus send_unknown=1 send_last=2 cancel_http=2 close_unknown=1 close_http=2 cancel_unknown=1"
	if line := e.waitLog(t, "bogus"); line != want {
		t.Errorf("line\n%q\nwant\n%q", line, want)
	}
	if n := e.vm.PendingCallouts(); n != 2 {
		t.Errorf("%d callouts pending, want both still there", n)
	}
	s.Close()
	httpStream.Close()
	e.waitPending(t, 0)
}

// ---- the upstream argument of gRPC callouts ----

func TestParseGRPCUpstream(t *testing.T) {
	marshal := func(svc *corev3.GrpcService) []byte {
		b, err := proto.Marshal(svc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	envoy := func(cluster, authority string) *corev3.GrpcService {
		return &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: authority}}}
	}
	withMD := envoy("c", "auth.test")
	withMD.InitialMetadata = []*corev3.HeaderValue{{Key: "X-A", Value: "1"}, {Key: "x-b", RawValue: []byte("raw")}}
	withMD.Timeout = nil
	for _, tc := range []struct {
		name    string
		in      []byte
		want    wasm.GRPCUpstream
		wantErr bool
	}{
		{"plain name", []byte("grpc"), wasm.GRPCUpstream{Cluster: "grpc"}, false},
		{"name that parses as protobuf", []byte("h2"), wasm.GRPCUpstream{Cluster: "h2"}, false},
		{"envoy_grpc", marshal(envoy("ext-authz", "")), wasm.GRPCUpstream{Cluster: "ext-authz"}, false},
		{"envoy_grpc with authority and metadata", marshal(withMD), wasm.GRPCUpstream{Cluster: "c", InitialMetadata: []wasm.Field{
			{Key: ":authority", Value: "auth.test"}, {Key: "x-a", Value: "1"}, {Key: "x-b", Value: "raw"}}}, false},
		{"google_grpc only", marshal(&corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{
			GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x:1"}}}), wasm.GRPCUpstream{}, true},
		{"envoy_grpc without a cluster", marshal(envoy("", "a")), wasm.GRPCUpstream{}, true},
		{"empty", nil, wasm.GRPCUpstream{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wasm.ParseGRPCUpstream(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseGRPCUpstream(f *testing.F) {
	for _, svc := range []*corev3.GrpcService{
		{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "grpc", Authority: "a"}},
			InitialMetadata: []*corev3.HeaderValue{{Key: "k", Value: "v"}}},
		{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "dns:///x:1", StatPrefix: "s"}}},
	} {
		b, err := proto.Marshal(svc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"grpc", "h2", "", "\x0a", "\x0a\x05\x0a\x03abc", "\x0a\xff\xff\xff\xff\x0f", "\x2a\x02\x0a\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := wasm.ParseGRPCUpstream(in)
		if err != nil {
			return
		}
		if got.Cluster == "" {
			t.Fatalf("no cluster and no error for %q", in)
		}
		// Whatever the host decodes, protobuf agrees on when it names an
		// Envoy cluster.
		var svc corev3.GrpcService
		if proto.Unmarshal(in, &svc) == nil && svc.GetEnvoyGrpc().GetClusterName() != "" {
			if got.Cluster != svc.GetEnvoyGrpc().GetClusterName() {
				t.Fatalf("cluster %q, protobuf says %q", got.Cluster, svc.GetEnvoyGrpc().GetClusterName())
			}
		}
	})
}
