package hcm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/route"
)

// RouteProvider supplies what connection managers discover over xDS: the
// route configurations they name in rds.route_config_name (RDS) and the
// filter configurations their http_filters name through config_discovery
// (ECDS). The server implements it over the xDS client.
type RouteProvider interface {
	// Watch makes w follow the route configuration route ("" for none)
	// and the extension configurations filters. Under the provider's
	// update lock it calls init with the versions accepted so far (nil
	// when none arrived) and registers w only when init succeeds, so no
	// update is missed or applied before init. Later versions reach w
	// through PrepareRoutes and PrepareFilterConfig, one at a time under
	// that lock. cancel stops the updates.
	Watch(route string, filters []string, w RouteWatcher,
		init func(rc *routev3.RouteConfiguration, filters map[string]*corev3.TypedExtensionConfig) error) (cancel func(), err error)
}

// RouteWatcher is a connection manager following discovered
// configuration.
type RouteWatcher interface {
	// PrepareRoutes compiles rc (the route table and the per-route filter
	// plans) without applying it; commit(true) swaps it in, commit(false)
	// drops it. The error names the field.
	PrepareRoutes(ctx context.Context, rc *routev3.RouteConfiguration) (commit func(apply bool), err error)
	// PrepareFilterConfig compiles the filter chain with a new
	// configuration of the named discovered filter (and the plans of the
	// current routes) without applying it; commit(true) swaps it in,
	// commit(false) releases it.
	PrepareFilterConfig(ctx context.Context, tc *corev3.TypedExtensionConfig) (commit func(apply bool), err error)
}

// routeSnapshot is one compiled route configuration: the table, the
// filter chain and the filter plan of each route.
type routeSnapshot struct {
	table *route.Table
	chain *filterchain.Chain
	plans map[*route.Route]*filterchain.Plan
}

// chainRetireAfter is how long a filter chain replaced through ECDS stays
// open for the requests that started on it (its Wasm plugins are closed
// after that, or when the manager closes).
const chainRetireAfter = time.Minute

// retiredFor is how long a superseded route table's plans stay findable:
// a request matches a route and looks its plan up right after, so a swap
// between the two must not lose the plan.
const retiredFor = 10 * time.Second

type retired struct {
	snap  *routeSnapshot
	until time.Time
}

// routeSet holds the connection manager's current route table. RDS swaps
// it atomically: a request matches against the table current when it
// starts, and keeps that route (and its plan) to the end.
type routeSet struct {
	cur atomic.Pointer[routeSnapshot]
	// old are superseded snapshots, newest first, for planFor.
	old atomic.Pointer[[]retired]
	mu  sync.Mutex // serialises swaps
	// retiring are replaced filter chains still open, with the timers
	// that close them.
	retiring map[*filterchain.Chain]*time.Timer
	closed   bool
}

// close closes the current filter chain and the replaced ones.
func (s *routeSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for c, t := range s.retiring {
		t.Stop()
		c.Close()
	}
	s.retiring = nil
	if cur := s.cur.Load(); cur != nil {
		cur.chain.Close()
	}
}

// Match matches against the current table.
func (s *routeSet) Match(h *header.Map, info route.RequestInfo) route.Match {
	return s.cur.Load().table.Match(h, info)
}

// plan finds the plan of a route of the current or a recently superseded
// table.
func (s *routeSet) plan(r *route.Route) (*filterchain.Plan, bool) {
	if p, ok := s.cur.Load().plans[r]; ok {
		return p, true
	}
	if old := s.old.Load(); old != nil {
		for _, o := range *old {
			if p, ok := o.snap.plans[r]; ok {
				return p, true
			}
		}
	}
	return nil, false
}

// swap makes next current.
func (s *routeSet) swap(next *routeSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur.Swap(next)
	if prev == nil {
		return
	}
	if old := prev.chain; old != next.chain {
		if s.retiring == nil {
			s.retiring = map[*filterchain.Chain]*time.Timer{}
		}
		s.retiring[old] = time.AfterFunc(chainRetireAfter, func() {
			s.mu.Lock()
			_, ok := s.retiring[old]
			delete(s.retiring, old)
			s.mu.Unlock()
			if ok {
				old.Close()
			}
		})
	}
	now := time.Now()
	keep := []retired{{snap: prev, until: now.Add(retiredFor)}}
	if old := s.old.Load(); old != nil {
		for _, o := range *old {
			if now.Before(o.until) {
				keep = append(keep, o)
			}
		}
	}
	s.old.Store(&keep)
}

