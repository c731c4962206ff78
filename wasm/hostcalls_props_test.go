package wasm_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// Properties, foreign functions, WASI (README §4: Properties, Foreign
// functions, WASI), and the shared data and metric cases the package's own
// contract tests (shareddata_test.go, metrics_test.go, queues_test.go) do
// not assert.

// hcStreamInfo is what the data plane knows about a test stream.
func hcStreamInfo() *wasm.StreamInfo {
	return &wasm.StreamInfo{
		SourceAddress:      netip.MustParseAddrPort("127.0.0.1:54321"),
		DestinationAddress: netip.MustParseAddrPort("10.0.0.1:8080"),
		DownstreamTLS:      &wasm.TLSInfo{PeerCertificatePresented: true},
		Node:               &corev3.Node{Id: "node-1", Cluster: "mesh"},
		ClusterName:        "cluster-a",
		RouteName:          "route-a",
	}
}

// hcRunWithInfo runs each case with a fresh StreamInfo, which check may
// inspect through info.
func hcRunWithInfo(t *testing.T, h *wasmtest.Harness, cases []hcCase, check func(t *testing.T, c hcCase, info *wasm.StreamInfo)) {
	t.Helper()
	for _, c := range cases {
		info := hcStreamInfo()
		hcRun(t, h, []hcCase{c}, wasmtest.WithProperties(info))
		if check != nil {
			t.Run(c.label()+" stream info", func(t *testing.T) { check(t, c, info) })
		}
	}
}

