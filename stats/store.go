package stats

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Options configure a Store. The zero value gives Envoy's defaults.
type Options struct {
	// Tags extracts Prometheus labels from names; nil means
	// DefaultTagProducer().
	Tags *TagProducer
	// Buckets returns the bucket bounds of a new histogram
	// (stats_config.histogram_bucket_settings); nil, or a nil result, means
	// DefaultBuckets().
	Buckets func(name string) []float64
	// Accept decides whether a stat is exported (stats_config.stats_matcher);
	// nil accepts all. A rejected stat still works for its owner but is
	// never listed, as Envoy's null stats.
	Accept func(name string) bool
}

// Store is the process's statistics registry: counters, gauges and histograms
// by full dotted name (Envoy's names: "cluster.backend.upstream_rq_total"),
// scopes that prefix names, and external sources merged at read time. It is
// created once by the server and injected into the components that count.
// All methods are safe for concurrent use.
type Store struct {
	opts Options
	root *Scope

	mu         sync.RWMutex
	counters   map[string]*Counter
	gauges     map[string]*Gauge
	histograms map[string]*Histogram
	scopes     map[string]*Scope
	sources    []*sourceEntry
	sets       []*StatSet
	emptySet   *StatSet
	blocks     map[string]*Block              // by prefix
	kids       map[string]map[string]struct{} // prefix tree of the blocks' prefixes

	tagMu    sync.Mutex
	tagCache map[string]*extracted   // by name ("wasmcustom."-prefixed for custom sources), stats outside blocks
	famNames map[string]*familyNames // by tag-extracted name, shared by the blocks' caches
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Tags == nil {
		opts.Tags = DefaultTagProducer()
	}
	s := &Store{
		opts:       opts,
		counters:   map[string]*Counter{},
		gauges:     map[string]*Gauge{},
		histograms: map[string]*Histogram{},
		scopes:     map[string]*Scope{},
		emptySet:   NewStatSet(nil, nil, Accumulate),
		blocks:     map[string]*Block{},
		kids:       map[string]map[string]struct{}{},
		tagCache:   map[string]*extracted{},
		famNames:   map[string]*familyNames{},
	}
	s.root = newScope(s, "")
	s.scopes[""] = s.root
	return s
}

// Root returns the scope without a prefix.
func (s *Store) Root() *Scope { return s.root }

// Counter returns the counter with the full name, creating it on first use.
func (s *Store) Counter(name string) *Counter { return s.root.Counter(name) }

// Gauge returns the gauge with the full name, creating it on first use with
// the given import mode (a later call's mode is ignored).
func (s *Store) Gauge(name string, mode ImportMode) *Gauge { return s.root.Gauge(name, mode) }

// Histogram returns the histogram with the full name, creating it on first
// use with the given unit (a later call's unit is ignored).
func (s *Store) Histogram(name string, unit Unit) *Histogram { return s.root.Histogram(name, unit) }

// Scope returns the scope for prefix ("cluster.backend." or
// "cluster.backend": a missing final dot is added). The same prefix always
// gives the same scope until it is removed.
func (s *Store) Scope(prefix string) *Scope { return s.root.Scope(prefix) }

