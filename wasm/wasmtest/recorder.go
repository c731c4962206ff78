package wasmtest

import (
	"fmt"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/wasm"
)

// EventKind names what a filter asked of the data plane.
type EventKind int

// Event kinds, one per wasm.StreamCallbacks method.
const (
	EventContinue EventKind = iota + 1
	EventClose
	EventLocalResponse
	EventClearRouteCache
)

func (k EventKind) String() string {
	switch k {
	case EventContinue:
		return "continue"
	case EventClose:
		return "close"
	case EventLocalResponse:
		return "local_response"
	case EventClearRouteCache:
		return "clear_route_cache"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one recorded request from the filter.
type Event struct {
	Kind EventKind
	// Stream is the direction for Continue and Close.
	Stream wasm.StreamType
	// Local is the response for LocalResponse.
	Local *wasm.LocalResponse
	At    time.Time
}

func (e Event) String() string {
	switch e.Kind {
	case EventContinue, EventClose:
		return fmt.Sprintf("%s(%d)", e.Kind, e.Stream)
	case EventLocalResponse:
		return fmt.Sprintf("%s(%d)", e.Kind, e.Local.StatusCode)
	}
	return e.Kind.String()
}

// Recorder is a wasm.StreamCallbacks that records every call, safe for
// concurrent use (the host calls it from timers and callouts too). Next, if
// set before the stream starts, also receives every call.
type Recorder struct {
	Next wasm.StreamCallbacks

	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

var _ wasm.StreamCallbacks = (*Recorder)(nil)

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

func (r *Recorder) add(e Event) {
	e.At = time.Now()
	r.mu.Lock()
	r.events = append(r.events, e)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.mu.Unlock()
}

// ContinueStream records a Continue event.
func (r *Recorder) ContinueStream(t wasm.StreamType) {
	r.add(Event{Kind: EventContinue, Stream: t})
	if r.Next != nil {
		r.Next.ContinueStream(t)
	}
}

// CloseStream records a Close event.
func (r *Recorder) CloseStream(t wasm.StreamType) {
	r.add(Event{Kind: EventClose, Stream: t})
	if r.Next != nil {
		r.Next.CloseStream(t)
	}
}

// SendLocalResponse records a LocalResponse event.
func (r *Recorder) SendLocalResponse(lr *wasm.LocalResponse) {
	r.add(Event{Kind: EventLocalResponse, Local: lr})
	if r.Next != nil {
		r.Next.SendLocalResponse(lr)
	}
}

// ClearRouteCache records a ClearRouteCache event.
func (r *Recorder) ClearRouteCache() {
	r.add(Event{Kind: EventClearRouteCache})
	if r.Next != nil {
		r.Next.ClearRouteCache()
	}
}

// Events returns the events so far, oldest first.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Count is the number of events of a kind so far.
func (r *Recorder) Count(k EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Wait waits up to timeout for an event of kind k (one already recorded
// counts) and returns the first one.
func (r *Recorder) Wait(k EventKind, timeout time.Duration) (Event, bool) {
	return r.WaitFunc(func(e Event) bool { return e.Kind == k }, timeout)
}

// WaitFunc waits up to timeout for an event match accepts.
func (r *Recorder) WaitFunc(match func(Event) bool, timeout time.Duration) (Event, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := 0
	for {
		r.mu.Lock()
		for _, e := range r.events[seen:] {
			if match(e) {
				r.mu.Unlock()
				return e, true
			}
		}
		seen = len(r.events)
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return Event{}, false
		}
	}
}
