package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/wasmesh/wasmesh/admin"
	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/stats"
	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/upstream"
)

// clusterStats adapts the stats store to the cluster manager's interface.
// Each cluster's stats are one stats.Block, and a removed cluster's stats
// are dropped with it (its block only: cluster "a.b" keeps its stats when
// cluster "a" goes).
type clusterStats struct{ s *stats.Store }

func (c clusterStats) Counter(name string) cluster.Counter { return c.s.Counter(name) }
func (c clusterStats) Gauge(name string) cluster.Gauge     { return c.s.Gauge(name, stats.Accumulate) }
func (c clusterStats) Remove(prefix string) int            { return c.s.RemoveBlock(prefix) }

func (c clusterStats) StatsBlock(prefix string, counters, gauges []string) cluster.StatsBlock {
	return clusterBlock{c.s.Block(prefix, c.s.StatSet(counters, gauges, stats.Accumulate))}
}

type clusterBlock struct{ b *stats.Block }

func (c clusterBlock) Counter(name string) cluster.Counter { return c.b.Counter(name) }
func (c clusterBlock) Gauge(name string) cluster.Gauge     { return c.b.Gauge(name, stats.Accumulate) }

// CounterAt and GaugeAt hand out the block's stats by position
// (cluster.StatsSlots), so that a cluster keeps no handle per stat.
func (c clusterBlock) CounterAt(i int) cluster.Counter { return c.b.CounterAt(i) }
func (c clusterBlock) GaugeAt(i int) cluster.Gauge     { return c.b.GaugeAt(i) }

// secretSet holds static_resources.secrets by name.
type secretSet map[string]*tlsv3.Secret

func (s secretSet) Secret(name string) (*tlsv3.Secret, bool) {
	v, ok := s[name]
	return v, ok
}

// routerClusters lets the router send requests through the cluster manager,
// classifying failures for Envoy's response flags.
type routerClusters struct{ m *cluster.Manager }

func (r routerClusters) Has(name string) bool { return r.m.Get(name) != nil }

func (r routerClusters) RoundTrip(name string, req *http.Request, lb router.LBContext) (*http.Response, string, error) {
	c := r.m.Get(name)
	if c == nil {
		return nil, "", &router.UpstreamError{Kind: router.FailureNoHealthyUpstream, Err: cluster.ErrUnknownCluster}
	}
	resp, host, err := c.RoundTrip(req, cluster.LoadBalancerContext{
		Hash: lb.Hash, HasHash: lb.HasHash, OriginalDst: lb.OriginalDst, DownstreamHTTP2: lb.DownstreamHTTP2,
		AutoHostRewrite: lb.AutoHostRewrite, Fields: lb.Fields, Response: lb.Response,
	})
	addr := ""
	if host != nil {
		addr = host.Address()
	}
	if err != nil {
		kind := router.FailureConnect
		switch {
		case errors.Is(err, cluster.ErrNoHealthyUpstream):
			kind = router.FailureNoHealthyUpstream
		case errors.Is(err, cluster.ErrOverflow):
			kind = router.FailureOverflow
		case errors.Is(err, cluster.ErrUpstreamReset):
			kind = router.FailureReset
		case errors.Is(err, context.DeadlineExceeded):
			return nil, addr, err
		}
		return nil, addr, &router.UpstreamError{Kind: kind, Err: err}
	}
	return resp, addr, nil
}

// tcpDialer lets tcp_proxy connect through the cluster manager.
type tcpDialer struct{ m *cluster.Manager }

func (d tcpDialer) Dial(ctx context.Context, name string, origDst netip.AddrPort) (net.Conn, string, error) {
	c := d.m.Get(name)
	if c == nil {
		return nil, "", fmt.Errorf("tcp_proxy: %w %q", cluster.ErrUnknownCluster, name)
	}
	conn, host, err := c.Dial(ctx, cluster.LoadBalancerContext{OriginalDst: origDst})
	addr := ""
	if host != nil {
		addr = host.Address()
	}
	return conn, addr, err
}

// remoteFetcher fetches remote Wasm code through a cluster.
type remoteFetcher struct{ m *cluster.Manager }