// Remove forgets every stat whose name starts with prefix and every scope
// under it, as Envoy does when a cluster or listener goes away. Handles held
// by old owners keep working but are no longer listed, and scopes and blocks
// obtained before keep handing out such unlisted handles; ask the store for
// a new scope or block to count under the prefix again. It returns the
// number of stats removed.
//
// The cost is that of the removed blocks' stats (a cluster's), plus a scan
// of the stats kept outside blocks (the process's, listeners'...).
func (s *Store) Remove(prefix string) int {
	prefix = normPrefix(prefix)
	if prefix == "" {
		return 0
	}
	s.mu.Lock()
	n := 0
	var names []string
	for name := range s.counters {
		if strings.HasPrefix(name, prefix) {
			delete(s.counters, name)
			names = append(names, name)
			n++
		}
	}
	for name := range s.gauges {
		if strings.HasPrefix(name, prefix) {
			delete(s.gauges, name)
			names = append(names, name)
			n++
		}
	}
	for name := range s.histograms {
		if strings.HasPrefix(name, prefix) {
			delete(s.histograms, name)
			names = append(names, name)
			n++
		}
	}
	var dropped []*Scope
	for p, sc := range s.scopes {
		if strings.HasPrefix(p, prefix) {
			delete(s.scopes, p)
			dropped = append(dropped, sc)
		}
	}
	_, bn := s.unlinkBlocks(prefix)
	n += bn
	// A prefix inside a block ("cluster.a.circuit_breakers.").
	for i := len(prefix) - 2; i > 0; i-- {
		if prefix[i] == '.' {
			if b := s.blocks[prefix[:i+1]]; b != nil {
				n += b.removeInside(prefix[i+1:])
			}
		}
	}
	s.mu.Unlock()
	for _, sc := range dropped {
		sc.detached.Store(true)
	}
	s.tagMu.Lock()
	for _, name := range names {
		delete(s.tagCache, name)
	}
	if strings.HasPrefix(prefix, CustomNamespace+".") {
		for k := range s.tagCache {
			if strings.HasPrefix(k, prefix) {
				delete(s.tagCache, k)
			}
		}
	}
	s.tagMu.Unlock()
	return n
}

// ResetCounters sets every listed counter to zero (the admin
// /reset_counters endpoint).
func (s *Store) ResetCounters() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.counters {
		c.reset()
	}
	for _, b := range s.blocks {
		for i := range b.counters {
			if !b.isHidden(i) {
				b.counters[i].reset()
			}
		}
		for _, c := range b.extraC {
			c.reset()
		}
	}
}

func (s *Store) accept(name string) bool { return s.opts.Accept == nil || s.opts.Accept(name) }

