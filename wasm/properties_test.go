package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The guest-driven tests use testdata/props/props.wasm; its .wat file is
// the contract (request headers x-get, x-set-path, x-ff, x-oob, x-ctx).

type propsEnv struct {
	p    *Plugin
	logs *observer.ObservedLogs
}

// newPropsPlugin starts props.wasm (one instance) with cfg.
func newPropsPlugin(t *testing.T, cfg PluginConfig) (*propsEnv, error) {
	t.Helper()
	code, err := os.ReadFile("testdata/props/props.wasm")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	// Generous deadline: these tests exercise properties and foreign
	// functions (a 16 MiB decompression), not deadlines, and must not
	// flake on a loaded machine.
	vm, err := rt.VM(ctx, VMConfig{ID: "props-vm", Code: code, Instances: 1, CallTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close(ctx) })
	if cfg.Name == "" {
		cfg.Name = "props-plugin"
	}
	p, err := vm.NewPlugin(ctx, cfg)
	if err != nil {
		return &propsEnv{logs: logs}, err
	}
	t.Cleanup(func() { p.Close(ctx) })
	return &propsEnv{p: p, logs: logs}, nil
}

func mustPropsPlugin(t *testing.T, cfg PluginConfig) *propsEnv {
	t.Helper()
	e, err := newPropsPlugin(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// opResult is what props.wasm reported for one operation.
type opResult struct {
	status Status
	value  string
	hasVal bool
}

// run runs one operation on s (request headers kv) and returns its result.
func run(t *testing.T, s *HTTPStream, kv ...string) opResult {
	t.Helper()
	h := NewHeaders(kv...)
	// A stream with a local response pauses; the guest still ran.
	if a := s.OnRequestHeaders(h, false); a != ActionContinue && s.LocalResponse() == nil {
		t.Fatalf("action %d, failure %v", a, s.Failure())
	}
	st, ok := h.Get("x-status")
	if !ok {
		t.Fatalf("no x-status in %s", h)
	}
	n, err := strconv.Atoi(st)
	if err != nil {
		t.Fatalf("x-status %q", st)
	}
	v, has := h.Get("x-value")
	return opResult{status: Status(n), value: v, hasVal: has}
}

func path(segs ...string) string { return string(JoinPropertyPath(segs...)) }

func le64(v int64) string { return string(EncodeInt64(v)) }

func mustMarshal(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := EncodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mustStruct builds a Struct from constant test data.
func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func testMetadata() *corev3.Metadata {
	s := mustStruct(map[string]any{"canary": true, "weight": 3.5, "zone": "z1"})
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.lb": s}}
}

func testNode() *corev3.Node {
	md := mustStruct(map[string]any{"team": "edge", "tags": []any{"a", "b"}})
	return &corev3.Node{Id: "node-1", Cluster: "mesh", Metadata: md, Locality: &corev3.Locality{Region: "eu"}}
}

var testStart = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func testStreamInfo() *StreamInfo {
	return &StreamInfo{
		ConnectionID:        42,
		SourceAddress:       netip.MustParseAddrPort("10.0.0.1:50000"),
		DestinationAddress:  netip.MustParseAddrPort("[::1]:8443"),
		RequestedServerName: "example.com",
		DownstreamTLS: &TLSInfo{
			Version: "TLSv1.3", SubjectPeerCertificate: "CN=client", SubjectLocalCertificate: "CN=server",
			URISanPeerCertificate: []string{"spiffe://a/b", "spiffe://c"}, DNSSanLocalCertificate: []string{"srv.local"},
			SHA256PeerCertificateDigest: "abcd", PeerCertificatePresented: true,
		},
		TerminationDetails:               "idle",
		DownstreamTransportFailureReason: "tls_error",
		StartTime:                        testStart,
		Protocol:                         "HTTP/2",
		Duration:                         1500 * time.Millisecond,
		BytesReceived:                    12,
		BytesSent:                        34,
		ResponseCode:                     201,
		ResponseCodeDetails:              "via_upstream",
		ResponseFlags:                    0x44,
		BackendLatency:                   20 * time.Millisecond,
		UpstreamAddress:                  netip.MustParseAddrPort("192.168.1.9:9000"),
		UpstreamLocalAddress:             netip.MustParseAddrPort("192.168.1.1:40000"),
		UpstreamTLS:                      &TLSInfo{Version: "TLSv1.2", DNSSanPeerCertificate: []string{"backend.svc"}},
		UpstreamLocality:                 &corev3.Locality{Region: "us", Zone: "us-1a"},
		UpstreamTransportFailureReason:   "",
		UpstreamRequestAttemptCount:      2,
		Node:                             testNode(),
		ClusterName:                      "backend",
		ClusterMetadata:                  testMetadata(),
		RouteName:                        "r1",
		RouteMetadata:                    &corev3.Metadata{},
		VirtualHostName:                  "vh1",
		VirtualHostMetadata:              testMetadata(),
		UpstreamHostMetadata:             testMetadata(),
		FilterChainName:                  "fc1",
		ListenerMetadata:                 testMetadata(),
		ListenerDirection:                corev3.TrafficDirection_OUTBOUND,
		DynamicMetadata:                  testMetadata(),
		FilterState:                      map[string][]byte{"envoy.string": []byte("sv"), "wasm.shared": []byte("from-dp")},
	}
}

var testRequestHeaders = []string{
	":method", "GET",
	":path", "/a/b?x=1&y=2#frag",
	":authority", "example.com",
	":scheme", "https",
	"referer", "http://ref/",
	"user-agent", "ua/1",
	"x-request-id", "rid-7",
	"content-length", "12",
	"x-multi", "a",
	"x-multi", "b",
}

func pairs(kv ...string) string {
	var f []Field
	for k := 0; k+1 < len(kv); k += 2 {
		f = append(f, Field{Key: kv[k], Value: kv[k+1]})
	}
	return string(SerializePairs(f))
}

// TestGetPropertyHTTP reads every property once from a stream context
// through the guest.
func TestGetPropertyHTTP(t *testing.T) {
	si := testStreamInfo()
	e := mustPropsPlugin(t, PluginConfig{Name: "props-plugin", RootID: "root-1"})
	md := testMetadata()
	node := testNode()

	type tc struct {
		name   string
		path   string
		status Status
		value  string
		// resp sets the stream's response maps (and local response).
		resp func(s *HTTPStream)
		// noInfo runs without StreamOptions.Properties.
		noInfo bool
	}
	reqHeadersFor := func(p string) []string {
		return append(append([]string{}, testRequestHeaders...), "x-get", p)
	}
	headerBytes := func(p string) int64 {
		return int64(headersBytes(NewHeaders(reqHeadersFor(p)...)))
	}
	hdrsPath := path("request", "headers")
	cases := []tc{
		{name: "plugin_name", path: "plugin_name", value: "props-plugin"},
		{name: "plugin_root_id", path: "plugin_root_id", value: "root-1"},
		{name: "plugin_vm_id", path: "plugin_vm_id", value: "props-vm"},
		{name: "trailing NUL", path: "plugin_name\x00", value: "props-plugin"},
		{name: "string has no fields", path: path("plugin_name", "x"), status: StatusNotFound},
		{name: "request.path", path: path("request", "path"), value: "/a/b?x=1&y=2#frag"},
		{name: "request.url_path", path: path("request", "url_path"), value: "/a/b"},
		{name: "request.host", path: path("request", "host"), value: "example.com"},
		{name: "request.scheme", path: path("request", "scheme"), value: "https"},
		{name: "request.method", path: path("request", "method"), value: "GET"},
		{name: "request.referer", path: path("request", "referer"), value: "http://ref/"},
		{name: "request.useragent", path: path("request", "useragent"), value: "ua/1"},
		{name: "request.id", path: path("request", "id"), value: "rid-7"},
		{name: "request.query", path: path("request", "query"), value: "x=1&y=2"},
		{name: "request.headers", path: hdrsPath, value: pairs(
			":method", "GET", ":path", "/a/b?x=1&y=2#frag", ":authority", "example.com", ":scheme", "https",
			"referer", "http://ref/", "user-agent", "ua/1", "x-request-id", "rid-7", "content-length", "12",
			"x-multi", "a,b", "x-get", hdrsPath)},
		{name: "request.headers.name", path: path("request", "headers", "x-multi"), value: "a,b"},
		{name: "request.headers.Name", path: path("request", "headers", "User-Agent"), value: "ua/1"},
		{name: "request.headers.pseudo", path: path("request", "headers", ":method"), value: "GET"},
		{name: "request.headers.missing", path: path("request", "headers", "x-none"), status: StatusNotFound},
		{name: "request.headers.invalid name", path: path("request", "headers", "bad name"), status: StatusNotFound},
		{name: "request.headers_bytes", path: path("request", "headers_bytes"), value: le64(headerBytes(path("request", "headers_bytes")))},
		{name: "request.size from content-length", path: path("request", "size"), value: le64(12)},
		{name: "request.total_size", path: path("request", "total_size"), value: le64(12 + headerBytes(path("request", "total_size")))},
		{name: "request.total_size without data plane", path: path("request", "total_size"), noInfo: true, status: StatusNotFound},
		{name: "request.time", path: path("request", "time"), value: le64(testStart.UnixNano())},
		{name: "request.time without data plane", path: path("request", "time"), noInfo: true, status: StatusNotFound},
		{name: "request.protocol", path: path("request", "protocol"), value: "HTTP/2"},
		{name: "request.duration", path: path("request", "duration"), value: le64(int64(1500 * time.Millisecond))},
		{name: "request bare", path: "request", status: StatusSerializationFailure},
		{name: "request unknown field", path: path("request", "nope"), status: StatusNotFound},
		{name: "dotted path is one segment", path: "request.path", status: StatusNotFound},
		{name: "empty path", path: "", status: StatusNotFound},
		{name: "empty segment", path: path("", "path"), status: StatusNotFound},

		{name: "response.code from data plane", path: path("response", "code"), value: le64(201)},
		{name: "response.code from :status", path: path("response", "code"), value: le64(404),
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "404") }},
		{name: "response.code from local response", path: path("response", "code"), value: le64(403), noInfo: true,
			resp: func(s *HTTPStream) { s.local = &LocalResponse{StatusCode: 403, Details: "denied", GRPCStatus: -1} }},
		{name: "response.code unknown", path: path("response", "code"), noInfo: true, status: StatusNotFound},
		{name: "response.code_details from data plane", path: path("response", "code_details"), value: "via_upstream"},
		{name: "response.code_details from local response", path: path("response", "code_details"), value: "denied",
			resp: func(s *HTTPStream) { s.local = &LocalResponse{StatusCode: 403, Details: "denied", GRPCStatus: -1} }},
		{name: "response.flags", path: path("response", "flags"), value: le64(0x44)},
		{name: "response.grpc_status from trailers", path: path("response", "grpc_status"), value: le64(5),
			resp: func(s *HTTPStream) {
				s.respHeaders = NewHeaders(":status", "200", "grpc-status", "3")
				s.respTrailers = NewHeaders("grpc-status", "5")
			}},
		{name: "response.grpc_status from headers", path: path("response", "grpc_status"), value: le64(3),
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "200", "grpc-status", "3") }},
		{name: "response.grpc_status invalid", path: path("response", "grpc_status"), value: le64(-1),
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "200", "grpc-status", "99") }},
		{name: "response.grpc_status from local response", path: path("response", "grpc_status"), value: le64(14),
			resp: func(s *HTTPStream) { s.local = &LocalResponse{StatusCode: 503, GRPCStatus: 14} }},
		{name: "response.grpc_status mapped from code", path: path("response", "grpc_status"), value: le64(12),
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "404") }},
		{name: "response.grpc_status mapped from data plane code", path: path("response", "grpc_status"), value: le64(2)},
		{name: "response.headers", path: path("response", "headers"), value: pairs(":status", "200", "x-r", "1,2"),
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "200", "x-r", "1", "x-r", "2") }},
		{name: "response.headers before the response", path: path("response", "headers"), value: pairs()},
		{name: "response.headers.name", path: path("response", "headers", "x-r"), value: "1,2",
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "200", "x-r", "1", "x-r", "2") }},
		{name: "response.headers_bytes", path: path("response", "headers_bytes"), value: le64(int64(len(":status200"))),
			resp: func(s *HTTPStream) { s.respHeaders = NewHeaders(":status", "200") }},
		{name: "response.trailers", path: path("response", "trailers"), value: pairs("grpc-status", "0"),
			resp: func(s *HTTPStream) { s.respTrailers = NewHeaders("grpc-status", "0") }},
		{name: "response.trailers.name", path: path("response", "trailers", "grpc-status"), value: "0",
			resp: func(s *HTTPStream) { s.respTrailers = NewHeaders("grpc-status", "0") }},
		{name: "response.size", path: path("response", "size"), value: le64(34)},
		{name: "response.size without data plane", path: path("response", "size"), noInfo: true, status: StatusNotFound},
		{name: "response.total_size", path: path("response", "total_size"), value: le64(34 + int64(len(":status200")) + int64(len("grpc-status0"))),
			resp: func(s *HTTPStream) {
				s.respHeaders = NewHeaders(":status", "200")
				s.respTrailers = NewHeaders("grpc-status", "0")
			}},
		{name: "response.backend_latency", path: path("response", "backend_latency"), value: le64(int64(20 * time.Millisecond))},
		{name: "response bare", path: "response", status: StatusSerializationFailure},

		{name: "connection.id", path: path("connection", "id"), value: string(EncodeUint64(42))},
		{name: "connection_id", path: "connection_id", value: string(EncodeUint64(42))},
		{name: "connection.mtls", path: path("connection", "mtls"), value: "\x01"},
		{name: "connection.requested_server_name", path: path("connection", "requested_server_name"), value: "example.com"},
		{name: "connection.tls_version", path: path("connection", "tls_version"), value: "TLSv1.3"},
		{name: "connection.subject_local_certificate", path: path("connection", "subject_local_certificate"), value: "CN=server"},
		{name: "connection.subject_peer_certificate", path: path("connection", "subject_peer_certificate"), value: "CN=client"},
		{name: "connection.uri_san_peer_certificate", path: path("connection", "uri_san_peer_certificate"), value: "spiffe://a/b"},
		{name: "connection.uri_san_local_certificate", path: path("connection", "uri_san_local_certificate"), status: StatusNotFound},
		{name: "connection.dns_san_local_certificate", path: path("connection", "dns_san_local_certificate"), value: "srv.local"},
		{name: "connection.dns_san_peer_certificate", path: path("connection", "dns_san_peer_certificate"), status: StatusNotFound},
		{name: "connection.sha256_peer_certificate_digest", path: path("connection", "sha256_peer_certificate_digest"), value: "abcd"},
		{name: "connection.termination_details", path: path("connection", "termination_details"), value: "idle"},
		{name: "connection.transport_failure_reason", path: path("connection", "transport_failure_reason"), value: "tls_error"},
		{name: "connection bare", path: "connection", status: StatusSerializationFailure},
		{name: "connection without data plane", path: path("connection", "id"), noInfo: true, status: StatusNotFound},
		{name: "source.address", path: path("source", "address"), value: "10.0.0.1:50000"},
		{name: "source.port", path: path("source", "port"), value: le64(50000)},
		{name: "destination.address", path: path("destination", "address"), value: "[::1]:8443"},
		{name: "destination.port", path: path("destination", "port"), value: le64(8443)},
		{name: "upstream.address", path: path("upstream", "address"), value: "192.168.1.9:9000"},
		{name: "upstream.port", path: path("upstream", "port"), value: le64(9000)},
		{name: "upstream.local_address", path: path("upstream", "local_address"), value: "192.168.1.1:40000"},
		{name: "upstream.locality", path: path("upstream", "locality"), value: mustMarshal(t, &corev3.Locality{Region: "us", Zone: "us-1a"})},
		{name: "upstream.locality.zone", path: path("upstream", "locality", "zone"), value: "us-1a"},
		{name: "upstream.transport_failure_reason", path: path("upstream", "transport_failure_reason"), value: ""},
		{name: "upstream.request_attempt_count", path: path("upstream", "request_attempt_count"), value: string(EncodeUint64(2))},
		{name: "upstream.tls_version", path: path("upstream", "tls_version"), value: "TLSv1.2"},
		{name: "upstream.dns_san_peer_certificate", path: path("upstream", "dns_san_peer_certificate"), value: "backend.svc"},
		{name: "xds.node", path: path("xds", "node"), value: mustMarshal(t, node)},
		{name: "node", path: "node", value: mustMarshal(t, node)},
		{name: "node.id", path: path("node", "id"), value: "node-1"},
		{name: "xds.node.metadata", path: path("xds", "node", "metadata"), value: pairs("tags", pairs("a", "", "b", ""), "team", "edge")},
		{name: "node.metadata.tags.1", path: path("node", "metadata", "tags", "1"), value: "b"},
		{name: "node.metadata.tags.2", path: path("node", "metadata", "tags", "2"), status: StatusNotFound},
		{name: "node.no_such_field", path: path("node", "no_such_field"), status: StatusNotFound},
		{name: "xds.cluster_name", path: path("xds", "cluster_name"), value: "backend"},
		{name: "cluster_name", path: "cluster_name", value: "backend"},
		{name: "xds.cluster_metadata", path: path("xds", "cluster_metadata"), value: mustMarshal(t, md)},
		{name: "cluster_metadata.filter_metadata.envoy.lb.canary", path: path("cluster_metadata", "filter_metadata", "envoy.lb", "canary"), value: "\x01"},
		{name: "cluster_metadata...weight", path: path("xds", "cluster_metadata", "filter_metadata", "envoy.lb", "weight"), value: string(EncodeFloat64(3.5))},
		{name: "cluster_metadata.filter_metadata", path: path("cluster_metadata", "filter_metadata"),
			value: pairs("envoy.lb", pairs("canary", "\x01", "weight", string(EncodeFloat64(3.5)), "zone", "z1"))},
		{name: "xds.route_name", path: path("xds", "route_name"), value: "r1"},
		{name: "route_name", path: "route_name", value: "r1"},
		{name: "xds.route_metadata", path: path("xds", "route_metadata"), value: ""},
		{name: "route_metadata", path: "route_metadata", value: ""},
		{name: "xds.virtual_host_name", path: path("xds", "virtual_host_name"), value: "vh1"},
		{name: "xds.virtual_host_metadata", path: path("xds", "virtual_host_metadata"), value: mustMarshal(t, md)},
		{name: "xds.upstream_host_metadata", path: path("xds", "upstream_host_metadata"), value: mustMarshal(t, md)},
		{name: "upstream_host_metadata", path: "upstream_host_metadata", value: mustMarshal(t, md)},
		{name: "xds.filter_chain_name", path: path("xds", "filter_chain_name"), value: "fc1"},
		{name: "xds.listener_metadata", path: path("xds", "listener_metadata"), value: mustMarshal(t, md)},
		{name: "listener_metadata", path: "listener_metadata", value: mustMarshal(t, md)},
		{name: "xds.listener_direction", path: path("xds", "listener_direction"), value: le64(2)},
		{name: "listener_direction", path: "listener_direction", value: le64(2)},
		{name: "xds bare", path: "xds", status: StatusSerializationFailure},
		{name: "metadata", path: "metadata", value: mustMarshal(t, md)},
		{name: "filter_state from data plane", path: path("filter_state", "envoy.string"), value: "sv"},
		{name: "filter_state missing", path: path("filter_state", "nope"), status: StatusNotFound},
		{name: "filter_state bare", path: "filter_state", status: StatusSerializationFailure},
		{name: "user property from data plane filter state", path: "shared", value: "from-dp"},
		{name: "unknown", path: "no_such_property", status: StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := StreamOptions{Properties: si}
			if c.noInfo {
				opts.Properties = nil
			}
			s := e.p.NewHTTPStream(opts)
			defer s.Close()
			if c.resp != nil {
				c.resp(s)
			}
			r := run(t, s, reqHeadersFor(c.path)...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d (value %q)", r.status, c.status, r.value)
			}
			if c.status == StatusOK && r.value != c.value {
				t.Fatalf("value\n got %q\nwant %q", r.value, c.value)
			}
			if c.status != StatusOK && r.hasVal {
				t.Fatalf("x-value %q with status %d", r.value, r.status)
			}
		})
	}
}

