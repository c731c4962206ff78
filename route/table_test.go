package route

import (
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestVirtualHostAndRouteFields(t *testing.T) {
	tbl := mustCompile(t, `
name: misc
internal_only_headers: [X-Internal]
virtual_hosts:
- name: vh
  domains: ["*"]
  include_request_attempt_count: true
  include_attempt_count_in_response: true
  include_is_timeout_retry_header: true
  per_request_buffer_limit_bytes: 1000
  virtual_clusters:
  - {name: writes, headers: [{name: ":method", string_match: {exact: POST}}]}
  - {name: admin, headers: [{name: ":path", string_match: {prefix: /admin}}]}
  routes:
  - name: own
    match: {prefix: /own}
    route: {cluster: c}
    request_body_buffer_limit: 2000
    stat_prefix: own_stats
    decorator: {operation: own-op}
    metadata: {filter_metadata: {x: {k: v}}}
    tracing: {client_sampling: {numerator: 1}}
  - name: inherit
    match: {prefix: /}
    route: {cluster: c}
    per_request_buffer_limit_bytes: 10
- name: plain
  domains: ["plain"]
  routes: [{name: p, match: {prefix: /}, route: {cluster: c}}]
`)
	if !reflect.DeepEqual(tbl.InternalOnlyHeaders(), []string{"x-internal"}) || tbl.Name != "misc" {
		t.Errorf("internal_only_headers %q", tbl.InternalOnlyHeaders())
	}
	vh := tbl.VirtualHosts()[0]
	if !vh.IncludeRequestAttemptCount || !vh.IncludeAttemptCountInResponse || !vh.IncludeIsTimeoutRetryHeader {
		t.Errorf("attempt count flags: %+v", vh)
	}
	own, inherit := vh.Routes()[0], vh.Routes()[1]
	if own.StatPrefix != "own_stats" || own.Decorator != "own-op" || own.Proto().GetMetadata() == nil {
		t.Errorf("route fields: %+v", own)
	}
	if own.RetryShadowBufferLimit() != 1000 || inherit.RetryShadowBufferLimit() != 10 {
		t.Errorf("per_request_buffer_limit_bytes: %d %d", own.RetryShadowBufferLimit(), inherit.RetryShadowBufferLimit())
	}
	if l, ok := own.RequestBodyBufferLimit(); !ok || l != 2000 {
		t.Errorf("request_body_buffer_limit: %d %v", l, ok)
	}
	if _, ok := inherit.RequestBodyBufferLimit(); ok {
		t.Errorf("request_body_buffer_limit unset")
	}
	if p := tbl.VirtualHosts()[1].Routes()[0]; p.RetryShadowBufferLimit() != 1<<32-1 {
		t.Errorf("default buffer limit %d", p.RetryShadowBufferLimit())
	}
	for h, want := range map[string]string{"POST /x": "writes", "GET /admin/x": "admin", "GET /x": "other"} {
		method, path, _ := strings.Cut(h, " ")
		if got := vh.VirtualCluster(req("h", path, ":method", method)); got != want {
			t.Errorf("virtual cluster of %s: %q, want %q", h, got, want)
		}
	}
	if got := tbl.VirtualHosts()[1].VirtualCluster(req("h", "/")); got != "" {
		t.Errorf("no virtual clusters: %q", got)
	}
	var names []string
	tbl.Routes(func(r *Route) bool { names = append(names, r.Name); return true })
	if !reflect.DeepEqual(names, []string{"own", "inherit", "p"}) {
		t.Errorf("Routes: %q", names)
	}
	if own.Index() != 0 || inherit.Index() != 1 || own.VirtualHost() != vh || vh.Table() != tbl {
		t.Errorf("back pointers")
	}
}

func TestValidateClusters(t *testing.T) {
	known := func(name string) bool { return name == "known" }
	y := func(flag string) string {
		return flag + `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: /a}, route: {cluster: unknown}}
  - {match: {prefix: /b}, route: {weighted_clusters: {clusters: [{name: known, weight: 1}, {name: gone, weight: 1}]}}}
  - {match: {prefix: /c}, route: {cluster_header: x-c}}
`
	}
	cases := []struct {
		flag    string
		byDflt  bool
		wantErr bool
	}{
		{"", false, false}, // RDS default: no validation
		{"", true, true},   // inline default: validation
		{"validate_clusters: false", true, false},
		{"validate_clusters: true", false, true},
	}
	for _, c := range cases {
		err := compileErr(t, y(c.flag), CompileOptions{ClusterExists: known, ValidateClustersByDefault: c.byDflt})
		if (err != nil) != c.wantErr {
			t.Errorf("%q default=%v: %v", c.flag, c.byDflt, err)
		}
		if err != nil && (!strings.Contains(err.Error(), `routes[0].route.cluster: unknown cluster "unknown"`) ||
			!strings.Contains(err.Error(), `routes[1].route.weighted_clusters.clusters[1].name: unknown cluster "gone"`)) {
			t.Errorf("errors: %v", err)
		}
	}
}

// TestTableIsImmutable: Compile owns a copy, so changing the input
// afterwards changes nothing.
func TestTableIsImmutable(t *testing.T) {
	rc := parseRC(t, `
virtual_hosts:
- {name: vh, domains: ["a"], routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]}
`)
	tbl, err := Compile(rc, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc.VirtualHosts[0].Name = "changed"
	rc.VirtualHosts[0].Routes[0].Name = "changed"
	if tbl.Proto().GetVirtualHosts()[0].GetName() != "vh" || tbl.VirtualHosts()[0].Routes()[0].Proto().GetName() != "r" {
		t.Error("the table shares the caller's message")
	}
}

// TestConcurrentMatch runs many goroutines on one table (run with -race).
func TestConcurrentMatch(t *testing.T) {
	tbl := mustCompile(t, fuzzTableYAML)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				h := req("host", []string{"/api/x", "/w", "/re/a/b", "/exact?q=a", "/"}[i%5], "x-a", "1")
				m := tbl.Match(h, RequestInfo{Random: uint64(g*1000 + i)})
				m.FinalizeRequestHeaders(h, nil, true)
				if m.Route != nil && m.Route.Redirect != nil {
					m.Route.Redirect.Location(h)
				}
			}
		}(g)
	}
	wg.Wait()
}
