package client

import (
	"context"
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
}

// FromBootstrap reads the bootstrap's dynamic_resources. Every field that
// is not implemented is an error naming it.
func FromBootstrap(dr *bootstrapv3.Bootstrap_DynamicResources, node *corev3.Node, dial ClusterDialer) (Config, error) {
	var errs fieldErrors
	cfg := Config{Node: node}
	const base = "dynamic_resources"
	errs.only(base, dr, "ads_config", "lds_config", "cds_config")
	ads := dr.GetAdsConfig()
	files := dr.GetCdsConfig().GetPathConfigSource() != nil && dr.GetLdsConfig().GetPathConfigSource() != nil
	if ads == nil && !files {
		errs.add(base+".ads_config", "required unless cds_config and lds_config are both path_config_source")
	} else if ads != nil {
		p := base + ".ads_config"
		errs.only(p, ads, "api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only")
		switch ads.GetApiType() {
		case corev3.ApiConfigSource_GRPC:
		case corev3.ApiConfigSource_DELTA_GRPC:
			cfg.Delta = true
		default:
			errs.add(p+".api_type", fmt.Sprintf("%s is not implemented (GRPC and DELTA_GRPC are)", ads.GetApiType()))
		}
		checkAPIVersion(&errs, p+".transport_api_version", ads.GetTransportApiVersion())
		cfg.SetNodeOnFirstMessageOnly = ads.GetSetNodeOnFirstMessageOnly()
		if len(ads.GetGrpcServices()) != 1 {
			errs.add(p+".grpc_services", fmt.Sprintf("exactly one gRPC service is required, got %d", len(ads.GetGrpcServices())))
		} else {
			gs := ads.GetGrpcServices()[0]
			gp := p + ".grpc_services[0]"
			errs.only(gp, gs, "envoy_grpc", "google_grpc", "timeout")
			switch {
			case gs.GetEnvoyGrpc() != nil:
				eg := gs.GetEnvoyGrpc()
				errs.only(gp+".envoy_grpc", eg, "cluster_name", "authority")
				cfg.Target = "passthrough:///" + eg.GetClusterName()
				cfg.Authority = eg.GetAuthority()
				if cfg.Authority == "" {
					cfg.Authority = eg.GetClusterName()
				}
				if dial == nil {
					errs.add(gp+".envoy_grpc.cluster_name", "no cluster dialer")
				} else if d, err := dial(eg.GetClusterName()); err != nil {
					errs.add(gp+".envoy_grpc.cluster_name", err.Error())
				} else {
					cfg.Dial = d
				}
			case gs.GetGoogleGrpc() != nil:
				gg := gs.GetGoogleGrpc()
				errs.only(gp+".google_grpc", gg, "target_uri", "stat_prefix")
				if gg.GetTargetUri() == "" {
					errs.add(gp+".google_grpc.target_uri", "required")
				}
				cfg.Target = gg.GetTargetUri()
			default:
				errs.add(gp, "envoy_grpc or google_grpc is required")
			}
		}
	}
	for _, cs := range []struct {
		field string
		src   *corev3.ConfigSource
		to    *time.Duration
		path  *string
	}{{"lds_config", dr.GetLdsConfig(), &cfg.LDSInitialFetchTimeout, &cfg.LDSPath}, {"cds_config", dr.GetCdsConfig(), &cfg.CDSInitialFetchTimeout, &cfg.CDSPath}} {
		p := base + "." + cs.field
		if cs.src == nil {
			errs.add(p, "required (as `ads: {}`)")
			continue
		}
		errs.only(p, cs.src, "ads", "path_config_source", "initial_fetch_timeout", "resource_api_version")
		switch {
		case cs.src.GetAds() != nil:
			if ads == nil {
				errs.add(p+".ads", "needs dynamic_resources.ads_config")
			}
		case cs.src.GetPathConfigSource() != nil:
			pc := cs.src.GetPathConfigSource()
			errs.only(p+".path_config_source", pc, "path")
			if ads != nil {
				errs.add(p+".path_config_source", "mixing path_config_source with ADS is not implemented")
			}
			if pc.GetPath() == "" {
				errs.add(p+".path_config_source.path", "required")
			}
			*cs.path = pc.GetPath()
		default:
			errs.add(p, "only `ads: {}` and path_config_source are implemented")
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
	if len(errs) > 0 {
		return Config{}, errs
	}
	return cfg, nil
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
			e.add(path+"."+string(fd.Name()), "not implemented by wasmesh")
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
