package client_test

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

// TestSDSSecretConfigSource: `ads: {}` and api_config_source (with
// resource_api_version V3 or AUTO and initial_fetch_timeout) are accepted
// as an sds_config, api_config_source only with an xDS client's resolver
// (TestSDSSeparateStream); the errors name the field under sds_config.
func TestSDSSecretConfigSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		y    string
		want string
	}{
		{"ads", "ads: {}\nresource_api_version: V3\ninitial_fetch_timeout: 1s", ""},
		{"ads auto", "ads: {}", ""},
		{"api_config_source", "api_config_source: {api_type: GRPC}", "api_config_source: needs the xDS client"},
		{"path", "path_config_source: {path: /x}", "path_config_source: not implemented by wasmesh for SDS"},
		{"self", "self: {}", "self: not implemented by wasmesh for SDS"},
		{"v2", "ads: {}\nresource_api_version: V2", "resource_api_version: V2 is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := parse(t, &corev3.ConfigSource{}, tc.y)
			load, err := client.NewSecrets().SDSSecret("s", src)
			if tc.want == "" {
				if err != nil || load == nil || load() != nil {
					t.Fatalf("err %v: want a reader of a secret not yet received", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
