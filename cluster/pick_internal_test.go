package cluster

import (
	"context"
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func benchCluster(tb testing.TB, policy clusterv3.Cluster_LbPolicy, weighted bool) *Cluster {
	var eps []*endpointv3.LbEndpoint
	for i := range 10 {
		ep := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: fmt.Sprintf("10.0.0.%d", i+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}},
		}}}
		if weighted {
			ep.LoadBalancingWeight = wrapperspb.UInt32(uint32(i + 1))
		}
		eps = append(eps, ep)
	}
	c := &clusterv3.Cluster{
		Name:                 "bench",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(1e9),
		LbPolicy:             policy,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "bench",
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}},
	}
	m := NewManager(context.Background(), Options{})
	tb.Cleanup(func() { m.Close() })
	if err := m.Add(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	return m.Get("bench")
}

var policies = []struct {
	name     string
	p        clusterv3.Cluster_LbPolicy
	weighted bool
}{
	{"round_robin", clusterv3.Cluster_ROUND_ROBIN, false},
	{"round_robin_weighted", clusterv3.Cluster_ROUND_ROBIN, true},
	{"least_request", clusterv3.Cluster_LEAST_REQUEST, false},
	{"least_request_weighted", clusterv3.Cluster_LEAST_REQUEST, true},
	{"random", clusterv3.Cluster_RANDOM, false},
	{"ring_hash", clusterv3.Cluster_RING_HASH, false},
	{"maglev", clusterv3.Cluster_MAGLEV, false},
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, p := range policies {
		c := benchCluster(t, p.p, p.weighted)
		lbc := LoadBalancerContext{Hash: 12345, HasHash: true}
		if n := testing.AllocsPerRun(1000, func() {
			if c.pick(&lbc, nil) == nil {
				t.Fatal("no host")
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per pick", p.name, n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, p := range policies {
		c := benchCluster(b, p.p, p.weighted)
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				lbc := LoadBalancerContext{HasHash: true}
				for pb.Next() {
					lbc.Hash += 0x9e3779b97f4a7c15
					c.pick(&lbc, nil)
				}
			})
		})
	}
}
