package wasm

import (
	"errors"

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
	// skipped is set when the filter failed open: it no longer runs.
	skipped bool
	// failed is set when the filter failed closed: the stream was answered.
	failed  bool
	failure error
	local   *LocalResponse
	events  []streamEvent
	closed  bool
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

// invoke calls a stream callback and applies the failure policy when the
// instance is (or becomes) unusable.
func (s *streamBase) invoke(fn api.Function, args ...uint64) Action {
	if s.skipped {
		return ActionContinue
	}
	if s.failed || s.closed {
		return ActionPause
	}
	if s.startErr != nil {
		return s.applyFailure(s.startErr)
	}
	if fn == nil {
		return ActionContinue
	}
	inst := s.inst
	inst.mu.Lock()
	if inst.dead.Load() {
		inst.mu.Unlock()
		return s.applyFailure(&InstanceFailure{Kind: inst.failure})
	}
	res, err := inst.enterResultLocked(s.ctx, fn, args...)
	// s.local is also set by callout and timer callbacks: read it locked.
	answered := s.local != nil
	inst.mu.Unlock()
	if err != nil {
		return s.applyFailure(err)
	}
	s.flush()
	if answered {
		return ActionPause
	}
	return Action(res)
}

// applyFailure gives the stream its failure policy at once.
func (s *streamBase) applyFailure(err error) Action {
	s.failure = err
	p := s.plugin
	p.log.Warn("wasm filter failed for this stream",
		zap.String("failure_policy", p.cfg.FailurePolicy.String()), zap.Error(err))
	s.flushDiscard()
	if p.cfg.FailurePolicy == FailOpen {
		s.skipped = true
		return ActionContinue
	}
	s.failed = true
	return ActionPause
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
func (s *streamBase) Failure() error { return s.failure }

// Skipped reports whether the filter failed open and no longer runs.
func (s *streamBase) Skipped() bool { return s.skipped }

// LocalResponse is the response the filter (or the failure policy) sent
// instead of the upstream's, or nil.
func (s *streamBase) LocalResponse() *LocalResponse { return s.local }

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
	if s.closed {
		return
	}
	s.closed = true
	if s.inst == nil || s.ctx == nil {
		return
	}
	inst := s.inst
	inst.mu.Lock()
	inst.finishContextLocked(s.ctx)
	inst.mu.Unlock()
	s.flushDiscard()
}
