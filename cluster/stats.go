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

// StatsSlots is optionally implemented by a StatsBlock: the stats of its
// two tables by position (CounterAt(i) is Counter(counters[i])), without a
// name lookup, so that a cluster keeps no handle per stat.
type StatsSlots interface {
	CounterAt(i int) Counter
	GaugeAt(i int) Gauge
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

// clusterStats are one cluster's stats, Envoy's names under
// "cluster.<name>.". The stats every cluster has are reached by their
// position in clusterCounters and clusterGauges: through the store's block
// when it hands them out by position (StatsSlots), which keeps no handle
// per stat in the cluster, otherwise through handles resolved once.
type clusterStats struct {
	src    Stats
	blk    StatsBlock // nil unless src is a StatsBlocker
	slots  StatsSlots // blk, when it implements StatsSlots
	prefix string

	handles *statHandles // without slots

	// codes holds the upstream_rq_<code> counters, allocated on the first
	// response: 4.8 KB that a cluster without traffic does not pay.
	codes atomic.Pointer[codeCounters]
}

// statHandles are the stats of the tables, by position, for a store that
// does not hand them out by position.
type statHandles struct {
	c [numCounters]Counter
	g [numGauges]Gauge
}

type codeCounters [600]atomic.Pointer[counterBox]

type counterBox struct{ c Counter }

// Positions in clusterCounters.
const (
	cCxTotal = iota
	cCxConnectFail
	cCxConnectTimeout
	cCxOverflow
	cCxNoneHealthy
	cCxHTTP1Total
	cCxHTTP2Total
	cCxDestroy
	cCxRxBytes
	cCxTxBytes
	cRqTotal
	cRqPendingTotal
	cRqPendingOverflow
	cRqRetryOverflow
	cRqTimeout
	cRqCompleted
	cRq1xx
	cRq2xx
	cRq3xx
	cRq4xx
	cRq5xx
	cMembershipChange
	cLbHealthyPanic
	cUpdateAttempt
	cUpdateSuccess
	cUpdateFailure
	cUpdateEmpty
	cUpdateNoRebuild
	numCounters
)

// Positions in clusterGauges; each circuit-breaker priority has its four
// gauges from gBreakerDefault or gBreakerHigh on, in breakerGauges order.
const (
	gCxActiveG = iota
	gRqActive
	gRqPendingActive
	gMembershipHealthy
	gMembershipDegraded
	gMembershipExcluded
	gMembershipTotal
	gMaxHostWeight
	gBreakerDefault
	gBreakerHigh = gBreakerDefault + len(breakerGauges)
	numGauges    = gBreakerHigh + len(breakerGauges)
)

// Offsets of a priority's circuit breaker gauges from its base.
const (
	bgCxOpen = iota
	bgRqPendingOpen
	bgRqOpen
	bgRqRetryOpen
)

var breakerGauges = [...]string{bgCxOpen: "cx_open", bgRqPendingOpen: "rq_pending_open", bgRqOpen: "rq_open", bgRqRetryOpen: "rq_retry_open"}

// clusterCounters and clusterGauges are the stats every cluster registers
// (StatsBlocker's tables): those of newClusterStats and of the two
// circuit-breaker priorities. Stats that depend on the config (remaining_*,
// outlier_detection.*, health_check.*) and per-code counters are not in
// them, so they are listed only once registered. Never modified.
var (
	clusterCounters = []string{
		cCxTotal:           "upstream_cx_total",
		cCxConnectFail:     "upstream_cx_connect_fail",
		cCxConnectTimeout:  "upstream_cx_connect_timeout",
		cCxOverflow:        "upstream_cx_overflow",
		cCxNoneHealthy:     "upstream_cx_none_healthy",
		cCxHTTP1Total:      "upstream_cx_http1_total",
		cCxHTTP2Total:      "upstream_cx_http2_total",
		cCxDestroy:         "upstream_cx_destroy",
		cCxRxBytes:         "upstream_cx_rx_bytes_total",
		cCxTxBytes:         "upstream_cx_tx_bytes_total",
		cRqTotal:           "upstream_rq_total",
		cRqPendingTotal:    "upstream_rq_pending_total",
		cRqPendingOverflow: "upstream_rq_pending_overflow",
		cRqRetryOverflow:   "upstream_rq_retry_overflow",
		cRqTimeout:         "upstream_rq_timeout",
		cRqCompleted:       "upstream_rq_completed",
		cRq1xx:             "upstream_rq_1xx",
		cRq2xx:             "upstream_rq_2xx",
		cRq3xx:             "upstream_rq_3xx",
		cRq4xx:             "upstream_rq_4xx",
		cRq5xx:             "upstream_rq_5xx",
		cMembershipChange:  "membership_change",
		cLbHealthyPanic:    "lb_healthy_panic",
		cUpdateAttempt:     "update_attempt",
		cUpdateSuccess:     "update_success",
		cUpdateFailure:     "update_failure",
		cUpdateEmpty:       "update_empty",
		cUpdateNoRebuild:   "update_no_rebuild",
	}
	clusterGauges = []string{
		gCxActiveG:          "upstream_cx_active",
		gRqActive:           "upstream_rq_active",
		gRqPendingActive:    "upstream_rq_pending_active",
		gMembershipHealthy:  "membership_healthy",
		gMembershipDegraded: "membership_degraded",
		gMembershipExcluded: "membership_excluded",
		gMembershipTotal:    "membership_total",
		gMaxHostWeight:      "max_host_weight",
		gBreakerDefault + 0: "circuit_breakers.default.cx_open",
		gBreakerDefault + 1: "circuit_breakers.default.rq_pending_open",
		gBreakerDefault + 2: "circuit_breakers.default.rq_open",
		gBreakerDefault + 3: "circuit_breakers.default.rq_retry_open",
		gBreakerHigh + 0:    "circuit_breakers.high.cx_open",
		gBreakerHigh + 1:    "circuit_breakers.high.rq_pending_open",
		gBreakerHigh + 2:    "circuit_breakers.high.rq_open",
		gBreakerHigh + 3:    "circuit_breakers.high.rq_retry_open",
	}
)

func newClusterStats(s Stats, statName string) *clusterStats {
	p := "cluster." + statName + "."
	cs := &clusterStats{src: s, prefix: p}
	if b, ok := s.(StatsBlocker); ok {
		cs.blk = b.StatsBlock(p, clusterCounters, clusterGauges)
		if sl, ok := cs.blk.(StatsSlots); ok {
			cs.slots = sl
			return cs
		}
	}
	cs.handles = new(statHandles)
	for i, n := range clusterCounters {
		cs.handles.c[i] = cs.counter(n)
	}
	for i, n := range clusterGauges {
		cs.handles.g[i] = cs.gauge(n)
	}
	return cs
}

// c returns the counter at position i of clusterCounters.
func (cs *clusterStats) c(i int) Counter {
	if cs.slots != nil {
		return cs.slots.CounterAt(i)
	}
	return cs.handles.c[i]
}

// g returns the gauge at position i of clusterGauges.
func (cs *clusterStats) g(i int) Gauge {
	if cs.slots != nil {
		return cs.slots.GaugeAt(i)
	}
	return cs.handles.g[i]
}

func (cs *clusterStats) cxTotal() Counter           { return cs.c(cCxTotal) }
func (cs *clusterStats) cxConnectFail() Counter     { return cs.c(cCxConnectFail) }
func (cs *clusterStats) cxConnectTimeout() Counter  { return cs.c(cCxConnectTimeout) }
func (cs *clusterStats) cxOverflow() Counter        { return cs.c(cCxOverflow) }
func (cs *clusterStats) cxNoneHealthy() Counter     { return cs.c(cCxNoneHealthy) }
func (cs *clusterStats) cxHTTP1Total() Counter      { return cs.c(cCxHTTP1Total) }
func (cs *clusterStats) cxHTTP2Total() Counter      { return cs.c(cCxHTTP2Total) }
func (cs *clusterStats) cxDestroy() Counter         { return cs.c(cCxDestroy) }
func (cs *clusterStats) cxRxBytes() Counter         { return cs.c(cCxRxBytes) }
func (cs *clusterStats) cxTxBytes() Counter         { return cs.c(cCxTxBytes) }
func (cs *clusterStats) rqTotal() Counter           { return cs.c(cRqTotal) }
func (cs *clusterStats) rqPendingTotal() Counter    { return cs.c(cRqPendingTotal) }
func (cs *clusterStats) rqPendingOverflow() Counter { return cs.c(cRqPendingOverflow) }
func (cs *clusterStats) rqRetryOverflow() Counter   { return cs.c(cRqRetryOverflow) }
func (cs *clusterStats) rqTimeout() Counter         { return cs.c(cRqTimeout) }
func (cs *clusterStats) rqCompleted() Counter       { return cs.c(cRqCompleted) }
func (cs *clusterStats) rq1xx() Counter             { return cs.c(cRq1xx) }
func (cs *clusterStats) rq2xx() Counter             { return cs.c(cRq2xx) }
func (cs *clusterStats) rq3xx() Counter             { return cs.c(cRq3xx) }
func (cs *clusterStats) rq4xx() Counter             { return cs.c(cRq4xx) }
func (cs *clusterStats) rq5xx() Counter             { return cs.c(cRq5xx) }
func (cs *clusterStats) membershipChange() Counter  { return cs.c(cMembershipChange) }
func (cs *clusterStats) lbHealthyPanic() Counter    { return cs.c(cLbHealthyPanic) }
func (cs *clusterStats) updateAttempt() Counter     { return cs.c(cUpdateAttempt) }
func (cs *clusterStats) updateSuccess() Counter     { return cs.c(cUpdateSuccess) }
func (cs *clusterStats) updateFailure() Counter     { return cs.c(cUpdateFailure) }
func (cs *clusterStats) updateEmpty() Counter       { return cs.c(cUpdateEmpty) }
func (cs *clusterStats) updateNoRebuild() Counter   { return cs.c(cUpdateNoRebuild) }
func (cs *clusterStats) cxActiveG() Gauge           { return cs.g(gCxActiveG) }
func (cs *clusterStats) rqActive() Gauge            { return cs.g(gRqActive) }
func (cs *clusterStats) rqPendingActive() Gauge     { return cs.g(gRqPendingActive) }
func (cs *clusterStats) membershipHealthy() Gauge   { return cs.g(gMembershipHealthy) }
func (cs *clusterStats) membershipDegraded() Gauge  { return cs.g(gMembershipDegraded) }
func (cs *clusterStats) membershipExcluded() Gauge  { return cs.g(gMembershipExcluded) }
func (cs *clusterStats) membershipTotal() Gauge     { return cs.g(gMembershipTotal) }
func (cs *clusterStats) maxHostWeight() Gauge       { return cs.g(gMaxHostWeight) }

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
		cs.rq1xx().Inc()
	case 2:
		cs.rq2xx().Inc()
	case 3:
		cs.rq3xx().Inc()
	case 4:
		cs.rq4xx().Inc()
	case 5:
		cs.rq5xx().Inc()
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
