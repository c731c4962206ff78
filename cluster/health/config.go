package health

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrUnsupported is wrapped by errors for fields that are not implemented.
var ErrUnsupported = errors.New("not supported")

// PathError is a problem with one field of a HealthCheck.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

type kind uint8

const (
	kindHTTP kind = iota
	kindTCP
)

type header struct {
	key, value string
	appendV    bool
}

// Config is a compiled HealthCheck. It is immutable.
type Config struct {
	kind kind

	timeout, interval, initialJitter, intervalJitter time.Duration
	jitterPercent                                    uint32
	unhealthyThreshold, healthyThreshold             uint32
	altPort                                          uint32
	reuse                                            bool

	noTraffic, noTrafficHealthy, unhealthyInterval, unhealthyEdge, healthyEdge time.Duration

	// HTTP
	host, path, method string
	url                *url.URL
	add                []header
	remove             []string
	expected           [][2]uint32 // [start, end)
	retriable          [][2]uint32
	h2                 bool
	httpSend           []byte
	httpReceive        []byte

	// TCP
	send    []byte
	receive [][]byte
}

func dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

type compiler struct{ list []error }

func (c *compiler) errf(path, format string, args ...any) {
	c.list = append(c.list, &PathError{Path: path, Err: fmt.Errorf(format, args...)})
}

func (c *compiler) only(path string, m proto.Message, allowed ...string) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			p := string(fd.Name())
			if path != "" {
				p = path + "." + p
			}
			c.list = append(c.list, &PathError{Path: p, Err: fmt.Errorf("field is %w by wasmesh", ErrUnsupported)})
		}
		return true
	})
}

// Compile turns hc into a Config. The errors are *PathError values whose
// paths are relative to hc. The message is expected to have passed its own
// Validate.
func Compile(hc *corev3.HealthCheck) (*Config, []error) {
	c := &compiler{}
	c.only("", hc, "timeout", "interval", "initial_jitter", "interval_jitter", "interval_jitter_percent",
		"unhealthy_threshold", "healthy_threshold", "alt_port", "reuse_connection", "no_traffic_interval",
		"no_traffic_healthy_interval", "unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval",
		"always_log_health_check_failures", "always_log_health_check_success",
		"http_health_check", "tcp_health_check")
	cfg := &Config{
		timeout:            dur(hc.GetTimeout(), 0),
		interval:           dur(hc.GetInterval(), 0),
		initialJitter:      dur(hc.GetInitialJitter(), 0),
		intervalJitter:     dur(hc.GetIntervalJitter(), 0),
		jitterPercent:      hc.GetIntervalJitterPercent(),
		unhealthyThreshold: max(hc.GetUnhealthyThreshold().GetValue(), 1),
		healthyThreshold:   max(hc.GetHealthyThreshold().GetValue(), 1),
		altPort:            hc.GetAltPort().GetValue(),
		reuse:              hc.GetReuseConnection() == nil || hc.GetReuseConnection().GetValue(),
	}
	if cfg.timeout <= 0 {
		c.errf("timeout", "must be positive")
	}
	if cfg.interval <= 0 {
		c.errf("interval", "must be positive")
	}
	if cfg.altPort > 65535 {
		c.errf("alt_port", "port %d out of range", cfg.altPort)
	}
	cfg.noTraffic = dur(hc.GetNoTrafficInterval(), 60*time.Second)
	cfg.noTrafficHealthy = dur(hc.GetNoTrafficHealthyInterval(), cfg.noTraffic)
	cfg.unhealthyInterval = dur(hc.GetUnhealthyInterval(), cfg.interval)
	cfg.unhealthyEdge = dur(hc.GetUnhealthyEdgeInterval(), cfg.unhealthyInterval)
	cfg.healthyEdge = dur(hc.GetHealthyEdgeInterval(), cfg.interval)

	switch {
	case hc.GetHttpHealthCheck() != nil:
		cfg.kind = kindHTTP
		compileHTTP(c, "http_health_check", hc.GetHttpHealthCheck(), cfg)
	case hc.GetTcpHealthCheck() != nil:
		cfg.kind = kindTCP
		t := hc.GetTcpHealthCheck()
		c.only("tcp_health_check", t, "send", "receive")
		cfg.send = payload(c, "tcp_health_check.send", t.GetSend())
		for i, r := range t.GetReceive() {
			b := payload(c, fmt.Sprintf("tcp_health_check.receive[%d]", i), r)
			if len(b) > 0 {
				cfg.receive = append(cfg.receive, b)
			}
		}
	case hc.GetGrpcHealthCheck() != nil:
		c.errf("grpc_health_check", "field is %v by wasmesh", ErrUnsupported)
	case hc.GetCustomHealthCheck() != nil:
		c.errf("custom_health_check", "field is %v by wasmesh", ErrUnsupported)
	default:
		c.errf("", "a health checker (http_health_check or tcp_health_check) is required")
	}
	if len(c.list) > 0 {
		return nil, c.list
	}
	return cfg, nil
}

