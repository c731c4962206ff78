package route

import (
	"errors"
	"fmt"
	"github.com/wasmesh/wasmesh/header"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func actionOf(t *testing.T, action string) *RouteAction {
	t.Helper()
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: r
    match: {prefix: /}
    route: `+action+`
`)
	return tbl.VirtualHosts()[0].Routes()[0].Action
}

func TestClusterSpecifiers(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: plain, match: {prefix: /plain}, route: {cluster: backend}}
  - {name: header, match: {prefix: /header}, route: {cluster_header: X-Cluster}}
`)
	if m := tbl.Match(req("h", "/plain"), RequestInfo{}); m.Cluster != "backend" || m.Weighted != nil {
		t.Errorf("cluster: %+v", m)
	}
	if m := tbl.Match(req("h", "/header", "x-cluster", "dyn", "x-cluster", "second"), RequestInfo{}); m.Cluster != "dyn" {
		t.Errorf("cluster_header takes the first value: %+v", m)
	}
	if m := tbl.Match(req("h", "/header"), RequestInfo{}); m.Route == nil || m.Cluster != "" {
		t.Errorf("cluster_header absent: the route matches with no cluster: %+v", m)
	}
}

func TestWeightedClusters(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: w
    match: {prefix: /}
    route:
      weighted_clusters:
        header_name: x-pick
        clusters:
        - {name: a, weight: 10}
        - {name: zero, weight: 0}
        - {name: b, weight: 30}
        - {cluster_header: x-c, weight: 60}
`)
	a := tbl.VirtualHosts()[0].Routes()[0].Action
	if a.Weighted.TotalWeight != 100 {
		t.Fatalf("total weight %d", a.Weighted.TotalWeight)
	}
	cases := []struct {
		random uint64
		extra  []string
		want   string
	}{
		{0, nil, "a"},
		{9, nil, "a"},
		{10, nil, "b"}, // the zero-weight entry is never picked
		{39, nil, "b"},
		{40, []string{"x-c", "from-header"}, "from-header"},
		{99, []string{"x-c", "from-header"}, "from-header"},
		{110, nil, "b"},                                    // modulo the total
		{0, []string{"x-pick", "15"}, "b"},                 // header_name supplies the value
		{0, []string{"x-pick", "nope"}, "a"},               // unparsable: the random value
		{0, []string{"x-pick", "15", "x-pick", "15"}, "a"}, // repeated: the random value
	}
	for _, c := range cases {
		m := tbl.Match(req("h", "/", c.extra...), RequestInfo{Random: c.random})
		if m.Cluster != c.want || m.Weighted == nil {
			t.Errorf("random %d %v: cluster %q, want %q", c.random, c.extra, m.Cluster, c.want)
		}
	}
	// Distribution over every random value follows the weights.
	counts := map[string]int{}
	for r := uint64(0); r < 1000; r++ {
		counts[tbl.Match(req("h", "/", "x-c", "c"), RequestInfo{Random: r}).Cluster]++
	}
	if !reflect.DeepEqual(counts, map[string]int{"a": 100, "b": 300, "c": 600}) {
		t.Errorf("distribution %v", counts)
	}
}

func TestWeightedClustersUseHashPolicy(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: w
    match: {prefix: /}
    route:
      hash_policy: [{header: {header_name: x-user}}]
      weighted_clusters:
        use_hash_policy: true
        clusters: [{name: a, weight: 50}, {name: b, weight: 50}]
`)
	first := tbl.Match(req("h", "/", "x-user", "alice"), RequestInfo{Random: 0}).Cluster
	for r := uint64(1); r < 50; r++ {
		if got := tbl.Match(req("h", "/", "x-user", "alice"), RequestInfo{Random: r}).Cluster; got != first {
			t.Fatalf("hash policy pick changed with the random value: %q then %q", first, got)
		}
	}
	want := []string{"a", "b"}[xxhash64([]byte("alice"))%100/50]
	if first != want {
		t.Errorf("pick %q, want %q", first, want)
	}
	// Without the header the random value decides.
	if got := tbl.Match(req("h", "/"), RequestInfo{Random: 51}).Cluster; got != "b" {
		t.Errorf("no hash: got %q", got)
	}
}

