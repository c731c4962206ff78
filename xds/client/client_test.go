package client_test

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

func ackOf(typeURL, version string) func(request) bool {
	return func(r request) bool {
		return r.typeURL == typeURL && r.version == version && r.errDetail == "" && r.nonce != ""
	}
}

// TestADSSotW: the control plane pushes a listener with an inline route
// and the my-filter Wasm filter, an EDS cluster and its endpoints; traffic
// flows; a new version moves the route; bad resources are NACKed with the
// field named while the old version serves; the next good version is
// ACKed.
func TestADSSotW(t *testing.T) {
	cp := startControlPlane(t, "")
	up1, up2 := upstream(t, "one"), upstream(t, "two")
	port := freePort(t)
	clusters := []*clusterv3.Cluster{edsCluster(t, "backend"), edsCluster(t, "backend2")}
	clas := []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1), assignment(t, "backend2", up2)}
	cp.set("v1", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v1"), "")})
	s := proxy(t, cp, "GRPC")
	eventually(t, port, "/", "one", "hello v1")

	first := cp.requests()[0]
	if !first.hasNode || first.userAgent != "envoy" || first.typeURL != client.TypeCluster {
		t.Errorf("first request: %+v, want CDS with the node and user agent envoy", first)
	}
	cp.waitRequest("CDS ACK v1", ackOf(client.TypeCluster, "v1"))
	cp.waitRequest("EDS ACK v1", ackOf(client.TypeEndpoint, "v1"))
	cp.waitRequest("LDS ACK v1", ackOf(client.TypeListener, "v1"))
	if got := s.Stats.Gauge("control_plane.connected_state", 1).Value(); got != 1 {
		t.Errorf("control_plane.connected_state = %d, want 1", got)
	}

	// A new version moves the route to backend2.
	cp.set("v2", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend2", greeting("hello v2"), "")})
	eventually(t, port, "/", "two", "hello v2")
	cp.waitRequest("LDS ACK v2", ackOf(client.TypeListener, "v2"))

	bad := []struct {
		name, version, typeURL, detail, prev string
		clusters                             []*clusterv3.Cluster
		listener                             *listenerv3.Listener
	}{
		{
			name: "invalid regex", version: "v3", prev: "v2", typeURL: client.TypeListener, detail: "safe_regex",
			clusters: clusters,
			listener: ingress(t, port, "backend2", greeting("hello v3"), `- match: {safe_regex: {regex: "(["}}
            route: {cluster: backend}`),
		},
		{
			name: "unknown cluster type", version: "v4", prev: "v3", typeURL: client.TypeCluster, detail: `cluster "weird"`,
			clusters: append(append([]*clusterv3.Cluster(nil), clusters...), parse(t, &clusterv3.Cluster{}, `
name: weird
connect_timeout: 1s
cluster_type: {name: envoy.clusters.no_such_type}
`)),
			listener: ingress(t, port, "backend2", greeting("hello v2"), ""),
		},
		{
			name: "Wasm module fails to configure", version: "v5", prev: "v4", typeURL: client.TypeListener, detail: "my-filter",
			clusters: clusters,
			listener: ingress(t, port, "backend", `{not json`, ""),
		},
	}
	for _, b := range bad {
		cp.set(b.version, b.clusters, clas, []*listenerv3.Listener{b.listener})
		nack := cp.waitRequest(b.name+" NACK", func(r request) bool {
			return r.typeURL == b.typeURL && r.errDetail != "" && r.nonce != "" && strings.Contains(r.errDetail, b.detail)
		})
		t.Logf("%s: NACK detail: %s", b.name, nack.errDetail)
		if nack.version != b.prev {
			t.Errorf("%s: NACK version_info %q, want the previous %s", b.name, nack.version, b.prev)
		}
		// The old version keeps serving.
		eventually(t, port, "/", "two", "hello v2")
	}
	if s.Stats.Counter("listener_manager.lds.update_rejected").Value() < 2 || s.Stats.Counter("cluster_manager.cds.update_rejected").Value() < 1 {
		t.Errorf("rejected counters: lds %d cds %d", s.Stats.Counter("listener_manager.lds.update_rejected").Value(), s.Stats.Counter("cluster_manager.cds.update_rejected").Value())
	}

	// The next good version is ACKed and applied.
	cp.set("v6", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v6"), "")})
	eventually(t, port, "/", "one", "hello v6")
	cp.waitRequest("LDS ACK v6", ackOf(client.TypeListener, "v6"))
	cp.waitRequest("CDS ACK v6", ackOf(client.TypeCluster, "v6"))

	// SotW removal: backend2 absent → removed.
	cp.set("v7", clusters[:1], clas[:1], []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v7"), "")})
	eventually(t, port, "/", "one", "hello v7")
	cp.waitRequest("CDS ACK v7", ackOf(client.TypeCluster, "v7"))
	if s.Clusters.Get("backend2") != nil {
		t.Error("cluster backend2 absent from the CDS response is still there")
	}

	// A new EDS cluster and a route to it in one version: the listener
	// waits for the cluster to warm instead of failing validation.
	up3 := upstream(t, "three")
	cp.set("v8", append(clusters[:1:1], edsCluster(t, "backend3")), append(clas[:1:1], assignment(t, "backend3", up3)),
		[]*listenerv3.Listener{ingress(t, port, "backend3", greeting("hello v8"), "")})
	eventually(t, port, "/", "three", "hello v8")
	cp.waitRequest("LDS ACK v8", ackOf(client.TypeListener, "v8"))
	for _, r := range cp.requests() {
		if r.typeURL == client.TypeListener && r.errDetail != "" && strings.Contains(r.errDetail, "backend3") {
			t.Errorf("listener NACKed while its new cluster warmed: %s", r.errDetail)
		}
	}
}
