package wasmtest

import "github.com/wasmesh/wasmesh/wasm"

// StreamOption configures a stream the harness creates.
type StreamOption func(*streamConfig)

type streamConfig struct {
	props wasm.Properties
	next  wasm.StreamCallbacks
}

// WithProperties answers the stream's property paths.
func WithProperties(p wasm.Properties) StreamOption {
	return func(c *streamConfig) { c.props = p }
}

// WithCallbacks passes every callback to cb as well as to the recorder.
func WithCallbacks(cb wasm.StreamCallbacks) StreamOption {
	return func(c *streamConfig) { c.next = cb }
}

func buildStreamConfig(opts []StreamOption) (streamConfig, *Recorder) {
	var c streamConfig
	for _, o := range opts {
		o(&c)
	}
	return c, &Recorder{Next: c.next}
}

// Message is one direction of an HTTP stream as the filter left it.
type Message struct {
	Headers  *wasm.Headers
	Trailers *wasm.Headers
	// Body is what the filter let through (returned CONTINUE for).
	Body []byte
	// Buffered is what the filter holds: the body it paused on, which the
	// next body callback receives again with the new bytes appended.
	Buffered []byte
}

// Header returns the first value of a header ("" when absent).
func (m Message) Header(key string) string {
	v, _ := m.Headers.Get(key)
	return v
}

// HasHeader reports whether a header is present.
func (m Message) HasHeader(key string) bool {
	_, ok := m.Headers.Get(key)
	return ok
}

// flow keeps one direction's data the way a proxy buffers it for a filter:
// paused data is handed to the next data callback again, with the new bytes
// appended.
type flow struct {
	forwarded, pending []byte
}

func (f *flow) feed(chunk []byte, eos bool, call func([]byte, bool) ([]byte, wasm.Action)) wasm.Action {
	buf := make([]byte, 0, len(f.pending)+len(chunk))
	buf = append(append(buf, f.pending...), chunk...)
	out, a := call(buf, eos)
	if a == wasm.ActionContinue {
		f.forwarded = append(f.forwarded, out...)
		f.pending = nil
	} else {
		f.pending = out
	}
	return a
}

// HTTPStream drives one HTTP stream through the harness's plugin. Use it
// from one goroutine at a time, like the data plane does.
type HTTPStream struct {
	s   *wasm.HTTPStream
	rec *Recorder
	err error

	req, resp   Message
	reqF, respF flow
	last        wasm.Action
	closed      bool
}

// HTTP creates an HTTP stream (proxy_on_context_create). If no instance can
// take it, the plugin's failure policy applies at the first callback.
func (h *Harness) HTTP(opts ...StreamOption) *HTTPStream {
	p, err := h.plugin()
	if err != nil {
		return &HTTPStream{rec: &Recorder{}, err: err}
	}
	return NewHTTPStream(p, opts...)
}

// NewHTTPStream drives an HTTP stream through any plugin.
func NewHTTPStream(p *wasm.Plugin, opts ...StreamOption) *HTTPStream {
	c, rec := buildStreamConfig(opts)
	s := p.NewHTTPStream(wasm.StreamOptions{Callbacks: rec, Properties: c.props})
	return &HTTPStream{s: s, rec: rec}
}

func (s *HTTPStream) do(f func() wasm.Action) wasm.Action {
	if s.s == nil {
		s.last = wasm.ActionPause
		return s.last
	}
	s.last = f()
	return s.last
}

// RequestHeaders runs proxy_on_request_headers with the given alternating
// keys and values, end_of_stream false (a body follows).
func (s *HTTPStream) RequestHeaders(kv ...string) wasm.Action {
	return s.RequestHeaderMap(wasm.NewHeaders(kv...), false)
}

// RequestHeadersEnd is RequestHeaders with end_of_stream true (no body).
func (s *HTTPStream) RequestHeadersEnd(kv ...string) wasm.Action {
	return s.RequestHeaderMap(wasm.NewHeaders(kv...), true)
}

// RequestHeaderMap runs proxy_on_request_headers with h, which the filter
// may change.
func (s *HTTPStream) RequestHeaderMap(h *wasm.Headers, eos bool) wasm.Action {
	s.req.Headers = h
	return s.do(func() wasm.Action { return s.s.OnRequestHeaders(h, eos) })
}

