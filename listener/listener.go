package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/listener/directresponse"
	"github.com/wasmesh/wasmesh/listener/hcm"
	"github.com/wasmesh/wasmesh/listener/netwasm"
	"github.com/wasmesh/wasmesh/listener/network"
	"github.com/wasmesh/wasmesh/listener/tcpproxy"
	"github.com/wasmesh/wasmesh/listener/tlsctx"
	"github.com/wasmesh/wasmesh/stats"
)

// Type URLs of the listener filters and transport sockets.
const (
	TLSInspectorTypeURL  = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	HTTPInspectorTypeURL = "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
	OriginalDstTypeURL   = "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
	RawBufferTypeURL     = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
)

// Defaults (Envoy's).
const (
	DefaultListenerFiltersTimeout = 15 * time.Second
	DefaultBufferLimit            = 1 << 20
	defaultMaxClientHello         = 16 << 10
	// defaultHandshakeTimeout bounds a TLS handshake when the filter
	// chain sets no transport_socket_connect_timeout.
	defaultHandshakeTimeout = 15 * time.Second
)

// SecretLookup finds static secrets by name (the server fills it from
// static_resources.secrets).
type SecretLookup = tlsctx.SecretLookup

// Dialer opens upstream connections for tcp_proxy (the cluster manager).
type Dialer = network.Dialer

// Redirector finds the listener that owns an address, for
// use_original_dst (Index implements it).
type Redirector interface {
	Lookup(addr netip.AddrPort) *Listener
}

// Deps are the shared objects a listener is compiled against.
type Deps struct {
	Logger *zap.Logger
	Stats  *stats.Store
	// HCM are the HTTP connection managers' dependencies (filter
	// registry, filter environment, access log files, cluster check).
	// Logger and Stats default to the listener's.
	HCM hcm.Deps
	// Dialer connects tcp_proxy to clusters.
	Dialer Dialer
	// Secrets resolves tls_certificate_sds_secret_configs and
	// validation_context_sds_secret_config by name.
	Secrets SecretLookup
	// Redirect hands connections to the listener bound to their original
	// destination (use_original_dst). Nil: never hand off.
	Redirect Redirector
	// NetworkFilters are the network filter factories; nil gives
	// DefaultNetworkFilters().
	NetworkFilters *network.Registry
	// ConnIDs numbers downstream connections process-wide; nil gives the
	// listener its own counter.
	ConnIDs *atomic.Uint64
}

// DefaultNetworkFilters returns a registry with the built-in network
// filters: tcp_proxy, direct_response and wasm (http_connection_manager
// is built into the listener).
func DefaultNetworkFilters() *network.Registry {
	r := network.NewRegistry()
	tcpproxy.Register(r)
	directresponse.Register(r)
	netwasm.Register(r)
	return r
}

type lfKind int

const (
	lfTLSInspector lfKind = iota
	lfHTTPInspector
	lfOriginalDst
)

// listenerFilter is one compiled listener_filters entry.
type listenerFilter struct {
	kind       lfKind
	maxHello   int
	closeOnErr bool
}

// filterChain is one compiled filter chain.
type filterChain struct {
	name           string
	tls            *tlsctx.Server
	connectTimeout time.Duration
	// HTTP connection manager chains.
	hcm *hcm.Manager
	// h1 serves the connections with the manager's own HTTP/1.1 and
	// HTTP/2 codecs.
	h1 *hcm.H1Server
	// fresh counts the connections that have not yet sent their first
	// request (http.StateNew): a drain lets them get it answered before
	// it shuts the server down.
	freshMu sync.Mutex
	fresh   map[net.Conn]bool
	// open holds every open connection of the server with its facts, so
	// a drain can wait for the HTTP/1 ones to close by themselves.
	open map[net.Conn]*hcm.ConnInfo
	// Other network filter chains.
	net *network.Chain
}

