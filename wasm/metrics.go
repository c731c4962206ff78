package wasm

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmesh/wasmesh/stats"
)

// Metrics that plugins define live in one MetricRegistry per Runtime, keyed
// by type and name: every instance of every plugin (and every VM) that
// defines the same name with the same type gets the same id and updates the
// same value, as Envoy's stats store does. A counter and a gauge may share a
// name (Envoy allows it too); they are two metrics. Names are kept as the
// guest defined them; Envoy stores them under the "wasmcustom." namespace
// internally and strips it again in its /stats and Prometheus output. The
// registry is a stats.HistogramSource: the server adds it to its store with
// Store.AddCustomSource, which does the same. Histograms are
// stats.Histogram values (Envoy's default buckets and log-linear bins for
// the P0..P100 quantiles), unit unspecified as in Envoy. Snapshot gives the
// same data as plain values.
//
// Status codes follow Envoy's Context::{define,increment,record,get}Metric:
//
//	define     unknown type: BAD_ARGUMENT
//	increment  counter: delta <= 0 is BAD_ARGUMENT; gauge: adds delta (may go
//	           below zero); histogram: BAD_ARGUMENT
//	record     counter: adds value; gauge: sets it; histogram: records it
//	get        counter, gauge: the value (a gauge as two's complement);
//	           histogram: BAD_ARGUMENT
//	any        unknown id: NOT_FOUND
//
// Updates are lock-free and allocation-free (a histogram allocates once per
// decade of values, the first time one is seen): a metric id carries its
// type in its low two bits and its index above them, and the table of
// metrics is an append-only slice published through an atomic pointer.

// Registry caps. Defining past them answers BAD_ARGUMENT.
const (
	maxMetrics         = 1 << 16
	maxMetricNameBytes = 4 << 10
)

// String names the type: counter, gauge or histogram.
func (t MetricType) String() string {
	switch t {
	case MetricCounter:
		return "counter"
	case MetricGauge:
		return "gauge"
	case MetricHistogram:
		return "histogram"
	}
	return "unknown"
}

// MetricRegistry holds the metrics plugins define. It is safe for
// concurrent use.
type MetricRegistry struct {
	mu    sync.Mutex // serialises define
	byKey map[metricKey]*metric
	// table is indexed by id>>2 - 1; it only grows.
	table atomic.Pointer[[]*metric]
}

type metricKey struct {
	typ  MetricType
	name string
}

type metric struct {
	id   uint32
	typ  MetricType
	name string
	// value is a counter's count or a gauge's value (two's complement).
	value atomic.Uint64
	hist  *stats.Histogram
}

var _ stats.HistogramSource = (*MetricRegistry)(nil)

// NewMetricRegistry returns an empty registry.
func NewMetricRegistry() *MetricRegistry {
	return &MetricRegistry{byKey: map[metricKey]*metric{}}
}

// define returns the id of the metric (typ, name), creating it if needed.
func (r *MetricRegistry) define(typ MetricType, name string) (uint32, Status) {
	if typ > MetricHistogram || len(name) > maxMetricNameBytes {
		return 0, StatusBadArgument
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.byKey[metricKey{typ, name}]; ok {
		return m.id, StatusOK
	}
	var tbl []*metric
	if p := r.table.Load(); p != nil {
		tbl = *p
	}
	if len(tbl) >= maxMetrics {
		return 0, StatusBadArgument
	}
	m := &metric{id: uint32(len(tbl)+1)<<2 | uint32(typ), typ: typ, name: name}
	if typ == MetricHistogram {
		m.hist = stats.NewHistogram(name, stats.Unspecified, nil)
	}
	// Appending writes past every published length, so readers of an older
	// table never see the new slot change under them.
	tbl = append(tbl, m)
	r.table.Store(&tbl)
	r.byKey[metricKey{typ, name}] = m
	return m.id, StatusOK
}

// lookup finds a metric by id without locking or allocating.
func (r *MetricRegistry) lookup(id uint32) *metric {
	idx := int(id>>2) - 1
	p := r.table.Load()
	if idx < 0 || p == nil || idx >= len(*p) {
		return nil
	}
	m := (*p)[idx]
	if m.id != id {
		return nil
	}
	return m
}

// increment applies proxy_increment_metric.
func (r *MetricRegistry) increment(id uint32, delta int64) Status {
	m := r.lookup(id)
	if m == nil {
		return StatusNotFound
	}
	switch m.typ {
	case MetricCounter:
		if delta <= 0 {
			return StatusBadArgument
		}
		m.value.Add(uint64(delta))
	case MetricGauge:
		m.value.Add(uint64(delta))
	default:
		return StatusBadArgument
	}
	return StatusOK
}

// record applies proxy_record_metric.
func (r *MetricRegistry) record(id uint32, v uint64) Status {
	m := r.lookup(id)
	if m == nil {
		return StatusNotFound
	}
	switch m.typ {
	case MetricCounter:
		m.value.Add(v)
	case MetricGauge:
		m.value.Store(v)
	default:
		m.hist.Record(v)
	}
	return StatusOK
}

// get applies proxy_get_metric.
func (r *MetricRegistry) get(id uint32) (uint64, Status) {
	m := r.lookup(id)
	if m == nil {
		return 0, StatusNotFound
	}
	if m.typ == MetricHistogram {
		return 0, StatusBadArgument
	}
	return m.value.Load(), StatusOK
}

// MetricSnapshot is one metric's state at a point in time.
type MetricSnapshot struct {
	Name string
	Type MetricType
	// Counter is a counter's value.
	Counter uint64
	// Gauge is a gauge's value; it goes below zero if the plugin
	// decrements it past zero.
	Gauge int64
	// Histogram is a histogram's statistics since it was defined (nil for
	// other types): count, sum, cumulative buckets and Envoy's quantiles.
	Histogram *stats.HistogramStats
}

// Snapshot returns every metric, sorted by name then type.
func (r *MetricRegistry) Snapshot() []MetricSnapshot {
	p := r.table.Load()
	if p == nil {
		return nil
	}
	out := make([]MetricSnapshot, 0, len(*p))
	for _, m := range *p {
		out = append(out, m.snapshot())
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Name != out[b].Name {
			return out[a].Name < out[b].Name
		}
		return out[a].Type < out[b].Type
	})
	return out
}

