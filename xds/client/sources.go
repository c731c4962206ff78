package client

import (
	"errors"
	"fmt"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Sources picks the config source of the types whose resources other
// resources name, each with its own config_source: route configurations
// (RDS, an HTTP connection manager's rds.config_source) and extension
// configurations (ECDS, an HTTP filter's config_discovery.config_source).
// As for EDS and SDS, the first source seen for a type is the one its
// resources are requested on; a resource naming another source for the
// same type is rejected (Use), naming the field. The server creates it
// (NewSources) so that the listeners it compiles check their sources, and
// hands it to the client in Config.Sources. Safe for concurrent use.
type Sources struct {
	mu      sync.Mutex
	resolve func(*corev3.ConfigSource) (*Source, error)
	hasADS  bool
	picked  map[string]picked // by type URL
}

type picked struct {
	key string // "ads" or the source's key
	src *Source
}

// sourceTypeNames are the types Sources picks for, as errors name them.
var sourceTypeNames = map[string]string{TypeRoute: "RDS", TypeExtensionConfig: "ECDS"}

// NewSources returns the source picker of a data plane whose bootstrap
// has ads_config (hasADS) or not; dial reaches the static clusters an
// api_config_source names.
func NewSources(dial ClusterDialer, hasADS bool) *Sources {
	return newSources(func(cs *corev3.ConfigSource) (*Source, error) { return resolveSource(cs, dial) }, hasADS)
}

func newSources(resolve func(*corev3.ConfigSource) (*Source, error), hasADS bool) *Sources {
	return &Sources{resolve: resolve, hasADS: hasADS, picked: map[string]picked{}}
}

// Use checks the config source a resource gives for typeURL (TypeRoute or
// TypeExtensionConfig): `ads: {}` (needs ads_config) or an
// api_config_source (GRPC, DELTA_GRPC or REST, as for cds_config), with
// initial_fetch_timeout and resource_api_version V3. The first source used
// for a type is taken; a different one is an error. Errors name the field
// under the config source.
func (s *Sources) Use(typeURL string, cs *corev3.ConfigSource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.use(typeURL, cs)
	return err
}

func (s *Sources) use(typeURL string, cs *corev3.ConfigSource) (*Source, error) {
	if s.resolve == nil {
		if cs.GetAds() == nil {
			return nil, errors.New("api_config_source: needs the xDS client (dynamic_resources)")
		}
		return nil, nil
	}
	src, err := s.resolve(cs)
	if err != nil {
		return nil, err
	}
	key := "ads"
	if src != nil {
		key = src.key()
	} else if !s.hasADS {
		return nil, errors.New("ads: needs dynamic_resources.ads_config")
	}
	switch p, ok := s.picked[typeURL]; {
	case !ok:
		s.picked[typeURL] = picked{key: key, src: src}
	case p.key != key:
		what := sourceTypeNames[typeURL]
		field := "ads"
		if src != nil {
			field = "api_config_source"
		}
		return nil, fmt.Errorf("%s: a second %s config source is not implemented: the %s resources of a data plane share the config source of the first one (%s)", field, what, what, p.describe())
	}
	return src, nil
}

func (p picked) describe() string {
	switch {
	case p.src == nil:
		return "ads"
	case p.src.REST:
		return "REST " + p.src.Cluster
	case p.src.Delta:
		return "DELTA_GRPC " + p.src.Target
	}
	return "GRPC " + p.src.Target
}

// note takes the first of config sources seen in an arriving resource
// before its names are subscribed, so that they are requested where they
// come from. A conflicting source is reported when the resource compiles.
func (s *Sources) note(typeURL string, css []*corev3.ConfigSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.picked[typeURL]; ok {
		return
	}
	for _, cs := range css {
		if _, err := s.use(typeURL, cs); err == nil {
			return
		}
	}
}

// source is the separate source picked for a type, nil for ADS or none.
func (s *Sources) source(typeURL string) *Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.picked[typeURL].src
}

// typeChannel opens the channel of a type's separate source once it is
// picked (RDS, ECDS), before the type's names are first requested.
func (c *Client) typeChannel(typeURL string) {
	if c.rctx == nil || c.chanOf[typeURL] != nil {
		return
	}
	if src := c.cfg.Sources.source(typeURL); src != nil {
		c.addChannel(typeURL, *src)
	}
}

// noteListenerSources takes the RDS and ECDS config sources of arriving
// listeners when none is picked yet (Sources.note).
func (c *Client) noteListenerSources(ls []*listenerv3.Listener) {
	s := c.cfg.Sources
	s.mu.Lock()
	_, rds := s.picked[TypeRoute]
	_, ecds := s.picked[TypeExtensionConfig]
	s.mu.Unlock()
	if rds && ecds {
		return
	}
	var routes, filters []*corev3.ConfigSource
	for _, l := range ls {
		for r, hfs := range listenerHCMs(l) {
			if r.GetRouteConfigName() != "" && r.GetConfigSource() != nil {
				routes = append(routes, r.GetConfigSource())
			}
			for _, hf := range hfs {
				if cs := hf.GetConfigDiscovery().GetConfigSource(); cs != nil && hf.GetName() != "" {
					filters = append(filters, cs)
				}
			}
		}
	}
	if !rds && c.routesEnabled() {
		s.note(TypeRoute, routes)
	}
	if !ecds && c.ecdsEnabled() {
		s.note(TypeExtensionConfig, filters)
	}
}
