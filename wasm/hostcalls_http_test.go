package wasm_test

import (
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// Bodies, header maps, stream control, local responses and the log phase
// (README §4: Bodies, Header maps, Stream control and local responses,
// Lifecycle).

// hcFields renders a map as "k=v,k=v" in order.
func hcFields(h *wasm.Headers) string {
	var b []string
	for _, f := range h.Fields() {
		b = append(b, f.Key+"="+f.Value)
	}
	return strings.Join(b, ",")
}

// hcPairsSize is the serialized size of a map (4 + 8n + Σ(len k + len v + 2)),
// computed here independently of the host.
func hcPairsSize(kv ...string) string {
	n := 4
	for k := 0; k+1 < len(kv); k += 2 {
		n += 8 + len(kv[k]) + len(kv[k+1]) + 2
	}
	return strconv.Itoa(n)
}

// hcWantFields checks a map's fields.
func hcWantFields(t *testing.T, what string, h *wasm.Headers, want string) {
	t.Helper()
	if got := hcFields(h); got != want {
		t.Errorf("%s %s, want %s", what, got, want)
	}
}

func hcActions(t *testing.T, r wasmtest.Result, want ...wasm.Action) {
	t.Helper()
	var got []wasm.Action
	for _, a := range r.Actions {
		got = append(got, a.Action)
	}
	if len(got) != len(want) {
		t.Errorf("actions %v, want %v", r.Actions, want)
		return
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("actions %v, want %v", r.Actions, want)
			return
		}
	}
}

var (
	hcContinue = wasm.ActionContinue
	hcPause    = wasm.ActionPause
)

