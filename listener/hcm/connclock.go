package hcm

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connIdleClock times idle_timeout on an HTTP/1.1 connection waiting for
// its next request. Waiting only records when it started (wait) and ends
// with one atomic swap (wake): no read deadline is set and cleared per
// request. The timer is armed at the first wait and stays armed while
// the connection lives; when it fires it looks at the wait in progress:
// none (a request is being served) or a younger one than idle_timeout, it
// re-arms for the earliest moment the connection could have idled out;
// one that lasted idle_timeout, it interrupts the pending read (a read
// deadline in the past), as the read deadline did before.
type connIdleClock struct {
	nc      net.Conn
	timeout time.Duration
	// epoch is the connection's start; times are monotonic offsets from
	// it.
	epoch time.Time
	// since is when the wait in progress started (nanoseconds since
	// epoch, plus one), or one of the idle* states below.
	since atomic.Int64

	mu sync.Mutex
	t  *time.Timer // nil until the first wait
}

const (
	idleBusy    = 0  // no wait in progress: a request is being served
	idleExpired = -1 // fire interrupted the wait
	idleClosed  = -2 // the connection ended: the timer is stopped
)

// wait records that the connection starts waiting for a request. Only the
// connection's goroutine calls wait and wake.
func (k *connIdleClock) wait() {
	k.since.Store(int64(time.Since(k.epoch)) + 1)
	if k.t == nil {
		k.mu.Lock()
		k.t = time.AfterFunc(k.timeout, k.fire)
		k.mu.Unlock()
	}
}

// wake ends the wait; it reports false when the clock ended it (the
// connection idled out, even if a request arrived just then).
func (k *connIdleClock) wake() bool { return k.since.Swap(idleBusy) != idleExpired }

// close stops the clock for good: the connection ended, or carries
// HTTP/2 from now on.
func (k *connIdleClock) close() {
	k.mu.Lock()
	k.since.Store(idleClosed)
	if k.t != nil {
		k.t.Stop()
	}
	k.mu.Unlock()
}

func (k *connIdleClock) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		v := k.since.Load()
		switch v {
		case idleClosed, idleExpired:
			return
		case idleBusy:
			// The connection cannot idle out before a full timeout
			// from now.
			k.t.Reset(k.timeout)
			return
		}
		idle := time.Since(k.epoch) - time.Duration(v-1)
		if idle < k.timeout {
			k.t.Reset(k.timeout - idle)
			return
		}
		if k.since.CompareAndSwap(v, idleExpired) {
			// wake sees idleExpired from now on, so the connection will
			// not read again: the past deadline cannot hit a request.
			_ = k.nc.SetReadDeadline(time.Unix(1, 0))
			return
		}
		// The wait ended (or a new one started) meanwhile: look again.
	}
}
