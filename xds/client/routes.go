package client

import (
	"context"
	"errors"
	"iter"
	"sort"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// TypeRoute is the RouteConfiguration type URL (RDS).
const TypeRoute = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

const hcmTypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// RouteUpdater is implemented by a DataPlane that serves route
// configurations discovered over RDS to the connection managers naming
// them. Without it the client does not subscribe to RDS.
type RouteUpdater interface {
	// UpdateRoutes validates and applies route configurations (versions[i]
	// is the version of rcs[i]), returning each one's error, in order; a
	// rejected configuration leaves its previous version serving.
	UpdateRoutes(ctx context.Context, rcs []*routev3.RouteConfiguration, versions []string) []error
	// ForgetRoutes drops route configurations no listener names any more.
	ForgetRoutes(names []string)
}

// defaultRDSFetchTimeout is Envoy's initial_fetch_timeout default.
const defaultRDSFetchTimeout = 15 * time.Second

// listenerRoutes adds to out the route configuration names the listener's
// connection managers fetch over RDS, each with its initial_fetch_timeout
// (negative: wait forever).
func listenerRoutes(l *listenerv3.Listener, out map[string]time.Duration) {
	for rds := range listenerHCMs(l) {
		if rds.GetRouteConfigName() == "" {
			continue
		}
		d := defaultRDSFetchTimeout
		if t := rds.GetConfigSource().GetInitialFetchTimeout(); t != nil {
			if d = t.AsDuration(); d == 0 {
				d = -1
			}
		}
		name := rds.GetRouteConfigName()
		if old, ok := out[name]; ok && (old < 0 || (d >= 0 && d > old)) {
			d = old
		}
		out[name] = d
	}
}

// listenerHCMs yields the rds field and the http_filters of every HTTP
// connection manager of the listener's filter chains (default chain
// included), read with scanHCM.
func listenerHCMs(l *listenerv3.Listener) iter.Seq2[*hcmv3.Rds, []*hcmv3.HttpFilter] {
	return func(yield func(*hcmv3.Rds, []*hcmv3.HttpFilter) bool) {
		chains := l.GetFilterChains()
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(chains[:len(chains):len(chains)], dc)
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc.GetTypeUrl() != hcmTypeURL {
					continue
				}
				rds, filters, ok := scanHCM(tc.GetValue())
				if ok && !yield(rds, filters) {
					return
				}
			}
		}
	}
}

// scanHCM reads the rds and http_filters fields of a serialized
// HttpConnectionManager without decoding the rest (an inline route
// configuration of thousands of routes is skipped, not decoded).
func scanHCM(b []byte) (rds *hcmv3.Rds, filters []*hcmv3.HttpFilter, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, nil, false
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[:m])
			switch num {
			case 3: // rds
				r := &hcmv3.Rds{}
				if rds != nil {
					r = rds // a repeated message field merges
				}
				if (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, r) != nil {
					return nil, nil, false
				}
				rds = r
			case 4, 31: // route_config, scoped_routes: the oneof's last wins
				rds = nil
			case 5: // http_filters
				f := &hcmv3.HttpFilter{}
				if proto.Unmarshal(v, f) != nil {
					return nil, nil, false
				}
				filters = append(filters, f)
			}
		}
		b = b[m:]
	}
	return rds, filters, true
}

// routesEnabled reports whether the data plane takes RDS.
func (c *Client) routesEnabled() bool {
	_, ok := c.dp.(RouteUpdater)
	return ok
}

