package wasm

// HTTPStream is one HTTP request/response pair through one plugin, pinned to
// one instance. Calls are made by the data plane in stream order from one
// goroutine at a time; callouts and timers may run callbacks concurrently,
// serialised by the instance.
type HTTPStream struct {
	streamBase

	reqHeaders, reqTrailers   *Headers
	respHeaders, respTrailers *Headers
	reqBody, respBody         body
	logged                    bool
}

// body is a body buffer that exists only while its callback phase allows.
type body struct {
	b   []byte
	set bool
}

// NewHTTPStream creates the stream's context (proxy_on_context_create). If no
// instance can take it, the failure policy applies at the first callback.
func (p *Plugin) NewHTTPStream(opts StreamOptions) *HTTPStream {
	s := &HTTPStream{}
	s.init(p, opts)
	s.isHTTP = true
	s.attach(func(c *contextState) { c.http = s })
	return s
}

// OnRequestHeaders runs proxy_on_request_headers. The filter may change h.
func (s *HTTPStream) OnRequestHeaders(h *Headers, endOfStream bool) Action {
	s.reqHeaders = h
	return s.invoke(StreamHTTPRequest, s.fn().onRequestHeaders, uint64(s.ContextID()), uint64(h.Len()), b2u(endOfStream))
}

// OnRequestBody runs proxy_on_request_body with the body buffered so far and
// returns the (possibly changed) body.
func (s *HTTPStream) OnRequestBody(b []byte, endOfStream bool) ([]byte, Action) {
	s.reqBody = body{b: b, set: true}
	a := s.invoke(StreamHTTPRequest, s.fn().onRequestBody, uint64(s.ContextID()), uint64(len(b)), b2u(endOfStream))
	return s.reqBody.b, a
}

// OnRequestTrailers runs proxy_on_request_trailers.
func (s *HTTPStream) OnRequestTrailers(t *Headers) Action {
	s.reqTrailers = t
	return s.invoke(StreamHTTPRequest, s.fn().onRequestTrailers, uint64(s.ContextID()), uint64(t.Len()))
}

// OnResponseHeaders runs proxy_on_response_headers.
func (s *HTTPStream) OnResponseHeaders(h *Headers, endOfStream bool) Action {
	s.respHeaders = h
	return s.invoke(StreamHTTPResponse, s.fn().onResponseHeaders, uint64(s.ContextID()), uint64(h.Len()), b2u(endOfStream))
}

// OnResponseBody runs proxy_on_response_body and returns the body.
func (s *HTTPStream) OnResponseBody(b []byte, endOfStream bool) ([]byte, Action) {
	s.respBody = body{b: b, set: true}
	a := s.invoke(StreamHTTPResponse, s.fn().onResponseBody, uint64(s.ContextID()), uint64(len(b)), b2u(endOfStream))
	return s.respBody.b, a
}

// OnResponseTrailers runs proxy_on_response_trailers.
func (s *HTTPStream) OnResponseTrailers(t *Headers) Action {
	s.respTrailers = t
	return s.invoke(StreamHTTPResponse, s.fn().onResponseTrailers, uint64(s.ContextID()), uint64(t.Len()))
}

// Log runs proxy_on_log (the access-log phase). Close calls it if Log was
// not called.
func (s *HTTPStream) Log() {
	s.smu.Lock()
	skip := s.logged || s.closed || s.inst == nil || s.skipped || s.failed
	s.smu.Unlock()
	if skip {
		return
	}
	s.logged = true
	inst := s.inst
	inst.mu.Lock()
	if !inst.dead.Load() {
		_ = inst.enterLocked(s.ctx, inst.fns.onLog, uint64(s.ctx.id))
	}
	inst.mu.Unlock()
	s.flushDiscard()
}

// Close ends the stream: proxy_on_done, then proxy_on_log and
// proxy_on_delete.
func (s *HTTPStream) Close() { s.finish() }

// RequestHeaders returns the request headers as the filter left them.
func (s *HTTPStream) RequestHeaders() *Headers { return s.reqHeaders }

// ResponseHeaders returns the response headers as the filter left them.
func (s *HTTPStream) ResponseHeaders() *Headers { return s.respHeaders }

// RequestTrailers returns the request trailers.
func (s *HTTPStream) RequestTrailers() *Headers { return s.reqTrailers }

// ResponseTrailers returns the response trailers.
func (s *HTTPStream) ResponseTrailers() *Headers { return s.respTrailers }

func (s *HTTPStream) fn() *callbacks {
	if s.inst == nil {
		return &callbacks{}
	}
	return &s.inst.fns
}
