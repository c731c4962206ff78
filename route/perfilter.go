package route

import (
	"errors"
	"fmt"
	"sort"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// FilterConfigTypeURL is the type URL of envoy.config.route.v3.FilterConfig,
// the wrapper typed_per_filter_config uses to disable a filter, mark its
// config optional, or carry its config.
const FilterConfigTypeURL = "type.googleapis.com/envoy.config.route.v3.FilterConfig"

// ErrUnknownFilterConfig is returned by a CompileOptions.ValidateFilterConfig
// hook when no filter factory knows the config's type. An entry marked
// is_optional is then kept without its config, as Envoy ignores optional
// configs of unknown filters; any other entry is an error.
var ErrUnknownFilterConfig = errors.New("no filter implementation for this config type")

// filterEntry is one level's typed_per_filter_config entry, unwrapped.
type filterEntry struct {
	config   *anypb.Any // nil when disabled, or when an empty / dropped config
	disabled bool
	optional bool
}

type filterConfigs map[string]filterEntry

func (c *errs) filterConfigs(path string, in map[string]*anypb.Any, opts *CompileOptions) filterConfigs {
	if len(in) == 0 {
		return nil
	}
	out := make(filterConfigs, len(in))
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		raw := in[name]
		p := fmt.Sprintf("%s[%q]", at(path, "typed_per_filter_config"), name)
		if raw == nil {
			c.errf(p, "empty config")
			continue
		}
		var e filterEntry
		cfg := raw
		if raw.GetTypeUrl() == FilterConfigTypeURL {
			fc := &routev3.FilterConfig{}
			if err := raw.UnmarshalTo(fc); err != nil {
				c.errf(p, "decoding envoy.config.route.v3.FilterConfig: %v", err)
				continue
			}
			c.only(p, fc, "config", "is_optional", "disabled")
			e.optional = fc.GetIsOptional()
			if fc.GetDisabled() {
				e.disabled = true
				out[name] = e
				continue
			}
			if fc.GetConfig() == nil {
				c.errf(at(p, "config"), "empty route/virtual host per filter configuration for %s filter", name)
				continue
			}
			if fc.GetConfig().GetTypeUrl() == "" {
				// An empty config enables the filter explicitly.
				out[name] = e
				continue
			}
			cfg = fc.GetConfig()
			p = at(p, "config")
		}
		if opts.ValidateFilterConfig != nil {
			if err := opts.ValidateFilterConfig(name, cfg); err != nil {
				if errors.Is(err, ErrUnknownFilterConfig) && e.optional {
					out[name] = e
					continue
				}
				c.add(p, err)
				continue
			}
		}
		e.config = cfg
		out[name] = e
	}
	return out
}

// FilterOverride is the per-route view of one HTTP filter's
// typed_per_filter_config, resolved most-specific-first: weighted cluster,
// route, virtual host, route configuration.
type FilterOverride struct {
	// Config is the most specific config for the filter (FilterConfig
	// unwrapped); nil when no level has one.
	Config *anypb.Any
	// Explicit is set when some level has an entry for the filter; then
	// Disabled replaces the http_filters entry's own disabled flag.
	Explicit bool
	// Disabled is the most specific entry's FilterConfig.disabled.
	Disabled bool
	// Optional is the is_optional of the entry that supplied Config: a
	// filter that does not know Config's type may ignore it.
	Optional bool
}

// Enabled reports whether the filter runs on this route, given the
// http_filters entry's own disabled flag.
func (o FilterOverride) Enabled(disabledInChain bool) bool {
	if o.Explicit {
		return !o.Disabled
	}
	return !disabledInChain
}

// resolve folds levels given from most to least specific.
func resolve(name string, levels ...filterConfigs) FilterOverride {
	var o FilterOverride
	for _, l := range levels {
		e, ok := l[name]
		if !ok {
			continue
		}
		if !o.Explicit {
			o.Explicit, o.Disabled = true, e.disabled
		}
		if o.Config == nil && e.config != nil {
			o.Config, o.Optional = e.config, e.optional
		}
	}
	return o
}

func filterNames(levels ...filterConfigs) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range levels {
		for k := range l {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// asFilterConfig re-wraps a resolved override as a FilterConfig Any, for
// consumers that take the raw typed_per_filter_config shape.
func (o FilterOverride) asFilterConfig() *anypb.Any {
	// Config stays nil when the filter is enabled without one: consumers
	// then run the filter with its http_filters config.
	fc := &routev3.FilterConfig{Disabled: o.Disabled, IsOptional: o.Optional}
	if !o.Disabled {
		fc.Config = o.Config
	}
	a, err := anypb.New(fc)
	if err != nil {
		return nil
	}
	return a
}
