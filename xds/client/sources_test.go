package client_test

import (
	"context"
	"io"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/client"
)

// setDiscovered publishes clusters, listeners, route configurations and
// extension configurations.
func (cp *fullPlane) setDiscovered(version string, clusters []*clusterv3.Cluster, ls []*listenerv3.Listener, rcs []*routev3.RouteConfiguration, tcs []*corev3.TypedExtensionConfig) {
	cp.t.Helper()
	publishSnapshot(cp.t, cp.cache, version, map[resource.Type][]types.Resource{resource.ClusterType: asResources(clusters),
		resource.EndpointType: {}, resource.ListenerType: asResources(ls), resource.RouteType: asResources(rcs),
		resource.ExtensionConfigType: asResources(tcs)})
}

// withSource sets the rds.config_source and every config_discovery
// config_source of the listener's connection managers to the config
// source YAML src.
func withSource(t testing.TB, l *listenerv3.Listener, src string) *listenerv3.Listener {
	t.Helper()
	cs := parse(t, &hcmv3.Rds{}, "config_source: "+src).GetConfigSource()
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			m := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
				t.Fatal(err)
			}
			if r := m.GetRds(); r != nil {
				r.ConfigSource = cs
			}
			for _, hf := range m.GetHttpFilters() {
				if cd := hf.GetConfigDiscovery(); cd != nil {
					cd.ConfigSource = cs
				}
			}
			a, err := anypb.New(m)
			if err != nil {
				t.Fatal(err)
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}
	}
	return l
}

const adsGRPC = `{api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}`

// typeOnItsStream checks that every request of typeURL came on stream
// and no other type's did.
func typeOnItsStream(t *testing.T, cp *fullPlane, typeURL, stream string) {
	t.Helper()
	n := 0
	for _, r := range cp.requests() {
		if (r.typeURL == typeURL) != (r.stream == stream) {
			t.Errorf("request of %s on stream %q", r.typeURL, r.stream)
		}
		if r.typeURL == typeURL {
			n++
		}
	}
	if n == 0 {
		t.Errorf("no %s request", typeURL)
	}
}

// TestRDSSeparateStream: LDS and CDS over ADS, the listener's routes on
// their own RouteDiscoveryService stream (SotW and delta; envoy_grpc and
// google_grpc): routes arrive and traffic flows, every RDS request comes
// on the RDS stream, a route update swaps the table, a bad route
// configuration is NACKed on the RDS stream while the old one serves, the
// next good one applies.
func TestRDSSeparateStream(t *testing.T) {
	for _, tc := range []struct{ name, apiType, service string }{
		{"GRPC", "GRPC", `{envoy_grpc: {cluster_name: xds}}`},
		{"DELTA_GRPC", "DELTA_GRPC", `{envoy_grpc: {cluster_name: xds}}`},
		{"GRPC_google_grpc", "GRPC", "google"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := startFullPlane(t, "")
			service := tc.service
			if service == "google" {
				service = `{google_grpc: {target_uri: "` + cp.addr + `", stat_prefix: rds}}`
			}
			a, b := upstream(t, "a"), upstream(t, "b")
			clusters := []*clusterv3.Cluster{staticCluster(t, "a", a), staticCluster(t, "b", b)}
			port := freePort(t)
			ls := []*listenerv3.Listener{withSource(t, rdsListener(t, "ingress", port, "r1", "10s"), grpcSource(tc.apiType, service))}
			cp.setDiscovered("v1", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "a", "a", "")}, nil)
			s := sourcedProxy(t, cp, adsGRPC, `{ads: {}, resource_api_version: V3}`, `{ads: {}, resource_api_version: V3}`)
			eventually(t, port, "/", "a", "")
			ack := func(version string) {
				t.Helper()
				if tc.apiType == "GRPC" {
					cp.waitRequest("RDS ACK "+version, ackOn(client.TypeRoute, client.TypeRoute, version))
				} else {
					cp.waitRequest("RDS ACK", deltaAckOn(client.TypeRoute, client.TypeRoute))
				}
			}
			ack("v1")

			cp.setDiscovered("v2", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "b", "b", "")}, nil)
			eventually(t, port, "/", "b", "")
			ack("v2")

			cp.setDiscovered("v3", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "a", "a", `- match: {safe_regex: {regex: "(["}}
    route: {cluster: a}`)}, nil)
			nack := cp.waitRequest("RDS NACK", func(r streamReq) bool {
				return r.stream == client.TypeRoute && r.typeURL == client.TypeRoute && strings.Contains(r.errDetail, `route_config "r1"`)
			})
			if !strings.Contains(nack.errDetail, "safe_regex") {
				t.Errorf("NACK detail %q does not name the field", nack.errDetail)
			}
			if tc.apiType == "GRPC" && nack.version != "v2" {
				t.Errorf("NACK version_info %q, want v2", nack.version)
			}
			for i := 0; i < 5; i++ {
				if code, body, _, err := get(port, "/"); err != nil || code != 200 || body != "b" {
					t.Fatalf("after the NACK: %d %q %v, want b", code, body, err)
				}
			}

			cp.setDiscovered("v4", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "a", "a", "")}, nil)
			eventually(t, port, "/", "a", "")
			ack("v4")
			typeOnItsStream(t, cp, client.TypeRoute, client.TypeRoute)
			// v2 and v4 reached the running connection manager (v1 came
			// with the listener).
			if n := s.Stats.Counter("http.ingress.rds.r1.config_reload").Value(); n < 2 {
				t.Errorf("http.ingress.rds.r1.config_reload = %d, want at least 2", n)
			}
		})
	}
}