// TestGetPropertyRootContext reads properties with the root context as the
// effective context, and checks the root-context reads of start-up.
func TestGetPropertyRootContext(t *testing.T) {
	pluginInfo := &StreamInfo{Node: testNode(), ListenerDirection: corev3.TrafficDirection_INBOUND, ConnectionID: 9}
	e := mustPropsPlugin(t, PluginConfig{Name: "root-plugin", RootID: "", Properties: pluginInfo})
	if n := e.logs.FilterMessage("props: plugin_name=root-plugin").Len(); n != 1 {
		t.Fatalf("proxy_on_configure logged plugin_name %d times; logs: %v", n, e.logs.All())
	}
	cases := []struct {
		path   string
		status Status
		value  string
	}{
		{"plugin_root_id", StatusOK, ""},
		{"plugin_name", StatusOK, "root-plugin"},
		{"plugin_vm_id", StatusOK, "props-vm"},
		{path("node", "id"), StatusOK, "node-1"},
		{path("xds", "node", "cluster"), StatusOK, "mesh"},
		{"listener_direction", StatusOK, le64(1)},
		{path("request", "path"), StatusNotFound, ""},
		{path("response", "code"), StatusNotFound, ""},
		{"request", StatusNotFound, ""},
		{path("connection", "id"), StatusNotFound, ""},
		{"connection_id", StatusNotFound, ""},
		{path("source", "address"), StatusNotFound, ""},
		{"filter_state", StatusNotFound, ""},
		{"xds", StatusSerializationFailure, ""},
		{"nope", StatusNotFound, ""},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.path, "\x00", "."), func(t *testing.T) {
			s := e.p.NewHTTPStream(StreamOptions{Properties: testStreamInfo()})
			defer s.Close()
			r := run(t, s, ":path", "/stream", "x-ctx", "root", "x-get", c.path)
			if r.status != c.status || (c.status == StatusOK && r.value != c.value) {
				t.Fatalf("got %d %q, want %d %q", r.status, r.value, c.status, c.value)
			}
		})
	}
}

