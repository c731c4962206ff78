package client_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// writeResponse atomically replaces path with a DiscoveryResponse in JSON.
func writeResponse(t *testing.T, path, version string, ms ...proto.Message) {
	t.Helper()
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: version}
	for _, m := range ms {
		resp.Resources = append(resp.Resources, anyOf(t, m))
	}
	b, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPathConfigSource: clusters and listeners from files
// (path_config_source); a changed file is applied, a bad one is rejected
// while the last good version serves.
func TestPathConfigSource(t *testing.T) {
	dir := t.TempDir()
	cds, lds := filepath.Join(dir, "cds.json"), filepath.Join(dir, "lds.json")
	up := upstream(t, "file")
	h, p := hostPort(t, up)
	backend := parse(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: backend
type: STATIC
connect_timeout: 1s
load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %d}}}}]}]}
`, h, p))
	port := freePort(t)
	writeResponse(t, cds, "1", backend)
	writeResponse(t, lds, "1", ingress(t, port, "backend", greeting("file v1"), ""))
	s := startProxy(t, fmt.Sprintf(`
node: {id: %s, cluster: test}
dynamic_resources:
  cds_config: {path_config_source: {path: %s}}
  lds_config: {path_config_source: {path: %s}}
`, nodeID, cds, lds))
	eventually(t, port, "/", "file", "file v1")

	writeResponse(t, lds, "2", ingress(t, port, "backend", greeting("file v2"), ""))
	eventually(t, port, "/", "file", "file v2")

	writeResponse(t, lds, "3", ingress(t, port, "backend", greeting("file v3"), `- match: {safe_regex: {regex: "(["}}
            route: {cluster: backend}`))
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats.Counter("listener_manager.lds.update_rejected").Value() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.Stats.Counter("listener_manager.lds.update_rejected").Value() == 0 {
		t.Fatal("bad listener file not rejected")
	}
	eventually(t, port, "/", "file", "file v2")
}
