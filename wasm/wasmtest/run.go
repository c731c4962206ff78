package wasmtest

import (
	"fmt"

	"github.com/wasmesh/wasmesh/wasm"
)

// Exchange is one request and its response, for Run. Headers and trailers
// are alternating keys and values.
type Exchange struct {
	// RequestHeaders defaults to GET / for example.com.
	RequestHeaders  []string
	RequestBody     []byte
	RequestTrailers []string
	// ResponseHeaders defaults to :status 200.
	ResponseHeaders  []string
	ResponseBody     []byte
	ResponseTrailers []string
	// KeepOpen leaves the stream open (Result.Stream) instead of ending it.
	KeepOpen bool
}

// Phase is one callback of an HTTP stream.
type Phase int

// Phases, in stream order.
const (
	PhaseRequestHeaders Phase = iota
	PhaseRequestBody
	PhaseRequestTrailers
	PhaseResponseHeaders
	PhaseResponseBody
	PhaseResponseTrailers
	numPhases
)

var phaseNames = [...]string{"request_headers", "request_body", "request_trailers",
	"response_headers", "response_body", "response_trailers"}

func (p Phase) String() string {
	if p >= 0 && p < numPhases {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Result is what Run observed.
type Result struct {
	Request, Response Message
	// Actions holds what each phase that ran returned, in order.
	Actions []PhaseAction
	// Local is the response the filter (or its failure policy) sent
	// instead of the upstream's; when set, the phases after it did not run.
	Local *wasm.LocalResponse
	// Failure is the error that made the filter fail for the stream.
	Failure error
	// Skipped is true when the filter failed open.
	Skipped bool
	Events  []Event
	// Stream is the stream, still open when Exchange.KeepOpen was set.
	Stream *HTTPStream
}

// PhaseAction is the action one phase returned.
type PhaseAction struct {
	Phase  Phase
	Action wasm.Action
}

// Action returns what a phase returned and whether it ran.
func (r Result) Action(p Phase) (wasm.Action, bool) {
	for _, a := range r.Actions {
		if a.Phase == p {
			return a.Action, true
		}
	}
	return 0, false
}

// Status is the response status: the local response's, else the response
// headers' :status as the filter left them, else 0.
func (r Result) Status() int {
	if r.Local != nil {
		return int(r.Local.StatusCode)
	}
	var code int
	fmt.Sscan(r.Response.Header(":status"), &code)
	return code
}

// Run drives a whole stream through the harness's plugin: request headers,
// body and trailers, then response headers, body and trailers (each only
// when given; end_of_stream set on the last), then ends the stream. It
// stops early when the filter answers the stream (or fails closed). A
// phase that returns PAUSE does not stop it: Run plays the data plane that
// buffers and goes on. Safe to call from many goroutines.
func (h *Harness) Run(x Exchange, opts ...StreamOption) Result {
	return RunStream(h.HTTP(opts...), x)
}

// RunStream is Run on a stream the caller created.
func RunStream(s *HTTPStream, x Exchange) Result {
	reqH := x.RequestHeaders
	if reqH == nil {
		reqH = []string{":method", "GET", ":path", "/", ":authority", "example.com", ":scheme", "http"}
	}
	respH := x.ResponseHeaders
	if respH == nil {
		respH = []string{":status", "200"}
	}
	var r Result
	step := func(p Phase, f func() wasm.Action) bool {
		a := f()
		r.Actions = append(r.Actions, PhaseAction{p, a})
		return s.LocalResponse() == nil
	}
	reqBody := x.RequestBody != nil
	reqTr := x.RequestTrailers != nil
	respBody := x.ResponseBody != nil
	respTr := x.ResponseTrailers != nil
	ok := step(PhaseRequestHeaders, func() wasm.Action {
		return s.RequestHeaderMap(wasm.NewHeaders(reqH...), !reqBody && !reqTr)
	})
	if ok && reqBody {
		ok = step(PhaseRequestBody, func() wasm.Action { return s.RequestBody(x.RequestBody, !reqTr) })
	}
	if ok && reqTr {
		ok = step(PhaseRequestTrailers, func() wasm.Action { return s.RequestTrailers(x.RequestTrailers...) })
	}
	if ok {
		ok = step(PhaseResponseHeaders, func() wasm.Action {
			return s.ResponseHeaderMap(wasm.NewHeaders(respH...), !respBody && !respTr)
		})
	}
	if ok && respBody {
		ok = step(PhaseResponseBody, func() wasm.Action { return s.ResponseBody(x.ResponseBody, !respTr) })
	}
	if ok && respTr {
		step(PhaseResponseTrailers, func() wasm.Action { return s.ResponseTrailers(x.ResponseTrailers...) })
	}
	if !x.KeepOpen {
		s.Done()
	}
	r.Request, r.Response = s.Request(), s.Response()
	r.Local = s.LocalResponse()
	r.Failure = s.Failure()
	r.Skipped = s.Skipped()
	r.Events = s.Events()
	r.Stream = s
	return r
}