// http1Conns is how many open connections have not carried HTTP/2.
func (fc *filterChain) http1Conns() int {
	fc.freshMu.Lock()
	defer fc.freshMu.Unlock()
	n := 0
	for _, ci := range fc.open {
		if ci == nil || !ci.HTTP2.Load() {
			n++
		}
	}
	return n
}

// freshConns is how many connections wait for their first request.
func (fc *filterChain) freshConns() int {
	fc.freshMu.Lock()
	defer fc.freshMu.Unlock()
	return len(fc.fresh)
}

func (fc *filterChain) close() {
	if fc.hcm != nil {
		fc.hcm.Close()
	}
	if fc.net != nil {
		fc.net.Close()
	}
}

type listenerStats struct {
	cxTotal, cxDestroy, noChain, lfError, preTimeout *stats.Counter
	cxActive                                         *stats.Gauge
	cxLength                                         *stats.Histogram
	ssl                                              *tlsctx.Stats
	tlsFound, tlsNotFound, helloTooLarge             *stats.Counter
	sniFound, sniNotFound, alpnFound, alpnNotFound   *stats.Counter
	http10, http11, http2, httpNotFound              *stats.Counter
}

// Listener is a compiled listener: immutable configuration plus the
// runtime that serves it (socket, connections, HTTP servers).
type Listener struct {
	name    string
	cfg     *listenerv3.Listener
	log     *zap.Logger
	deps    Deps
	addr    netip.AddrPort
	network string
	bind    bool
	reuse   bool

	chains            []*filterChain
	matches           []*chainMatch
	def               *filterChain
	lfs               []listenerFilter
	lfTimeout         time.Duration
	continueOnTimeout bool
	useOrigDst        bool
	bufferLimit       int
	stats             *listenerStats
	connIDs           *atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	state    int
	sock     *socket
	conns    map[*conn]struct{}
	pending  sync.WaitGroup // connections not yet handed to a chain
	wg       sync.WaitGroup // connection goroutines
	released bool
}

const (
	stateCompiled = iota
	stateRunning
	stateDraining
	stateStopped
)

// Name is the listener's name.
func (l *Listener) Name() string { return l.name }

// Config is the listener's configuration.
func (l *Listener) Config() *listenerv3.Listener { return l.cfg }

// Address is the configured address.
func (l *Listener) Address() netip.AddrPort { return l.addr }

// StatPrefix is the listener's stats scope ("listener.<address>.").
func StatPrefix(cfg *listenerv3.Listener) string {
	if p := cfg.GetStatPrefix(); p != "" {
		return "listener." + p + "."
	}
	sa := cfg.GetAddress().GetSocketAddress()
	a := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	return "listener." + stats.SanitizeName(a) + "."
}