// TestGetPropertyTCP reads properties from a TCP stream context.
func TestGetPropertyTCP(t *testing.T) {
	e := mustPropsPlugin(t, PluginConfig{RootID: "tcp"})
	cases := []struct {
		path string
		want string
	}{
		{"plugin_root_id", "0:tcp"},
		{path("connection", "id"), "0:" + string(EncodeUint64(42))},
		{path("source", "port"), "0:" + le64(50000)},
		{path("request", "path"), "1:"},
		{path("request", "headers"), "0:" + pairs()},
		{path("request", "protocol"), "0:HTTP/2"},
		{path("response", "trailers"), "0:" + pairs()},
		{"request", "3:"},
		{"nope", "1:"},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.path, "\x00", "."), func(t *testing.T) {
			s := e.p.NewTCPStream(StreamOptions{Properties: testStreamInfo()})
			defer s.Close()
			if a := s.OnNewConnection(); a != ActionContinue {
				t.Fatalf("action %d: %v", a, s.Failure())
			}
			out, a := s.OnDownstreamData([]byte(c.path), false)
			if a != ActionContinue {
				t.Fatalf("action %d: %v", a, s.Failure())
			}
			if string(out) != c.want {
				t.Fatalf("got %q, want %q", out, c.want)
			}
		})
	}
}

