package client_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

const wasmTypeURL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"

// setECDS publishes clusters, listeners and extension configurations.
func (cp *controlPlane) setECDS(version string, clusters []*clusterv3.Cluster, ls []*listenerv3.Listener, tcs []*corev3.TypedExtensionConfig) {
	cp.t.Helper()
	cp.publish(version, map[resource.Type][]types.Resource{resource.ClusterType: asResources(clusters), resource.EndpointType: {},
		resource.ListenerType: asResources(ls), resource.ExtensionConfigType: asResources(tcs)})
}

// wasmFilterConfig is the my-filter Wasm filter configuration with a
// greeting, delivered as a TypedExtensionConfig (as Istio ships Wasm
// plugins); module is the .wasm file.
func wasmFilterConfig(t testing.TB, name, greet, module string) *corev3.TypedExtensionConfig {
	return parse(t, &corev3.TypedExtensionConfig{}, fmt.Sprintf(`
name: %s
typed_config:
  "@type": %s
  config:
    name: my-filter
    configuration:
      "@type": type.googleapis.com/google.protobuf.StringValue
      value: '%s'
    vm_config:
      vm_id: my-filter
      runtime: envoy.wasm.runtime.v8
      code: {local: {filename: %s}}
`, name, wasmTypeURL, greeting(greet), module))
}

// ecdsListener routes everything to cluster a through the discovered
// HTTP filter filterName; discovery is extra config_discovery YAML.
func ecdsListener(t testing.TB, name string, port int, filterName, discovery string) *listenerv3.Listener {
	return parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: %s
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: %s
      route_config:
        name: local
        virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a}}]}]
      http_filters:
      - name: %s
        config_discovery:
          config_source: {ads: {}, resource_api_version: V3}
          type_urls: [%s]
          <<: %s
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, name, port, name, filterName, wasmTypeURL, discovery))
}

// TestECDS delivers the my-filter Wasm filter's configuration over ECDS
// (SotW and delta): the listener warms until it arrives, an update
// changes the filter of the running connection manager, a Wasm module
// that fails to load and a configuration of a type not in type_urls are
// NACKed naming the resource while the previous one serves, the next good
// one applies; a filter with default_config and
// apply_default_config_without_warming serves its default at once.
func TestECDS(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) { testECDS(t, apiType) })
	}
}

