package server

import (
	"context"
	"fmt"
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/listener/hcm"
	"github.com/wasmesh/wasmesh/route"
	"github.com/wasmesh/wasmesh/stats"
	"github.com/wasmesh/wasmesh/xds/client"
)

// StartXDS starts the xDS client when the bootstrap has
// dynamic_resources, and waits until the initial clusters and listeners
// were applied (or their initial_fetch_timeout ran out), as Envoy's
// initialisation does. The client runs until the server closes, and keeps
// the last accepted configuration serving while the control plane is
// unreachable. Start calls it.
func (s *Server) StartXDS(ctx context.Context) error {
	dr := s.bootstrap.GetDynamicResources()
	if dr == nil {
		return nil
	}
	cfg, err := client.FromBootstrap(dr, s.bootstrap.GetNode(), s.clusterGRPCDialer)
	if err != nil {
		return err
	}
	if err := client.RTDSFromBootstrap(s.bootstrap.GetLayeredRuntime(), &cfg); err != nil {
		return err
	}
	cfg.Logger = s.logging.Logger("config")
	cfg.Stats = xdsStats{s.Stats}
	cfg.Secrets = s.dyn.startSDS()
	cfg.StaticListeners = s.bootstrap.GetStaticResources().GetListeners()
	if s.rdsProvider() != nil {
		cfg.Sources = s.dyn.routes.sources
	}
	c := client.New(cfg, s.XDSDataPlane())
	s.dyn.mu.Lock()
	s.dyn.version = c.Version
	s.dyn.mu.Unlock()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		<-s.closed
		cancel()
	}()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := c.Run(rctx); err != nil {
			s.log.Error("xds client stopped", zap.Error(err))
		}
	}()
	select {
	case <-c.Ready():
	case <-stopped:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
	case <-s.quit:
	}
	return nil
}

// clusterGRPCDialer reaches the control plane through a static cluster
// (grpc_services[].envoy_grpc.cluster_name), picking a host at each dial.
func (s *Server) clusterGRPCDialer(name string) (client.DialFunc, error) {
	if s.Clusters.Get(name) == nil {
		return nil, fmt.Errorf("unknown cluster %q (the xDS cluster must be a static cluster)", name)
	}
	return func(ctx context.Context, _ string) (net.Conn, error) {
		c := s.Clusters.Get(name)
		if c == nil {
			return nil, fmt.Errorf("%w %q", cluster.ErrUnknownCluster, name)
		}
		conn, _, err := c.Dial(ctx, cluster.LoadBalancerContext{})
		return conn, err
	}, nil
}

// XDSDataPlane is the server's side of the xDS client: dynamic clusters
// through the cluster manager, dynamic listeners swapped in next to the
// static ones.
func (s *Server) XDSDataPlane() client.DataPlane { return dynamicPlane{s} }

type dynamicPlane struct{ s *Server }

