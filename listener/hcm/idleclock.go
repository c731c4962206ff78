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
	t  *time.Timer
	// due is when the timer fires; zero when it is not armed. A timer
	// that fires no later than a new stream's deadline is left as it is:
	// fire looks at the last activity and waits for the rest.
	due     time.Time
	s       *stream // the stream timed; nil between streams
	timeout time.Duration
	// last is the stream's last activity, in nanoseconds since epoch.
	last atomic.Int64
}

// arm starts timing s.
func (c *idleClock) arm(s *stream, timeout time.Duration) {
	now := time.Now()
	c.last.Store(now.UnixNano())
	deadline := now.Add(timeout)
	c.mu.Lock()
	c.s, c.timeout = s, timeout
	switch {
	case c.t == nil:
		c.t = time.AfterFunc(timeout, c.fire)
		c.due = deadline
	case c.due.IsZero() || c.due.After(deadline):
		c.t.Reset(timeout)
		c.due = deadline
	}
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
		c.due = time.Time{}
		c.mu.Unlock()
		return
	}
	now := time.Now()
	idle := time.Duration(now.UnixNano() - c.last.Load())
	if idle < c.timeout {
		c.t.Reset(c.timeout - idle)
		c.due = now.Add(c.timeout - idle)
		c.mu.Unlock()
		return
	}
	c.s = nil
	c.due = time.Time{}
	c.mu.Unlock()
	s.onIdleTimeout()
}
