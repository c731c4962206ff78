package client_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// TestRDSLinearCache serves routes from go-control-plane's linear cache
// (clusters and listeners from a snapshot cache, muxed on one ADS
// server): updates apply; a deleted RouteConfiguration (delta
// removed_resources, or a SotW response without it) leaves the last
// routes serving, as in Envoy; added again, it applies.
func TestRDSLinearCache(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) { testRDSLinearCache(t, apiType) })
	}
}

func testRDSLinearCache(t *testing.T, apiType string) {
	snaps := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	routes := cachev3.NewLinearCache(resource.RouteType)
	mux := &cachev3.MuxCache{
		Classify: func(r *cachev3.Request) string {
			if r.GetTypeUrl() == resource.RouteType {
				return "routes"
			}
			return "snap"
		},
		ClassifyDelta: func(r *cachev3.DeltaRequest) string {
			if r.GetTypeUrl() == resource.RouteType {
				return "routes"
			}
			return "snap"
		},
		Caches: map[string]cachev3.Cache{"routes": routes, "snap": snaps},
	}
	var routeAcks atomic.Int64
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			if r.GetTypeUrl() == resource.RouteType && r.GetResponseNonce() != "" {
				routeAcks.Add(1)
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			if r.GetTypeUrl() == resource.RouteType && r.GetResponseNonce() != "" {
				routeAcks.Add(1)
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, mux, cb))
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	a, b := gated(t, "a"), gated(t, "b")
	port := freePort(t)
	publishSnapshot(t, snaps, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {staticCluster(t, "a", a.Server), staticCluster(t, "b", b.Server)},
		resource.ListenerType: {rdsListener(t, "ingress", port, "r1", "10s")},
	})
	if err := routes.UpdateResource("r1", routeConfig(t, "r1", "a", "a", "")); err != nil {
		t.Fatal(err)
	}
	proxyWithAdmin(t, ln.Addr().String(), apiType, "5s", freePort(t))
	eventually(t, port, "/", "a", "")

	if err := routes.UpdateResource("r1", routeConfig(t, "r1", "b", "b", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, port, "/", "b", "")

	before := routeAcks.Load()
	if err := routes.DeleteResource("r1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for routeAcks.Load() == before && apiType == "DELTA_GRPC" {
		if time.Now().After(deadline) {
			t.Fatal("the removal was never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if code, body, _, err := get(port, "/"); err != nil || code != 200 || body != "b" {
			t.Fatalf("after the route configuration's deletion: %d %q %v, want the last routes serving", code, body, err)
		}
	}

	if err := routes.UpdateResource("r1", routeConfig(t, "r1", "a", "a", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, port, "/", "a", "")
}
