package lb

import (
	"math"
	"slices"
	"strconv"
)

type ringEntry struct {
	hash uint64
	host uint32
}

type ring struct {
	entries []ringEntry
	rand    func() uint64
}

func (c *Config) ringSizes() (uint64, uint64) {
	minR, maxR := c.MinRingSize, c.MaxRingSize
	if minR == 0 {
		minR = DefaultMinRingSize
	}
	if maxR == 0 {
		maxR = DefaultMaxRingSize
	}
	return minR, maxR
}

func newRing(c Config, hosts []Host, r func() uint64) *ring {
	minR, maxR := c.ringSizes()
	var sum float64
	for _, h := range hosts {
		sum += float64(max(h.Weight(), 1))
	}
	minW := math.Inf(1)
	for _, h := range hosts {
		minW = min(minW, float64(max(h.Weight(), 1))/sum)
	}
	scale := min(math.Ceil(minW*float64(minR))/minW, float64(maxR))
	b := &ring{entries: make([]ringEntry, 0, int(math.Ceil(scale))), rand: r}
	var current, target float64
	var key []byte
	for hi, h := range hosts {
		key = append(key[:0], h.HashKey()...)
		key = append(key, '_')
		base := len(key)
		target += scale * float64(max(h.Weight(), 1)) / sum
		for i := uint64(0); current < target; i++ {
			key = strconv.AppendUint(key[:base], i, 10)
			var hv uint64
			if c.Hash == Murmur2 {
				hv = MurmurHash2(key, MurmurSeed)
			} else {
				hv = XXHash64(key, 0)
			}
			b.entries = append(b.entries, ringEntry{hash: hv, host: uint32(hi)})
			current++
		}
	}
	slices.SortStableFunc(b.entries, func(x, y ringEntry) int {
		switch {
		case x.hash < y.hash:
			return -1
		case x.hash > y.hash:
			return 1
		}
		return 0
	})
	return b
}

func (b *ring) Pick(hash uint64, hasHash bool, attempt uint32) int {
	n := len(b.entries)
	if !hasHash {
		hash = b.rand()
	}
	// First point at or after hash, wrapping to the start.
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.entries[m].hash < hash {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == n {
		lo = 0
	}
	if attempt > 0 {
		lo = (lo + int(attempt)) % n
	}
	return int(b.entries[lo].host)
}

// Size is the number of points on the ring (for tests and stats).
func RingSize(bal Balancer) int {
	if r, ok := bal.(*ring); ok {
		return len(r.entries)
	}
	return 0
}
