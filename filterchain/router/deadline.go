package router

import (
	"context"
	"io"
	"sync"
	"time"
)

// deadlineCtx is the request's context with the route timeout (or the
// per-try timeout) added: its parent's values and cancellation, and a
// deadline.
//
// It costs nothing until something asks for its Done channel: a consumer
// that honours Deadline and watches the parent itself (the cluster's
// HTTP/1.1 pool, through DeadlineParent) never makes one. Done, on first
// use, builds a context.WithDeadline of the parent, so consumers that need
// the channel (net/http, HTTP/2, connect, back-off) see the same deadline.
type deadlineCtx struct {
	context.Context // the parent
	deadline        time.Time

	mu      sync.Mutex
	inner   context.Context // made by Done; nil until then
	cancel  context.CancelFunc
	stopped bool
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// DeadlineParent is the context the deadline was added to: a consumer that
// sets the deadline on its I/O and watches this for cancellation need not
// call Done.
func (c *deadlineCtx) DeadlineParent() context.Context { return c.Context }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		if c.stopped {
			return closedChan
		}
		c.inner, c.cancel = context.WithDeadline(c.Context, c.deadline)
	}
	return c.inner.Done()
}

func (c *deadlineCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	inner, stopped := c.inner, c.stopped
	c.mu.Unlock()
	if inner != nil {
		if err := inner.Err(); err != nil {
			return err
		}
	}
	if stopped {
		return context.Canceled
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// AfterFunc lets context.WithCancel and friends of this context hook its
// end without a goroutine of their own.
func (c *deadlineCtx) AfterFunc(f func()) func() bool {
	c.Done()
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner == nil { // stopped before any Done
		go f()
		return func() bool { return false }
	}
	return context.AfterFunc(inner, f)
}

func (c *deadlineCtx) String() string { return "router.deadlineCtx" }

// stop ends the context (its request is over), as a CancelFunc would.
func (c *deadlineCtx) stop() {
	c.mu.Lock()
	c.stopped = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// withDeadline adds deadline d to parent; nil when parent already ends by
// then (parent serves as is).
func withDeadline(parent context.Context, d time.Time) *deadlineCtx {
	if !needDeadline(parent, d) {
		return nil
	}
	return &deadlineCtx{Context: parent, deadline: d}
}

// needDeadline reports whether parent may outlive d.
func needDeadline(parent context.Context, d time.Time) bool {
	pd, ok := parent.Deadline()
	return !ok || pd.After(d)
}

// routeState is a request's route timeout context and the response body
// that stops it, allocated together.
type routeState struct {
	ctx  deadlineCtx
	body stopBody
}

// stopBody is the response body of a request with deadline contexts: they
// end when it closes.
type stopBody struct {
	io.ReadCloser
	route, try *deadlineCtx
}

func (b *stopBody) Close() error {
	err := b.ReadCloser.Close()
	stopBoth(b.route, b.try)
	return err
}

// stopBodyRW is stopBody for an upgraded connection (Write kept for the
// tunnel).
type stopBodyRW struct {
	io.ReadWriteCloser
	route, try *deadlineCtx
}

func (b *stopBodyRW) Close() error {
	err := b.ReadWriteCloser.Close()
	stopBoth(b.route, b.try)
	return err
}

func stopBoth(route, try *deadlineCtx) {
	if try != nil {
		try.stop()
	}
	if route != nil {
		route.stop()
	}
}
