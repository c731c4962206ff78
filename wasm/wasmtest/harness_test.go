package wasmtest_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

const (
	myFilter = "../../examples/filters/my-filter/my-filter.wasm"
	ctlWasm  = "../testdata/harness/ctl.wasm"
	tcpWasm  = "../testdata/harness/tcp.wasm"
	noABI    = "../testdata/edge/no_abi.wasm"
)

func TestRunMyFilter(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:   myFilter,
		Plugin: wasm.PluginConfig{Name: "greeter", Configuration: []byte(`{"my_greeting":"hi there"}`)},
	})
	r := h.Run(wasmtest.Exchange{})
	if r.Failure != nil {
		t.Fatalf("failure: %v", r.Failure)
	}
	if got := r.Response.Header("x-greeting"); got != "hi there" {
		t.Fatalf("x-greeting = %q, response headers %s", got, r.Response.Headers)
	}
	if r.Status() != 200 {
		t.Fatalf("status %d", r.Status())
	}
	if a, ok := r.Action(wasmtest.PhaseResponseHeaders); !ok || a != wasm.ActionContinue {
		t.Fatalf("response headers action %v ran %v", a, ok)
	}
}

func TestRunTable(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: ctlWasm, Plugin: wasm.PluginConfig{Name: "ctl"}})
	tests := []struct {
		name       string
		x          wasmtest.Exchange
		wantStatus int
		wantReq    string // x-ctl on the request
		wantResp   string // x-ctl-resp on the response
		phases     int
	}{
		{"headers only", wasmtest.Exchange{}, 200, "ok", "ok", 2},
		{"with bodies and trailers", wasmtest.Exchange{
			RequestBody: []byte("ping"), RequestTrailers: []string{"t", "1"},
			ResponseHeaders: []string{":status", "201"}, ResponseBody: []byte("pong"), ResponseTrailers: []string{"t", "2"},
		}, 201, "ok", "ok", 6},
		{"local response stops the stream", wasmtest.Exchange{
			RequestHeaders: []string{":path", "/", "x-local", "1"}, ResponseBody: []byte("never"),
		}, 403, "", "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Run(tc.x)
			if r.Status() != tc.wantStatus {
				t.Errorf("status %d, want %d", r.Status(), tc.wantStatus)
			}
			if got := r.Request.Header("x-ctl"); got != tc.wantReq {
				t.Errorf("x-ctl %q, want %q", got, tc.wantReq)
			}
			if got := r.Response.Header("x-ctl-resp"); got != tc.wantResp {
				t.Errorf("x-ctl-resp %q, want %q", got, tc.wantResp)
			}
			if len(r.Actions) != tc.phases {
				t.Errorf("phases %v, want %d", r.Actions, tc.phases)
			}
			if tc.x.RequestBody != nil && !bytes.Equal(r.Request.Body, tc.x.RequestBody) {
				t.Errorf("request body %q", r.Request.Body)
			}
		})
	}
}

func TestHTTPStreamLocalResponseEvent(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: ctlWasm})
	s := h.HTTP()
	if a := s.RequestHeadersEnd(":path", "/", "x-local", "yes"); a != wasm.ActionPause {
		t.Fatalf("action %d", a)
	}
	lr := s.LocalResponse()
	if lr == nil || lr.StatusCode != 403 || string(lr.Body) != "denied" || lr.Details != "ctl_local" {
		t.Fatalf("local response %+v", lr)
	}
	e, ok := s.Recorder().Wait(wasmtest.EventLocalResponse, time.Second)
	if !ok || e.Local != lr {
		t.Fatalf("event %v %v; events %v", e, ok, s.Events())
	}
	s.Done()
}

// TestHTTPStreamAsyncContinue: the filter pauses the request and resumes it
// from proxy_on_tick (a root context acting on the stream through
// proxy_set_effective_context). The continue must reach the data plane
// without another callback on the stream.
func TestHTTPStreamAsyncContinue(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: ctlWasm})
	s := h.HTTP()
	if a := s.RequestHeadersEnd(":path", "/", "x-pause", "1"); a != wasm.ActionPause {
		t.Fatalf("action %d, want pause", a)
	}
	e, ok := s.Recorder().Wait(wasmtest.EventContinue, 2*time.Second)
	if !ok {
		t.Fatalf("no continue event; events %v", s.Events())
	}
	if e.Stream != wasm.StreamHTTPRequest {
		t.Fatalf("continued %d", e.Stream)
	}
	s.Done()
}

