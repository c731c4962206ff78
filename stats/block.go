package stats

import (
	"slices"
	"strings"
)

// StatSet is a fixed list of counter and gauge names that many scopes have
// in common, for example the stats every cluster keeps
// ("upstream_rq_total", "circuit_breakers.default.cx_open", ...). It is
// immutable and shared: a Block of a set keeps only the values and the
// prefix, and full names are built when the stats are listed.
type StatSet struct {
	counters, gauges []string
	mode             ImportMode
	index            map[string]int32 // counter i -> i, gauge i -> ^i
}

// NewStatSet returns the set of the given counter and gauge names; the
// gauges have the given import mode. A name given twice keeps its first
// position (counters come first).
func NewStatSet(counters, gauges []string, mode ImportMode) *StatSet {
	set := &StatSet{counters: slices.Clone(counters), gauges: slices.Clone(gauges), mode: mode,
		index: make(map[string]int32, len(counters)+len(gauges))}
	for i, n := range set.counters {
		if _, dup := set.index[n]; !dup {
			set.index[n] = int32(i)
		}
	}
	for i, n := range set.gauges {
		if _, dup := set.index[n]; !dup {
			set.index[n] = ^int32(i)
		}
	}
	return set
}

func (set *StatSet) size() int { return len(set.counters) + len(set.gauges) }

func (set *StatSet) same(counters, gauges []string, mode ImportMode) bool {
	return set.mode == mode && slices.Equal(set.counters, counters) && slices.Equal(set.gauges, gauges)
}

// StatSet returns a set of the given names, the same *StatSet for the same
// lists: callers that build one block per object (a cluster) can pass their
// fixed name tables on every call without the store indexing them again.
func (s *Store) StatSet(counters, gauges []string, mode ImportMode) *StatSet {
	s.mu.RLock()
	for _, set := range s.sets {
		if set.same(counters, gauges, mode) {
			s.mu.RUnlock()
			return set
		}
	}
	s.mu.RUnlock()
	set := NewStatSet(counters, gauges, mode)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, prev := range s.sets {
		if prev.same(counters, gauges, mode) {
			return prev
		}
	}
	s.sets = append(s.sets, set)
	return set
}

// Block is the stats of one StatSet under one prefix ("cluster.backend."),
// kept together: one slice of counters (16 bytes each) and one of gauges
// (24 bytes each), with no name string, map entry or object per stat.
// Stats of the prefix that are not in the set (upstream_rq_503,
// health_check.attempt, ...) are kept in the block too when they are first
// asked for, so removing the prefix (Store.Remove) costs the block's stats,
// not the store's.
//
// Handles from a block behave as every other: Store.Counter with the full
// name gives the same *Counter, and the admin output lists them by full
// name. All methods are safe for concurrent use; Counter and Gauge of a
// name in the set take no lock.
type Block struct {
	name     statName // the block's stats point here
	store    *Store
	counters []Counter
	gauges   []Gauge

	// Set at creation, then read-only: set names that already had a stat
	// outside the block when it was created keep that stat (slot index,
	// counters then gauges).
	adopted map[int32]any

	// Guarded by store.mu.
	detached bool
	hidden   []uint64 // bitmap over slots (counters then gauges): not listed
	extraC   map[string]*Counter
	extraG   map[string]*Gauge

	tags []blockTags // Prometheus view per slot, guarded by store.tagMu

	// want is, for a view (another set owns the prefix), the set the view
	// was asked for: CounterAt and GaugeAt resolve its names.
	want *StatSet
}

