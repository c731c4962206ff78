package hcm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/route"
)

// RouteProvider supplies the route configurations that connection
// managers name in rds.route_config_name (the server implements it over
// the xDS client's RDS subscription).
type RouteProvider interface {
	// WatchRoutes makes w follow the named route configuration. When one
	// was already accepted, w compiles it (PrepareRoutes) and applies it
	// before WatchRoutes returns; its error is returned and w is not
	// registered. Later versions reach w through PrepareRoutes. cancel
	// stops the updates.
	WatchRoutes(name string, w RouteWatcher) (cancel func(), err error)
}

// RouteWatcher is a connection manager following a route configuration.
type RouteWatcher interface {
	// PrepareRoutes compiles rc (the route table and the per-route filter
	// plans) without applying it; commit swaps it in. The error names the
	// field and does not name the route configuration.
	PrepareRoutes(ctx context.Context, rc *routev3.RouteConfiguration) (commit func(), err error)
}

// routeSnapshot is one compiled route configuration: the table and the
// filter plan of each of its routes.
type routeSnapshot struct {
	table *route.Table
	plans map[*route.Route]*filterchain.Plan
}

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

// compileRDS checks the rds route specifier: route_config_name, and a
// config_source that is `ads: {}`.
func compileRDS(rds *hcmv3.Rds, d Deps) error {
	errs := protocheck.Only("rds", rds, "config_source", "route_config_name")
	if rds.GetRouteConfigName() == "" {
		errs = append(errs, errors.New("rds.route_config_name: required"))
	}
	cs := rds.GetConfigSource()
	errs = append(errs, protocheck.Only("rds.config_source", cs, "ads", "initial_fetch_timeout", "resource_api_version")...)
	if cs.GetAds() == nil {
		errs = append(errs, errors.New("rds.config_source.ads: required (routes are discovered over ADS only)"))
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		errs = append(errs, fmt.Errorf("rds.config_source.resource_api_version: %s is not supported (V3 is)", v))
	}
	if d.RDS == nil {
		errs = append(errs, errors.New("rds: route discovery needs dynamic_resources.ads_config"))
	}
	return errors.Join(errs...)
}

// compileRoutes compiles a route configuration and the filter plan of
// each of its routes against the manager's filter chain.
// Inline route configurations' errors are prefixed with their name, as
// they always were.
func (m *Manager) compileRoutes(ctx context.Context, rc *routev3.RouteConfiguration, opts route.CompileOptions, inline bool) (*routeSnapshot, error) {
	t, err := route.Compile(rc, opts)
	if err != nil {
		if inline {
			return nil, fmt.Errorf("route_config %q: %w", rc.GetName(), err)
		}
		return nil, err
	}
	snap := &routeSnapshot{table: t, plans: map[*route.Route]*filterchain.Plan{}}
	var planErr error
	t.Routes(func(r *route.Route) bool {
		p, err := m.chain.PlanFor(ctx, func(name string) filterchain.Override {
			o := r.FilterOverride(name)
			return filterchain.Override{Config: o.Config, Explicit: o.Explicit, Disabled: o.Disabled, Optional: o.Optional}
		})
		if err != nil {
			planErr = fmt.Errorf("route_config %q route %q: %w", rc.GetName(), r.Name, err)
			return false
		}
		snap.plans[r] = p
		return true
	})
	if planErr != nil {
		return nil, planErr
	}
	return snap, nil
}

// PrepareRoutes compiles a route configuration delivered over RDS
// (RouteWatcher). Clusters are not validated unless the configuration
// asks (validate_clusters defaults to false for RDS, as in Envoy).
func (m *Manager) PrepareRoutes(ctx context.Context, rc *routev3.RouteConfiguration) (func(), error) {
	snap, err := m.compileRoutes(ctx, rc, route.CompileOptions{ClusterExists: m.clusterExists}, false)
	if err != nil {
		return nil, err
	}
	return func() { m.routes.swap(snap) }, nil
}

// RDSName is the route configuration the manager follows over RDS, "" when
// its routes are inline.
func (m *Manager) RDSName() string { return m.rdsName }
