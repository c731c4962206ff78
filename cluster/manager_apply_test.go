package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/cluster/dns"
)

// applyStatic is a STATIC cluster with one endpoint on port; timeout
// tells versions apart.
func applyStatic(name string, port uint32, timeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(timeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
			}}}},
		}}},
	}
}

func clusterNames(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

// Apply adds, replaces and removes a batch as Add and Remove would, one
// bad cluster failing alone.
func TestManagerApply(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	var first []*clusterv3.Cluster
	for _, n := range clusterNames(300, "c") {
		first = append(first, applyStatic(n, 80, time.Second))
	}
	for i, err := range e.m.Apply(ctx, first, nil) {
		if err != nil {
			t.Fatalf("adds[%d]: %v", i, err)
		}
	}
	if got := len(e.m.Names()); got != 300 {
		t.Fatalf("%d clusters serve, want 300", got)
	}
	if got := e.stats.value("cluster_manager.active_clusters"); got != 300 {
		t.Fatalf("active_clusters %d, want 300", got)
	}
	before := e.m.Get("c0001")

	tests := []struct {
		name    string
		adds    []*clusterv3.Cluster
		removes []string
		wantErr []bool
		check   func(t *testing.T)
	}{
		{
			name: "unchanged is a no-op",
			adds: first[:3], wantErr: []bool{false, false, false},
			check: func(t *testing.T) {
				if e.m.Get("c0001") != before {
					t.Fatal("an unchanged cluster was replaced")
				}
			},
		},
		{
			name:    "replace one, add one, bad one, remove two",
			adds:    []*clusterv3.Cluster{applyStatic("c0001", 81, 2*time.Second), applyStatic("new", 80, time.Second), {Name: "bad", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}, LbPolicy: clusterv3.Cluster_LbPolicy(99)}},
			removes: []string{"c0002", "c0003", "absent"},
			wantErr: []bool{false, false, true},
			check: func(t *testing.T) {
				if c := e.m.Get("c0001"); c == nil || c == before || c.Config().GetConnectTimeout().AsDuration() != 2*time.Second {
					t.Fatal("c0001 was not replaced")
				}
				if e.m.Get("new") == nil || e.m.Get("bad") != nil {
					t.Fatal("new must serve, bad must not")
				}
				if e.m.Get("c0002") != nil || e.m.Get("c0003") != nil || e.m.Get("c0004") == nil {
					t.Fatal("removals wrong")
				}
				if got := len(e.m.Names()); got != 299 {
					t.Fatalf("%d clusters serve, want 299", got)
				}
				if got := e.stats.value("cluster_manager.active_clusters"); got != 299 {
					t.Fatalf("active_clusters %d, want 299", got)
				}
			},
		},
		{
			name: "remove everything", removes: clusterNames(300, "c"),
			check: func(t *testing.T) {
				if got := e.m.Names(); len(got) != 1 || got[0] != "new" {
					t.Fatalf("serving %v, want [new]", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := e.m.Apply(ctx, tc.adds, tc.removes)
			if len(errs) != len(tc.adds) {
				t.Fatalf("%d results for %d adds", len(errs), len(tc.adds))
			}
			for i, err := range errs {
				if (err != nil) != tc.wantErr[i] {
					t.Fatalf("adds[%d]: error %v, want error %v", i, err, tc.wantErr[i])
				}
			}
			tc.check(t)
		})
	}
}

// heldResolver answers once release is closed.
type heldResolver struct{ release chan struct{} }

func (r heldResolver) Resolve(ctx context.Context, _ string, _ dns.Family) ([]dns.Answer, error) {
	select {
	case <-r.release:
		return []dns.Answer{{Addr: netip.MustParseAddr("127.0.0.1"), TTL: time.Minute}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// A cluster that warms (its first DNS answer) does not hold the others of
// the batch back, and serves once warm.
func TestManagerApplyWarmingDoesNotHoldTheBatch(t *testing.T) {
	r := heldResolver{release: make(chan struct{})}
	e := newEnv(t, func(o *cluster.Options) { o.Resolver = r })
	slow := parseCluster(t, `
name: slow
type: STRICT_DNS
connect_timeout: 1s
load_assignment:
  cluster_name: slow
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: held.test, port_value: 80}}}}]}]
`)
	done := make(chan []error, 1)
	go func() {
		done <- e.m.Apply(context.Background(), []*clusterv3.Cluster{slow, applyStatic("s", 80, time.Second)}, nil)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.m.Get("s") == nil {
		if time.Now().After(deadline) {
			t.Fatal("static cluster waited for the warming DNS cluster")
		}
		time.Sleep(time.Millisecond)
	}
	if e.m.Get("slow") != nil {
		t.Fatal("DNS cluster serves before its first answer")
	}
	close(r.release)
	for i, err := range <-done {
		if err != nil {
			t.Fatalf("adds[%d]: %v", i, err)
		}
	}
	if e.m.Get("slow") == nil {
		t.Fatal("DNS cluster does not serve once warm")
	}
}

func benchManager(b *testing.B, n int) (*cluster.Manager, []*clusterv3.Cluster) {
	m := cluster.NewManager(context.Background(), cluster.Options{Logger: zap.NewNop()})
	b.Cleanup(func() { m.Close() })
	var cs []*clusterv3.Cluster
	for _, name := range clusterNames(n, "c") {
		cs = append(cs, applyStatic(name, 80, time.Second))
	}
	return m, cs
}

// BenchmarkManagerApply adds 10,000 clusters in one Apply.
func BenchmarkManagerApply(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		m, cs := benchManager(b, 10000)
		b.StartTimer()
		for _, err := range m.Apply(context.Background(), cs, nil) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkManagerReplaceOne replaces one cluster among 10,000.
func BenchmarkManagerReplaceOne(b *testing.B) {
	m, cs := benchManager(b, 10000)
	m.Apply(context.Background(), cs, nil)
	versions := []*clusterv3.Cluster{applyStatic("c0042", 80, 2*time.Second), applyStatic("c0042", 80, time.Second)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.Add(context.Background(), versions[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkManagerUpdateEndpoints moves one EDS cluster among 10,000
// between two pairs of endpoints (an EDS update: compile the assignment,
// keep or make hosts, rebuild the load balancer).
func BenchmarkManagerUpdateEndpoints(b *testing.B) {
	m, cs := benchManager(b, 10000)
	eds := applyStatic("c0042", 80, time.Second)
	eds.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	eds.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
	cs[42] = eds
	for _, err := range m.Apply(context.Background(), cs, nil) {
		if err != nil {
			b.Fatal(err)
		}
	}
	cla := func(a, b uint32) *endpointv3.ClusterLoadAssignment {
		out := &endpointv3.ClusterLoadAssignment{ClusterName: "c0042", Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
		for _, p := range []uint32{a, b} {
			out.Endpoints[0].LbEndpoints = append(out.Endpoints[0].LbEndpoints, applyStatic("x", p, time.Second).LoadAssignment.Endpoints[0].LbEndpoints[0])
		}
		return out
	}
	versions := []*endpointv3.ClusterLoadAssignment{cla(81, 82), cla(83, 84)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.UpdateEndpoints("c0042", versions[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
