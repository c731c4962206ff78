package cluster_test

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/cluster"
)

func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func hostByAddr(cl *cluster.Cluster, addr string) *cluster.Host {
	for _, h := range cl.Hosts() {
		if h.Address() == addr {
			return h
		}
	}
	return nil
}

func TestOutlierConsecutive5xx(t *testing.T) {
	e := newEnv(t, seeded(1))
	good1, good2, bad := startUpstream(t, "good1"), startUpstream(t, "good2"), startUpstream(t, "bad")
	bad.status.Store(503)
	cl := e.add(staticCluster(t, "od", `outlier_detection:
  consecutive_5xx: 3
  interval: 0.05s
  base_ejection_time: 0.2s
  max_ejection_percent: 50`, good1.addr, good2.addr, bad.addr))
	badHost := hostByAddr(cl, bad.addr)
	for range 9 {
		if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); err != nil {
			t.Fatal(err)
		}
	}
	// Three 503s in a row from the bad host eject it at once.
	if badHost.Healthy() || badHost.HealthFlags() != "/failed_outlier_check" {
		t.Fatalf("bad host flags %s", badHost.HealthFlags())
	}
	for name, want := range map[string]int64{
		"cluster.od.outlier_detection.ejections_active":                   1,
		"cluster.od.outlier_detection.ejections_enforced_total":           1,
		"cluster.od.outlier_detection.ejections_enforced_consecutive_5xx": 1,
		"cluster.od.outlier_detection.ejections_detected_consecutive_5xx": 1,
		"cluster.od.membership_healthy":                                   2,
		"cluster.od.upstream_rq_503":                                      3,
		"cluster.od.upstream_rq_5xx":                                      3,
	} {
		if got := e.stats.value(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	hits := bad.hits.Load()
	for range 20 {
		get(t, cl, "/", cluster.LoadBalancerContext{})
	}
	if bad.hits.Load() != hits {
		t.Fatal("ejected host still receives requests")
	}
	// It recovers and comes back after base_ejection_time.
	bad.status.Store(200)
	eventually(t, 5*time.Second, "unejection", badHost.Healthy)
	if e.stats.value("cluster.od.outlier_detection.ejections_active") != 0 {
		t.Fatal("ejections_active after unejection")
	}
	for range 6 {
		get(t, cl, "/", cluster.LoadBalancerContext{})
	}
	if bad.hits.Load() == hits {
		t.Fatal("unejected host gets no traffic")
	}
}

func TestOutlierGatewayAndLocalOrigin(t *testing.T) {
	t.Run("gateway failures", func(t *testing.T) {
		e := newEnv(t, seeded(1))
		good, bad := startUpstream(t, "good"), startUpstream(t, "bad")
		bad.status.Store(502)
		cl := e.add(staticCluster(t, "gw", `outlier_detection:
  consecutive_5xx: 100
  consecutive_gateway_failure: 2
  enforcing_consecutive_gateway_failure: 100
  max_ejection_percent: 50`, good.addr, bad.addr))
		for range 4 {
			get(t, cl, "/", cluster.LoadBalancerContext{})
		}
		if hostByAddr(cl, bad.addr).Healthy() || e.stats.value("cluster.gw.outlier_detection.ejections_enforced_consecutive_gateway_failure") != 1 {
			t.Fatal("gateway failures did not eject")
		}
	})
	t.Run("gateway detection off by default", func(t *testing.T) {
		e := newEnv(t, seeded(1))
		good, bad := startUpstream(t, "good"), startUpstream(t, "bad")
		bad.status.Store(504)
		cl := e.add(staticCluster(t, "gw", `outlier_detection: {consecutive_5xx: 100, consecutive_gateway_failure: 2, max_ejection_percent: 50}`, good.addr, bad.addr))
		for range 10 {
			get(t, cl, "/", cluster.LoadBalancerContext{})
		}
		if !hostByAddr(cl, bad.addr).Healthy() || e.stats.value("cluster.gw.outlier_detection.ejections_detected_consecutive_gateway_failure") == 0 {
			t.Fatal("enforcing_consecutive_gateway_failure defaults to 0: detect, do not eject")
		}
	})
	t.Run("connect failures count as 5xx without split", func(t *testing.T) {
		e := newEnv(t, seeded(1))
		good := startUpstream(t, "good")
		dead := deadAddr(t)
		cl := e.add(staticCluster(t, "lo", `outlier_detection: {consecutive_5xx: 2, max_ejection_percent: 50}`, good.addr, dead))
		fails := 0
		for range 10 {
			if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); errors.Is(err, cluster.ErrConnectFailure) {
				fails++
			}
		}
		if fails != 2 || hostByAddr(cl, dead).Healthy() {
			t.Fatalf("%d connect failures before ejection, want 2", fails)
		}
	})
	t.Run("split local origin", func(t *testing.T) {
		e := newEnv(t, seeded(1))
		good, bad := startUpstream(t, "good"), startUpstream(t, "bad")
		bad.status.Store(500)
		dead := deadAddr(t)
		cl := e.add(staticCluster(t, "lo", `outlier_detection:
  split_external_local_origin_errors: true
  consecutive_local_origin_failure: 3
  consecutive_5xx: 100
  max_ejection_percent: 100`, good.addr, bad.addr, dead))
		for range 12 {
			get(t, cl, "/", cluster.LoadBalancerContext{})
		}
		if hostByAddr(cl, dead).Healthy() || !hostByAddr(cl, bad.addr).Healthy() {
			t.Fatal("split mode: the unreachable host must be ejected, the 500 host not")
		}
		if e.stats.value("cluster.lo.outlier_detection.ejections_enforced_consecutive_local_origin_failure") != 1 {
			t.Fatal("local origin ejection stat")
		}
	})
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	e := newEnv(t, seeded(1))
	good, bad1, bad2 := startUpstream(t, "good"), startUpstream(t, "bad1"), startUpstream(t, "bad2")
	bad1.status.Store(500)
	bad2.status.Store(500)
	cl := e.add(staticCluster(t, "od", `outlier_detection: {consecutive_5xx: 1, max_ejection_percent: 34}`, good.addr, bad1.addr, bad2.addr))
	for range 12 {
		get(t, cl, "/", cluster.LoadBalancerContext{})
	}
	ejected := 0
	for _, h := range cl.Hosts() {
		if !h.Healthy() {
			ejected++
		}
	}
	if ejected != 1 || e.stats.value("cluster.od.outlier_detection.ejections_overflow") == 0 {
		t.Fatalf("%d hosts ejected, overflow %d; want 1 and some", ejected, e.stats.value("cluster.od.outlier_detection.ejections_overflow"))
	}
	// The default 10% of 3 hosts ejects nobody (Envoy does not round up
	// unless always_eject_one_host).
	e2 := newEnv(t, seeded(1))
	cl2 := e2.add(staticCluster(t, "od", `outlier_detection: {consecutive_5xx: 1}`, good.addr, bad1.addr))
	for range 6 {
		get(t, cl2, "/", cluster.LoadBalancerContext{})
	}
	if !hostByAddr(cl2, bad1.addr).Healthy() {
		t.Fatal("10% of 2 hosts ejected one")
	}
	cl3 := e2.add(staticCluster(t, "od3", `outlier_detection: {consecutive_5xx: 1, always_eject_one_host: true}`, good.addr, bad1.addr))
	for range 6 {
		get(t, cl3, "/", cluster.LoadBalancerContext{})
	}
	if hostByAddr(cl3, bad1.addr).Healthy() {
		t.Fatal("always_eject_one_host did not eject")
	}
}

func TestOutlierSuccessRate(t *testing.T) {
	e := newEnv(t, seeded(1))
	var addrs []string
	var bad *upstream
	for i := range 5 {
		u := startUpstream(t, fmt.Sprint("u", i))
		if i == 4 {
			u.status.Store(500)
			bad = u
		}
		addrs = append(addrs, u.addr)
	}
	cl := e.add(staticCluster(t, "sr", `outlier_detection:
  consecutive_5xx: 100000
  interval: 0.1s
  success_rate_request_volume: 5
  max_ejection_percent: 20`, addrs...))
	badHost := hostByAddr(cl, bad.addr)
	deadline := time.Now().Add(10 * time.Second)
	for badHost.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("success rate ejection never happened")
		}
		for range 25 {
			get(t, cl, "/", cluster.LoadBalancerContext{})
		}
	}
	if e.stats.value("cluster.sr.outlier_detection.ejections_enforced_success_rate") != 1 {
		t.Fatal("success rate ejection stat")
	}
	for _, h := range cl.Hosts() {
		if h != badHost && h.Stats().SuccessRate != -1 && h.Stats().SuccessRate != 100 {
			t.Fatalf("good host success rate %v", h.Stats().SuccessRate)
		}
	}
}
