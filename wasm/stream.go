package wasm

import (
	"errors"
	"sync"

	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"
)

// StreamOptions carries what the data plane gives a new stream.
type StreamOptions struct {
	// Callbacks resume, close or answer the stream; nil ignores them (the
	// stream still records a local response).
	Callbacks StreamCallbacks
	// Properties answers the stream's property paths; may be nil.
	Properties Properties
}

// streamEvent is a request from the guest to the data plane, recorded while
// the instance lock is held and delivered after it is released.
type streamEvent struct {
	kind   int
	stream StreamType
	local  *LocalResponse
}

const (
	evContinue = iota
	evClose
	evLocalResponse
	evClearRouteCache
)

// streamBase is what HTTP and TCP streams share: the pinned instance and
// context, the failure policy state and pending events.
type streamBase struct {
	plugin *Plugin
	inst   *instance
	ctx    *contextState
	cb     StreamCallbacks
	props  Properties

	startErr error
	// isHTTP selects the fail-closed answer: a local 503 for HTTP, closing
	// both sides for TCP.
	isHTTP bool

	// smu guards the fields below. It is a leaf lock: taken under the
	// instance lock by host functions, never held while taking it, and
	// never held while calling the data plane.
	smu sync.Mutex
	// skipped is set when the filter failed open: it no longer runs.
	skipped bool
	// failed is set when the filter failed closed: the stream was answered.
	failed  bool
	failure error
	local   *LocalResponse
	// paused records which directions the filter left paused, so a filter
	// failing open from a callout resumes them.
	paused [4]bool
	closed bool

	// events are guarded by the instance lock (see takeEvents).
	events []streamEvent
}

func (s *streamBase) init(p *Plugin, opts StreamOptions) {
	s.plugin = p
	s.cb = opts.Callbacks
	if s.cb == nil {
		s.cb = nopCallbacks{}
	}
	s.props = opts.Properties
}

// attach pins the stream to an instance and creates its context.
func (s *streamBase) attach(bind func(*contextState)) {
	inst, err := s.plugin.vm.pick()
	if err != nil {
		s.startErr = err
		return
	}
	inst.mu.Lock()
	root := inst.roots[s.plugin]
	if root == nil || inst.dead.Load() {
		inst.mu.Unlock()
		s.startErr = errors.New("wasm: plugin has no root context on the picked instance")
		return
	}
	c := inst.newContextLocked(s.plugin, root)
	bind(c)
	s.inst, s.ctx = inst, c
	err = inst.enterLocked(c, inst.fns.onContextCreate, uint64(c.id), uint64(root.id))
	inst.mu.Unlock()
	if err != nil {
		s.startErr = err
	}
}

// invoke calls a stream callback for direction dir and applies the failure
// policy when the instance is (or becomes) unusable.
func (s *streamBase) invoke(dir StreamType, fn api.Function, args ...uint64) Action {
	s.smu.Lock()
	skipped, failed, closed := s.skipped, s.failed, s.closed
	s.smu.Unlock()
	switch {
	case skipped:
		return ActionContinue
	case failed || closed:
		return ActionPause
	case s.startErr != nil:
		return s.applyFailure(s.startErr)
	case fn == nil:
		return ActionContinue
	}
	inst := s.inst
	inst.mu.Lock()
	if inst.dead.Load() {
		inst.mu.Unlock()
		return s.applyFailure(&InstanceFailure{Kind: inst.failure})
	}
	res, err := inst.enterResultLocked(s.ctx, fn, args...)
	inst.mu.Unlock()
	if err != nil {
		return s.applyFailure(err)
	}
	s.flush()
	a := Action(res)
	s.smu.Lock()
	if s.local != nil {
		a = ActionPause
	}
	if int(dir) < len(s.paused) {
		s.paused[dir] = a != ActionContinue
	}
	s.smu.Unlock()
	return a
}

