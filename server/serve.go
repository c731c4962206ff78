package server

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/admin"
	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/filterchain/wasmfilter"
	"github.com/wasmesh/wasmesh/listener"
	"github.com/wasmesh/wasmesh/listener/hcm"
	"github.com/wasmesh/wasmesh/stats"
	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/pluginconfig"
	"github.com/wasmesh/wasmesh/wasm/upstream"
	"github.com/wasmesh/wasmesh/xds/client"
)

// wasmServiceTypeURL is envoy.extensions.wasm.v3.WasmService, the
// envoy.bootstrap.wasm bootstrap extension.
const wasmServiceTypeURL = "type.googleapis.com/envoy.extensions.wasm.v3.WasmService"

// Server is a running proxy: the compiled configuration and everything
// serving it.
type Server struct {
	opts      *Options
	bootstrap *bootstrapv3.Bootstrap
	logging   *Logging
	log       *zap.Logger
	start     time.Time

	Stats    *stats.Store
	Wasm     *wasm.Runtime
	Clusters *cluster.Manager
	callouts *upstream.Static
	registry *filterchain.Registry
	env      *filterchain.Env
	secrets  secretSet
	logFiles *hcm.LogFiles
	connIDs  atomic.Uint64

	// dyn records the resources xDS applied, for /config_dump.
	dyn dynamicResources

	mu        sync.Mutex
	listeners map[string]*listener.Listener
	services  []*pluginconfig.Loaded

	admin    *admin.Admin
	adminPtr atomic.Pointer[admin.Admin]
	adminLn  net.Listener
	state    atomic.Int32 // adminv3.ServerInfo_State
	quit     chan struct{}
	quitOnce sync.Once
	// closed ends the server's own goroutines.
	closed    chan struct{}
	closeOnce sync.Once
}

// New compiles a bootstrap into a server without opening sockets. Every
// problem is reported at once, each naming its resource and field.
func New(ctx context.Context, o *Options, b *bootstrapv3.Bootstrap, logging *Logging) (*Server, error) {
	if logging == nil {
		var err error
		if logging, err = NewLogging(o); err != nil {
			return nil, err
		}
	}
	s := &Server{
		opts: o, bootstrap: b, logging: logging, log: logging.Logger("main"), start: time.Now(),
		listeners: map[string]*listener.Listener{}, secrets: secretSet{}, logFiles: hcm.NewLogFiles(),
		quit: make(chan struct{}), closed: make(chan struct{}),
	}
	s.state.Store(int32(adminv3.ServerInfo_PRE_INITIALIZING))
	statsOpts, err := stats.OptionsFromProto(b.GetStatsConfig())
	if err != nil {
		return nil, fmt.Errorf("stats_config: %w", err)
	}
	s.Stats = stats.New(statsOpts)
	// Callouts reach clusters by name; the cluster manager is created just
	// below and looked up at call time.
	var clusters *cluster.Manager
	callouts, err := upstream.NewStatic(upstream.Config{
		Logger: logging.Logger("wasm"),
		Lookup: func(name string) (upstream.Cluster, bool) { return calloutClusters(clusters)(name) },
	})
	if err != nil {
		return nil, err
	}
	s.callouts = callouts
	s.Wasm, err = wasm.NewRuntime(ctx, wasm.Options{Logger: logging.Logger("wasm"), Upstreams: callouts})
	if err != nil {
		return nil, err
	}
	s.Stats.AddCustomSource(s.Wasm.Metrics())
	for _, sec := range b.GetStaticResources().GetSecrets() {
		s.secrets[sec.GetName()] = sec
	}
	s.Clusters = cluster.NewManager(ctx, cluster.Options{
		Logger: logging.Logger("upstream"), Stats: clusterStats{s.Stats}, Secrets: serverSecrets{s},
	})
	clusters = s.Clusters
	s.registry = filterchain.NewRegistry()
	router.Register(s.registry)
	wasmfilter.Register(s.registry)
	s.env = &filterchain.Env{
		Logger:      logging.Logger("http"),
		Wasm:        s.Wasm,
		Concurrency: o.Concurrency,
		Values: map[string]any{
			router.EnvKeyClusters:             routerClusters{s.Clusters},
			wasmfilter.EnvKeyRemote:           remoteFetcher{s.Clusters},
			wasmfilter.EnvKeyStreamProperties: wasmfilter.PropertiesFunc(streamProperties(b.GetNode())),
		},
	}

	var errs []error
	for i, c := range b.GetStaticResources().GetClusters() {
		if err := s.Clusters.Add(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("static_resources.clusters[%d]: %w", i, err))
		}
	}
	for i, ext := range b.GetBootstrapExtensions() {
		if err := s.startBootstrapExtension(ctx, ext); err != nil {
			errs = append(errs, fmt.Errorf("bootstrap_extensions[%d] %q: %w", i, ext.GetName(), err))
		}
	}
	for i, l := range b.GetStaticResources().GetListeners() {
		cl, err := s.compileListener(ctx, l)
		if err != nil {
			errs = append(errs, fmt.Errorf("static_resources.listeners[%d]: %w", i, err))
			continue
		}
		if _, dup := s.listeners[l.GetName()]; dup {
			errs = append(errs, fmt.Errorf("static_resources.listeners[%d].name: duplicate listener %q", i, l.GetName()))
			cl.Stop()
			continue
		}
		s.listeners[l.GetName()] = cl
	}
	if len(errs) > 0 {
		s.Close(ctx)
		return nil, &Errors{List: errs}
	}
	return s, nil
}

