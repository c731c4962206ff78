package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DialFunc opens the transport connection of the gRPC channel to the
// control plane (grpc.WithContextDialer).
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// ClusterDialer returns the DialFunc reaching a static cluster by name, for
// grpc_services[].envoy_grpc.cluster_name.
type ClusterDialer func(cluster string) (DialFunc, error)

// Config configures a Client. Zero durations get Envoy's defaults where
// Envoy has one.
type Config struct {
	// Node identifies the data plane to the control plane.
	Node *corev3.Node
	// Target is the gRPC target: "passthrough:///<cluster>" with Dial for
	// envoy_grpc, the target_uri for google_grpc.
	Target string
	// Dial, when set, opens the channel's connections.
	Dial DialFunc
	// Authority overrides the :authority of the stream (envoy_grpc's
	// authority, default the cluster name).
	Authority string
	// Delta selects the incremental protocol (api_type DELTA_GRPC).
	Delta bool
	// SetNodeOnFirstMessageOnly sends the node only on a stream's first
	// request.
	SetNodeOnFirstMessageOnly bool
	// CDSInitialFetchTimeout and LDSInitialFetchTimeout bound the wait for
	// the first response of each subscription (and EDS warming); negative
	// waits forever (an initial_fetch_timeout of 0). Zero means 15 s.
	CDSInitialFetchTimeout time.Duration
	LDSInitialFetchTimeout time.Duration
	// BackoffBase and BackoffMax bound the reconnection backoff (500 ms and
	// 30 s by default).
	BackoffBase, BackoffMax time.Duration
	// HasADS reports that the bootstrap configures ads_config (`ads: {}`
	// sources need it). Configs without a Resolve treat a Target as ADS.
	HasADS bool
	// CDSSource and LDSSource, when set, carry the type on its own stream
	// (or REST) instead of ADS.
	CDSSource, LDSSource *Source
	// Resolve reads the config source of EDS clusters' eds_config (nil:
	// ADS). Without it every EDS cluster is fed over ADS.
	Resolve func(*corev3.ConfigSource) (*Source, error)
	// RTDSLayers are the layered_runtime's rtds_layers (RTDSFromBootstrap),
	// fetched from RTDSSource (nil: ADS).
	RTDSLayers []RTDSLayer
	RTDSSource *Source
	// CDSPath and LDSPath, instead of a Target, read the resources from
	// files (path_config_source): each holds a DiscoveryResponse in YAML or
	// JSON, re-read when its content changes (checked every FileInterval,
	// 1 s by default).
	CDSPath, LDSPath string
	FileInterval     time.Duration
	// KeepaliveTime and KeepaliveTimeout configure gRPC keepalive (5 min
	// and 20 s by default).
	KeepaliveTime, KeepaliveTimeout time.Duration
	// WarmTimeout bounds one cluster's warming in the data plane (DNS,
	// first health checks); 15 s by default.
	WarmTimeout time.Duration
	// StaticListeners are the bootstrap's listeners: the route
	// configurations their connection managers name in rds are fetched
	// too (they serve without routes until those arrive).
	StaticListeners []*listenerv3.Listener
	Logger          *zap.Logger
	// Secrets receives the secrets delivered over SDS; New makes one
	// when nil.
	Secrets *Secrets
	// Sources picks the config sources of RDS and ECDS (the first one
	// seen for each type); New makes one from Resolve and HasADS when
	// nil.
	Sources *Sources
	Stats   Stats
}

