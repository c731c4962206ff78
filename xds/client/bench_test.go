package client_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/client"
)

// benchPlane is a server without listeners whose cluster manager the
// client feeds.
func benchPlane(b *testing.B) *server.Server {
	o, err := server.ParseFlags([]string{"--config-yaml", "{}", "-l", "off"}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	s, err := server.New(context.Background(), o, &bootstrapv3.Bootstrap{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func benchResources(b *testing.B, n int, port int) ([]*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	var cs []*clusterv3.Cluster
	var clas []*endpointv3.ClusterLoadAssignment
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%05d", i)
		cs = append(cs, edsCluster(b, name))
		clas = append(clas, parse(b, &endpointv3.ClusterLoadAssignment{}, fmt.Sprintf(`
cluster_name: %s
endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}, {endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: %d}}}}]}]
`, name, port, port)))
	}
	return cs, clas
}

// BenchmarkADSClusters pushes benchClusters (10,000) EDS clusters (2 endpoints each) over
// SotW ADS into a real cluster manager, then changes one cluster's
// endpoints per iteration; it reports the time from publishing to the EDS
// ACK.
func BenchmarkADSClusters(b *testing.B) {
	cp := startControlPlane(b, "")
	s := benchPlane(b)
	n := benchClusters
	cs, clas := benchResources(b, n, 9)
	start := time.Now()
	cp.set("v0", cs, clas, nil)
	c := client.New(client.Config{Node: nodeProto(), Target: "passthrough:///" + cp.addr}, s.XDSDataPlane())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-c.Ready()
	for len(s.Clusters.Names()) < n {
		time.Sleep(time.Millisecond)
	}
	initial := time.Since(start)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := fmt.Sprintf("v%d", i+1)
		clas[0] = parse(b, &endpointv3.ClusterLoadAssignment{}, fmt.Sprintf(`
cluster_name: c00000
endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`, 10+i%50000))
		cp.set(v, cs, clas, nil)
		for c.Version(client.TypeEndpoint) != v {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(initial.Milliseconds()), "ms-initial-push")
}

// benchClusters is the number of clusters BenchmarkADSClusters pushes.
const benchClusters = 10000
