package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/cluster/dns/dnstest"
)

// twinUpstreams serves echo("dns-a") on 127.0.0.1:P and echo("dns-b") on
// 127.0.0.2:P (one port, two addresses, so DNS answers can move traffic).
func twinUpstreams(t *testing.T) int {
	t.Helper()
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not a local address here (Linux routes 127/8 to loopback): %v", err)
	} else {
		l.Close()
	}
	for attempt := 0; attempt < 20; attempt++ {
		la, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := la.Addr().(*net.TCPAddr).Port
		lb, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
		if err != nil {
			la.Close()
			continue
		}
		for name, l := range map[string]net.Listener{"dns-a": la, "dns-b": lb} {
			s := httptest.NewUnstartedServer(echo(name))
			s.Listener.Close()
			s.Listener = l
			s.Start()
			t.Cleanup(s.Close)
		}
		return port
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return 0
}

type clustersFixture struct {
	p    *proxy
	dns  *dnstest.Server
	u    []*upstream
	sick *upstream
	dead int
}

func startClusters(t *testing.T) *clustersFixture {
	f := &clustersFixture{dns: dnstest.Start(t), dead: closedPort(t)}
	f.dns.SetA("svc.e2e.test.", time.Second, "127.0.0.1")
	f.dns.SetA("logical.e2e.test.", time.Second, "127.0.0.1", "127.0.0.2")
	var ports []int
	for i := 0; i < 3; i++ {
		u := startUpstream(t, fmt.Sprintf("u%d", i), nil)
		f.u = append(f.u, u)
		ports = append(ports, u.Port)
	}
	f.sick = startUpstream(t, "sick", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		echo("sick")(w, r)
	}))
	dir := t.TempDir()
	ca := newCA(t, dir, "mtls-ca")
	client := ca.issue(t, "proxy-client", true)
	mtls := httptest.NewUnstartedServer(echo("mtls"))
	mtls.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "mtls-upstream", false, "mtls.upstream.test").Pair},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.pool(),
	}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)
	_, dnsPort, _ := net.SplitHostPort(f.dns.Addr)
	f.p = startProxy(t, "clusters.yaml", vars{
		"DNSPort": dnsPort, "DNSTarget": twinUpstreams(t), "U": ports, "Sick": f.sick.Port, "Dead": f.dead,
		"ClientCert": client.CertPath, "ClientKey": client.KeyPath, "CA": ca.Path,
		"MTLS": mtls.Listener.Addr().(*net.TCPAddr).Port,
	})
	return f
}

// TestDNSClusters: STRICT_DNS uses every address of the name and follows
// a changed answer at dns_refresh_rate; LOGICAL_DNS connects to the first
// address.
func TestDNSClusters(t *testing.T) {
	t.Parallel()
	f := startClusters(t)
	c := h1Client()
	t.Run("strict-dns", func(t *testing.T) {
		got := map[string]int{}
		for i := 0; i < 4; i++ {
			resp, _ := get(t, c, f.p.url("c", "/strict/"))
			got[resp.Header.Get("X-Upstream")]++
		}
		if got["dns-a"] != 4 {
			t.Fatalf("svc.e2e.test -> 127.0.0.1: %v", got)
		}
		f.dns.SetA("svc.e2e.test.", time.Second, "127.0.0.1", "127.0.0.2")
		waitFor(t, "requests reaching the second resolved address", 5*time.Second, func() bool {
			resp, _ := get(t, c, f.p.url("c", "/strict/"))
			return resp.Header.Get("X-Upstream") == "dns-b"
		})
		f.dns.SetA("svc.e2e.test.", time.Second, "127.0.0.2")
		waitFor(t, "the first address leaving the cluster", 5*time.Second, func() bool {
			for i := 0; i < 4; i++ {
				if resp, _ := get(t, c, f.p.url("c", "/strict/")); resp.Header.Get("X-Upstream") != "dns-b" {
					return false
				}
			}
			return true
		})
	})
	t.Run("logical-dns", func(t *testing.T) {
		for i := 0; i < 6; i++ {
			resp, body := get(t, c, f.p.url("c", "/logical/"))
			if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != "dns-a" {
				t.Fatalf("logical dns: %d %s %q", resp.StatusCode, resp.Header.Get("X-Upstream"), body)
			}
		}
		if f.dns.Queries("logical.e2e.test.", "A") == 0 {
			t.Error("LOGICAL_DNS never queried the configured resolver")
		}
	})
}

