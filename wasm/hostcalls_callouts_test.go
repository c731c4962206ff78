package wasm_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/upstream"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// HTTP and gRPC callouts (README §4: HTTP callouts, gRPC callouts) through
// upstream.Static to real servers on 127.0.0.1.

// hcHTTPServer answers callouts:
//
//	/echo   200, headers x-b: 2 and x-a: 1, body "<method>:<host>:<request body>", trailer x-t: 2
//	/plain  404, body "nope", no x- headers, no trailers
//	/empty  204, no body
//	/slow   waits for the client to go away
func hcHTTPServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Trailer", "X-T")
			w.Header().Set("X-B", "2")
			w.Header().Set("X-A", "1")
			fmt.Fprintf(w, "%s:%s:%s", r.Method, r.Host, body)
			w.Header().Set("X-T", "2")
		case "/plain":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "nope")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(hcWait):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// hcRaw passes gRPC message bytes through.
type hcRaw struct{}

func (hcRaw) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return *(v.(*[]byte)), nil
}

func (hcRaw) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (hcRaw) Name() string { return "proto" }

// hcGRPCServer is a grpc-go server with one generic handler:
//
//	/pkg.Echo/Say     header x-a: 1, reply "reply:<msg>:<x-hostcalls>", trailer x-t: 2
//	/pkg.Echo/Stream  header x-a: 1, "r:<msg>:<x-hostcalls>" per message, trailer
//	                  x-t: 2 and OK once the client half-closes
//	/pkg.Echo/Fail    UNAVAILABLE "down"
//	/pkg.Echo/Slow    waits for the client to go away
//	other             UNIMPLEMENTED "no such method"
func hcGRPCServer(t *testing.T) string {
	t.Helper()
	handle := func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		md, _ := metadata.FromIncomingContext(ss.Context())
		tag := strings.Join(md.Get("x-hostcalls"), ",")
		switch method {
		case "/pkg.Echo/Say":
			var msg []byte
			if err := ss.RecvMsg(&msg); err != nil {
				return err
			}
			_ = ss.SendHeader(metadata.Pairs("x-a", "1"))
			ss.SetTrailer(metadata.Pairs("x-t", "2"))
			return ss.SendMsg([]byte("reply:" + string(msg) + ":" + tag))
		case "/pkg.Echo/Stream":
			_ = ss.SendHeader(metadata.Pairs("x-a", "1"))
			for {
				var msg []byte
				err := ss.RecvMsg(&msg)
				if errors.Is(err, io.EOF) {
					ss.SetTrailer(metadata.Pairs("x-t", "2"))
					return nil
				}
				if err != nil {
					return err
				}
				if err := ss.SendMsg([]byte("r:" + string(msg) + ":" + tag)); err != nil {
					return err
				}
			}
		case "/pkg.Echo/Fail":
			return status.Error(codes.Unavailable, "down")
		case "/pkg.Echo/Slow":
			<-ss.Context().Done()
			return ss.Context().Err()
		}
		return status.Error(codes.Unimplemented, "no such method")
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(hcRaw{}), grpc.UnknownServiceHandler(handle))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// hcCalloutHarness serves the clusters "web" (HTTP/1.1), "grpc" (h2c) and
// "refused" (nothing listening), and checks for leaked goroutines once the
// harness, the upstreams and the servers are closed.
func hcCalloutHarness(t *testing.T) *wasmtest.Harness {
	t.Helper()
	leak := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leak) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	ups, err := upstream.NewStatic(upstream.Config{
		Clusters: map[string]upstream.Cluster{
			"web":     {Address: hcHTTPServer(t)},
			"grpc":    {Address: hcGRPCServer(t), Protocol: upstream.H2C},
			"refused": {Address: refused},
		},
		Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ups.Close(); err != nil {
			t.Error(err)
		}
	})
	return hcHarness(t, wasmtest.Options{Upstreams: ups, SkipLeakCheck: true})
}

// hcRunCallouts runs cases whose answer may come later, from a callout:
// after proxy_on_request_headers it waits for a local response or a
// continue, then plays the upstream response (when the request went on)
// and ends the stream.
func hcRunCallouts(t *testing.T, h *wasmtest.Harness, cases []hcCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.label(), func(t *testing.T) {
			before := len(h.Logs())
			s := h.HTTP()
			a := s.RequestHeadersEnd(hcRequest(c.path, c.hdrs...)...)
			r := wasmtest.Result{Actions: []wasmtest.PhaseAction{{Phase: wasmtest.PhaseRequestHeaders, Action: a}}}
			if a == wasm.ActionPause {
				ev, ok := s.Recorder().WaitFunc(func(e wasmtest.Event) bool {
					return e.Kind == wasmtest.EventLocalResponse || e.Kind == wasmtest.EventContinue
				}, hcWait)
				if !ok {
					t.Fatalf("no local response or continue after %v", hcWait)
				}
				if ev.Kind == wasmtest.EventContinue {
					a = wasm.ActionContinue
				}
			}
			if a == wasm.ActionContinue && s.LocalResponse() == nil {
				r.Actions = append(r.Actions, wasmtest.PhaseAction{Phase: wasmtest.PhaseResponseHeaders, Action: s.ResponseHeadersEnd(":status", "200")})
			}
			s.Done()
			r.Request, r.Response = s.Request(), s.Response()
			r.Local, r.Failure, r.Events, r.Stream = s.LocalResponse(), s.Failure(), s.Events(), s
			hcCheck(t, c, r, h.Logs()[before:])
		})
	}
}

