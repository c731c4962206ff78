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
	smooth   *smoothWRR
}

// smoothWRR is the lock-based smooth weighted round robin for very large
// weight sums (kept apart: most balancers have equal weights).
type smoothWRR struct {
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
	weights := make([]int64, len(w))
	for i := range w {
		weights[i] = int64(w[i])
	}
	if sum <= maxSchedule {
		b.schedule = smoothSchedule(weights, int(sum))
		return b
	}
	b.smooth = &smoothWRR{weights: weights, current: make([]int64, len(w)), total: int64(sum)}
	// Start somewhere random in the cycle, as the equal-weight case does.
	for range r() % uint64(len(w)) {
		b.smooth.next()
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

func (s *smoothWRR) next() int {
	best := 0
	for i, w := range s.weights {
		s.current[i] += w
		if s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= s.total
	return best
}

func (b *roundRobin) Pick(uint64, bool, uint32) int {
	if b.schedule != nil {
		return int(b.schedule[(b.next.Add(1)-1)%uint64(len(b.schedule))])
	}
	if s := b.smooth; s != nil {
		s.mu.Lock()
		i := s.next()
		s.mu.Unlock()
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