// TestCircuitBreaker: with max_connections, max_pending_requests and
// max_requests of one, concurrent requests overflow: 503 with
// x-envoy-overloaded and flag UO.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	f := startClusters(t)
	var wg sync.WaitGroup
	var missingOverloaded atomic.Bool
	codes := make(chan int, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := mustReq(t, "GET", f.p.url("c", fmt.Sprintf("/breaker/%d", i)), nil)
			req.Header.Set("X-Delay-Ms", "300")
			resp, err := h1Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 503 && resp.Header.Get("X-Envoy-Overloaded") != "true" {
				missingOverloaded.Store(true)
			}
			codes <- resp.StatusCode
		}(i)
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[503] == 0 || got[200] == 0 || got[200] > 2 {
		t.Fatalf("6 concurrent requests through thresholds of one: %v", got)
	}
	uo := 0
	for _, l := range readLines(accessLog(f.p)) {
		if strings.HasPrefix(l, "503 UO ") {
			uo++
		}
	}
	if uo != got[503] {
		t.Errorf("%d access log lines with UO for %d overflows", uo, got[503])
	}
	if n := f.p.stat("cluster.breaker.upstream_rq_pending_overflow"); n == 0 {
		t.Error("cluster.breaker.upstream_rq_pending_overflow is 0")
	}
	t.Run("x-envoy-overloaded", func(t *testing.T) {
		if missingOverloaded.Load() {
			t.Error("an overflow reply lacks x-envoy-overloaded: true")
		}
	})
}

// TestClusterOptions: MAGLEV keeps a hashed user on one host; priorities
// fail over when priority 0 is unhealthy; a TCP health check marks a
// closed port unhealthy; ORIGINAL_DST with use_http_header goes to the
// x-envoy-original-dst-host address; an upstream requiring a client
// certificate gets the cluster's.
func TestClusterOptions(t *testing.T) {
	t.Parallel()
	f := startClusters(t)
	c := h1Client()
	t.Run("maglev", func(t *testing.T) {
		hosts := map[string]bool{}
		for i := 0; i < 12; i++ {
			seen := map[string]bool{}
			for j := 0; j < 4; j++ {
				resp, _ := get(t, c, f.p.url("c", "/maglev/"), "x-user", fmt.Sprintf("user-%d", i))
				seen[resp.Header.Get("X-Upstream")] = true
			}
			if len(seen) != 1 {
				t.Fatalf("user-%d went to %v", i, seen)
			}
			for h := range seen {
				hosts[h] = true
			}
		}
		if len(hosts) < 2 {
			t.Fatalf("12 users on %v", hosts)
		}
	})
	t.Run("priority-failover", func(t *testing.T) {
		waitFor(t, "priority 1 taking the traffic", 5*time.Second, func() bool {
			resp, _ := get(t, c, f.p.url("c", "/prio/"))
			return resp.Header.Get("X-Upstream") == "u2"
		})
		_, clusters := f.p.admin("/clusters")
		if !strings.Contains(clusters, fmt.Sprintf("prio::%s::priority::1", f.u[2].Addr())) {
			t.Errorf("/clusters lacks the priority of %s:\n%s", f.u[2].Addr(), grepLines(clusters, "prio::"))
		}
	})
	t.Run("tcp-health-check", func(t *testing.T) {
		want := fmt.Sprintf("tcphc::%s:%d::health_flags::/failed_active_hc", deadHost, f.dead)
		waitFor(t, "the closed port marked unhealthy", 5*time.Second, func() bool {
			_, clusters := f.p.admin("/clusters")
			return strings.Contains(clusters, want)
		})
		for i := 0; i < 6; i++ {
			if resp, _ := get(t, c, f.p.url("c", "/tcphc/")); resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
	})
	t.Run("original-dst-header", func(t *testing.T) {
		for _, u := range f.u {
			resp, body := get(t, c, f.p.url("c", "/origdst/"), "x-envoy-original-dst-host", u.Addr())
			if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != u.Name {
				t.Fatalf("to %s: %d %s %q", u.Addr(), resp.StatusCode, resp.Header.Get("X-Upstream"), body)
			}
		}
	})
	t.Run("upstream-client-certificate", func(t *testing.T) {
		resp, body := get(t, c, f.p.url("c", "/mtls/"))
		if resp.StatusCode != 200 || parseEcho(t, body).SNI != "mtls.upstream.test" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}
