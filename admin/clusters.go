package admin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ClusterStatus is one cluster as /clusters shows it; the cluster manager
// fills it from its live state.
type ClusterStatus struct {
	Name string
	// ObservabilityName is alt_stat_name, or the name when unset.
	ObservabilityName string
	// EDSServiceName is eds_cluster_config.service_name ("" when unset).
	EDSServiceName string
	AddedViaAPI    bool
	// Default and High are the circuit breaker thresholds of the two
	// routing priorities (DefaultThresholds when unconfigured).
	Default, High Thresholds
	// Outlier is nil when the cluster has no outlier detector.
	Outlier *OutlierStatus
	// Hosts are the hosts of every priority, priority 0 first.
	Hosts []HostStatus
}

// Thresholds are circuit breaker limits.
type Thresholds struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRetries uint32
}

// DefaultThresholds are Envoy's circuit breaker defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}
}

// OutlierStatus is an outlier detector's success rate figures of the last
// interval; -1 where there was not enough data.
type OutlierStatus struct {
	SuccessRateAverage                      float64
	SuccessRateEjectionThreshold            float64
	LocalOriginSuccessRateAverage           float64
	LocalOriginSuccessRateEjectionThreshold float64
}

// HostStatus is one upstream host.
type HostStatus struct {
	Address  *corev3.Address
	Hostname string
	Locality *corev3.Locality
	Stats    HostStats
	Health   HealthFlags
	Weight   uint32
	Canary   bool
	Priority uint32
	// SuccessRate and LocalOriginSuccessRate are the outlier detector's
	// per-host success rates (0-100), -1 when not computed.
	SuccessRate            float64
	LocalOriginSuccessRate float64
}

// HostStats are Envoy's per-host statistics.
type HostStats struct {
	// Counters.
	CxConnectFail, CxTotal, RqError, RqSuccess, RqTimeout, RqTotal uint64
	// Gauges.
	CxActive, RqActive uint64
}

// HealthFlags are the reasons a host is not healthy (Envoy's
// Host::HealthFlag). The zero value is a healthy host.
type HealthFlags uint32

// The health flags, in Envoy's order.
const (
	FailedActiveHC HealthFlags = 1 << iota
	FailedOutlierCheck
	FailedEDSHealth
	DegradedActiveHC
	DegradedEDSHealth
	PendingDynamicRemoval
	PendingActiveHC
	ExcludedViaImmediateHCFail
	ActiveHCTimeout
	EDSStatusDraining
)

var healthFlagNames = []string{
	"failed_active_hc", "failed_outlier_check", "failed_eds_health", "degraded_active_hc",
	"degraded_eds_health", "pending_dynamic_removal", "pending_active_hc",
	"excluded_via_immediate_hc_fail", "active_hc_timeout", "eds_status_draining",
}

// String is /clusters' health_flags value: "healthy", or "/flag/flag...".
func (f HealthFlags) String() string {
	if f == 0 {
		return "healthy"
	}
	var b strings.Builder
	for i, n := range healthFlagNames {
		if f&(1<<i) != 0 {
			b.WriteString("/" + n)
		}
	}
	return b.String()
}

func (a *Admin) clusterStatuses() []ClusterStatus {
	if a.o.Clusters == nil {
		return nil
	}
	cs := slices.Clone(a.o.Clusters.ClusterStatuses())
	slices.SortStableFunc(cs, func(x, y ClusterStatus) int { return strings.Compare(x.Name, y.Name) })
	return cs
}

// handleClusters answers /clusters in Envoy's "cluster::host::stat::value"
// text, or envoy.admin.v3.Clusters with ?format=json.
func (a *Admin) handleClusters(w http.ResponseWriter, r *http.Request) {
	cs := a.clusterStatuses()
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, clustersJSON(cs), false)
		return
	}
	w.Write([]byte(clustersText(cs)))
}

