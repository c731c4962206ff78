package kong

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestAdminRouteFilters checks GET /routes/{id}/filters/{all,enabled,disabled}
// against Kong's shape (kong/api/routes/filter_chains.lua): {"filters": [
// {name, config, from, enabled, filter_chain: {id, name}}]}, the service's
// chain first, "enabled" only when both the chain and the filter are.
func TestAdminRouteFilters(t *testing.T) {
	_, _, admin, up := startWalk(t)
	body := `_format_version: "3.0"
services:
- name: a
  url: ` + up.URL + `
  filter_chains:
  - name: svc-chain
    enabled: false
    filters:
    - name: my-filter
      config: '{"my_greeting": "service"}'
  routes:
  - name: r1
    paths: ["/"]
    filter_chains:
    - name: route-chain
      filters:
      - name: my-filter
        config: '{"my_greeting": "one"}'
      - name: my-filter
        enabled: false
`
	if resp, b := do(t, "POST", admin+"/config", "application/yaml", []byte(body)); resp.StatusCode != 201 {
		t.Fatalf("POST /config: %d %s", resp.StatusCode, b)
	}
	// Chain ids are assigned when the config has none: take them from
	// /filter-chains.
	ids := map[string]string{}
	for _, fc := range getJSON(t, admin+"/filter-chains", 200)["data"].([]any) {
		m := fc.(map[string]any)
		ids[m["name"].(string)] = m["id"].(string)
	}
	svc := map[string]any{"id": ids["svc-chain"], "name": "svc-chain"}
	rt := map[string]any{"id": ids["route-chain"], "name": "route-chain"}
	get := func(which string) []any {
		m := getJSON(t, admin+"/routes/r1/filters/"+which, 200)
		if len(m) != 1 {
			t.Fatalf("%s: fields %v", which, m)
		}
		return m["filters"].([]any)
	}
	filter := func(config any, from string, enabled bool, chain map[string]any) map[string]any {
		return map[string]any{"name": "my-filter", "config": config, "from": from, "enabled": enabled, "filter_chain": chain}
	}
	all := []any{
		filter(`{"my_greeting": "service"}`, "service", false, svc),
		filter(`{"my_greeting": "one"}`, "route", true, rt),
		filter(nil, "route", false, rt),
	}
	for which, want := range map[string][]any{"all": all, "enabled": all[1:2], "disabled": {all[0], all[2]}} {
		got := get(which)
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("filters/%s:\n got %s\nwant %s", which, g, w)
		}
	}
	if m := getJSON(t, admin+"/routes/nope/filters/all", 404); m["message"] != "Not found" {
		t.Errorf("unknown route: %v", m)
	}
}

// TestAdminFiltersWasmOff: with wasm off the filter chain endpoints answer
// Kong's 400.
func TestAdminFiltersWasmOff(t *testing.T) {
	_, _, admin, _ := startWalk(t, "KONG_WASM=off", "KONG_DECLARATIVE_CONFIG=")
	for _, p := range []string{"/routes/x/filters/enabled", "/routes/x/filters/all", "/filter-chains", "/routes/x/filter-chains"} {
		if m := getJSON(t, admin+p, 400); m["message"] != "this endpoint is only available when wasm is enabled" {
			t.Errorf("GET %s: %v", p, m)
		}
	}
}