// Compile validates cfg and compiles it into a Listener that is not yet
// serving. Errors name the listener and the field.
func Compile(ctx context.Context, cfg *listenerv3.Listener, d Deps) (*Listener, error) {
	name := cfg.GetName()
	// Each error names the listener and the field path:
	// listener "ingress".filter_chains[1].filter_chain_match.server_names[0]: ...
	wrap := func(err error) error { return prefixErrors(fmt.Sprintf("listener %q", name), err) }
	if err := cfg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("listener %q: %w", name, err)
	}
	var errs []error
	errs = append(errs, protocheck.Only("", cfg, "name", "address", "stat_prefix", "filter_chains", "default_filter_chain",
		"use_original_dst", "per_connection_buffer_limit_bytes", "listener_filters", "listener_filters_timeout",
		"continue_on_listener_filters_timeout", "traffic_direction", "reuse_port", "enable_reuse_port", "bind_to_port",
		"metadata", "drain_type", "ignore_global_conn_limit", "max_connections_to_accept_per_socket_event")...)
	if cfg.GetFilterChainMatcher() != nil {
		errs = append(errs, errors.New("filter_chain_matcher: not implemented by wasmesh; use filter_chain_match"))
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Stats == nil {
		d.Stats = stats.New(stats.Options{})
	}
	if d.NetworkFilters == nil {
		d.NetworkFilters = DefaultNetworkFilters()
	}
	if d.ConnIDs == nil {
		d.ConnIDs = new(atomic.Uint64)
	}
	l := &Listener{
		name: name, cfg: cfg, deps: d, connIDs: d.ConnIDs,
		log:               d.Logger.With(zap.String("listener", name)),
		bind:              cfg.GetBindToPort() == nil || cfg.GetBindToPort().GetValue(),
		reuse:             cfg.GetEnableReusePort().GetValue() || cfg.GetReusePort(),
		lfTimeout:         DefaultListenerFiltersTimeout,
		continueOnTimeout: cfg.GetContinueOnListenerFiltersTimeout(),
		useOrigDst:        cfg.GetUseOriginalDst().GetValue(),
		bufferLimit:       DefaultBufferLimit,
		conns:             map[*conn]struct{}{},
	}
	var err error
	if l.addr, l.network, err = compileAddress(cfg.GetAddress()); err != nil {
		errs = append(errs, err)
	}
	if t := cfg.GetListenerFiltersTimeout(); t != nil {
		l.lfTimeout = t.AsDuration()
	}
	if b := cfg.GetPerConnectionBufferLimitBytes(); b != nil {
		l.bufferLimit = int(b.GetValue())
	}
	for i, lf := range cfg.GetListenerFilters() {
		f, err := compileListenerFilter(fmt.Sprintf("listener_filters[%d]", i), lf)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.lfs = append(l.lfs, f)
	}
	if len(errs) > 0 {
		return nil, wrap(errors.Join(errs...))
	}

	sc := d.Stats.Scope(StatPrefix(cfg))
	l.stats = &listenerStats{
		cxTotal:       sc.Counter("downstream_cx_total"),
		cxDestroy:     sc.Counter("downstream_cx_destroy"),
		cxActive:      sc.Gauge("downstream_cx_active", stats.Accumulate),
		cxLength:      sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),
		noChain:       sc.Counter("no_filter_chain_match"),
		lfError:       sc.Counter("downstream_listener_filter_error"),
		preTimeout:    sc.Counter("downstream_pre_cx_timeout"),
		ssl:           tlsctx.NewStats(sc.Scope("ssl.")),
		tlsFound:      sc.Counter("tls_inspector.tls_found"),
		tlsNotFound:   sc.Counter("tls_inspector.tls_not_found"),
		helloTooLarge: sc.Counter("tls_inspector.client_hello_too_large"),
		sniFound:      sc.Counter("tls_inspector.sni_found"),
		sniNotFound:   sc.Counter("tls_inspector.sni_not_found"),
		alpnFound:     sc.Counter("tls_inspector.alpn_found"),
		alpnNotFound:  sc.Counter("tls_inspector.alpn_not_found"),
		http10:        sc.Counter("http_inspector.http10_found"),
		http11:        sc.Counter("http_inspector.http11_found"),
		http2:         sc.Counter("http_inspector.http2_found"),
		httpNotFound:  sc.Counter("http_inspector.http_not_found"),
	}

	fail := func(err error) (*Listener, error) {
		l.release()
		return nil, wrap(err)
	}
	for i, fcfg := range cfg.GetFilterChains() {
		path := fmt.Sprintf("filter_chains[%d]", i)
		m, merrs := compileMatch(path+".filter_chain_match", i, fcfg.GetFilterChainMatch())
		errs = append(errs, merrs...)
		fc, err := l.compileChain(ctx, path, fcfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.chains = append(l.chains, fc)
		l.matches = append(l.matches, m)
	}
	if dc := cfg.GetDefaultFilterChain(); dc != nil {
		if dc.GetFilterChainMatch() != nil {
			errs = append(errs, errors.New("default_filter_chain.filter_chain_match: must be empty"))
		}
		fc, err := l.compileChain(ctx, "default_filter_chain", dc)
		if err != nil {
			errs = append(errs, err)
		} else {
			l.def = fc
		}
	}
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	if len(l.chains) == 0 && l.def == nil {
		return fail(errors.New("filter_chains: no filter chains and no default_filter_chain"))
	}
	if err := checkDuplicates(l.matches); err != nil {
		return fail(err)
	}
	l.warnMissingInspectors()
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return l, nil
}