func TestHostcallsProperties(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{
		VM:     wasm.VMConfig{ID: "hc-vm"},
		Plugin: wasm.PluginConfig{Name: "hostcalls-plugin", RootID: "hc-root"},
	})
	get := func(path, as string) []string {
		hdrs := []string{"x-prop-path", path}
		if as != "" {
			hdrs = append(hdrs, "x-prop-as", as)
		}
		return hdrs
	}
	reqHeaders := ":method=GET\n:path=/t/properties/request_headers\n:authority=example.com\n:scheme=http\nx-multi=a,b"
	cases := []hcCase{
		{path: "/t/properties/request_path", status: 200, body: "/t/properties/request_path"},
		{path: "/t/properties/request_path?a=b", status: 200, body: "/t/properties/request_path?a=b"},
		{path: "/t/properties/request_method", status: 200, body: "GET"},
		// A repeated header is one entry, its values joined with ","
		// (Envoy's CEL view of a header map).
		{path: "/t/properties/request_headers", hdrs: []string{"x-multi", "a", "x-multi", "b"}, status: 200, body: reqHeaders},
		{path: "/t/properties/request_header", hdrs: []string{"x-name", "x-foo", "x-foo", "bar"}, status: 200, body: "bar"},
		// The name is one path segment even with dots in it.
		{path: "/t/properties/request_header", hdrs: []string{"x-name", "x.dotted", "x.dotted", "yes"}, status: 200, body: "yes"},
		{path: "/t/properties/request_header", hdrs: []string{"x-name", "x-absent"}, status: 500, body: "proxy_get_property status=1"},
		{path: "/t/properties/request_header", status: 400, body: "missing request header x-name"},
		{path: "/t/properties/source_address", status: 200, body: "127.0.0.1:54321"},
		{path: "/t/properties/destination_port", status: 200, body: "8080"},
		{path: "/t/properties/node_id", status: 200, body: "node-1"},
		{path: "/t/properties/plugin_name", status: 200, body: "hostcalls-plugin"},
		{path: "/t/properties/plugin_root_id", status: 200, body: "hc-root"},
		{path: "/t/properties/plugin_vm_id", status: 200, body: "hc-vm"},
		{path: "/t/properties/cluster_name", status: 200, body: "cluster-a"},
		{path: "/t/properties/route_name", status: 200, body: "route-a"},
		{path: "/t/properties/get", hdrs: get("request.headers.x-foo", ""), status: 500, body: "proxy_get_property status=1"},
		{path: "/t/properties/get", hdrs: append(get("request.headers.x-foo", "raw"), "x-foo", "bar"), status: 200, body: "bar"},
		{path: "/t/properties/get", hdrs: get("node.cluster", ""), status: 200, body: "mesh"},
		{path: "/t/properties/get", hdrs: get("destination.port", "int"), status: 200, body: "8080"},
		{path: "/t/properties/get", hdrs: get("connection.mtls", "bool"), status: 200, body: "true"},
		// 54321 as 8 little-endian bytes.
		{path: "/t/properties/get", hdrs: get("source.port", "hex"), status: 200, body: "31d4000000000000"},
		{path: "/t/properties/get", hdrs: append(get("request.headers", "map"), "x-multi", "a"), status: 200,
			body: ":method=GET\n:path=/t/properties/get\n:authority=example.com\n:scheme=http\nx-prop-path=request.headers\nx-prop-as=map\nx-multi=a"},
		{path: "/t/properties/get", hdrs: get("request.path", "int"), status: 500, body: "property size=17, expected 8"},
		{path: "/t/properties/get", hdrs: get("destination.port", "bool"), status: 500, body: "property size=8, expected 1"},
		{path: "/t/properties/get", hdrs: get("hostcalls.nothing", ""), status: 500, body: "proxy_get_property status=1"},
		{path: "/t/properties/get", hdrs: get("request.path", "json"), status: 400, body: "bad request header x-prop-as"},
		{path: "/t/properties/get", status: 400, body: "missing request header x-prop-path"},
		{path: "/t/properties/missing", status: 200, body: "ok"},
		// README §7: the module sets "wasm" "hostcalls_user". This host takes
		// "wasm" as an ordinary first segment: the value is stored under
		// filter state "wasm.wasm\x00hostcalls_user" and the same path reads
		// it back.
		{path: "/t/properties/set_wasm", status: 200, body: "hostcalls-value"},
		{path: "/t/properties/set", hdrs: []string{"x-prop-path", "hc.user", "x-prop-value", "v1"}, status: 200, body: "v1"},
		// A path the host answers itself can be written (Envoy) but reads
		// still give the host's value.
		{path: "/t/properties/set", hdrs: []string{"x-prop-path", "request.path", "x-prop-value", "/other"}, status: 200, body: "/t/properties/set"},
		{path: "/t/properties/set", hdrs: []string{"x-prop-path", "hc.user"}, status: 400, body: "missing request header x-prop-value"},
		{path: "/t/properties/response_code", x: wasmtest.Exchange{ResponseHeaders: []string{":status", "200"}},
			logs: []hcLine{hcInfo("hostcalls: properties/response_code: 200")}},
		{path: "/t/properties/response_code", x: wasmtest.Exchange{ResponseHeaders: []string{":status", "503"}},
			logs: []hcLine{hcInfo("hostcalls: properties/response_code: 503")}},
	}
	// proxy_set_property writes reach the data plane as filter state
	// "wasm.<path>" (segments joined with NUL), like Envoy's.
	state := map[string][2]string{
		"/t/properties/set_wasm":    {"wasm.wasm\x00hostcalls_user", "hostcalls-value"},
		"/t/properties/set hc.user": {"wasm.hc\x00user", "v1"},
	}
	hcRunWithInfo(t, h, cases, func(t *testing.T, c hcCase, info *wasm.StreamInfo) {
		key := c.path
		if len(c.hdrs) == 4 {
			key += " " + c.hdrs[1]
		}
		want, ok := state[key]
		if !ok {
			return
		}
		if v, ok := info.FilterStateValue(want[0]); !ok || string(v) != want[1] {
			t.Errorf("filter state %q = %q %v, want %q", want[0], v, ok, want[1])
		}
	})
}