// RequestBody runs proxy_on_request_body with b appended to what the
// filter holds.
func (s *HTTPStream) RequestBody(b []byte, eos bool) wasm.Action {
	return s.do(func() wasm.Action {
		return s.reqF.feed(b, eos, s.s.OnRequestBody)
	})
}

// RequestTrailers runs proxy_on_request_trailers.
func (s *HTTPStream) RequestTrailers(kv ...string) wasm.Action {
	t := wasm.NewHeaders(kv...)
	s.req.Trailers = t
	return s.do(func() wasm.Action { return s.s.OnRequestTrailers(t) })
}

// ResponseHeaders runs proxy_on_response_headers, end_of_stream false.
func (s *HTTPStream) ResponseHeaders(kv ...string) wasm.Action {
	return s.ResponseHeaderMap(wasm.NewHeaders(kv...), false)
}

// ResponseHeadersEnd is ResponseHeaders with end_of_stream true.
func (s *HTTPStream) ResponseHeadersEnd(kv ...string) wasm.Action {
	return s.ResponseHeaderMap(wasm.NewHeaders(kv...), true)
}

// ResponseHeaderMap runs proxy_on_response_headers with h.
func (s *HTTPStream) ResponseHeaderMap(h *wasm.Headers, eos bool) wasm.Action {
	s.resp.Headers = h
	return s.do(func() wasm.Action { return s.s.OnResponseHeaders(h, eos) })
}

// ResponseBody runs proxy_on_response_body with b appended to what the
// filter holds.
func (s *HTTPStream) ResponseBody(b []byte, eos bool) wasm.Action {
	return s.do(func() wasm.Action {
		return s.respF.feed(b, eos, s.s.OnResponseBody)
	})
}

// ResponseTrailers runs proxy_on_response_trailers.
func (s *HTTPStream) ResponseTrailers(kv ...string) wasm.Action {
	t := wasm.NewHeaders(kv...)
	s.resp.Trailers = t
	return s.do(func() wasm.Action { return s.s.OnResponseTrailers(t) })
}

// Log runs the access-log phase (proxy_on_log) before Done.
func (s *HTTPStream) Log() {
	if s.s != nil {
		s.s.Log()
	}
}

// Done ends the stream: proxy_on_done, proxy_on_log, proxy_on_delete.
func (s *HTTPStream) Done() {
	if s.s != nil && !s.closed {
		s.closed = true
		s.s.Close()
	}
}

// Request is the request as the filter left it.
func (s *HTTPStream) Request() Message {
	m := s.req
	m.Body, m.Buffered = s.reqF.forwarded, s.reqF.pending
	return m
}

// Response is the response as the filter left it.
func (s *HTTPStream) Response() Message {
	m := s.resp
	m.Body, m.Buffered = s.respF.forwarded, s.respF.pending
	return m
}

// Action is what the last callback returned (PAUSE after a failure that
// answered the stream, CONTINUE after one that skipped the filter).
func (s *HTTPStream) Action() wasm.Action { return s.last }

// LocalResponse is the response the filter or its failure policy sent, or
// nil.
func (s *HTTPStream) LocalResponse() *wasm.LocalResponse {
	if s.s == nil {
		return nil
	}
	return s.s.LocalResponse()
}

// Failure is the error that made the filter fail for this stream, if any.
func (s *HTTPStream) Failure() error {
	if s.s == nil {
		return s.err
	}
	return s.s.Failure()
}

// Skipped reports whether the filter failed open and no longer runs.
func (s *HTTPStream) Skipped() bool { return s.s != nil && s.s.Skipped() }

// Recorder holds what the filter asked of the data plane.
func (s *HTTPStream) Recorder() *Recorder { return s.rec }

// Events returns the recorded events.
func (s *HTTPStream) Events() []Event { return s.rec.Events() }

// Stream is the underlying host stream (nil if the plugin never started).
func (s *HTTPStream) Stream() *wasm.HTTPStream { return s.s }

// ContextID is the stream's context id in its instance.
func (s *HTTPStream) ContextID() uint32 {
	if s.s == nil {
		return 0
	}
	return s.s.ContextID()
}
