package stats

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	testCounters = []string{"upstream_rq_total", "upstream_cx_total", "upstream_rq_2xx", "lb_healthy_panic"}
	testGauges   = []string{"upstream_cx_active", "circuit_breakers.default.cx_open", "membership_total"}
)

// fillCluster counts the same things for one cluster, through a block when
// blk is true and through a scope otherwise.
func fillCluster(s *Store, name string, blk bool, i int) {
	p := "cluster." + name + "."
	counter := func(n string) *Counter { return s.Scope(p).Counter(n) }
	gauge := func(n string) *Gauge { return s.Scope(p).Gauge(n, Accumulate) }
	if blk {
		b := s.Block(p, s.StatSet(testCounters, testGauges, Accumulate))
		counter = b.Counter
		gauge = func(n string) *Gauge { return b.Gauge(n, Accumulate) }
	}
	for _, n := range testCounters {
		counter(n)
	}
	for _, n := range testGauges {
		gauge(n)
	}
	counter("upstream_rq_total").Add(uint64(i + 1))
	counter("upstream_rq_2xx").Add(uint64(i))
	gauge("circuit_breakers.default.cx_open").Set(uint64(i % 2))
	if i%3 == 0 {
		counter("upstream_rq_200").Add(uint64(i)) // outside the set
		gauge("circuit_breakers.default.remaining_rq").Set(1024)
		counter("health_check.attempt").Add(0) // used, zero
	}
}

