package cluster_test

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"testing"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/cluster/lb"
)

func seeded(seed uint64) func(*cluster.Options) {
	return func(o *cluster.Options) { o.Rand = lb.NewSeeded(seed) }
}

func TestPoliciesThroughCluster(t *testing.T) {
	a, b, c := startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")
	const n = 600
	cases := []struct {
		policy string
		extra  string
		hashed bool
		tol    float64
	}{
		{policy: "LEAST_REQUEST", tol: 0.08},
		{policy: "RANDOM", tol: 0.08},
		{policy: "RING_HASH", extra: "ring_hash_lb_config: {minimum_ring_size: 3000}", hashed: true, tol: 0.1},
		{policy: "MAGLEV", hashed: true, tol: 0.08},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t, seeded(11))
			cl := e.add(staticCluster(t, "backend", "lb_policy: "+tc.policy+"\n"+tc.extra, a.addr, b.addr, c.addr))
			counts := map[string]int{}
			for i := range n {
				lbc := cluster.LoadBalancerContext{}
				if tc.hashed {
					lbc.Hash, lbc.HasHash = lb.XXHash64(fmt.Appendf(nil, "user-%d", i), 0), true
				}
				name, _, err := get(t, cl, "/", lbc)
				if err != nil {
					t.Fatal(err)
				}
				counts[name]++
			}
			for _, k := range []string{"a", "b", "c"} {
				if math.Abs(float64(counts[k])-n/3.0) > tc.tol*n {
					t.Fatalf("split %v, want about %d each", counts, n/3)
				}
			}
			if tc.hashed {
				// The same hash sticks to one host.
				lbc := cluster.LoadBalancerContext{Hash: 42, HasHash: true}
				first, _, _ := get(t, cl, "/", lbc)
				for range 20 {
					if got, _, _ := get(t, cl, "/", lbc); got != first {
						t.Fatalf("hash 42 went to %s then %s", first, got)
					}
				}
				// Avoiding that host moves the request elsewhere.
				req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
				resp, h, err := cl.RoundTrip(req, lbc)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				lbc.AvoidHosts, lbc.MaxHostSelectionAttempts = []*cluster.Host{h}, 5
				if got, _, _ := get(t, cl, "/", lbc); got == first {
					t.Fatalf("retry predicate ignored: still %s", got)
				}
			}
		})
	}
}

func TestLeastRequestAvoidsBusyHost(t *testing.T) {
	e := newEnv(t, seeded(5))
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	// Ten choices among two hosts: the idle one is almost always among them
	// (Envoy draws with replacement), and the seeded source makes it so.
	cl := e.add(staticCluster(t, "backend", "lb_policy: LEAST_REQUEST\nleast_request_lb_config: {choice_count: 10}", a.addr, b.addr))
	// Park requests on whichever hosts they land until one host has 5 in
	// flight; then every new request must go to the other one.
	var held []*http.Response
	var wg sync.WaitGroup
	defer func() {
		for _, r := range held {
			r.Body.Close()
		}
		wg.Wait()
	}()
	busy := cl.Hosts()[0]
	for busy.ActiveRequests() < 5 {
		req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		resp, h, err := cl.RoundTrip(req, cluster.LoadBalancerContext{AvoidHosts: []*cluster.Host{cl.Hosts()[1]}, MaxHostSelectionAttempts: 50})
		if err != nil {
			t.Fatal(err)
		}
		if h != busy {
			resp.Body.Close()
			continue
		}
		held = append(held, resp) // body unread: the request stays active
	}
	for range 20 {
		if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "b" {
			t.Fatalf("least request picked the busy host %s", name)
		}
	}
}

