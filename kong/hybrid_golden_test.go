package kong

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// TestDataPlaneBootstrapGolden compares the generated data plane
// bootstraps with testdata/golden (go test -run Golden -update rewrites
// them).
func TestDataPlaneBootstrapGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"dp_plain", []string{"KONG_CLUSTER_CONTROL_PLANE=127.0.0.1:8005"}},
		{"dp_mtls_dns", []string{"KONG_CLUSTER_CONTROL_PLANE=cp.example:9005",
			"KONG_CLUSTER_CERT=testdata/cluster.crt", "KONG_CLUSTER_CERT_KEY=testdata/cluster.key"}},
		{"dp_proxy_listen", []string{"KONG_PROXY_LISTEN=0.0.0.0:9000 http2, 0.0.0.0:9443 ssl http2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := LoadSettings(Sources{Env: append(tc.env, "KONG_ROLE=data_plane"), NumCPU: 1})
			if err != nil {
				t.Fatal(err)
			}
			b, err := DataPlaneBootstrap(s, &corev3.Node{Id: StableID("node", "dp"), Cluster: "kong"})
			if err != nil {
				t.Fatal(err)
			}
			j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.JSONToYAML(j)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", "golden", tc.name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (-update rewrites it):\n%s", file, got)
			}
		})
	}
}