func testECDS(t *testing.T, apiType string) {
	cp := startControlPlane(t, "")
	a := gated(t, "a")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a.Server)}
	port := freePort(t)
	ls := []*listenerv3.Listener{ecdsListener(t, "ingress", port, "my-filter", "{}")}
	cp.setECDS("v1", clusters, ls, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v1", wasmPath)})
	s := proxyWithAdmin(t, cp.addr, apiType, "5s", freePort(t))
	eventually(t, port, "/", "a", "hello v1")

	cp.setECDS("v2", clusters, ls, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v2", wasmPath)})
	eventually(t, port, "/", "a", "hello v2")

	garbage := filepath.Join(t.TempDir(), "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("\x00asm\x01\x00\x00\x00not a module"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		version, detail string
		tc              *corev3.TypedExtensionConfig
	}{
		{"v3", `extension_config "my-filter"`, wasmFilterConfig(t, "my-filter", "hello v3", garbage)},
		{"v4", "type_urls", parse(t, &corev3.TypedExtensionConfig{}, `
name: my-filter
typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`)},
	}
	for _, b := range bad {
		cp.setECDS(b.version, clusters, ls, []*corev3.TypedExtensionConfig{b.tc})
		nack := cp.waitRequest("ECDS NACK "+b.version, nackOf(client.TypeExtensionConfig, b.detail))
		t.Logf("NACK detail: %s", nack.errDetail)
		if !strings.Contains(nack.errDetail, `"my-filter"`) {
			t.Errorf("NACK detail %q does not name the resource", nack.errDetail)
		}
		if apiType == "GRPC" && nack.version != "v2" {
			t.Errorf("NACK version_info %q, want v2", nack.version)
		}
		eventually(t, port, "/", "a", "hello v2")
	}

	cp.setECDS("v5", clusters, ls, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v5", wasmPath)})
	eventually(t, port, "/", "a", "hello v5")
	if apiType == "GRPC" {
		cp.waitRequest("ECDS ACK v5", ackOf(client.TypeExtensionConfig, "v5"))
	}
	if ok, fail := s.Stats.Counter("extension_config_discovery.http_filter.my-filter.config_reload").Value(),
		s.Stats.Counter("extension_config_discovery.http_filter.my-filter.config_fail").Value(); ok != 3 || fail != 2 {
		// A bad configuration resent after its NACK is not recompiled.
		t.Errorf("extension_config_discovery.http_filter.my-filter: config_reload %d config_fail %d, want 3 and 2", ok, fail)
	}

	// A listener whose filter has a default applied without warming
	// serves at once, with the default, while its configuration is not in
	// the snapshot.
	port2 := freePort(t)
	ls2 := append(ls[:1:1], ecdsListener(t, "second", port2, "other-filter", fmt.Sprintf(
		"{apply_default_config_without_warming: true, default_config: %s}", wasmFlow("default", wasmPath))))
	cp.setECDS("v6", clusters, ls2, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v5", wasmPath)})
	eventually(t, port2, "/", "a", "default")
	eventually(t, port, "/", "a", "hello v5")
	cp.setECDS("v7", clusters, ls2, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v5", wasmPath), wasmFilterConfig(t, "other-filter", "other v7", wasmPath)})
	eventually(t, port2, "/", "a", "other v7")
}

// TestECDSWarming: a new listener whose discovered filter has no default
// waits for the configuration; after initial_fetch_timeout without one it
// is rejected (Envoy would serve 500s).
func TestECDSWarming(t *testing.T) {
	cp := startControlPlane(t, "")
	a := gated(t, "a")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a.Server)}
	port, port2 := freePort(t), freePort(t)
	ls := []*listenerv3.Listener{ecdsListener(t, "ingress", port, "my-filter", "{}")}
	tcs := []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello", wasmPath)}
	cp.setECDS("v1", clusters, ls, tcs)
	proxyWithAdmin(t, cp.addr, "GRPC", "5s", freePort(t))
	eventually(t, port, "/", "a", "hello")

	ls2 := append(ls[:1:1], ecdsListener(t, "second", port2, "late-filter", "{}"))
	cp.setECDS("v2", clusters, ls2, tcs)
	cp.waitRequest("ECDS subscription to late-filter", func(r request) bool {
		return r.typeURL == client.TypeExtensionConfig && contains(r.names, "late-filter")
	})
	time.Sleep(100 * time.Millisecond)
	if _, _, _, err := get(port2, "/"); err == nil {
		t.Fatal("the listener serves before its filter configuration arrived")
	}
	cp.setECDS("v3", clusters, ls2, append(tcs, wasmFilterConfig(t, "late-filter", "late", wasmPath)))
	eventually(t, port2, "/", "a", "late")
	cp.waitRequest("LDS ACK v3", ackOf(client.TypeListener, "v3"))
}

// wasmFlow is the my-filter Wasm filter configuration as a YAML flow
// mapping.
func wasmFlow(greet, module string) string {
	return fmt.Sprintf(`{"@type": %s, config: {name: my-filter, configuration: {"@type": type.googleapis.com/google.protobuf.StringValue, value: '%s'}, vm_config: {vm_id: my-filter, runtime: envoy.wasm.runtime.v8, code: {local: {filename: %s}}}}}`,
		wasmTypeURL, greeting(greet), module)
}

// TestRDSAndECDSPerRoutePlans: one connection manager with routes over
// RDS and its Wasm filter over ECDS; a route update that disables the
// filter on a route (typed_per_filter_config) gets new per-route filter
// plans, and a filter update keeps the routes.
func TestRDSAndECDSPerRoutePlans(t *testing.T) {
	cp := startControlPlane(t, "")
	a := gated(t, "a")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a.Server)}
	port := freePort(t)
	l := parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: ingress
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress
      rds: {route_config_name: r1, config_source: {ads: {}, resource_api_version: V3}}
      http_filters:
      - name: my-filter
        config_discovery:
          config_source: {ads: {}, resource_api_version: V3}
          type_urls: [%s]
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, port, wasmTypeURL))
	routes := func(disabled bool) *routev3.RouteConfiguration {
		extra := ""
		if disabled {
			extra = `typed_per_filter_config: {my-filter: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}}`
		}
		return parse(t, &routev3.RouteConfiguration{}, fmt.Sprintf(`
name: r1
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: "/plain"}
    route: {cluster: a}
    %s
  - match: {prefix: "/"}
    route: {cluster: a}
`, extra))
	}
	set := func(version string, rc *routev3.RouteConfiguration, greet string) {
		res := map[resource.Type][]types.Resource{
			resource.ClusterType: {clusters[0]}, resource.ListenerType: {l},
			resource.RouteType: {rc}, resource.ExtensionConfigType: {wasmFilterConfig(t, "my-filter", greet, wasmPath)},
		}
		publishSnapshot(t, cp.cache, version, res)
	}
	set("v1", routes(false), "one")
	proxyWithAdmin(t, cp.addr, "GRPC", "5s", freePort(t))
	eventually(t, port, "/plain", "a", "one")
	eventually(t, port, "/", "a", "one")

	set("v2", routes(true), "one")
	eventually(t, port, "/plain", "a", "")
	eventually(t, port, "/", "a", "one")

	set("v3", routes(true), "two")
	eventually(t, port, "/", "a", "two")
	eventually(t, port, "/plain", "a", "")
}