func (f remoteFetcher) Fetch(ctx context.Context, name, uri string, timeoutMillis int64, retries uint32) ([]byte, error) {
	c := f.m.Get(name)
	if c == nil {
		return nil, fmt.Errorf("%w %q", cluster.ErrUnknownCluster, name)
	}
	if timeoutMillis <= 0 {
		timeoutMillis = 10_000
	}
	var lastErr error
	for attempt := uint32(0); attempt <= retries; attempt++ {
		b, err := func() ([]byte, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Duration(timeoutMillis)*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
			if err != nil {
				return nil, err
			}
			resp, _, err := c.RoundTrip(req, cluster.LoadBalancerContext{})
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("status %d", resp.StatusCode)
			}
			return io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		}()
		if err == nil {
			return b, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// streamProperties builds the Proxy-Wasm properties of a stream from the
// data plane's stream info, refreshed at each lookup.
func streamProperties(node *corev3.Node) func(s *filterchain.Stream) wasm.Properties {
	return func(s *filterchain.Stream) wasm.Properties {
		return &liveProperties{s: s, node: node, si: &wasm.StreamInfo{}}
	}
}

type liveProperties struct {
	s    *filterchain.Stream
	node *corev3.Node
	si   *wasm.StreamInfo
}

func (p *liveProperties) refresh() {
	in := p.s.Info
	si := p.si
	si.ConnectionID = in.ConnectionID
	si.SourceAddress = in.DownstreamRemote
	si.DestinationAddress = in.DownstreamLocal
	si.RequestedServerName = in.RequestedServerName
	si.StartTime = in.StartTime
	si.Protocol = in.Protocol
	si.Duration = time.Since(in.StartTime)
	si.BytesReceived = int64(in.BytesReceived)
	si.BytesSent = int64(in.BytesSent)
	si.ResponseCode = uint32(in.ResponseCode)
	si.ResponseCodeDetails = in.ResponseCodeDetails
	si.ResponseFlags = uint64(in.ResponseFlags)
	if ap, err := netip.ParseAddrPort(in.UpstreamHost); err == nil {
		si.UpstreamAddress = ap
	}
	si.UpstreamRequestAttemptCount = uint64(in.Attempts)
	si.Node = p.node
	si.ClusterName = in.ClusterName
	si.RouteName = in.RouteName
	si.VirtualHostName = in.VirtualHost
	si.FilterChainName = in.ListenerName
}

func (p *liveProperties) GetProperty(path []string) ([]byte, bool) {
	p.refresh()
	return p.si.GetProperty(path)
}

func (p *liveProperties) SetProperty(path []string, value []byte) bool {
	return p.si.SetProperty(path, value)
}

// adminAddress converts a host:port to an admin address proto.
func adminAddress(addr string) *corev3.Address {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

// clusterStatuses lists the clusters for /clusters.
func clusterStatuses(m *cluster.Manager) []admin.ClusterStatus {
	var out []admin.ClusterStatus
	for _, name := range m.Names() {
		c := m.Get(name)
		if c == nil {
			continue
		}
		cs := admin.ClusterStatus{Name: name, ObservabilityName: name, Default: admin.DefaultThresholds(), High: admin.DefaultThresholds()}
		for _, h := range c.Hosts() {
			st := h.Stats()
			hs := admin.HostStatus{
				Address:  adminAddress(h.Address()),
				Hostname: h.Hostname(),
				Locality: h.Locality(),
				Weight:   h.Weight(),
				Priority: h.Priority(),
				Stats: admin.HostStats{CxConnectFail: st.CxConnectFail, CxTotal: st.CxTotal, RqError: st.RqError,
					RqSuccess: st.RqSuccess, RqTimeout: st.RqTimeout, RqTotal: st.RqTotal,
					CxActive: st.CxActive, RqActive: st.RqActive},
				SuccessRate:            st.SuccessRate,
				LocalOriginSuccessRate: -1,
			}
			flags := h.HealthFlags()
			if strings.Contains(flags, "failed_active_hc") {
				hs.Health |= admin.FailedActiveHC
			}
			if strings.Contains(flags, "failed_outlier_check") {
				hs.Health |= admin.FailedOutlierCheck
			}
			if strings.Contains(flags, "failed_eds_health") {
				hs.Health |= admin.FailedEDSHealth
			}
			cs.Hosts = append(cs.Hosts, hs)
		}
		out = append(out, cs)
	}
	return out
}

// calloutClusters lets Proxy-Wasm callouts (proxy_http_call, gRPC calls)
// reach the data plane's clusters by name, through their load balancers
// and pools.
func calloutClusters(m *cluster.Manager) func(name string) (upstream.Cluster, bool) {
	return func(name string) (upstream.Cluster, bool) {
		if m.Get(name) == nil {
			return upstream.Cluster{}, false
		}
		return upstream.Cluster{
			RoundTripper: roundTripFunc(func(req *http.Request) (*http.Response, error) {
				c := m.Get(name)
				if c == nil {
					return nil, fmt.Errorf("%w %q", cluster.ErrUnknownCluster, name)
				}
				resp, _, err := c.RoundTrip(req, cluster.LoadBalancerContext{})
				return resp, err
			}),
			Dial: func(ctx context.Context) (net.Conn, error) {
				c := m.Get(name)
				if c == nil {
					return nil, fmt.Errorf("%w %q", cluster.ErrUnknownCluster, name)
				}
				conn, _, err := c.Dial(ctx, cluster.LoadBalancerContext{})
				return conn, err
			},
		}, true
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
