package wasm

import (
	"time"

	"github.com/tetratelabs/wazero/api"
)

// contextState is one Proxy-Wasm context inside an instance: a root context
// (plugin) or a stream context (HTTP or TCP).
type contextState struct {
	id     uint32
	inst   *instance
	plugin *Plugin
	root   *contextState // nil for a root context
	http   *HTTPStream
	tcp    *TCPStream
	// props holds the context's user properties, filter state and (root
	// contexts) declared properties; see properties.go.
	props *propState

	tickPeriod time.Duration
	tickTimer  *time.Timer
	// pendingDone is set when proxy_on_done returned false; proxy_done
	// finishes the context.
	pendingDone bool
	finished    bool
}

// newContextLocked allocates a context id and registers the context.
func (i *instance) newContextLocked(p *Plugin, root *contextState) *contextState {
	i.nextID++
	c := &contextState{id: i.nextID, inst: i, plugin: p, root: root}
	i.contexts[c.id] = c
	return c
}

func (i *instance) removeContextLocked(c *contextState) {
	delete(i.contexts, c.id)
	c.finished = true
	i.cancelCalloutsLocked(c)
}

// enterLocked calls a void callback with c as the active and effective
// context. A missing callback is a no-op.
func (i *instance) enterLocked(c *contextState, fn api.Function, args ...uint64) error {
	_, err := i.enterResultLocked(c, fn, args...)
	return err
}

// enterResultLocked calls a callback with c as the active and effective
// context and returns its result.
func (i *instance) enterResultLocked(c *contextState, fn api.Function, args ...uint64) (uint64, error) {
	if fn == nil {
		return 0, nil
	}
	prevActive, prevEff := i.active, i.effective
	i.active, i.effective = c, c
	res, err := i.callLocked(fn, args...)
	i.active, i.effective = prevActive, prevEff
	if i.depth == 0 && len(i.deferred) > 0 {
		i.runDeferredLocked()
	}
	return res, err
}

// deferLocked queues work to run after the current callback returns.
func (i *instance) deferLocked(f func()) { i.deferred = append(i.deferred, f) }

// runDeferredLocked runs queued work (which may queue more).
func (i *instance) runDeferredLocked() {
	for len(i.deferred) > 0 {
		f := i.deferred[0]
		i.deferred = i.deferred[1:]
		if !i.dead.Load() {
			f()
		}
	}
	i.deferred = nil
}

// finishContextLocked runs the end of a context's life: proxy_on_done, and
// unless it returned false, proxy_on_log and proxy_on_delete.
func (i *instance) finishContextLocked(c *contextState) {
	if c.finished || i.dead.Load() {
		i.removeContextLocked(c)
		return
	}
	done := uint64(1)
	if i.fns.onDone != nil {
		res, err := i.enterResultLocked(c, i.fns.onDone, uint64(c.id))
		if err != nil {
			i.removeContextLocked(c)
			return
		}
		done = res
	}
	if done == 0 {
		c.pendingDone = true
		return
	}
	i.completeContextLocked(c)
}

// completeContextLocked calls proxy_on_log (stream contexts only, like
// Envoy: the AssemblyScript SDK aborts on a root context's proxy_on_log)
// and proxy_on_delete.
func (i *instance) completeContextLocked(c *contextState) {
	c.pendingDone = false
	if c.root != nil && (c.http == nil || !c.http.logged) {
		if err := i.enterLocked(c, i.fns.onLog, uint64(c.id)); err != nil {
			i.removeContextLocked(c)
			return
		}
	}
	_ = i.enterLocked(c, i.fns.onDelete, uint64(c.id))
	i.removeContextLocked(c)
}

// stopTick stops the context's timer.
func (c *contextState) stopTick() {
	if c.tickTimer != nil {
		c.tickTimer.Stop()
		c.tickTimer = nil
	}
	c.tickPeriod = 0
}
