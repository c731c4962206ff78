package kong

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/route"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// goldenOptions are the kong.conf settings of the golden inputs: every
// filter exists except "missing".
func goldenOptions() Options {
	return Options{
		FiltersPath: "/kong/filters",
		FileExists:  func(p string) bool { return !strings.HasSuffix(p, "/missing.wasm") },
	}
}

// inputOptions reads kong.conf settings from an input's leading comments:
// "# proxy_listen: a, b", "# ssl_cert: path", "# ssl_cert_key: path",
// "# wasm_filters: a, b", "# headers: a, b".
func inputOptions(data []byte) Options {
	o := goldenOptions()
	list := func(v string) []string {
		var out []string
		for _, x := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(x))
		}
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), ": ")
		if !strings.HasPrefix(line, "# ") || !ok {
			continue
		}
		switch k {
		case "proxy_listen":
			o.ProxyListen = list(v)
		case "ssl_cert":
			o.SSLCert = v
		case "ssl_cert_key":
			o.SSLCertKey = v
		case "wasm_filters":
			o.AllowedFilters = list(v)
		case "headers":
			o.Headers = list(v)
		}
	}
	return o
}

// marshal renders a resource list as stable, indented JSON.
func marshal[T proto.Message](t *testing.T, list []T) []json.RawMessage {
	t.Helper()
	out := []json.RawMessage{}
	for _, m := range list {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// render is the golden form of a translation (or its error).
func render(t *testing.T, res *Resources, err error) []byte {
	t.Helper()
	var v any
	if err != nil {
		v = map[string]any{"error": strings.Split(err.Error(), "\n")}
	} else {
		v = map[string]any{
			"listeners": marshal(t, res.Listeners),
			"routes":    marshal(t, res.Routes),
			"clusters":  marshal(t, res.Clusters),
			"endpoints": marshal(t, res.Endpoints),
			"secrets":   marshal(t, res.Secrets),
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// Round trip through encoding/json for whitespace protojson keeps
	// unstable on purpose.
	var norm any
	if err := json.Unmarshal(b, &norm); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(norm); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkResources validates every resource with the generated validators
// and compiles the route configuration and clusters in the data plane.
func checkResources(t *testing.T, res *Resources) {
	t.Helper()
	type validator interface{ ValidateAll() error }
	var all []validator
	for _, x := range res.Listeners {
		all = append(all, x)
	}
	for _, x := range res.Routes {
		all = append(all, x)
	}
	for _, x := range res.Clusters {
		all = append(all, x)
	}
	for _, x := range res.Endpoints {
		all = append(all, x)
	}
	for _, x := range res.Secrets {
		all = append(all, x)
	}
	for _, v := range all {
		if err := v.ValidateAll(); err != nil {
			t.Errorf("ValidateAll: %v", err)
		}
	}
	for _, rc := range res.Routes {
		if _, err := route.Compile(rc, route.CompileOptions{}); err != nil {
			t.Errorf("route.Compile: %v", err)
		}
	}
	for _, c := range res.Clusters {
		if err := cluster.Validate(c, cluster.Options{}); err != nil {
			t.Errorf("cluster.Validate: %v", err)
		}
	}
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data)
			var got []byte
			if err != nil {
				b, _ := json.MarshalIndent(err, "", "  ")
				got = append(b, '\n')
			} else {
				res, err := Translate(cfg, inputOptions(data))
				if err == nil {
					checkResources(t, res)
				}
				got = render(t, res, err)
			}
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the translation (run with -update to accept):\n%s", golden, got)
			}
		})
	}
}