// TestRDSREST: LDS over ADS, routes polled over REST: the polls carry the
// route configuration name, traffic flows, an update swaps the routes,
// a bad one is NACKed in the next poll's error_detail.
func TestRDSREST(t *testing.T) {
	cp := startFullPlane(t, "")
	a, b := upstream(t, "a"), upstream(t, "b")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a), staticCluster(t, "b", b)}
	port := freePort(t)
	ls := []*listenerv3.Listener{withSource(t, rdsListener(t, "ingress", port, "r1", "10s"), restSource)}
	cp.setDiscovered("v1", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "a", "a", "")}, nil)
	sourcedProxy(t, cp, adsGRPC, `{ads: {}}`, `{ads: {}}`)
	eventually(t, port, "/", "a", "")
	cp.waitRequest("RDS poll with v1", ackOn("rest", client.TypeRoute, "v1"))

	cp.setDiscovered("v2", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "b", "b", "")}, nil)
	eventually(t, port, "/", "b", "")
	cp.waitRequest("RDS poll with v2", ackOn("rest", client.TypeRoute, "v2"))

	cp.setDiscovered("v3", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "r1", "a", "a", `- match: {safe_regex: {regex: "(["}}
    route: {cluster: a}`)}, nil)
	nack := cp.waitRequest("RDS NACK in a poll", func(r streamReq) bool {
		return r.stream == "rest" && r.typeURL == client.TypeRoute && strings.Contains(r.errDetail, `route_config "r1"`)
	})
	if nack.version != "v2" {
		t.Errorf("NACK version_info %q, want v2", nack.version)
	}
	if code, body, _, err := get(port, "/"); err != nil || code != 200 || body != "b" {
		t.Fatalf("after the NACK: %d %q %v, want b", code, body, err)
	}
	for _, r := range cp.requests() {
		if r.typeURL != client.TypeRoute {
			continue
		}
		if r.stream != "rest" || strings.Join(r.names, ",") != "r1" || !r.hasNode {
			t.Errorf("RDS request %+v: want a REST poll for r1 with the node", r)
		}
	}
}

