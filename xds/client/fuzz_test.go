package client_test

import (
	"context"
	"errors"
	"net"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/xds/bootstrap"
	"github.com/wasmesh/wasmesh/xds/client"
)

// FuzzFromBootstrap: any dynamic_resources either configures a client or
// is an error; nothing panics.
func FuzzFromBootstrap(f *testing.F) {
	f.Add([]byte(`{ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}, cds_config: {ads: {}}, lds_config: {ads: {}}}`))
	f.Add([]byte(`{ads_config: {api_type: DELTA_GRPC, grpc_services: [{google_grpc: {target_uri: "x:1"}}]}, cds_config: {ads: {}, initial_fetch_timeout: 0s}, lds_config: {path_config_source: {path: /x}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{ads_config: {grpc_services: [{}]}, cds_config: {ads: {}}, lds_config: {ads: {}}}`))
	dial := func(name string) (client.DialFunc, error) {
		if name == "" {
			return nil, errors.New("no name")
		}
		return func(context.Context, string) (net.Conn, error) { return nil, errors.New("unused") }, nil
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dr := &bootstrapv3.Bootstrap_DynamicResources{}
		if err := bootstrap.Parse(data, dr, false); err != nil {
			return
		}
		c, err := client.FromBootstrap(dr, nodeProto(), dial)
		if err == nil && c.Target == "" && (c.CDSPath == "" || c.LDSPath == "") {
			t.Fatalf("accepted without a target: %v", dr)
		}
		// Binary round trip: the same message gives the same verdict.
		b, _ := proto.Marshal(dr)
		dr2 := &bootstrapv3.Bootstrap_DynamicResources{}
		if proto.Unmarshal(b, dr2) == nil {
			if _, err2 := client.FromBootstrap(dr2, nodeProto(), dial); (err == nil) != (err2 == nil) {
				t.Fatalf("verdict differs after a round trip: %v vs %v", err, err2)
			}
		}
	})
}
