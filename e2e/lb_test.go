package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// lbFixture: three echo upstreams u0..u2 (healthy /healthz), "bad" (always
// 500) and "sick" (serves requests but fails /healthz).
type lbFixture struct {
	p         *proxy
	u         []*upstream
	bad, sick *upstream
}

func startLB(t *testing.T) *lbFixture {
	f := &lbFixture{}
	var ports []int
	for i := 0; i < 3; i++ {
		u := startUpstream(t, fmt.Sprintf("u%d", i), nil)
		f.u = append(f.u, u)
		ports = append(ports, u.Port)
	}
	f.bad = startUpstream(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "always failing", http.StatusInternalServerError)
	}))
	f.sick = startUpstream(t, "sick", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		echo("sick")(w, r)
	}))
	f.p = startProxy(t, "lb.yaml", vars{"U": ports, "Bad": f.bad.Port, "Sick": f.sick.Port})
	return f
}

// spread sends n requests to path and counts the answering upstreams
// (x-upstream; "status-<code>" for non-200 answers).
func spread(t *testing.T, p *proxy, path string, n int, hdr ...string) map[string]int {
	t.Helper()
	c := h1Client()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		resp, _ := get(t, c, p.url("lb", path), hdr...)
		if resp.StatusCode != 200 {
			got[fmt.Sprintf("status-%d", resp.StatusCode)]++
			continue
		}
		got[resp.Header.Get("X-Upstream")]++
	}
	return got
}

// TestLoadBalancing: ROUND_ROBIN spreads evenly over three hosts;
// endpoint weights 1:3 split 1:3; RING_HASH with a header hash policy
// keeps a user on one host and spreads users.
func TestLoadBalancing(t *testing.T) {
	t.Parallel()
	f := startLB(t)
	t.Run("round-robin", func(t *testing.T) {
		got := spread(t, f.p, "/rr/", 30)
		for _, u := range f.u {
			if got[u.Name] != 10 {
				t.Fatalf("round robin over 3 hosts, 30 requests: %v", got)
			}
		}
	})
	t.Run("weighted", func(t *testing.T) {
		got := spread(t, f.p, "/weighted/", 40)
		if got["u0"] < 7 || got["u0"] > 13 || got["u1"] < 27 || got["u1"] > 33 || got["u0"]+got["u1"] != 40 {
			t.Fatalf("weights 1:3 over 40 requests: %v", got)
		}
	})
	t.Run("ring-hash-sticky", func(t *testing.T) {
		hosts := map[string]bool{}
		for i := 0; i < 12; i++ {
			user := fmt.Sprintf("user-%d", i)
			got := spread(t, f.p, "/ring/", 5, "x-user", user)
			if len(got) != 1 {
				t.Fatalf("%s was not sticky: %v", user, got)
			}
			for h := range got {
				hosts[h] = true
			}
		}
		if len(hosts) < 2 {
			t.Fatalf("12 users all hashed to %v", hosts)
		}
	})
}

// TestOutlierEjection: consecutive_5xx ejects the host that always
// answers 500; afterwards every request goes to the healthy host and
// /clusters shows the ejected host's failed_outlier_check flag.
func TestOutlierEjection(t *testing.T) {
	t.Parallel()
	f := startLB(t)
	// Round robin over [bad, u0]: the bad host's third consecutive 5xx
	// ejects it within the first six requests.
	first := spread(t, f.p, "/outlier/", 6)
	if first["status-500"] != 3 {
		t.Fatalf("before ejection: %v (want 3 answers from the bad host)", first)
	}
	if got := spread(t, f.p, "/outlier/", 20); got["u0"] != 20 {
		t.Fatalf("after ejection: %v", got)
	}
	_, clusters := f.p.admin("/clusters")
	want := fmt.Sprintf("outlier::%s::health_flags::/failed_outlier_check", f.bad.Addr())
	if !strings.Contains(clusters, want) {
		t.Fatalf("/clusters lacks %q:\n%s", want, grepLines(clusters, "outlier::"))
	}
	if n := f.p.stat("cluster.outlier.outlier_detection.ejections_enforced_total"); n != 1 {
		t.Errorf("ejections_enforced_total %d", n)
	}
}

// TestActiveHealthCheck: an HTTP health check marks the host whose
// /healthz fails unhealthy; traffic then goes only to the other host.
func TestActiveHealthCheck(t *testing.T) {
	t.Parallel()
	f := startLB(t)
	want := fmt.Sprintf("hc::%s::health_flags::/failed_active_hc", f.sick.Addr())
	waitFor(t, "the sick host marked /failed_active_hc", 5*time.Second, func() bool {
		_, clusters := f.p.admin("/clusters")
		return strings.Contains(clusters, want)
	})
	if got := spread(t, f.p, "/hc/", 10); got["u1"] != 10 {
		t.Fatalf("with the sick host unhealthy: %v", got)
	}
	_, clusters := f.p.admin("/clusters")
	if !strings.Contains(clusters, fmt.Sprintf("hc::%s::health_flags::healthy", f.u[1].Addr())) {
		t.Errorf("healthy host not shown healthy:\n%s", grepLines(clusters, "hc::"))
	}
	if f.sick.Hits.Load() == 0 {
		t.Error("the health checker never asked the sick host")
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