func TestRouteActionFields(t *testing.T) {
	a := actionOf(t, `{cluster: c}`)
	if a.Timeout != 15*time.Second || a.IdleTimeout.Set || a.Retry != nil || a.Hash != nil || a.ClusterNotFoundCode != 503 || a.Priority != PriorityDefault {
		t.Errorf("defaults: %+v", a)
	}
	a = actionOf(t, `{cluster: c, timeout: 0s, idle_timeout: 2.5s, cluster_not_found_response_code: NOT_FOUND, priority: HIGH,
      max_stream_duration: {max_stream_duration: 10s, grpc_timeout_header_max: 0s, grpc_timeout_header_offset: 0.001s},
      max_grpc_timeout: 3s, grpc_timeout_offset: 0.1s, append_x_forwarded_host: true,
      upgrade_configs: [{upgrade_type: WebSocket}, {upgrade_type: h2c, enabled: false}]}`)
	want := &RouteAction{
		Cluster: "c", ClusterNotFoundCode: 404, Timeout: 0, TimeoutMs: "0",
		IdleTimeout:             OptionalDuration{2500 * time.Millisecond, true},
		MaxStreamDuration:       OptionalDuration{10 * time.Second, true},
		GrpcTimeoutHeaderMax:    OptionalDuration{0, true},
		GrpcTimeoutHeaderOffset: OptionalDuration{time.Millisecond, true},
		MaxGrpcTimeout:          OptionalDuration{3 * time.Second, true},
		GrpcTimeoutOffset:       OptionalDuration{100 * time.Millisecond, true},
		Priority:                PriorityHigh,
		AppendXForwardedHost:    true,
		Upgrades:                map[string]bool{"websocket": true, "h2c": false},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}
	a = actionOf(t, `{cluster: c, cluster_not_found_response_code: INTERNAL_SERVER_ERROR, auto_host_rewrite: true}`)
	if a.ClusterNotFoundCode != 500 || !a.AutoHostRewrite {
		t.Errorf("%+v", a)
	}
	a = actionOf(t, `{cluster: c, host_rewrite_header: X-Host}`)
	if a.HostRewriteHeader != "x-host" {
		t.Errorf("%+v", a)
	}
}

func TestRetryPolicy(t *testing.T) {
	a := actionOf(t, `{cluster: c, retry_policy: {
      retry_on: "5xx, gateway-error,connect-failure,reset,retriable-4xx,retriable-status-codes,refused-stream,retriable-headers,unavailable,cancelled",
      num_retries: 3, per_try_timeout: 0.25s, per_try_idle_timeout: 1s,
      retriable_status_codes: [418, 503],
      retry_back_off: {base_interval: 0.01s, max_interval: 1s},
      retriable_headers: [{name: x-retry, present_match: true}],
      retriable_request_headers: [{name: ":method", string_match: {exact: GET}}],
      retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts}],
      host_selection_retry_max_attempts: 5}}`)
	r := a.Retry
	wantOn := Retry5xx | RetryGatewayError | RetryConnectFailure | RetryReset | RetryRetriable4xx |
		RetryRetriableStatusCodes | RetryRefusedStream | RetryRetriableHeaders | RetryGrpcUnavailable | RetryGrpcCancelled
	if r.On != wantOn || r.NumRetries != 3 || r.PerTryTimeout != 250*time.Millisecond || r.PerTryIdleTimeout != time.Second ||
		!reflect.DeepEqual(r.RetriableStatusCodes, []uint32{418, 503}) || r.BackOffBase != 10*time.Millisecond ||
		r.BackOffMax != time.Second || !r.OtherHosts || r.HostSelectionMaxAttempts != 5 {
		t.Errorf("%+v", r)
	}
	if r.On.String() != "5xx,gateway-error,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,retriable-headers,reset,cancelled,unavailable" {
		t.Errorf("String: %s", r.On)
	}
	if !r.AllowsRequest(req("h", "/")) || r.AllowsRequest(req("h", "/", ":method", "POST")) {
		t.Errorf("retriable_request_headers")
	}
	resp := func(kv ...string) *header.Map { return header.New(kv...) }
	checks := []struct {
		on     RetryOn
		status int
		h      *header.Map
		want   bool
	}{
		{Retry5xx, 500, resp(), true},
		{Retry5xx, 404, resp(), false},
		{RetryGatewayError, 503, resp(), true},
		{RetryGatewayError, 500, resp(), false},
		{RetryRetriable4xx, 409, resp(), true},
		{RetryRetriable4xx, 404, resp(), false},
		{RetryRetriableStatusCodes, 418, resp(), true},
		{RetryRetriableStatusCodes, 419, resp(), false},
		{RetryRetriableHeaders, 200, resp("x-retry", "1"), true},
		{RetryRetriableHeaders, 200, resp(), false},
		{RetryGrpcUnavailable, 200, resp("grpc-status", "14"), true},
		{RetryGrpcUnavailable, 200, resp("grpc-status", "13"), false},
		{Retry5xx, 503, resp("x-envoy-ratelimited", "true"), false},
		{RetryEnvoyRateLimited, 429, resp("x-envoy-ratelimited", "true"), true},
	}
	for _, c := range checks {
		if got := r.RetryOnResponse(c.on, c.status, c.h); got != c.want {
			t.Errorf("RetryOnResponse(%s, %d, %q) = %v", c.on, c.status, c.h, got)
		}
	}
	resets := []struct {
		on     RetryOn
		reason ResetReason
		want   bool
	}{
		{RetryReset, ResetOther, true},
		{Retry5xx, ResetOther, true},
		{RetryConnectFailure, ResetConnectionFailure, true},
		{RetryConnectFailure, ResetOther, false},
		{RetryRefusedStream, ResetRefusedStream, true},
		{RetryReset, ResetOverflow, false},
	}
	for _, c := range resets {
		if got := RetryOnReset(c.on, c.reason); got != c.want {
			t.Errorf("RetryOnReset(%s, %d) = %v", c.on, c.reason, got)
		}
	}

	a = actionOf(t, `{cluster: c, retry_policy: {retry_on: 5xx, retry_back_off: {base_interval: 0.1s}}}`)
	if a.Retry.NumRetries != 1 || a.Retry.BackOffMax != time.Second || a.Retry.HostSelectionMaxAttempts != 1 {
		t.Errorf("defaults: %+v", a.Retry)
	}
}

