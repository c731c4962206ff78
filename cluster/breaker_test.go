package cluster_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/cluster"
)

// hold starts a request whose response streams until the upstream
// releases it; the request stays active until its body is closed.
func hold(t *testing.T, cl *cluster.Cluster, lbc cluster.LoadBalancerContext) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://x/hold", nil)
	resp, _, err := cl.RoundTrip(req, lbc)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestCircuitBreakerMaxRequests(t *testing.T) {
	e := newEnv(t, nil)
	up := startH2CUpstream(t, "a")
	defer up.release()
	cl := e.add(staticCluster(t, "cb", `http2_protocol_options: {}
circuit_breakers:
  thresholds:
  - {max_requests: 2, track_remaining: true}
  - {priority: HIGH, max_requests: 5}`, up.addr))
	r1, r2 := hold(t, cl, cluster.LoadBalancerContext{}), hold(t, cl, cluster.LoadBalancerContext{})
	if e.stats.value("cluster.cb.circuit_breakers.default.rq_open") != 1 || e.stats.value("cluster.cb.circuit_breakers.default.remaining_rq") != 0 {
		t.Fatal("rq_open / remaining_rq at the limit")
	}
	_, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
	var oe *cluster.OverflowError
	if !errors.Is(err, cluster.ErrOverflow) || !errors.As(err, &oe) || oe.Resource != "max_requests" {
		t.Fatalf("err = %v, want max_requests overflow", err)
	}
	if e.stats.value("cluster.cb.upstream_rq_pending_overflow") != 1 {
		t.Fatal("upstream_rq_pending_overflow")
	}
	// HIGH priority requests have their own thresholds.
	if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{HighPriority: true}); err != nil {
		t.Fatalf("high priority: %v", err)
	}
	up.release()
	io.Copy(io.Discard, r1.Body)
	r1.Body.Close()
	r2.Body.Close()
	if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if e.stats.value("cluster.cb.circuit_breakers.default.rq_open") != 0 || e.stats.value("cluster.cb.circuit_breakers.default.remaining_rq") != 2 {
		t.Fatal("breaker did not close")
	}
}

func TestCircuitBreakerConnectionsAndPending(t *testing.T) {
	e := newEnv(t, nil)
	up := startUpstream(t, "a")
	defer up.release()
	cl := e.add(staticCluster(t, "cb", `circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 1}]}`, up.addr))
	r1 := hold(t, cl, cluster.LoadBalancerContext{})
	// The second request waits for the connection.
	type result struct {
		name string
		err  error
	}
	second := make(chan result, 1)
	go func() {
		name, _, err := get(t, cl, "/second", cluster.LoadBalancerContext{})
		second <- result{name, err}
	}()
	eventually(t, 5*time.Second, "a pending request", func() bool {
		return e.stats.value("cluster.cb.upstream_rq_pending_active") == 1
	})
	if e.stats.value("cluster.cb.upstream_cx_overflow") != 1 || e.stats.value("cluster.cb.circuit_breakers.default.cx_open") != 1 {
		t.Fatal("cx overflow stats")
	}
	// The third finds the pending queue full.
	_, _, err := get(t, cl, "/third", cluster.LoadBalancerContext{})
	var oe *cluster.OverflowError
	if !errors.As(err, &oe) || oe.Resource != "max_pending_requests" {
		t.Fatalf("err = %v, want max_pending_requests overflow", err)
	}
	// Still full for a caller with a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x/", nil)
	if _, _, err := cl.RoundTrip(req, cluster.LoadBalancerContext{}); !errors.Is(err, cluster.ErrOverflow) {
		t.Fatalf("err = %v", err)
	}
	up.release()
	io.Copy(io.Discard, r1.Body)
	r1.Body.Close()
	select {
	case r := <-second:
		if r.err != nil || r.name != "a" {
			t.Fatalf("pending request: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending request never ran")
	}
	if e.stats.value("cluster.cb.upstream_rq_pending_total") != 1 || e.stats.value("cluster.cb.upstream_rq_pending_active") != 0 {
		t.Fatal("pending stats")
	}
	// Only one connection was ever used.
	if got := e.stats.value("cluster.cb.upstream_cx_total"); got != 1 {
		t.Fatalf("upstream_cx_total %d", got)
	}
}

func TestCircuitBreakerRetries(t *testing.T) {
	e := newEnv(t, nil)
	up := startUpstream(t, "a")
	cl := e.add(staticCluster(t, "cb", `circuit_breakers: {thresholds: [{max_retries: 1}]}`, up.addr))
	lbc := cluster.LoadBalancerContext{}
	if !cl.TryRetry(lbc) {
		t.Fatal("first retry refused")
	}
	if cl.TryRetry(lbc) {
		t.Fatal("second concurrent retry allowed")
	}
	if e.stats.value("cluster.cb.upstream_rq_retry_overflow") != 1 || e.stats.value("cluster.cb.circuit_breakers.default.rq_retry_open") != 1 {
		t.Fatal("retry overflow stats")
	}
	cl.RetryDone(lbc)
	if !cl.TryRetry(lbc) {
		t.Fatal("retry after done refused")
	}
	cl.RetryDone(lbc)
	// Default max_retries is 3.
	d := e.add(staticCluster(t, "default", "", up.addr))
	for i := range 3 {
		if !d.TryRetry(lbc) {
			t.Fatalf("default retry %d refused", i)
		}
	}
	if d.TryRetry(lbc) {
		t.Fatal("fourth retry allowed")
	}
}
