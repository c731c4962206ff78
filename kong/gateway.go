package kong

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/server"
	xkong "github.com/wasmesh/wasmesh/xds/kong"
)

// Version is the Kong version wasmesh answers as (Via, GET /).
const Version = "3.9.0"

// EmptyConfig is the declarative configuration without entities.
const EmptyConfig = "_format_version: \"3.0\"\n"

// Options start a Gateway.
type Options struct {
	Settings *Settings
	// Declarative is the declarative config's text; nil takes
	// declarative_config_string, else reads declarative_config (an empty
	// configuration when neither is set).
	Declarative []byte
	// DrainTime bounds draining of replaced listeners and of shutdown;
	// zero means 5 s.
	DrainTime time.Duration
	// Warn receives configuration warnings (nil: the logger).
	Warn io.Writer
	// Hostname overrides os.Hostname (tests).
	Hostname string
	// deltaXDS makes a data plane use the incremental protocol (tests).
	deltaXDS bool
}

// Gateway is a running Kong-compatible gateway: the data plane serving the
// translated configuration and the Admin API.
type Gateway struct {
	settings *Settings
	opts     Options
	ctx      context.Context
	cancel   context.CancelFunc
	srv      *server.Server // nil on a control plane
	cp       *controlPlane  // set on a control plane
	quit     chan struct{}  // a control plane's Done
	logging  *server.Logging
	log      *zap.Logger
	hostname string
	nodeID   string
	started  time.Time
	drain    time.Duration

	applyMu sync.Mutex
	retired map[string]time.Time // cluster → when a listener using it was last replaced
	state   atomic.Pointer[snapshot]

	adminLns []net.Listener
	admin    *http.Server
}

// snapshot is one applied configuration.
type snapshot struct {
	cfg      *xkong.Config
	raw      []byte
	hash     string
	res      *xkong.Resources
	clusters []string
	at       int64
}

// Error is returned when a declarative configuration is rejected; Kong is
// the error in Kong's shape.
type Error struct {
	Kong *xkong.Error
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// kongError puts any configuration error in Kong's shape.
func kongError(err error) *Error {
	var ke *xkong.Error
	if errors.As(err, &ke) {
		return &Error{Kong: ke, Err: err}
	}
	msg := err.Error()
	return &Error{Err: err, Kong: &xkong.Error{
		Code: xkong.CodeDeclarativeConfig, Name: "invalid declarative configuration",
		Message: "declarative config is invalid: {error=" + strconv.Quote(msg) + "}",
		Fields:  map[string]any{"error": msg},
	}}
}

// Prepare parses and translates a declarative configuration with the
// settings, without touching a running server. Errors are *Error.
func Prepare(s *Settings, raw []byte, warn func(string)) (*xkong.Config, *xkong.Resources, error) {
	cfg, err := xkong.Parse(raw)
	if err != nil {
		return nil, nil, kongError(err)
	}
	assignIDs(cfg)
	if cs := chains(cfg); len(cs) > 0 && !s.Wasm {
		return nil, nil, kongError(fmt.Errorf("filter_chains: %d filter chain(s) but wasm is off (set wasm = on or KONG_WASM=on)", len(cs)))
	}
	sniCerts := false
	for _, c := range cfg.Certificates {
		sniCerts = sniCerts || len(c.SNIs) > 0
	}
	var addrs []string
	for _, l := range s.ProxyListen {
		if l.SSL && s.SSLCert == "" && !sniCerts {
			if warn != nil {
				warn(fmt.Sprintf("proxy_listen %s ssl: skipped, neither ssl_cert/ssl_cert_key nor certificates with snis are set", l.Address))
			}
			continue
		}
		addrs = append(addrs, l.String())
	}
	if len(addrs) == 0 {
		return nil, nil, kongError(fmt.Errorf("proxy_listen: no listener left to serve (ssl listeners need ssl_cert)"))
	}
	res, err := xkong.Translate(cfg, xkong.Options{
		FiltersPath: s.WasmFiltersPath, AllowedFilters: s.allowedFilters(), ProxyListen: addrs,
		SSLCert: s.SSLCert, SSLCertKey: s.SSLCertKey, Headers: s.Headers, Version: Version,
	})
	if err != nil {
		return nil, nil, kongError(err)
	}
	for _, ln := range res.Listeners {
		if err := addAccessLog(ln, s.ProxyAccessLog); err != nil {
			return nil, nil, kongError(fmt.Errorf("proxy_access_log: listener %s: %w", ln.GetName(), err))
		}
	}
	return cfg, res, nil
}

// addAccessLog adds proxy_access_log (a file path) to the listener's
// HTTP connection managers.
func addAccessLog(ln *listenerv3.Listener, path string) error {
	if path == "" {
		return nil
	}
	for _, fc := range ln.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			hcm := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
				return err
			}
			fl, err := anypb.New(&filev3.FileAccessLog{Path: path})
			if err != nil {
				return err
			}
			hcm.AccessLog = append(hcm.AccessLog, &accesslogv3.AccessLog{
				Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: fl},
			})
			a, err := anypb.New(hcm)
			if err != nil {
				return err
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}
	}
	return nil
}

