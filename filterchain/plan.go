package filterchain

import (
	"context"
	"errors"
	"fmt"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Chain is an HTTP connection manager's compiled http_filters list.
type Chain struct {
	entries []chainEntry
	// Default is the plan for streams without a route-specific one (no
	// per-filter config anywhere on the route, or no route matched).
	Default *Plan
}

type chainEntry struct {
	name     string
	cfg      Config
	disabled bool
	terminal bool
}

// Plan is the ordered list of filters that run for one route.
type Plan struct {
	Names   []string
	Configs []Config
	// wantsBody is set per direction when a filter needs body callbacks.
	wantsBody [2]bool
}

// WantsBody reports whether any filter of the plan needs body callbacks in
// direction d.
func (p *Plan) WantsBody(d Direction) bool { return p.wantsBody[d] }

// Len is the number of filters in the plan, the terminal filter included.
func (p *Plan) Len() int { return len(p.Configs) }

// CompileChain compiles http_filters in order. Errors name the entry
// (`http_filters[2] "envoy.filters.http.wasm"`). The terminal filter (the
// router) must be last and cannot be disabled.
func CompileChain(ctx context.Context, filters []*hcmv3.HttpFilter, reg *Registry, env *Env) (*Chain, error) {
	c := &Chain{}
	var errs []error
	for k, f := range filters {
		path := fmt.Sprintf("http_filters[%d] %q", k, f.GetName())
		if f.GetConfigDiscovery() != nil {
			errs = append(errs, fmt.Errorf("%s.config_discovery: filter config discovery (ECDS) is not supported yet", path))
			continue
		}
		tc := f.GetTypedConfig()
		if tc == nil {
			errs = append(errs, fmt.Errorf("%s.typed_config: missing", path))
			continue
		}
		fac, ok := reg.Lookup(tc.GetTypeUrl())
		if !ok {
			if f.GetIsOptional() {
				continue
			}
			errs = append(errs, &UnknownFilterError{Path: path + ".typed_config", TypeURL: tc.GetTypeUrl()})
			continue
		}
		cfg, err := fac.Compile(ctx, f.GetName(), tc, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.typed_config: %w", path, err))
			continue
		}
		e := chainEntry{name: f.GetName(), cfg: cfg, disabled: f.GetDisabled()}
		if t, ok := cfg.(Terminal); ok && t.IsTerminal() {
			e.terminal = true
			if e.disabled {
				errs = append(errs, fmt.Errorf("%s.disabled: a terminal filter cannot be disabled", path))
			}
			if k != len(filters)-1 {
				errs = append(errs, fmt.Errorf("%s: terminal filter must be the last in http_filters", path))
			}
		} else if k == len(filters)-1 {
			errs = append(errs, fmt.Errorf("%s: the last http filter must be a terminal filter (envoy.filters.http.router)", path))
		}
		c.entries = append(c.entries, e)
	}
	if len(filters) == 0 {
		errs = append(errs, errors.New("http_filters: empty; the last http filter must be envoy.filters.http.router"))
	}
	if len(errs) > 0 {
		c.Close()
		return nil, errors.Join(errs...)
	}
	def, err := c.PlanFor(ctx, nil)
	if err != nil {
		return nil, err
	}
	c.Default = def
	return c, nil
}

// Override is a route's resolved typed_per_filter_config entry for one
// filter (route over virtual host over route configuration, FilterConfig
// already unwrapped): Explicit when some level names the filter, then
// Disabled replaces the http_filters entry's own flag; Config is the
// per-route configuration, if any.
type Override struct {
	Config   *anypb.Any
	Explicit bool
	Disabled bool
	Optional bool
}

// PerFilterConfig answers a route's override for a filter name.
type PerFilterConfig func(filterName string) Override

// PlanFor compiles the plan for a route whose per-filter overrides are
// perRoute (nil: none). A disabled filter runs only where a route enables
// it; an override with disabled=true removes a filter.
func (c *Chain) PlanFor(ctx context.Context, perRoute PerFilterConfig) (*Plan, error) {
	p := &Plan{}
	for _, e := range c.entries {
		cfg := e.cfg
		enabled := !e.disabled
		if perRoute != nil {
			o := perRoute(e.name)
			if o.Explicit {
				enabled = !o.Disabled
				if o.Disabled && e.terminal {
					return nil, fmt.Errorf("typed_per_filter_config[%q].disabled: a terminal filter cannot be disabled", e.name)
				}
			}
			if o.Config != nil && enabled {
				prc, ok := e.cfg.(PerRouteCompiler)
				switch {
				case ok:
					rc, err := prc.CompilePerRoute(ctx, o.Config)
					if err != nil {
						return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", e.name, err)
					}
					cfg = rc
				case !o.Optional:
					return nil, fmt.Errorf("typed_per_filter_config[%q]: filter takes no per-route configuration (%s)", e.name, o.Config.GetTypeUrl())
				}
			}
		}
		if !enabled {
			continue
		}
		p.Names = append(p.Names, e.name)
		p.Configs = append(p.Configs, cfg)
		if bf, ok := cfg.(BodyFilter); ok {
			p.wantsBody[Request] = p.wantsBody[Request] || bf.WantsBody(Request)
			p.wantsBody[Response] = p.wantsBody[Response] || bf.WantsBody(Response)
		}
	}
	return p, nil
}

// Terminal is the plan's last filter config (the router).
func (p *Plan) Terminal() Config {
	if len(p.Configs) == 0 {
		return nil
	}
	return p.Configs[len(p.Configs)-1]
}

// Close closes every config that holds resources.
func (c *Chain) Close() {
	for _, e := range c.entries {
		if cl, ok := e.cfg.(Closer); ok {
			cl.Close()
		}
	}
}
