package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wasmesh/wasmesh/cluster"
)

func TestConfigErrors(t *testing.T) {
	const base = `
name: backend
connect_timeout: 1s
`
	const static = `
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}
`
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"unsupported lb policy", base + "type: STATIC\nlb_policy: LOAD_BALANCING_POLICY_CONFIG\n" + static,
			[]string{`cluster "backend" lb_policy: value LOAD_BALANCING_POLICY_CONFIG is not supported`}},
		{"unsupported field", base + "type: STATIC\nlb_subset_config: {fallback_policy: ANY_ENDPOINT}\n" + static,
			[]string{`cluster "backend" lb_subset_config: field is not supported`}},
		{"unsupported oneof member of the cluster", base + "cluster_type: {name: envoy.clusters.aggregate}\n" + static,
			[]string{`cluster_type: field is not supported`}},
		{"unsupported lb config of the cluster", base + "type: STATIC\nload_balancing_policy: {policies: []}\n" + static,
			[]string{`load_balancing_policy: field is not supported`}},
		{"endpoint by name", base + `type: STATIC
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint_name: named
`, []string{`load_assignment.endpoints[0].lb_endpoints[0].endpoint_name: field is not supported`}},
		{"named port and resolver", base + `type: STATIC
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, named_port: http, resolver_name: r}}}
`, []string{`load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.named_port: field is not supported`,
			`load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.resolver_name: field is not supported`}},
		{"locality and endpoint fields", base + `type: STATIC
load_assignment:
  cluster_name: backend
  named_endpoints: {a: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}}
  endpoints:
  - proximity: 1
    lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}, additional_addresses: [{address: {socket_address: {address: 127.0.0.2, port_value: 80}}}]}
`, []string{`load_assignment.named_endpoints: field is not supported`, `load_assignment.endpoints[0].proximity: field is not supported`,
			`load_assignment.endpoints[0].lb_endpoints[0].endpoint.additional_addresses: field is not supported`}},
		{"hostname in static", base + `type: STATIC
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}
    - endpoint: {address: {socket_address: {address: backend.example, port_value: 80}}}
`, []string{`cluster "backend" load_assignment.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.address: malformed IP address "backend.example"`}},
		{"missing load assignment", base + "type: STRICT_DNS\n", []string{`load_assignment: required for a STRICT_DNS cluster`}},
		{"original dst needs cluster provided", base + "type: ORIGINAL_DST\nlb_policy: ROUND_ROBIN\n",
			[]string{`lb_policy: an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED`}},
		{"maglev table not prime", base + "type: STATIC\nlb_policy: MAGLEV\nmaglev_lb_config: {table_size: 1000}\n" + static,
			[]string{`maglev_lb_config.table_size: table_size 1000 is not a prime number`}},
		{"ring sizes", base + "type: STATIC\nlb_policy: RING_HASH\nring_hash_lb_config: {minimum_ring_size: 100, maximum_ring_size: 10}\n" + static,
			[]string{`ring_hash_lb_config: minimum_ring_size (100) > maximum_ring_size (10)`}},
		{"config for another policy", base + "type: STATIC\nring_hash_lb_config: {minimum_ring_size: 100}\n" + static,
			[]string{`ring_hash_lb_config: only valid with lb_policy RING_HASH`}},
		{"dns field on static", base + "type: STATIC\ndns_refresh_rate: 1s\n" + static,
			[]string{`dns_refresh_rate: only valid for a STRICT_DNS or LOGICAL_DNS cluster`}},
		{"logical dns two endpoints", base + `type: LOGICAL_DNS
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: a.example, port_value: 80}}}
    - endpoint: {address: {socket_address: {address: b.example, port_value: 80}}}
`, []string{`load_assignment: a LOGICAL_DNS cluster must have exactly one locality with one endpoint`}},
		{"retry budget", base + "type: STATIC\ncircuit_breakers: {thresholds: [{retry_budget: {}}]}\n" + static,
			[]string{`circuit_breakers.thresholds[0].retry_budget: field is not supported`}},
		{"unknown transport socket", base + `type: STATIC
transport_socket:
  name: envoy.transport_sockets.alts
  typed_config: {"@type": type.googleapis.com/google.protobuf.Empty}
` + static, []string{`transport_socket.typed_config: transport socket "envoy.transport_sockets.alts"`}},
		{"tls unknown secret", base + `type: STATIC
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      tls_certificate_sds_secret_configs: [{name: client-cert}]
` + static, []string{`transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: secret "client-cert": no secrets are available`}},
		{"tls bad cipher", base + `type: STATIC
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      tls_params: {cipher_suites: [NOT-A-CIPHER]}
` + static, []string{`common_tls_context.tls_params.cipher_suites[0]: unknown or unsupported cipher suite "NOT-A-CIPHER"`}},
		{"health check grpc", base + `type: STATIC
health_checks:
- timeout: 1s
  interval: 1s
  unhealthy_threshold: 1
  healthy_threshold: 1
  grpc_health_check: {}
` + static, []string{`health_checks[0].grpc_health_check: field is not supported`}},
		{"health check bad status range", base + `type: STATIC
health_checks:
- timeout: 1s
  interval: 1s
  unhealthy_threshold: 1
  healthy_threshold: 1
  http_health_check: {path: /h, expected_statuses: [{start: 200, end: 700}]}
` + static, []string{`health_checks[0].http_health_check.expected_statuses[0]: range [200, 700) is not within [100, 600)`}},
		{"validation", "name: backend\ntype: STATIC\nconnect_timeout: -1s\n" + static,
			[]string{`cluster "backend" connect_timeout`}},
		{"http3", base + `type: STATIC
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: {http3_protocol_options: {}}
` + static, []string{`explicit_http_config.http3_protocol_options: field is not supported`}},
		{"outlier max ejection below base", base + "type: STATIC\noutlier_detection: {base_ejection_time: 10s, max_ejection_time: 1s}\n" + static,
			[]string{`outlier_detection.max_ejection_time: cannot be smaller than base_ejection_time`}},
		{"several problems at once", base + "type: STATIC\nlb_subset_config: {}\nupstream_config: {name: x}\nmaglev_lb_config: {table_size: 7}\n" + static,
			[]string{`upstream_config: field is not supported`, `maglev_lb_config: only valid with lb_policy MAGLEV`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := parseCluster(t, c.yaml)
			err := cluster.Validate(cfg, cluster.Options{})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			var fe *cluster.FieldError
			if !errors.As(err, &fe) || fe.Resource != `cluster "backend"` {
				t.Errorf("not a FieldError for the cluster: %#v", err)
			}
			// Add refuses it too, and nothing is installed.
			m := cluster.NewManager(context.Background(), cluster.Options{})
			defer m.Close()
			if err := m.Add(context.Background(), cfg); err == nil || m.Get("backend") != nil {
				t.Fatalf("Add: %v", err)
			}
		})
	}
}