// ServerOptions are the data plane's options for the settings.
func ServerOptions(s *Settings, drain time.Duration) (*server.Options, error) {
	lvl, err := EnvoyLogLevel(s.LogLevel)
	if err != nil {
		return nil, err
	}
	if drain <= 0 {
		drain = 5 * time.Second
	}
	args := []string{"-l", lvl, "--concurrency", strconv.Itoa(s.WorkerProcesses),
		"--drain-time-s", strconv.Itoa(max(int(drain/time.Second), 1))}
	if s.ProxyErrorLog != "" {
		args = append(args, "--log-path", s.ProxyErrorLog)
	}
	return server.ParseFlags(args, io.Discard)
}

// Start translates the declarative configuration, starts the data plane
// with it and opens the Admin API. ctx bounds the start only; Close stops.
func Start(ctx context.Context, o Options) (*Gateway, error) {
	s := o.Settings
	raw := o.Declarative
	if s.Role == RoleDataPlane {
		raw = []byte(EmptyConfig) // the configuration comes from the control plane
	}
	if raw == nil && s.DeclarativeConfigString != "" {
		raw = []byte(s.DeclarativeConfigString)
	}
	if raw == nil {
		if s.DeclarativeConfig == "" {
			raw = []byte(EmptyConfig)
		} else {
			b, err := os.ReadFile(s.DeclarativeConfig)
			if err != nil {
				return nil, fmt.Errorf("kong: declarative_config: %w", err)
			}
			raw = b
		}
	}
	if o.DrainTime <= 0 {
		o.DrainTime = 5 * time.Second
	}
	so, err := ServerOptions(s, o.DrainTime)
	if err != nil {
		return nil, fmt.Errorf("kong: %w", err)
	}
	logging, err := server.NewLogging(so)
	if err != nil {
		return nil, fmt.Errorf("kong: %w", err)
	}
	log := logging.Logger("kong")
	warn := func(msg string) {
		if o.Warn != nil {
			fmt.Fprintln(o.Warn, "warn:", msg)
			return
		}
		log.Warn(msg)
	}
	host := o.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	g := &Gateway{settings: s, opts: o, logging: logging, log: log, hostname: host,
		nodeID: StableID("node", host), started: time.Now(), drain: o.DrainTime,
		retired: map[string]time.Time{}}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if s.Role == RoleDataPlane {
		if err := g.startDataPlane(ctx, so); err != nil {
			g.Close()
			return nil, err
		}
		return g, nil
	}
	cfg, res, err := Prepare(s, raw, warn)
	if err != nil {
		g.cancel()
		logging.Close()
		return nil, err
	}
	if s.Role == RoleControlPlane {
		if err := g.startControlPlane(ctx, cfg, res, raw, warn); err != nil {
			g.Close()
			return nil, err
		}
		return g, nil
	}
	b := &bootstrapv3.Bootstrap{
		Node:            &corev3.Node{Id: g.nodeID, Cluster: "kong"},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Secrets: res.Secrets},
	}
	srv, err := server.New(ctx, so, b, logging)
	if err != nil {
		g.cancel()
		logging.Close()
		return nil, fmt.Errorf("kong: %w", err)
	}
	g.srv = srv
	if err := srv.Start(g.ctx); err != nil {
		g.Close()
		return nil, fmt.Errorf("kong: %w", err)
	}
	if err := g.apply(ctx, cfg, res, raw); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.startAdmin(warn); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Reload validates and applies a new declarative configuration; on error
