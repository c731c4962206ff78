package router

import (
	"context"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
)

// CompileForTest compiles a router typed_config given as JSON (with
// "@type") over clusters.
func CompileForTest(js string, clusters Clusters) (*Config, error) {
	raw := &anypb.Any{}
	if err := protojson.Unmarshal([]byte(js), raw); err != nil {
		return nil, err
	}
	cfg, err := factory{}.Compile(context.Background(), "router", raw, &filterchain.Env{Values: map[string]any{EnvKeyClusters: clusters}})
	if err != nil {
		return nil, err
	}
	return cfg.(*Config), nil
}
