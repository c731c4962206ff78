package admin

import (
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

type fakeClusters []ClusterStatus

func (f fakeClusters) ClusterStatuses() []ClusterStatus { return f }

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// testClusters has two clusters given out of order: "web" with an outlier
// detector, two hosts in two priorities (one failing its health check and
// outlier check), and "backend" static with one healthy host.
func testClusters() fakeClusters {
	return fakeClusters{
		{
			Name:              "web",
			ObservabilityName: "web_stats",
			EDSServiceName:    "web-eds",
			AddedViaAPI:       true,
			Default:           Thresholds{MaxConnections: 100, MaxPendingRequests: 200, MaxRequests: 300, MaxRetries: 4},
			High:              DefaultThresholds(),
			Outlier: &OutlierStatus{
				SuccessRateAverage: 97.5, SuccessRateEjectionThreshold: 93.25,
				LocalOriginSuccessRateAverage: -1, LocalOriginSuccessRateEjectionThreshold: -1,
			},
			Hosts: []HostStatus{
				{
					Address:     sockAddr("10.0.0.1", 8080),
					Hostname:    "web-1.example",
					Locality:    &corev3.Locality{Region: "eu", Zone: "eu-a", SubZone: "rack1"},
					Stats:       HostStats{CxActive: 2, CxTotal: 10, RqTotal: 50, RqSuccess: 48, RqError: 2, RqActive: 1},
					Weight:      3,
					Canary:      true,
					SuccessRate: 96, LocalOriginSuccessRate: -1,
				},
				{
					Address:     sockAddr("2001:db8::2", 8080),
					Health:      FailedActiveHC | FailedOutlierCheck,
					Weight:      1,
					Priority:    1,
					Stats:       HostStats{CxConnectFail: 7, RqTimeout: 1},
					SuccessRate: -1, LocalOriginSuccessRate: 12.5,
				},
			},
		},
		{
			Name:              "backend",
			ObservabilityName: "backend",
			Default:           DefaultThresholds(),
			High:              DefaultThresholds(),
			Hosts: []HostStatus{{
				Address: sockAddr("127.0.0.1", 9000), Weight: 1, SuccessRate: -1, LocalOriginSuccessRate: -1,
			}},
		},
	}
}

func TestClustersTextGolden(t *testing.T) {
	ta := startAdmin(t, Options{Clusters: testClusters()})
	code, body := ta.get(t, "/clusters")
	if code != 200 {
		t.Fatalf("/clusters: %d %s", code, body)
	}
	golden(t, "clusters.golden", body)

	empty := startAdmin(t, Options{})
	if code, body := empty.get(t, "/clusters"); code != 200 || body != "" {
		t.Errorf("/clusters without clusters = %d %q", code, body)
	}
}

func TestClustersJSON(t *testing.T) {
	ta := startAdmin(t, Options{Clusters: testClusters()})
	var cs adminv3.Clusters
	ta.getJSON(t, "/clusters?format=json", &cs)
	if n := len(cs.GetClusterStatuses()); n != 2 {
		t.Fatalf("%d clusters", n)
	}
	backend, web := cs.GetClusterStatuses()[0], cs.GetClusterStatuses()[1]
	if backend.GetName() != "backend" || web.GetName() != "web" {
		t.Fatalf("clusters not sorted by name: %s, %s", backend.GetName(), web.GetName())
	}
	if web.GetObservabilityName() != "web_stats" || web.GetEdsServiceName() != "web-eds" || !web.GetAddedViaApi() {
		t.Errorf("web cluster fields: %v", web)
	}
	if got := web.GetSuccessRateEjectionThreshold().GetValue(); got != 93.25 {
		t.Errorf("success_rate_ejection_threshold %v", got)
	}
	if web.GetLocalOriginSuccessRateEjectionThreshold() != nil {
		t.Error("local_origin_success_rate_ejection_threshold set although -1")
	}
	th := web.GetCircuitBreakers().GetThresholds()
	if len(th) != 2 || th[0].GetPriority() != corev3.RoutingPriority_DEFAULT || th[1].GetPriority() != corev3.RoutingPriority_HIGH ||
		th[0].GetMaxConnections().GetValue() != 100 || th[0].GetMaxPendingRequests().GetValue() != 200 ||
		th[0].GetMaxRequests().GetValue() != 300 || th[0].GetMaxRetries().GetValue() != 4 ||
		th[1].GetMaxConnections().GetValue() != 1024 || th[1].GetMaxRetries().GetValue() != 3 {
		t.Errorf("circuit breakers: %v", th)
	}

	hosts := web.GetHostStatuses()
	if len(hosts) != 2 {
		t.Fatalf("%d web hosts", len(hosts))
	}
	h0, h1 := hosts[0], hosts[1]
	if h0.GetAddress().GetSocketAddress().GetAddress() != "10.0.0.1" || h0.GetAddress().GetSocketAddress().GetPortValue() != 8080 {
		t.Errorf("host 0 address %v", h0.GetAddress())
	}
	if h0.GetHostname() != "web-1.example" || h0.GetWeight() != 3 || h0.GetLocality().GetSubZone() != "rack1" {
		t.Errorf("host 0: %v", h0)
	}
	if h0.GetSuccessRate().GetValue() != 96 || h0.GetLocalOriginSuccessRate() != nil {
		t.Errorf("host 0 success rates: %v %v", h0.GetSuccessRate(), h0.GetLocalOriginSuccessRate())
	}
	stats := map[string]*adminv3.SimpleMetric{}
	var names []string
	for _, m := range h0.GetStats() {
		stats[m.GetName()] = m
		names = append(names, m.GetName())
	}
	wantOrder := []string{"cx_connect_fail", "cx_total", "rq_error", "rq_success", "rq_timeout", "rq_total", "cx_active", "rq_active"}
	if len(names) != len(wantOrder) {
		t.Fatalf("host stats %v", names)
	}
	for i := range wantOrder {
		if names[i] != wantOrder[i] {
			t.Errorf("host stats order %v, want %v", names, wantOrder)
			break
		}
	}
	for _, c := range []struct {
		name string
		typ  adminv3.SimpleMetric_Type
		v    uint64
	}{{"cx_total", adminv3.SimpleMetric_COUNTER, 10}, {"rq_success", adminv3.SimpleMetric_COUNTER, 48}, {"cx_active", adminv3.SimpleMetric_GAUGE, 2}} {
		if m := stats[c.name]; m.GetType() != c.typ || m.GetValue() != c.v {
			t.Errorf("stat %s = %v", c.name, m)
		}
	}
	if hs := h0.GetHealthStatus(); hs.GetEdsHealthStatus() != corev3.HealthStatus_HEALTHY || hs.GetFailedActiveHealthCheck() {
		t.Errorf("host 0 health %v", hs)
	}
	if hs := h1.GetHealthStatus(); !hs.GetFailedActiveHealthCheck() || !hs.GetFailedOutlierCheck() || hs.GetEdsHealthStatus() != corev3.HealthStatus_HEALTHY {
		t.Errorf("host 1 health %v", hs)
	}
	if h1.GetPriority() != 1 || h1.GetSuccessRate() != nil || h1.GetLocalOriginSuccessRate().GetValue() != 12.5 {
		t.Errorf("host 1: %v", h1)
	}
}

func TestHealthFlags(t *testing.T) {
	for _, tc := range []struct {
		f    HealthFlags
		text string
		eds  corev3.HealthStatus
	}{
		{0, "healthy", corev3.HealthStatus_HEALTHY},
		{FailedActiveHC, "/failed_active_hc", corev3.HealthStatus_HEALTHY},
		{FailedOutlierCheck | FailedActiveHC, "/failed_active_hc/failed_outlier_check", corev3.HealthStatus_HEALTHY},
		{FailedEDSHealth, "/failed_eds_health", corev3.HealthStatus_UNHEALTHY},
		{DegradedEDSHealth, "/degraded_eds_health", corev3.HealthStatus_DEGRADED},
		{FailedEDSHealth | DegradedEDSHealth, "/failed_eds_health/degraded_eds_health", corev3.HealthStatus_UNHEALTHY},
		{DegradedActiveHC | PendingDynamicRemoval | PendingActiveHC, "/degraded_active_hc/pending_dynamic_removal/pending_active_hc", corev3.HealthStatus_HEALTHY},
		{ExcludedViaImmediateHCFail | ActiveHCTimeout, "/excluded_via_immediate_hc_fail/active_hc_timeout", corev3.HealthStatus_HEALTHY},
		{EDSStatusDraining, "/eds_status_draining", corev3.HealthStatus_DRAINING},
	} {
		if got := tc.f.String(); got != tc.text {
			t.Errorf("%b: %q, want %q", tc.f, got, tc.text)
		}
		hs := hostHealth(tc.f)
		if hs.GetEdsHealthStatus() != tc.eds {
			t.Errorf("%b: eds_health_status %v, want %v", tc.f, hs.GetEdsHealthStatus(), tc.eds)
		}
		if hs.GetFailedActiveDegradedCheck() != (tc.f&DegradedActiveHC != 0) ||
			hs.GetPendingDynamicRemoval() != (tc.f&PendingDynamicRemoval != 0) ||
			hs.GetPendingActiveHc() != (tc.f&PendingActiveHC != 0) ||
			hs.GetExcludedViaImmediateHcFail() != (tc.f&ExcludedViaImmediateHCFail != 0) ||
			hs.GetActiveHcTimeout() != (tc.f&ActiveHCTimeout != 0) {
			t.Errorf("%b: health status %v", tc.f, hs)
		}
	}
}
