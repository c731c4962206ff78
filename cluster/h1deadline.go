package cluster

import (
	"sync"
	"time"
)

// deadlineClock enforces the current exchange's deadline (route timeout,
// per-try timeout) on a pool connection with one timer that outlives
// exchanges. Setting the connection's own deadline costs two runtime
// timer changes per request, and clearing it two more; here an exchange
// only records its deadline, and the timer, left armed from an earlier
// exchange, is moved only when the new deadline is earlier than the one
// it is armed for. When it fires early (the exchange it was armed for
// ended, a later one runs), it re-arms for what is left; when the current
// deadline has passed, it aborts the connection's blocked reads and
// writes, as an expired connection deadline would.
type deadlineClock struct {
	mu      sync.Mutex
	current time.Time // the running exchange's deadline; zero: none
	armedAt time.Time // when the timer fires; zero: not armed
	timer   *time.Timer
	fired   bool // the current deadline passed and the connection was aborted
	target  *h1Conn
	fireFn  func()
}

// set gives the exchange about to start deadline d; pc is aborted when it
// passes before clear.
func (c *deadlineClock) set(d time.Time, pc *h1Conn) {
	c.mu.Lock()
	c.current = d
	c.fired = false
	if c.armedAt.IsZero() || d.Before(c.armedAt) {
		c.armLocked(d, pc)
	}
	c.mu.Unlock()
}

func (c *deadlineClock) armLocked(d time.Time, pc *h1Conn) {
	c.armedAt = d
	wait := time.Until(d)
	if c.timer == nil {
		c.target = pc
		c.fireFn = c.fire
		c.timer = time.AfterFunc(wait, c.fireFn)
		return
	}
	c.timer.Reset(wait)
}

// clear ends the exchange's deadline and reports whether it had passed
// (the connection was aborted).
func (c *deadlineClock) clear() bool {
	c.mu.Lock()
	fired := c.fired
	c.current = time.Time{}
	c.fired = false
	c.mu.Unlock()
	return fired
}

// stop releases the timer of a closed connection.
func (c *deadlineClock) stop() {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.armedAt = time.Time{}
	c.mu.Unlock()
}

func (c *deadlineClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armedAt = time.Time{}
	if c.current.IsZero() || c.fired {
		return
	}
	if now := time.Now(); now.Before(c.current) {
		c.armedAt = c.current
		c.timer.Reset(c.current.Sub(now))
		return
	}
	c.fired = true
	c.target.abort()
}