func TestHTTPStreamBodyBuffering(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: ctlWasm})
	s := h.HTTP()
	s.RequestHeaders(":path", "/upload")
	for _, chunk := range []string{"a", "bc", "def"} {
		if a := s.RequestBody([]byte(chunk), chunk == "def"); a != wasm.ActionContinue {
			t.Fatalf("action %d", a)
		}
	}
	if got := string(s.Request().Body); got != "abcdef" {
		t.Fatalf("body %q", got)
	}
	if len(s.Request().Buffered) != 0 {
		t.Fatalf("buffered %q", s.Request().Buffered)
	}
	s.Done()
	id := s.ContextID()
	want := []string{"request_headers", "request_body", "request_body", "request_body", "done", "log", "delete"}
	var got []string
	for _, e := range h.PluginLogs() {
		name, ctx, _ := strings.Cut(e.Message, " ")
		if ctx == itoa(id) {
			got = append(got, name)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("callbacks %v, want %v", got, want)
	}
}

func TestTCPStream(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: tcpWasm, Plugin: wasm.PluginConfig{Name: "tcp"}})
	c := h.TCP()
	if a := c.NewConnection(); a != wasm.ActionContinue {
		t.Fatalf("new connection: %d", a)
	}
	h.WaitLog("new_connection", time.Second)
	c.DownstreamData([]byte("hello"), false)
	if a := c.DownstreamData([]byte("pause"), false); a != wasm.ActionPause {
		t.Fatalf("pause: %d", a)
	}
	if got := string(c.Downstream().Buffered); got != "pause" {
		t.Fatalf("buffered %q", got)
	}
	// The held bytes come back with the next chunk.
	c.DownstreamData([]byte("+more"), true)
	if got := string(c.Downstream().Data); got != ">hello>pause+more" {
		t.Fatalf("downstream %q", got)
	}
	c.UpstreamData([]byte("reply"), true)
	if got := string(c.Upstream().Data); got != "reply<" {
		t.Fatalf("upstream %q", got)
	}
	c.DownstreamClose(wasm.PeerRemote)
	c.UpstreamClose(wasm.PeerLocal)
	c.Done()
	for _, want := range []string{"downstream_close 2", "upstream_close 1", "delete"} {
		h.WaitLog(want, time.Second)
	}
	if c.Closed() || c.Failure() != nil {
		t.Fatalf("closed %v failure %v", c.Closed(), c.Failure())
	}

	// The filter closes the connection itself.
	c2 := h.TCP()
	c2.NewConnection()
	c2.DownstreamData([]byte("close"), false)
	if e, ok := c2.Recorder().Wait(wasmtest.EventClose, time.Second); !ok || e.Stream != wasm.StreamDownstream {
		t.Fatalf("close event %v %v", e, ok)
	}
	c2.Done()

	// A trap closes both directions (fail closed) and counts.
	c3 := h.TCP()
	c3.NewConnection()
	c3.DownstreamData([]byte("trap"), false)
	if c3.Failure() == nil || c3.Recorder().Count(wasmtest.EventClose) != 2 {
		t.Fatalf("failure %v events %v", c3.Failure(), c3.Events())
	}
	if h.Failure(wasm.FailureTrap) != 1 {
		t.Fatalf("trap count %d", h.Failure(wasm.FailureTrap))
	}
	c3.Done()
	h.MustLiveInstances(1, 5*time.Second)
}

func TestStartFailureKeepsLogs(t *testing.T) {
	h, err := wasmtest.Start(t, wasmtest.Options{Path: noABI})
	if err == nil {
		t.Fatal("no_abi loaded")
	}
	if h.VM() != nil || h.Plugin() != nil || h.Runtime() == nil {
		t.Fatalf("vm %v plugin %v", h.VM(), h.Plugin())
	}
	// A stream on a harness without a plugin fails without panicking.
	s := h.HTTP()
	if a := s.RequestHeadersEnd(":path", "/"); a != wasm.ActionPause || s.Failure() == nil {
		t.Fatalf("action %d failure %v", a, s.Failure())
	}
}