func (d dynamicPlane) staticCluster(name string) bool {
	for _, c := range d.s.bootstrap.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

func (d dynamicPlane) ValidateCluster(c *clusterv3.Cluster) error {
	if d.staticCluster(c.GetName()) {
		return fmt.Errorf("cluster %q: name: a static cluster cannot be replaced by CDS", c.GetName())
	}
	return cluster.Validate(c, cluster.Options{Secrets: serverSecrets{d.s}})
}

func (d dynamicPlane) AddCluster(ctx context.Context, c *clusterv3.Cluster) error {
	if d.staticCluster(c.GetName()) {
		return fmt.Errorf("cluster %q: name: a static cluster cannot be replaced by CDS", c.GetName())
	}
	if err := d.s.Clusters.Add(ctx, c); err != nil {
		return err
	}
	d.s.dyn.setCluster(c)
	return nil
}

func (d dynamicPlane) RemoveCluster(name string) bool {
	if d.staticCluster(name) {
		return false
	}
	d.s.dyn.removeCluster(name)
	return d.s.Clusters.Remove(name)
}

// ApplyClusters applies the clusters of one xDS response with one change
// of the cluster manager (client.ClusterApplier).
func (d dynamicPlane) ApplyClusters(ctx context.Context, adds []*clusterv3.Cluster, removes []string) []error {
	errs := make([]error, len(adds))
	var ok []*clusterv3.Cluster
	var at []int
	for i, c := range adds {
		if d.staticCluster(c.GetName()) {
			errs[i] = fmt.Errorf("cluster %q: name: a static cluster cannot be replaced by CDS", c.GetName())
			continue
		}
		ok, at = append(ok, c), append(at, i)
	}
	var gone []string
	for _, name := range removes {
		if !d.staticCluster(name) {
			gone = append(gone, name)
			d.s.dyn.removeCluster(name)
		}
	}
	for j, err := range d.s.Clusters.Apply(ctx, ok, gone) {
		errs[at[j]] = err
		if err == nil {
			d.s.dyn.setCluster(ok[j])
		}
	}
	return errs
}

func (d dynamicPlane) UpdateEndpoints(name string, cla *endpointv3.ClusterLoadAssignment) error {
	return d.s.Clusters.UpdateEndpoints(name, cla)
}

// UpdateListeners swaps in the static listeners plus ls; a listener
// keeping its name and address keeps its socket.
func (d dynamicPlane) UpdateListeners(ctx context.Context, ls []*listenerv3.Listener) error {
	static := d.s.bootstrap.GetStaticResources().GetListeners()
	names := map[string]bool{}
	for _, l := range static {
		names[l.GetName()] = true
	}
	var errs []error
	for _, l := range ls {
		if names[l.GetName()] {
			errs = append(errs, fmt.Errorf("listener %q: name: a static listener cannot be replaced by LDS", l.GetName()))
		}
	}
	if len(errs) > 0 {
		return &Errors{List: errs}
	}
	all := make([]*listenerv3.Listener, 0, len(static)+len(ls))
	all = append(all, static...)
	all = append(all, ls...)
	if err := d.s.UpdateListeners(ctx, all); err != nil {
		return err
	}
	d.s.dyn.setListeners(ls)
	return nil
}

// UpdateRoutes applies route configurations discovered over RDS to the
// connection managers following them (client.RouteUpdater).
func (d dynamicPlane) UpdateRoutes(ctx context.Context, rcs []*routev3.RouteConfiguration, versions []string) []error {
	return d.s.dyn.routes.update(ctx, rcs, versions)
}

// ForgetRoutes drops route configurations no listener names any more.
func (d dynamicPlane) ForgetRoutes(names []string) { d.s.dyn.routes.forget(names) }

// UpdateExtensionConfigs applies HTTP filter configurations discovered over
// ECDS to the connection managers using them
// (client.ExtensionConfigUpdater). One no connection manager uses yet is
// checked by compiling it as a filter chain of its own.
func (d dynamicPlane) UpdateExtensionConfigs(ctx context.Context, tcs []*corev3.TypedExtensionConfig, versions []string) []error {
	errs := d.s.dyn.routes.updateFilters(ctx, tcs, versions, func(ctx context.Context, tc *corev3.TypedExtensionConfig) error {
		routerAny, err := anypb.New(&routerv3.Router{})
		if err != nil {
			return fmt.Errorf("router filter config: %w", err)
		}
		chain, err := filterchain.CompileChain(ctx, []*hcmv3.HttpFilter{
			{Name: tc.GetName(), ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: tc.GetTypedConfig()}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: routerAny}},
		}, d.s.registry, d.s.env)
		if err != nil {
			return err
		}
		chain.Close()
		return nil
	})
	// Envoy's extension_config_discovery.http_filter.<name>.* stats.
	for i, tc := range tcs {
		stat := "config_reload"
		if errs[i] != nil {
			stat = "config_fail"
		}
		d.s.Stats.Counter("extension_config_discovery.http_filter." + tc.GetName() + "." + stat).Inc()
	}
	return errs
}

