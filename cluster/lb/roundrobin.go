package lb

import (
	"sync"
	"sync/atomic"
)

// maxSchedule bounds the precomputed weighted schedule; above it the smooth
// weighted round robin runs under a lock.
const maxSchedule = 1 << 16

type roundRobin struct {
	n        uint64
	next     atomic.Uint64
	schedule []uint32 // nil when all weights are equal

	// Lock-based smooth weighted round robin for very large weight sums.
	mu      sync.Mutex
	weights []int64
	current []int64
	total   int64
}

func newRoundRobin(hosts []Host, r func() uint64) *roundRobin {
	b := &roundRobin{n: uint64(len(hosts))}
	b.next.Store(r())
	w := make([]uint64, len(hosts))
	equal := true
	for i, h := range hosts {
		w[i] = uint64(max(h.Weight(), 1))
		if w[i] != w[0] {
			equal = false
		}
	}
	if equal {
		return b
	}
	g := w[0]
	for _, x := range w[1:] {
		g = gcd(g, x)
	}
	var sum uint64
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	b.weights = make([]int64, len(w))
	for i := range w {
		b.weights[i] = int64(w[i])
	}
	b.total = int64(sum)
	if sum <= maxSchedule {
		b.schedule = smoothSchedule(b.weights, int(sum))
		b.weights = nil
		return b
	}
	b.current = make([]int64, len(w))
	// Start somewhere random in the cycle, as the equal-weight case does.
	for range r() % uint64(len(w)) {
		b.smoothNext()
	}
	return b
}

// smoothSchedule is one cycle of nginx's smooth weighted round robin: every
// host's share appears spread out rather than in runs.
func smoothSchedule(weights []int64, total int) []uint32 {
	cur := make([]int64, len(weights))
	out := make([]uint32, total)
	for k := range out {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		out[k] = uint32(best)
	}
	return out
}

func (b *roundRobin) smoothNext() int {
	best := 0
	for i, w := range b.weights {
		b.current[i] += w
		if b.current[i] > b.current[best] {
			best = i
		}
	}
	b.current[best] -= b.total
	return best
}

func (b *roundRobin) Pick(uint64, bool, uint32) int {
	if b.schedule != nil {
		return int(b.schedule[(b.next.Add(1)-1)%uint64(len(b.schedule))])
	}
	if b.weights != nil {
		b.mu.Lock()
		i := b.smoothNext()
		b.mu.Unlock()
		return i
	}
	return int((b.next.Add(1) - 1) % b.n)
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