// Errors is every problem found compiling a configuration.
type Errors struct{ List []error }

func (e *Errors) Error() string {
	msg := fmt.Sprintf("configuration: %d problem(s):", len(e.List))
	for _, err := range e.List {
		msg += "\n  " + err.Error()
	}
	return msg
}

func (e *Errors) Unwrap() []error { return e.List }

func (s *Server) listenerDeps() listener.Deps {
	return listener.Deps{
		Logger: s.logging.Logger("conn_handler"),
		Stats:  s.Stats,
		HCM: hcm.Deps{
			Logger:        s.logging.Logger("http"),
			Registry:      s.registry,
			Env:           s.env,
			Stats:         s.Stats,
			ClusterExists: func(n string) bool { return s.Clusters.Get(n) != nil },
			RDS:           s.rdsProvider(),
			AccessLogs:    s.logFiles,
			HealthCheckFailed: func() bool {
				a := s.adminPtr.Load()
				return a != nil && a.HealthCheckFailed()
			},
		},
		Dialer:  tcpDialer{s.Clusters},
		Secrets: serverSecrets{s},
		ConnIDs: &s.connIDs,
	}
}

func (s *Server) compileListener(ctx context.Context, l *listenerv3.Listener) (*listener.Listener, error) {
	return listener.Compile(ctx, l, s.listenerDeps())
}

// startBootstrapExtension runs an envoy.bootstrap.wasm service.
func (s *Server) startBootstrapExtension(ctx context.Context, ext *corev3.TypedExtensionConfig) error {
	tc := ext.GetTypedConfig()
	if tc.GetTypeUrl() != wasmServiceTypeURL {
		return fmt.Errorf("typed_config: unsupported bootstrap extension %q", tc.GetTypeUrl())
	}
	svc := &wasmv3.WasmService{}
	if err := tc.UnmarshalTo(svc); err != nil {
		return fmt.Errorf("typed_config: %w", err)
	}
	if err := svc.ValidateAll(); err != nil {
		return fmt.Errorf("typed_config: %w", err)
	}
	instances := s.opts.Concurrency
	if svc.GetSingleton() {
		instances = 1
	}
	loaded, err := pluginconfig.Load(ctx, s.Wasm, svc.GetConfig(), pluginconfig.Options{
		Instances: instances, Remote: remoteFetcher{s.Clusters},
	})
	if err != nil {
		return fmt.Errorf("typed_config.config.%w", err)
	}
	s.mu.Lock()
	s.services = append(s.services, loaded)
	s.mu.Unlock()
	return nil
}

// Start opens the listeners and the admin endpoint.
func (s *Server) Start(ctx context.Context) error {
	s.state.Store(int32(adminv3.ServerInfo_INITIALIZING))
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.listeners))
	for _, n := range names {
		if err := s.listeners[n].Start(ctx); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("listener %q: %w", n, err)
		}
		s.log.Info("listener started", zap.String("listener", n), zap.Stringer("address", s.listeners[n].Addr()))
	}
	s.mu.Unlock()
	if err := s.startAdmin(ctx); err != nil {
		return err
	}
	s.startStatsFlush()
	if err := s.StartXDS(ctx); err != nil { // dynamic_resources: server/dynamic.go
		return err
	}
	s.state.Store(int32(adminv3.ServerInfo_LIVE))
	return nil
}

// startStatsFlush closes the histogram interval every
// stats_flush_interval (5 s by default), as Envoy's flush does.
func (s *Server) startStatsFlush() {
	every := 5 * time.Second
	if d := s.bootstrap.GetStatsFlushInterval(); d != nil && d.AsDuration() > 0 {
		every = d.AsDuration()
	}
	t := time.NewTicker(every)
	go func() {
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-s.closed:
				return
			case <-t.C:
				s.Stats.Flush()
			}
		}
	}()
}