func payload(c *compiler, path string, p *corev3.HealthCheck_Payload) []byte {
	if p == nil {
		return nil
	}
	switch v := p.GetPayload().(type) {
	case *corev3.HealthCheck_Payload_Text:
		b, err := hex.DecodeString(v.Text)
		if err != nil {
			c.errf(path+".text", "not hex: %v", err)
		}
		return b
	case *corev3.HealthCheck_Payload_Binary:
		return v.Binary
	}
	return nil
}

func compileHTTP(c *compiler, path string, h *corev3.HealthCheck_HttpHealthCheck, cfg *Config) {
	c.only(path, h, "host", "path", "send", "receive", "request_headers_to_add", "request_headers_to_remove",
		"expected_statuses", "retriable_statuses", "codec_client_type", "method", "response_buffer_size")
	cfg.host, cfg.path = h.GetHost(), h.GetPath()
	u, err := url.ParseRequestURI(cfg.path)
	if err != nil || !strings.HasPrefix(cfg.path, "/") {
		c.errf(path+".path", "must be an absolute path, got %q", cfg.path)
	} else {
		cfg.url = u
	}
	cfg.method = http.MethodGet
	switch h.GetMethod() {
	case corev3.RequestMethod_METHOD_UNSPECIFIED, corev3.RequestMethod_GET:
	case corev3.RequestMethod_HEAD:
		cfg.method = http.MethodHead
	case corev3.RequestMethod_POST:
		cfg.method = http.MethodPost
	case corev3.RequestMethod_PUT:
		cfg.method = http.MethodPut
	case corev3.RequestMethod_DELETE:
		cfg.method = http.MethodDelete
	case corev3.RequestMethod_OPTIONS:
		cfg.method = http.MethodOptions
	case corev3.RequestMethod_TRACE:
		cfg.method = http.MethodTrace
	case corev3.RequestMethod_PATCH:
		cfg.method = http.MethodPatch
	default:
		c.errf(path+".method", "method %s is not allowed", h.GetMethod())
	}
	if h.GetSend() != nil {
		cfg.httpSend = payload(c, path+".send", h.GetSend())
		if cfg.method == http.MethodGet || cfg.method == http.MethodHead {
			c.errf(path+".send", "a request body needs a method other than GET or HEAD")
		}
	}
	for i, r := range h.GetReceive() {
		if i > 0 {
			c.errf(fmt.Sprintf("%s.receive[%d]", path, i), "only one receive payload is supported")
			break
		}
		cfg.httpReceive = payload(c, fmt.Sprintf("%s.receive[%d]", path, i), r)
	}
	for i, hv := range h.GetRequestHeadersToAdd() {
		p := fmt.Sprintf("%s.request_headers_to_add[%d]", path, i)
		c.only(p, hv, "header", "append", "append_action", "keep_empty_value")
		k := strings.ToLower(hv.GetHeader().GetKey())
		if k == "" || strings.HasPrefix(k, ":") || k == "host" {
			c.errf(p+".header.key", "cannot set %q", k)
			continue
		}
		appendV := hv.GetAppend() == nil || hv.GetAppend().GetValue()
		if hv.GetAppend() == nil {
			appendV = hv.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		if hv.GetAppendAction() == corev3.HeaderValueOption_ADD_IF_ABSENT {
			c.errf(p+".append_action", "ADD_IF_ABSENT is %v by wasmesh", ErrUnsupported)
		}
		cfg.add = append(cfg.add, header{key: k, value: hv.GetHeader().GetValue(), appendV: appendV})
	}
	for _, r := range h.GetRequestHeadersToRemove() {
		cfg.remove = append(cfg.remove, strings.ToLower(r))
	}
	ranges := func(p string, rs []*typev3.Int64Range) [][2]uint32 {
		var out [][2]uint32
		for i, r := range rs {
			if r.GetStart() < 100 || r.GetEnd() > 600 || r.GetStart() >= r.GetEnd() {
				c.errf(fmt.Sprintf("%s[%d]", p, i), "range [%d, %d) is not within [100, 600)", r.GetStart(), r.GetEnd())
				continue
			}
			out = append(out, [2]uint32{uint32(r.GetStart()), uint32(r.GetEnd())})
		}
		return out
	}
	cfg.expected = ranges(path+".expected_statuses", h.GetExpectedStatuses())
	if len(cfg.expected) == 0 {
		cfg.expected = [][2]uint32{{200, 201}}
	}
	cfg.retriable = ranges(path+".retriable_statuses", h.GetRetriableStatuses())
	switch h.GetCodecClientType() {
	case typev3.CodecClientType_HTTP1:
	case typev3.CodecClientType_HTTP2:
		cfg.h2 = true
	default:
		c.errf(path+".codec_client_type", "%s is %v by wasmesh", h.GetCodecClientType(), ErrUnsupported)
	}
}

// HTTP2 reports whether HTTP checks of this config speak HTTP/2.
func (c *Config) HTTP2() bool { return c.kind == kindHTTP && c.h2 }

// AltPort is the alt_port the checks go to (0: the host's own port).
func (c *Config) AltPort() uint32 { return c.altPort }

func inRanges(code int, rs [][2]uint32) bool {
	for _, r := range rs {
		if uint32(code) >= r[0] && uint32(code) < r[1] {
			return true
		}
	}
	return false
}
