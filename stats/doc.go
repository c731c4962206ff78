// Package stats is the data plane's statistics store, with Envoy's stat
// names and Envoy's admin output formats.
//
// A Store is created once by the server and injected; there is no global
// registry. Components take counters, gauges and histograms by their full
// dotted Envoy names, usually through a Scope that adds a prefix:
//
//	cl := store.Scope("cluster.backend.")
//	rqTotal := cl.Counter("upstream_rq_total")     // cluster.backend.upstream_rq_total
//	active := cl.Gauge("upstream_cx_active", stats.NeverImport)
//	rqTime := cl.Histogram("upstream_rq_time", stats.Milliseconds)
//
// Handles are cached by name (asking twice gives the same handle) and are
// taken when a config is compiled, not per request. Their hot-path methods
// (Counter.Inc/Add, Gauge.Set/Add/Sub, Histogram.Record) are lock-free
// atomics that do not allocate; a histogram allocates once per decade of
// values the first time that decade is seen (see histogram.go).
//
// Objects that come in thousands with the same stats (clusters) register
// them as a Block: a StatSet names the counters and gauges once for all, and
// each block keeps only their values (16 bytes a counter, 24 a gauge) and
// its prefix, with full names built when the stats are listed. Other stats under the block's
// prefix are kept with the block, so RemoveBlock and Remove cost the removed
// stats rather than a scan of the store. A block's handles are the same
// handles the store and scopes give for the full names, and the admin output
// does not tell them apart.
//
// External registries contribute at read time through Source (counters and
// gauges) and HistogramSource: the Proxy-Wasm host's metric registry is added
// with AddCustomSource and is listed under the names the filter defined.
//
// The admin API writes the store with WriteText (/stats), WriteJSON
// (/stats?format=json) and WritePrometheus (/stats/prometheus); ParseQuery
// reads Envoy's filter, usedonly, type and histogram_buckets parameters.
// Prometheus names and labels come from Envoy's default tag specifiers
// (TagProducer), so cluster.backend.upstream_rq_total is exported as
// envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"}.
// OptionsFromProto applies the bootstrap's stats_config.
//
// Histogram statistics: values fall in log-linear bins with two significant
// digits, the layout of Envoy's circllhist, and quantiles interpolate
// linearly inside a bin, so text and JSON quantiles match Envoy's closely but
// not digit for digit. Prometheus bucket counts are exact (a sample equal to
// a bound counts in that bucket). Cumulative statistics are live; interval
// statistics are those of the last complete interval closed by Store.Flush,
// which the server calls every stats flush interval.
//
// Where wasmesh differs from Envoy, on purpose or where Envoy's docs are
// silent:
//   - cumulative histogram statistics are live, not refreshed at each flush;
//   - Prometheus bucket counts are exact rather than circllhist estimates;
//   - series whose tag-extracted names sanitize to one Prometheus name are
//     merged into one family instead of repeating the TYPE line;
//   - a Source has no used flag: a zero value counts as unused for usedonly;
//     ?filter= matches a custom source's stat on the name shown (without
//     "wasmcustom.");
//   - text readouts, hidden gauges (?hidden=), histogram_buckets=detailed and
//     the Prometheus protobuf format are not implemented;
//   - custom tag regexes are RE2, so look-around is rejected at config time.
package stats
