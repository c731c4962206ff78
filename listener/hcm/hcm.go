package hcm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/route"
	"github.com/wasmesh/wasmesh/stats"
)

// TypeURL is the connection manager's typed_config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// Deps are the shared objects a connection manager is compiled against.
type Deps struct {
	Logger   *zap.Logger
	Registry *filterchain.Registry
	Env      *filterchain.Env
	Stats    *stats.Store
	// ClusterExists validates route clusters (validate_clusters).
	ClusterExists func(string) bool
	// RDS supplies the route configurations named in rds; nil when the
	// server has no dynamic_resources (rds is then an error).
	RDS RouteProvider
	// AccessLogs opens (and shares) access log files by path.
	AccessLogs *LogFiles
	Now        func() time.Time
	// HealthCheckFailed reports the admin's /healthcheck/fail state: while
	// it is set, HTTP/1 responses close their connections (Envoy's
	// drain-close), so load balancers move clients away.
	HealthCheckFailed func() bool
}

// Codec is the downstream codec_type.
type Codec int

// Codecs.
const (
	CodecAuto Codec = iota
	CodecHTTP1
	CodecHTTP2
)

// Manager is a compiled HTTP connection manager. It is immutable; a config
// change compiles a new one.
type Manager struct {
	log        *zap.Logger
	now        func() time.Time
	Codec      Codec
	statPrefix string
	// routes is the route table with the filter plan of each route;
	// RDS swaps it atomically.
	routes     *routeSet
	accessLogs []*accessLog
	// rdsName is the route configuration followed over RDS, rdsCancel
	// stops following RDS and ECDS.
	rdsName       string
	rdsCancel     func()
	rdsReload     *stats.Counter
	clusterExists func(string) bool
	// ECDS: the http_filters as configured, the entries with
	// config_discovery, and the configurations they currently use (only
	// touched under the discovery provider's lock).
	filters    []*hcmv3.HttpFilter
	discovery  []discoveredFilter
	discovered map[string]*anypb.Any
	registry   *filterchain.Registry
	env        *filterchain.Env

	useRemoteAddress  bool
	xffTrustedHops    uint32
	skipXFFAppend     bool
	generateRequestID bool
	preserveRequestID bool
	alwaysSetRID      bool
	via               string
	serverName        string
	h2                h2Settings
	serverMode        hcmv3.HttpConnectionManager_ServerHeaderTransformation
	// Timeouts.
	StreamIdleTimeout     time.Duration
	RequestTimeout        time.Duration
	RequestHeadersTimeout time.Duration
	IdleTimeout           time.Duration
	MaxRequestHeadersKB   uint32
	MaxHeadersCount       uint32
	upgrades              map[string]bool

	stats *managerStats

	// draining makes HTTP/1 responses carry "Connection: close" so clients
	// move to the new listener without racing an idle-connection close.
	draining atomic.Bool
	hcFailed func() bool
}

// StartDrain makes every later HTTP/1.1 response close its connection
// (Envoy's drain: clients reconnect, to the listener's new version if one
// took the socket). HTTP/2 connections get GOAWAY from the server's
// Shutdown.
func (m *Manager) StartDrain() { m.draining.Store(true) }

type managerStats struct {
	rqTotal, rqHTTP1, rqHTTP2, rqCompleted *stats.Counter
	rqActive                               *stats.Gauge
	codes                                  *stats.CodeCounters
	rqTime                                 *stats.Histogram
	noRoute, noCluster                     *stats.Counter
	headerTimeout                          *stats.Counter
}

