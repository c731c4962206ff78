package stats

import "sync/atomic"

// Kind says what a metric is.
type Kind uint8

// The metric kinds.
const (
	KindCounter Kind = iota + 1
	KindGauge
	KindHistogram
)

// String returns the lower-case kind name used in Prometheus TYPE lines.
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "unknown"
}

// ImportMode is Envoy's gauge import mode: what a hot-restarted child does with
// the parent's value. wasmesh has no hot restart, so the mode is recorded and
// reported but changes no value; the zero value is Accumulate.
type ImportMode uint8

// The gauge import modes.
const (
	// Accumulate: the value is carried over (summed) from a parent process.
	Accumulate ImportMode = iota
	// NeverImport: the value belongs to this process only (server.live,
	// server.uptime, active connection counts...).
	NeverImport
)

// statName names a stat without keeping its full name: a block's stats
// point at the block's prefix and StatSet (the name is prefix + the set's
// name at the stat's index), other stats at their full name (set nil).
type statName struct {
	prefix string
	set    *StatSet
	blk    *Block // the block whose name this is; nil outside blocks
}

// Counter is a monotonically increasing value. All methods are safe for
// concurrent use, lock-free and allocation-free. A Counter is 16 bytes: the
// value with the used flag as its top bit, and a reference to its name (a
// block's counter finds its index in the block from its address).
type Counter struct {
	v atomic.Uint64 // the value; counterUsed is the used flag
	n *statName     // never nil
}

// counterUsed is the bit of Counter.v that says the counter was added to:
// values stay below 2^63.
const counterUsed = 1 << 63

// newCounter returns a counter outside any block, named name (one
// allocation for the counter and its name).
func newCounter(name string) *Counter {
	x := &struct {
		c Counter
		n statName
	}{n: statName{prefix: name}}
	x.c.n = &x.n
	return &x.c
}

// Name returns the counter's full dotted name.
func (c *Counter) Name() string {
	if c.n.set == nil {
		return c.n.prefix
	}
	return c.n.prefix + c.n.set.counters[c.index()]
}

// index is the counter's position in its block's counters (a search: only
// names need it, and a block has a few dozen).
func (c *Counter) index() int {
	cs := c.n.blk.counters
	for i := range cs {
		if &cs[i] == c {
			return i
		}
	}
	panic("stats: a block counter outside its block")
}

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n. Adding zero still marks the counter used, as in Envoy.
func (c *Counter) Add(n uint64) {
	if c.v.Add(n)&counterUsed == 0 {
		c.v.Or(counterUsed)
	}
}

// Value returns the current value.
func (c *Counter) Value() uint64 { return c.v.Load() &^ counterUsed }

// Used reports whether the counter was ever added to (for ?usedonly).
func (c *Counter) Used() bool { return c.v.Load()&counterUsed != 0 }

// reset sets the value to zero and keeps the used flag.
func (c *Counter) reset() { c.v.And(counterUsed) }

// Gauge is a value that goes up and down. Like Envoy's gauges it is unsigned:
// Sub below zero wraps around, which is a caller bug. All methods are safe for
// concurrent use, lock-free and allocation-free.
type Gauge struct {
	v    atomic.Uint64
	used atomic.Bool
	mode ImportMode
	idx  uint32    // index in n.set.gauges when n.set != nil
	n    *statName // never nil
}

// newGauge returns a gauge outside any block, named name.
func newGauge(name string, mode ImportMode) *Gauge {
	x := &struct {
		g Gauge
		n statName
	}{n: statName{prefix: name}}
	x.g.n = &x.n
	x.g.mode = mode
	return &x.g
}

// Name returns the gauge's full dotted name.
func (g *Gauge) Name() string {
	if g.n.set == nil {
		return g.n.prefix
	}
	return g.n.prefix + g.n.set.gauges[g.idx]
}

// ImportMode returns the mode the gauge was created with.
func (g *Gauge) ImportMode() ImportMode { return g.mode }

func (g *Gauge) markUsed() {
	if !g.used.Load() {
		g.used.Store(true)
	}
}

// Set sets the value.
func (g *Gauge) Set(v uint64) { g.v.Store(v); g.markUsed() }

// Add adds n.
func (g *Gauge) Add(n uint64) { g.v.Add(n); g.markUsed() }

// Sub subtracts n.
func (g *Gauge) Sub(n uint64) { g.v.Add(^(n - 1)); g.markUsed() }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Sub(1) }

// Value returns the current value.
func (g *Gauge) Value() uint64 { return g.v.Load() }

// Used reports whether the gauge was ever set or changed (for ?usedonly).
func (g *Gauge) Used() bool { return g.used.Load() }
