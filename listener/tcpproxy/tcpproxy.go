package tcpproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/listener/network"
	"github.com/wasmesh/wasmesh/stats"
)

// TypeURL is the filter's typed_config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

// DefaultIdleTimeout is Envoy's idle_timeout default.
const DefaultIdleTimeout = time.Hour

// Register adds the filter's factory to r.
func Register(r *network.Registry) { r.Add(factory{}) }

type factory struct{}

func (factory) TypeURLs() []string { return []string{TypeURL} }

func (factory) Compile(ctx context.Context, name string, raw *anypb.Any, env *network.Env) (any, error) {
	cfg := &tcpv3.TcpProxy{}
	if err := raw.UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	return Compile(cfg, env)
}

// Config is a compiled tcp_proxy.
type Config struct {
	clusters    []weighted
	total       uint64
	idleTimeout time.Duration
	attempts    int
	dialer      network.Dialer
	log         *zap.Logger
	stats       *network.ProxyStats
	cxTotal     *stats.Counter
	noRoute     *stats.Counter
	connectFail *stats.Counter
}

type weighted struct {
	name   string
	weight uint64
}

var _ network.TerminalConfig = (*Config)(nil)

// Compile validates and compiles cfg. Errors name the field.
func Compile(cfg *tcpv3.TcpProxy, env *network.Env) (*Config, error) {
	if err := cfg.ValidateAll(); err != nil {
		return nil, err
	}
	if errs := protocheck.Only("", cfg, "stat_prefix", "cluster_specifier", "idle_timeout", "max_connect_attempts"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c := &Config{idleTimeout: DefaultIdleTimeout, attempts: 1, dialer: env.Dialer, log: env.Logger}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if t := cfg.GetIdleTimeout(); t != nil {
		c.idleTimeout = t.AsDuration()
	}
	if n := cfg.GetMaxConnectAttempts(); n != nil {
		c.attempts = int(n.GetValue())
	}
	switch {
	case cfg.GetCluster() != "":
		c.clusters = []weighted{{name: cfg.GetCluster(), weight: 1}}
	case cfg.GetWeightedClusters() != nil:
		for i, wc := range cfg.GetWeightedClusters().GetClusters() {
			if errs := protocheck.Only(fmt.Sprintf("weighted_clusters.clusters[%d]", i), wc, "name", "weight"); len(errs) > 0 {
				return nil, errors.Join(errs...)
			}
			c.clusters = append(c.clusters, weighted{name: wc.GetName(), weight: uint64(wc.GetWeight())})
		}
	default:
		return nil, errors.New("cluster_specifier: one of cluster or weighted_clusters is required")
	}
	for _, w := range c.clusters {
		c.total += w.weight
	}
	if c.total == 0 {
		return nil, errors.New("weighted_clusters: the total weight must be positive")
	}
	st := env.Stats
	if st == nil {
		st = stats.New(stats.Options{})
	}
	sc := st.Scope("tcp." + cfg.GetStatPrefix() + ".")
	c.stats = &network.ProxyStats{
		RxBytes:       sc.Counter("downstream_cx_rx_bytes_total"),
		TxBytes:       sc.Counter("downstream_cx_tx_bytes_total"),
		IdleTimeout:   sc.Counter("idle_timeout"),
		UpstreamFlush: sc.Counter("upstream_flush_total"),
	}
	c.cxTotal = sc.Counter("downstream_cx_total")
	c.noRoute = sc.Counter("downstream_cx_no_route")
	c.connectFail = sc.Counter("upstream_cx_connect_fail")
	return c, nil
}

// pick chooses the connection's cluster by weight.
func (c *Config) pick() string {
	if len(c.clusters) == 1 {
		return c.clusters[0].name
	}
	r := rand.Uint64N(c.total)
	for _, w := range c.clusters {
		if r < w.weight {
			return w.name
		}
		r -= w.weight
	}
	return c.clusters[len(c.clusters)-1].name
}

// ClusterFor returns the cluster a random value in [0, total weight)
// selects (for tests).
func (c *Config) ClusterFor(r uint64) string {
	for _, w := range c.clusters {
		if r < w.weight {
			return w.name
		}
		r -= w.weight
	}
	return c.clusters[len(c.clusters)-1].name
}

// Open dials the upstream.
func (c *Config) Open(ctx context.Context, conn *network.Conn) (*network.Upstream, error) {
	c.cxTotal.Inc()
	if c.dialer == nil {
		c.noRoute.Inc()
		return nil, errors.New("tcp_proxy: no cluster manager")
	}
	cluster := c.pick()
	var err error
	for i := 0; i < c.attempts; i++ {
		up, host, derr := c.dialer.Dial(ctx, cluster, conn.Info.OriginalDst)
		if derr == nil {
			return &network.Upstream{Conn: up, Host: host, IdleTimeout: c.idleTimeout, Stats: c.stats}, nil
		}
		err = derr
		if ctx.Err() != nil {
			break
		}
	}
	c.connectFail.Inc()
	conn.Logger().Debug("tcp_proxy: upstream connect failed", zap.String("cluster", cluster), zap.Error(err))
	return nil, fmt.Errorf("tcp_proxy: cluster %q: %w", cluster, err)
}