// Compile compiles a connection manager. Errors name the field.
func Compile(ctx context.Context, cfg *hcmv3.HttpConnectionManager, d Deps) (*Manager, error) {
	err := cfg.ValidateAll()
	if err != nil {
		return nil, err
	}
	errs := protocheck.Only("", cfg,
		"codec_type", "stat_prefix", "route_specifier", "http_filters", "access_log",
		"use_remote_address", "xff_num_trusted_hops", "skip_xff_append", "via", "generate_request_id",
		"preserve_external_request_id", "always_set_request_id_in_response", "server_name",
		"server_header_transformation", "stream_idle_timeout", "request_timeout", "request_headers_timeout",
		"max_request_headers_kb", "common_http_protocol_options", "http_protocol_options",
		"http2_protocol_options", "upgrade_configs", "drain_timeout", "delayed_close_timeout",
		"normalize_path", "merge_slashes", "add_user_agent", "access_log_flush_interval",
		"stream_flush_timeout", "strip_matching_host_port", "internal_address_config")
	if rds := cfg.GetRds(); rds != nil {
		if err := compileRDS(rds, d); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.GetScopedRoutes() != nil {
		errs = append(errs, errors.New("scoped_routes: not supported"))
	}
	if cfg.GetCodecType() == hcmv3.HttpConnectionManager_HTTP3 {
		errs = append(errs, errors.New("codec_type: HTTP3 is not supported"))
	}
	if u := cfg.GetHttp2ProtocolOptions(); u != nil {
		errs = append(errs, protocheck.Only("http2_protocol_options", u,
			"max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size", "hpack_table_size", "allow_connect")...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	m := &Manager{
		hcFailed:              d.HealthCheckFailed,
		log:                   d.Logger,
		now:                   now,
		statPrefix:            cfg.GetStatPrefix(),
		useRemoteAddress:      cfg.GetUseRemoteAddress().GetValue(),
		xffTrustedHops:        cfg.GetXffNumTrustedHops(),
		skipXFFAppend:         cfg.GetSkipXffAppend(),
		generateRequestID:     cfg.GetGenerateRequestId() == nil || cfg.GetGenerateRequestId().GetValue(),
		preserveRequestID:     cfg.GetPreserveExternalRequestId(),
		alwaysSetRID:          cfg.GetAlwaysSetRequestIdInResponse(),
		via:                   cfg.GetVia(),
		serverName:            cfg.GetServerName(),
		serverMode:            cfg.GetServerHeaderTransformation(),
		StreamIdleTimeout:     5 * time.Minute,
		RequestHeadersTimeout: 0,
		IdleTimeout:           time.Hour,
		MaxRequestHeadersKB:   60,
		MaxHeadersCount:       100,
		upgrades:              map[string]bool{},
	}
	if m.serverName == "" {
		m.serverName = "envoy"
	}
	m.h2 = h2SettingsOf(cfg.GetHttp2ProtocolOptions())
	switch cfg.GetCodecType() {
	case hcmv3.HttpConnectionManager_HTTP1:
		m.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		m.Codec = CodecHTTP2
	}
	if t := cfg.GetStreamIdleTimeout(); t != nil {
		m.StreamIdleTimeout = t.AsDuration()
	}
	if t := cfg.GetRequestTimeout(); t != nil {
		m.RequestTimeout = t.AsDuration()
	}
	if t := cfg.GetRequestHeadersTimeout(); t != nil {
		m.RequestHeadersTimeout = t.AsDuration()
	}
	if kb := cfg.GetMaxRequestHeadersKb(); kb != nil {
		m.MaxRequestHeadersKB = kb.GetValue()
	}
	if o := cfg.GetCommonHttpProtocolOptions(); o != nil {
		if errs := protocheck.Only("common_http_protocol_options", o, "idle_timeout", "max_headers_count", "max_stream_duration", "headers_with_underscores_action", "max_connection_duration"); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		if o.GetIdleTimeout() != nil {
			m.IdleTimeout = o.GetIdleTimeout().AsDuration()
		}
		if o.GetMaxHeadersCount() != nil {
			m.MaxHeadersCount = o.GetMaxHeadersCount().GetValue()
		}
	}
	for k, u := range cfg.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if len(u.GetFilters()) > 0 {
			return nil, fmt.Errorf("upgrade_configs[%d].filters: not supported", k)
		}
		m.upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}

	for k, al := range cfg.GetAccessLog() {
		l, err := compileAccessLog(al, d.AccessLogs)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d]: %w", k, err)
		}
		m.accessLogs = append(m.accessLogs, l)
	}

	m.clusterExists = d.ClusterExists
	m.filters, m.registry, m.env = cfg.GetHttpFilters(), d.Registry, d.Env
	m.routes = &routeSet{}
	m.discovery, err = discoveredFilters(cfg.GetHttpFilters())
	if err != nil {
		return nil, err
	}
	if cfg.GetRds() == nil && len(m.discovery) == 0 {
		chain, err := m.buildChain(ctx, nil)
		if err != nil {
			return nil, err
		}
		rc := cfg.GetRouteConfig()
		snap, err := m.compileRoutes(ctx, chain, rc, route.CompileOptions{
			ClusterExists:             d.ClusterExists,
			ValidateClustersByDefault: d.ClusterExists != nil,
		}, true)
		if err != nil {
			chain.Close()
			return nil, err
		}
		m.routes.swap(snap)
	} else if err := m.watch(ctx, cfg, d); err != nil {
		return nil, err
	}
	st := d.Stats
	if st == nil {
		st = stats.New(stats.Options{})
	}
	sc := st.Scope("http." + m.statPrefix + ".")
	m.stats = &managerStats{
		rqTotal:       sc.Counter("downstream_rq_total"),
		rqHTTP1:       sc.Counter("downstream_rq_http1_total"),
		rqHTTP2:       sc.Counter("downstream_rq_http2_total"),
		rqCompleted:   sc.Counter("downstream_rq_completed"),
		rqActive:      sc.Gauge("downstream_rq_active", stats.Accumulate),
		codes:         stats.NewCodeCounters(sc, "downstream_rq_"),
		rqTime:        sc.Histogram("downstream_rq_time", stats.Milliseconds),
		noRoute:       sc.Counter("no_route"),
		noCluster:     sc.Counter("no_cluster"),
		headerTimeout: sc.Counter("downstream_rq_header_timeout"),
	}
	return m, nil
}