// ForgetExtensionConfigs drops extension configurations no listener
// names any more.
func (d dynamicPlane) ForgetExtensionConfigs(names []string) { d.s.dyn.routes.forgetFilters(names) }

// rdsProvider is the connection managers' source of RDS route
// configurations and ECDS filter configurations; nil without
// dynamic_resources (no xDS client to fetch them).
func (s *Server) rdsProvider() hcm.RouteProvider {
	dr := s.bootstrap.GetDynamicResources()
	if dr == nil {
		return nil
	}
	s.dyn.routes.sourcesOnce.Do(func() {
		s.dyn.routes.sources = client.NewSources(s.clusterGRPCDialer, dr.GetAdsConfig() != nil)
	})
	return &s.dyn.routes
}

// CheckConfigSource implements hcm.SourceChecker: the config source of a
// connection manager's RDS or of an HTTP filter's ECDS is `ads: {}` or an
// api_config_source, the first one seen for the type being the one used.
func (r *routeRegistry) CheckConfigSource(typeURL string, cs *corev3.ConfigSource) error {
	return r.sources.Use(typeURL, cs)
}

// routeRegistry holds the route configurations accepted over RDS and the
// HTTP filter configurations accepted over ECDS, and the connection
// managers following each. An update is compiled by every manager
// following it before any of them swaps it in: a configuration one of
// them rejects changes nothing. One lock serialises RDS and ECDS updates.
type routeRegistry struct {
	mu       sync.Mutex
	configs  map[string]routeEntry
	watchers map[string]map[*routeWatch]struct{}
	// ECDS, by extension config name.
	filters        map[string]filterEntry
	filterWatchers map[string]map[*routeWatch]struct{}
	// sources picks the config source of RDS and ECDS (the xDS client
	// requests their names there); set once by rdsProvider.
	sources     *client.Sources
	sourcesOnce sync.Once
}

type routeEntry struct {
	rc      *routev3.RouteConfiguration
	version string
	updated time.Time
}

type filterEntry struct {
	tc      *corev3.TypedExtensionConfig
	version string
	updated time.Time
}

type routeWatch struct{ w hcm.RouteWatcher }

// Watch implements hcm.RouteProvider.
func (r *routeRegistry) Watch(route string, filters []string, w hcm.RouteWatcher,
	init func(*routev3.RouteConfiguration, map[string]*corev3.TypedExtensionConfig) error) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rc *routev3.RouteConfiguration
	if e, ok := r.configs[route]; ok && route != "" {
		rc = e.rc
	}
	tcs := map[string]*corev3.TypedExtensionConfig{}
	for _, n := range filters {
		if e, ok := r.filters[n]; ok {
			tcs[n] = e.tc
		}
	}
	if err := init(rc, tcs); err != nil {
		return nil, err
	}
	rw := &routeWatch{w: w}
	add := func(m *map[string]map[*routeWatch]struct{}, name string) {
		if *m == nil {
			*m = map[string]map[*routeWatch]struct{}{}
		}
		if (*m)[name] == nil {
			(*m)[name] = map[*routeWatch]struct{}{}
		}
		(*m)[name][rw] = struct{}{}
	}
	del := func(m map[string]map[*routeWatch]struct{}, name string) {
		delete(m[name], rw)
		if len(m[name]) == 0 {
			delete(m, name)
		}
	}
	if route != "" {
		add(&r.watchers, route)
	}
	for _, n := range filters {
		add(&r.filterWatchers, n)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if route != "" {
				del(r.watchers, route)
			}
			for _, n := range filters {
				del(r.filterWatchers, n)
			}
		})
	}, nil
}