// ListenerAddr returns the bound address of a listener (port 0 resolved).
func (s *Server) ListenerAddr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[name]; ok {
		return l.Addr()
	}
	return nil
}

// AdminAddr returns the admin endpoint's address, or nil.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Quit asks the server to drain and exit (/quitquitquit).
func (s *Server) Quit() { s.quitOnce.Do(func() { close(s.quit) }) }

// Done is closed when Quit was called.
func (s *Server) Done() <-chan struct{} { return s.quit }

// UpdateListeners swaps the listener set: a listener whose name exists
// keeps its socket (the new version adopts it, the old one drains its
// connections); new names start; missing names drain and stop. Nothing is
// changed when any listener fails to compile.
func (s *Server) UpdateListeners(ctx context.Context, ls []*listenerv3.Listener) error {
	compiled := map[string]*listener.Listener{}
	var errs []error
	for i, l := range ls {
		cl, err := s.compileListener(ctx, l)
		if err != nil {
			errs = append(errs, fmt.Errorf("listeners[%d]: %w", i, err))
			continue
		}
		compiled[l.GetName()] = cl
	}
	if len(errs) > 0 {
		for _, cl := range compiled {
			cl.Stop()
		}
		return &Errors{List: errs}
	}
	s.mu.Lock()
	old := s.listeners
	var retire []*listener.Listener
	for name, cl := range compiled {
		if prev, ok := old[name]; ok && prev.Address() == cl.Address() {
			if err := cl.Adopt(prev); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", name, err))
				continue
			}
			retire = append(retire, prev)
			continue
		}
		if prev, ok := old[name]; ok {
			retire = append(retire, prev)
		}
		if err := cl.Start(ctx); err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", name, err))
		}
	}
	for name, prev := range old {
		if _, ok := compiled[name]; !ok {
			retire = append(retire, prev)
		}
	}
	s.listeners = compiled
	s.mu.Unlock()
	drain := s.opts.DrainTime
	for _, l := range retire {
		go func(l *listener.Listener) {
			dctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			_ = l.Drain(dctx, drain)
			_ = l.Stop()
		}(l)
	}
	if len(errs) > 0 {
		return &Errors{List: errs}
	}
	return nil
}

// Shutdown drains the listeners for up to the drain time, then stops
// everything.
func (s *Server) Shutdown(ctx context.Context) {
	s.state.Store(int32(adminv3.ServerInfo_DRAINING))
	s.mu.Lock()
	ls := make([]*listener.Listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	drain := s.opts.DrainTime
	if s.opts.DrainStrategy == "immediate" && drain > time.Second {
		drain = time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, drain)
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func(l *listener.Listener) {
			defer wg.Done()
			_ = l.Drain(dctx, drain)
		}(l)
	}
	wg.Wait()
	cancel()
	s.Close(ctx)
}

// Close stops everything at once.
func (s *Server) Close(ctx context.Context) {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	ls := s.listeners
	s.listeners = map[string]*listener.Listener{}
	services := s.services
	s.services = nil
	s.mu.Unlock()
	for _, l := range ls {
		_ = l.Stop()
	}
	for _, svc := range services {
		svc.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
	if s.Clusters != nil {
		s.Clusters.Close()
	}
	if s.Wasm != nil {
		s.Wasm.Close(ctx)
	}
	if s.callouts != nil {
		s.callouts.Close()
	}
	s.logFiles.Close()
}

// Validate compiles the whole configuration without opening sockets and
// returns every problem (--mode validate).
func Validate(ctx context.Context, o *Options, b *bootstrapv3.Bootstrap) error {
	logging, err := NewLogging(o)
	if err != nil {
		return err
	}
	s, err := New(ctx, o, b, logging)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	if dr := b.GetDynamicResources(); dr != nil {
		// Check the xDS configuration without connecting, as Envoy's
		// validate mode does.
		if _, err := client.FromBootstrap(dr, b.GetNode(), s.clusterGRPCDialer); err != nil {
			return &Errors{List: []error{fmt.Errorf("dynamic_resources: %w", err)}}
		}
	}
	return nil
}

// Serve runs the proxy until ctx ends or /quitquitquit, then drains.
func Serve(ctx context.Context, o *Options, b *bootstrapv3.Bootstrap) error {
	logging, err := NewLogging(o)
	if err != nil {
		return err
	}
	defer logging.Close()
	s, err := New(ctx, o, b, logging)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		s.Close(context.Background())
		return err
	}
	if o.Mode == "init_only" {
		s.Close(context.Background())
		return nil
	}
	select {
	case <-ctx.Done():
	case <-s.quit:
	}
	s.log.Info("draining", zap.Duration("drain_time", o.DrainTime))
	s.Shutdown(context.Background())
	return nil
}