func TestEDSUpdatesAndPriorities(t *testing.T) {
	e := newEnv(t, seeded(3))
	p0a, p0b, p1 := startUpstream(t, "p0a"), startUpstream(t, "p0b"), startUpstream(t, "p1")
	cl := e.add(`
name: eds
type: EDS
connect_timeout: 1s
eds_cluster_config: {eds_config: {ads: {}}, service_name: svc}
common_lb_config: {healthy_panic_threshold: {value: 0}}
`)
	cla := func(p0aHealth string) string {
		return fmt.Sprintf(`
cluster_name: svc
endpoints:
- priority: 0
  lb_endpoints:%s
        health_status: %s%s
- priority: 1
  lb_endpoints:%s
`, endpointsYAML(t, p0a.addr), p0aHealth, endpointsYAML(t, p0b.addr), endpointsYAML(t, p1.addr))
	}
	if err := e.m.UpdateEndpoints("eds", parseCLA(t, cla("HEALTHY"))); err != nil {
		t.Fatal(err)
	}
	hostA := cl.Hosts()[0]
	count := func() map[string]int {
		c := map[string]int{}
		for range 200 {
			name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
			if err != nil {
				t.Fatal(err)
			}
			c[name]++
		}
		return c
	}
	// All of P0 healthy: P1 gets nothing.
	if c := count(); c["p1"] != 0 || c["p0a"] != 100 || c["p0b"] != 100 {
		t.Fatalf("healthy P0: %v", c)
	}
	// Half of P0 unhealthy: health 50*1.4 = 70%, 30% spills to P1.
	if err := e.m.UpdateEndpoints("eds", parseCLA(t, cla("UNHEALTHY"))); err != nil {
		t.Fatal(err)
	}
	if cl.Hosts()[0] != hostA {
		t.Fatal("host identity lost across an EDS update")
	}
	if hostA.Healthy() || hostA.HealthFlags() != "/failed_eds_health" {
		t.Fatalf("flags %s", hostA.HealthFlags())
	}
	c := count()
	if c["p0a"] != 0 || math.Abs(float64(c["p1"])-60) > 25 {
		t.Fatalf("half-healthy P0: %v, want ~30%% on p1", c)
	}
	if e.stats.value("cluster.eds.membership_healthy") != 2 || e.stats.value("cluster.eds.membership_total") != 3 {
		t.Fatal("membership gauges")
	}
	// DRAINING hosts are excluded.
	if err := e.m.UpdateEndpoints("eds", parseCLA(t, cla("DRAINING"))); err != nil {
		t.Fatal(err)
	}
	if !hostA.Excluded() || e.stats.value("cluster.eds.membership_excluded") != 1 {
		t.Fatal("draining host not excluded")
	}
	// With P0 only half there (one excluded host does not count), P0 is
	// fully healthy again: 1/1 healthy.
	if c := count(); c["p0b"] != 200 {
		t.Fatalf("draining: %v", c)
	}
	// Replacing the cluster keeps the last assignment.
	cl2 := e.add(`
name: eds
type: EDS
connect_timeout: 2s
eds_cluster_config: {eds_config: {ads: {}}, service_name: svc}
`)
	if len(cl2.Hosts()) != 3 {
		t.Fatalf("replacement lost the endpoints: %d hosts", len(cl2.Hosts()))
	}
	// Removing hosts.
	if err := e.m.UpdateEndpoints("eds", parseCLA(t, "cluster_name: svc\nendpoints: [{lb_endpoints: ["+fmt.Sprintf("{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %s}}}}", portOf(t, p1.addr))+"]}]")); err != nil {
		t.Fatal(err)
	}
	if len(cl2.Hosts()) != 1 {
		t.Fatalf("hosts after removal: %d", len(cl2.Hosts()))
	}
	if name, _, _ := get(t, cl2, "/", cluster.LoadBalancerContext{}); name != "p1" {
		t.Fatalf("went to %s", name)
	}
	// A bad assignment is refused with its field and changes nothing.
	err := e.m.UpdateEndpoints("eds", parseCLA(t, "cluster_name: svc\nendpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: nope, port_value: 1}}}}]}]"))
	if err == nil || len(cl2.Hosts()) != 1 {
		t.Fatalf("bad assignment: %v", err)
	}
	want := `cluster_load_assignment "eds" endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: malformed IP address "nope"`
	if err.Error() != want {
		t.Fatalf("error %q\nwant  %q", err, want)
	}
}

func portOf(t testing.TB, addr string) string {
	_, p := hostPort(t, addr)
	return p
}

func TestPanicMode(t *testing.T) {
	e := newEnv(t, seeded(9))
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	cl := e.add(fmt.Sprintf(`
name: eds
type: EDS
connect_timeout: 1s
eds_cluster_config: {eds_config: {ads: {}}}
load_assignment:
  cluster_name: eds
  endpoints:
  - lb_endpoints:%s
        health_status: UNHEALTHY%s
        health_status: UNHEALTHY
`, endpointsYAML(t, a.addr), endpointsYAML(t, b.addr)))
	// Every host unhealthy, default panic threshold 50%: Envoy balances
	// over all of them.
	got := map[string]int{}
	for range 20 {
		name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	if got["a"] != 10 || got["b"] != 10 || e.stats.value("cluster.eds.lb_healthy_panic") != 20 {
		t.Fatalf("panic routing %v, lb_healthy_panic %d", got, e.stats.value("cluster.eds.lb_healthy_panic"))
	}
}