// updateFilters applies ECDS configurations; check validates one that no
// connection manager uses yet.
func (r *routeRegistry) updateFilters(ctx context.Context, tcs []*corev3.TypedExtensionConfig, versions []string,
	check func(context.Context, *corev3.TypedExtensionConfig) error) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make([]error, len(tcs))
	now := time.Now()
	for i, tc := range tcs {
		name := tc.GetName()
		if len(r.filterWatchers[name]) == 0 {
			if err := check(ctx, tc); err != nil {
				errs[i] = fmt.Errorf("extension_config %q: %w", name, err)
				continue
			}
		}
		if err := prepareAll(r.filterWatchers[name], func(w hcm.RouteWatcher) (func(bool), error) {
			return w.PrepareFilterConfig(ctx, tc)
		}); err != nil {
			errs[i] = fmt.Errorf("extension_config %q: %w", name, err)
			continue
		}
		if r.filters == nil {
			r.filters = map[string]filterEntry{}
		}
		r.filters[name] = filterEntry{tc: tc, version: versions[i], updated: now}
	}
	return errs
}

func (r *routeRegistry) forgetFilters(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		delete(r.filters, n)
	}
}

func (r *routeRegistry) update(ctx context.Context, rcs []*routev3.RouteConfiguration, versions []string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make([]error, len(rcs))
	now := time.Now()
	for i, rc := range rcs {
		name := rc.GetName()
		if len(r.watchers[name]) == 0 {
			// No listener uses it yet (it warms): check it alone.
			if _, err := route.Compile(rc, route.CompileOptions{}); err != nil {
				errs[i] = err
				continue
			}
		}
		if err := prepareAll(r.watchers[name], func(w hcm.RouteWatcher) (func(bool), error) {
			return w.PrepareRoutes(ctx, rc)
		}); err != nil {
			errs[i] = err
			continue
		}
		if r.configs == nil {
			r.configs = map[string]routeEntry{}
		}
		r.configs[name] = routeEntry{rc: rc, version: versions[i], updated: now}
	}
	return errs
}

// prepareAll prepares a change on every watcher, then commits it on all of
// them if each prepared it, or rolls every prepared one back: the
// connection managers sharing a resource switch together or not at all.
func prepareAll(watchers map[*routeWatch]struct{}, prepare func(hcm.RouteWatcher) (func(bool), error)) error {
	var commits []func(bool)
	var err error
	for rw := range watchers {
		var commit func(bool)
		if commit, err = prepare(rw.w); err != nil {
			break
		}
		commits = append(commits, commit)
	}
	for _, commit := range commits {
		commit(err == nil)
	}
	return err
}

func (r *routeRegistry) forget(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		delete(r.configs, n)
	}
}

// dump gives /config_dump's dynamic_route_configs, sorted by name.
func (r *routeRegistry) dump() []*adminv3.RoutesConfigDump_DynamicRouteConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := slices.Sorted(maps.Keys(r.configs))
	out := make([]*adminv3.RoutesConfigDump_DynamicRouteConfig, 0, len(names))
	for _, n := range names {
		e := r.configs[n]
		a, _ := anypb.New(e.rc)
		out = append(out, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: e.version, RouteConfig: a, LastUpdated: timestamppb.New(e.updated)})
	}
	return out
}

// dumpRoutes gives /config_dump's dynamic_route_configs.
func (d *dynamicResources) dumpRoutes() []*adminv3.RoutesConfigDump_DynamicRouteConfig {
	return d.routes.dump()
}

// dynamicResources records what xDS applied, for /config_dump.
type dynamicResources struct {
	// routes are the RDS route configurations (they have their own lock).
	routes    routeRegistry
	mu        sync.Mutex
	clusters  map[string]dynamicEntry[*clusterv3.Cluster]
	listeners map[string]dynamicEntry[*listenerv3.Listener]
	// version reports the xDS client's accepted version of a type.
	version func(typeURL string) string
	// sds holds the secrets delivered over SDS (secrets.go).
	sds        *client.Secrets
	sdsOnce    sync.Once
	sdsStarted atomic.Bool
	// runtime is the layered runtime (/runtime), whose rtds_layers the
	// xDS client fills.
	runtime     *runtimeLayers
	runtimeOnce sync.Once
}