func TestLogsFilters(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:     ctlWasm,
		Plugin:   wasm.PluginConfig{Name: "first"},
		LogLevel: zapcore.DebugLevel,
	})
	if _, err := h.NewPlugin(wasm.PluginConfig{Name: "second", Configuration: []byte("12345")}); err != nil {
		t.Fatal(err)
	}
	h.WaitLog("configure", time.Second)
	first := h.Logs().Plugin("first").Containing("configure")
	second := h.Logs().Plugin("second").Containing("configure")
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("first %v second %v", first, second)
	}
	if !strings.HasSuffix(second[0].Message, " 5") || second[0].Level != zapcore.InfoLevel {
		t.Fatalf("second configure line %q", second[0].Message)
	}
	if len(h.PluginLogs().Containing("configure")) != 1 {
		t.Fatalf("plugin logs %v", h.PluginLogs())
	}
	if got := h.Logs().Message("vm_start 1"); len(got) != 1 {
		t.Fatalf("vm_start lines %v", got)
	}
	if _, ok := h.FindLog("never logged", 10*time.Millisecond); ok {
		t.Fatal("found a line never logged")
	}
	h.SetLogLevel(zapcore.WarnLevel)
	h.Run(wasmtest.Exchange{})
	if n := len(h.Logs().Containing("request_headers")); n != 0 {
		t.Fatalf("info lines recorded at warn level: %d", n)
	}
}

func TestRunConcurrent(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:      myFilter,
		Instances: 2,
		Plugin:    wasm.PluginConfig{Configuration: []byte(`{"my_greeting":"x"}`)},
	})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if r := h.Run(wasmtest.Exchange{}); r.Response.Header("x-greeting") != "x" {
					errs <- r.Response.Headers.String()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error("missing greeting:", e)
	}
}

func TestRecorderWaitTimesOut(t *testing.T) {
	r := wasmtest.NewRecorder()
	start := time.Now()
	if _, ok := r.Wait(wasmtest.EventClose, 20*time.Millisecond); ok {
		t.Fatal("got an event nobody sent")
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("returned early")
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		r.ClearRouteCache()
		r.CloseStream(wasm.StreamUpstream)
	}()
	e, ok := r.Wait(wasmtest.EventClose, 5*time.Second)
	if !ok || e.Stream != wasm.StreamUpstream {
		t.Fatalf("%v %v", e, ok)
	}
	if r.Count(wasmtest.EventClearRouteCache) != 1 {
		t.Fatalf("events %v", r.Events())
	}
}

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

func TestMetricAndSharedData(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: "../testdata/hostcalls/hostcalls.wasm", Quiet: true})
	for i := 1; i <= 3; i++ {
		r := h.Run(wasmtest.Exchange{RequestHeaders: []string{":method", "GET", ":path", "/t/metrics/counter", ":authority", "x", "x-delta", "2"}})
		if r.Failure != nil || r.Status() != 200 {
			t.Fatalf("metrics request: status %d failure %v", r.Status(), r.Failure)
		}
	}
	m, ok := h.Metric("hostcalls_counter", wasm.MetricCounter)
	if !ok || m.Counter != 6 {
		t.Fatalf("counter %+v %v, want 6", m, ok)
	}

	s := wasmtest.New(t, wasmtest.Options{Path: "../testdata/shared/shared.wasm", VM: wasm.VMConfig{ID: "shared-vm"}, Quiet: true})
	if st := s.SetSharedData("counter", []byte{41, 0, 0, 0}, 0); st != wasm.StatusOK {
		t.Fatalf("set: %d", st)
	}
	if r := s.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-cas", "1"}}); r.Failure != nil {
		t.Fatal(r.Failure)
	}
	if v, _, ok := s.SharedData("counter"); !ok || !bytes.Equal(v, []byte{42, 0, 0, 0}) {
		t.Fatalf("counter %v %v, want 42", v, ok)
	}
	if _, _, ok := s.Runtime().SharedData().Get("wasmtest", "counter"); ok {
		t.Fatal("shared data leaked across vm_ids")
	}
}