func (s *Store) counter(name string, register bool) *Counter {
	if !register {
		return newCounter(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counterLocked(name)
}

// counterLocked finds or creates the counter of a full name: outside blocks,
// or in the block that holds the name. s.mu is held.
func (s *Store) counterLocked(name string) *Counter {
	if c := s.counters[name]; c != nil {
		return c
	}
	if b, rest := s.findBlock(name); b != nil {
		return b.counterLocked(rest)
	}
	c := newCounter(name)
	if s.accept(name) {
		s.counters[name] = c
	}
	return c
}

func (s *Store) gauge(name string, mode ImportMode, register bool) *Gauge {
	if !register {
		return newGauge(name, mode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gaugeLocked(name, mode)
}

func (s *Store) gaugeLocked(name string, mode ImportMode) *Gauge {
	if g := s.gauges[name]; g != nil {
		return g
	}
	if b, rest := s.findBlock(name); b != nil {
		return b.gaugeLocked(rest, mode)
	}
	g := newGauge(name, mode)
	if s.accept(name) {
		s.gauges[name] = g
	}
	return g
}

func (s *Store) histogram(name string, unit Unit, register bool) *Histogram {
	var buckets []float64
	if s.opts.Buckets != nil {
		buckets = s.opts.Buckets(name)
	}
	if !register || !s.accept(name) {
		return NewHistogram(name, unit, buckets)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.histograms[name]
	if h == nil {
		h = NewHistogram(name, unit, buckets)
		s.histograms[name] = h
	}
	return h
}

// Flush closes the current histogram interval for every histogram, the
// store's and the sources'. The server calls it every stats_flush_interval
// (Envoy's default is 5 s); the interval columns of the admin output show
// the last complete interval.
func (s *Store) Flush() {
	s.mu.RLock()
	hs := make([]*Histogram, 0, len(s.histograms))
	for _, h := range s.histograms {
		hs = append(hs, h)
	}
	srcs := slices.Clone(s.sources)
	s.mu.RUnlock()
	for _, h := range hs {
		h.Flush()
	}
	for _, e := range srcs {
		if hsrc, ok := e.src.(HistogramSource); ok {
			hsrc.CollectHistograms(func(_ string, h *Histogram) { h.Flush() })
		}
	}
}

// Scope is a view of a Store that prefixes every name. Handles are cached in
// the scope, so looking up an existing stat takes a read lock and no
// allocation. All methods are safe for concurrent use.
type Scope struct {
	store    *Store
	prefix   string // "" or ends with "."
	detached atomic.Bool

	mu         sync.RWMutex
	counters   map[string]*Counter
	gauges     map[string]*Gauge
	histograms map[string]*Histogram
}

func newScope(s *Store, prefix string) *Scope {
	return &Scope{store: s, prefix: prefix, counters: map[string]*Counter{},
		gauges: map[string]*Gauge{}, histograms: map[string]*Histogram{}}
}

// normPrefix turns "a.b" and "a.b." into "a.b.", and "" or "." into "".
func normPrefix(p string) string {
	p = strings.TrimLeft(p, ".")
	if p == "" || strings.HasSuffix(p, ".") {
		return p
	}
	return p + "."
}

// Prefix returns the scope's prefix, "" or ending with ".".
func (sc *Scope) Prefix() string { return sc.prefix }

// Store returns the store the scope belongs to.
func (sc *Scope) Store() *Store { return sc.store }

// Scope returns a scope nested in this one: its prefix is this scope's prefix
// followed by prefix.
func (sc *Scope) Scope(prefix string) *Scope {
	full := sc.prefix + normPrefix(prefix)
	s := sc.store
	s.mu.RLock()
	child := s.scopes[full]
	s.mu.RUnlock()
	if child != nil {
		return child
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if child = s.scopes[full]; child == nil {
		child = newScope(s, full)
		if sc.detached.Load() {
			child.detached.Store(true) // a scope under a removed one stays unlisted
		} else {
			s.scopes[full] = child
		}
	}
	return child
}

// Counter returns the counter named prefix+name.
func (sc *Scope) Counter(name string) *Counter {
	sc.mu.RLock()
	c := sc.counters[name]
	sc.mu.RUnlock()
	if c != nil {
		return c
	}
	c = sc.store.counter(sc.prefix+name, !sc.detached.Load())
	sc.mu.Lock()
	if prev := sc.counters[name]; prev != nil {
		c = prev
	} else {
		sc.counters[name] = c
	}
	sc.mu.Unlock()
	return c
}

// Gauge returns the gauge named prefix+name.
func (sc *Scope) Gauge(name string, mode ImportMode) *Gauge {
	sc.mu.RLock()
	g := sc.gauges[name]
	sc.mu.RUnlock()
	if g != nil {
		return g
	}
	g = sc.store.gauge(sc.prefix+name, mode, !sc.detached.Load())
	sc.mu.Lock()
	if prev := sc.gauges[name]; prev != nil {
		g = prev
	} else {
		sc.gauges[name] = g
	}
	sc.mu.Unlock()
	return g
}

// Histogram returns the histogram named prefix+name.
func (sc *Scope) Histogram(name string, unit Unit) *Histogram {
	sc.mu.RLock()
	h := sc.histograms[name]
	sc.mu.RUnlock()
	if h != nil {
		return h
	}
	h = sc.store.histogram(sc.prefix+name, unit, !sc.detached.Load())
	sc.mu.Lock()
	if prev := sc.histograms[name]; prev != nil {
		h = prev
	} else {
		sc.histograms[name] = h
	}
	sc.mu.Unlock()
	return h
}

// SanitizeName turns a piece of text into a stat name element as Envoy
// does: one leading and one trailing dot are dropped and "://", ":/", ":"
// and NUL become "_", so the listener address "[::1]:10000" becomes
// "[__1]_10000".
func SanitizeName(s string) string {
	s = strings.TrimSuffix(s, ".")
	s = strings.TrimPrefix(s, ".")
	r := strings.NewReplacer("://", "_", ":/", "_", ":", "_", "\x00", "_")
	return r.Replace(s)
}