func TestHostcallsBodies(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	body := func(b string) wasmtest.Exchange { return wasmtest.Exchange{RequestBody: []byte(b)} }
	upstreamGets := func(want string) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			if string(r.Request.Body) != want {
				t.Errorf("upstream got %q, want %q", r.Request.Body, want)
			}
			if r.Request.HasHeader("content-length") {
				t.Error("content-length was not removed")
			}
			hcActions(t, r, hcContinue, hcContinue, hcContinue)
		}
	}
	cl := []string{"content-length", "11"}
	resp := func(b string) wasmtest.Exchange {
		return wasmtest.Exchange{ResponseHeaders: []string{":status", "200", "content-length", strconv.Itoa(len(b))}, ResponseBody: []byte(b)}
	}
	clientGets := func(want string, removesLength bool) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			if string(r.Response.Body) != want {
				t.Errorf("client got %q, want %q", r.Response.Body, want)
			}
			if r.Response.HasHeader("content-length") == removesLength {
				t.Errorf("content-length present %v", !removesLength)
			}
		}
	}
	hcRun(t, h, []hcCase{
		{path: "/t/body/request_get", x: body("hello world"), status: 200, body: "hello world"},
		{path: "/t/body/request_get", name: "request_get without body", status: 400, body: "request body required"},
		{path: "/t/body/request_get", name: "request_get empty body", x: body(""), status: 200, body: ""},
		{path: "/t/body/request_range", hdrs: []string{"x-start", "2", "x-max", "3"}, x: body("hello world"), status: 200, body: "llo"},
		{path: "/t/body/request_range", hdrs: []string{"x-start", "6", "x-max", "100"}, x: body("hello world"), status: 200, body: "world"},
		// start == length reads nothing; past the end is BAD_ARGUMENT.
		{path: "/t/body/request_range", hdrs: []string{"x-start", "11", "x-max", "1"}, x: body("hello world"), status: 200, body: ""},
		{path: "/t/body/request_range", hdrs: []string{"x-start", "12", "x-max", "1"}, x: body("hello world"), status: 500, body: "proxy_get_buffer_bytes status=2"},
		{path: "/t/body/request_range", hdrs: []string{"x-start", "0"}, x: body("hello world"), status: 400, body: "missing request header x-max"},
		{path: "/t/body/request_range", hdrs: []string{"x-start", "-1", "x-max", "1"}, x: body("hello world"), status: 400, body: "bad request header x-start or x-max"},
		{path: "/t/body/request_range", hdrs: []string{"x-start", "0", "x-max", "1"}, status: 400, body: "request body required"},
		{path: "/t/body/request_prepend", hdrs: cl, x: body("hello world"),
			logs: []hcLine{hcInfo("hostcalls: body/request_prepend: ok")}, check: upstreamGets("prepended:hello world")},
		{path: "/t/body/request_prepend", name: "request_prepend without body", status: 400, body: "request body required"},
		{path: "/t/body/request_append", hdrs: cl, x: body("hello world"),
			logs: []hcLine{hcInfo("hostcalls: body/request_append: ok")}, check: upstreamGets("hello world:appended")},
		{path: "/t/body/request_replace", hdrs: cl, x: body("hello world"),
			logs: []hcLine{hcInfo("hostcalls: body/request_replace: ok")}, check: upstreamGets("replaced")},
		{path: "/t/body/request_readback", x: body("hello world"), status: 200, body: "<hello world\n<hello world>\n<X>\nreplaced"},
		{path: "/t/body/request_readback", name: "request_readback one byte", x: body("a"), status: 200, body: "<a\n<a>\n<X>\nreplaced"},
		{path: "/t/body/request_readback", name: "request_readback without body", status: 400, body: "request body required"},

		{path: "/t/body/response_get", x: resp("upstream body"),
			logs: []hcLine{hcInfo("hostcalls: body/response_get: upstream body")}, check: clientGets("upstream body", false)},
		{path: "/t/body/response_prepend", x: resp("upstream body"),
			logs: []hcLine{hcInfo("hostcalls: body/response_prepend: ok")}, check: clientGets("prepended:upstream body", true)},
		{path: "/t/body/response_append", x: resp("upstream body"),
			logs: []hcLine{hcInfo("hostcalls: body/response_append: ok")}, check: clientGets("upstream body:appended", true)},
		{path: "/t/body/response_replace", x: resp("upstream body"),
			logs: []hcLine{hcInfo("hostcalls: body/response_replace: ok")}, check: clientGets("replaced", true)},
	})

	// The module pauses until end of stream; the host hands it the whole
	// buffered body then (body_size and the buffer are the whole body).
	t.Run("request body in chunks", func(t *testing.T) {
		s := h.HTTP()
		if a := s.RequestHeaders(hcRequest("/t/body/request_get")...); a != hcContinue {
			t.Fatalf("request headers %v", a)
		}
		if a := s.RequestBody([]byte("hello "), false); a != hcPause {
			t.Fatalf("first chunk %v, want PAUSE", a)
		}
		s.RequestBody([]byte("world"), true)
		s.Done()
		hcCheckLocal(t, hcCase{status: 200, body: "hello world"}, s.LocalResponse())
	})
	t.Run("response body in chunks", func(t *testing.T) {
		before := len(h.Logs())
		s := h.HTTP()
		s.RequestHeadersEnd(hcRequest("/t/body/response_append")...)
		s.ResponseHeaders(":status", "200")
		if a := s.ResponseBody([]byte("up"), false); a != hcPause {
			t.Fatalf("first chunk %v, want PAUSE", a)
		}
		if a := s.ResponseBody([]byte("stream"), true); a != hcContinue {
			t.Fatalf("last chunk %v, want CONTINUE", a)
		}
		s.Done()
		if got := string(s.Response().Body); got != "upstream:appended" {
			t.Fatalf("client got %q", got)
		}
		hcCheckLogs(t, hcCase{logs: []hcLine{hcInfo("hostcalls: body/response_append: ok")}}, h.Logs()[before:])
	})
}

