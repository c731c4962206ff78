package wasm

import (
	"context"
	"sync"
	"time"
)

// watchdogTick is how often the watchdog looks at running callbacks. A
// callback's deadline is enforced within one tick.
const watchdogTick = 5 * time.Millisecond

// watchdog ends callbacks that run past their deadline by closing the
// instance's module, which wazero (WithCloseOnContextDone) turns into an
// immediate exit of the running call. The hot path pays two atomic stores
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
	ticks   int
}

func newWatchdog() *watchdog {
	w := &watchdog{instances: map[*instance]*watchState{}, done: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w
}

func (w *watchdog) add(i *instance) {
	w.mu.Lock()
	w.instances[i] = &watchState{}
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
	w.mu.Lock()
	for inst, st := range w.instances {
		seq := inst.callSeq.Load()
		if !inst.busy.Load() || seq != st.lastSeq {
			st.lastSeq = seq
			st.ticks = 0
			continue
		}
		st.ticks++
		limit := int(inst.deadline.Load() / int64(watchdogTick))
		if limit < 1 {
			limit = 1
		}
		if st.ticks > limit {
			expired = append(expired, inst)
			delete(w.instances, inst)
		}
	}
	w.mu.Unlock()
	for _, inst := range expired {
		inst.timedOut.Store(true)
		// Closing the module makes the running call return a sys.ExitError
		// at its next loop header or function entry.
		_ = inst.mod.CloseWithExitCode(context.Background(), 124)
	}
}
