package client_test

import (
	"context"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"go.uber.org/goleak"

	"github.com/wasmesh/wasmesh/xds/client"
)

// TestEDSWarming: an EDS cluster is handed to the data plane only with its
// endpoints; without them it waits for initial_fetch_timeout, then starts
// empty and takes the endpoints when they arrive. LDS is requested only
// once CDS initialised.
func TestEDSWarming(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	cp := startControlPlane(t, "")
	rec := &recorder{}
	// The ADS snapshot cache answers EDS only once every requested name
	// exists: "late" has none yet.
	cp.set("v1", []*clusterv3.Cluster{edsCluster(t, "late")}, nil, nil)
	const timeout = 300 * time.Millisecond
	c := client.New(client.Config{
		Node: nodeProto(), Target: "passthrough:///" + cp.addr,
		CDSInitialFetchTimeout: timeout, LDSInitialFetchTimeout: 5 * time.Second,
	}, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	cp.waitRequest("CDS ACK", ackOf(client.TypeCluster, "v1"))
	if rec.has("late") {
		t.Fatal("EDS cluster handed to the data plane before its endpoints or the timeout")
	}
	for _, r := range cp.requests() {
		if r.typeURL == client.TypeListener {
			t.Fatal("LDS requested before CDS initialised")
		}
	}
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("never ready")
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("ready after %v, before the initial fetch timeout", d)
	}
	if !rec.has("late") || rec.endpoints("late") != 0 {
		t.Fatalf("after the timeout: cluster present %v with %d endpoints, want present and empty", rec.has("late"), rec.endpoints("late"))
	}
	cp.set("v2", []*clusterv3.Cluster{edsCluster(t, "late")},
		[]*endpointv3.ClusterLoadAssignment{assignment(t, "late", upstream(t, "a"), upstream(t, "b"))}, nil)
	cp.waitRequest("EDS ACK v2", ackOf(client.TypeEndpoint, "v2"))
	if n := rec.endpoints("late"); n != 2 {
		t.Errorf("late has %d endpoints, want 2", n)
	}
	if c.Version(client.TypeEndpoint) != "v2" || c.LastNACK(client.TypeEndpoint) != "" {
		t.Errorf("Version %q LastNACK %q", c.Version(client.TypeEndpoint), c.LastNACK(client.TypeEndpoint))
	}
}
