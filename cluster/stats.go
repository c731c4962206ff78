package cluster

import "sync/atomic"

// Stats is where the cluster manager counts, by Envoy's full stat names
// ("cluster.backend.upstream_rq_total"). The server adapts its stats store:
//
//	type clusterStats struct{ s *stats.Store }
//	func (a clusterStats) Counter(n string) cluster.Counter { return a.s.Counter(n) }
//	func (a clusterStats) Gauge(n string) cluster.Gauge     { return a.s.Gauge(n, stats.NeverImport) }
//
// Handles are taken when a cluster is compiled, never per request. A Stats
// that also implements StatsRemover forgets a removed cluster's stats.
type Stats interface {
	Counter(name string) Counter
	Gauge(name string) Gauge
}

// Counter is a monotonically increasing stat.
type Counter interface {
	Inc()
	Add(n uint64)
}

// Gauge is a stat that goes up and down.
type Gauge interface {
	Set(v uint64)
	Inc()
	Dec()
	Add(n uint64)
	Sub(n uint64)
}

// StatsBlocker is implemented by stores that keep the stats of one cluster
// together (one allocation for the values, names built when listed) instead
// of one named object per stat. StatsBlock returns the block of prefix
// ("cluster.backend.") whose counters and gauges are the given names; the
// two name lists are the same fixed tables on every call. Names outside the
// lists are asked of the block too (Counter("upstream_rq_503")) and are
// kept with it.
type StatsBlocker interface {
	StatsBlock(prefix string, counters, gauges []string) StatsBlock
}

// StatsBlock is the stats of one prefix, by names without the prefix.
type StatsBlock interface {
	Counter(name string) Counter
	Gauge(name string) Gauge
}

// StatsRemover is implemented by stores that can drop every stat under a
// prefix ("cluster.backend."), as Envoy does when a cluster is removed.
type StatsRemover interface {
	Remove(prefix string) int
}

type nopStats struct{}

func (nopStats) Counter(string) Counter { return nopMetric{} }
func (nopStats) Gauge(string) Gauge     { return nopMetric{} }

type nopMetric struct{}

func (nopMetric) Inc()         {}
func (nopMetric) Dec()         {}
func (nopMetric) Add(uint64)   {}
func (nopMetric) Sub(uint64)   {}
func (nopMetric) Set(v uint64) {}

// clusterStats are the handles of one cluster's stats, Envoy's names under
// "cluster.<name>.".
type clusterStats struct {
	src    Stats
	blk    StatsBlock // nil unless src is a StatsBlocker
	prefix string

	cxTotal, cxConnectFail, cxConnectTimeout, cxOverflow, cxNoneHealthy Counter
	cxHTTP1Total, cxHTTP2Total, cxDestroy, cxRxBytes, cxTxBytes         Counter
	cxActiveG                                                           Gauge

	rqTotal, rqPendingTotal, rqPendingOverflow, rqRetryOverflow, rqTimeout Counter
	rqCompleted, rq1xx, rq2xx, rq3xx, rq4xx, rq5xx                         Counter
	rqActive, rqPendingActive                                              Gauge

	membershipHealthy, membershipDegraded, membershipExcluded, membershipTotal, maxHostWeight Gauge
	membershipChange, lbHealthyPanic                                                          Counter
	updateAttempt, updateSuccess, updateFailure, updateEmpty, updateNoRebuild                 Counter

	// codes holds the upstream_rq_<code> counters, allocated on the first
	// response: 4.8 KB that a cluster without traffic does not pay.
	codes atomic.Pointer[codeCounters]
}

type codeCounters [600]atomic.Pointer[counterBox]

type counterBox struct{ c Counter }

// clusterCounters and clusterGauges are the stats every cluster registers
// (StatsBlocker's tables): those of newClusterStats and of the two
// circuit-breaker priorities. Stats that depend on the config (remaining_*,
// outlier_detection.*, health_check.*) and per-code counters are not in
// them, so they are listed only once registered. Never modified.
var (
	clusterCounters = []string{
		"upstream_cx_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_overflow",
		"upstream_cx_none_healthy", "upstream_cx_http1_total", "upstream_cx_http2_total", "upstream_cx_destroy",
		"upstream_cx_rx_bytes_total", "upstream_cx_tx_bytes_total",
		"upstream_rq_total", "upstream_rq_pending_total", "upstream_rq_pending_overflow", "upstream_rq_retry_overflow",
		"upstream_rq_timeout", "upstream_rq_completed",
		"upstream_rq_1xx", "upstream_rq_2xx", "upstream_rq_3xx", "upstream_rq_4xx", "upstream_rq_5xx",
		"membership_change", "lb_healthy_panic",
		"update_attempt", "update_success", "update_failure", "update_empty", "update_no_rebuild",
	}
	clusterGauges = []string{
		"upstream_cx_active", "upstream_rq_active", "upstream_rq_pending_active",
		"membership_healthy", "membership_degraded", "membership_excluded", "membership_total", "max_host_weight",
		"circuit_breakers.default.cx_open", "circuit_breakers.default.rq_pending_open",
		"circuit_breakers.default.rq_open", "circuit_breakers.default.rq_retry_open",
		"circuit_breakers.high.cx_open", "circuit_breakers.high.rq_pending_open",
		"circuit_breakers.high.rq_open", "circuit_breakers.high.rq_retry_open",
	}
)