// hcNoUnknownCallbacks fails if the module ever saw a callout callback for
// an id it was not waiting for: the host must not deliver callbacks for
// cancelled callouts or finished streams.
func hcNoUnknownCallbacks(t *testing.T, h *wasmtest.Harness) {
	t.Helper()
	if l := h.Logs().Containing("for unknown call"); len(l) > 0 {
		t.Errorf("callbacks for unknown ids:\n%s", l)
	}
}

func TestHostcallsHTTPCallouts(t *testing.T) {
	h := hcCalloutHarness(t)
	call := func(hdrs ...string) []string { return append([]string{"x-cluster", "web"}, hdrs...) }
	ok := hcInfo("hostcalls: http/call: get_status=0 ")
	hcRunCallouts(t, h, []hcCase{
		// Envoy reports code 0 and an empty message for a call that got a
		// response; so does this host.
		{path: "/t/http/call", hdrs: call("x-call-path", "/echo"), status: 200,
			body: "status=200\nbody=GET:callout:\nheaders=x-a=1,x-b=2\ntrailers=x-t=2", logs: []hcLine{ok}},
		{path: "/t/http/call", hdrs: call("x-call-path", "/echo", "x-call-body", "payload"), status: 200,
			body: "status=200\nbody=POST:callout:payload\nheaders=x-a=1,x-b=2\ntrailers=x-t=2", logs: []hcLine{ok}},
		{path: "/t/http/call", hdrs: call("x-call-path", "/plain", "x-call-then", "respond"), status: 200,
			body: "status=404\nbody=nope\nheaders=\ntrailers=", logs: []hcLine{ok}},
		{path: "/t/http/call", hdrs: call("x-call-path", "/empty"), status: 200,
			body: "status=204\nbody=\nheaders=\ntrailers=", logs: []hcLine{ok}},
		// Timeout 0 means none.
		{path: "/t/http/call", hdrs: call("x-call-path", "/plain", "x-call-timeout", "0"), status: 200,
			body: "status=404\nbody=nope\nheaders=\ntrailers=", logs: []hcLine{ok}},
		{path: "/t/http/call", hdrs: call("x-call-path", "/echo", "x-call-then", "continue"),
			logs: []hcLine{ok, hcInfo("hostcalls: http/call: continued")},
			check: func(t *testing.T, r wasmtest.Result) {
				if got := r.Request.Header("x-callout-status"); got != "200" {
					t.Errorf("upstream x-callout-status %q", got)
				}
				if got := r.Request.Header("x-callout-body"); got != "GET:callout:" {
					t.Errorf("upstream x-callout-body %q", got)
				}
				hcEvents(t, r.Events, "continue(0)")
				if r.Status() != 200 {
					t.Errorf("client status %d", r.Status())
				}
			}},
		// A failed call has no headers; proxy_get_status reports
		// BROKEN_CONNECTION (11) with "reset" or "timeout", like Envoy.
		{path: "/t/http/call", hdrs: []string{"x-cluster", "refused"}, status: 502, body: "http_call failed",
			logs: []hcLine{hcInfo("hostcalls: http/call: get_status=11 reset")}},
		{path: "/t/http/call", hdrs: call("x-call-path", "/slow", "x-call-timeout", "50"), status: 502, body: "http_call failed",
			logs: []hcLine{hcInfo("hostcalls: http/call: get_status=11 timeout")}},
		{path: "/t/http/call", hdrs: []string{"x-cluster", "nope"}, status: 500, body: "proxy_http_call status=2"},
		{path: "/t/http/call", status: 400, body: "missing request header x-cluster"},
		{path: "/t/http/call", hdrs: call("x-call-then", "later"), status: 400, body: "bad request header x-call-then"},
		{path: "/t/http/call", hdrs: call("x-call-timeout", "soon"), status: 400, body: "bad request header x-call-timeout"},
		// Envoy takes the timeout as a signed int: larger values are refused.
		{path: "/t/http/call", hdrs: call("x-call-timeout", "2147483648"), status: 500, body: "proxy_http_call status=2"},
		{path: "/t/http/bad_cluster", status: 200, body: "ok"},
		{path: "/t/http/missing_headers", hdrs: []string{"x-cluster", "web"}, status: 200, body: "ok"},
		{path: "/t/http/missing_headers", status: 400, body: "missing request header x-cluster"},
	})
	hcNoUnknownCallbacks(t, h)
	if n := h.VM().PendingCallouts(); n != 0 {
		t.Errorf("%d callouts pending after every call answered", n)
	}
}

