package wasm

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/stats"
)

// define calls proxy_define_metric(typ, name) from the guest.
func (g shGuest) define(typ MetricType, name string) (uint32, Status) {
	g.t.Helper()
	g.write(shRet, []byte{0, 0, 0, 0})
	p, l := g.str(shScratch, name)
	s := g.status("t_define_metric", uint64(typ), p, l, shRet)
	return g.u32(shRet), s
}

// metric calls proxy_get_metric(id) from the guest.
func (g shGuest) metric(id uint32) (uint64, Status) {
	g.t.Helper()
	s := g.status("t_get_metric", uint64(id), shRet)
	if s != StatusOK {
		return 0, s
	}
	return g.u64(shRet), s
}

func TestMetricsDefine(t *testing.T) {
	e := newShEnv(t)
	vmA := e.vm("a", 2)
	a1 := shGuests(t, e.plugin(vmA, "p1", ""))
	a2 := shGuests(t, e.plugin(vmA, "p2", ""))[0]
	b := shGuests(t, e.plugin(e.vm("b", 1), "p", ""))[0]

	id, s := a1[0].define(MetricCounter, "requests")
	if s != StatusOK || id == 0 {
		t.Fatalf("define: %d %v", id, s)
	}
	// The same name and type is the same metric, from any instance, plugin
	// or VM.
	for _, g := range []shGuest{a1[0], a1[1], a2, b} {
		if again, s := g.define(MetricCounter, "requests"); s != StatusOK || again != id {
			t.Fatalf("instance %d of %s: id %d %v, want %d", g.inst.slot, g.inst.vm.ID(), again, s, id)
		}
	}
	gauge, s := a1[0].define(MetricGauge, "requests")
	if s != StatusOK || gauge == id {
		t.Fatalf("gauge with a counter's name: %d %v", gauge, s)
	}
	cases := []struct {
		name string
		typ  MetricType
		size int
		want Status
	}{
		{"histogram", MetricHistogram, 4, StatusOK},
		{"unknown type", 3, 4, StatusBadArgument},
		{"type far out", 0xFFFFFFFF, 4, StatusBadArgument},
		{"empty name", MetricCounter, 0, StatusOK},
		{"name at the cap", MetricCounter, maxMetricNameBytes, StatusOK},
		{"name past the cap", MetricCounter, maxMetricNameBytes + 1, StatusBadArgument},
	}
	for _, c := range cases {
		if s := a1[0].status("t_define_metric", uint64(c.typ), shBig, uint64(c.size), shRet); s != c.want {
			t.Errorf("%s: %v, want %v", c.name, s, c.want)
		}
	}
	if n := e.rt.Metrics().Len(); n != 5 {
		t.Fatalf("%d metrics, want 5", n)
	}
}