// refusingProps implements PropertySetter and refuses every write.
type refusingProps struct{}

func (refusingProps) GetProperty([]string) ([]byte, bool) { return nil, false }
func (refusingProps) SetProperty([]string, []byte) bool   { return false }

// TestSetProperty writes properties and reads them back.
func TestSetProperty(t *testing.T) {
	e := mustPropsPlugin(t, PluginConfig{RootID: "root-1"})
	set := func(t *testing.T, s *HTTPStream, p, v string, kv ...string) Status {
		t.Helper()
		return run(t, s, append([]string{"x-set-path", p, "x-set-value", v}, kv...)...).status
	}
	get := func(t *testing.T, s *HTTPStream, p string, kv ...string) opResult {
		t.Helper()
		return run(t, s, append([]string{":path", "/orig", "x-get", p}, kv...)...)
	}
	expect := func(t *testing.T, r opResult, st Status, v string) {
		t.Helper()
		if r.status != st || (st == StatusOK && r.value != v) {
			t.Fatalf("got %d %q, want %d %q", r.status, r.value, st, v)
		}
	}

	t.Run("set then get", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		if st := set(t, s, "my_prop", "v1"); st != StatusOK {
			t.Fatalf("set: %d", st)
		}
		expect(t, get(t, s, "my_prop"), StatusOK, "v1")
		expect(t, get(t, s, path("filter_state", "wasm.my_prop")), StatusOK, "v1")
		if st := set(t, s, "my_prop", "v2"); st != StatusOK {
			t.Fatalf("overwrite: %d", st)
		}
		expect(t, get(t, s, "my_prop"), StatusOK, "v2")
		if st := set(t, s, "bin", "\x00\xff\x01"); st != StatusOK {
			t.Fatalf("set binary: %d", st)
		}
		expect(t, get(t, s, "bin"), StatusOK, "\x00\xff\x01")
		if st := set(t, s, "empty", ""); st != StatusOK {
			t.Fatalf("set empty: %d", st)
		}
		expect(t, get(t, s, "empty"), StatusOK, "")
		fs := s.FilterState()
		if string(fs["wasm.my_prop"]) != "v2" || len(fs) != 3 {
			t.Fatalf("FilterState() = %q", fs)
		}
	})
	t.Run("multi-segment path", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		if st := set(t, s, path("a", "b"), "ab"); st != StatusOK {
			t.Fatalf("set: %d", st)
		}
		expect(t, get(t, s, path("a", "b")), StatusOK, "ab")
		expect(t, get(t, s, "a"), StatusNotFound, "")
		if v := s.FilterState()["wasm.a\x00b"]; string(v) != "ab" {
			t.Fatalf("FilterState()[wasm.a\\0b] = %q", v)
		}
	})
	t.Run("host-owned paths are shadowed", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		if st := set(t, s, "plugin_root_id", "evil"); st != StatusOK {
			t.Fatalf("set plugin_root_id: %d (Envoy answers OK)", st)
		}
		expect(t, get(t, s, "plugin_root_id"), StatusOK, "root-1")
		expect(t, get(t, s, path("filter_state", "wasm.plugin_root_id")), StatusOK, "evil")
		if st := set(t, s, path("request", "path"), "/evil"); st != StatusOK {
			t.Fatalf("set request.path: %d", st)
		}
		expect(t, get(t, s, path("request", "path")), StatusOK, "/orig")
	})
	t.Run("streams are isolated", func(t *testing.T) {
		a := e.p.NewHTTPStream(StreamOptions{})
		defer a.Close()
		b := e.p.NewHTTPStream(StreamOptions{})
		defer b.Close()
		if st := set(t, a, "iso", "a"); st != StatusOK {
			t.Fatalf("set: %d", st)
		}
		expect(t, get(t, b, "iso"), StatusNotFound, "")
	})
	t.Run("root context store", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		if st := set(t, s, "root_prop", "r", "x-ctx", "root"); st != StatusOK {
			t.Fatalf("set in root: %d", st)
		}
		expect(t, get(t, s, "root_prop", "x-ctx", "root"), StatusOK, "r")
		expect(t, get(t, s, "root_prop"), StatusNotFound, "")
	})
	t.Run("empty path", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		if st := set(t, s, "", "v"); st != StatusBadArgument {
			t.Fatalf("set empty path: %d", st)
		}
	})
	t.Run("value cap", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		if st := set(t, s, "big", strings.Repeat("x", maxPropertyBytes)); st != StatusBadArgument {
			t.Fatalf("set 4 MiB value: %d", st)
		}
		expect(t, get(t, s, "big"), StatusNotFound, "")
		if st := set(t, s, "big", strings.Repeat("x", 1<<20)); st != StatusOK {
			t.Fatalf("set 1 MiB value: %d", st)
		}
	})
	t.Run("shared StreamInfo shares filter state", func(t *testing.T) {
		si := &StreamInfo{}
		a := e.p.NewHTTPStream(StreamOptions{Properties: si})
		defer a.Close()
		if st := set(t, a, "shared_prop", "sv"); st != StatusOK {
			t.Fatalf("set: %d", st)
		}
		if v, ok := si.FilterStateValue("wasm.shared_prop"); !ok || string(v) != "sv" {
			t.Fatalf("StreamInfo filter state = %q %v", v, ok)
		}
		// Another filter on the same request (another plugin's stream in
		// the data plane) sees it through the shared StreamInfo.
		b := e.p.NewHTTPStream(StreamOptions{Properties: si})
		defer b.Close()
		expect(t, get(t, b, "shared_prop"), StatusOK, "sv")
		expect(t, get(t, b, path("filter_state", "wasm.shared_prop")), StatusOK, "sv")
	})
	t.Run("setter refuses", func(t *testing.T) {
		s := e.p.NewHTTPStream(StreamOptions{Properties: refusingProps{}})
		defer s.Close()
		if st := set(t, s, "p", "v"); st != StatusBadArgument {
			t.Fatalf("set: %d", st)
		}
		expect(t, get(t, s, "p"), StatusNotFound, "")
		if len(s.FilterState()) != 0 {
			t.Fatalf("FilterState() = %q", s.FilterState())
		}
	})
}

