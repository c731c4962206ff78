package cluster_test

import (
	"context"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/cluster"
)

// FuzzCompile feeds arbitrary Cluster messages to the compiler: it must
// never panic, and must either accept or name a problem.
func FuzzCompile(f *testing.F) {
	for _, y := range []string{
		staticCluster(f, "a", "lb_policy: MAGLEV", "127.0.0.1:1", "127.0.0.2:2@5"),
		staticCluster(f, "b", "lb_policy: RING_HASH\nring_hash_lb_config: {minimum_ring_size: 8, hash_function: MURMUR_HASH_2}", "127.0.0.1:1"),
		`{name: c, type: STRICT_DNS, connect_timeout: 1s, respect_dns_ttl: true, load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: x.example, port_value: 80}}}}]}]}}`,
		`{name: d, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 1s, original_dst_lb_config: {use_http_header: true}}`,
	} {
		b, err := proto.Marshal(parseCluster(f, y))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &clusterv3.Cluster{}
		if err := proto.Unmarshal(b, c); err != nil {
			return
		}
		_ = cluster.Validate(c, cluster.Options{})
	})
}

// FuzzUpdateEndpoints feeds arbitrary assignments to a running EDS cluster.
func FuzzUpdateEndpoints(f *testing.F) {
	b, _ := proto.Marshal(parseCLA(f, `
cluster_name: eds
policy: {overprovisioning_factor: 100}
endpoints:
- priority: 1
  lb_endpoints:
  - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}
    health_status: DEGRADED
    load_balancing_weight: 7
`))
	f.Add(b)
	m := cluster.NewManager(context.Background(), cluster.Options{})
	f.Cleanup(func() { m.Close() })
	if err := m.Add(context.Background(), parseCluster(f, `{name: eds, type: EDS, connect_timeout: 1s, lb_policy: MAGLEV, eds_cluster_config: {eds_config: {ads: {}}}}`)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := proto.Unmarshal(b, cla); err != nil {
			return
		}
		if err := m.UpdateEndpoints("eds", cla); err == nil {
			c := m.Get("eds")
			for _, h := range c.Hosts() {
				_ = h.HealthFlags()
			}
		}
	})
}