// the running one keeps serving. Errors are *Error.
func (g *Gateway) Reload(ctx context.Context, raw []byte) (*xkong.Config, error) {
	cfg, res, err := Prepare(g.settings, raw, func(msg string) { g.log.Warn(msg) })
	if err != nil {
		return nil, err
	}
	if err := g.apply(ctx, cfg, res, raw); err != nil {
		return nil, err
	}
	return cfg, nil
}

// clusterValidator is the data plane's cluster check without side
// effects (server's dynamic plane has it).
type clusterValidator interface {
	ValidateCluster(c *clusterv3.Cluster) error
}

// apply validates every cluster, then adds or updates the clusters, swaps
// the listeners and removes the clusters no longer used.
func (g *Gateway) apply(ctx context.Context, cfg *xkong.Config, res *xkong.Resources, raw []byte) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	if g.cp != nil {
		return g.publish(ctx, cfg, res, raw)
	}
	dp := g.srv.XDSDataPlane()
	var errs []error
	v, _ := dp.(clusterValidator)
	for _, c := range res.Clusters {
		if v == nil {
			break
		}
		if err := v.ValidateCluster(c); err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", c.GetName(), err))
		}
	}
	if len(errs) > 0 {
		return kongError(errors.Join(errs...))
	}
	t0 := time.Now()
	names := make([]string, 0, len(res.Clusters))
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, c := range res.Clusters {
		if err := dp.AddCluster(actx, c); err != nil {
			return kongError(fmt.Errorf("cluster %q: %w", c.GetName(), err))
		}
		names = append(names, c.GetName())
	}
	t1 := time.Now()
	if err := dp.UpdateListeners(g.ctx, res.Listeners); err != nil {
		return kongError(err)
	}
	g.log.Info("configuration applied", zap.Int("clusters", len(names)), zap.Int("listeners", len(res.Listeners)),
		zap.Duration("clusters_time", t1.Sub(t0)), zap.Duration("listeners_time", time.Since(t1)))
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	if old := g.state.Load(); old != nil {
		// Connections on the replaced listeners may still route to the
		// old clusters while they drain: a cluster no longer used is
		// removed once no listener that used it can be draining.
		now := time.Now()
		var gone []string
		for _, n := range old.clusters {
			g.retired[n] = now
			if !keep[n] {
				gone = append(gone, n)
			}
		}
		if len(gone) > 0 {
			time.AfterFunc(g.staleAfter(), func() { g.removeStale(gone) })
		}
	}
	g.state.Store(&snapshot{cfg: cfg, raw: raw, hash: md5hex(raw), res: res,
		clusters: names, at: time.Now().Unix()})
	return nil
}

// staleAfter is how long a replaced listener may still use its clusters.
func (g *Gateway) staleAfter() time.Duration { return 2*g.drain + time.Second }

func (g *Gateway) removeStale(names []string) {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	if g.ctx.Err() != nil {
		return
	}
	used := map[string]bool{}
	for _, n := range g.state.Load().clusters {
		used[n] = true
	}
	var later []string
	wait := time.Duration(0)
	for _, n := range names {
		if used[n] {
			continue
		}
		if left := g.staleAfter() - time.Since(g.retired[n]); left > 0 {
			later = append(later, n)
			wait = max(wait, left)
			continue
		}
		delete(g.retired, n)
		g.srv.XDSDataPlane().RemoveCluster(n)
	}
	if len(later) > 0 {
		time.AfterFunc(wait, func() { g.removeStale(later) })
	}
}