// TestPropStateCaps checks the per-context entry cap.
func TestPropStateCaps(t *testing.T) {
	var p propState
	for k := 0; k < maxPropertyEntries; k++ {
		if !p.charge(1, 1) {
			t.Fatalf("entry %d refused", k)
		}
	}
	if p.charge(1, 1) {
		t.Fatal("entry past the cap accepted")
	}
	if !p.charge(-1, -1) || !p.charge(1, 1) {
		t.Fatal("refund did not free an entry")
	}
	var q propState
	if q.charge(maxPropertyBytes+1, 1) || !q.charge(maxPropertyBytes, 1) {
		t.Fatal("byte cap")
	}
}

// TestPropertyOutOfBounds makes every pointer argument of the property and
// foreign-function calls point outside guest memory.
func TestPropertyOutOfBounds(t *testing.T) {
	e := mustPropsPlugin(t, PluginConfig{})
	for _, c := range []struct{ letter, what string }{
		{"a", "get: path wraps"},
		{"b", "get: path size past memory"},
		{"c", "get: return pointer slot"},
		{"d", "get: return size slot"},
		{"e", "get: return slot, missing property"},
		{"f", "set: path wraps"},
		{"g", "set: value past memory"},
		{"h", "foreign: name wraps"},
		{"i", "foreign: arguments past memory"},
		{"j", "foreign: return pointer slot"},
		{"k", "foreign: return size slot"},
		{"l", "foreign: unknown name, return slot"},
	} {
		t.Run(c.what, func(t *testing.T) {
			s := e.p.NewHTTPStream(StreamOptions{Properties: testStreamInfo()})
			defer s.Close()
			r := run(t, s, "x-oob", c.letter)
			if r.status != StatusInvalidMemoryAccess {
				t.Fatalf("status %d, want %d", r.status, StatusInvalidMemoryAccess)
			}
			if len(s.FilterState()) != 0 {
				t.Fatalf("side effect: %q", s.FilterState())
			}
		})
	}
}

