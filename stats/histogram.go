package stats

import (
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// Unit is the unit of a histogram's values, as in Envoy. It is reported, not
// interpreted: values are recorded and printed as given.
type Unit uint8

// The histogram units.
const (
	Unspecified Unit = iota
	Bytes
	Microseconds
	Milliseconds
	Percent
)

// String returns the unit's name.
func (u Unit) String() string {
	switch u {
	case Bytes:
		return "bytes"
	case Microseconds:
		return "microseconds"
	case Milliseconds:
		return "milliseconds"
	case Percent:
		return "percent"
	}
	return "unspecified"
}

// DefaultBuckets are Envoy's default histogram bucket bounds, used for the
// Prometheus _bucket lines and the cumulative/disjoint admin views.
func DefaultBuckets() []float64 {
	return []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
		30000, 60000, 300000, 600000, 1800000, 3600000}
}

// Quantiles are the quantiles the admin output reports, as in Envoy.
func Quantiles() []float64 {
	return []float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}
}

// Log-linear bins with two significant decimal digits, the layout of Envoy's
// circllhist: a value v >= 1 with d decimal digits falls in the bin
// [m*10^(d-2), (m+1)*10^(d-2)) where m is its two leading digits (10..99); 0
// has a bin of its own with zero width. Integers below 100 therefore get an
// exact bin each (1..9 are [v, v+0.1), as in circllhist). A decade's 90 bins
// are allocated the first time a value falls in that decade, so the steady
// state records without allocating and an idle histogram costs a few hundred
// bytes.
const (
	decades       = 20 // 10^0 .. 10^19 covers every uint64
	binsPerDecade = 90
)

type decade [binsPerDecade]atomic.Uint64

// pow10 returns 10^e for 0 <= e <= 19.
func pow10(e int) uint64 {
	p := uint64(1)
	for ; e > 0; e-- {
		p *= 10
	}
	return p
}

// binOf returns the decade index (the decimal exponent of v) and the two
// leading digits of v, for v > 0.
func binOf(v uint64) (e int, m uint64) {
	// floor(log10(v)) from the bit length, corrected by one comparison.
	e = (bits.Len64(v) * 1233) >> 12
	p := pow10(e)
	if v < p {
		e--
		p /= 10
	}
	if e == 0 {
		return 0, v * 10
	}
	return e, v / (p / 10)
}

// binBounds returns the left edge and the width of bin m of decade e.
func binBounds(e int, m uint64) (left, width float64) {
	if e == 0 {
		return float64(m) / 10, 0.1
	}
	w := float64(pow10(e - 1))
	return float64(m) * w, w
}

// Histogram records a distribution of uint64 values. Record is lock-free and,
// once a value's decade has been seen, allocation-free.
type Histogram struct {
	name string
	unit Unit

	zero    atomic.Uint64
	decades [decades]atomic.Pointer[decade]
	sum     atomic.Uint64
	used    atomic.Bool
	bounds  []float64       // bucket upper bounds, ascending, immutable
	buckets []atomic.Uint64 // len(bounds)+1: disjoint counts, last is > every bound

	mu       sync.Mutex // guards the interval state below (Flush and readers)
	last     histState  // cumulative state at the last Flush
	interval histState  // what was recorded between the last two Flushes
}

// NewHistogram returns a histogram that belongs to no store, for a Source
// that keeps its own registry (the Proxy-Wasm host). A nil buckets means
// DefaultBuckets.
func NewHistogram(name string, unit Unit, buckets []float64) *Histogram {
	if buckets == nil {
		buckets = DefaultBuckets()
	}
	b := slices.Clone(buckets)
	slices.Sort(b)
	b = slices.Compact(b)
	return &Histogram{name: name, unit: unit, bounds: b, buckets: make([]atomic.Uint64, len(b)+1)}
}

// Name returns the histogram's full dotted name.
func (h *Histogram) Name() string { return h.name }

// Unit returns the histogram's unit.
func (h *Histogram) Unit() Unit { return h.unit }

// Used reports whether a value was ever recorded.
func (h *Histogram) Used() bool { return h.used.Load() }

// Record adds one sample.
func (h *Histogram) Record(v uint64) {
	if v == 0 {
		h.zero.Add(1)
	} else {
		e, m := binOf(v)
		d := h.decades[e].Load()
		if d == nil {
			d = h.growDecade(e)
		}
		d[m-10].Add(1)
	}
	// Bucket counters are exact (v <= bound), unlike circllhist's
	// approximation, so a 1 ms sample lands in le="1".
	i := 0
	fv := float64(v)
	for i < len(h.bounds) && fv > h.bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(v)
	if !h.used.Load() {
		h.used.Store(true)
	}
}

