package hcm

import (
	"sync"
	"sync/atomic"
	"time"
)

// idleClock times stream_idle_timeout for the streams of one codec
// stream slot: an HTTP/1.1 connection keeps one for all its requests (one
// stream at a time), an HTTP/2 stream has its own. Activity only records
// the time (touch); when the timer fires it looks at the last activity
// and, when the stream was active since, waits for the rest. So a request
// costs no timer allocation and a body chunk no timer reset.
type idleClock struct {
	mu      sync.Mutex
	t       *time.Timer
	s       *stream // the stream timed; nil between streams
	timeout time.Duration
	// last is the stream's last activity, in nanoseconds since epoch.
	last atomic.Int64
}

// arm starts timing s.
func (c *idleClock) arm(s *stream, timeout time.Duration) {
	c.last.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.s, c.timeout = s, timeout
	if c.t == nil {
		c.t = time.AfterFunc(timeout, c.fire)
	} else {
		c.t.Reset(timeout)
	}
	c.mu.Unlock()
}

// disarm stops timing s (a no-op when the clock times another stream).
func (c *idleClock) disarm(s *stream) {
	c.mu.Lock()
	if c.s == s {
		c.s = nil
		c.t.Stop()
	}
	c.mu.Unlock()
}

// touch records activity.
func (c *idleClock) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *idleClock) fire() {
	c.mu.Lock()
	s := c.s
	if s == nil {
		c.mu.Unlock()
		return
	}
	idle := time.Duration(time.Now().UnixNano() - c.last.Load())
	if idle < c.timeout {
		c.t.Reset(c.timeout - idle)
		c.mu.Unlock()
		return
	}
	c.s = nil
	c.mu.Unlock()
	s.onIdleTimeout()
}