// warnMissingInspectors logs chains that match on what only a listener
// filter can find (Envoy warns the same way).
func (l *Listener) warnMissingInspectors() {
	has := map[lfKind]bool{}
	for _, f := range l.lfs {
		has[f.kind] = true
	}
	for _, m := range l.matches {
		if (len(m.serverNames) > 0 || m.transport == "tls") && !has[lfTLSInspector] {
			l.log.Warn("filter chain matches on server_names or transport_protocol \"tls\" without the tls_inspector listener filter", zap.Int("filter_chain", m.index))
		}
	}
}

func compileAddress(a *corev3.Address) (netip.AddrPort, string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, "", errors.New("address: only socket_address is supported")
	}
	if errs := protocheck.Only("address.socket_address", sa, "protocol", "address", "port_specifier", "ipv4_compat"); len(errs) > 0 {
		return netip.AddrPort{}, "", errors.Join(errs...)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return netip.AddrPort{}, "", fmt.Errorf("address.socket_address.protocol: %s listeners are not supported", sa.GetProtocol())
	}
	if sa.GetNamedPort() != "" {
		return netip.AddrPort{}, "", errors.New("address.socket_address.named_port: not supported")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("address.socket_address.address: %q is not an IP address", sa.GetAddress())
	}
	network := "tcp4"
	if ip.Is6() && !ip.Is4In6() {
		network = "tcp6"
		if sa.GetIpv4Compat() {
			network = "tcp"
		}
	}
	return netip.AddrPortFrom(ip, uint16(sa.GetPortValue())), network, nil
}

func compileListenerFilter(path string, lf *listenerv3.ListenerFilter) (listenerFilter, error) {
	if errs := protocheck.Only(path, lf, "name", "config_type"); len(errs) > 0 {
		return listenerFilter{}, errors.Join(errs...)
	}
	if lf.GetConfigDiscovery() != nil {
		return listenerFilter{}, fmt.Errorf("%s.config_discovery: not supported", path)
	}
	tc := lf.GetTypedConfig()
	typeURL := tc.GetTypeUrl()
	if tc == nil {
		// v2-style: the filter is named and has no config.
		switch lf.GetName() {
		case "envoy.filters.listener.tls_inspector", "envoy.listener.tls_inspector":
			typeURL = TLSInspectorTypeURL
		case "envoy.filters.listener.http_inspector", "envoy.listener.http_inspector":
			typeURL = HTTPInspectorTypeURL
		case "envoy.filters.listener.original_dst", "envoy.listener.original_dst":
			typeURL = OriginalDstTypeURL
		default:
			return listenerFilter{}, fmt.Errorf("%s.typed_config: missing", path)
		}
	}
	switch typeURL {
	case TLSInspectorTypeURL:
		c := &tlsinspv3.TlsInspector{}
		if tc != nil {
			if err := tc.UnmarshalTo(c); err != nil {
				return listenerFilter{}, fmt.Errorf("%s.typed_config: %w", path, err)
			}
		}
		if errs := protocheck.Only(path+".typed_config", c, "initial_read_buffer_size", "max_client_hello_size", "close_connection_on_client_hello_parsing_errors"); len(errs) > 0 {
			return listenerFilter{}, errors.Join(errs...)
		}
		f := listenerFilter{kind: lfTLSInspector, maxHello: defaultMaxClientHello, closeOnErr: c.GetCloseConnectionOnClientHelloParsingErrors()}
		if m := c.GetMaxClientHelloSize(); m != nil {
			f.maxHello = int(m.GetValue())
		}
		return f, nil
	case HTTPInspectorTypeURL:
		c := &httpinspv3.HttpInspector{}
		if tc != nil {
			if err := tc.UnmarshalTo(c); err != nil {
				return listenerFilter{}, fmt.Errorf("%s.typed_config: %w", path, err)
			}
		}
		if errs := protocheck.Only(path+".typed_config", c); len(errs) > 0 {
			return listenerFilter{}, errors.Join(errs...)
		}
		return listenerFilter{kind: lfHTTPInspector}, nil
	case OriginalDstTypeURL:
		c := &origdstv3.OriginalDst{}
		if tc != nil {
			if err := tc.UnmarshalTo(c); err != nil {
				return listenerFilter{}, fmt.Errorf("%s.typed_config: %w", path, err)
			}
		}
		if errs := protocheck.Only(path+".typed_config", c); len(errs) > 0 {
			return listenerFilter{}, errors.Join(errs...)
		}
		return listenerFilter{kind: lfOriginalDst}, nil
	}
	return listenerFilter{}, fmt.Errorf("%s: unsupported listener filter type %q", path, typeURL)
}

