package route

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	_ "google.golang.org/protobuf/types/known/wrapperspb" // Any payloads in test YAML
	"sigs.k8s.io/yaml"

	"github.com/wasmesh/wasmesh/header"
)

// parseRC reads a RouteConfiguration from YAML, as the bootstrap loader does.
func parseRC(t testing.TB, y string) *routev3.RouteConfiguration {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(j, rc); err != nil {
		t.Fatalf("protojson: %v\n%s", err, j)
	}
	return rc
}

func mustCompile(t testing.TB, y string, opts ...CompileOptions) *Table {
	t.Helper()
	var o CompileOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	tbl, err := Compile(parseRC(t, y), o)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

func compileErr(t testing.TB, y string, opts ...CompileOptions) error {
	t.Helper()
	var o CompileOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	_, err := Compile(parseRC(t, y), o)
	return err
}

// req builds request headers: method GET, scheme http, path and authority
// from the arguments, then extra key/value pairs.
func req(authority, path string, kv ...string) *header.Map {
	h := header.New(":method", "GET", ":scheme", "http", ":authority", authority, ":path", path, "x-forwarded-proto", "http")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == ":method" || kv[i] == ":scheme" || kv[i] == "x-forwarded-proto" {
			h.Set(kv[i], kv[i+1])
			continue
		}
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// routeName matches and returns the route name, "" for no route, or the
// virtual host name prefixed by "vh:" when no route matched in it.
func routeName(t *Table, h *header.Map, info RequestInfo) string {
	m := t.Match(h, info)
	if m.Route == nil {
		if m.VirtualHost != nil {
			return "vh:" + m.VirtualHost.Name
		}
		return ""
	}
	return m.Route.Name
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }
