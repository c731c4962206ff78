package server

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const xdsBootstrap = `
node: {id: n1, cluster: c1}
dynamic_resources:
  ads_config:
    api_type: API_TYPE
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds
    connect_timeout: 1s
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18000}}}}]}]
`

// A bootstrap with dynamic_resources passes --mode validate (without
// connecting) and an unsupported config source is named.
func TestValidateDynamicResources(t *testing.T) {
	for _, tc := range []struct {
		apiType, want string
	}{
		{"GRPC", ""},
		{"DELTA_GRPC", ""},
		{"REST", "dynamic_resources"},
	} {
		t.Run(tc.apiType, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "xds.yaml")
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(xdsBootstrap, "API_TYPE", tc.apiType)), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Main(context.Background(), "wasmesh", []string{"-c", path, "--mode", "validate", "-l", "off"}, io.Discard, io.Discard)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("validate error %v does not name %q", err, tc.want)
			}
		})
	}
}
