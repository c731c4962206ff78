package cluster_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/cluster"
)

// hcUpstream answers /health with a switchable status and everything
// else like upstream.
type hcUpstream struct {
	*upstream
	healthy atomic.Bool
	checks  atomic.Int64
}

func startHCUpstream(t testing.TB, name string, healthy bool) *hcUpstream {
	t.Helper()
	u := &hcUpstream{upstream: &upstream{name: name}}
	u.healthy.Store(healthy)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			u.checks.Add(1)
			if !u.healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		u.upstream.ServeHTTP(w, r)
	}))
	u.srv, u.addr = srv, srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	return u
}

const hcConfig = `health_checks:
- timeout: 1s
  interval: 0.01s
  no_traffic_interval: 0.01s
  unhealthy_threshold: 2
  healthy_threshold: 2
  http_health_check: {path: /health}
`

func TestActiveHealthChecks(t *testing.T) {
	e := newEnv(t, seeded(1))
	good, bad := startHCUpstream(t, "good", true), startHCUpstream(t, "bad", false)
	cl := e.add(staticCluster(t, "hc", hcConfig+"common_lb_config: {healthy_panic_threshold: {value: 0}}", good.addr, bad.addr))
	// Add waited for the first round: the verdicts are in.
	goodHost, badHost := hostByAddr(cl, good.addr), hostByAddr(cl, bad.addr)
	if !goodHost.Healthy() || badHost.Healthy() || badHost.HealthFlags() != "/failed_active_hc" {
		t.Fatalf("after warming: good %s, bad %s", goodHost.HealthFlags(), badHost.HealthFlags())
	}
	for range 10 {
		if name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); err != nil || name != "good" {
			t.Fatalf("went to %q: %v", name, err)
		}
	}
	if e.stats.value("cluster.hc.membership_healthy") != 1 || e.stats.value("cluster.hc.health_check.healthy") != 1 {
		t.Fatal("healthy gauges")
	}
	if e.stats.value("cluster.hc.health_check.attempt") < 2 || e.stats.value("cluster.hc.health_check.failure") < 1 {
		t.Fatal("health check counters")
	}
	// The bad host recovers; the good one fails.
	bad.healthy.Store(true)
	good.healthy.Store(false)
	eventually(t, 5*time.Second, "swap", func() bool { return badHost.Healthy() && !goodHost.Healthy() })
	if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "bad" {
		t.Fatalf("went to %s", name)
	}
}

func TestHealthCheckWarmsNewHostsAndEDS(t *testing.T) {
	e := newEnv(t, seeded(1))
	a, b := startHCUpstream(t, "a", true), startHCUpstream(t, "b", true)
	cl := e.add(fmt.Sprintf(`
name: eds
type: EDS
connect_timeout: 1s
eds_cluster_config: {eds_config: {ads: {}}}
common_lb_config: {ignore_new_hosts_until_first_hc: true}
%s
load_assignment:
  cluster_name: eds
  endpoints: [{lb_endpoints: [%s]}]
`, hcConfig, fmt.Sprintf("{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}}", portOf(t, a.addr))))
	if !hostByAddr(cl, a.addr).Healthy() {
		t.Fatal("initial host not healthy after warming")
	}
	// A new host from EDS is excluded until its first check passes.
	b.healthy.Store(false)
	err := e.m.UpdateEndpoints("eds", parseCLA(t, fmt.Sprintf(`
cluster_name: eds
endpoints:
- lb_endpoints:
  - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}
  - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}
`, portOf(t, a.addr), portOf(t, b.addr))))
	if err != nil {
		t.Fatal(err)
	}
	hb := hostByAddr(cl, b.addr)
	if hb.Healthy() {
		t.Fatal("new host healthy before its first check")
	}
	eventually(t, 5*time.Second, "first check of b", func() bool { return hb.HealthFlags() == "/failed_active_hc" })
	for range 5 {
		if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "a" {
			t.Fatalf("went to %s", name)
		}
	}
	b.healthy.Store(true)
	eventually(t, 5*time.Second, "b healthy", hb.Healthy)
}

func TestHealthCheckUnejectsAndClosesConnections(t *testing.T) {
	e := newEnv(t, seeded(1))
	good, flaky := startHCUpstream(t, "good", true), startHCUpstream(t, "flaky", true)
	flaky.status.Store(500)
	cl := e.add(staticCluster(t, "hc", hcConfig+`close_connections_on_host_health_failure: true
outlier_detection: {consecutive_5xx: 2, max_ejection_percent: 50, base_ejection_time: 3600s, interval: 3600s}`, good.addr, flaky.addr))
	fh := hostByAddr(cl, flaky.addr)
	for range 4 {
		get(t, cl, "/", cluster.LoadBalancerContext{})
	}
	if fh.Healthy() {
		t.Fatal("flaky host not ejected")
	}
	// The ejection would last an hour, but the host passes its health
	// checks: successful_active_health_check_uneject_host brings it back.
	flaky.status.Store(200)
	eventually(t, 5*time.Second, "uneject by health check", fh.Healthy)
	// Open a connection to it, then fail its health check: the connection
	// is closed.
	for fh.Stats().CxActive == 0 {
		get(t, cl, "/", cluster.LoadBalancerContext{})
	}
	flaky.healthy.Store(false)
	eventually(t, 5*time.Second, "connections closed", func() bool { return !fh.Healthy() && fh.Stats().CxActive == 0 })
}

func TestHealthCheckWarmingTimeout(t *testing.T) {
	// A health check that never answers keeps the cluster warming; Add
	// gives up with its context and nothing is installed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	m := cluster.NewManager(t.Context(), cluster.Options{})
	defer m.Close()
	c := parseCluster(t, staticCluster(t, "warm", `health_checks:
- timeout: 10s
  interval: 10s
  unhealthy_threshold: 1
  healthy_threshold: 1
  http_health_check: {path: /health}`, srv.Listener.Addr().String()))
	ctx, cancel := contextWithTimeout(100 * time.Millisecond)
	defer cancel()
	if err := m.Add(ctx, c); err == nil || m.Get("warm") != nil {
		t.Fatalf("Add: %v", err)
	}
	_ = io.EOF
}