func TestMetricsStatuses(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("st", 1), "p", ""))[0]
	c, _ := g.define(MetricCounter, "c")
	ga, _ := g.define(MetricGauge, "g")
	h, _ := g.define(MetricHistogram, "h")

	inc := func(id uint32, d int64) Status { return g.status("t_increment_metric", uint64(id), uint64(d)) }
	rec := func(id uint32, v uint64) Status { return g.status("t_record_metric", uint64(id), v) }
	steps := []struct {
		name   string
		do     func() Status
		want   Status
		metric uint32
		value  uint64
	}{
		{"counter +5", func() Status { return inc(c, 5) }, StatusOK, c, 5},
		{"counter +0", func() Status { return inc(c, 0) }, StatusBadArgument, c, 5},
		{"counter -1", func() Status { return inc(c, -1) }, StatusBadArgument, c, 5},
		{"counter record adds", func() Status { return rec(c, 10) }, StatusOK, c, 15},
		{"gauge +5", func() Status { return inc(ga, 5) }, StatusOK, ga, 5},
		{"gauge -10 goes below zero", func() Status { return inc(ga, -10) }, StatusOK, ga, uint64(math.MaxUint64 - 4)},
		{"gauge record sets", func() Status { return rec(ga, 42) }, StatusOK, ga, 42},
		{"gauge 0", func() Status { return inc(ga, 0) }, StatusOK, ga, 42},
		{"histogram increment", func() Status { return inc(h, 1) }, StatusBadArgument, 0, 0},
		{"histogram record", func() Status { return rec(h, 7) }, StatusOK, 0, 0},
		{"unknown id 0", func() Status { return inc(0, 1) }, StatusNotFound, 0, 0},
		{"unknown id with type bits 3", func() Status { return rec(c|3, 1) }, StatusNotFound, 0, 0},
		{"unknown index", func() Status { return inc(999<<2, 1) }, StatusNotFound, 0, 0},
		{"id with another type's bits", func() Status { return inc(c|1, 1) }, StatusNotFound, 0, 0},
	}
	for _, st := range steps {
		if s := st.do(); s != st.want {
			t.Errorf("%s: %v, want %v", st.name, s, st.want)
		}
		if st.metric != 0 {
			if v, s := g.metric(st.metric); s != StatusOK || v != st.value {
				t.Errorf("%s: get %d %v, want %d", st.name, v, s, st.value)
			}
		}
	}
	if _, s := g.metric(h); s != StatusBadArgument {
		t.Errorf("get histogram: %v, want BAD_ARGUMENT", s)
	}
	if _, s := g.metric(12345); s != StatusNotFound {
		t.Errorf("get unknown: %v", s)
	}
	snap := e.rt.Metrics().Snapshot()
	want := "[c counter 15 0 false] [g gauge 0 42 false] [h histogram 0 0 true]"
	var got string
	for k, m := range snap {
		if k > 0 {
			got += " "
		}
		got += fmt.Sprintf("[%s %s %d %d %v]", m.Name, m.Type, m.Counter, m.Gauge, m.Histogram != nil)
	}
	if got != want {
		t.Fatalf("snapshot %s, want %s", got, want)
	}
}

// TestMetricsSharedAcrossInstances: every instance updates the one value
// the data plane reads.
func TestMetricsSharedAcrossInstances(t *testing.T) {
	e := newShEnv(t)
	gs := shGuests(t, e.plugin(e.vm("shared", 4), "p", ""))
	id, _ := gs[0].define(MetricCounter, "hits")
	gid, _ := gs[0].define(MetricGauge, "inflight")
	const per = 500
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if own, s := g.define(MetricCounter, "hits"); s != StatusOK || own != id {
				t.Errorf("define in instance %d: %d %v", g.inst.slot, own, s)
			}
			if s := Status(g.call("t_increment_loop", uint64(id), per)); s != StatusOK {
				t.Errorf("increment: %v", s)
			}
			for range per {
				g.status("t_increment_metric", uint64(gid), 1)
				g.status("t_increment_metric", uint64(gid), uint64(math.MaxUint64)) // -1
			}
		}()
	}
	wg.Wait()
	m, ok := e.rt.Metrics().Lookup("hits", MetricCounter)
	if !ok || m.Counter != per*uint64(len(gs)) {
		t.Fatalf("hits %+v, want %d", m, per*len(gs))
	}
	if m, _ := e.rt.Metrics().Lookup("inflight", MetricGauge); m.Gauge != 0 {
		t.Fatalf("inflight %d", m.Gauge)
	}
	for _, g := range gs {
		if v, s := g.metric(id); v != per*uint64(len(gs)) || s != StatusOK {
			t.Fatalf("instance %d reads %d %v", g.inst.slot, v, s)
		}
	}
}

