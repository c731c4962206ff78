package bootstrap

import (
	"errors"
	"strings"
	"testing"

	httpwasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func TestLoadGoodUnwrapsTypedStruct(t *testing.T) {
	b, err := Load(Options{Path: "testdata/good.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetNode().GetId() != "test-node" {
		t.Fatalf("node id = %q", b.GetNode().GetId())
	}
	hcmAny := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	hcm := &hcmv3.HttpConnectionManager{}
	if err := hcmAny.UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	wasmAny := hcm.GetHttpFilters()[0].GetTypedConfig()
	if got := wasmAny.GetTypeUrl(); got != "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm" {
		t.Fatalf("TypedStruct not unwrapped: type %s", got)
	}
	w := &httpwasmv3.Wasm{}
	if err := wasmAny.UnmarshalTo(w); err != nil {
		t.Fatal(err)
	}
	if w.GetConfig().GetVmConfig().GetCode().GetLocal().GetFilename() != "my-filter.wasm" {
		t.Fatalf("unwrapped config lost fields: %v", w)
	}
}

func TestConfigYAMLMergesOverFile(t *testing.T) {
	b, err := Load(Options{Path: "testdata/good.yaml", ConfigYAML: "node: {id: override}"})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetNode().GetId() != "override" || b.GetNode().GetCluster() != "test-cluster" {
		t.Fatalf("merge: node = %v", b.GetNode())
	}
	if n := len(b.GetStaticResources().GetClusters()); n != 1 {
		t.Fatalf("clusters = %d", n)
	}
}

func TestBadBootstrapReportsEveryProblemWithItsPath(t *testing.T) {
	_, err := Load(Options{Path: "testdata/bad-many.yaml"})
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"tracing: not implemented",
		"hds_config: health discovery (HDS) is not supported",
		"admin.socket_options: not implemented",
		"Name: value length must be at least 1",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
		allowUnknown      bool
	}{
		{"unknown field", "no_such_field: 1", `unknown field "no_such_field"`, false},
		{"unknown field allowed", "no_such_field: 1", "", true},
		{"unknown Any type", `bootstrap_extensions: [{name: x, typed_config: {"@type": type.googleapis.com/not.a.Type}}]`, "not.a.Type", false},
		// An Envoy extension wasmesh does not implement is not linked (types.go):
		// it fails like any unknown type, naming the type URL.
		{"unlinked extension type", `static_resources: {clusters: [{name: c, cluster_type: {name: envoy.clusters.dynamic_forward_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig}}}]}`, `"type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig"`, false},
		{"bad yaml", "node: [", "yaml", false},
		{"bad typed struct type", `bootstrap_extensions: [{name: x, typed_config: {"@type": type.googleapis.com/udpa.type.v1.TypedStruct, type_url: type.googleapis.com/nope.Nope, value: {}}}]`, `unknown type "type.googleapis.com/nope.Nope"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(Options{ConfigYAML: tc.input, AllowUnknownFields: tc.allowUnknown})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v lacks %q", err, tc.want)
			}
		})
	}
}

func TestNoConfigIsAnError(t *testing.T) {
	if _, err := Load(Options{}); err == nil || !strings.Contains(err.Error(), "--config-path") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("node: {id: x}"))
	f.Add([]byte(`{"admin":{}}`))
	f.Add([]byte(`bootstrap_extensions: [{name: x, typed_config: {"@type": type.googleapis.com/udpa.type.v1.TypedStruct}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b = newBootstrap()
		_ = Parse(data, b, false)
	})
}