func TestHostcallsGRPCCallouts(t *testing.T) {
	h := hcCalloutHarness(t)
	call := func(method string, hdrs ...string) []string {
		return append([]string{"x-cluster", "grpc", "x-grpc-service", "pkg.Echo", "x-grpc-method", method}, hdrs...)
	}
	hcRunCallouts(t, h, []hcCase{
		// Unary success, Envoy style: the reply through proxy_on_grpc_receive
		// only, no metadata callbacks and no proxy_on_grpc_close.
		{path: "/t/grpc/call", hdrs: call("Say", "x-grpc-message", "hi"), status: 200, body: "message=reply:hi:call",
			logs: []hcLine{hcInfo("hostcalls: grpc/call: message=reply:hi:call")}, absent: []string{"metadata=", "close="}},
		{path: "/t/grpc/call", hdrs: call("Say", "x-call-timeout", "0"), status: 200, body: "message=reply::call"},
		{path: "/t/grpc/call", hdrs: call("Fail"), status: 200, body: "close=14\nget_status=14 down",
			logs: []hcLine{hcInfo("hostcalls: grpc/call: close=14"), hcInfo("hostcalls: grpc/call: get_status=14 down")}},
		{path: "/t/grpc/call", hdrs: call("Nope"), status: 200, body: "close=12\nget_status=12 no such method"},
		// DEADLINE_EXCEEDED: the host's timer says "timeout"; grpc-go, whose
		// call has the same deadline, may report first with its own text.
		{path: "/t/grpc/call", hdrs: call("Slow", "x-call-timeout", "50"), status: 200,
			bodyRE: "close=4\nget_status=4 .+"},
		{path: "/t/grpc/call", hdrs: []string{"x-cluster", "nope", "x-grpc-service", "pkg.Echo", "x-grpc-method", "Say"},
			status: 500, body: "proxy_grpc_call status=4"},
		{path: "/t/grpc/call", hdrs: call("Say", "x-call-timeout", "-1"), status: 400, body: "bad request header x-call-timeout"},
		{path: "/t/grpc/call", hdrs: []string{"x-grpc-service", "pkg.Echo", "x-grpc-method", "Say"}, status: 400, body: "missing request header x-cluster"},
		{path: "/t/grpc/call", hdrs: []string{"x-cluster", "grpc", "x-grpc-method", "Say"}, status: 400, body: "missing request header x-grpc-service"},
		{path: "/t/grpc/call", hdrs: []string{"x-cluster", "grpc", "x-grpc-service", "pkg.Echo"}, status: 400, body: "missing request header x-grpc-method"},

		// A stream: metadata, each message, the half-close the module sends
		// after the first message, trailers, close.
		{path: "/t/grpc/stream", hdrs: call("Stream", "x-grpc-message", "hi"), status: 200,
			body: "initial_metadata=x-a=1\nmessage=r:hi:stream\nproxy_grpc_close status=0\ntrailing_metadata=x-t=2\nclose=0\nget_status=0 ",
			logs: []hcLine{
				hcInfo("hostcalls: grpc/stream: initial_metadata=x-a=1"),
				hcInfo("hostcalls: grpc/stream: message=r:hi:stream"),
				hcInfo("hostcalls: grpc/stream: proxy_grpc_close status=0"),
				hcInfo("hostcalls: grpc/stream: trailing_metadata=x-t=2"),
				hcInfo("hostcalls: grpc/stream: close=0"),
				hcInfo("hostcalls: grpc/stream: get_status=0 "),
			}},
		// end_stream on the first send: no proxy_grpc_close.
		{path: "/t/grpc/stream", hdrs: call("Stream", "x-grpc-message", "hi", "x-grpc-end", "1"), status: 200,
			body: "initial_metadata=x-a=1\nmessage=r:hi:stream\ntrailing_metadata=x-t=2\nclose=0\nget_status=0 "},
		// A trailers-only failure: its trailers (grpc-status, content-type;
		// no x- keys) arrive as trailing metadata before the close.
		{path: "/t/grpc/stream", hdrs: call("Fail", "x-grpc-end", "1"), status: 200, body: "trailing_metadata=\nclose=14\nget_status=14 down"},
		{path: "/t/grpc/stream", hdrs: []string{"x-cluster", "nope", "x-grpc-service", "pkg.Echo", "x-grpc-method", "Stream"},
			status: 500, body: "proxy_grpc_stream status=4"},

		{path: "/t/grpc/cancel", hdrs: call("Say", "x-grpc-message", "hi"), status: 200, body: "ok"},
		{path: "/t/grpc/cancel", hdrs: call("Slow"), status: 200, body: "ok"},
		{path: "/t/grpc/bad_cluster", status: 200, body: "ok"},
		{path: "/t/grpc/unknown_id", status: 200, body: "ok"},
	})
	// Cancelled calls are gone at once; a reply already on its way is
	// dropped (only absence can be checked: give it time to arrive).
	if n := h.VM().PendingCallouts(); n != 0 {
		t.Errorf("%d callouts pending after every call answered or cancelled", n)
	}
	time.Sleep(50 * time.Millisecond)
	hcNoUnknownCallbacks(t, h)
}