func TestMetricsHistogramSnapshot(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("h", 1), "p", ""))[0]
	h, _ := g.define(MetricHistogram, "latency_ms")
	empty, _ := e.rt.Metrics().Lookup("latency_ms", MetricHistogram)
	if hs := empty.Histogram; hs == nil || hs.Count != 0 || len(hs.Buckets) != len(stats.DefaultBuckets()) {
		t.Fatalf("empty histogram %+v", hs)
	}
	for v := uint64(1); v <= 100; v++ {
		if s := g.status("t_record_metric", uint64(h), v); s != StatusOK {
			t.Fatal(s)
		}
	}
	m, _ := e.rt.Metrics().Lookup("latency_ms", MetricHistogram)
	hs := m.Histogram
	if hs.Count != 100 || hs.Sum != 5050 {
		t.Fatalf("count %d sum %g", hs.Count, hs.Sum)
	}
	wantCum := map[float64]uint64{0.5: 0, 1: 1, 5: 5, 10: 10, 25: 25, 50: 50, 100: 100, 250: 100}
	for k, bound := range hs.Bounds {
		if want, ok := wantCum[bound]; ok && hs.Buckets[k] != want {
			t.Errorf("bucket <= %g: %d, want %d", bound, hs.Buckets[k], want)
		}
	}
	if len(hs.Quantiles) != len(stats.Quantiles()) {
		t.Fatalf("quantiles %v", hs.Quantiles)
	}
	for k, q := range stats.Quantiles() {
		// Uniform on 1..100: each quantile is close to q*100, within a bin.
		if want := q * 100; math.Abs(hs.Quantiles[k]-want) > 10 {
			t.Errorf("P%g = %g, want about %g", q*100, hs.Quantiles[k], want)
		}
		if k > 0 && hs.Quantiles[k] < hs.Quantiles[k-1] {
			t.Errorf("quantiles not monotonic: %v", hs.Quantiles)
		}
	}

	// The data plane's store sees the same histogram under the filter's
	// name, and counters and gauges through Collect.
	c, _ := g.define(MetricCounter, "requests")
	g.status("t_increment_metric", uint64(c), 3)
	var hists []string
	e.rt.Metrics().CollectHistograms(func(name string, sh *stats.Histogram) {
		hists = append(hists, fmt.Sprintf("%s:%d", name, sh.Cumulative().Count))
	})
	var values []string
	e.rt.Metrics().Collect(func(name string, kind stats.Kind, v uint64) {
		values = append(values, fmt.Sprintf("%s:%s:%d", name, kind, v))
	})
	if fmt.Sprint(hists) != "[latency_ms:100]" || fmt.Sprint(values) != "[requests:counter:3]" {
		t.Fatalf("collected %v %v", hists, values)
	}
}

// TestMetricRegistryConcurrent: define, update and snapshot at once.
func TestMetricRegistryConcurrent(t *testing.T) {
	r := NewMetricRegistry()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				typ := MetricType(k % 3)
				id, s := r.define(typ, fmt.Sprintf("m%d", k%50))
				if s != StatusOK {
					t.Errorf("define: %v", s)
					return
				}
				switch typ {
				case MetricCounter:
					r.increment(id, 1)
				case MetricGauge:
					r.increment(id, int64(w))
				default:
					r.record(id, uint64(k))
				}
				if k%20 == 0 {
					r.Snapshot()
				}
			}
		}()
	}
	wg.Wait()
	var counts uint64
	for _, m := range r.Snapshot() {
		counts += m.Counter
		if m.Histogram != nil {
			counts += m.Histogram.Count
		}
	}
	// 16 workers x 200 ops: 67 counter increments and 66 histogram records
	// each.
	if want := uint64(16 * (67 + 66)); counts != want {
		t.Fatalf("%d counted, want %d", counts, want)
	}
}

func TestMetricsOutOfBounds(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("oob", 1), "p", ""))[0]
	id, _ := g.define(MetricCounter, "c")
	np, nl := g.str(shScratch, "d")
	runOOB(t, g, []shOOB{
		{"define name ptr wraps", "t_define_metric", []uint64{0, shWrap, 0x20, shRet}, nil},
		{"define name size huge", "t_define_metric", []uint64{0, np, shHuge, shRet}, nil},
		{"define ret slot", "t_define_metric", []uint64{0, np, nl, shEdge}, nil},
		{"get ret slot", "t_get_metric", []uint64{uint64(id), shMemBytes - 4}, nil},
		{"get ret slot wraps", "t_get_metric", []uint64{uint64(id), 0xFFFFFFFC}, nil},
	})
	if _, ok := e.rt.Metrics().Lookup("d", MetricCounter); ok {
		t.Fatal("define with a bad return slot created the metric")
	}
}