func writeAll(t *testing.T, s *Store, o WriteOptions) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("--- text\n")
	if err := s.WriteText(&b, o); err != nil {
		t.Fatal(err)
	}
	b.WriteString("--- json\n")
	if err := s.WriteJSON(&b, o); err != nil {
		t.Fatal(err)
	}
	b.WriteString("--- prometheus\n")
	if err := s.WritePrometheus(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A block's stats are listed exactly as the same stats made one by one.
func TestBlockOutputMatchesScope(t *testing.T) {
	build := func(blk bool) *Store {
		s := New(Options{})
		s.Counter("cluster_manager.cluster_added").Add(3)
		s.Gauge("server.live", NeverImport).Set(1)
		s.Histogram("cluster.c1.upstream_rq_time", Milliseconds).Record(7)
		for i, n := range []string{"c1", "c0", "a.b", "a", "outbound|80||svc.ns.svc.cluster.local", "c10"} {
			fillCluster(s, n, blk, i)
		}
		return s
	}
	tests := []struct {
		name string
		o    WriteOptions
	}{
		{"all", WriteOptions{}},
		{"usedonly", WriteOptions{UsedOnly: true}},
		{"filter", WriteOptions{Filter: regexp.MustCompile(`rq_2|cx_open`)}},
		{"counters", WriteOptions{Type: TypeCounters}},
		{"gauges", WriteOptions{Type: TypeGauges, UsedOnly: true}},
	}
	scoped, blocked := build(false), build(true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, got := writeAll(t, scoped, tt.o), writeAll(t, blocked, tt.o)
			if got != want {
				t.Errorf("block output differs\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	// And again after a prefix removal, with the Prometheus caches warm.
	scoped.Remove("cluster.a")
	blocked.Remove("cluster.a")
	if want, got := writeAll(t, scoped, WriteOptions{}), writeAll(t, blocked, WriteOptions{}); got != want {
		t.Errorf("after Remove, block output differs\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestBlockHandlesSharedWithStore(t *testing.T) {
	s := New(Options{})
	set := s.StatSet(testCounters, testGauges, Accumulate)
	if s.StatSet(append([]string(nil), testCounters...), testGauges, Accumulate) != set {
		t.Error("StatSet: equal name lists gave two sets")
	}
	// A stat made before the block keeps serving its name.
	early := s.Counter("cluster.x.upstream_rq_total")
	earlyScope := s.Scope("cluster.x.").Gauge("upstream_cx_active", NeverImport)
	b := s.Block("cluster.x", set)
	if s.Block("cluster.x.", set) != b {
		t.Error("Block: same prefix and set gave two blocks")
	}
	tests := []struct {
		name       string
		fromBlock  any
		fromStore  any
		fromScope  any
		wantBefore any
	}{
		{"set counter", b.Counter("upstream_cx_total"), s.Counter("cluster.x.upstream_cx_total"), s.Scope("cluster.x").Counter("upstream_cx_total"), nil},
		{"set gauge", b.Gauge("membership_total", NeverImport), s.Gauge("cluster.x.membership_total", NeverImport), s.Scope("cluster.x").Gauge("membership_total", NeverImport), nil},
		{"dotted set gauge", b.Gauge("circuit_breakers.default.cx_open", NeverImport), s.Gauge("cluster.x.circuit_breakers.default.cx_open", NeverImport), s.Scope("cluster.x.circuit_breakers").Gauge("default.cx_open", NeverImport), nil},
		{"extra counter", b.Counter("upstream_rq_503"), s.Counter("cluster.x.upstream_rq_503"), s.Scope("cluster.x").Counter("upstream_rq_503"), nil},
		{"extra gauge", b.Gauge("outlier_detection.ejections_active", NeverImport), s.Gauge("cluster.x.outlier_detection.ejections_active", NeverImport), s.Scope("cluster.x.outlier_detection").Gauge("ejections_active", NeverImport), nil},
		{"early counter", b.Counter("upstream_rq_total"), s.Counter("cluster.x.upstream_rq_total"), s.Scope("cluster.x").Counter("upstream_rq_total"), early},
		{"early gauge", b.Gauge("upstream_cx_active", NeverImport), s.Gauge("cluster.x.upstream_cx_active", NeverImport), s.Scope("cluster.x").Gauge("upstream_cx_active", NeverImport), earlyScope},
	}
	for _, tt := range tests {
		if tt.fromBlock != tt.fromStore || tt.fromBlock != tt.fromScope {
			t.Errorf("%s: block, store and scope gave different handles", tt.name)
		}
		if tt.wantBefore != nil && tt.fromBlock != tt.wantBefore {
			t.Errorf("%s: the block did not keep the stat made before it", tt.name)
		}
	}
	if got := b.Counter("upstream_cx_total").Name(); got != "cluster.x.upstream_cx_total" {
		t.Errorf("Name() = %q", got)
	}
	if got := b.Gauge("circuit_breakers.default.cx_open", Accumulate).Name(); got != "cluster.x.circuit_breakers.default.cx_open" {
		t.Errorf("Name() = %q", got)
	}
	if m := b.Gauge("membership_total", NeverImport).ImportMode(); m != Accumulate {
		t.Errorf("set gauge mode %v, want the set's", m)
	}
	// Each name is listed once.
	early.Inc()
	var out bytes.Buffer
	s.WriteText(&out, WriteOptions{Filter: regexp.MustCompile(`upstream_rq_total|upstream_cx_active`)})
	if got, want := out.String(), "cluster.x.upstream_cx_active: 0\ncluster.x.upstream_rq_total: 1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Another set under the same prefix resolves through the existing block.
	other := s.Block("cluster.x.", s.StatSet([]string{"upstream_cx_total", "other"}, nil, NeverImport))
	if other.Counter("upstream_cx_total") != b.Counter("upstream_cx_total") || other.Counter("other") != s.Counter("cluster.x.other") {
		t.Error("a second set under a prefix did not resolve through the store")
	}
}

func TestBlockRemove(t *testing.T) {
	s := New(Options{})
	set := s.StatSet(testCounters, testGauges, Accumulate)
	a := s.Block("cluster.a.", set)
	ab := s.Block("cluster.a.b.", set) // a cluster named "a.b"
	s.Block("cluster.ab.", set).Counter("upstream_rq_total").Inc()
	s.Counter("cluster.a.loose").Inc() // outside any block, under the prefix
	rq := a.Counter("upstream_rq_total")
	extra := a.Counter("upstream_rq_200")
	ab.Counter("upstream_rq_200")
	per := len(testCounters) + len(testGauges)

	if n := s.Remove("cluster.a.circuit_breakers"); n != 1 {
		t.Errorf("Remove inside a block removed %d stats, want 1", n)
	}
	if n := s.Remove("cluster.a"); n != 2*per-1+2+1 {
		t.Errorf("Remove removed %d stats, want %d", n, 2*per-1+2+1)
	}
	rq.Inc() // old owners may still count
	extra.Inc()
	a.Counter("upstream_rq_503").Inc()
	var out bytes.Buffer
	s.WriteText(&out, WriteOptions{UsedOnly: true})
	if got := out.String(); got != "cluster.ab.upstream_rq_total: 1\n" {
		t.Errorf("after Remove: %q", got)
	}
	fresh := s.Block("cluster.a.", set)
	if fresh == a || fresh.Counter("upstream_rq_total").Value() != 0 || fresh.Counter("upstream_rq_200") == extra {
		t.Error("a new block for a removed prefix reused the old stats")
	}
	if len(s.kids) != 2 { // "" -> "cluster." -> "cluster.a.", "cluster.ab."
		t.Errorf("prefix tree has %d nodes after Remove, want 2: %v", len(s.kids), s.kids)
	}
	s.Remove("cluster.")
	if len(s.blocks) != 0 || len(s.kids) != 0 {
		t.Errorf("after removing everything: %d blocks, %d tree nodes", len(s.blocks), len(s.kids))
	}
}

func TestRemoveBlockKeepsLongerPrefixes(t *testing.T) {
	s := New(Options{})
	set := s.StatSet(testCounters, testGauges, Accumulate)
	a := s.Block("cluster.a.", set)
	a.Counter("upstream_rq_200").Inc()
	s.Block("cluster.a.b.", set).Counter("upstream_rq_total").Inc()
	s.Block("cluster.c.", set)
	if n := s.RemoveBlock("cluster.a"); n != len(testCounters)+len(testGauges)+1 {
		t.Errorf("RemoveBlock removed %d stats", n)
	}
	var out bytes.Buffer
	s.WriteText(&out, WriteOptions{UsedOnly: true})
	if got := out.String(); got != "cluster.a.b.upstream_rq_total: 1\n" {
		t.Errorf("after RemoveBlock: %q", got)
	}
	if s.RemoveBlock("cluster.a.") != 0 {
		t.Error("RemoveBlock of a removed block removed stats")
	}
	s.RemoveBlock("cluster.a.b.")
	s.RemoveBlock("cluster.c.")
	if len(s.blocks) != 0 || len(s.kids) != 0 {
		t.Errorf("after removing every block: %d blocks, prefix tree %v", len(s.blocks), s.kids)
	}
}

func TestBlockAcceptAndReset(t *testing.T) {
	s := New(Options{Accept: func(name string) bool { return !strings.Contains(name, "cx_") }})
	b := s.Block("cluster.x.", s.StatSet(testCounters, testGauges, Accumulate))
	b.Counter("upstream_cx_total").Add(2) // rejected: counts, never listed
	b.Counter("upstream_rq_total").Add(3)
	b.Counter("upstream_cx_extra").Add(4) // rejected extra
	b.Counter("upstream_rq_200").Add(5)
	if b.Counter("upstream_cx_total").Value() != 2 || b.Counter("upstream_cx_extra").Value() != 4 {
		t.Error("rejected stats do not count")
	}
	var out bytes.Buffer
	s.WriteText(&out, WriteOptions{UsedOnly: true})
	if got, want := out.String(), "cluster.x.upstream_rq_200: 5\ncluster.x.upstream_rq_total: 3\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	s.ResetCounters()
	if v := b.Counter("upstream_rq_total").Value() + b.Counter("upstream_rq_200").Value(); v != 0 {
		t.Errorf("ResetCounters left %d", v)
	}
}

func TestBlockConcurrentUse(t *testing.T) {
	s := New(Options{})
	set := s.StatSet(testCounters, testGauges, Accumulate)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				p := fmt.Sprintf("cluster.c%d.", i%20)
				b := s.Block(p, set)
				b.Counter("upstream_rq_total").Inc()
				b.Counter(fmt.Sprintf("upstream_rq_%d", 200+w)).Inc()
				s.Counter(p + "upstream_rq_2xx").Inc()
				if i%50 == 49 {
					s.Remove(p)
				}
				if i%40 == 0 {
					s.WritePrometheus(&bytes.Buffer{}, WriteOptions{})
				}
			}
		})
	}
	wg.Wait()
}

func TestBlockHotPathDoesNotAllocate(t *testing.T) {
	s := New(Options{})
	b := s.Block("cluster.x.", s.StatSet(testCounters, testGauges, Accumulate))
	c, g := b.Counter("upstream_rq_total"), b.Gauge("upstream_cx_active", Accumulate)
	if n := testing.AllocsPerRun(100, func() {
		c.Inc()
		g.Inc()
		g.Dec()
		b.Counter("upstream_cx_total").Inc() // a lookup in the set
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// clusterNames are the 44 stats every cluster registers (cluster/stats.go).
func clusterNames() (counters, gauges []string) {
	counters = []string{"upstream_cx_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_overflow",
		"upstream_cx_none_healthy", "upstream_cx_http1_total", "upstream_cx_http2_total", "upstream_cx_destroy",
		"upstream_cx_rx_bytes_total", "upstream_cx_tx_bytes_total", "upstream_rq_total", "upstream_rq_pending_total",
		"upstream_rq_pending_overflow", "upstream_rq_retry_overflow", "upstream_rq_timeout", "upstream_rq_completed",
		"upstream_rq_1xx", "upstream_rq_2xx", "upstream_rq_3xx", "upstream_rq_4xx", "upstream_rq_5xx",
		"membership_change", "lb_healthy_panic", "update_attempt", "update_success", "update_failure", "update_empty",
		"update_no_rebuild"}
	gauges = []string{"upstream_cx_active", "upstream_rq_active", "upstream_rq_pending_active", "membership_healthy",
		"membership_degraded", "membership_excluded", "membership_total", "max_host_weight"}
	for _, p := range []string{"default", "high"} {
		for _, n := range []string{"cx_open", "rq_pending_open", "rq_open", "rq_retry_open"} {
			gauges = append(gauges, "circuit_breakers."+p+"."+n)
		}
	}
	return counters, gauges
}

// BenchmarkRegisterCluster registers one cluster's 44 stats: as a block, and
// one by one through a scope (how clusters registered before blocks). The
// live-B/cluster figure is the heap kept per cluster with 10,000 clusters.
func BenchmarkRegisterCluster(b *testing.B) {
	counters, gauges := clusterNames()
	register := map[string]func(s *Store, prefix string){
		"block": func(s *Store, prefix string) {
			blk := s.Block(prefix, s.StatSet(counters, gauges, Accumulate))
			for _, n := range counters {
				blk.Counter(n)
			}
			for _, n := range gauges {
				blk.Gauge(n, Accumulate)
			}
		},
		"one-by-one": func(s *Store, prefix string) {
			for _, n := range counters {
				s.Counter(prefix + n)
			}
			for _, n := range gauges {
				s.Gauge(prefix+n, Accumulate)
			}
		},
	}
	for _, mode := range []string{"block", "one-by-one"} {
		b.Run(mode, func(b *testing.B) {
			const clusters = 10_000
			names := make([]string, clusters)
			for i := range names {
				names[i] = fmt.Sprintf("cluster.c%05d.", i)
			}
			var live float64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := New(Options{})
				b.StartTimer()
				for _, p := range names {
					register[mode](s, p)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				live = float64(after.HeapAlloc-before.HeapAlloc) / clusters
				runtime.KeepAlive(s)
				b.StartTimer()
			}
			b.ReportMetric(live, "live-B/cluster")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/clusters, "ns/cluster")
		})
	}
}

// BenchmarkRemoveClusters removes 100 of 2,000 clusters, one Remove each:
// with blocks the cost is the removed clusters' stats, one by one it was a
// scan of the whole store per Remove.
func BenchmarkRemoveClusters(b *testing.B) {
	counters, gauges := clusterNames()
	for _, blocks := range []bool{true, false} {
		b.Run(map[bool]string{true: "block", false: "one-by-one"}[blocks], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				s := New(Options{})
				set := s.StatSet(counters, gauges, Accumulate)
				for i := range 2_000 {
					p := fmt.Sprintf("cluster.c%05d.", i)
					if blocks {
						s.Block(p, set)
						continue
					}
					for _, n := range counters {
						s.Counter(p + n)
					}
					for _, n := range gauges {
						s.Gauge(p+n, Accumulate)
					}
				}
				b.StartTimer()
				for i := range 100 {
					s.Remove(fmt.Sprintf("cluster.c%05d.", i*20))
				}
			}
		})
	}
}

func BenchmarkBlockCounterInc(b *testing.B) {
	s := New(Options{})
	c := s.Block("cluster.x.", s.StatSet(testCounters, testGauges, Accumulate)).Counter("upstream_rq_total")
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

// BenchmarkWritePrometheusClusters writes /stats/prometheus with 10,000
// clusters registered as blocks; kept-B/cluster is the heap the first write
// leaves behind (the tag-extraction cache).
func BenchmarkWritePrometheusClusters(b *testing.B) {
	counters, gauges := clusterNames()
	s := New(Options{})
	set := s.StatSet(counters, gauges, Accumulate)
	const clusters = 10_000
	for i := range clusters {
		s.Block(fmt.Sprintf("cluster.c%05d.", i), set).Counter("upstream_rq_total").Inc()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s.WritePrometheus(&bytes.Buffer{}, WriteOptions{})
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := float64(after.HeapAlloc-before.HeapAlloc) / clusters
	b.ReportAllocs()
	for b.Loop() {
		s.WritePrometheus(&bytes.Buffer{}, WriteOptions{})
	}
	b.ReportMetric(kept, "kept-B/cluster")
}

// CounterAt and GaugeAt give the handle Counter and Gauge give for the name
// at that index: the block's own, a stat adopted from before the block, or
// for a view of another set's prefix, the stat the store resolves.
func TestBlockStatsAt(t *testing.T) {
	s := New(Options{})
	set := s.StatSet(testCounters, testGauges, Accumulate)
	early := s.Counter("cluster.x.upstream_cx_total")
	b := s.Block("cluster.x.", set)
	other := s.StatSet([]string{"other", "upstream_rq_total"}, []string{"g"}, NeverImport)
	view := s.Block("cluster.x.", other)
	tests := []struct {
		name string
		blk  *Block
		set  *StatSet
	}{{"block", b, set}, {"view", view, other}}
	for _, tt := range tests {
		for i, n := range tt.set.counters {
			if got, want := tt.blk.CounterAt(i), tt.blk.Counter(n); got != want {
				t.Errorf("%s: CounterAt(%d) != Counter(%q)", tt.name, i, n)
			}
		}
		for i, n := range tt.set.gauges {
			if got, want := tt.blk.GaugeAt(i), tt.blk.Gauge(n, tt.set.mode); got != want {
				t.Errorf("%s: GaugeAt(%d) != Gauge(%q)", tt.name, i, n)
			}
		}
	}
	if b.CounterAt(1) != early {
		t.Error("CounterAt: a stat made before the block was not kept")
	}
	if view.CounterAt(1) != b.Counter("upstream_rq_total") {
		t.Error("view CounterAt: not the owning block's stat")
	}
	if testing.AllocsPerRun(100, func() { b.CounterAt(0).Inc(); b.GaugeAt(2).Set(1) }) != 0 {
		t.Error("CounterAt/GaugeAt allocate")
	}
}

// A counter's used flag shares its word with the value: Value never shows
// it, Add(0) sets it, ResetCounters keeps it; a block counter's Name is
// found from its position.
func TestCounterUsedFlag(t *testing.T) {
	s := New(Options{})
	b := s.Block("cluster.x.", s.StatSet(testCounters, testGauges, Accumulate))
	for _, c := range []*Counter{s.Counter("plain"), b.Counter("upstream_rq_2xx"), b.Counter("upstream_rq_503")} {
		if c.Used() || c.Value() != 0 {
			t.Fatalf("%s: new counter used %v value %d", c.Name(), c.Used(), c.Value())
		}
		c.Add(0)
		if !c.Used() || c.Value() != 0 {
			t.Errorf("%s: Add(0): used %v value %d", c.Name(), c.Used(), c.Value())
		}
		c.Add(5)
		c.Inc()
		if c.Value() != 6 {
			t.Errorf("%s: value %d, want 6", c.Name(), c.Value())
		}
		s.ResetCounters()
		if !c.Used() || c.Value() != 0 {
			t.Errorf("%s: after reset used %v value %d", c.Name(), c.Used(), c.Value())
		}
	}
	for i, n := range testCounters {
		if got := b.CounterAt(i).Name(); got != "cluster.x."+n {
			t.Errorf("CounterAt(%d).Name() = %q", i, got)
		}
	}
}
