package hcm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/internal/protocheck"
)

// discoveredFilter is an http_filters entry whose configuration comes
// over ECDS (config_discovery).
type discoveredFilter struct {
	index int
	name  string
	cd    *corev3.ExtensionConfigSource
}

func (f discoveredFilter) path() string {
	return fmt.Sprintf("http_filters[%d] %q.config_discovery", f.index, f.name)
}

// check verifies that a discovered configuration is of one of type_urls.
func (f discoveredFilter) check(tc *corev3.TypedExtensionConfig) error {
	got := tc.GetTypedConfig().GetTypeUrl()
	for _, u := range f.cd.GetTypeUrls() {
		if u == got {
			return nil
		}
	}
	return fmt.Errorf("%s.type_urls: extension config %q is of type %q, not one of %q", f.path(), tc.GetName(), got, f.cd.GetTypeUrls())
}

// discoveredFilters lists and checks the config_discovery entries of
// http_filters: the shape of config_source (`ads: {}` or an
// api_config_source, which watch checks with the provider), type_urls,
// default_config of one of them.
func discoveredFilters(filters []*hcmv3.HttpFilter) ([]discoveredFilter, error) {
	var out []discoveredFilter
	var errs []error
	for i, hf := range filters {
		cd := hf.GetConfigDiscovery()
		if cd == nil {
			continue
		}
		f := discoveredFilter{index: i, name: hf.GetName(), cd: cd}
		p := f.path()
		errs = append(errs, protocheck.Only(p, cd, "config_source", "default_config", "apply_default_config_without_warming", "type_urls")...)
		// The config source is checked against the provider in watch.
		cs := cd.GetConfigSource()
		errs = append(errs, protocheck.Only(p+".config_source", cs, "ads", "api_config_source", "initial_fetch_timeout", "resource_api_version")...)
		if cs.GetAds() == nil && cs.GetApiConfigSource() == nil {
			errs = append(errs, fmt.Errorf("%s.config_source: ads or api_config_source is required", p))
		}
		if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
			errs = append(errs, fmt.Errorf("%s.config_source.resource_api_version: %s is not supported (V3 is)", p, v))
		}
		if len(cd.GetTypeUrls()) == 0 {
			errs = append(errs, fmt.Errorf("%s.type_urls: required", p))
		}
		if dc := cd.GetDefaultConfig(); dc != nil && !slices.Contains(cd.GetTypeUrls(), dc.GetTypeUrl()) {
			errs = append(errs, fmt.Errorf("%s.default_config: type %q is not one of type_urls", p, dc.GetTypeUrl()))
		}
		if cd.GetApplyDefaultConfigWithoutWarming() && cd.GetDefaultConfig() == nil {
			errs = append(errs, fmt.Errorf("%s.apply_default_config_without_warming: needs default_config", p))
		}
		if i == len(filters)-1 {
			errs = append(errs, fmt.Errorf("%s: the terminal filter cannot be discovered", p))
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

// buildChain compiles http_filters with each discovered filter's
// configuration from discovered (or its default_config).
func (m *Manager) buildChain(ctx context.Context, discovered map[string]*anypb.Any) (*filterchain.Chain, error) {
	filters := m.filters
	if len(m.discovery) > 0 {
		filters = slices.Clone(filters)
		for _, f := range m.discovery {
			tc := discovered[f.name]
			if tc == nil {
				tc = f.cd.GetDefaultConfig()
			}
			if tc == nil {
				return nil, fmt.Errorf("%s: no configuration received and no default_config", f.path())
			}
			hf := filters[f.index]
			filters[f.index] = &hcmv3.HttpFilter{Name: hf.GetName(), ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: tc},
				IsOptional: hf.GetIsOptional(), Disabled: hf.GetDisabled()}
		}
	}
	chain, err := filterchain.CompileChain(ctx, filters, m.registry, m.env)
	if err != nil {
		return nil, err
	}
	if _, ok := chain.Default.Terminal().(*router.Config); !ok {
		chain.Close()
		return nil, errors.New("http_filters: the last filter must be envoy.filters.http.router")
	}
	return chain, nil
}

// PrepareFilterConfig compiles the filter chain with a new configuration
// of a discovered filter (RouteWatcher); the current routes get new
// plans. The replaced chain stays open for the requests that started on
// it (chainRetireAfter).
func (m *Manager) PrepareFilterConfig(ctx context.Context, tc *corev3.TypedExtensionConfig) (func(bool), error) {
	next := maps.Clone(m.discovered)
	if next == nil {
		next = map[string]*anypb.Any{}
	}
	found := false
	for _, f := range m.discovery {
		if f.name != tc.GetName() {
			continue
		}
		if err := f.check(tc); err != nil {
			return nil, err
		}
		found = true
	}
	if !found {
		return func(bool) {}, nil
	}
	next[tc.GetName()] = tc.GetTypedConfig()
	chain, err := m.buildChain(ctx, next)
	if err != nil {
		return nil, err
	}
	cur := m.routes.cur.Load()
	plans, err := planRoutes(ctx, chain, cur.table)
	if err != nil {
		chain.Close()
		return nil, err
	}
	return func(apply bool) {
		if !apply {
			chain.Close()
			return
		}
		m.discovered = next
		m.routes.swap(&routeSnapshot{table: cur.table, chain: chain, plans: plans})
	}, nil
}
