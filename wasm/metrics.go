package wasm

import (
	"context"
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
)

// Metrics that plugins define live in one MetricRegistry per Runtime, keyed
// by type and name: every instance of every plugin (and every VM) that
// defines the same name with the same type gets the same id and updates the
// same value, as Envoy's stats store does. The data plane reads them with
// Snapshot. Names are kept as the guest defined them; Envoy stores them
// under the WasmCustomStatNamespace prefix internally and strips it again in
// its /stats and Prometheus output, so showing them unprefixed matches what
// Envoy users see.
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
// Updates are lock-free and allocation-free: a metric id carries its type in
// its low two bits and its index above them, and the table of metrics is an
// append-only slice published through an atomic pointer.

// WasmCustomStatNamespace is the namespace Envoy puts plugin-defined metrics
// in (wasmcustom.<name>) and strips from its stats output.
const WasmCustomStatNamespace = "wasmcustom"

// Registry caps. Defining past them answers BAD_ARGUMENT.
const (
	maxMetrics         = 1 << 16
	maxMetricNameBytes = 4 << 10
)

// HistogramBounds are the upper bounds of the histogram buckets (Envoy's
// default bucket bounds without the 0.5 one, since values are integers); a
// last bucket takes everything larger.
var HistogramBounds = [...]uint64{
	1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
	30000, 60000, 300000, 600000, 1800000, 3600000,
}

// HistogramQuantiles are the quantiles a HistogramSnapshot reports: Envoy's
// P0, P25, P50, P75, P90, P95, P99, P99.5, P99.9 and P100.
var HistogramQuantiles = [...]float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}

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
	hist  *histogram
}

type histogram struct {
	buckets [len(HistogramBounds) + 1]atomic.Uint64
	sum     atomic.Uint64
	min     atomic.Uint64
	max     atomic.Uint64
}

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
		m.hist = &histogram{}
		m.hist.min.Store(math.MaxUint64)
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
		m.hist.record(v)
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

func (h *histogram) record(v uint64) {
	b := len(HistogramBounds)
	for k, bound := range HistogramBounds {
		if v <= bound {
			b = k
			break
		}
	}
	h.buckets[b].Add(1)
	h.sum.Add(v)
	for {
		cur := h.min.Load()
		if v >= cur || h.min.CompareAndSwap(cur, v) {
			break
		}
	}
	for {
		cur := h.max.Load()
		if v <= cur || h.max.CompareAndSwap(cur, v) {
			break
		}
	}
}

// MetricSnapshot is one metric's state at a point in time.
type MetricSnapshot struct {
	Name string
	Type MetricType
	// Counter is a counter's value.
	Counter uint64
	// Gauge is a gauge's value.
	Gauge int64
	// Histogram is a histogram's summary (nil for other types).
	Histogram *HistogramSnapshot
}

// HistogramSnapshot summarises a histogram.
type HistogramSnapshot struct {
	Count uint64
	Sum   uint64
	// Min and Max are the smallest and largest values recorded (0 when
	// Count is 0).
	Min, Max uint64
	// Buckets are cumulative: Count values were <= UpperBound. The last
	// bucket's UpperBound is math.MaxUint64 (+Inf) and its Count is Count.
	Buckets []HistogramBucket
	// Quantiles estimates HistogramQuantiles by interpolating within the
	// buckets (P0 is Min and P100 is Max exactly); empty when Count is 0.
	Quantiles []HistogramQuantile
}

// HistogramBucket is one cumulative bucket.
type HistogramBucket struct {
	UpperBound uint64
	Count      uint64
}

// HistogramQuantile is one estimated quantile.
type HistogramQuantile struct {
	Quantile float64
	Value    float64
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
		s.Histogram = m.hist.snapshot()
	}
	return s
}

func (h *histogram) snapshot() *HistogramSnapshot {
	var counts [len(HistogramBounds) + 1]uint64
	var total uint64
	for k := range counts {
		counts[k] = h.buckets[k].Load()
		total += counts[k]
	}
	s := &HistogramSnapshot{
		Count:   total,
		Sum:     h.sum.Load(),
		Buckets: make([]HistogramBucket, len(counts)),
	}
	var cum uint64
	for k, c := range counts {
		cum += c
		bound := uint64(math.MaxUint64)
		if k < len(HistogramBounds) {
			bound = HistogramBounds[k]
		}
		s.Buckets[k] = HistogramBucket{UpperBound: bound, Count: cum}
	}
	if total == 0 {
		return s
	}
	s.Min, s.Max = h.min.Load(), h.max.Load()
	if s.Min > s.Max {
		// A record is in progress; min and max are not both set yet.
		s.Min = s.Max
	}
	s.Quantiles = make([]HistogramQuantile, len(HistogramQuantiles))
	for k, q := range HistogramQuantiles {
		s.Quantiles[k] = HistogramQuantile{Quantile: q, Value: quantile(q, counts[:], total, s.Min, s.Max)}
	}
	return s
}

// quantile estimates quantile q by linear interpolation inside the bucket
// holding it, with the bucket's range clamped to [lo, hi] (min and max).
func quantile(q float64, counts []uint64, total, lo, hi uint64) float64 {
	if q <= 0 {
		return float64(lo)
	}
	if q >= 1 {
		return float64(hi)
	}
	target := q * float64(total)
	var cum float64
	lower := float64(lo)
	for k, c := range counts {
		upper := float64(hi)
		if k < len(HistogramBounds) && float64(HistogramBounds[k]) < upper {
			upper = float64(HistogramBounds[k])
		}
		if c > 0 && cum+float64(c) >= target {
			from := math.Max(lower, float64(lo))
			if upper < from {
				upper = from
			}
			return from + (upper-from)*(target-cum)/float64(c)
		}
		cum += float64(c)
		if k < len(HistogramBounds) {
			lower = float64(HistogramBounds[k])
		}
	}
	return float64(hi)
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