// TestMetricUpdatesDoNotAllocate: the registry operations and the host calls
// behind them allocate nothing.
func TestMetricUpdatesDoNotAllocate(t *testing.T) {
	r := NewMetricRegistry()
	c, _ := r.define(MetricCounter, "c")
	g, _ := r.define(MetricGauge, "g")
	h, _ := r.define(MetricHistogram, "h")
	ops := map[string]func(){
		"increment counter": func() { r.increment(c, 1) },
		"increment gauge":   func() { r.increment(g, -1) },
		"record histogram":  func() { r.record(h, 1234) },
		"get":               func() { r.get(c) },
	}
	for name, op := range ops {
		if n := testing.AllocsPerRun(1000, op); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}

	e := newShEnv(t)
	gs := shGuests(t, e.plugin(e.vm("alloc", 1), "p", ""))[0]
	id, _ := gs.define(MetricCounter, "c")
	// The difference between 1000 host calls and none inside one guest call
	// is what the host calls allocate.
	many := testing.AllocsPerRun(50, func() { gs.call("t_increment_loop", uint64(id), 1000) })
	none := testing.AllocsPerRun(50, func() { gs.call("t_increment_loop", uint64(id), 0) })
	if many > none {
		t.Fatalf("1000 proxy_increment_metric calls allocate %v times (guest call alone: %v)", many-none, none)
	}
}

func BenchmarkMetricIncrement(b *testing.B) {
	r := NewMetricRegistry()
	id, _ := r.define(MetricCounter, "c")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.increment(id, 1)
		}
	})
}

// BenchmarkMetricIncrementHostCall measures proxy_increment_metric from a
// guest: each guest call makes up to 100,000 host calls (well within the
// callback deadline).
func BenchmarkMetricIncrementHostCall(b *testing.B) {
	e := newShEnv(b)
	g := shGuests(b, e.plugin(e.vm("bench", 1), "p", ""))[0]
	id, _ := g.define(MetricCounter, "c")
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; left -= 100000 {
		if s := Status(g.call("t_increment_loop", uint64(id), uint64(min(left, 100000)))); s != StatusOK {
			b.Fatal(s)
		}
	}
}

// TestMetricsInStatsStore: added to the data plane's store as a custom
// source, plugin metrics show under the names the filter defined, and in
// Prometheus without the envoy_ prefix, as in Envoy.
func TestMetricsInStatsStore(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("store", 1), "p", ""))[0]
	c, _ := g.define(MetricCounter, "plugin_requests")
	g.status("t_increment_metric", uint64(c), 7)
	h, _ := g.define(MetricHistogram, "plugin_latency")
	g.status("t_record_metric", uint64(h), 12)

	store := stats.New(stats.Options{})
	defer store.AddCustomSource(e.rt.Metrics())()
	var text, prom strings.Builder
	if err := store.WriteText(&text, stats.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := store.WritePrometheus(&prom, stats.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plugin_requests: 7", "plugin_latency: "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("/stats lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{`(?m)^plugin_requests(\{\})? 7$`, `(?m)^plugin_latency_count(\{\})? 1$`} {
		if !regexp.MustCompile(want).MatchString(prom.String()) {
			t.Errorf("/stats/prometheus lacks %s:\n%s", want, prom.String())
		}
	}
}

func TestMetricsHostcallsContract(t *testing.T) {
	e := newShEnv(t)
	p := e.hostcalls("hc", "", 2)
	runHostcalls(t, p, []hcCase{
		// Streams alternate between the two instances; the value is shared.
		{"/t/metrics/counter", nil, 200, "1"},
		{"/t/metrics/counter", nil, 200, "2"},
		{"/t/metrics/counter", []string{"x-delta", "5"}, 200, "7"},
		{"/t/metrics/counter", []string{"x-delta", "-1"}, 500, "proxy_increment_metric status=2"},
		{"/t/metrics/gauge", []string{"x-value", "10"}, 200, "10"},
		{"/t/metrics/gauge_increment", []string{"x-delta", "-13"}, 200, "-3"},
		{"/t/metrics/histogram", []string{"x-value", "42"}, 200, "ok"},
		{"/t/metrics/errors", nil, 200, "ok"},
	})
	m := e.rt.Metrics()
	if c, _ := m.Lookup("hostcalls_counter", MetricCounter); c.Counter != 7 {
		t.Errorf("counter %d", c.Counter)
	}
	if g, _ := m.Lookup("hostcalls_gauge", MetricGauge); g.Gauge != -3 {
		t.Errorf("gauge %d", g.Gauge)
	}
	if h, _ := m.Lookup("hostcalls_histogram", MetricHistogram); h.Histogram == nil || h.Histogram.Count != 1 || h.Histogram.Sum != 42 {
		t.Errorf("histogram %+v", h.Histogram)
	}
}
