package hcm

import "time"

// lazyTimer is the timer of the idle clocks: it is moved only to fire
// earlier. armBy leaves it alone when it already fires by the deadline
// asked for, and the clock's fire function, finding time left, re-arms it
// for the rest. Its owner guards it with its own lock.
type lazyTimer struct {
	t    *time.Timer
	due  time.Time // when t fires; zero when it is not armed
	fire func()    // what the timer runs; set by the owner before armBy
}

// armBy makes the timer fire no later than now+d.
func (l *lazyTimer) armBy(now time.Time, d time.Duration) {
	deadline := now.Add(d)
	switch {
	case l.t == nil:
		l.t = time.AfterFunc(d, l.fire)
	case l.due.IsZero() || l.due.After(deadline):
		l.t.Reset(d)
	default:
		return
	}
	l.due = deadline
}

// rearm has the timer fire again in d (called when it fired).
func (l *lazyTimer) rearm(now time.Time, d time.Duration) {
	l.t.Reset(d)
	l.due = now.Add(d)
}

// fired records that the timer ran and is not armed.
func (l *lazyTimer) fired() { l.due = time.Time{} }

// stop stops the timer for good.
func (l *lazyTimer) stop() {
	if l.t != nil {
		l.t.Stop()
	}
	l.due = time.Time{}
}