// runtimeLayers is the server's layered runtime, shared by the admin and
// the xDS client.
func (s *Server) runtimeLayers() *runtimeLayers {
	s.dyn.runtimeOnce.Do(func() { s.dyn.runtime = newRuntimeLayers(s.bootstrap.GetLayeredRuntime()) })
	return s.dyn.runtime
}

// UpdateRuntimeLayer replaces the values of the rtds_layer fetching the
// named Runtime resource (client.RuntimeUpdater); nil empties it.
func (d dynamicPlane) UpdateRuntimeLayer(name string, values map[string]string) {
	r := d.s.runtimeLayers()
	if values == nil {
		values = map[string]string{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, l := range d.s.bootstrap.GetLayeredRuntime().GetLayers() {
		if l.GetRtdsLayer().GetName() == name && i < len(r.layers) {
			r.layers[i].Values = values
		}
	}
}

type dynamicEntry[T any] struct {
	res     T
	updated time.Time
}

// versionOf is the xDS client's accepted version of a resource type (all
// dynamic resources of a type are shown with it). It must not be called
// with d.mu held by the client's apply path.
func (d *dynamicResources) versionOf(typeURL string) string {
	d.mu.Lock()
	v := d.version
	d.mu.Unlock()
	if v == nil {
		return ""
	}
	return v(typeURL)
}

func (d *dynamicResources) setCluster(c *clusterv3.Cluster) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.clusters == nil {
		d.clusters = map[string]dynamicEntry[*clusterv3.Cluster]{}
	}
	d.clusters[c.GetName()] = dynamicEntry[*clusterv3.Cluster]{res: c, updated: time.Now()}
}

func (d *dynamicResources) removeCluster(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.clusters, name)
}

func (d *dynamicResources) setListeners(ls []*listenerv3.Listener) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[string]dynamicEntry[*listenerv3.Listener], len(ls))
	for _, l := range ls {
		e, ok := d.listeners[l.GetName()]
		if !ok || !proto.Equal(e.res, l) {
			e = dynamicEntry[*listenerv3.Listener]{res: l, updated: time.Now()}
		}
		next[l.GetName()] = e
	}
	d.listeners = next
}

// dumpClusters and dumpListeners give /config_dump's dynamic sections,
// sorted by name.
func (d *dynamicResources) dumpClusters() []*adminv3.ClustersConfigDump_DynamicCluster {
	version := d.versionOf(client.TypeCluster)
	d.mu.Lock()
	defer d.mu.Unlock()
	names := slices.Sorted(maps.Keys(d.clusters))
	out := make([]*adminv3.ClustersConfigDump_DynamicCluster, 0, len(names))
	for _, n := range names {
		e := d.clusters[n]
		a, _ := anypb.New(e.res)
		out = append(out, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: version, Cluster: a, LastUpdated: timestamppb.New(e.updated)})
	}
	return out
}

func (d *dynamicResources) dumpListeners() []*adminv3.ListenersConfigDump_DynamicListener {
	version := d.versionOf(client.TypeListener)
	d.mu.Lock()
	defer d.mu.Unlock()
	names := slices.Sorted(maps.Keys(d.listeners))
	out := make([]*adminv3.ListenersConfigDump_DynamicListener, 0, len(names))
	for _, n := range names {
		e := d.listeners[n]
		a, _ := anypb.New(e.res)
		out = append(out, &adminv3.ListenersConfigDump_DynamicListener{Name: n, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
			VersionInfo: version, Listener: a, LastUpdated: timestamppb.New(e.updated)}})
	}
	return out
}

// xdsStats adapts the stats store to the xDS client.
type xdsStats struct{ s *stats.Store }

func (x xdsStats) Counter(name string) client.Counter { return x.s.Counter(name) }
func (x xdsStats) Gauge(name string) client.Gauge     { return x.s.Gauge(name, stats.NeverImport) }