func newClusterStats(s Stats, statName string) *clusterStats {
	p := "cluster." + statName + "."
	cs := &clusterStats{src: s, prefix: p}
	if b, ok := s.(StatsBlocker); ok {
		cs.blk = b.StatsBlock(p, clusterCounters, clusterGauges)
	}
	c, g := cs.counter, cs.gauge
	cs.cxTotal = c("upstream_cx_total")
	cs.cxActiveG = g("upstream_cx_active")
	cs.cxConnectFail = c("upstream_cx_connect_fail")
	cs.cxConnectTimeout = c("upstream_cx_connect_timeout")
	cs.cxOverflow = c("upstream_cx_overflow")
	cs.cxNoneHealthy = c("upstream_cx_none_healthy")
	cs.cxHTTP1Total = c("upstream_cx_http1_total")
	cs.cxHTTP2Total = c("upstream_cx_http2_total")
	cs.cxDestroy = c("upstream_cx_destroy")
	cs.cxRxBytes = c("upstream_cx_rx_bytes_total")
	cs.cxTxBytes = c("upstream_cx_tx_bytes_total")
	cs.rqTotal = c("upstream_rq_total")
	cs.rqActive = g("upstream_rq_active")
	cs.rqPendingTotal = c("upstream_rq_pending_total")
	cs.rqPendingActive = g("upstream_rq_pending_active")
	cs.rqPendingOverflow = c("upstream_rq_pending_overflow")
	cs.rqRetryOverflow = c("upstream_rq_retry_overflow")
	cs.rqTimeout = c("upstream_rq_timeout")
	cs.rqCompleted = c("upstream_rq_completed")
	cs.rq1xx = c("upstream_rq_1xx")
	cs.rq2xx = c("upstream_rq_2xx")
	cs.rq3xx = c("upstream_rq_3xx")
	cs.rq4xx = c("upstream_rq_4xx")
	cs.rq5xx = c("upstream_rq_5xx")
	cs.membershipHealthy = g("membership_healthy")
	cs.membershipDegraded = g("membership_degraded")
	cs.membershipExcluded = g("membership_excluded")
	cs.membershipTotal = g("membership_total")
	cs.maxHostWeight = g("max_host_weight")
	cs.membershipChange = c("membership_change")
	cs.lbHealthyPanic = c("lb_healthy_panic")
	cs.updateAttempt = c("update_attempt")
	cs.updateSuccess = c("update_success")
	cs.updateFailure = c("update_failure")
	cs.updateEmpty = c("update_empty")
	cs.updateNoRebuild = c("update_no_rebuild")
	return cs
}

func (cs *clusterStats) counter(name string) Counter {
	if cs.blk != nil {
		return cs.blk.Counter(name)
	}
	return cs.src.Counter(cs.prefix + name)
}

func (cs *clusterStats) gauge(name string) Gauge {
	if cs.blk != nil {
		return cs.blk.Gauge(name)
	}
	return cs.src.Gauge(cs.prefix + name)
}

// code counts a response status: upstream_rq_<class>xx and upstream_rq_<code>.
func (cs *clusterStats) code(status int) {
	switch status / 100 {
	case 1:
		cs.rq1xx.Inc()
	case 2:
		cs.rq2xx.Inc()
	case 3:
		cs.rq3xx.Inc()
	case 4:
		cs.rq4xx.Inc()
	case 5:
		cs.rq5xx.Inc()
	}
	if status < 100 || status >= len(codeCounters{}) {
		return
	}
	codes := cs.codes.Load()
	if codes == nil {
		codes = new(codeCounters)
		if !cs.codes.CompareAndSwap(nil, codes) {
			codes = cs.codes.Load()
		}
	}
	b := codes[status].Load()
	if b == nil {
		b = &counterBox{c: cs.counter("upstream_rq_" + itoa(status))}
		if !codes[status].CompareAndSwap(nil, b) {
			b = codes[status].Load()
		}
	}
	b.c.Inc()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