func TestHostcallsForeign(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	// SetEnvoyFilterStateArguments{path: "hc.key", value: "v"}.
	setState := "\x0a\x06hc.key\x12\x01v"
	cases := []hcCase{
		{path: "/t/foreign/compress_roundtrip", hdrs: []string{"x-data", "hello hello hello hello"}, status: 200, body: "ok"},
		{path: "/t/foreign/compress_roundtrip", hdrs: []string{"x-data", ""}, status: 200, body: "ok"},
		{path: "/t/foreign/compress_roundtrip", status: 400, body: "missing request header x-data"},
		{path: "/t/foreign/unknown", status: 200, body: "ok"},
		{path: "/t/foreign/clear_route_cache", status: 200, body: "ok",
			check: func(t *testing.T, r wasmtest.Result) {
				hcEvents(t, r.Events, "clear_route_cache", "local_response(200)")
			}},
		// Host-defined statuses: a valid message is OK (any non-empty key;
		// Envoy also wants a registered filter state factory), an empty one
		// names no key (NOT_FOUND), a malformed one is BAD_ARGUMENT.
		{path: "/t/foreign/set_envoy_filter_state", hdrs: []string{"x-data", setState}, status: 200, body: "status=0"},
		{path: "/t/foreign/set_envoy_filter_state", status: 200, body: "status=1"},
		{path: "/t/foreign/set_envoy_filter_state", name: "set_envoy_filter_state malformed", hdrs: []string{"x-data", "\xff"}, status: 200, body: "status=2"},
	}
	hcRunWithInfo(t, h, cases, func(t *testing.T, c hcCase, info *wasm.StreamInfo) {
		if c.path == "/t/foreign/set_envoy_filter_state" && c.body == "status=0" {
			if v, ok := info.FilterStateValue("hc.key"); !ok || string(v) != "v" {
				t.Errorf("filter state hc.key = %q %v, want v", v, ok)
			}
		}
	})
}