// startAdmin opens admin_listen (an ssl entry needs ssl_cert, or is
// skipped with a warning).
func (g *Gateway) startAdmin(warn func(string)) error {
	g.admin = &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var cert *tls.Certificate
	if g.settings.SSLCert != "" {
		c, err := tls.LoadX509KeyPair(g.settings.SSLCert, g.settings.SSLCertKey)
		if err != nil {
			return fmt.Errorf("kong: ssl_cert: %w", err)
		}
		cert = &c
	}
	for _, l := range g.settings.AdminListen {
		if l.SSL && cert == nil {
			warn(fmt.Sprintf("admin_listen %s ssl: skipped, ssl_cert and ssl_cert_key are not set", l.Address))
			continue
		}
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			return fmt.Errorf("kong: admin_listen %s: %w", l.Address, err)
		}
		if l.SSL {
			protos := []string{"http/1.1"}
			if l.HTTP2 {
				protos = []string{"h2", "http/1.1"}
			}
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: protos})
		}
		g.adminLns = append(g.adminLns, ln)
		go g.admin.Serve(ln) //nolint:errcheck // ends with Close
		g.log.Info("admin API listening", zap.Stringer("address", ln.Addr()))
	}
	return nil
}

// AdminAddrs are the Admin API's bound addresses.
func (g *Gateway) AdminAddrs() []net.Addr {
	out := make([]net.Addr, 0, len(g.adminLns))
	for _, ln := range g.adminLns {
		out = append(out, ln.Addr())
	}
	return out
}

// ProxyAddr is the bound address of proxy listener i (in proxy_listen
// order, ssl listeners without a certificate skipped), or nil.
// A control plane has none (it does not proxy).
func (g *Gateway) ProxyAddr(i int) net.Addr {
	if g.srv == nil {
		return nil
	}
	return g.srv.ListenerAddr(fmt.Sprintf("kong_proxy_%d", i))
}

// Done is closed when the gateway was asked to quit (a control plane:
// when cluster_listen stopped serving).
func (g *Gateway) Done() <-chan struct{} {
	if g.srv == nil {
		return g.quit
	}
	return g.srv.Done()
}

// Shutdown drains the proxy and stops everything.
func (g *Gateway) Shutdown(ctx context.Context) {
	if g.admin != nil {
		g.admin.Close()
	}
	if g.cp != nil {
		g.cp.close()
	}
	if g.srv != nil {
		g.srv.Shutdown(ctx)
	}
	g.cancel()
	g.logging.Close()
}

// Close stops everything at once.
func (g *Gateway) Close() {
	g.cancel()
	if g.admin != nil {
		g.admin.Close()
	}
	if g.cp != nil {
		g.cp.close()
	}
	if g.srv != nil {
		g.srv.Close(context.Background())
	}
	g.cancel()
	g.logging.Close()
}

// availableFilters are the filters GET / lists: <name>.wasm files in
// wasm_filters_path that wasm_filters allows.
func (g *Gateway) availableFilters() []obj {
	out := []obj{}
	if !g.settings.Wasm || g.settings.WasmFiltersPath == "" {
		return out
	}
	ents, err := os.ReadDir(g.settings.WasmFiltersPath)
	if err != nil {
		return out
	}
	allowed := g.settings.allowedFilters()
	for _, e := range ents {
		name, ok := cutSuffix(e.Name(), ".wasm")
		if !ok || e.IsDir() {
			continue
		}
		ok = false
		for _, a := range allowed {
			ok = ok || a == "user" || a == name
		}
		if ok {
			out = append(out, obj{"name": name, "path": xkong.FilterFile(g.settings.WasmFiltersPath, name)})
		}
	}
	return out
}

func cutSuffix(s, suf string) (string, bool) {
	if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
		return s[:len(s)-len(suf)], true
	}
	return s, false
}

func md5hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