// Lookup returns the metric with this name and type.
func (r *MetricRegistry) Lookup(name string, typ MetricType) (MetricSnapshot, bool) {
	r.mu.Lock()
	m, ok := r.byKey[metricKey{typ, name}]
	r.mu.Unlock()
	if !ok {
		return MetricSnapshot{}, false
	}
	return m.snapshot(), true
}

// Len is the number of metrics defined.
func (r *MetricRegistry) Len() int {
	p := r.table.Load()
	if p == nil {
		return 0
	}
	return len(*p)
}

func (m *metric) snapshot() MetricSnapshot {
	s := MetricSnapshot{Name: m.name, Type: m.typ}
	switch m.typ {
	case MetricCounter:
		s.Counter = m.value.Load()
	case MetricGauge:
		s.Gauge = int64(m.value.Load())
	default:
		h := m.hist.Cumulative()
		s.Histogram = &h
	}
	return s
}

// Collect emits every counter and gauge (stats.Source). A gauge below zero
// is emitted as its two's complement, like an underflowed Envoy gauge.
func (r *MetricRegistry) Collect(emit func(name string, kind stats.Kind, value uint64)) {
	p := r.table.Load()
	if p == nil {
		return
	}
	for _, m := range *p {
		switch m.typ {
		case MetricCounter:
			emit(m.name, stats.KindCounter, m.value.Load())
		case MetricGauge:
			emit(m.name, stats.KindGauge, m.value.Load())
		}
	}
}

// CollectHistograms emits every histogram (stats.HistogramSource).
func (r *MetricRegistry) CollectHistograms(emit func(name string, h *stats.Histogram)) {
	p := r.table.Load()
	if p == nil {
		return
	}
	for _, m := range *p {
		if m.hist != nil {
			emit(m.name, m.hist)
		}
	}
}

func metricFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_define_metric", 4, hostDefineMetric),
		{
			module: "env", name: "proxy_increment_metric",
			params: []api.ValueType{i32, i64}, results: statusResult,
			fn: func(_ context.Context, i *instance, st []uint64) {
				st[0] = uint64(i.vm.rt.metrics.increment(u32(st, 0), int64(st[1])))
			},
		},
		{
			module: "env", name: "proxy_record_metric",
			params: []api.ValueType{i32, i64}, results: statusResult,
			fn: func(_ context.Context, i *instance, st []uint64) {
				st[0] = uint64(i.vm.rt.metrics.record(u32(st, 0), st[1]))
			},
		},
		proxyFunc("proxy_get_metric", 2, hostGetMetric),
	}
}

// proxy_define_metric(metric_type, name_data, name_size, return_metric_id)
func hostDefineMetric(_ context.Context, i *instance, st []uint64) Status {
	name, ok := i.read(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	typ := MetricType(u32(st, 0))
	if typ > MetricHistogram || len(name) > maxMetricNameBytes {
		return StatusBadArgument
	}
	ret := u32(st, 3)
	// Check the return slot before defining anything.
	if _, ok := i.mem.Read(ret, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	id, s := i.vm.rt.metrics.define(typ, string(name))
	if s != StatusOK {
		return s
	}
	i.writeU32(ret, id)
	return StatusOK
}

// proxy_get_metric(metric_id, return_value)
func hostGetMetric(_ context.Context, i *instance, st []uint64) Status {
	v, s := i.vm.rt.metrics.get(u32(st, 0))
	if s != StatusOK {
		return s
	}
	if !i.writeU64(u32(st, 1), v) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}