// applyFailure gives the stream its failure policy at once: fail open skips
// the filter (and resumes what it had paused when the failure came from a
// callout or timer), fail closed answers an HTTP stream with a local 503 or
// closes both sides of a connection. It runs once per stream.
func (s *streamBase) applyFailure(err error) Action {
	s.flushDiscard()
	p := s.plugin
	s.smu.Lock()
	if s.skipped {
		s.smu.Unlock()
		return ActionContinue
	}
	if s.failed {
		s.smu.Unlock()
		return ActionPause
	}
	s.failure = err
	if p.cfg.FailurePolicy == FailOpen {
		s.skipped = true
		paused := s.paused
		s.paused = [4]bool{}
		s.smu.Unlock()
		p.log.Warn("wasm filter failed for this stream; skipping it (fail open)", zap.Error(err))
		for d, on := range paused {
			if on {
				s.cb.ContinueStream(StreamType(d))
			}
		}
		return ActionContinue
	}
	s.failed = true
	var lr *LocalResponse
	if s.isHTTP && s.local == nil {
		lr = &LocalResponse{
			StatusCode: 503,
			Details:    "wasm_fail_stream",
			Body:       []byte("wasm filter failed\n"),
			GRPCStatus: 14, // UNAVAILABLE
		}
		s.local = lr
	}
	s.smu.Unlock()
	p.log.Warn("wasm filter failed for this stream",
		zap.String("failure_policy", p.cfg.FailurePolicy.String()), zap.Error(err))
	if s.isHTTP {
		if lr != nil {
			s.cb.SendLocalResponse(lr)
		}
	} else {
		s.cb.CloseStream(StreamDownstream)
		s.cb.CloseStream(StreamUpstream)
	}
	return ActionPause
}

// afterAsync is called after a callback the host ran outside the data
// plane's own calls (a callout response, a timer, a queue): it delivers the
// events, or applies the failure policy if the callback failed.
func (s *streamBase) afterAsync(err error) {
	if err != nil {
		s.applyFailure(err)
		return
	}
	s.flush()
}

// getLocal returns the recorded local response.
func (s *streamBase) getLocal() *LocalResponse {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.local
}

// setLocal records a local response unless one exists; it reports whether
// it did.
func (s *streamBase) setLocal(lr *LocalResponse) bool {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.local != nil {
		return false
	}
	s.local = lr
	return true
}

// flush delivers events recorded during the last callback.
func (s *streamBase) flush() {
	for _, e := range s.takeEvents() {
		switch e.kind {
		case evContinue:
			s.cb.ContinueStream(e.stream)
		case evClose:
			s.cb.CloseStream(e.stream)
		case evLocalResponse:
			s.cb.SendLocalResponse(e.local)
		case evClearRouteCache:
			s.cb.ClearRouteCache()
		}
	}
}

func (s *streamBase) flushDiscard() { s.takeEvents() }

// takeEvents removes the recorded events. Host functions record them under
// the instance lock, from the data plane's goroutine or from a callout or
// timer goroutine, so they are taken under it too.
func (s *streamBase) takeEvents() []streamEvent {
	if s.inst != nil {
		s.inst.mu.Lock()
		defer s.inst.mu.Unlock()
	}
	evs := s.events
	s.events = nil
	return evs
}

// Failure is the error that made the filter fail for this stream, if any.
func (s *streamBase) Failure() error {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.failure
}

// Skipped reports whether the filter failed open and no longer runs.
func (s *streamBase) Skipped() bool {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.skipped
}

// LocalResponse is the response the filter (or the failure policy) sent
// instead of the upstream's, or nil.
func (s *streamBase) LocalResponse() *LocalResponse { return s.getLocal() }

// ContextID is the stream's context id inside its instance (0 if the
// stream never started).
func (s *streamBase) ContextID() uint32 {
	if s.ctx == nil {
		return 0
	}
	return s.ctx.id
}

// finish runs the end of the context's life.
func (s *streamBase) finish() {
	s.smu.Lock()
	if s.closed {
		s.smu.Unlock()
		return
	}
	s.closed = true
	s.smu.Unlock()
	if s.inst == nil || s.ctx == nil {
		return
	}
	inst := s.inst
	inst.mu.Lock()
	inst.finishContextLocked(s.ctx)
	inst.mu.Unlock()
	s.flushDiscard()
}