// SourceChecker is implemented by a RouteProvider that fetches route and
// extension configurations from config sources other than ADS.
// CheckConfigSource accepts the config_source a connection manager gives
// for typeURL (TypeRouteConfiguration or TypeExtensionConfig), or says
// why not, naming the field under the config source (an unsupported
// api_config_source field, a second source for the same type).
type SourceChecker interface {
	CheckConfigSource(typeURL string, cs *corev3.ConfigSource) error
}

// Type URLs a SourceChecker is asked about.
const (
	TypeRouteConfiguration = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	TypeExtensionConfig    = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
)

// checkConfigSource checks the config_source of RDS or ECDS at path: `ads:
// {}` or, when the provider checks sources, an api_config_source;
// initial_fetch_timeout and resource_api_version V3.
func checkConfigSource(path, what, typeURL string, cs *corev3.ConfigSource, p RouteProvider) []error {
	errs := protocheck.Only(path, cs, "ads", "api_config_source", "initial_fetch_timeout", "resource_api_version")
	sc, checks := p.(SourceChecker)
	switch {
	case cs.GetAds() != nil:
	case cs.GetApiConfigSource() != nil && checks:
	case cs.GetApiConfigSource() != nil:
		errs = append(errs, fmt.Errorf("%s.api_config_source: not supported here (%s over ADS only: ads)", path, what))
	default:
		errs = append(errs, fmt.Errorf("%s: ads or api_config_source is required", path))
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		errs = append(errs, fmt.Errorf("%s.resource_api_version: %s is not supported (V3 is)", path, v))
	}
	if len(errs) == 0 && checks {
		if err := sc.CheckConfigSource(typeURL, cs); err != nil {
			list := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				list = j.Unwrap()
			}
			for _, e := range list {
				errs = append(errs, fmt.Errorf("%s.%w", path, e))
			}
		}
	}
	return errs
}

// compileRDS checks the rds route specifier: route_config_name, and a
// config_source that is `ads: {}` or an api_config_source the provider
// accepts.
func compileRDS(rds *hcmv3.Rds, d Deps) error {
	errs := protocheck.Only("rds", rds, "config_source", "route_config_name")
	if rds.GetRouteConfigName() == "" {
		errs = append(errs, errors.New("rds.route_config_name: required"))
	}
	if d.RDS == nil {
		errs = append(errs, errors.New("rds: route discovery needs dynamic_resources"))
	} else {
		errs = append(errs, checkConfigSource("rds.config_source", "routes are discovered", TypeRouteConfiguration, rds.GetConfigSource(), d.RDS)...)
	}
	return errors.Join(errs...)
}

