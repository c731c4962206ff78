package client_test

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

// TestADSDelta is the basic scenario over DELTA_GRPC: traffic flows
// through what the control plane pushed, a change moves the route, a bad
// listener is NACKed while the old one serves, a removed cluster goes, and
// after a restart of the control plane the proxy resubscribes with
// initial_resource_versions and converges.
func TestADSDelta(t *testing.T) {
	cp := startControlPlane(t, "")
	up1, up2 := upstream(t, "one"), upstream(t, "two")
	port := freePort(t)
	clusters := []*clusterv3.Cluster{edsCluster(t, "backend"), edsCluster(t, "backend2")}
	clas := []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1), assignment(t, "backend2", up2)}
	cp.set("v1", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("delta v1"), "")})
	s := proxy(t, cp, "DELTA_GRPC")
	eventually(t, port, "/", "one", "delta v1")
	eds := cp.waitRequest("EDS subscription", func(r request) bool { return r.typeURL == client.TypeEndpoint && len(r.subscribe) > 0 })
	if strings.Join(eds.subscribe, ",") != "backend,backend2" {
		t.Errorf("EDS resource_names_subscribe = %v", eds.subscribe)
	}

	cp.set("v2", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend2", greeting("delta v2"), "")})
	eventually(t, port, "/", "two", "delta v2")

	cp.set("v3", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("v3"), `- match: {safe_regex: {regex: "(["}}
            route: {cluster: backend}`)})
	nack := cp.waitRequest("LDS NACK", func(r request) bool {
		return r.typeURL == client.TypeListener && strings.Contains(r.errDetail, "safe_regex.regex")
	})
	t.Logf("NACK detail: %s", nack.errDetail)
	eventually(t, port, "/", "two", "delta v2")

	// backend removed: removed_resources drops it.
	cp.set("v4", clusters[1:], clas[1:], []*listenerv3.Listener{ingress(t, port, "backend2", greeting("delta v4"), "")})
	eventually(t, port, "/", "two", "delta v4")
	for deadline := time.Now().Add(5 * time.Second); s.Clusters.Get("backend") != nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Clusters.Get("backend") != nil {
		t.Error("cluster backend removed by the control plane is still there")
	}

	// Restart: the new stream carries what the proxy has.
	cp.stop()
	cp.restart()
	cp.set("v5", clusters[1:], clas[1:], []*listenerv3.Listener{ingress(t, port, "backend2", greeting("delta v5"), "")})
	eventually(t, port, "/", "two", "delta v5")
	cds := cp.waitRequest("CDS resubscription with initial_resource_versions", func(r request) bool {
		return r.typeURL == client.TypeCluster && len(r.initial) > 0
	})
	if _, ok := cds.initial["backend2"]; !ok || len(cds.initial) != 1 {
		t.Errorf("CDS initial_resource_versions = %v, want backend2 only", cds.initial)
	}
}
