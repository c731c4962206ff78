package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/wasmesh/wasmesh/cluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStats is an in-memory Stats for tests.
type memStats struct {
	mu sync.Mutex
	m  map[string]*memMetric
}

type memMetric struct{ v atomic.Int64 }

func (m *memMetric) Inc()         { m.v.Add(1) }
func (m *memMetric) Dec()         { m.v.Add(-1) }
func (m *memMetric) Add(n uint64) { m.v.Add(int64(n)) }
func (m *memMetric) Sub(n uint64) { m.v.Add(-int64(n)) }
func (m *memMetric) Set(n uint64) { m.v.Store(int64(n)) }

func newMemStats() *memStats { return &memStats{m: map[string]*memMetric{}} }

func (s *memStats) get(name string) *memMetric {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.m[name]
	if v == nil {
		v = &memMetric{}
		s.m[name] = v
	}
	return v
}

func (s *memStats) Counter(name string) cluster.Counter { return s.get(name) }
func (s *memStats) Gauge(name string) cluster.Gauge     { return s.get(name) }

func (s *memStats) Remove(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			delete(s.m, k)
			n++
		}
	}
	return n
}

// value reads a stat; absent stats are 0.
func (s *memStats) value(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.m[name]; v != nil {
		return v.v.Load()
	}
	return 0
}

func (s *memStats) names(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func parseCluster(t testing.TB, y string) *clusterv3.Cluster {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterv3.Cluster{}
	if err := protojson.Unmarshal(j, c); err != nil {
		t.Fatalf("cluster yaml: %v", err)
	}
	return c
}

func parseCLA(t testing.TB, y string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c := &endpointv3.ClusterLoadAssignment{}
	if err := protojson.Unmarshal(j, c); err != nil {
		t.Fatalf("cla yaml: %v", err)
	}
	return c
}

type env struct {
	t     testing.TB
	m     *cluster.Manager
	stats *memStats
}

func newEnv(t testing.TB, mod func(*cluster.Options)) *env {
	t.Helper()
	st := newMemStats()
	opts := cluster.Options{Logger: zaptest.NewLogger(t), Stats: st}
	if mod != nil {
		mod(&opts)
	}
	m := cluster.NewManager(context.Background(), opts)
	t.Cleanup(func() { m.Close() })
	return &env{t: t, m: m, stats: st}
}

func (e *env) add(y string) *cluster.Cluster {
	e.t.Helper()
	c := parseCluster(e.t, y)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.m.Add(ctx, c); err != nil {
		e.t.Fatalf("add: %v", err)
	}
	cl := e.m.Get(c.GetName())
	if cl == nil {
		e.t.Fatalf("cluster %q not serving after Add", c.GetName())
	}
	return cl
}

// upstream is a test HTTP server that names itself in responses.
type upstream struct {
	name   string
	srv    *httptest.Server
	addr   string
	hits   atomic.Int64
	status atomic.Int64 // response status; 0 means 200
	proto  atomic.Value // last request's protocol
	hosts  sync.Map     // Host headers seen

	holdMu sync.Mutex
	holdCh chan struct{} // "/hold" responses stream until it is closed
}

// release ends every "/hold" response in progress and later ones.
func (u *upstream) release() {
	u.holdMu.Lock()
	defer u.holdMu.Unlock()
	if u.holdCh == nil {
		u.holdCh = make(chan struct{})
	}
	select {
	case <-u.holdCh:
	default:
		close(u.holdCh)
	}
}

func (u *upstream) holdChan() chan struct{} {
	u.holdMu.Lock()
	defer u.holdMu.Unlock()
	if u.holdCh == nil {
		u.holdCh = make(chan struct{})
	}
	return u.holdCh
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	u.proto.Store(r.Proto)
	u.hosts.Store(r.Host, true)
	if r.URL.Path == "/slow" {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	if r.URL.Path == "/hold" {
		w.Header().Set("x-upstream", u.name)
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-u.holdChan():
		case <-r.Context().Done():
		}
		return
	}
	w.Header().Set("x-upstream", u.name)
	if s := u.status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	_, _ = io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "%s %s", u.name, r.URL.Path)
}

func startUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.srv = httptest.NewServer(u)
	u.addr = u.srv.Listener.Addr().String()
	t.Cleanup(u.srv.Close)
	return u
}

func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// endpointsYAML renders lb_endpoints for addresses "ip:port" (optionally
// "ip:port@weight").
func endpointsYAML(t testing.TB, addrs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, a := range addrs {
		w := ""
		if i := strings.IndexByte(a, '@'); i >= 0 {
			w = a[i+1:]
			a = a[:i]
		}
		h, p := hostPort(t, a)
		fmt.Fprintf(&b, "\n      - endpoint: {address: {socket_address: {address: %s, port_value: %s}}}", h, p)
		if w != "" {
			fmt.Fprintf(&b, "\n        load_balancing_weight: %s", w)
		}
	}
	return b.String()
}

func staticCluster(t testing.TB, name, extra string, addrs ...string) string {
	if !strings.Contains(extra, "connect_timeout") {
		extra = "connect_timeout: 1s\n" + extra
	}
	return fmt.Sprintf(`
name: %s
type: STATIC
%s
load_assignment:
  cluster_name: %s
  endpoints:
  - lb_endpoints:%s
`, name, extra, name, endpointsYAML(t, addrs...))
}

// get sends a GET through the cluster and returns the upstream's name.
func get(t testing.TB, c *cluster.Cluster, path string, lbc cluster.LoadBalancerContext) (string, int, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://backend"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := c.RoundTrip(req, lbc)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	_, _ = io.ReadAll(resp.Body)
	return resp.Header.Get("x-upstream"), resp.StatusCode, nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = proto.Clone

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