func clustersText(cs []ClusterStatus) string {
	var b strings.Builder
	line := func(parts ...string) {
		b.WriteString(strings.Join(parts, "::"))
		b.WriteByte('\n')
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, c := range cs {
		n := c.Name
		line(n, "observability_name", c.ObservabilityName)
		if o := c.Outlier; o != nil {
			line(n, "outlier", "success_rate_average", g(o.SuccessRateAverage))
			line(n, "outlier", "success_rate_ejection_threshold", g(o.SuccessRateEjectionThreshold))
			line(n, "outlier", "local_origin_success_rate_average", g(o.LocalOriginSuccessRateAverage))
			line(n, "outlier", "local_origin_success_rate_ejection_threshold", g(o.LocalOriginSuccessRateEjectionThreshold))
		}
		for _, p := range []struct {
			name string
			t    Thresholds
		}{{"default_priority", c.Default}, {"high_priority", c.High}} {
			line(n, p.name, "max_connections", u(uint64(p.t.MaxConnections)))
			line(n, p.name, "max_pending_requests", u(uint64(p.t.MaxPendingRequests)))
			line(n, p.name, "max_requests", u(uint64(p.t.MaxRequests)))
			line(n, p.name, "max_retries", u(uint64(p.t.MaxRetries)))
		}
		line(n, "added_via_api", strconv.FormatBool(c.AddedViaAPI))
		if c.EDSServiceName != "" {
			line(n, "eds_service_name", c.EDSServiceName)
		}
		for _, h := range c.Hosts {
			addr := FormatAddress(h.Address)
			// Counters and gauges together, sorted by name.
			s := h.Stats
			for _, st := range []struct {
				name string
				v    uint64
			}{
				{"cx_active", s.CxActive}, {"cx_connect_fail", s.CxConnectFail}, {"cx_total", s.CxTotal},
				{"rq_active", s.RqActive}, {"rq_error", s.RqError}, {"rq_success", s.RqSuccess},
				{"rq_timeout", s.RqTimeout}, {"rq_total", s.RqTotal},
			} {
				line(n, addr, st.name, u(st.v))
			}
			line(n, addr, "hostname", h.Hostname)
			line(n, addr, "health_flags", h.Health.String())
			line(n, addr, "weight", u(uint64(h.Weight)))
			line(n, addr, "region", h.Locality.GetRegion())
			line(n, addr, "zone", h.Locality.GetZone())
			line(n, addr, "sub_zone", h.Locality.GetSubZone())
			line(n, addr, "canary", strconv.FormatBool(h.Canary))
			line(n, addr, "priority", u(uint64(h.Priority)))
			line(n, addr, "success_rate", strconv.FormatFloat(h.SuccessRate, 'g', -1, 64))
			line(n, addr, "local_origin_success_rate", strconv.FormatFloat(h.LocalOriginSuccessRate, 'g', -1, 64))
		}
	}
	return b.String()
}

func clustersJSON(cs []ClusterStatus) *adminv3.Clusters {
	out := &adminv3.Clusters{}
	thresholds := func(p corev3.RoutingPriority, t Thresholds) *clusterv3.CircuitBreakers_Thresholds {
		return &clusterv3.CircuitBreakers_Thresholds{
			Priority:           p,
			MaxConnections:     wrapperspb.UInt32(t.MaxConnections),
			MaxPendingRequests: wrapperspb.UInt32(t.MaxPendingRequests),
			MaxRequests:        wrapperspb.UInt32(t.MaxRequests),
			MaxRetries:         wrapperspb.UInt32(t.MaxRetries),
		}
	}
	for _, c := range cs {
		st := &adminv3.ClusterStatus{
			Name:              c.Name,
			ObservabilityName: c.ObservabilityName,
			EdsServiceName:    c.EDSServiceName,
			AddedViaApi:       c.AddedViaAPI,
			CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
				thresholds(corev3.RoutingPriority_DEFAULT, c.Default),
				thresholds(corev3.RoutingPriority_HIGH, c.High),
			}},
		}
		if o := c.Outlier; o != nil {
			if o.SuccessRateEjectionThreshold > 0 {
				st.SuccessRateEjectionThreshold = &typev3.Percent{Value: o.SuccessRateEjectionThreshold}
			}
			if o.LocalOriginSuccessRateEjectionThreshold > 0 {
				st.LocalOriginSuccessRateEjectionThreshold = &typev3.Percent{Value: o.LocalOriginSuccessRateEjectionThreshold}
			}
		}
		for _, h := range c.Hosts {
			hs := &adminv3.HostStatus{
				Address:      h.Address,
				Hostname:     h.Hostname,
				Locality:     h.Locality,
				HealthStatus: hostHealth(h.Health),
				Weight:       h.Weight,
				Priority:     h.Priority,
			}
			s := h.Stats
			for _, m := range []struct {
				name string
				v    uint64
				typ  adminv3.SimpleMetric_Type
			}{
				{"cx_connect_fail", s.CxConnectFail, adminv3.SimpleMetric_COUNTER},
				{"cx_total", s.CxTotal, adminv3.SimpleMetric_COUNTER},
				{"rq_error", s.RqError, adminv3.SimpleMetric_COUNTER},
				{"rq_success", s.RqSuccess, adminv3.SimpleMetric_COUNTER},
				{"rq_timeout", s.RqTimeout, adminv3.SimpleMetric_COUNTER},
				{"rq_total", s.RqTotal, adminv3.SimpleMetric_COUNTER},
				{"cx_active", s.CxActive, adminv3.SimpleMetric_GAUGE},
				{"rq_active", s.RqActive, adminv3.SimpleMetric_GAUGE},
			} {
				hs.Stats = append(hs.Stats, &adminv3.SimpleMetric{Type: m.typ, Value: m.v, Name: m.name})
			}
			if h.SuccessRate >= 0 {
				hs.SuccessRate = &typev3.Percent{Value: h.SuccessRate}
			}
			if h.LocalOriginSuccessRate >= 0 {
				hs.LocalOriginSuccessRate = &typev3.Percent{Value: h.LocalOriginSuccessRate}
			}
			st.HostStatuses = append(st.HostStatuses, hs)
		}
		out.ClusterStatuses = append(out.ClusterStatuses, st)
	}
	return out
}

// hostHealth maps the flags onto HostHealthStatus as Envoy does: the EDS
// status is UNHEALTHY, DEGRADED, DRAINING or HEALTHY.
func hostHealth(f HealthFlags) *adminv3.HostHealthStatus {
	hs := &adminv3.HostHealthStatus{
		FailedActiveHealthCheck:    f&FailedActiveHC != 0,
		FailedOutlierCheck:         f&FailedOutlierCheck != 0,
		FailedActiveDegradedCheck:  f&DegradedActiveHC != 0,
		PendingDynamicRemoval:      f&PendingDynamicRemoval != 0,
		PendingActiveHc:            f&PendingActiveHC != 0,
		ExcludedViaImmediateHcFail: f&ExcludedViaImmediateHCFail != 0,
		ActiveHcTimeout:            f&ActiveHCTimeout != 0,
		EdsHealthStatus:            corev3.HealthStatus_HEALTHY,
	}
	switch {
	case f&FailedEDSHealth != 0:
		hs.EdsHealthStatus = corev3.HealthStatus_UNHEALTHY
	case f&DegradedEDSHealth != 0:
		hs.EdsHealthStatus = corev3.HealthStatus_DEGRADED
	}
	if f&EDSStatusDraining != 0 {
		hs.EdsHealthStatus = corev3.HealthStatus_DRAINING
	}
	return hs
}