func (c *Config) defaults() {
	if c.CDSInitialFetchTimeout == 0 {
		c.CDSInitialFetchTimeout = 15 * time.Second
	}
	if c.LDSInitialFetchTimeout == 0 {
		c.LDSInitialFetchTimeout = 15 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 500 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.KeepaliveTime <= 0 {
		c.KeepaliveTime = 5 * time.Minute
	}
	if c.KeepaliveTimeout <= 0 {
		c.KeepaliveTimeout = 20 * time.Second
	}
	if c.FileInterval <= 0 {
		c.FileInterval = time.Second
	}
	if c.WarmTimeout <= 0 {
		c.WarmTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Stats == nil {
		c.Stats = nopStats{}
	}
	if c.Secrets == nil {
		c.Secrets = NewSecrets()
	}
	if c.Sources == nil {
		c.Sources = newSources(c.Resolve, c.HasADS || (c.Resolve == nil && c.Target != ""))
	}
}

// Source is a separate config source (an api_config_source): its own
// gRPC stream per resource type (GRPC, DELTA_GRPC), or REST polling.
type Source struct {
	// Target, Dial and Authority reach the server as for ADS (Config).
	Target    string
	Dial      DialFunc
	Authority string
	// Delta selects DELTA_GRPC.
	Delta                     bool
	SetNodeOnFirstMessageOnly bool
	// REST polls POST /v3/discovery:<type> on the cluster (cluster_names)
	// every RefreshDelay, each request bounded by RequestTimeout.
	REST                         bool
	RefreshDelay, RequestTimeout time.Duration
	// Cluster is the REST cluster's name (the Host of its requests).
	Cluster string
}

// key identifies the server and protocol of a source: two config sources
// with the same key share a connection, each type still on its own stream.
func (s *Source) key() string {
	return fmt.Sprintf("%s|%s|%s|%t|%t", s.Target, s.Authority, s.Cluster, s.Delta, s.REST)
}

// FromBootstrap reads the bootstrap's dynamic_resources. Every field that
// is not implemented is an error naming it.
func FromBootstrap(dr *bootstrapv3.Bootstrap_DynamicResources, node *corev3.Node, dial ClusterDialer) (Config, error) {
	var errs fieldErrors
	cfg := Config{Node: node, Resolve: func(cs *corev3.ConfigSource) (*Source, error) {
		return resolveSource(cs, dial)
	}}
	const base = "dynamic_resources"
	errs.only(base, dr, "ads_config", "lds_config", "cds_config")
	ads := dr.GetAdsConfig()
	files := dr.GetCdsConfig().GetPathConfigSource() != nil && dr.GetLdsConfig().GetPathConfigSource() != nil
	if ads != nil {
		p := base + ".ads_config"
		src := parseAPISource(&errs, p, ads, dial, false)
		if src != nil {
			cfg.Target, cfg.Dial, cfg.Authority = src.Target, src.Dial, src.Authority
			cfg.Delta, cfg.SetNodeOnFirstMessageOnly = src.Delta, src.SetNodeOnFirstMessageOnly
		}
		cfg.HasADS = true
	}
	for _, cs := range []struct {
		field string
		src   *corev3.ConfigSource
		to    *time.Duration
		path  *string
		sep   **Source
	}{{"lds_config", dr.GetLdsConfig(), &cfg.LDSInitialFetchTimeout, &cfg.LDSPath, &cfg.LDSSource}, {"cds_config", dr.GetCdsConfig(), &cfg.CDSInitialFetchTimeout, &cfg.CDSPath, &cfg.CDSSource}} {
		p := base + "." + cs.field
		if cs.src == nil {
			errs.add(p, "required")
			continue
		}
		errs.only(p, cs.src, "ads", "api_config_source", "path_config_source", "initial_fetch_timeout", "resource_api_version")
		switch {
		case cs.src.GetAds() != nil:
			if ads == nil {
				errs.add(p+".ads", "needs dynamic_resources.ads_config")
			}
		case cs.src.GetApiConfigSource() != nil:
			*cs.sep = parseAPISource(&errs, p+".api_config_source", cs.src.GetApiConfigSource(), dial, true)
		case cs.src.GetPathConfigSource() != nil:
			pc := cs.src.GetPathConfigSource()
			errs.only(p+".path_config_source", pc, "path")
			if !files {
				errs.add(p+".path_config_source", "mixing path_config_source with other config sources is not implemented (both cds_config and lds_config must be files)")
			}
			if pc.GetPath() == "" {
				errs.add(p+".path_config_source.path", "required")
			}
			*cs.path = pc.GetPath()
		default:
			errs.add(p, "one of ads, api_config_source and path_config_source is required")
		}
		checkAPIVersion(&errs, p+".resource_api_version", cs.src.GetResourceApiVersion())
		if t := cs.src.GetInitialFetchTimeout(); t != nil {
			if d := t.AsDuration(); d == 0 {
				*cs.to = -1
			} else {
				*cs.to = d
			}
		}
	}
	if files && ads != nil {
		errs.add(base+".ads_config", "mixing path_config_source with ADS is not implemented")
	}
	if len(errs) > 0 {
		return Config{}, errs
	}
	return cfg, nil
}

// resolveSource reads the config source of a resource named by another
// (eds_config, sds_config): nil for `ads: {}`.
func resolveSource(cs *corev3.ConfigSource, dial ClusterDialer) (*Source, error) {
	var errs fieldErrors
	errs.only("", cs, "ads", "api_config_source", "initial_fetch_timeout", "resource_api_version")
	var src *Source
	switch {
	case cs.GetAds() != nil:
	case cs.GetApiConfigSource() != nil:
		src = parseAPISource(&errs, "api_config_source", cs.GetApiConfigSource(), dial, true)
	default:
		errs.add("ads", "ads or api_config_source is required")
	}
	checkAPIVersion(&errs, "resource_api_version", cs.GetResourceApiVersion())
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return src, nil
}

// parseAPISource reads an api_config_source (ADS's when separate is
// false: GRPC and DELTA_GRPC only).
func parseAPISource(errs *fieldErrors, p string, a *corev3.ApiConfigSource, dial ClusterDialer, separate bool) *Source {
	src := &Source{}
	allowed := []string{"api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only"}
	if separate {
		allowed = append(allowed, "cluster_names", "refresh_delay", "request_timeout")
	}
	errs.only(p, a, allowed...)
	n := len(*errs)
	switch a.GetApiType() {
	case corev3.ApiConfigSource_GRPC:
	case corev3.ApiConfigSource_DELTA_GRPC:
		src.Delta = true
	case corev3.ApiConfigSource_REST:
		if !separate {
			errs.add(p+".api_type", "REST is not implemented for ADS (GRPC and DELTA_GRPC are)")
		} else {
			src.REST = true
		}
	default:
		errs.add(p+".api_type", fmt.Sprintf("%s is not implemented (GRPC, DELTA_GRPC and REST are)", a.GetApiType()))
	}
	checkAPIVersion(errs, p+".transport_api_version", a.GetTransportApiVersion())
	src.SetNodeOnFirstMessageOnly = a.GetSetNodeOnFirstMessageOnly()
	if src.REST {
		if len(a.GetGrpcServices()) > 0 {
			errs.add(p+".grpc_services", "not used with REST (cluster_names is)")
		}
		if len(a.GetClusterNames()) != 1 {
			errs.add(p+".cluster_names", fmt.Sprintf("exactly one cluster is required for REST, got %d", len(a.GetClusterNames())))
		} else {
			name := a.GetClusterNames()[0]
			src.Cluster = name
			src.Target = "http://" + name
			if dial == nil {
				errs.add(p+".cluster_names[0]", "no cluster dialer")
			} else if d, err := dial(name); err != nil {
				errs.add(p+".cluster_names[0]", err.Error())
			} else {
				src.Dial = d
			}
		}
		if a.GetRefreshDelay() == nil {
			errs.add(p+".refresh_delay", "required for REST")
		} else if src.RefreshDelay = a.GetRefreshDelay().AsDuration(); src.RefreshDelay <= 0 {
			errs.add(p+".refresh_delay", "must be positive")
		}
		src.RequestTimeout = time.Second // Envoy's default
		if t := a.GetRequestTimeout(); t != nil {
			if src.RequestTimeout = t.AsDuration(); src.RequestTimeout <= 0 {
				errs.add(p+".request_timeout", "must be positive")
			}
		}
	} else {
		if len(a.GetClusterNames()) > 0 {
			errs.add(p+".cluster_names", "only used with REST (gRPC sources use grpc_services)")
		}
		if a.GetRefreshDelay() != nil || a.GetRequestTimeout() != nil {
			errs.add(p+".refresh_delay", "only used with REST")
		}
		if len(a.GetGrpcServices()) != 1 {
			errs.add(p+".grpc_services", fmt.Sprintf("exactly one gRPC service is required, got %d", len(a.GetGrpcServices())))
		} else {
			gs := a.GetGrpcServices()[0]
			gp := p + ".grpc_services[0]"
			errs.only(gp, gs, "envoy_grpc", "google_grpc", "timeout")
			switch {
			case gs.GetEnvoyGrpc() != nil:
				eg := gs.GetEnvoyGrpc()
				errs.only(gp+".envoy_grpc", eg, "cluster_name", "authority")
				src.Target = "passthrough:///" + eg.GetClusterName()
				src.Authority = eg.GetAuthority()
				if src.Authority == "" {
					src.Authority = eg.GetClusterName()
				}
				if dial == nil {
					errs.add(gp+".envoy_grpc.cluster_name", "no cluster dialer")
				} else if d, err := dial(eg.GetClusterName()); err != nil {
					errs.add(gp+".envoy_grpc.cluster_name", err.Error())
				} else {
					src.Dial = d
				}
			case gs.GetGoogleGrpc() != nil:
				gg := gs.GetGoogleGrpc()
				errs.only(gp+".google_grpc", gg, "target_uri", "stat_prefix")
				if gg.GetTargetUri() == "" {
					errs.add(gp+".google_grpc.target_uri", "required")
				}
				src.Target = gg.GetTargetUri()
			default:
				errs.add(gp, "envoy_grpc or google_grpc is required")
			}
		}
	}
	if len(*errs) > n {
		return nil
	}
	return src
}

func checkAPIVersion(errs *fieldErrors, path string, v corev3.ApiVersion) {
	if v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		errs.add(path, fmt.Sprintf("%s is not supported (V3 is)", v))
	}
}

// fieldErrors lists configuration problems, each naming its field.
type fieldErrors []error

func (e *fieldErrors) add(path, msg string) { *e = append(*e, fmt.Errorf("%s: %s", path, msg)) }

// only reports every set field of m that is not in allowed.
func (e *fieldErrors) only(path string, m proto.Message, allowed ...string) {
	if m == nil {
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			name := string(fd.Name())
			if path != "" {
				name = path + "." + name
			}
			e.add(name, "not implemented by wasmesh")
		}
		return true
	})
}

func (e fieldErrors) Error() string {
	msg := "xds: configuration:"
	for _, err := range e {
		msg += "\n  " + err.Error()
	}
	return msg
}

func (e fieldErrors) Unwrap() []error { return e }
