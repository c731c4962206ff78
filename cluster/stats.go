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

func newClusterStats(s Stats, statName string) *clusterStats {
	p := "cluster." + statName + "."
	cs := &clusterStats{src: s, prefix: p}
	c := func(n string) Counter { return s.Counter(p + n) }
	g := func(n string) Gauge { return s.Gauge(p + n) }
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

func (cs *clusterStats) counter(name string) Counter { return cs.src.Counter(cs.prefix + name) }
func (cs *clusterStats) gauge(name string) Gauge     { return cs.src.Gauge(cs.prefix + name) }

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
		b = &counterBox{c: cs.src.Counter(cs.prefix + "upstream_rq_" + itoa(status))}
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