// compileChain compiles one filter chain's transport socket and filters.
func (l *Listener) compileChain(ctx context.Context, path string, cfg *listenerv3.FilterChain) (*filterChain, error) {
	if errs := protocheck.Only(path, cfg, "filter_chain_match", "filters", "transport_socket", "name", "metadata", "transport_socket_connect_timeout"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	fc := &filterChain{name: cfg.GetName()}
	if t := cfg.GetTransportSocketConnectTimeout(); t != nil {
		fc.connectTimeout = t.AsDuration()
	}
	if ts := cfg.GetTransportSocket(); ts != nil {
		tc := ts.GetTypedConfig()
		switch tc.GetTypeUrl() {
		case tlsctx.TypeURL:
			dtc := &tlsv3.DownstreamTlsContext{}
			if err := tc.UnmarshalTo(dtc); err != nil {
				return nil, fmt.Errorf("%s.transport_socket.typed_config: %w", path, err)
			}
			s, err := tlsctx.Compile(path+".transport_socket.typed_config", dtc, l.deps.Secrets, l.stats.ssl)
			if err != nil {
				return nil, err
			}
			fc.tls = s
		case RawBufferTypeURL:
			if err := tc.UnmarshalTo(&rawv3.RawBuffer{}); err != nil {
				return nil, fmt.Errorf("%s.transport_socket.typed_config: %w", path, err)
			}
		case "":
			if ts.GetName() != "envoy.transport_sockets.raw_buffer" && ts.GetName() != "raw_buffer" {
				return nil, fmt.Errorf("%s.transport_socket.typed_config: missing", path)
			}
		default:
			return nil, fmt.Errorf("%s.transport_socket: unsupported transport socket %q", path, tc.GetTypeUrl())
		}
	}
	filters := cfg.GetFilters()
	if len(filters) == 0 {
		return nil, fmt.Errorf("%s.filters: empty", path)
	}
	for i, f := range filters {
		if f.GetConfigDiscovery() != nil {
			return nil, fmt.Errorf("%s.filters[%d].config_discovery: not supported", path, i)
		}
		if f.GetTypedConfig().GetTypeUrl() != hcm.TypeURL {
			continue
		}
		if i != len(filters)-1 {
			return nil, fmt.Errorf("%s.filters[%d]: http_connection_manager must be the last filter", path, i)
		}
		if i != 0 {
			return nil, fmt.Errorf("%s.filters[0]: network filters before http_connection_manager are not supported yet", path)
		}
		return l.compileHCM(ctx, fmt.Sprintf("%s.filters[%d]", path, i), f.GetTypedConfig(), fc)
	}
	entries := make([]network.NamedConfig, len(filters))
	for i, f := range filters {
		entries[i] = network.NamedConfig{Name: f.GetName(), Config: f.GetTypedConfig()}
	}
	env := &network.Env{Logger: l.log, Stats: l.deps.Stats, Dialer: l.deps.Dialer, Filters: l.deps.HCM.Env}
	ch, err := network.Compile(ctx, l.deps.NetworkFilters, env, entries)
	if err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	ch.BufferLimit = l.bufferLimit
	fc.net = ch
	return fc, nil
}

func (l *Listener) compileHCM(ctx context.Context, path string, tc *anypb.Any, fc *filterChain) (*filterChain, error) {
	cfg := &hcmv3.HttpConnectionManager{}
	if err := tc.UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("%s.typed_config: %w", path, err)
	}
	d := l.deps.HCM
	if d.Logger == nil {
		d.Logger = l.log
	}
	if d.Stats == nil {
		d.Stats = l.deps.Stats
	}
	if d.Registry == nil {
		d.Registry = filterchain.NewRegistry()
		router.Register(d.Registry)
	}
	m, err := hcm.Compile(ctx, cfg, d)
	if err != nil {
		return nil, fmt.Errorf("%s.typed_config: %w", path, err)
	}
	fc.hcm = m
	fc.fresh = map[net.Conn]bool{}
	fc.open = map[net.Conn]*hcm.ConnInfo{}
	fc.h1 = m.NewH1Server(l.log)
	fc.h1.ConnContext = connContext
	fc.h1.ConnState = func(c net.Conn, st http.ConnState) {
		fc.freshMu.Lock()
		if st == http.StateNew {
			fc.fresh[c] = true
			fc.open[c] = connInfoOf(c)
		} else {
			delete(fc.fresh, c)
		}
		if st == http.StateClosed || st == http.StateHijacked {
			delete(fc.open, c)
		}
		fc.freshMu.Unlock()
	}
	return fc, nil
}