// watch follows RDS and ECDS: the first state is built from what the
// provider has (an empty route table while the routes have not arrived:
// every request is a 404 NR, as in Envoy once the listener stopped
// warming).
func (m *Manager) watch(ctx context.Context, cfg *hcmv3.HttpConnectionManager, d Deps) error {
	if d.RDS == nil {
		return errors.New("http_filters: config_discovery needs dynamic_resources")
	}
	var srcErrs []error
	for _, f := range m.discovery {
		srcErrs = append(srcErrs, checkConfigSource(f.path()+".config_source", "extension configs are discovered", TypeExtensionConfig, f.cd.GetConfigSource(), d.RDS)...)
	}
	if len(srcErrs) > 0 {
		return errors.Join(srcErrs...)
	}
	m.rdsName = cfg.GetRds().GetRouteConfigName()
	if m.rdsName != "" && d.Stats != nil {
		// Envoy's http.<stat_prefix>.rds.<route_config_name>.config_reload.
		m.rdsReload = d.Stats.Counter("http." + m.statPrefix + ".rds." + strings.ReplaceAll(m.rdsName, ":", "_") + ".config_reload")
	}
	var names []string
	for _, f := range m.discovery {
		names = append(names, f.name)
	}
	cancel, err := d.RDS.Watch(m.rdsName, names, m, func(rc *routev3.RouteConfiguration, tcs map[string]*corev3.TypedExtensionConfig) error {
		m.discovered = map[string]*anypb.Any{}
		for _, f := range m.discovery {
			if tc := tcs[f.name]; tc != nil {
				if err := f.check(tc); err != nil {
					return err
				}
				m.discovered[f.name] = tc.GetTypedConfig()
			}
		}
		chain, err := m.buildChain(ctx, m.discovered)
		if err != nil {
			return err
		}
		var snap *routeSnapshot
		switch {
		case cfg.GetRds() == nil:
			snap, err = m.compileRoutes(ctx, chain, cfg.GetRouteConfig(), route.CompileOptions{
				ClusterExists: d.ClusterExists, ValidateClustersByDefault: d.ClusterExists != nil}, true)
		case rc == nil:
			snap, err = m.compileRoutes(ctx, chain, &routev3.RouteConfiguration{Name: m.rdsName}, route.CompileOptions{}, false)
		default:
			snap, err = m.compileRoutes(ctx, chain, rc, route.CompileOptions{ClusterExists: m.clusterExists}, false)
			if err != nil {
				err = fmt.Errorf("rds.route_config_name %q: %w", m.rdsName, err)
			}
		}
		if err != nil {
			chain.Close()
			return err
		}
		m.routes.swap(snap)
		return nil
	})
	if err != nil {
		return err
	}
	m.rdsCancel = cancel
	return nil
}

// compileRoutes compiles a route configuration and the filter plan of
// each of its routes against the manager's filter chain.
// Inline route configurations' errors are prefixed with their name, as
// they always were.
func (m *Manager) compileRoutes(ctx context.Context, chain *filterchain.Chain, rc *routev3.RouteConfiguration, opts route.CompileOptions, inline bool) (*routeSnapshot, error) {
	t, err := route.Compile(rc, opts)
	if err != nil {
		if inline {
			return nil, fmt.Errorf("route_config %q: %w", rc.GetName(), err)
		}
		return nil, err
	}
	plans, err := planRoutes(ctx, chain, t)
	if err != nil {
		return nil, err
	}
	return &routeSnapshot{table: t, chain: chain, plans: plans}, nil
}

// planRoutes builds the filter plan of each route of a table.
func planRoutes(ctx context.Context, chain *filterchain.Chain, t *route.Table) (map[*route.Route]*filterchain.Plan, error) {
	plans := map[*route.Route]*filterchain.Plan{}
	var planErr error
	t.Routes(func(r *route.Route) bool {
		p, err := chain.PlanFor(ctx, func(name string) filterchain.Override {
			o := r.FilterOverride(name)
			return filterchain.Override{Config: o.Config, Explicit: o.Explicit, Disabled: o.Disabled, Optional: o.Optional}
		})
		if err != nil {
			planErr = fmt.Errorf("route_config %q route %q: %w", t.Proto().GetName(), r.Name, err)
			return false
		}
		plans[r] = p
		return true
	})
	if planErr != nil {
		return nil, planErr
	}
	return plans, nil
}

// PrepareRoutes compiles a route configuration delivered over RDS
// (RouteWatcher). Clusters are not validated unless the configuration
// asks (validate_clusters defaults to false for RDS, as in Envoy).
func (m *Manager) PrepareRoutes(ctx context.Context, rc *routev3.RouteConfiguration) (func(bool), error) {
	snap, err := m.compileRoutes(ctx, m.routes.cur.Load().chain, rc, route.CompileOptions{ClusterExists: m.clusterExists}, false)
	if err != nil {
		return nil, err
	}
	return func(apply bool) {
		if apply {
			m.routes.swap(snap)
			if m.rdsReload != nil {
				m.rdsReload.Inc()
			}
		}
	}, nil
}

// RDSName is the route configuration the manager follows over RDS, "" when
// its routes are inline.
func (m *Manager) RDSName() string { return m.rdsName }
