package streamctx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Hook is told once when the Context it is registered with is cancelled.
// OnCancel runs on the cancelling goroutine, with no lock held, and must
// not block.
type Hook interface {
	OnCancel()
}

// Context is a cancellable context. The zero value is not usable; make
// one with New.
type Context struct {
	parent context.Context
	// up is the parent when it is a Context: this one is its hook.
	up *Context
	// stopFollow ends following a parent of another kind.
	stopFollow func() bool

	cancelled atomic.Bool
	mu        sync.Mutex
	err       error
	cause     error
	done      chan struct{}
	hooks     []Hook
	inline    [2]Hook
}

// New returns a Context that is cancelled when parent is, or by Cancel.
func New(parent context.Context) *Context {
	c := &Context{parent: parent}
	c.hooks = c.inline[:0]
	switch p := parent.(type) {
	case *Context:
		// up is set first: the parent may call OnCancel as soon as c is
		// registered.
		c.up = p
		if !p.Notify(c) {
			c.up = nil
			c.cancel(p.Err(), p.Cause())
		}
	default:
		if parent.Done() == nil {
			break
		}
		if err := parent.Err(); err != nil {
			c.cancel(err, context.Cause(parent))
			break
		}
		stop := context.AfterFunc(parent, func() {
			c.cancel(parent.Err(), context.Cause(parent))
		})
		c.mu.Lock()
		c.stopFollow = stop
		c.mu.Unlock()
	}
	return c
}

// Cancel cancels c (Err is context.Canceled, Cause is cause, or
// context.Canceled when nil), its hooks and the Contexts made from it. A
// second call does nothing.
func (c *Context) Cancel(cause error) { c.cancel(context.Canceled, cause) }

func (c *Context) cancel(err, cause error) {
	if cause == nil {
		cause = err
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err, c.cause = err, cause
	c.cancelled.Store(true)
	if c.done != nil {
		close(c.done)
	}
	hooks, up, stopFollow := c.hooks, c.up, c.stopFollow
	c.hooks = nil
	c.mu.Unlock()
	if up != nil {
		up.Stop(c)
	}
	if stopFollow != nil {
		stopFollow()
	}
	for i, h := range hooks {
		hooks[i] = nil
		h.OnCancel()
	}
}

// OnCancel makes c a Hook of its parent.
func (c *Context) OnCancel() {
	if p := c.up; p != nil {
		c.cancel(p.Err(), p.Cause())
	}
}

// Notify registers h to be told when c is cancelled. It reports false,
// without registering, when c is already cancelled.
func (c *Context) Notify(h Hook) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.hooks = append(c.hooks, h)
	return true
}

// Stop unregisters h. It reports whether h was registered and has not
// been told (false once c was cancelled).
func (c *Context) Stop(h Hook) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.hooks {
		if x == h {
			last := len(c.hooks) - 1
			c.hooks[i] = c.hooks[last]
			c.hooks[last] = nil
			c.hooks = c.hooks[:last]
			return true
		}
	}
	return false
}

// Deadline is the parent's.
func (c *Context) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Done returns a channel closed when c is cancelled. It is made on the
// first call.
func (c *Context) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

// Err is nil until c is cancelled, then context.Canceled, or the parent's
// error when the parent's cancellation ended c.
func (c *Context) Err() error {
	if !c.cancelled.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Cause is why c was cancelled (nil before).
func (c *Context) Cause() error {
	if !c.cancelled.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Value is the parent's.
func (c *Context) Value(key any) any { return c.parent.Value(key) }

// AfterFunc arranges for f to run on its own goroutine when c is
// cancelled (at once when it already is), as context.AfterFunc does; the
// returned stop reports whether it kept f from running. context.AfterFunc
// and context.WithCancel use it when their parent is a Context.
func (c *Context) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	if !c.Notify(a) {
		a.OnCancel()
		return func() bool { return false }
	}
	return func() bool {
		return c.Stop(a) && a.claim()
	}
}

type afterFunc struct {
	f    func()
	once atomic.Bool
}

func (a *afterFunc) claim() bool { return a.once.CompareAndSwap(false, true) }

func (a *afterFunc) OnCancel() {
	if a.claim() {
		go a.f()
	}
}

func (c *Context) String() string { return "streamctx.Context" }