func TestConfigAccepted(t *testing.T) {
	// Fields that are accepted: every documented-supported field in one
	// cluster must compile.
	y := `
name: full
alt_stat_name: full_stats
type: STATIC
connect_timeout: 0.25s
per_connection_buffer_limit_bytes: 32768
lb_policy: LEAST_REQUEST
least_request_lb_config: {choice_count: 3, active_request_bias: {default_value: 1.5, runtime_key: x}}
common_lb_config:
  healthy_panic_threshold: {value: 30}
  zone_aware_lb_config: {}
  update_merge_window: 1s
  ignore_new_hosts_until_first_hc: true
circuit_breakers:
  thresholds:
  - {max_connections: 10, max_pending_requests: 5, max_requests: 20, max_retries: 2, track_remaining: true}
  - {priority: HIGH, max_connections: 100}
common_http_protocol_options: {idle_timeout: 30s}
upstream_connection_options: {tcp_keepalive: {keepalive_time: 30, keepalive_interval: 5, keepalive_probes: 3}}
upstream_bind_config: {source_address: {address: 127.0.0.1, port_value: 0}}
metadata: {filter_metadata: {x: {a: b}}}
close_connections_on_host_health_failure: true
ignore_health_on_host_removal: true
wait_for_warm_on_init: true
outlier_detection:
  consecutive_5xx: 3
  consecutive_gateway_failure: 2
  enforcing_consecutive_gateway_failure: 100
  split_external_local_origin_errors: true
  consecutive_local_origin_failure: 2
  interval: 1s
  base_ejection_time: 1s
  max_ejection_percent: 50
  max_ejection_time: 10s
load_assignment:
  cluster_name: full
  policy: {overprovisioning_factor: 200, weighted_priority_health: true}
  endpoints:
  - locality: {region: r1, zone: z1}
    priority: 0
    load_balancing_weight: 3
    lb_endpoints:
    - endpoint:
        address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
        hostname: one.example
        health_check_config: {port_value: 9090, hostname: hc.example}
      health_status: HEALTHY
      load_balancing_weight: 2
      metadata: {filter_metadata: {envoy.lb: {hash_key: k1}}}
    - endpoint: {address: {pipe: {path: /tmp/sock}}}
  - priority: 1
    lb_endpoints:
    - endpoint: {address: {socket_address: {address: "::1", port_value: 8080}}}
      health_status: DRAINING
`
	if err := cluster.Validate(parseCluster(t, y), cluster.Options{}); err != nil {
		t.Fatal(err)
	}
	// Fuzz-ish: removing fields never panics the compiler.
	c := parseCluster(t, y)
	for _, f := range []string{"load_assignment", "circuit_breakers", "outlier_detection", "common_lb_config"} {
		cc := proto.Clone(c)
		fd := cc.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(f))
		cc.ProtoReflect().Clear(fd)
		_ = cluster.Validate(cc.(*clusterv3.Cluster), cluster.Options{})
	}
}