func TestRetryPolicyInheritance(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  retry_policy: {retry_on: connect-failure, num_retries: 7}
  routes:
  - {name: own, match: {prefix: /own}, route: {cluster: c, retry_policy: {retry_on: 5xx}}}
  - {name: inherit, match: {prefix: /}, route: {cluster: c}}
`)
	rs := tbl.VirtualHosts()[0].Routes()
	if rs[0].Action.Retry.On != Retry5xx || rs[0].Action.Retry.NumRetries != 1 {
		t.Errorf("route policy replaces the virtual host's, without merging: %+v", rs[0].Action.Retry)
	}
	if rs[1].Action.Retry != tbl.VirtualHosts()[0].Retry() || rs[1].Action.Retry.NumRetries != 7 {
		t.Errorf("inherited: %+v", rs[1].Action.Retry)
	}
}

func TestParseRetryOn(t *testing.T) {
	on, unknown := ParseRetryOn(" 5xx,,bogus , deadline-exceeded,resource-exhausted,internal,envoy-ratelimited,reset-before-request,http3-post-connect-failure")
	if on != Retry5xx|RetryGrpcDeadlineExceeded|RetryGrpcResourceExhausted|RetryGrpcInternal|RetryEnvoyRateLimited|RetryResetBeforeRequest|RetryHTTP3PostConnectFailure {
		t.Errorf("on = %s", on)
	}
	if !reflect.DeepEqual(unknown, []string{"bogus"}) {
		t.Errorf("unknown = %q", unknown)
	}
}

func TestHashPolicy(t *testing.T) {
	a := actionOf(t, `{cluster: c, hash_policy: [
      {header: {header_name: x-user}},
      {cookie: {name: session, ttl: 10s, path: /, attributes: [{name: SameSite, value: Lax}]}},
      {connection_properties: {source_ip: true}},
      {query_parameter: {name: q}}]}`)
	p := a.Hash
	rot := func(h uint64) uint64 { return h<<1 | h>>63 }
	x := func(s string) uint64 { return xxhash64([]byte(s)) }
	ip := netip.MustParseAddr("10.1.2.3")

	in := HashInput{Headers: req("h", "/?q=v", "x-user", "alice", "cookie", `a=1; session="s1"`), RemoteAddr: ip}
	got, ok := p.Hash(in)
	want := rot(rot(rot(x("alice"))^x("s1"))^x("10.1.2.3")) ^ x("v")
	if !ok || got != want {
		t.Errorf("combined hash %x, want %x", got, want)
	}

	// Repeated header values are sorted, then hashed together.
	h1, _ := (&HashPolicy{methods: p.methods[:1]}).Hash(HashInput{Headers: req("h", "/", "x-user", "b", "x-user", "a")})
	h2, _ := (&HashPolicy{methods: p.methods[:1]}).Hash(HashInput{Headers: req("h", "/", "x-user", "a", "x-user", "b")})
	if h1 != h2 || h1 != x("ab") {
		t.Errorf("repeated header: %x %x", h1, h2)
	}

	// A missing cookie with a ttl asks for a new cookie and hashes its value.
	var asked string
	addCookie := func(name, path string, ttl time.Duration, attrs []CookieAttribute) string {
		asked = fmt.Sprintf("%s %s %s %v", name, path, ttl, attrs)
		return "generated"
	}
	got, ok = (&HashPolicy{methods: p.methods[1:2]}).Hash(HashInput{Headers: req("h", "/"), AddCookie: addCookie})
	if !ok || got != x("generated") || asked != "session / 10s [{SameSite Lax}]" {
		t.Errorf("cookie generation: %x %v %q", got, ok, asked)
	}
	if _, ok := (&HashPolicy{methods: p.methods[1:2]}).Hash(HashInput{Headers: req("h", "/")}); ok {
		t.Errorf("no AddCookie: no hash")
	}
	if _, ok := p.Hash(HashInput{Headers: req("h", "/")}); ok {
		t.Errorf("nothing to hash")
	}

	// terminal stops after the first policy that produced a hash.
	a = actionOf(t, `{cluster: c, hash_policy: [{header: {header_name: x-a}, terminal: true}, {header: {header_name: x-b}}]}`)
	got, _ = a.Hash.Hash(HashInput{Headers: req("h", "/", "x-a", "1", "x-b", "2")})
	if got != x("1") {
		t.Errorf("terminal: %x", got)
	}
	got, _ = a.Hash.Hash(HashInput{Headers: req("h", "/", "x-b", "2")})
	if got != x("2") {
		t.Errorf("terminal without a hash continues: %x", got)
	}

	// regex_rewrite applies to header values before hashing.
	a = actionOf(t, `{cluster: c, hash_policy: [{header: {header_name: ":path", regex_rewrite: {pattern: {regex: "\\?.*"}, substitution: ""}}}]}`)
	got, _ = a.Hash.Hash(HashInput{Headers: req("h", "/p?x=1")})
	if got != x("/p") {
		t.Errorf("header regex_rewrite: %x", got)
	}
}

func TestXXHash64(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
		{"Nobody inspects the spammish repetition", 0xfbcea83c8a378bf1},
	}
	for _, c := range cases {
		if got := xxhash64([]byte(c.in)); got != c.want {
			t.Errorf("xxhash64(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

func TestDirectResponse(t *testing.T) {
	files := map[string]string{"/body.txt": "from file"}
	opts := CompileOptions{ReadFile: func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return []byte(b), nil
		}
		return nil, errors.New("no such file")
	}}
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: s, match: {path: /s}, direct_response: {status: 200, body: {inline_string: hello}}}
  - {name: b, match: {path: /b}, direct_response: {status: 503, body: {inline_bytes: aGk=}}}
  - {name: f, match: {path: /f}, direct_response: {status: 404, body: {filename: /body.txt}}}
  - {name: none, match: {path: /n}, direct_response: {status: 204}}
`, opts)
	want := map[string]DirectResponse{"/s": {200, "hello"}, "/b": {503, "hi"}, "/f": {404, "from file"}, "/n": {204, ""}}
	for p, w := range want {
		m := tbl.Match(req("h", p), RequestInfo{})
		if m.Route == nil || m.Route.Kind != ActionDirectResponse || *m.Route.DirectResponse != w || m.Cluster != "" {
			t.Errorf("%s: %+v", p, m)
		}
	}
	err := compileErr(t, `
max_direct_response_body_size_bytes: 4
virtual_hosts:
- {name: vh, domains: ["*"], routes: [{match: {path: /s}, direct_response: {status: 200, body: {inline_string: hello}}}]}`)
	if err == nil || !strings.Contains(err.Error(), "virtual_hosts[0].routes[0].direct_response.body: response body size is 5 bytes; maximum is 4") {
		t.Errorf("size limit: %v", err)
	}
	err = compileErr(t, `
virtual_hosts:
- {name: vh, domains: ["*"], routes: [{match: {path: /s}, direct_response: {status: 200, body: {inline_string: "`+strings.Repeat("x", 4097)+`"}}}]}`)
	if err == nil || !strings.Contains(err.Error(), "maximum is 4096") {
		t.Errorf("default size limit: %v", err)
	}
	err = compileErr(t, `
virtual_hosts:
- {name: vh, domains: ["*"], routes: [{match: {path: /s}, direct_response: {status: 200, body: {filename: /x}}}]}`)
	if err == nil || !strings.Contains(err.Error(), "direct_response.body.filename: reading \"/x\" needs CompileOptions.ReadFile") {
		t.Errorf("filename without ReadFile: %v", err)
	}
}