func TestHostcallsWASI(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	h := hcHarness(t, wasmtest.Options{
		Runtime: wasm.Options{Now: func() time.Time { return now }},
		VM:      wasm.VMConfig{Env: []wasm.Field{{Key: "HC_ENV", Value: "from-vm-config"}, {Key: "HC_EMPTY", Value: ""}}},
	})
	var mono []uint64
	monotonic := func(t *testing.T, r wasmtest.Result) {
		v, err := strconv.ParseUint(string(r.Local.Body), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		mono = append(mono, v)
	}
	var draws []string
	random := func(t *testing.T, r wasmtest.Result) { draws = append(draws, string(r.Local.Body)) }
	hcRun(t, h, []hcCase{
		// The runtime's clock (Options.Now).
		{path: "/t/wasi/clock_realtime", status: 200, body: strconv.FormatInt(now.UnixNano(), 10)},
		{path: "/t/wasi/clock_monotonic", status: 200, bodyRE: "[0-9]+", check: monotonic},
		{path: "/t/wasi/clock_monotonic", status: 200, bodyRE: "[0-9]+", check: monotonic},
		// Unknown clock ids are EINVAL (28) here, like wazero; the CPU time
		// clocks (2, 3) are NOTSUP.
		{path: "/t/wasi/clock_bad", status: 200, body: "errno=28"},
		{path: "/t/wasi/random", status: 200, bodyRE: "[0-9a-f]{32}", check: random},
		{path: "/t/wasi/random", status: 200, bodyRE: "[0-9a-f]{32}", check: random},
		// The environment is VMConfig.Env.
		{path: "/t/wasi/getenv", hdrs: []string{"x-env", "HC_ENV"}, status: 200, body: "from-vm-config"},
		{path: "/t/wasi/getenv", hdrs: []string{"x-env", "HC_EMPTY"}, status: 200, body: ""},
		{path: "/t/wasi/getenv", hdrs: []string{"x-env", "PATH"}, status: 200, body: "unset"},
		{path: "/t/wasi/getenv", status: 400, body: "missing request header x-env"},
		// fd 1 and 2 are the plugin's log, one line per fd_write without
		// its trailing newline.
		{path: "/t/wasi/stdout", status: 200, body: "ok", logs: []hcLine{hcInfo("hostcalls: wasi/stdout")}},
		{path: "/t/wasi/stderr", status: 200, body: "ok", logs: []hcLine{hcError("hostcalls: wasi/stderr")}},
		{path: "/t/wasi/fd_write", status: 200, body: "ok", logs: []hcLine{hcInfo("hostcalls: wasi/fd_write")}},
		{path: "/t/wasi/fd_write_bad", status: 200, body: "ok", absent: []string{"wasi/fd_write_bad"}},
	})
	if len(mono) == 2 && mono[1] < mono[0] {
		t.Errorf("monotonic clock went back: %v", mono)
	}
	if len(draws) == 2 && draws[0] == draws[1] {
		t.Errorf("two random draws are equal: %v", draws)
	}
	for _, l := range []string{"hostcalls: wasi/stdout", "hostcalls: wasi/stderr", "hostcalls: wasi/fd_write"} {
		if e := h.Logs().Message(l); len(e) != 1 || e[0].Plugin() != "hostcalls" {
			t.Errorf("%q: %v, want one line of plugin hostcalls", l, e)
		}
	}
}

// TestHostcallsSharedDataAndMetrics covers what TestSharedDataHostcallsContract
// and TestMetricsHostcallsContract (package wasm) leave out: the cas header
// of shared/get, custom metric names and the module's input checks.
func TestHostcallsSharedDataAndMetrics(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	casOf := func(key string, want *uint32) func(*testing.T, wasmtest.Result) {
		return func(t *testing.T, r wasmtest.Result) {
			_, cas, ok := h.SharedData(key)
			if !ok {
				t.Fatalf("no shared data %q", key)
			}
			if len(r.Local.Headers) != 1 || r.Local.Headers[0].Key != "x-cas" || r.Local.Headers[0].Value != strconv.FormatUint(uint64(cas), 10) {
				t.Errorf("headers %v, want x-cas: %d", r.Local.Headers, cas)
			}
			if want != nil {
				if *want == cas {
					t.Errorf("cas %d did not change after a set", cas)
				}
				*want = cas
			}
		}
	}
	var cas uint32
	hcRun(t, h, []hcCase{
		{path: "/t/shared/set", hdrs: []string{"x-key", "hc-k", "x-value", "v1"}, status: 200, body: "ok"},
		{path: "/t/shared/get", hdrs: []string{"x-key", "hc-k"}, status: 200, body: "v1", check: casOf("hc-k", &cas)},
		{path: "/t/shared/set", hdrs: []string{"x-key", "hc-k", "x-value", ""}, status: 200, body: "ok"},
		{path: "/t/shared/get", hdrs: []string{"x-key", "hc-k"}, status: 200, body: "", check: casOf("hc-k", &cas)},
		{path: "/t/shared/cas", hdrs: []string{"x-key", "hc-c"}, status: 200, body: "ok"},
		{path: "/t/shared/get", status: 400, body: "missing request header x-key"},
		{path: "/t/shared/set", hdrs: []string{"x-key", "hc-k"}, status: 400, body: "missing request header x-value"},

		{path: "/t/metrics/counter", hdrs: []string{"x-metric", "hc_custom", "x-delta", "3"}, status: 200, body: "3",
			check: func(t *testing.T, r wasmtest.Result) {
				if m, ok := h.Metric("hc_custom", wasm.MetricCounter); !ok || m.Counter != 3 {
					t.Errorf("metric hc_custom %+v %v", m, ok)
				}
			}},
		{path: "/t/metrics/counter", hdrs: []string{"x-delta", "many"}, status: 400, body: "bad request header x-delta"},
		{path: "/t/metrics/gauge", status: 400, body: "missing request header x-value"},
		{path: "/t/metrics/gauge", hdrs: []string{"x-value", "1.5"}, status: 400, body: "bad request header x-value"},
		{path: "/t/metrics/gauge", hdrs: []string{"x-metric", "hc_g", "x-value", "-9223372036854775808"}, status: 200, body: "-9223372036854775808"},
		{path: "/t/metrics/gauge_increment", hdrs: []string{"x-metric", "hc_g", "x-delta", "9223372036854775807"}, status: 200, body: "-1"},
		{path: "/t/metrics/histogram", status: 400, body: "missing request header x-value"},
	})
}
