package kong

import (
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func mustTranslate(t *testing.T, y string, o Options) *Resources {
	t.Helper()
	cfg, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, res)
	return res
}

func hcmOf(t *testing.T, res *Resources) *hcmv3.HttpConnectionManager {
	t.Helper()
	h := &hcmv3.HttpConnectionManager{}
	if err := res.Listeners[0].FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	return h
}

// enabled lists the http_filters a route enables, in chain order.
func enabled(h *hcmv3.HttpConnectionManager, r *routev3.Route) []string {
	var out []string
	for _, f := range h.HttpFilters {
		if _, ok := r.TypedPerFilterConfig[f.Name]; ok {
			out = append(out, f.Name)
		}
	}
	return out
}

func findRoute(rc *routev3.RouteConfiguration, name string) *routev3.Route {
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			if r.Name == name {
				return r
			}
		}
	}
	return nil
}

func TestChainOrderAndInstances(t *testing.T) {
	res := mustTranslate(t, `_format_version: "3.0"
services:
- name: a
  host: a.example
  filter_chains:
  - filters: [{name: f1, config: "a1"}, {name: f2}]
  routes:
  - name: ra
    paths: [/a]
    filter_chains:
    - filters: [{name: f1, config: "ra1"}, {name: f1, config: "ra2"}]
  - name: rb
    paths: [/b]
- name: b
  host: b.example
  filter_chains:
  - enabled: false
    filters: [{name: f1}]
  routes:
  - name: rc
    paths: [/c]
    filter_chains:
    - filters: [{name: f2, enabled: false}, {name: f2, config: {k: v}}]
`, goldenOptions())
	h := hcmOf(t, res)
	var names []string
	for _, f := range h.HttpFilters {
		names = append(names, f.Name)
		if f.Name != "envoy.filters.http.router" && !f.Disabled {
			t.Errorf("%s not disabled by default", f.Name)
		}
	}
	want := []string{"kong.wasm.0.f1", "kong.wasm.1.f2", "kong.wasm.2.f1", "kong.wasm.3.f1", "kong.wasm.4.f2", "envoy.filters.http.router"}
	if !slices.Equal(names, want) {
		t.Fatalf("http_filters %v, want %v", names, want)
	}
	rc := res.Routes[0]
	for route, want := range map[string][]string{
		"ra": {"kong.wasm.0.f1", "kong.wasm.1.f2", "kong.wasm.2.f1", "kong.wasm.3.f1"},
		"rb": {"kong.wasm.0.f1", "kong.wasm.1.f2"},
		"rc": {"kong.wasm.4.f2"},
	} {
		if got := enabled(h, findRoute(rc, route)); !slices.Equal(got, want) {
			t.Errorf("route %s enables %v, want %v", route, got, want)
		}
	}
	if findRoute(rc, "kong.no_route").TypedPerFilterConfig != nil {
		t.Error("the 404 route enables filters")
	}
}

func TestChainRuleErrors(t *testing.T) {
	y := `_format_version: "3.0"
services:
- name: s
  host: example.com
  filter_chains:
  - filters: [{name: missing}]
  routes:
  - name: r
    paths: [/]
    filter_chains:
    - filters: [{name: other}, {name: ok}]
`
	cfg, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	o := goldenOptions()
	o.AllowedFilters = []string{"ok", "missing"}
	_, err = Translate(cfg, o)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`service 's' filter_chains.filters[0].name: no such filter "missing" (no /kong/filters/missing.wasm)`,
		`route 'r' filter_chains.filters[0].name: filter "other" is not allowed by wasm_filters`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"ok"`) {
		t.Errorf("allowed, existing filter reported: %v", err)
	}
	o.AllowedFilters = []string{"off"}
	if _, err := Translate(cfg, o); err == nil || !strings.Contains(err.Error(), `filter "ok" is not allowed`) {
		t.Errorf("wasm_filters=off: %v", err)
	}
}
