package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

func TestFromBootstrap(t *testing.T) {
	dial := func(name string) (client.DialFunc, error) {
		if name != "xds" {
			return nil, errors.New("unknown cluster")
		}
		return func(context.Context, string) (net.Conn, error) { return nil, errors.New("unused") }, nil
	}
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, c client.Config)
		errs       []string
	}{
		{
			name: "ads grpc envoy_grpc",
			yaml: `
ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}], set_node_on_first_message_only: true}
cds_config: {ads: {}, initial_fetch_timeout: 3s}
lds_config: {ads: {}, initial_fetch_timeout: 0s}`,
			check: func(t *testing.T, c client.Config) {
				if c.Delta || c.Target != "passthrough:///xds" || c.Dial == nil || !c.SetNodeOnFirstMessageOnly ||
					c.CDSInitialFetchTimeout != 3*time.Second || c.LDSInitialFetchTimeout != -1 || c.Authority != "xds" {
					t.Errorf("config: %+v", c)
				}
			},
		},
		{
			name: "delta google_grpc",
			yaml: `
ads_config: {api_type: DELTA_GRPC, grpc_services: [{google_grpc: {target_uri: "127.0.0.1:18000", stat_prefix: xds}}]}
cds_config: {ads: {}}
lds_config: {ads: {}}`,
			check: func(t *testing.T, c client.Config) {
				if !c.Delta || c.Target != "127.0.0.1:18000" || c.Dial != nil {
					t.Errorf("config: %+v", c)
				}
			},
		},
		{
			name: "unsupported sources",
			yaml: `
ads_config: {api_type: REST, grpc_services: [{envoy_grpc: {cluster_name: nope}}], rate_limit_settings: {}}
cds_config: {path_config_source: {path: /tmp/cds.yaml}}
lds_config: {api_config_source: {api_type: GRPC}}
lds_resources_locator: "xdstp://x/y"`,
			errs: []string{
				"dynamic_resources.lds_resources_locator: not implemented",
				"dynamic_resources.ads_config.rate_limit_settings: not implemented",
				"dynamic_resources.ads_config.api_type: REST is not implemented",
				"dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: unknown cluster",
				"dynamic_resources.cds_config.path_config_source: mixing path_config_source with other config sources is not implemented",
				"dynamic_resources.lds_config.api_config_source.grpc_services: exactly one gRPC service is required, got 0",
			},
		},
		{
			name: "separate sources",
			yaml: `
cds_config: {api_config_source: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}], set_node_on_first_message_only: true}, initial_fetch_timeout: 2s}
lds_config: {api_config_source: {api_type: REST, cluster_names: [xds], refresh_delay: 0.5s, request_timeout: 3s}}`,
			check: func(t *testing.T, c client.Config) {
				cds, lds := c.CDSSource, c.LDSSource
				if c.Target != "" || c.HasADS || cds == nil || lds == nil || c.Resolve == nil || c.CDSInitialFetchTimeout != 2*time.Second {
					t.Fatalf("config: %+v", c)
				}
				if !cds.Delta || cds.Target != "passthrough:///xds" || cds.Dial == nil || !cds.SetNodeOnFirstMessageOnly || cds.REST {
					t.Errorf("cds source: %+v", cds)
				}
				if !lds.REST || lds.Cluster != "xds" || lds.Dial == nil || lds.RefreshDelay != 500*time.Millisecond || lds.RequestTimeout != 3*time.Second {
					t.Errorf("lds source: %+v", lds)
				}
			},
		},
		{
			name: "bad separate sources",
			yaml: `
cds_config: {api_config_source: {api_type: REST, cluster_names: [xds]}}
lds_config: {api_config_source: {api_type: GRPC, cluster_names: [xds], grpc_services: [{google_grpc: {target_uri: "x:1"}}], refresh_delay: 1s}}`,
			errs: []string{
				"dynamic_resources.cds_config.api_config_source.refresh_delay: required for REST",
				"dynamic_resources.lds_config.api_config_source.cluster_names: only used with REST",
				"dynamic_resources.lds_config.api_config_source.refresh_delay: only used with REST",
			},
		},
		{
			name: "files",
			yaml: `
cds_config: {path_config_source: {path: /etc/cds.yaml}, initial_fetch_timeout: 2s}
lds_config: {path_config_source: {path: /etc/lds.yaml}}`,
			check: func(t *testing.T, c client.Config) {
				if c.Target != "" || c.CDSPath != "/etc/cds.yaml" || c.LDSPath != "/etc/lds.yaml" || c.CDSInitialFetchTimeout != 2*time.Second {
					t.Errorf("config: %+v", c)
				}
			},
		},
		{
			name: "ads source without ads_config",
			yaml: `
cds_config: {ads: {}}
lds_config: {path_config_source: {path: /etc/lds.yaml}}`,
			errs: []string{"dynamic_resources.lds_config.path_config_source: mixing path_config_source with other config sources", "dynamic_resources.cds_config.ads: needs dynamic_resources.ads_config"},
		},
		{
			name: "missing",
			yaml: `{}`,
			errs: []string{"dynamic_resources.lds_config: required", "dynamic_resources.cds_config: required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dr := parse(t, &bootstrapv3.Bootstrap_DynamicResources{}, tt.yaml)
			c, err := client.FromBootstrap(dr, nodeProto(), dial)
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}