func (h *Histogram) growDecade(e int) *decade {
	fresh := new(decade)
	if h.decades[e].CompareAndSwap(nil, fresh) {
		return fresh
	}
	return h.decades[e].Load()
}

// histState is a copy of a histogram's counts.
type histState struct {
	zero    uint64
	bins    map[int]uint64 // key e*100+m
	sum     uint64
	buckets []uint64 // disjoint
}

func (h *Histogram) state() histState {
	s := histState{zero: h.zero.Load(), bins: map[int]uint64{}, sum: h.sum.Load(),
		buckets: make([]uint64, len(h.buckets))}
	for e := range h.decades {
		d := h.decades[e].Load()
		if d == nil {
			continue
		}
		for i := range d {
			if n := d[i].Load(); n != 0 {
				s.bins[e*100+i+10] = n
			}
		}
	}
	for i := range h.buckets {
		s.buckets[i] = h.buckets[i].Load()
	}
	return s
}

func (s histState) minus(o histState) histState {
	d := histState{zero: s.zero - o.zero, bins: map[int]uint64{}, sum: s.sum - o.sum,
		buckets: make([]uint64, len(s.buckets))}
	for k, n := range s.bins {
		if n -= o.bins[k]; n != 0 {
			d.bins[k] = n
		}
	}
	for i := range s.buckets {
		d.buckets[i] = s.buckets[i]
		if i < len(o.buckets) {
			d.buckets[i] -= o.buckets[i]
		}
	}
	return d
}

// Flush closes the current interval: afterwards the interval statistics are
// what was recorded since the previous Flush. The store calls it for every
// histogram from Store.Flush, Envoy's stats flush.
func (h *Histogram) Flush() {
	now := h.state()
	h.mu.Lock()
	h.interval = now.minus(h.last)
	h.last = now
	h.mu.Unlock()
}

// HistogramStats are the statistics of a histogram over some span (since
// start, or over the last flush interval).
type HistogramStats struct {
	Count uint64
	Sum   float64
	// Bounds are the bucket upper bounds, ascending; Buckets[i] counts the
	// samples <= Bounds[i] (cumulative, Prometheus style).
	Bounds  []float64
	Buckets []uint64
	// Quantiles are the values at Quantiles(), NaN when there is no sample.
	Quantiles []float64
}

// Disjoint returns the per-bucket counts (samples in (Bounds[i-1], Bounds[i]]).
func (s HistogramStats) Disjoint() []uint64 {
	out := make([]uint64, len(s.Buckets))
	var prev uint64
	for i, c := range s.Buckets {
		out[i] = c - prev
		prev = c
	}
	return out
}

// Cumulative returns the statistics of every sample recorded since the
// histogram was created. Unlike Envoy, whose cumulative view is refreshed at
// each stats flush, this is live.
func (h *Histogram) Cumulative() HistogramStats { return h.stats(h.state()) }

// Interval returns the statistics of the last complete flush interval (zero
// count and NaN quantiles before the first Flush).
func (h *Histogram) Interval() HistogramStats {
	h.mu.Lock()
	s := h.interval
	h.mu.Unlock()
	if s.buckets == nil {
		s.buckets = make([]uint64, len(h.buckets))
	}
	return h.stats(s)
}

func (h *Histogram) stats(s histState) HistogramStats {
	out := HistogramStats{Sum: float64(s.sum), Bounds: h.bounds, Buckets: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range s.buckets {
		cum += s.buckets[i]
		if i < len(out.Buckets) {
			out.Buckets[i] = cum
		}
	}
	out.Count = cum
	out.Quantiles = quantiles(s, Quantiles())
	return out
}

// quantiles interpolates linearly inside the bin where each quantile falls:
// P0 is the left edge of the first non-empty bin, P100 the right edge of the
// last one, so 1000 samples of 11 give P0=11, P50=11.5, P100=12, as Envoy's
// circllhist does.
func quantiles(s histState, qs []float64) []float64 {
	type bin struct {
		left, width float64
		n           uint64
	}
	bins := make([]bin, 0, len(s.bins)+1)
	if s.zero != 0 {
		bins = append(bins, bin{0, 0, s.zero})
	}
	keys := make([]int, 0, len(s.bins))
	for k := range s.bins {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		l, w := binBounds(k/100, uint64(k%100))
		bins = append(bins, bin{l, w, s.bins[k]})
	}
	var total uint64
	for _, b := range bins {
		total += b.n
	}
	out := make([]float64, len(qs))
	if total == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	for i, q := range qs {
		target := q * float64(total)
		var cum float64
		out[i] = bins[len(bins)-1].left + bins[len(bins)-1].width
		for _, b := range bins {
			n := float64(b.n)
			if cum+n >= target {
				out[i] = b.left + (target-cum)/n*b.width
				break
			}
			cum += n
		}
	}
	return out
}
