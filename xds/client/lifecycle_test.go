package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"go.uber.org/goleak"

	"github.com/wasmesh/wasmesh/xds/client"
)

// load sends requests through the proxy from a few goroutines until
// stopped, counting failures (any error or non-200).
type load struct {
	stop        chan struct{}
	wg          sync.WaitGroup
	ok, failed  atomic.Int64
	mu          sync.Mutex
	lastFailure string
}

func startLoad(t *testing.T, port int) *load {
	l := &load{stop: make(chan struct{})}
	for i := 0; i < 4; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, _, err := get(port, "/")
				if err != nil || code != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					l.lastFailure = body
					if err != nil {
						l.lastFailure = err.Error()
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if l.failed.Load() > 0 || l.ok.Load() == 0 {
		t.Errorf("load: %d ok, %d failed (last: %s)", l.ok.Load(), l.failed.Load(), l.lastFailure)
	}
}

// TestControlPlaneGoneAndBack kills the control plane under load: traffic
// keeps flowing on the last accepted configuration; restarted with a new
// version, the proxy reconnects and converges.
func TestControlPlaneGoneAndBack(t *testing.T) {
	cp := startControlPlane(t, "")
	up1, up2 := upstream(t, "one"), upstream(t, "two")
	port := freePort(t)
	clusters := []*clusterv3.Cluster{edsCluster(t, "backend")}
	cp.set("v1", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1)},
		[]*listenerv3.Listener{ingress(t, port, "backend", greeting("v1"), "")})
	s := proxy(t, cp, "GRPC")
	eventually(t, port, "/", "one", "v1")

	l := startLoad(t, port)
	cp.stop()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats.Gauge("control_plane.connected_state", 1).Value() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Stats.Gauge("control_plane.connected_state", 1).Value() != 0 {
		t.Error("control_plane.connected_state still 1 after the control plane died")
	}
	// Traffic keeps flowing while the control plane is gone.
	for n := l.ok.Load(); l.ok.Load() < n+50; {
		time.Sleep(10 * time.Millisecond)
	}
	cp.restart()
	cp.set("v2", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up2)},
		[]*listenerv3.Listener{ingress(t, port, "backend", greeting("v2"), "")})
	eventually(t, port, "/", "two", "v2")
	l.finish(t)
	cp.waitRequest("LDS ACK v2", ackOf(client.TypeListener, "v2"))
	if s.Stats.Gauge("control_plane.connected_state", 1).Value() != 1 {
		t.Error("control_plane.connected_state not 1 after reconnecting")
	}
}

// TestEndpointsScaleUnderLoad scales the EDS cluster 3 → 10 → 1 upstreams
// while requests flow: none may fail, and the final one takes all traffic.
func TestEndpointsScaleUnderLoad(t *testing.T) {
	cp := startControlPlane(t, "")
	var ups []*testUpstream
	for i := 0; i < 10; i++ {
		ups = append(ups, countingUpstream(t))
	}
	servers := func(n int) []*httptest.Server {
		var out []*httptest.Server
		for _, u := range ups[:n] {
			out = append(out, u.s)
		}
		return out
	}
	port := freePort(t)
	clusters := []*clusterv3.Cluster{edsCluster(t, "backend")}
	ls := []*listenerv3.Listener{ingress(t, port, "backend", greeting("scale"), "")}
	cp.set("v3", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", servers(3)...)}, ls)
	proxy(t, cp, "GRPC")
	eventually(t, port, "/", "up", "scale")

	l := startLoad(t, port)
	waitTraffic := func(u *testUpstream) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for n := u.n.Load(); u.n.Load() < n+5; {
			if time.Now().After(deadline) {
				t.Fatal("upstream never got traffic")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitTraffic(ups[2])
	cp.set("v10", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", servers(10)...)}, ls)
	waitTraffic(ups[9])
	cp.set("v1", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", servers(1)...)}, ls)
	cp.waitRequest("EDS ACK v1", ackOf(client.TypeEndpoint, "v1"))
	time.Sleep(50 * time.Millisecond) // requests picked before the ACK finish
	before := make([]int64, len(ups))
	for i, u := range ups {
		before[i] = u.n.Load()
	}
	waitTraffic(ups[0])
	for i := 1; i < len(ups); i++ {
		if d := ups[i].n.Load() - before[i]; d > 4 {
			t.Errorf("upstream %d got %d requests after being removed", i, d)
		}
	}
	l.finish(t)
}

// TestClientNoLeak runs the client alone against the control plane and
// checks that it leaves no goroutine behind.
func TestClientNoLeak(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	cp := startControlPlane(t, "")
	rec := &recorder{}
	cp.set("v1", []*clusterv3.Cluster{edsCluster(t, "backend")},
		[]*endpointv3.ClusterLoadAssignment{assignment(t, "backend", upstream(t, "x"))}, nil)
	for _, delta := range []bool{false, true} {
		c := client.New(client.Config{
			Node: nodeProto(), Target: "passthrough:///" + cp.addr, Delta: delta,
			CDSInitialFetchTimeout: 5 * time.Second, LDSInitialFetchTimeout: 5 * time.Second,
		}, rec)
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		select {
		case <-c.Ready():
			t.Logf("delta=%v ready after %v", delta, time.Since(start))
		case <-time.After(10 * time.Second):
			t.Fatal("client never ready")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := rec.endpoints("backend"); got != 1 {
			t.Errorf("delta=%v: backend has %d endpoints in the data plane, want 1", delta, got)
		}
	}
}

type testUpstream struct {
	s *httptest.Server
	n atomic.Int64
}

// countingUpstream answers "up" and counts its requests.
func countingUpstream(t *testing.T) *testUpstream {
	u := &testUpstream{}
	u.s = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.n.Add(1)
		w.Write([]byte("up"))
	}))
	t.Cleanup(u.s.Close)
	return u
}

func nodeProto() *corev3.Node { return &corev3.Node{Id: nodeID, Cluster: "test"} }

// recorder is a DataPlane that remembers what it was given.
type recorder struct {
	mu        sync.Mutex
	clusters  map[string]*clusterv3.Cluster
	endpoint  map[string]int
	listeners []*listenerv3.Listener
}

func (r *recorder) AddCluster(_ context.Context, c *clusterv3.Cluster) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clusters == nil {
		r.clusters, r.endpoint = map[string]*clusterv3.Cluster{}, map[string]int{}
	}
	r.clusters[c.GetName()] = c
	r.endpoint[c.GetName()] = countEndpoints(c.GetLoadAssignment())
	return nil
}

func (r *recorder) RemoveCluster(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.clusters[name]
	delete(r.clusters, name)
	return ok
}

func (r *recorder) UpdateEndpoints(name string, cla *endpointv3.ClusterLoadAssignment) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoint[name] = countEndpoints(cla)
	return nil
}

func (r *recorder) UpdateListeners(_ context.Context, ls []*listenerv3.Listener) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listeners = ls
	return nil
}