// TestPropertiesConcurrent reads properties from many streams on many
// goroutines while the data plane updates the shared StreamInfo.
func TestPropertiesConcurrent(t *testing.T) {
	code, err := os.ReadFile("testdata/props/props.wasm")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	vm, err := rt.VM(ctx, VMConfig{ID: "c", Code: code, Instances: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(ctx)
	p, err := vm.NewPlugin(ctx, PluginConfig{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	si := testStreamInfo()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for n := int64(0); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			si.Update(func(s *StreamInfo) { s.BytesSent = n })
		}
	}()
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < 25; n++ {
				s := p.NewHTTPStream(StreamOptions{Properties: si})
				h := NewHeaders("x-set-path", "k", "x-set-value", strconv.Itoa(g))
				s.OnRequestHeaders(h, false)
				h2 := NewHeaders("x-get", path("response", "size"))
				s.OnRequestHeaders(h2, false)
				if st, _ := h.Get("x-status"); st != "0" {
					errs <- "set status " + st
				}
				if v, _ := h2.Get("x-value"); len(v) != 8 {
					errs <- "response.size " + strconv.Quote(v)
				}
				s.Close()
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestSplitPropertyPath(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a\x00", []string{"a"}},
		{"\x00", []string{""}},
		{"a\x00b", []string{"a", "b"}},
		{"a\x00\x00b", []string{"a", "", "b"}},
		{"a\x00\x00", []string{"a", ""}},
		{"request.path", []string{"request.path"}},
	} {
		got := SplitPropertyPath([]byte(c.in))
		if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("SplitPropertyPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, s := parsePropertyPath(make([]byte, maxPropertyPathBytes+1)); s != StatusBadArgument {
		t.Errorf("over-long path: %d", s)
	}
}

func TestEncoders(t *testing.T) {
	ts := time.Unix(1, 5)
	for _, c := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"int64", EncodeInt64(-2), []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"uint64", EncodeUint64(258), []byte{2, 1, 0, 0, 0, 0, 0, 0}},
		{"float64", EncodeFloat64(1.5), binary.LittleEndian.AppendUint64(nil, math.Float64bits(1.5))},
		{"true", EncodeBool(true), []byte{1}},
		{"false", EncodeBool(false), []byte{0}},
		{"duration", EncodeDuration(3 * time.Microsecond), EncodeInt64(3000)},
		{"timestamp", EncodeTimestamp(ts), EncodeInt64(1_000_000_005)},
		{"map", EncodeMap([]Field{{Key: "k", Value: "v"}}), []byte("\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00k\x00v\x00")},
		{"list", EncodeList([]string{"a", "bc"}), []byte("\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00a\x00\x00bc\x00\x00")},
		{"empty list", EncodeList(nil), []byte{0, 0, 0, 0}},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: got %x, want %x", c.name, c.got, c.want)
		}
	}
	if v, ok := DecodeInt64(EncodeInt64(-77)); !ok || v != -77 {
		t.Errorf("DecodeInt64 round trip: %d %v", v, ok)
	}
	if _, ok := DecodeInt64([]byte{1}); ok {
		t.Error("DecodeInt64 accepted 1 byte")
	}
	if b, err := EncodeMessage(&corev3.Locality{Region: "r"}); err != nil || string(b) != "\x0a\x01r" {
		t.Errorf("EncodeMessage = %x, %v", b, err)
	}
}

// TestResolvePropertyValues covers the value model: well-known types,
// lists, maps, nulls.
func TestResolvePropertyValues(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{
		"n": nil, "num": 2.0, "s": "x", "b": false,
		"l": []any{"p", 1.0}, "o": map[string]any{"k": "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := unwrapMessage(st.ProtoReflect())
	for _, c := range []struct {
		path   []string
		status Status
		want   string
	}{
		{[]string{"s"}, StatusOK, "x"},
		{[]string{"num"}, StatusOK, string(EncodeFloat64(2))},
		{[]string{"b"}, StatusOK, "\x00"},
		{[]string{"n"}, StatusSerializationFailure, ""},
		{[]string{"l"}, StatusOK, pairs("p", "", string(EncodeFloat64(1)), "")},
		{[]string{"l", "0"}, StatusOK, "p"},
		{[]string{"l", "-1"}, StatusNotFound, ""},
		{[]string{"l", "x"}, StatusNotFound, ""},
		{[]string{"o"}, StatusOK, pairs("k", "v")},
		{[]string{"o", "k"}, StatusOK, "v"},
		{[]string{"o", "k", "deeper"}, StatusNotFound, ""},
		{nil, StatusSerializationFailure, ""}, // contains a null
		{[]string{"missing"}, StatusNotFound, ""},
	} {
		got, s := resolveProperty(v, c.path)
		if s != c.status || (s == StatusOK && string(got) != c.want) {
			t.Errorf("%q: got %d %q, want %d %q", c.path, s, got, c.status, c.want)
		}
	}
	// An opaque map cannot be listed.
	if _, s := resolveProperty(lazyMap(func(string) (any, bool) { return nil, false }), nil); s != StatusSerializationFailure {
		t.Errorf("lazy map: %d", s)
	}
}

// TestStreamInfoProperties checks StreamInfo on its own, including the
// zero-value (unknown) answers.
func TestStreamInfoProperties(t *testing.T) {
	var zero StreamInfo
	for _, p := range [][]string{
		{"connection", "id"}, {"connection_id"}, {"source", "address"}, {"destination", "port"},
		{"upstream", "address"}, {"upstream", "transport_failure_reason"}, {"node"}, {"xds", "cluster_name"},
		{"metadata"}, {"request", "time"}, {"request", "protocol"}, {"request", "duration"},
		{"response", "code"}, {"response", "code_details"}, {"response", "backend_latency"},
		{"connection", "tls_version"}, {"upstream", "locality"}, {"filter_state", "x"}, {"anything"},
	} {
		if v, ok := zero.GetProperty(p); ok {
			t.Errorf("zero StreamInfo answers %q with %q", p, v)
		}
	}
	for _, c := range []struct {
		path []string
		want []byte
	}{
		{[]string{"connection", "mtls"}, EncodeBool(false)},
		{[]string{"connection", "requested_server_name"}, nil},
		{[]string{"request", "size"}, EncodeInt64(0)},
		{[]string{"response", "size"}, EncodeInt64(0)},
		{[]string{"response", "flags"}, EncodeInt64(0)},
		{[]string{"upstream", "request_attempt_count"}, EncodeUint64(0)},
		{[]string{"xds", "filter_chain_name"}, nil},
		{[]string{"xds", "listener_direction"}, EncodeInt64(0)},
	} {
		v, ok := zero.GetProperty(c.path)
		if !ok || !bytes.Equal(v, c.want) {
			t.Errorf("zero StreamInfo %q = %q %v, want %q", c.path, v, ok, c.want)
		}
	}
	if zero.SetProperty([]string{"x"}, []byte("v")) {
		t.Error("SetProperty accepted a non-filter-state path")
	}
	if !zero.SetProperty([]string{"filter_state", "k"}, []byte("v")) {
		t.Error("SetProperty refused a filter-state path")
	}
	if v, ok := zero.GetProperty([]string{"filter_state", "k"}); !ok || string(v) != "v" {
		t.Errorf("filter_state.k = %q %v", v, ok)
	}
}

// FuzzSplitPropertyPath checks the path parser's invariants.
func FuzzSplitPropertyPath(f *testing.F) {
	for _, s := range []string{"", "a", "\x00", "a\x00b\x00", "request\x00headers\x00x", "\x00\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		segs := SplitPropertyPath(p)
		for _, s := range segs {
			if strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("segment %q holds a NUL", s)
			}
		}
		want := bytes.TrimSuffix(p, []byte{0})
		if got := JoinPropertyPath(segs...); !bytes.Equal(got, want) {
			t.Fatalf("join(split(%q)) = %q", p, got)
		}
	})
}

// FuzzGetProperty runs arbitrary paths through the host's lookup with a
// stream that has headers, a local response and a full StreamInfo.
func FuzzGetProperty(f *testing.F) {
	for _, s := range []string{
		"request\x00headers", "request\x00headers\x00:path", "response\x00grpc_status", "node\x00metadata\x00tags\x000",
		"xds\x00cluster_metadata\x00filter_metadata\x00envoy.lb", "filter_state\x00wasm.x", "x", "",
		"upstream\x00locality\x00zone", "request\x00total_size", "\x00\x00",
	} {
		f.Add([]byte(s))
	}
	si := testStreamInfo()
	vm := &VM{cfg: VMConfig{ID: "fuzz"}}
	inst := &instance{vm: vm}
	p := &Plugin{vm: vm, cfg: PluginConfig{Name: "p", Properties: &StreamInfo{Node: testNode()}}}
	root := &contextState{id: 1, plugin: p}
	hs := &HTTPStream{}
	hs.props = si
	hs.reqHeaders = NewHeaders(testRequestHeaders...)
	hs.respHeaders = NewHeaders(":status", "x", "grpc-status", "")
	hs.local = &LocalResponse{StatusCode: 500, GRPCStatus: -1}
	c := &contextState{id: 2, plugin: p, root: root, http: hs}
	c.props = &propState{state: map[string]*stateEntry{"wasm.x": {value: "v", set: true}}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		segs, s := parsePropertyPath(raw)
		if s != StatusOK {
			return
		}
		for _, ctx := range []*contextState{nil, root, c} {
			_, s := inst.getProperty(ctx, segs)
			switch s {
			case StatusOK, StatusNotFound, StatusSerializationFailure:
			default:
				t.Fatalf("path %q: status %d", raw, s)
			}
		}
	})
}

// BenchmarkGetPropertyHost measures a header-derived lookup on the host side.
func BenchmarkGetPropertyHost(b *testing.B) {
	vm := &VM{cfg: VMConfig{ID: "b"}}
	inst := &instance{vm: vm}
	hs := &HTTPStream{}
	hs.reqHeaders = NewHeaders(testRequestHeaders...)
	c := &contextState{plugin: &Plugin{vm: vm}, http: hs}
	segs := []string{"request", "path"}
	b.ReportAllocs()
	for b.Loop() {
		if _, s := inst.getProperty(c, segs); s != StatusOK {
			b.Fatal(s)
		}
	}
}
