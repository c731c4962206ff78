package cluster_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wasmesh/wasmesh/cluster"
)

func TestStaticRoundRobin(t *testing.T) {
	e := newEnv(t, nil)
	a, b, c := startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")
	cl := e.add(staticCluster(t, "backend", "lb_policy: ROUND_ROBIN", a.addr, b.addr, c.addr))
	counts := map[string]int{}
	for range 300 {
		name, code, err := get(t, cl, "/x", cluster.LoadBalancerContext{})
		if err != nil || code != 200 {
			t.Fatalf("request: %v %d", err, code)
		}
		counts[name]++
	}
	if counts["a"] != 100 || counts["b"] != 100 || counts["c"] != 100 {
		t.Fatalf("round robin split %v, want 100 each", counts)
	}
	for name, want := range map[string]int64{
		"cluster.backend.upstream_rq_total":       300,
		"cluster.backend.upstream_rq_2xx":         300,
		"cluster.backend.upstream_rq_200":         300,
		"cluster.backend.upstream_cx_total":       3, // keep-alive: one connection per host
		"cluster.backend.upstream_cx_active":      3,
		"cluster.backend.membership_total":        3,
		"cluster.backend.membership_healthy":      3,
		"cluster.backend.upstream_rq_active":      0,
		"cluster.backend.upstream_cx_http1_total": 3,
		"cluster_manager.active_clusters":         1,
		"cluster_manager.cluster_added":           1,
	} {
		if got := e.stats.value(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if e.stats.value("cluster.backend.upstream_cx_rx_bytes_total") == 0 || e.stats.value("cluster.backend.upstream_cx_tx_bytes_total") == 0 {
		t.Error("byte counters not counted")
	}
	hosts := cl.Hosts()
	if len(hosts) != 3 || hosts[0].Address() != a.addr || hosts[0].Stats().RqTotal != 100 || hosts[0].HealthFlags() != "healthy" {
		t.Fatalf("hosts: %v %+v %s", hosts[0].Address(), hosts[0].Stats(), hosts[0].HealthFlags())
	}
}

func TestStaticWeightedRoundRobin(t *testing.T) {
	e := newEnv(t, nil)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	cl := e.add(staticCluster(t, "backend", "", a.addr+"@1", b.addr+"@3"))
	counts := map[string]int{}
	for range 400 {
		name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
		if err != nil {
			t.Fatal(err)
		}
		counts[name]++
	}
	if counts["a"] != 100 || counts["b"] != 300 {
		t.Fatalf("weighted split %v, want a=100 b=300", counts)
	}
	if got := e.stats.value("cluster.backend.max_host_weight"); got != 3 {
		t.Fatalf("max_host_weight %d", got)
	}
}

func TestRoundTripKeepsRequest(t *testing.T) {
	e := newEnv(t, nil)
	a := startUpstream(t, "a")
	cl := e.add(staticCluster(t, "backend", "", a.addr))
	req, _ := http.NewRequest(http.MethodPost, "http://frontend.example/p?q=1", strings.NewReader("hello"))
	req.Host = "api.example"
	resp, h, err := cl.RoundTrip(req, cluster.LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "a /p" || h.Address() != a.addr {
		t.Fatalf("body %q host %s", body, h.Address())
	}
	if req.URL.Host != "frontend.example" || req.URL.Scheme != "http" {
		t.Fatalf("caller's request was modified: %v", req.URL)
	}
	if _, ok := a.hosts.Load("api.example"); !ok {
		t.Fatal("authority not forwarded")
	}
}

func TestRoundTripErrors(t *testing.T) {
	e := newEnv(t, nil)
	// A port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()

	t.Run("no hosts", func(t *testing.T) {
		cl := e.add(`
name: empty
type: EDS
eds_cluster_config: {eds_config: {ads: {}}}
connect_timeout: 1s`)
		_, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
		if !errors.Is(err, cluster.ErrNoHealthyUpstream) {
			t.Fatalf("err = %v, want ErrNoHealthyUpstream", err)
		}
		if e.stats.value("cluster.empty.upstream_cx_none_healthy") != 1 {
			t.Fatal("upstream_cx_none_healthy not counted")
		}
	})
	t.Run("connect failure", func(t *testing.T) {
		cl := e.add(staticCluster(t, "dead", "", dead))
		_, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
		var ue *cluster.UpstreamError
		if !errors.Is(err, cluster.ErrConnectFailure) || !errors.As(err, &ue) || ue.Host == nil || ue.Host.Address() != dead {
			t.Fatalf("err = %v, want ErrConnectFailure naming the host", err)
		}
		if e.stats.value("cluster.dead.upstream_cx_connect_fail") != 1 || e.stats.value("cluster.dead.upstream_rq_active") != 0 {
			t.Fatal("connect failure stats")
		}
		if !strings.Contains(err.Error(), `cluster "dead" host `+dead) {
			t.Fatalf("error text %q", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		a := startUpstream(t, "a")
		cl := e.add(staticCluster(t, "slow", "", a.addr))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x/slow", nil)
		_, h, err := cl.RoundTrip(req, cluster.LoadBalancerContext{})
		if !errors.Is(err, context.DeadlineExceeded) || h == nil {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
		if e.stats.value("cluster.slow.upstream_rq_timeout") != 1 || h.Stats().RqTimeout != 1 {
			t.Fatal("timeout not counted")
		}
	})
	t.Run("unknown endpoints update", func(t *testing.T) {
		if err := e.m.UpdateEndpoints("nope", parseCLA(t, "cluster_name: nope")); !errors.Is(err, cluster.ErrUnknownCluster) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestIncrementalUpdates(t *testing.T) {
	e := newEnv(t, nil)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	one := e.add(staticCluster(t, "one", "", a.addr))
	two := e.add(staticCluster(t, "two", "", b.addr))
	if got := e.m.Names(); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("names %v", got)
	}
	// Same config again: no-op, same object.
	e.add(staticCluster(t, "one", "", a.addr))
	if e.m.Get("one") != one {
		t.Fatal("unchanged config replaced the cluster")
	}
	// Replacing "one" leaves "two" alone; the old "one" still serves the
	// requests that hold it.
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	resp, _, err := one.RoundTrip(req, cluster.LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	newOne := e.add(staticCluster(t, "one", "", b.addr))
	if newOne == one || e.m.Get("two") != two {
		t.Fatal("replace touched the wrong cluster")
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "a /" {
		t.Fatalf("in-flight response %q", body)
	}
	if name, _, _ := get(t, e.m.Get("one"), "/", cluster.LoadBalancerContext{}); name != "b" {
		t.Fatalf("replaced cluster went to %q", name)
	}
	if e.stats.value("cluster_manager.cluster_modified") != 1 {
		t.Fatal("cluster_modified")
	}
	// Remove.
	if !e.m.Remove("two") || e.m.Get("two") != nil || e.m.Remove("two") {
		t.Fatal("remove")
	}
	if len(e.stats.names("cluster.two.")) != 0 {
		t.Fatalf("stats of a removed cluster remain: %v", e.stats.names("cluster.two."))
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a := startUpstream(t, "a")
	st := newMemStats()
	m := cluster.NewManager(context.Background(), cluster.Options{Stats: st})
	c := parseCluster(t, staticCluster(t, "backend", `
health_checks:
- timeout: 1s
  interval: 0.02s
  no_traffic_interval: 0.02s
  unhealthy_threshold: 1
  healthy_threshold: 1
  http_health_check: {path: /health}
outlier_detection: {interval: 0.01s}
`, a.addr))
	if err := m.Add(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, _, err := get(t, m.Get("backend"), "/", cluster.LoadBalancerContext{}); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	a.srv.Close()
	if st.value("cluster.backend.upstream_cx_active") != 0 {
		t.Fatalf("connections left open: %d", st.value("cluster.backend.upstream_cx_active"))
	}
}

func TestAddWhileWarmingIsSuperseded(t *testing.T) {
	// A cluster whose health check never answers warms forever; a newer
	// Add of the same name takes over and the first Add returns.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	a := startUpstream(t, "a")
	e := newEnv(t, nil)
	first := make(chan error, 1)
	go func() {
		first <- e.m.Add(context.Background(), parseCluster(t, staticCluster(t, "w", `health_checks:
- {timeout: 10s, interval: 10s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: {path: /h}}`, hang.Listener.Addr().String())))
	}()
	eventually(t, 5*time.Second, "warming", func() bool { return e.stats.value("cluster_manager.warming_clusters") == 1 })
	e.add(staticCluster(t, "w", "", a.addr))
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("superseded Add: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("superseded Add still blocked")
	}
	if name, _, _ := get(t, e.m.Get("w"), "/", cluster.LoadBalancerContext{}); name != "a" {
		t.Fatal("newer config not serving")
	}
	// Close ends a warming Add too.
	second := make(chan error, 1)
	go func() {
		second <- e.m.Add(context.Background(), parseCluster(t, staticCluster(t, "w2", `health_checks:
- {timeout: 10s, interval: 10s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: {path: /h}}`, hang.Listener.Addr().String())))
	}()
	eventually(t, 5*time.Second, "warming", func() bool { return e.stats.value("cluster_manager.warming_clusters") == 1 })
	e.m.Close()
	if err := <-second; !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Add during Close: %v", err)
	}
}
