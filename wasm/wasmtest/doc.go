// Package wasmtest drives a Proxy-Wasm plugin's HTTP and TCP contexts from a
// Go test, without sockets or a data plane.
//
// A Harness owns a wasm.Runtime, a VM and a Plugin built from a module's
// bytes or path, records every log line through a zap observer, and closes
// everything when the test ends (then checks that no goroutine leaked):
//
//	h := wasmtest.New(t, wasmtest.Options{
//		Path:   "filter.wasm",
//		Plugin: wasm.PluginConfig{Configuration: []byte(`{"my_greeting":"hi"}`)},
//	})
//	s := h.HTTP()
//	s.RequestHeaders(":method", "GET", ":path", "/")
//	s.ResponseHeadersEnd(":status", "200")
//	s.Done()
//	if got := s.Response().Header("x-greeting"); got != "hi" { ... }
//
// HTTPStream and TCPStream call the plugin's callbacks in stream order and
// keep what the filter left: headers, trailers, the body bytes it let
// through and the bytes it still holds. A Recorder (the streams'
// wasm.StreamCallbacks) keeps what the filter asked of the data plane
// (continue, close, local response, clear route cache), including requests
// made later from timers or callouts; Recorder.Wait waits for one with a
// deadline. Harness.Run drives a whole request and response in one call for
// table tests.
//
// Logs returns every line logged so far (the host's and the guest's) with
// its level and fields, filterable by plugin, level and text; WaitLog waits
// for a line. Failures, Metrics, Runtime and VM give access to the rest of
// the host.
//
// Stream drivers and Run never fail the test themselves, so they can be used
// from many goroutines; New, WaitLog and the helpers named Must... do.
package wasmtest
