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

// Counter is a monotonically increasing value. All methods are safe for
// concurrent use, lock-free and allocation-free.
type Counter struct {
	v    atomic.Uint64
	used atomic.Bool
	name string
}

// Name returns the counter's full dotted name.
func (c *Counter) Name() string { return c.name }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds n. Adding zero still marks the counter used, as in Envoy.
func (c *Counter) Add(n uint64) {
	c.v.Add(n)
	if !c.used.Load() {
		c.used.Store(true)
	}
}

// Value returns the current value.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Used reports whether the counter was ever added to (for ?usedonly).
func (c *Counter) Used() bool { return c.used.Load() }

// Gauge is a value that goes up and down. Like Envoy's gauges it is unsigned:
// Sub below zero wraps around, which is a caller bug. All methods are safe for
// concurrent use, lock-free and allocation-free.
type Gauge struct {
	v    atomic.Uint64
	used atomic.Bool
	mode ImportMode
	name string
}

// Name returns the gauge's full dotted name.
func (g *Gauge) Name() string { return g.name }

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