func (r *recorder) endpoints(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endpoint[name]
}

func countEndpoints(cla *endpointv3.ClusterLoadAssignment) int {
	n := 0
	for _, l := range cla.GetEndpoints() {
		n += len(l.GetLbEndpoints())
	}
	return n
}

func (r *recorder) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.clusters[name]
	return ok
}

// TestControlPlaneNeverAnswers: the proxy starts, waits for the dynamic
// resources up to the initial fetch timeouts (CDS, then LDS), then goes
// live without them and connects once the control plane appears.
func TestControlPlaneNeverAnswers(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens yet
	start := time.Now()
	s := proxyAt(t, addr, "GRPC", "0.3s")
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("Start returned after %v, before both initial fetch timeouts (2×300ms)", d)
	}
	if got := s.Stats.Gauge("control_plane.connected_state", 1).Value(); got != 0 {
		t.Errorf("connected_state = %d with no control plane", got)
	}
	if s.Stats.Counter("cluster_manager.cds.init_fetch_timeout").Value() != 1 || s.Stats.Counter("listener_manager.lds.init_fetch_timeout").Value() != 1 {
		t.Error("init_fetch_timeout counters not 1")
	}
	if s.Stats.Counter("cluster_manager.cds.update_failure").Value() == 0 {
		t.Error("cluster_manager.cds.update_failure not counted")
	}
	cp := startControlPlane(t, addr)
	up := upstream(t, "late")
	port := freePort(t)
	cp.set("v1", []*clusterv3.Cluster{edsCluster(t, "backend")}, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up)},
		[]*listenerv3.Listener{ingress(t, port, "backend", greeting("late"), "")})
	eventually(t, port, "/", "late", "late")
}

// TestListenerUpdatesUnderLoad pushes 20 listener versions while clients
// send requests over keep-alive connections: none may fail, and the last
// version serves.
func TestListenerUpdatesUnderLoad(t *testing.T) {
	cp := startControlPlane(t, "")
	up := upstream(t, "steady")
	port := freePort(t)
	clusters := []*clusterv3.Cluster{edsCluster(t, "backend")}
	clas := []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up)}
	cp.set("v0", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("g0"), "")})
	proxy(t, cp, "GRPC")
	eventually(t, port, "/", "steady", "g0")
	l := startLoad(t, port)
	for i := 1; i <= 20; i++ {
		v := fmt.Sprintf("v%d", i)
		cp.set(v, clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("g"+v), "")})
		cp.waitRequest("LDS ACK "+v, ackOf(client.TypeListener, v))
	}
	eventually(t, port, "/", "steady", "gv20")
	l.finish(t)
}