// Routes is the current route table.
func (m *Manager) Routes() *route.Table { return m.routes.cur.Load().table }

// Close stops following RDS and ECDS and releases the filters' resources
// (Wasm plugins), those of superseded filter configurations included.
func (m *Manager) Close() {
	if m.rdsCancel != nil {
		m.rdsCancel()
	}
	m.routes.close()
}

// planFor returns the route's plan, or the default plan.
func (m *Manager) planFor(r *route.Route) *filterchain.Plan {
	if r != nil {
		if p, ok := m.routes.plan(r); ok {
			return p
		}
	}
	return m.routes.cur.Load().chain.Default
}

// accessLog is one configured file access log.
type accessLog struct {
	format *Format
	out    *logFile
}

func compileAccessLog(al *accesslogv3.AccessLog, files *LogFiles) (*accessLog, error) {
	if al.GetFilter() != nil {
		return nil, errors.New("filter: access log filters are not supported")
	}
	tc := al.GetTypedConfig()
	if tc == nil {
		return nil, errors.New("typed_config: missing")
	}
	fl := &filev3.FileAccessLog{}
	if err := tc.UnmarshalTo(fl); err != nil {
		return nil, fmt.Errorf("typed_config: only envoy.extensions.access_loggers.file.v3.FileAccessLog is supported (%s)", tc.GetTypeUrl())
	}
	if err := fl.ValidateAll(); err != nil {
		return nil, err
	}
	l := &accessLog{}
	var err error
	switch {
	case fl.GetLogFormat() != nil:
		lf := fl.GetLogFormat()
		switch {
		case lf.GetTextFormatSource() != nil:
			l.format, err = CompileFormat(lf.GetTextFormatSource().GetInlineString())
		case lf.GetTextFormat() != "":
			l.format, err = CompileFormat(lf.GetTextFormat())
		case lf.GetJsonFormat() != nil:
			l.format = &Format{json: map[string]*Format{}}
			for k, v := range lf.GetJsonFormat().GetFields() {
				f, ferr := CompileFormat(v.GetStringValue())
				if ferr != nil {
					return nil, fmt.Errorf("log_format.json_format[%q]: %w", k, ferr)
				}
				l.format.json[k] = f
				l.format.keys = append(l.format.keys, k)
			}
		default:
			l.format, err = CompileFormat(DefaultAccessLogFormat)
		}
	case fl.GetFormat() != "":
		l.format, err = CompileFormat(fl.GetFormat())
	case fl.GetJsonFormat() != nil:
		return nil, errors.New("json_format: deprecated; use log_format.json_format")
	default:
		l.format, err = CompileFormat(DefaultAccessLogFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("log_format: %w", err)
	}
	if files == nil {
		files = NewLogFiles()
	}
	l.out, err = files.Open(fl.GetPath())
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	return l, nil
}

// LogFiles shares open access log files by path across config versions.
type LogFiles struct {
	mu    sync.Mutex
	files map[string]*logFile
}

type logFile struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *logFile) write(fn func(io.Writer)) {
	f.mu.Lock()
	fn(f.w)
	f.mu.Unlock()
}

// NewLogFiles returns an empty set.
func NewLogFiles() *LogFiles { return &LogFiles{files: map[string]*logFile{}} }

// Open returns the shared writer for path (/dev/stdout and /dev/stderr are
// the process's streams).
func (l *LogFiles) Open(path string) (*logFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.files[path]; ok {
		return f, nil
	}
	var w io.Writer
	switch path {
	case "/dev/stdout":
		w = os.Stdout
	case "/dev/stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		w = f
	}
	lf := &logFile{w: w}
	l.files[path] = lf
	return lf, nil
}

// Close closes the files.
func (l *LogFiles) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		if c, ok := f.w.(io.Closer); ok && f.w != os.Stdout && f.w != os.Stderr {
			c.Close()
		}
	}
	l.files = map[string]*logFile{}
}

// setServer applies server_header_transformation: OVERWRITE sets server to
// server_name, APPEND_IF_ABSENT only when the response has none,
// PASS_THROUGH leaves the response's own (or none) as it is.
func (m *Manager) setServer(present bool) bool {
	switch m.serverMode {
	case hcmv3.HttpConnectionManager_PASS_THROUGH:
		return false
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		return !present
	}
	return true
}