// Block returns the block of set under prefix ("cluster.backend." or
// "cluster.backend"), creating it on first use. The same prefix and set give
// the same block until the prefix is removed; a prefix already holding a
// block of another set gives a view that resolves names through the store.
func (s *Store) Block(prefix string, set *StatSet) *Block {
	prefix = normPrefix(prefix)
	s.mu.RLock()
	b := s.blocks[prefix]
	s.mu.RUnlock()
	if b != nil && b.name.set == set {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b = s.blocks[prefix]; b != nil {
		if b.name.set == set {
			return b
		}
		// Another set owns the prefix: an unregistered, empty view.
		return &Block{name: statName{prefix: prefix, set: s.emptySet}, store: s, want: set}
	}
	b = s.newBlock(prefix, set)
	s.blocks[prefix] = b
	s.linkBlock(prefix)
	return b
}

// newBlock builds a block; s.mu is held.
func (s *Store) newBlock(prefix string, set *StatSet) *Block {
	b := &Block{name: statName{prefix: prefix, set: set}, store: s,
		counters: make([]Counter, len(set.counters)), gauges: make([]Gauge, len(set.gauges))}
	b.name.blk = b
	for i := range b.counters {
		b.counters[i].n = &b.name
	}
	for i := range b.gauges {
		b.gauges[i].idx, b.gauges[i].n, b.gauges[i].mode = uint32(i), &b.name, set.mode
	}
	// A stat created before the block under one of its names stays the
	// stat of that name; the block's slot is not listed.
	if len(s.counters)+len(s.gauges) > 0 {
		buf := make([]byte, 0, 128)
		for i, n := range set.counters {
			buf = append(append(buf[:0], prefix...), n...)
			if c := s.counters[string(buf)]; c != nil {
				b.adopt(int32(i), c)
			}
		}
		for i, n := range set.gauges {
			buf = append(append(buf[:0], prefix...), n...)
			if g := s.gauges[string(buf)]; g != nil {
				b.adopt(int32(len(set.counters)+i), g)
			}
		}
	}
	if s.opts.Accept != nil {
		for i, n := range set.counters {
			if !s.opts.Accept(prefix + n) {
				b.hide(i)
			}
		}
		for i, n := range set.gauges {
			if !s.opts.Accept(prefix + n) {
				b.hide(len(set.counters) + i)
			}
		}
	}
	return b
}

func (b *Block) adopt(slot int32, stat any) {
	if b.adopted == nil {
		b.adopted = map[int32]any{}
	}
	b.adopted[slot] = stat
	b.hide(int(slot))
}

func (b *Block) hide(slot int) {
	if b.hidden == nil {
		b.hidden = make([]uint64, (b.name.set.size()+63)/64)
	}
	b.hidden[slot/64] |= 1 << (slot % 64)
}

func (b *Block) isHidden(slot int) bool {
	return b.hidden != nil && b.hidden[slot/64]&(1<<(slot%64)) != 0
}

// Prefix returns the block's prefix, ending with ".".
func (b *Block) Prefix() string { return b.name.prefix }

// Counter returns the counter named prefix+name: the block's own when name
// is one of its set's counters (no lock, no allocation), otherwise a counter
// kept with the block, created on first use.
func (b *Block) Counter(name string) *Counter {
	if i, ok := b.name.set.index[name]; ok && i >= 0 {
		if b.adopted != nil {
			if c, ok := b.adopted[i].(*Counter); ok {
				return c
			}
		}
		return &b.counters[i]
	}
	s := b.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.detached || s.blocks[b.name.prefix] != b {
		// Removed, or a view: resolve as the store does, or keep an
		// unlisted counter when removed.
		if !b.detached {
			return s.counterLocked(b.name.prefix + name)
		}
		return b.extraCounter(name)
	}
	return b.counterLocked(name)
}

// CounterAt returns the counter at index i of the set's counters (the
// order given to NewStatSet), as Counter of that name does, without the
// name lookup: for callers that keep the block rather than a handle per
// stat. It panics when i is out of range.
func (b *Block) CounterAt(i int) *Counter {
	if b.want != nil {
		return b.Counter(b.want.counters[i])
	}
	if b.adopted != nil {
		if c, ok := b.adopted[int32(i)].(*Counter); ok {
			return c
		}
	}
	return &b.counters[i]
}

// GaugeAt returns the gauge at index i of the set's gauges, as CounterAt
// does.
func (b *Block) GaugeAt(i int) *Gauge {
	if b.want != nil {
		return b.Gauge(b.want.gauges[i], b.want.mode)
	}
	if b.adopted != nil {
		if g, ok := b.adopted[int32(len(b.counters)+i)].(*Gauge); ok {
			return g
		}
	}
	return &b.gauges[i]
}

// Gauge returns the gauge named prefix+name, as Counter does; mode applies
// to a gauge outside the set created by this call.
func (b *Block) Gauge(name string, mode ImportMode) *Gauge {
	if i, ok := b.name.set.index[name]; ok && i < 0 {
		i = ^i
		if b.adopted != nil {
			if g, ok := b.adopted[int32(len(b.counters))+i].(*Gauge); ok {
				return g
			}
		}
		return &b.gauges[i]
	}
	s := b.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.detached || s.blocks[b.name.prefix] != b {
		if !b.detached {
			return s.gaugeLocked(b.name.prefix+name, mode)
		}
		return b.extraGauge(name, mode)
	}
	return b.gaugeLocked(name, mode)
}

// counterLocked resolves a name (without the prefix) in a registered block;
// s.mu is held. A stat of the full name created before the block keeps
// serving.
func (b *Block) counterLocked(name string) *Counter {
	if i, ok := b.name.set.index[name]; ok && i >= 0 {
		if c, ok := b.adopted[i].(*Counter); ok {
			return c
		}
		return &b.counters[i]
	}
	if c := b.extraC[name]; c != nil {
		return c
	}
	if c := b.store.counters[b.name.prefix+name]; c != nil {
		return c
	}
	return b.extraCounter(name)
}

func (b *Block) gaugeLocked(name string, mode ImportMode) *Gauge {
	if i, ok := b.name.set.index[name]; ok && i < 0 {
		i = ^i
		if g, ok := b.adopted[int32(len(b.counters))+i].(*Gauge); ok {
			return g
		}
		return &b.gauges[i]
	}
	if g := b.extraG[name]; g != nil {
		return g
	}
	if g := b.store.gauges[b.name.prefix+name]; g != nil {
		return g
	}
	return b.extraGauge(name, mode)
}

func (b *Block) extraCounter(name string) *Counter {
	if c := b.extraC[name]; c != nil {
		return c
	}
	if b.extraC == nil {
		b.extraC = map[string]*Counter{}
	}
	c := newCounter(b.name.prefix + name)
	b.extraC[name] = c
	return c
}

func (b *Block) extraGauge(name string, mode ImportMode) *Gauge {
	if g := b.extraG[name]; g != nil {
		return g
	}
	if b.extraG == nil {
		b.extraG = map[string]*Gauge{}
	}
	g := newGauge(b.name.prefix+name, mode)
	b.extraG[name] = g
	return g
}

// findBlock returns the registered block that holds the full name: the
// longest block prefix whose set has the rest of the name, or else the
// longest block prefix of the name. s.mu is held.
func (s *Store) findBlock(full string) (*Block, string) {
	if len(s.blocks) == 0 {
		return nil, ""
	}
	var longest *Block
	var longestRest string
	for i := len(full) - 1; i > 0; i-- {
		if full[i] != '.' {
			continue
		}
		b := s.blocks[full[:i+1]]
		if b == nil {
			continue
		}
		rest := full[i+1:]
		if _, ok := b.name.set.index[rest]; ok {
			return b, rest
		}
		if longest == nil {
			longest, longestRest = b, rest
		}
	}
	return longest, longestRest
}

// parentPrefix drops the last element of a prefix: "cluster.a." ->
// "cluster.", "cluster." -> "".
func parentPrefix(p string) string {
	i := strings.LastIndexByte(p[:len(p)-1], '.')
	return p[:i+1]
}

// linkBlock records prefix and its parents in the prefix tree, so that
// Remove finds the blocks under a prefix without scanning all of them.
// s.mu is held.
func (s *Store) linkBlock(prefix string) {
	for prefix != "" {
		parent := parentPrefix(prefix)
		kids := s.kids[parent]
		if kids == nil {
			kids = map[string]struct{}{}
			s.kids[parent] = kids
		}
		if _, ok := kids[prefix]; ok {
			return
		}
		kids[prefix] = struct{}{}
		prefix = parent
	}
}

// unlinkBlocks removes every block whose prefix starts with prefix (which
// ends with "."), and the prefix's node in the tree; s.mu is held. It
// returns the blocks removed and the number of listed stats they held.
func (s *Store) unlinkBlocks(prefix string) (removed []*Block, n int) {
	var walk func(p string)
	walk = func(p string) {
		if b := s.blocks[p]; b != nil {
			delete(s.blocks, p)
			b.detached = true
			n += b.listedLocked()
			removed = append(removed, b)
		}
		for k := range s.kids[p] {
			walk(k)
		}
		delete(s.kids, p)
	}
	walk(prefix)
	// Drop the node from its parents, and parents left without children.
	for p := prefix; p != ""; {
		parent := parentPrefix(p)
		kids := s.kids[parent]
		if kids == nil {
			break
		}
		delete(kids, p)
		if len(kids) > 0 || s.blocks[parent] != nil {
			break
		}
		delete(s.kids, parent)
		p = parent
	}
	return removed, n
}

// RemoveBlock removes the block registered at prefix (the stats of its set
// and the others kept with it), and nothing else: unlike Remove, the blocks
// of longer prefixes stay (removing cluster "a" keeps the stats of cluster
// "a.b"). Its handles keep working, unlisted. It returns the number of
// stats removed; the cost is the block's.
func (s *Store) RemoveBlock(prefix string) int {
	prefix = normPrefix(prefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blocks[prefix]
	if b == nil {
		return 0
	}
	delete(s.blocks, prefix)
	b.detached = true
	n := b.listedLocked()
	// Drop the node and the parents it alone kept, unless blocks lie under it.
	for p := prefix; p != "" && len(s.kids[p]) == 0 && s.blocks[p] == nil; {
		delete(s.kids, p)
		parent := parentPrefix(p)
		delete(s.kids[parent], p)
		p = parent
	}
	if len(s.kids[""]) == 0 {
		delete(s.kids, "")
	}
	return n
}

// listedLocked counts the block's listed stats; s.mu is held.
func (b *Block) listedLocked() int {
	n := 0
	for i := range b.name.set.size() {
		if !b.isHidden(i) {
			n++
		}
	}
	for name := range b.extraC {
		if b.store.accept(b.name.prefix + name) {
			n++
		}
	}
	for name := range b.extraG {
		if b.store.accept(b.name.prefix + name) {
			n++
		}
	}
	return n
}

// removeInside removes the stats of the block whose name, without the
// block's prefix, starts with rest: Store.Remove of a prefix inside a block.
// Handles keep working and are no longer listed. s.mu is held.
func (b *Block) removeInside(rest string) int {
	n := 0
	for i, name := range b.name.set.counters {
		if strings.HasPrefix(name, rest) && !b.isHidden(i) {
			b.hide(i)
			n++
		}
	}
	for i, name := range b.name.set.gauges {
		if slot := len(b.counters) + i; strings.HasPrefix(name, rest) && !b.isHidden(slot) {
			b.hide(slot)
			n++
		}
	}
	for name := range b.extraC {
		if strings.HasPrefix(name, rest) {
			delete(b.extraC, name)
			n++
		}
	}
	for name := range b.extraG {
		if strings.HasPrefix(name, rest) {
			delete(b.extraG, name)
			n++
		}
	}
	return n
}

// collect appends the block's listed counters and gauges; s.mu is held (for
// reading).
func (b *Block) collect(counters *[]stat, gauges *[]stat) {
	set := b.name.set
	for i := range b.counters {
		if b.isHidden(i) {
			continue
		}
		c := &b.counters[i]
		*counters = append(*counters, stat{name: b.name.prefix + set.counters[i], kind: KindCounter,
			value: c.Value(), used: c.Used(), blk: b, slot: int32(i)})
	}
	for i := range b.gauges {
		if b.isHidden(len(b.counters) + i) {
			continue
		}
		g := &b.gauges[i]
		*gauges = append(*gauges, stat{name: b.name.prefix + set.gauges[i], kind: KindGauge,
			value: g.Value(), used: g.Used(), blk: b, slot: int32(len(b.counters) + i)})
	}
	for _, c := range b.extraC {
		if b.store.accept(c.n.prefix) {
			*counters = append(*counters, stat{name: c.n.prefix, kind: KindCounter, value: c.Value(), used: c.Used()})
		}
	}
	for _, g := range b.extraG {
		if b.store.accept(g.n.prefix) {
			*gauges = append(*gauges, stat{name: g.n.prefix, kind: KindGauge, value: g.Value(), used: g.Used()})
		}
	}
}
