package hcm

import (
	"sync"
	"sync/atomic"
	"time"
)

// streamIdleTimer times stream_idle_timeout for one stream: arm when it
// starts, touch on activity, disarm when it ends.
type streamIdleTimer interface {
	arm(s *stream, timeout time.Duration)
	disarm(s *stream)
	touch()
}

// sharedIdleClock times stream_idle_timeout for all the streams of an
// HTTP/2 connection with one timer. A stream joins a list when it starts
// and leaves it when it ends, activity only records a time, and the
// timer is moved only when a new stream's deadline is earlier than the
// one it is armed for. When it fires, it ends the streams idle for their
// timeout and re-arms for the earliest of the others. A stream costs no
// timer of its own (Envoy's default stream_idle_timeout is 5 minutes, so
// nearly every stream would stop a timer that never fired).
type sharedIdleClock struct {
	mu     sync.Mutex
	t      lazyTimer
	head   *sharedIdleEntry
	closed bool
}

// sharedIdleEntry is one stream's place on a sharedIdleClock.
type sharedIdleEntry struct {
	c *sharedIdleClock
	// Guarded by c.mu.
	s          *stream // nil when not on the list
	timeout    time.Duration
	prev, next *sharedIdleEntry

	last atomic.Int64 // the stream's last activity, UnixNano
}

func (e *sharedIdleEntry) arm(s *stream, timeout time.Duration) {
	now := time.Now()
	e.last.Store(now.UnixNano())
	c := e.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || e.s != nil {
		return
	}
	e.s, e.timeout = s, timeout
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.t.fire == nil {
		c.t.fire = c.fire
	}
	c.t.armBy(now, timeout)
}

func (e *sharedIdleEntry) disarm(s *stream) {
	c := e.c
	c.mu.Lock()
	if e.s == s {
		c.unlinkLocked(e)
	}
	c.mu.Unlock()
}

func (e *sharedIdleEntry) touch() { e.last.Store(time.Now().UnixNano()) }

func (c *sharedIdleClock) unlinkLocked(e *sharedIdleEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.prev, e.next, e.s = nil, nil, nil
}

func (c *sharedIdleClock) fire() {
	c.mu.Lock()
	now := time.Now()
	var expired []*stream
	next := time.Duration(-1)
	for e := c.head; e != nil; {
		following := e.next
		idle := time.Duration(now.UnixNano() - e.last.Load())
		if idle >= e.timeout {
			expired = append(expired, e.s)
			c.unlinkLocked(e)
		} else if left := e.timeout - idle; next < 0 || left < next {
			next = left
		}
		e = following
	}
	c.t.fired()
	if next >= 0 && !c.closed {
		c.t.rearm(now, next)
	}
	c.mu.Unlock()
	for _, s := range expired {
		s.onIdleTimeout()
	}
}

// stop ends the clock with its connection.
func (c *sharedIdleClock) stop() {
	c.mu.Lock()
	c.closed = true
	c.t.stop()
	for c.head != nil {
		c.unlinkLocked(c.head)
	}
	c.mu.Unlock()
}
