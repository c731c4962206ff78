package stats

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestHandlesCachedByName(t *testing.T) {
	s := New(Options{})
	if s.Counter("a.b") != s.Counter("a.b") {
		t.Error("Counter: two handles for one name")
	}
	if s.Gauge("a.g", NeverImport) != s.Gauge("a.g", Accumulate) {
		t.Error("Gauge: two handles for one name")
	}
	if s.Gauge("a.g", Accumulate).ImportMode() != NeverImport {
		t.Error("Gauge: a later import mode replaced the first")
	}
	if s.Histogram("a.h", Milliseconds) != s.Histogram("a.h", Bytes) {
		t.Error("Histogram: two handles for one name")
	}
	// A scope and the store agree on full names.
	if s.Scope("cluster.backend.").Counter("upstream_rq_total") != s.Counter("cluster.backend.upstream_rq_total") {
		t.Error("scope and store gave different handles")
	}
	if s.Scope("cluster.backend") != s.Scope("cluster.backend.") {
		t.Error("Scope: prefix with and without the final dot differ")
	}
	if s.Scope("cluster").Scope("backend") != s.Scope("cluster.backend") {
		t.Error("nested scope differs from the flat one")
	}
}

func TestScopeNames(t *testing.T) {
	s := New(Options{})
	cl := s.Scope("cluster.backend.")
	cl.Counter("upstream_rq_total").Add(3)
	cl.Gauge("upstream_cx_active", NeverImport).Set(2)
	cl.Histogram("upstream_rq_time", Milliseconds).Record(5)
	s.Root().Gauge("server.live", NeverImport).Set(1)
	var b bytes.Buffer
	if err := s.WriteText(&b, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "cluster.backend.upstream_cx_active: 2\ncluster.backend.upstream_rq_total: 3\nserver.live: 1\n" +
		"cluster.backend.upstream_rq_time: P0(nan,5) P25(nan,5.025) P50(nan,5.05) P75(nan,5.075) P90(nan,5.09) " +
		"P95(nan,5.095) P99(nan,5.099) P99.5(nan,5.0995) P99.9(nan,5.0999) P100(nan,5.1)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRemovePrefix(t *testing.T) {
	s := New(Options{})
	old := s.Scope("cluster.a.")
	c := old.Counter("upstream_rq_total")
	s.Scope("cluster.ab.").Counter("upstream_rq_total").Inc()
	s.Scope("cluster.a.").Scope("sub").Gauge("g", Accumulate).Set(1)
	if n := s.Remove("cluster.a"); n != 2 {
		t.Fatalf("Remove removed %d stats, want 2", n)
	}
	c.Inc() // an old owner may still count
	old.Counter("upstream_rq_5xx").Inc()
	var b bytes.Buffer
	s.WriteText(&b, WriteOptions{})
	if got := b.String(); got != "cluster.ab.upstream_rq_total: 1\n" {
		t.Errorf("after Remove: %q", got)
	}
	// A new scope for the prefix starts fresh.
	if fresh := s.Scope("cluster.a.").Counter("upstream_rq_total"); fresh == c || fresh.Value() != 0 {
		t.Error("new scope reused a removed counter")
	}
}

func TestAcceptRejectsQuietly(t *testing.T) {
	s := New(Options{Accept: func(name string) bool { return !strings.HasPrefix(name, "cluster.") }})
	c := s.Counter("cluster.x.upstream_rq_total")
	c.Inc()
	if c.Value() != 1 {
		t.Error("rejected counter does not count")
	}
	s.Counter("server.total").Inc()
	var b bytes.Buffer
	s.WriteText(&b, WriteOptions{})
	if b.String() != "server.total: 1\n" {
		t.Errorf("got %q", b.String())
	}
}

func TestGaugeOps(t *testing.T) {
	g := New(Options{}).Gauge("g", Accumulate)
	if g.Used() {
		t.Error("fresh gauge used")
	}
	g.Add(5)
	g.Sub(2)
	g.Inc()
	g.Dec()
	g.Dec()
	if g.Value() != 2 || !g.Used() {
		t.Errorf("value %d used %v", g.Value(), g.Used())
	}
	g.Set(0)
	if g.Value() != 0 || !g.Used() {
		t.Error("Set(0)")
	}
}

func TestCodeCounters(t *testing.T) {
	s := New(Options{})
	cc := NewCodeCounters(s.Scope("cluster.backend"), "upstream_rq_")
	cc.Inc(200)
	cc.Inc(204)
	cc.Inc(503)
	cc.Inc(42) // invalid: not listed
	if cc.Code(200) != s.Counter("cluster.backend.upstream_rq_200") {
		t.Error("Code(200) is not the store's counter")
	}
	var b bytes.Buffer
	s.WriteText(&b, WriteOptions{})
	want := "cluster.backend.upstream_rq_200: 1\ncluster.backend.upstream_rq_204: 1\n" +
		"cluster.backend.upstream_rq_2xx: 2\ncluster.backend.upstream_rq_503: 1\ncluster.backend.upstream_rq_5xx: 1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Many goroutines creating, counting and reading at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	s := New(Options{})
	const workers, rounds = 16, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := s.Scope(fmt.Sprintf("cluster.c%d", w%4))
			codes := NewCodeCounters(sc, "upstream_rq_")
			for i := range rounds {
				sc.Counter("upstream_rq_total").Inc()
				sc.Gauge("upstream_cx_active", NeverImport).Add(1)
				sc.Histogram("upstream_rq_time", Milliseconds).Record(uint64(i % 300))
				codes.Inc(200 + i%3)
				if i%500 == 0 {
					s.Flush()
					s.WriteText(&bytes.Buffer{}, WriteOptions{})
					s.WritePrometheus(&bytes.Buffer{}, WriteOptions{})
					s.WriteJSON(&bytes.Buffer{}, WriteOptions{})
				}
			}
		}()
	}
	wg.Wait()
	var total uint64
	for c := range 4 {
		total += s.Counter(fmt.Sprintf("cluster.c%d.upstream_rq_total", c)).Value()
		if got := s.Histogram(fmt.Sprintf("cluster.c%d.upstream_rq_time", c), Milliseconds).Cumulative().Count; got != workers/4*rounds {
			t.Errorf("histogram c%d count %d, want %d", c, got, workers/4*rounds)
		}
	}
	if total != workers*rounds {
		t.Errorf("total %d, want %d", total, workers*rounds)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	s := New(Options{})
	sc := s.Scope("cluster.backend")
	c := sc.Counter("upstream_rq_total")
	g := sc.Gauge("upstream_cx_active", NeverImport)
	h := sc.Histogram("upstream_rq_time", Milliseconds)
	codes := NewCodeCounters(sc, "upstream_rq_")
	h.Record(1234) // the decade's bins are allocated on first use
	codes.Inc(200)
	cases := map[string]func(){
		"Counter.Inc":        func() { c.Inc() },
		"Counter.Add":        func() { c.Add(7) },
		"Gauge.Set":          func() { g.Set(3) },
		"Gauge.Add/Sub":      func() { g.Add(2); g.Sub(1) },
		"Histogram.Record":   func() { h.Record(1500) },
		"Scope.Counter(hit)": func() { sc.Counter("upstream_rq_total").Inc() },
		"CodeCounters.Inc":   func() { codes.Inc(200) },
	}
	for name, f := range cases {
		if a := testing.AllocsPerRun(1000, f); a != 0 {
			t.Errorf("%s allocates %v times per call", name, a)
		}
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := New(Options{}).Counter("cluster.backend.upstream_rq_total")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkGaugeSet(b *testing.B) {
	g := New(Options{}).Gauge("cluster.backend.upstream_cx_active", NeverImport)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g.Set(uint64(i))
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := New(Options{}).Histogram("cluster.backend.upstream_rq_time", Milliseconds)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := uint64(1)
		for pb.Next() {
			h.Record(v % 5000)
			v += 7
		}
	})
}

func BenchmarkScopeCounterLookup(b *testing.B) {
	sc := New(Options{}).Scope("cluster.backend")
	sc.Counter("upstream_rq_total")
	b.ReportAllocs()
	for b.Loop() {
		sc.Counter("upstream_rq_total").Inc()
	}
}

func BenchmarkWritePrometheus(b *testing.B) {
	s := New(Options{})
	for c := range 50 {
		sc := s.Scope(fmt.Sprintf("cluster.c%d", c))
		for _, n := range []string{"upstream_rq_total", "upstream_cx_total", "upstream_rq_200", "upstream_rq_2xx"} {
			sc.Counter(n).Inc()
		}
		sc.Gauge("upstream_cx_active", NeverImport).Set(1)
		sc.Histogram("upstream_rq_time", Milliseconds).Record(uint64(c))
	}
	b.ReportAllocs()
	for b.Loop() {
		s.WritePrometheus(&bytes.Buffer{}, WriteOptions{})
	}
}

func TestResetCounters(t *testing.T) {
	s := New(Options{})
	c := s.Counter("a.b")
	c.Add(5)
	s.ResetCounters()
	if c.Value() != 0 || !c.Used() {
		t.Errorf("after reset: value %d used %v", c.Value(), c.Used())
	}
}