// connContext gives the connection manager the connection's facts.
func connContext(ctx context.Context, nc net.Conn) context.Context {
	ci := connInfoOf(nc)
	if ci == nil {
		return ctx
	}
	return context.WithValue(ctx, hcm.ConnInfoKey{}, ci)
}

// connInfoOf finds the facts of a served connection (plain or TLS).
func connInfoOf(nc net.Conn) *hcm.ConnInfo {
	c, ok := nc.(*conn)
	if !ok {
		if tc, isTLS := nc.(interface{ NetConn() net.Conn }); isTLS {
			c, ok = tc.NetConn().(*conn)
		}
	}
	if !ok {
		return nil
	}
	return &c.info
}

// release frees the compiled chains' resources (Wasm plugins).
func (l *Listener) release() {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	l.mu.Unlock()
	for _, fc := range l.chains {
		fc.close()
	}
	if l.def != nil {
		l.def.close()
	}
}

// prefixErrors puts the resource name before each error: "<res>.<field
// path>: ..." for errors that start with a field path, "<res>: ..."
// otherwise.
func prefixErrors(res string, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			out = append(out, prefixErrors(res, errors.Join(j.Unwrap()...)))
			continue
		}
		msg := e.Error()
		sep := ": "
		if i := strings.IndexByte(msg, ':'); i > 0 {
			head := msg[:i]
			if j := strings.Index(head, " ("); j > 0 && strings.HasSuffix(head, ")") {
				head = head[:j] // "filters[0] (name)"
			}
			if isFieldPath(head) {
				sep = "."
			}
		}
		out = append(out, &prefixed{prefix: res + sep, err: e})
	}
	return errors.Join(out...)
}

// isFieldPath reports whether s looks like "a.b[2].c".
func isFieldPath(s string) bool {
	for _, r := range s {
		if !(r == '_' || r == '.' || r == '[' || r == ']' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s[0] >= 'a' && s[0] <= 'z'
}

type prefixed struct {
	prefix string
	err    error
}

func (p *prefixed) Error() string { return p.prefix + p.err.Error() }
func (p *prefixed) Unwrap() error { return p.err }

// TLSContexts lists the compiled DownstreamTlsContexts of the filter
// chains (for the admin's /certs), in chain order.
func (l *Listener) TLSContexts() []*tlsctx.Server {
	var out []*tlsctx.Server
	for _, fc := range l.allChains() {
		if fc.tls != nil {
			out = append(out, fc.tls)
		}
	}
	return out
}
