package hcm

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a worker may wait for a stream before it ends.
const workerIdle = 10 * time.Second

// workerPool runs HTTP/2 streams on goroutines that outlive them, so a
// stream starts on a goroutine whose stack has already grown. A stream
// goes to a waiting worker, or to a new one.
//
// A waiting worker blocks on the work channel alone: a timer in that
// select would be added to and taken off the runtime's timer heap at
// every wait. Retiring is decided by a janitor instead, once per idle
// period: the fewest workers that were waiting at any moment of the
// period (a low-water mark the workers keep) were not needed during it,
// and that many are told to end.
type workerPool struct {
	ctx  context.Context
	work chan func()
	// idleFor is the retirement period (workerIdle outside tests).
	idleFor time.Duration

	waiting atomic.Int64 // workers blocked on work
	low     atomic.Int64 // the fewest waiting since the janitor's last look
	spawned atomic.Int64 // workers started, for tests
	janitor sync.Once
}

func newWorkerPool(ctx context.Context, idleFor time.Duration) *workerPool {
	return &workerPool{ctx: ctx, work: make(chan func()), idleFor: idleFor}
}

// run runs fn on a worker.
func (p *workerPool) run(fn func()) {
	select {
	case p.work <- fn:
	default:
		p.janitor.Do(func() { go p.retire() })
		p.spawned.Add(1)
		go p.worker(fn)
	}
}

func (p *workerPool) worker(fn func()) {
	for fn != nil { // nil: the janitor retires this worker
		fn()
		p.waiting.Add(1)
		select {
		case fn = <-p.work:
		case <-p.ctx.Done():
			fn = nil
		}
		n := p.waiting.Add(-1)
		for {
			l := p.low.Load()
			if n >= l || p.low.CompareAndSwap(l, n) {
				break
			}
		}
	}
}

// retire ends, once per period, as many waiting workers as were never
// all needed during it.
func (p *workerPool) retire() {
	t := time.NewTicker(p.idleFor)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		unused := p.low.Swap(p.waiting.Load())
		for ; unused > 0; unused-- {
			select {
			case p.work <- nil:
			default:
				unused = 0 // none is waiting after all
			}
		}
	}
}