// rdsNames lists the route configurations the applied listeners and the
// listener responses waiting to be applied need, sorted.
func (c *Client) rdsNames() []string {
	if !c.routesEnabled() {
		return nil
	}
	c.typeChannel(TypeRoute)
	var names []string
	for n := range c.rdsActive {
		names = append(names, n)
	}
	for n := range c.rdsHeld {
		if _, ok := c.rdsActive[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// listenersOf decodes the listeners of an LDS response (those that do not
// decode are left to the response's handling, which rejects them); false
// for a response of another type.
func listenersOf(resp any) ([]*listenerv3.Listener, bool) {
	var ls []*listenerv3.Listener
	switch r := resp.(type) {
	case *discoveryv3.DiscoveryResponse:
		if r.GetTypeUrl() != TypeListener {
			return nil, false
		}
		for _, a := range r.GetResources() {
			if l, err := decode(a, TypeListener, newListener); err == nil {
				ls = append(ls, l)
			}
		}
	case *discoveryv3.DeltaDiscoveryResponse:
		if r.GetTypeUrl() != TypeListener {
			return nil, false
		}
		for _, res := range r.GetResources() {
			if l, err := decode(res.GetResource(), TypeListener, newListener); err == nil {
				ls = append(ls, l)
			}
		}
	default:
		return nil, false
	}
	return ls, true
}

// noteListenerRoutes records the route and extension configurations the
// listeners of an arriving LDS response need, so that it can wait for them
// (listener warming).
func (c *Client) noteListenerRoutes(ls []*listenerv3.Listener) {
	c.ldsAnswered = true
	c.noteListenerSources(ls)
	if len(c.held) == 0 {
		// What was noted before belongs to handled responses.
		c.rdsHeld = nil
		if c.ecds != nil {
			c.ecds.held = nil
		}
	}
	c.noteListenerFilterConfigs(ls)
	if !c.routesEnabled() {
		return
	}
	want := map[string]time.Duration{}
	for _, l := range ls {
		listenerRoutes(l, want)
	}
	if c.rdsHeld == nil {
		c.rdsHeld = map[string]time.Duration{}
	}
	now := time.Now()
	for n, d := range want {
		if _, ok := c.routes[n]; !ok && !c.rdsAnswered[n] {
			if _, waiting := c.rdsSince[n]; !waiting {
				c.rdsSince[n] = now
			}
		}
		if old, ok := c.rdsHeld[n]; ok && (old < 0 || (d >= 0 && d > old)) {
			d = old
		}
		c.rdsHeld[n] = d
	}
}

// routesWaiting reports whether a listener response waits for a route
// configuration's first version.
func (c *Client) routesWaiting() bool {
	if c.ecdsWaiting() {
		return true
	}
	for n := range c.rdsHeld {
		if !c.rdsAnswered[n] {
			return true
		}
	}
	return false
}

// listenersApplied records the route configurations of the listener set
// now serving; the names only waiting listener responses needed are
// released once none waits.
func (c *Client) listenersApplied() {
	c.ecdsListenersApplied()
	if !c.routesEnabled() {
		return
	}
	active := map[string]time.Duration{}
	for _, l := range c.cfg.StaticListeners {
		listenerRoutes(l, active)
	}
	for _, l := range c.listeners {
		listenerRoutes(l, active)
	}
	c.rdsActive = active
}

// routesHandled ends the wait of the route names of handled listener
// responses once none is held.
func (c *Client) routesHandled() {
	if len(c.held) == 0 {
		c.rdsHeld = nil
		if c.ecds != nil {
			c.ecds.held = nil
		}
	}
}

// rdsDeadline is the next route configuration initial-fetch timeout.
func (c *Client) rdsDeadlines(consider func(since time.Time, d time.Duration)) {
	c.ecdsDeadlines(consider)
	for n, d := range c.rdsHeld {
		if !c.rdsAnswered[n] {
			consider(c.rdsSince[n], d)
		}
	}
}

// rdsTimeouts ends the wait for route configurations whose initial fetch
// timed out: their listeners start without routes (404 NR), as Envoy's
// do.
func (c *Client) rdsTimeouts(now time.Time) {
	c.ecdsTimeouts(now)
	for n, d := range c.rdsHeld {
		since, ok := c.rdsSince[n]
		if c.rdsAnswered[n] || !ok || d < 0 || now.Before(since.Add(d)) {
			continue
		}
		c.log.Warn("RDS initial fetch timed out; the listener starts without routes", zap.String("route_config", n))
		c.rdsAnswered[n] = true
		delete(c.rdsSince, n)
	}
}

// forgetName drops what was kept for a resource name no longer
// subscribed.
func (c *Client) forgetName(typeURL, name string) {
	switch typeURL {
	case TypeEndpoint:
		delete(c.clas, name)
	case TypeExtensionConfig:
		c.ecdsForget(name)
	case TypeRoute:
		delete(c.routes, name)
		delete(c.rdsAnswered, name)
		delete(c.rdsSince, name)
		if ru, ok := c.dp.(RouteUpdater); ok {
			ru.ForgetRoutes([]string{name})
		}
	}
}

// applyRoutes hands new and changed route configurations to the data
// plane; the bad ones are reported, the others applied. Every
// configuration that arrived ends its name's initial fetch, accepted or
// not (as Envoy's RDS init target).
func (c *Client) applyRoutes(ctx context.Context, rcs []*routev3.RouteConfiguration, versions []string) error {
	ru, ok := c.dp.(RouteUpdater)
	if !ok {
		return nil
	}
	watched := nameSet(c.subs[TypeRoute].names)
	var errs []error
	var up []*routev3.RouteConfiguration
	var upVersions []string
	seen := map[string]bool{}
	for i, rc := range rcs {
		name := rc.GetName()
		if !namedOnce("route_config", name, seen, &errs) {
			continue
		}
		if _, ok := watched[name]; !ok {
			continue // not subscribed (any more): ignored, as Envoy does
		}
		c.rdsAnswered[name] = true
		delete(c.rdsSince, name)
		if old, ok := c.routes[name]; ok && same(old, rc) {
			continue
		}
		up, upVersions = append(up, rc), append(upVersions, versions[i])
	}
	if len(up) == 0 {
		return errors.Join(errs...)
	}
	for i, err := range ru.UpdateRoutes(ctx, up, upVersions) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.routes[up[i].GetName()] = up[i]
		if c.ecds != nil {
			c.ecds.rejected = nil // see ecdsListenersApplied
		}
		c.log.Debug("route configuration applied", zap.String("route_config", up[i].GetName()))
	}
	return errors.Join(errs...)
}

func newRouteConfig() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} }
