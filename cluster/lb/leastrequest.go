package lb

import "math"

type leastRequest struct {
	hosts   []Host
	choices uint32
	rand    func() uint64

	// Weighted mode: cumulative weights for proportional sampling.
	cum      []uint64 // nil when all weights are equal
	weights  []float64
	bias     float64
	biasOne  bool
	biasZero bool
}

func newLeastRequest(c Config, hosts []Host, r func() uint64) *leastRequest {
	b := &leastRequest{hosts: hosts, choices: c.ChoiceCount, rand: r, bias: 1}
	if b.choices == 0 {
		b.choices = DefaultChoiceCount
	}
	if c.HasActiveRequestBias {
		b.bias = c.ActiveRequestBias
	}
	b.biasOne = b.bias == 1
	b.biasZero = b.bias == 0
	equal := true
	for _, h := range hosts {
		if h.Weight() != hosts[0].Weight() {
			equal = false
			break
		}
	}
	if equal {
		return b
	}
	b.cum = make([]uint64, len(hosts))
	b.weights = make([]float64, len(hosts))
	var sum uint64
	for i, h := range hosts {
		w := uint64(max(h.Weight(), 1))
		sum += w
		b.cum[i] = sum
		b.weights[i] = float64(w)
	}
	return b
}

func (b *leastRequest) sample() int {
	if b.cum == nil {
		return int(b.rand() % uint64(len(b.hosts)))
	}
	x := b.rand() % b.cum[len(b.cum)-1]
	lo, hi := 0, len(b.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.cum[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

func (b *leastRequest) Pick(uint64, bool, uint32) int {
	if len(b.hosts) == 1 {
		return 0
	}
	best := b.sample()
	if b.cum != nil && b.biasZero {
		return best
	}
	bestCost := b.cost(best)
	for range b.choices - 1 {
		i := b.sample()
		if c := b.cost(i); c < bestCost {
			best, bestCost = i, c
		}
	}
	return best
}

func (b *leastRequest) cost(i int) float64 {
	a := float64(b.hosts[i].ActiveRequests())
	if b.cum == nil {
		return a
	}
	if !b.biasOne {
		a = math.Pow(a, b.bias)
	}
	return a / b.weights[i]
}
