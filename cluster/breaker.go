package cluster

import (
	"context"
	"sync/atomic"
)

// breaker is one priority's circuit breakers (Envoy's ResourceManager).
//
//   - max_requests bounds requests in flight; beyond it a request fails at
//     once (upstream_rq_pending_overflow, as Envoy counts it).
//   - max_connections bounds, for HTTP/1.1, the requests in flight that hold
//     a connection; a request that finds none free waits as "pending"
//     (upstream_cx_overflow, upstream_rq_pending_total) until one frees.
//   - max_pending_requests bounds those waiting requests; beyond it a
//     request fails at once (upstream_rq_pending_overflow).
//   - max_connections also bounds the TCP proxy's connections (Dial).
//   - max_retries bounds retries in flight (upstream_rq_retry_overflow).
type breaker struct {
	th    thresholds
	stats *clusterStats
	base  int // first of this priority's gauges in clusterGauges

	requests atomic.Int64
	pending  atomic.Int64
	retries  atomic.Int64
	conns    atomic.Int64                  // open connections (priority DEFAULT counts all)
	slots    atomic.Pointer[chan struct{}] // HTTP/1.1 connection slots, made on first use

	rem *remainingGauges // with track_remaining only
}

type remainingGauges struct {
	cx, pending, rq, retries Gauge
}

func newBreaker(th thresholds, st *clusterStats, high bool) *breaker {
	b := &breaker{th: th, stats: st, base: gBreakerDefault}
	p := "circuit_breakers.default."
	if high {
		p = "circuit_breakers.high."
		b.base = gBreakerHigh
	}
	if th.trackRemaining {
		b.rem = &remainingGauges{
			cx:      st.gauge(p + "remaining_cx"),
			pending: st.gauge(p + "remaining_pending"),
			rq:      st.gauge(p + "remaining_rq"),
			retries: st.gauge(p + "remaining_retries"),
		}
		b.rem.cx.Set(th.maxConnections)
		b.rem.pending.Set(th.maxPending)
		b.rem.rq.Set(th.maxRequests)
		b.rem.retries.Set(th.maxRetries)
	}
	return b
}

// slotCh is the semaphore of HTTP/1.1 connection slots (max_connections).
func (b *breaker) slotCh() chan struct{} {
	if p := b.slots.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, b.th.maxConnections)
	if !b.slots.CompareAndSwap(nil, &ch) {
		return *b.slots.Load()
	}
	return ch
}

func (b *breaker) cxOpen() Gauge        { return b.stats.g(b.base + bgCxOpen) }
func (b *breaker) rqPendingOpen() Gauge { return b.stats.g(b.base + bgRqPendingOpen) }
func (b *breaker) rqOpen() Gauge        { return b.stats.g(b.base + bgRqOpen) }
func (b *breaker) rqRetryOpen() Gauge   { return b.stats.g(b.base + bgRqRetryOpen) }

// remainingCx and the others are the remaining_* gauges, nil without
// track_remaining.
func (b *breaker) remainingCx() Gauge {
	if b.rem == nil {
		return nil
	}
	return b.rem.cx
}

func (b *breaker) remainingPending() Gauge {
	if b.rem == nil {
		return nil
	}
	return b.rem.pending
}

func (b *breaker) remainingRq() Gauge {
	if b.rem == nil {
		return nil
	}
	return b.rem.rq
}

func (b *breaker) remainingRetries() Gauge {
	if b.rem == nil {
		return nil
	}
	return b.rem.retries
}

func remaining(g Gauge, max uint64, n int64) {
	if g == nil {
		return
	}
	if n < 0 {
		n = 0
	}
	if uint64(n) >= max {
		g.Set(0)
		return
	}
	g.Set(max - uint64(n))
}

func (b *breaker) acquireRequest() bool {
	n := b.requests.Add(1)
	if uint64(n) > b.th.maxRequests {
		b.requests.Add(-1)
		b.rqOpen().Set(1)
		return false
	}
	if uint64(n) == b.th.maxRequests {
		b.rqOpen().Set(1)
	}
	remaining(b.remainingRq(), b.th.maxRequests, n)
	return true
}

func (b *breaker) releaseRequest() {
	n := b.requests.Add(-1)
	if uint64(n) < b.th.maxRequests {
		b.rqOpen().Set(0)
	}
	remaining(b.remainingRq(), b.th.maxRequests, n)
}

// acquireSlot takes an HTTP/1.1 connection slot, waiting as a pending
// request when none is free.
func (b *breaker) acquireSlot(ctx context.Context) error {
	slots := b.slotCh()
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	b.cxOpen().Set(1)
	b.stats.cxOverflow().Inc()
	n := b.pending.Add(1)
	if uint64(n) > b.th.maxPending {
		b.pending.Add(-1)
		b.rqPendingOpen().Set(1)
		return &OverflowError{Resource: "max_pending_requests"}
	}
	if uint64(n) == b.th.maxPending {
		b.rqPendingOpen().Set(1)
	}
	remaining(b.remainingPending(), b.th.maxPending, n)
	b.stats.rqPendingTotal().Inc()
	b.stats.rqPendingActive().Inc()
	defer func() {
		n := b.pending.Add(-1)
		if uint64(n) < b.th.maxPending {
			b.rqPendingOpen().Set(0)
		}
		remaining(b.remainingPending(), b.th.maxPending, n)
		b.stats.rqPendingActive().Dec()
	}()
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *breaker) releaseSlot() {
	slots := b.slotCh()
	<-slots
	if len(slots) < cap(slots) {
		b.cxOpen().Set(0)
	}
}

// acquireConn checks max_connections for a new TCP proxy connection.
func (b *breaker) acquireConn(open int64) bool {
	if uint64(open) >= b.th.maxConnections {
		b.cxOpen().Set(1)
		return false
	}
	remaining(b.remainingCx(), b.th.maxConnections, open+1)
	return true
}

func (b *breaker) tryRetry() bool {
	n := b.retries.Add(1)
	if uint64(n) > b.th.maxRetries {
		b.retries.Add(-1)
		b.rqRetryOpen().Set(1)
		b.stats.rqRetryOverflow().Inc()
		return false
	}
	if uint64(n) == b.th.maxRetries {
		b.rqRetryOpen().Set(1)
	}
	remaining(b.remainingRetries(), b.th.maxRetries, n)
	return true
}

func (b *breaker) retryDone() {
	n := b.retries.Add(-1)
	if uint64(n) < b.th.maxRetries {
		b.rqRetryOpen().Set(0)
	}
	remaining(b.remainingRetries(), b.th.maxRetries, n)
}
