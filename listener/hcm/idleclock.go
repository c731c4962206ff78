package hcm

import (
	"sync"
	"sync/atomic"
	"time"
)

// idleClock times stream_idle_timeout for the streams of an HTTP/1.1
// connection, one after the other (HTTP/2 streams, which run at once,
// share their connection's sharedIdleClock). Activity only records
// the time (touch); when the timer fires it looks at the last activity
// and, when the stream was active since, waits for the rest. So a request
// costs no timer allocation and a body chunk no timer reset.
type idleClock struct {
	mu sync.Mutex
	// A timer that fires no later than a new stream's deadline is left as
	// it is: fire looks at the last activity and waits for the rest.
	t       lazyTimer
	s       *stream // the stream timed; nil between streams
	timeout time.Duration
	// last is the stream's last activity, in nanoseconds since epoch.
	last atomic.Int64
}

// arm starts timing s.
func (c *idleClock) arm(s *stream, timeout time.Duration) {
	now := time.Now()
	c.last.Store(now.UnixNano())
	c.mu.Lock()
	c.s, c.timeout = s, timeout
	if c.t.fire == nil {
		c.t.fire = c.fire
	}
	c.t.armBy(now, timeout)
	c.mu.Unlock()
}

// disarm stops timing s (a no-op when the clock times another stream).
// The timer is left armed for the connection's next stream; when it fires
// with no stream, it stops.
func (c *idleClock) disarm(s *stream) {
	c.mu.Lock()
	if c.s == s {
		c.s = nil
	}
	c.mu.Unlock()
}

// touch records activity.
func (c *idleClock) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *idleClock) fire() {
	c.mu.Lock()
	s := c.s
	if s == nil {
		c.t.fired()
		c.mu.Unlock()
		return
	}
	now := time.Now()
	idle := time.Duration(now.UnixNano() - c.last.Load())
	if idle < c.timeout {
		c.t.rearm(now, c.timeout-idle)
		c.mu.Unlock()
		return
	}
	c.s = nil
	c.t.fired()
	c.mu.Unlock()
	s.onIdleTimeout()
}