// TestSecondRDSSourceRejected: with the routes of one listener on their
// own stream, a listener whose rds.config_source is ADS is rejected (LDS
// NACK naming the field) while the first keeps serving.
func TestSecondRDSSourceRejected(t *testing.T) {
	cp := startFullPlane(t, "")
	a := upstream(t, "a")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a)}
	port, port2 := freePort(t), freePort(t)
	first := withSource(t, rdsListener(t, "ingress", port, "r1", "10s"), grpcSource("GRPC", `{envoy_grpc: {cluster_name: xds}}`))
	rcs := []*routev3.RouteConfiguration{routeConfig(t, "r1", "a", "a", ""), routeConfig(t, "r2", "a", "a", "")}
	cp.setDiscovered("v1", clusters, []*listenerv3.Listener{first}, rcs, nil)
	sourcedProxy(t, cp, adsGRPC, `{ads: {}}`, `{ads: {}}`)
	eventually(t, port, "/", "a", "")
	cp.setDiscovered("v2", clusters, []*listenerv3.Listener{first, rdsListener(t, "second", port2, "r2", "10s")}, rcs, nil)
	nack := cp.waitRequest("LDS NACK", func(r streamReq) bool {
		return r.typeURL == client.TypeListener && r.errDetail != ""
	})
	if !strings.Contains(nack.errDetail, "rds.config_source.ads: a second RDS config source") {
		t.Errorf("NACK detail %q does not name rds.config_source", nack.errDetail)
	}
	eventually(t, port, "/", "a", "")
}

// TestECDSSeparateStream: LDS over ADS, the my-filter Wasm filter's
// configuration on its own ExtensionConfigDiscoveryService stream (SotW
// and delta): it arrives and the filter greets, an update changes the
// greeting, a module that fails to load is NACKed on the ECDS stream
// while the old one serves.
func TestECDSSeparateStream(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) {
			cp := startFullPlane(t, "")
			a := upstream(t, "a")
			clusters := []*clusterv3.Cluster{staticCluster(t, "a", a)}
			port := freePort(t)
			ls := []*listenerv3.Listener{withSource(t, ecdsListener(t, "ingress", port, "my-filter", "{}"), grpcSource(apiType, `{envoy_grpc: {cluster_name: xds}}`))}
			cp.setDiscovered("v1", clusters, ls, nil, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v1", wasmPath)})
			sourcedProxy(t, cp, adsGRPC, `{ads: {}}`, `{ads: {}}`)
			eventually(t, port, "/", "a", "hello v1")

			cp.setDiscovered("v2", clusters, ls, nil, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v2", wasmPath)})
			eventually(t, port, "/", "a", "hello v2")

			cp.setDiscovered("v3", clusters, ls, nil, []*corev3.TypedExtensionConfig{wasmFilterConfig(t, "my-filter", "hello v3", "/nonexistent/missing.wasm")})
			cp.waitRequest("ECDS NACK", func(r streamReq) bool {
				return r.stream == client.TypeExtensionConfig && r.typeURL == client.TypeExtensionConfig && strings.Contains(r.errDetail, `"my-filter"`)
			})
			if code, body, greet, err := get(port, "/"); err != nil || code != 200 || body != "a" || greet != "hello v2" {
				t.Fatalf("after the NACK: %d %q %q %v, want a with hello v2", code, body, greet, err)
			}
			typeOnItsStream(t, cp, client.TypeExtensionConfig, client.TypeExtensionConfig)
		})
	}
}

