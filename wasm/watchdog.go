package wasm

import (
	"sync"
	"time"
)

// watchdogTick is how often the watchdog looks at running callbacks. A
// callback's deadline is enforced within one tick.
const watchdogTick = 5 * time.Millisecond

// watchdog ends callbacks that run past their deadline: it sets the
// instance's stop global, on which an instrumented module traps at its next
// loop iteration (instrument.go), and cancels the instance's context, which
// makes wazero (WithCloseOnContextDone) exit a module compiled with its own
// termination checks. The hot path pays two atomic stores
// per callback (instance.enter/leave); the watchdog compares call sequence
// numbers between ticks, so no clock is read per call.
type watchdog struct {
	mu        sync.Mutex
	instances map[*instance]*watchState
	stopOnce  sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

type watchState struct {
	lastSeq uint64
	// since is when the watchdog first saw the current call running.
	since time.Time
}

func newWatchdog() *watchdog {
	w := &watchdog{instances: map[*instance]*watchState{}, done: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w
}

func (w *watchdog) add(i *instance) {
	w.mu.Lock()
	// Start the clock now: a zero time would look like a call running
	// since forever.
	w.instances[i] = &watchState{lastSeq: i.callSeq.Load(), since: time.Now()}
	w.mu.Unlock()
}

func (w *watchdog) remove(i *instance) {
	w.mu.Lock()
	delete(w.instances, i)
	w.mu.Unlock()
}

func (w *watchdog) stop() {
	w.stopOnce.Do(func() { close(w.done) })
	w.wg.Wait()
}

func (w *watchdog) loop() {
	defer w.wg.Done()
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			w.check()
		}
	}
}

func (w *watchdog) check() {
	var expired []*instance
	now := time.Now()
	w.mu.Lock()
	for inst, st := range w.instances {
		// busy before the call number: a call sets its number first, so a
		// busy flag seen here belongs to this number or an older one.
		busy := inst.busy.Load()
		seq := inst.callSeq.Load()
		if !busy || seq != st.lastSeq {
			// A new call (or none): measure from now. Elapsed time, not a
			// tick count, so a busy machine dropping ticks cannot stretch
			// the deadline; a call is caught within one tick of it.
			st.lastSeq = seq
			st.since = now
			continue
		}
		if now.Sub(st.since) >= time.Duration(inst.deadline.Load()) {
			expired = append(expired, inst)
			delete(w.instances, inst)
		}
	}
	w.mu.Unlock()
	for _, inst := range expired {
		inst.timedOut.Store(true)
		if s := inst.stop.Load(); s != nil {
			s.g.Set(1)
		}
		// Cancelling the instance's context makes the running call (even
		// instantiation, before the module exists) return at its next loop
		// header or function entry (wazero's close-on-context-done).
		inst.cancel()
	}
}