func TestHostcallsHeaderMaps(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	var cases []hcCase

	// request_headers: the module acts in proxy_on_request_headers and
	// answers with a local response; mutations reach the upstream request.
	reqMap := func(t *testing.T, r wasmtest.Result, want string) {
		t.Helper()
		hcWantFields(t, "upstream request headers", r.Request.Headers, want)
	}
	base := func(path string, extra ...string) string {
		return hcFields(wasm.NewHeaders(hcRequest(path, extra...)...))
	}
	cases = append(cases,
		hcCase{path: "/t/request_headers/get", hdrs: []string{"x-name", "x-foo", "x-foo", "bar"}, status: 200, body: "bar"},
		// Keys are looked up case-insensitively (lower-case keys, as Envoy).
		hcCase{path: "/t/request_headers/get", hdrs: []string{"x-name", "X-Foo", "x-foo", "bar"}, status: 200, body: "bar"},
		hcCase{path: "/t/request_headers/get", hdrs: []string{"x-name", "x-foo", "x-foo", "a", "x-foo", "b"}, status: 200, body: "a"},
		hcCase{path: "/t/request_headers/get", hdrs: []string{"x-name", ":authority"}, status: 200, body: "example.com"},
		hcCase{path: "/t/request_headers/get", hdrs: []string{"x-name", "x-absent"}, status: 500, body: "proxy_get_header_map_value status=1"},
		hcCase{path: "/t/request_headers/get", status: 400, body: "missing request header x-name"},
		hcCase{path: "/t/request_headers/add", hdrs: []string{"x-name", "x-foo", "x-value", "baz", "x-foo", "bar"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/add: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				reqMap(t, r, base("/t/request_headers/add", "x-name", "x-foo", "x-value", "baz", "x-foo", "bar")+",x-foo=baz")
			}},
		hcCase{path: "/t/request_headers/add", hdrs: []string{"x-name", "x-foo"}, status: 400, body: "missing request header x-value"},
		hcCase{path: "/t/request_headers/replace", hdrs: []string{"x-name", "x-foo", "x-value", "new", "x-foo", "a", "x-foo", "b"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/replace: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				// The first value is replaced in place, the others removed.
				reqMap(t, r, base("/t/request_headers/replace", "x-name", "x-foo", "x-value", "new", "x-foo", "new"))
			}},
		hcCase{path: "/t/request_headers/replace", hdrs: []string{"x-name", ":path", "x-value", "/new"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/replace: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				if got := r.Request.Header(":path"); got != "/new" {
					t.Errorf("upstream :path %q", got)
				}
			}},
		// Replacing an absent header adds it (Envoy's setCopy).
		hcCase{path: "/t/request_headers/replace", hdrs: []string{"x-name", "x-new", "x-value", "v"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/replace: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				reqMap(t, r, base("/t/request_headers/replace", "x-name", "x-new", "x-value", "v")+",x-new=v")
			}},
		hcCase{path: "/t/request_headers/remove", hdrs: []string{"x-name", "x-foo", "x-foo", "a", "x-bar", "1", "x-foo", "b"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/remove: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				reqMap(t, r, base("/t/request_headers/remove", "x-name", "x-foo", "x-bar", "1"))
			}},
		// Removing an absent header is not an error.
		hcCase{path: "/t/request_headers/remove", hdrs: []string{"x-name", "x-absent"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/remove: ok")}},
		hcCase{path: "/t/request_headers/pairs", hdrs: []string{"x-a", "1", "x-b", ""}, status: 200,
			body: ":method=GET\n:path=/t/request_headers/pairs\n:authority=example.com\n:scheme=http\nx-a=1\nx-b="},
		hcCase{path: "/t/request_headers/set_pairs", hdrs: []string{"x-name", "x-foo", "x-value", "new", "x-foo", "a", "x-bar", "1", "x-foo", "b"},
			logs: []hcLine{hcInfo("hostcalls: request_headers/set_pairs: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				reqMap(t, r, base("/t/request_headers/set_pairs", "x-name", "x-foo", "x-value", "new", "x-bar", "1")+",x-foo=new")
			}},
		hcCase{path: "/t/request_headers/set_pairs", hdrs: []string{"x-name", "x-foo"}, status: 400, body: "missing request header x-value"},
		hcCase{path: "/t/request_headers/size", hdrs: []string{"x-a", "1"}, status: 200,
			body: hcPairsSize(hcRequest("/t/request_headers/size", "x-a", "1")...)},
		hcCase{path: "/t/request_headers/pseudo", status: 200,
			body: ":method=GET\n:path=/t/request_headers/pseudo\n:authority=example.com\n:scheme=http"},
		hcCase{path: "/t/maps/bad_id", status: 200, body: "ok"},
	)

	// request_trailers: the module acts in proxy_on_request_trailers and
	// still answers with a local response.
	tr := wasmtest.Exchange{RequestBody: []byte("b"), RequestTrailers: []string{"x-t", "1", "x-t2", "2"}}
	reqTr := func(want string) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			hcWantFields(t, "upstream request trailers", r.Request.Trailers, want)
			hcActions(t, r, hcContinue, hcContinue, hcContinue, hcContinue)
		}
	}
	cases = append(cases,
		hcCase{path: "/t/request_trailers/get", hdrs: []string{"x-name", "x-t2"}, x: tr, status: 200, body: "2"},
		hcCase{path: "/t/request_trailers/get", hdrs: []string{"x-name", "x-t3"}, x: tr, status: 500, body: "proxy_get_header_map_value status=1"},
		// Inputs are read in proxy_on_request_headers, even for a case that
		// acts later.
		hcCase{path: "/t/request_trailers/get", x: tr, status: 400, body: "missing request header x-name"},
		hcCase{path: "/t/request_trailers/add", hdrs: []string{"x-name", "x-t", "x-value", "3"}, x: tr,
			logs: []hcLine{hcInfo("hostcalls: request_trailers/add: ok")}, check: reqTr("x-t=1,x-t2=2,x-t=3")},
		hcCase{path: "/t/request_trailers/replace", hdrs: []string{"x-name", "x-t", "x-value", "9"}, x: tr,
			logs: []hcLine{hcInfo("hostcalls: request_trailers/replace: ok")}, check: reqTr("x-t=9,x-t2=2")},
		hcCase{path: "/t/request_trailers/remove", hdrs: []string{"x-name", "x-t"}, x: tr,
			logs: []hcLine{hcInfo("hostcalls: request_trailers/remove: ok")}, check: reqTr("x-t2=2")},
		hcCase{path: "/t/request_trailers/pairs", x: tr, status: 200, body: "x-t=1\nx-t2=2"},
		hcCase{path: "/t/request_trailers/set_pairs", hdrs: []string{"x-name", "x-t", "x-value", "9"}, x: tr,
			logs: []hcLine{hcInfo("hostcalls: request_trailers/set_pairs: ok")}, check: reqTr("x-t2=2,x-t=9")},
		hcCase{path: "/t/request_trailers/size", x: tr, status: 200, body: hcPairsSize("x-t", "1", "x-t2", "2")},
	)

	// response_headers: the module acts in proxy_on_response_headers and
	// logs its results; mutations reach the client.
	rh := wasmtest.Exchange{ResponseHeaders: []string{":status", "200", "x-r", "1", "x-r2", "2"}}
	respMap := func(want string) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			hcWantFields(t, "response headers", r.Response.Headers, want)
			hcActions(t, r, hcContinue, hcContinue)
		}
	}
	cases = append(cases,
		hcCase{path: "/t/response_headers/get", hdrs: []string{"x-name", ":status"}, x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/get: 200")}},
		hcCase{path: "/t/response_headers/get", hdrs: []string{"x-name", "x-r2"}, x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/get: 2")}},
		hcCase{path: "/t/response_headers/get", hdrs: []string{"x-name", "x-absent"}, x: rh,
			logs: []hcLine{hcError("hostcalls: response_headers/get: proxy_get_header_map_value status=1")}},
		hcCase{path: "/t/response_headers/get", x: rh, status: 400, body: "missing request header x-name"},
		hcCase{path: "/t/response_headers/add", hdrs: []string{"x-name", "x-added", "x-value", "v"}, x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/add: ok")}, check: respMap(":status=200,x-r=1,x-r2=2,x-added=v")},
		hcCase{path: "/t/response_headers/replace", hdrs: []string{"x-name", ":status", "x-value", "201"}, x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/replace: ok")},
			check: func(t *testing.T, r wasmtest.Result) {
				if r.Status() != 201 {
					t.Errorf("client status %d, want 201", r.Status())
				}
				respMap(":status=201,x-r=1,x-r2=2")(t, r)
			}},
		hcCase{path: "/t/response_headers/remove", hdrs: []string{"x-name", "x-r"}, x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/remove: ok")}, check: respMap(":status=200,x-r2=2")},
		hcCase{path: "/t/response_headers/pairs", x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/pairs: :status=200\nx-r=1\nx-r2=2")}},
		hcCase{path: "/t/response_headers/set_pairs", hdrs: []string{"x-name", "x-r", "x-value", "9"}, x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/set_pairs: ok")}, check: respMap(":status=200,x-r2=2,x-r=9")},
		hcCase{path: "/t/response_headers/size", x: rh,
			logs: []hcLine{hcInfo("hostcalls: response_headers/size: " + hcPairsSize(":status", "200", "x-r", "1", "x-r2", "2"))}},
	)

	// response_trailers: the module acts in proxy_on_response_trailers.
	rt := wasmtest.Exchange{ResponseBody: []byte("b"), ResponseTrailers: []string{"x-st", "1", "grpc-status", "0"}}
	respTr := func(want string) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			hcWantFields(t, "response trailers", r.Response.Trailers, want)
			hcActions(t, r, hcContinue, hcContinue, hcContinue, hcContinue)
		}
	}
	cases = append(cases,
		hcCase{path: "/t/response_trailers/get", hdrs: []string{"x-name", "grpc-status"}, x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/get: 0")}},
		hcCase{path: "/t/response_trailers/get", hdrs: []string{"x-name", "x-absent"}, x: rt,
			logs: []hcLine{hcError("hostcalls: response_trailers/get: proxy_get_header_map_value status=1")}},
		hcCase{path: "/t/response_trailers/add", hdrs: []string{"x-name", "x-st2", "x-value", "2"}, x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/add: ok")}, check: respTr("x-st=1,grpc-status=0,x-st2=2")},
		hcCase{path: "/t/response_trailers/replace", hdrs: []string{"x-name", "grpc-status", "x-value", "13"}, x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/replace: ok")}, check: respTr("x-st=1,grpc-status=13")},
		hcCase{path: "/t/response_trailers/remove", hdrs: []string{"x-name", "x-st"}, x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/remove: ok")}, check: respTr("grpc-status=0")},
		hcCase{path: "/t/response_trailers/pairs", x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/pairs: x-st=1\ngrpc-status=0")}},
		hcCase{path: "/t/response_trailers/set_pairs", hdrs: []string{"x-name", "x-st", "x-value", "v"}, x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/set_pairs: ok")}, check: respTr("grpc-status=0,x-st=v")},
		hcCase{path: "/t/response_trailers/size", x: rt,
			logs: []hcLine{hcInfo("hostcalls: response_trailers/size: " + hcPairsSize("x-st", "1", "grpc-status", "0"))}},
	)
	hcRun(t, h, cases)

	// Without :scheme the pseudo-header case names the one it missed.
	t.Run("request_headers/pseudo without :scheme", func(t *testing.T) {
		r := h.Run(wasmtest.Exchange{RequestHeaders: []string{":method", "GET", ":path", "/t/request_headers/pseudo", ":authority", "a"}})
		hcCheckLocal(t, hcCase{status: 500, body: "proxy_get_header_map_value(:scheme) status=1"}, r.Local)
	})
}

func TestHostcallsStreamControl(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	hcRun(t, h, []hcCase{
		{path: "/t/stream/continue_on_tick", status: 400,
			body: "stream/continue_on_tick requires a tick period (tick= in the plugin configuration)"},
		{path: "/t/stream/continue_response_on_tick", status: 400,
			body: "stream/continue_response_on_tick requires a tick period (tick= in the plugin configuration)"},
		{path: "/t/stream/bad_type", status: 200, body: "ok"},
		// proxy_close_stream is passed on to the data plane (CloseStream,
		// which resets that direction); this host does not answer the
		// stream itself.
		{path: "/t/stream/close_request",
			logs: []hcLine{hcInfo("hostcalls: stream/close_request: proxy_close_stream status=0")},
			check: func(t *testing.T, r wasmtest.Result) {
				if a, _ := r.Action(wasmtest.PhaseRequestHeaders); a != hcPause {
					t.Errorf("request headers %v, want PAUSE", a)
				}
				hcEvents(t, r.Events, "close(0)")
			}},
		{path: "/t/stream/close_response",
			logs: []hcLine{hcInfo("hostcalls: stream/close_response: proxy_close_stream status=0")},
			check: func(t *testing.T, r wasmtest.Result) {
				hcActions(t, r, hcContinue, hcPause)
				hcEvents(t, r.Events, "close(1)")
			}},
	})

	// With a tick period the module resumes a paused direction from the
	// root's next tick (proxy_set_effective_context, proxy_continue_stream).
	ht := hcHarness(t, wasmtest.Options{Plugin: wasm.PluginConfig{Configuration: []byte("tick=2")}})
	t.Run("continue_on_tick", func(t *testing.T) {
		s := ht.HTTP()
		if a := s.RequestHeadersEnd(hcRequest("/t/stream/continue_on_tick")...); a != hcPause {
			t.Fatalf("request headers %v, want PAUSE", a)
		}
		if _, ok := s.Recorder().Wait(wasmtest.EventContinue, hcWait); !ok {
			t.Fatal("no continue")
		}
		hcWaitLine(t, ht, hcInfo("hostcalls: stream/continue_on_tick: proxy_continue_stream status=0"))
		if a := s.ResponseHeadersEnd(":status", "200"); a != hcContinue {
			t.Fatalf("response headers %v", a)
		}
		s.Done()
		hcEvents(t, s.Events(), "continue(0)")
	})
	t.Run("continue_response_on_tick", func(t *testing.T) {
		s := ht.HTTP()
		if a := s.RequestHeadersEnd(hcRequest("/t/stream/continue_response_on_tick")...); a != hcContinue {
			t.Fatalf("request headers %v, want CONTINUE", a)
		}
		if a := s.ResponseHeadersEnd(":status", "200"); a != hcPause {
			t.Fatalf("response headers %v, want PAUSE", a)
		}
		if _, ok := s.Recorder().Wait(wasmtest.EventContinue, hcWait); !ok {
			t.Fatal("no continue")
		}
		hcWaitLine(t, ht, hcInfo("hostcalls: stream/continue_response_on_tick: proxy_continue_stream status=0"))
		s.Done()
		hcEvents(t, s.Events(), "continue(1)")
	})
}

// hcEvents checks the events a stream's filter asked of the data plane.
func hcEvents(t *testing.T, evs []wasmtest.Event, want ...string) {
	t.Helper()
	var got []string
	for _, e := range evs {
		got = append(got, e.String())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestHostcallsLocalResponses(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	headers := func(want string) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			var got []string
			for _, f := range r.Local.Headers {
				got = append(got, f.Key+"="+f.Value)
			}
			if strings.Join(got, ",") != want {
				t.Errorf("local response headers %q, want %q", got, want)
			}
			hcEvents(t, r.Events, "local_response("+strconv.Itoa(r.Status())+")")
		}
	}
	hcRun(t, h, []hcCase{
		{path: "/t/local/headers", status: 201, body: "created locally", check: headers("x-local=yes,x-multi=a,x-multi=b")},
		// The data plane sends grpc_status as a grpc-status header of a
		// trailers-only response.
		{path: "/t/local/grpc_status", status: 200, body: "", grpc: 14, check: headers("content-type=application/grpc")},
		{path: "/t/local/empty", status: 204, body: "", check: headers("")},
		{path: "/t/local/empty_map_byte", status: 200, body: "empty map", check: headers("")},
		{path: "/t/local/from_response_headers", x: wasmtest.Exchange{ResponseHeaders: []string{":status", "200", "x-up", "1"}, ResponseBody: []byte("upstream")},
			status: 203, body: "replaced in response headers",
			check: func(t *testing.T, r wasmtest.Result) {
				hcActions(t, r, hcContinue, hcPause)
				headers("")(t, r)
			}},
	})
}

func TestHostcallsLifecycle(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	hcRun(t, h, []hcCase{
		{path: "/t/lifecycle/on_log", x: wasmtest.Exchange{ResponseHeaders: []string{":status", "200"}, ResponseBody: []byte("up")},
			logs: []hcLine{hcInfo("hostcalls: lifecycle/on_log: :path=/t/lifecycle/on_log :status=200")},
			check: func(t *testing.T, r wasmtest.Result) {
				hcActions(t, r, hcContinue, hcContinue, hcContinue)
				if string(r.Response.Body) != "up" {
					t.Errorf("response %q", r.Response.Body)
				}
			}},
		{path: "/t/lifecycle/on_log", name: "on_log after 503", x: wasmtest.Exchange{ResponseHeaders: []string{":status", "503"}},
			logs: []hcLine{hcInfo("hostcalls: lifecycle/on_log: :path=/t/lifecycle/on_log :status=503")}},
	})

	// An explicit access-log phase runs proxy_on_log once, before the end.
	t.Run("explicit log phase", func(t *testing.T) {
		s := h.HTTP()
		s.RequestHeadersEnd(hcRequest("/t/lifecycle/on_log?q=1")...)
		s.ResponseHeadersEnd(":status", "204")
		s.Log()
		s.Done()
		if n := hcCount(h, "hostcalls: lifecycle/on_log: :path=/t/lifecycle/on_log?q=1 :status=204"); n != 1 {
			t.Fatalf("%d on_log lines, want 1", n)
		}
	})
	// Without a response the module's header read fails and it says so.
	t.Run("no response", func(t *testing.T) {
		s := h.HTTP()
		s.RequestHeadersEnd(hcRequest("/t/lifecycle/on_log")...)
		s.Done()
		if h.Logs().Message("hostcalls: lifecycle/on_log: proxy_get_header_map_value status=1").Level(zapcore.ErrorLevel) == nil {
			t.Fatal("no ERROR line for the missing response headers")
		}
	})
}
