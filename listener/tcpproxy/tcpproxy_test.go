package tcpproxy

import (
	"strings"
	"testing"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wasmesh/wasmesh/listener/network"
)

func TestWeightedClusters(t *testing.T) {
	c, err := Compile(&tcpv3.TcpProxy{StatPrefix: "w", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
		Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 1}, {Name: "b", Weight: 3}},
	}}}, &network.Env{})
	if err != nil {
		t.Fatal(err)
	}
	for r, want := range []string{"a", "b", "b", "b"} {
		if got := c.ClusterFor(uint64(r)); got != want {
			t.Errorf("ClusterFor(%d) = %s, want %s", r, got, want)
		}
	}
	counts := map[string]int{}
	for i := 0; i < 4000; i++ {
		counts[c.pick()]++
	}
	if counts["a"] == 0 || counts["b"] < counts["a"] {
		t.Errorf("picks %v", counts)
	}
	if c.idleTimeout != DefaultIdleTimeout {
		t.Errorf("idle timeout %v", c.idleTimeout)
	}
}

func TestCompileTCPProxy(t *testing.T) {
	c, err := Compile(&tcpv3.TcpProxy{StatPrefix: "x", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}, IdleTimeout: durationpb.New(0)}, &network.Env{})
	if err != nil || c.idleTimeout != 0 {
		t.Fatalf("idle_timeout 0s: %v %v", c, err)
	}
	_, err = Compile(&tcpv3.TcpProxy{StatPrefix: "x", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}, AccessLog: nil, HashPolicy: nil, TunnelingConfig: &tcpv3.TcpProxy_TunnelingConfig{Hostname: "h"}}, &network.Env{})
	if err == nil || !strings.Contains(err.Error(), "tunneling_config: not implemented by wasmesh") {
		t.Fatalf("tunneling_config: %v", err)
	}
}
