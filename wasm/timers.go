package wasm

import (
	"context"
	"time"
)

func timerFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_set_tick_period_milliseconds", 1, hostSetTickPeriod),
		{
			module: "env", name: "proxy_get_current_time_nanoseconds",
			params: i32s(1), results: statusResult,
			fn: func(_ context.Context, i *instance, st []uint64) {
				if !i.writeU64(u32(st, 0), uint64(i.now().UnixNano())) {
					st[0] = uint64(StatusInvalidMemoryAccess)
					return
				}
				st[0] = uint64(StatusOK)
			},
		},
	}
}

// proxy_set_tick_period_milliseconds(period): proxy_on_tick on the
// effective root context every period; 0 stops it.
func hostSetTickPeriod(_ context.Context, i *instance, st []uint64) Status {
	c := i.effective
	if c == nil {
		return StatusBadArgument
	}
	if c.root != nil {
		// Envoy sets the tick on the root context of a stream context.
		c = c.root
	}
	c.stopTick()
	period := time.Duration(u32(st, 0)) * time.Millisecond
	if period == 0 {
		return StatusOK
	}
	c.tickPeriod = period
	i.scheduleTickLocked(c)
	return StatusOK
}

func (i *instance) scheduleTickLocked(c *contextState) {
	period := c.tickPeriod
	var t *time.Timer
	t = time.AfterFunc(period, func() {
		i.mu.Lock()
		if c.tickTimer != t || c.finished || i.dead.Load() {
			i.mu.Unlock()
			return
		}
		err := i.enterLocked(c, i.fns.onTick, uint64(c.id))
		if err == nil && c.tickTimer == t {
			i.scheduleTickLocked(c)
		}
		touched := i.tickedStreamsLocked(c)
		i.mu.Unlock()
		for _, s := range touched {
			s.afterAsync(nil)
		}
	})
	c.tickTimer = t
}

// tickedStreamsLocked returns the streams of root whose filter asked
// something of the data plane during root's proxy_on_tick (after
// proxy_set_effective_context: continue, close, local response), so the
// timer delivers it like a callout completion does. A stream the data plane
// already closed (pending proxy_done) has nothing left to resume.
func (i *instance) tickedStreamsLocked(root *contextState) []interface{ afterAsync(error) } {
	var out []interface{ afterAsync(error) }
	for _, sc := range i.contexts {
		if sc.root != root {
			continue
		}
		switch {
		case sc.http != nil && len(sc.http.events) > 0:
			if sc.pendingDone {
				sc.http.events = nil
				continue
			}
			out = append(out, sc.http)
		case sc.tcp != nil && len(sc.tcp.events) > 0:
			if sc.pendingDone {
				sc.tcp.events = nil
				continue
			}
			out = append(out, sc.tcp)
		}
	}
	return out
}