// TestDiscoverySourceConfigErrors: the rds and config_discovery config
// sources a connection manager gives are checked when it compiles, each
// error naming the field.
func TestDiscoverySourceConfigErrors(t *testing.T) {
	const grpcSrc = `{api_config_source: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}, resource_api_version: V3, initial_fetch_timeout: 1s}`
	for _, tc := range []struct {
		name, ads, rds, rds2, ecds, want string
	}{
		{name: "grpc", rds: grpcSrc},
		{name: "delta google_grpc", rds: `{api_config_source: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{google_grpc: {target_uri: "127.0.0.1:1", stat_prefix: x}}]}}`},
		{name: "rest", rds: `{api_config_source: {api_type: REST, cluster_names: [xds], refresh_delay: 1s}}`},
		// The source is accepted; a static listener's discovered filter
		// without default_config then fails (see docs/xds.md).
		{name: "ecds grpc", rds: "{ads: {}}", ecds: grpcSrc, want: `"my-filter".config_discovery: no configuration received and no default_config`},
		{name: "same source twice", rds: grpcSrc, rds2: grpcSrc},
		{name: "refresh_delay with GRPC", rds: `{api_config_source: {api_type: GRPC, refresh_delay: 1s, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}}`,
			want: "rds.config_source.api_config_source.refresh_delay: only used with REST"},
		{name: "REST without refresh_delay", rds: `{api_config_source: {api_type: REST, cluster_names: [xds]}}`,
			want: "rds.config_source.api_config_source.refresh_delay: required for REST"},
		{name: "unknown cluster", rds: `{api_config_source: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: nope}}]}}`,
			want: `rds.config_source.api_config_source.grpc_services[0].envoy_grpc.cluster_name: unknown cluster "nope"`},
		{name: "AGGREGATED_GRPC", rds: `{api_config_source: {api_type: AGGREGATED_GRPC, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}}`,
			want: "rds.config_source.api_config_source.api_type: AGGREGATED_GRPC is not implemented"},
		{name: "grpc_services timeout field", rds: `{api_config_source: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: xds, retry_policy: {}}}]}}`,
			want: "rds.config_source.api_config_source.grpc_services[0].envoy_grpc.retry_policy"},
		{name: "path_config_source", rds: `{path_config_source: {path: /tmp/x}}`, want: "rds.config_source.path_config_source"},
		{name: "V2", rds: `{ads: {}, resource_api_version: V2}`, want: "rds.config_source.resource_api_version: V2 is not supported"},
		{name: "ads without ads_config", ads: "-", rds: "{ads: {}}", want: "rds.config_source.ads: needs dynamic_resources.ads_config"},
		{name: "second RDS source", rds: "{ads: {}}", rds2: grpcSrc, want: "rds.config_source.api_config_source: a second RDS config source is not implemented"},
		{name: "ECDS missing grpc_services", rds: "{ads: {}}", ecds: `{api_config_source: {api_type: GRPC}}`,
			want: `http_filters[0] "my-filter".config_discovery.config_source.api_config_source.grpc_services: exactly one gRPC service is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ads := "\n  ads_config: " + adsGRPC
			cds, lds := "{ads: {}}", "{ads: {}}"
			if tc.ads == "-" {
				ads, cds, lds = "", grpcSource("GRPC", `{envoy_grpc: {cluster_name: xds}}`), grpcSource("GRPC", `{envoy_grpc: {cluster_name: xds}}`)
			}
			listener := func(name, port, src string) string {
				return `
  - name: ` + name + `
    address: {socket_address: {address: 127.0.0.1, port_value: ` + port + `}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ` + name + `
          rds: {route_config_name: r, config_source: ` + src + `}
          http_filters:` + ecdsFilter(tc.ecds) + `
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}`
			}
			ls := listener("one", "0", tc.rds)
			if tc.rds2 != "" {
				ls += listener("two", "0", tc.rds2)
			}
			cfg := `
node: {id: node1, cluster: test}
dynamic_resources:` + ads + `
  cds_config: ` + cds + `
  lds_config: ` + lds + `
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]
  listeners:` + ls
			o, err := server.ParseFlags([]string{"--config-yaml", cfg, "-l", "off"}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			b := parse(t, &bootstrapv3.Bootstrap{}, cfg)
			s, err := server.New(context.Background(), o, b, nil)
			if s != nil {
				t.Cleanup(func() { s.Close(context.Background()) })
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func ecdsFilter(src string) string {
	if src == "" {
		return ""
	}
	return `
          - name: my-filter
            config_discovery:
              config_source: ` + src + `
              type_urls: [` + wasmTypeURL + `]`
}
