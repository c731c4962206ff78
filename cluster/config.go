package cluster

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	caresv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	getaddrinfov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/getaddrinfo/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wasmesh/wasmesh/cluster/dns"
	"github.com/wasmesh/wasmesh/cluster/health"
	"github.com/wasmesh/wasmesh/cluster/lb"
)

// httpProtocolOptionsName is the typed_extension_protocol_options key for
// upstream HTTP options.
const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

type discovery uint8

const (
	discStatic discovery = iota
	discStrictDNS
	discLogicalDNS
	discEDS
	discOriginalDst
)

func (d discovery) String() string {
	return [...]string{"STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"}[d]
}

type protocolMode uint8

const (
	protoHTTP1 protocolMode = iota
	protoHTTP2
	protoAuto       // ALPN over TLS, HTTP/1.1 in plaintext
	protoDownstream // follow the downstream protocol
)

// thresholds are one priority's circuit breaker limits.
type thresholds struct {
	maxConnections, maxPending, maxRequests, maxRetries uint64
	trackRemaining                                      bool
}

var defaultThresholds = thresholds{maxConnections: 1024, maxPending: 1024, maxRequests: 1024, maxRetries: 3}

type dnsSettings struct {
	refresh                 time.Duration
	failureBase, failureMax time.Duration
	respectTTL              bool
	family                  dns.Family
	jitter                  time.Duration
	resolver                *dns.Config // nil: the manager's resolver
}

type origDstSettings struct {
	useHeader    bool
	header       string
	portOverride uint32
	cleanup      time.Duration
}

// assignment is a compiled ClusterLoadAssignment.
type assignment struct {
	hosts            []hostSpec
	overprovisioning uint32
	weightedHealth   bool
}

// config is a compiled Cluster: everything the runtime needs, immutable.
type config struct {
	proto          *clusterv3.Cluster
	name, statName string
	kind           discovery
	connectTimeout time.Duration
	lb             lb.Config
	panicThreshold uint32
	breakers       [2]thresholds // DEFAULT, HIGH
	protocol       protocolMode
	h2             *http.HTTP2Config
	idleTimeout    time.Duration
	// maxRequestsPerConn closes an HTTP/1.1 upstream connection after that
	// many requests (max_requests_per_connection; 0: no limit).
	maxRequestsPerConn uint32
	tls                *tlsSettings
	dns                *dnsSettings
	outlier            *outlierConfig
	health             []*health.Config
	origDst            *origDstSettings
	assignment         *assignment
	edsService         string

	useHostnameForHashing      bool
	ignoreNewHostsUntilFirstHC bool
	closeOnHealthFailure       bool
	keepAlive                  *net.KeepAliveConfig
	localAddr                  *net.TCPAddr
}

func resourceName(name string) string { return fmt.Sprintf("cluster %q", name) }

func durationOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

func u32Or(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func u64Or(v *wrapperspb.UInt64Value, def uint64) uint64 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

// The refused fields of the messages every cluster and endpoint has, worked
// out once (errs.onlyFields); immutable.
var (
	clusterRefused = refusedFields(&clusterv3.Cluster{},
		"name", "alt_stat_name", "type", "eds_cluster_config", "connect_timeout",
		"per_connection_buffer_limit_bytes", "lb_policy", "load_assignment", "health_checks",
		"circuit_breakers", "common_http_protocol_options", "http2_protocol_options", "max_requests_per_connection",
		"typed_extension_protocol_options", "dns_refresh_rate", "dns_jitter", "dns_failure_refresh_rate",
		"respect_dns_ttl", "dns_lookup_family", "dns_resolvers", "use_tcp_for_dns_lookups",
		"dns_resolution_config", "typed_dns_resolver_config", "wait_for_warm_on_init",
		"outlier_detection", "cleanup_interval", "upstream_bind_config",
		"ring_hash_lb_config", "maglev_lb_config", "original_dst_lb_config", "least_request_lb_config",
		"round_robin_lb_config", "common_lb_config", "transport_socket", "metadata", "protocol_selection",
		"upstream_connection_options", "close_connections_on_host_health_failure",
		"ignore_health_on_host_removal", "track_timeout_budgets", "track_cluster_stats",
		"http_protocol_options")
	edsConfigRefused  = refusedFields(&clusterv3.Cluster_EdsClusterConfig{}, "eds_config", "service_name")
	claRefused        = refusedFields(&endpointv3.ClusterLoadAssignment{}, "cluster_name", "endpoints", "policy")
	localityRefused   = refusedFields(&endpointv3.LocalityLbEndpoints{}, "locality", "lb_endpoints", "load_balancing_weight", "priority", "metadata")
	lbEndpointRefused = refusedFields(&endpointv3.LbEndpoint{}, "endpoint", "health_status", "metadata", "load_balancing_weight")
	endpointRefused   = refusedFields(&endpointv3.Endpoint{}, "address", "health_check_config", "hostname")
	socketAddrRefused = refusedFields(&corev3.SocketAddress{}, "protocol", "address", "port_value", "ipv4_compat")
)

// compile turns a Cluster into a config, reporting every problem at once.
func compile(c *clusterv3.Cluster, o *Options) (*config, error) {
	cfg := new(config)
	if err := compileInto(c, o, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// compileInto is compile into *cfg, which Validate keeps on its stack.
func compileInto(c *clusterv3.Cluster, o *Options, cfg *config) error {
	e := &errs{kind: "cluster", name: c.GetName()}
	if err := c.ValidateAll(); err != nil {
		// Keep going: the getters are nil-safe, and every problem is
		// reported at once.
		e.addValidation("", err)
	}
	e.onlyFields("", c, clusterRefused)

	*cfg = config{proto: c, name: c.GetName(), statName: c.GetName()}
	if c.GetAltStatName() != "" {
		cfg.statName = c.GetAltStatName()
	}
	cfg.connectTimeout = durationOr(c.GetConnectTimeout(), 5*time.Second)
	if cfg.connectTimeout <= 0 {
		e.errf("connect_timeout", "must be positive")
	}

	switch c.GetClusterDiscoveryType().(type) {
	case *clusterv3.Cluster_ClusterType:
		e.unsupported("cluster_type")
	}
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		cfg.kind = discStatic
	case clusterv3.Cluster_STRICT_DNS:
		cfg.kind = discStrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		cfg.kind = discLogicalDNS
	case clusterv3.Cluster_EDS:
		cfg.kind = discEDS
	case clusterv3.Cluster_ORIGINAL_DST:
		cfg.kind = discOriginalDst
	default:
		e.unsupportedValue("type", c.GetType())
	}
	if ec := c.GetEdsClusterConfig(); ec != nil {
		e.onlyFields("eds_cluster_config", ec, edsConfigRefused)
		if cfg.kind != discEDS {
			e.errf("eds_cluster_config", "only valid for an EDS cluster")
		}
		cfg.edsService = ec.GetServiceName()
	}

	compileLB(e, c, cfg)
	compileBreakers(e, c.GetCircuitBreakers(), cfg)
	maxReqPath := compileProtocol(e, c, cfg)
	cfg.tls = compileTransportSocket(e, "transport_socket", c.GetTransportSocket(), o)
	// Only the HTTP/1.1 pool counts requests per connection.
	if cfg.maxRequestsPerConn > 0 && cfg.protocol != protoHTTP1 && (cfg.protocol != protoAuto || cfg.tls != nil) {
		e.errf(maxReqPath, "applies to HTTP/1.1 upstream connections only in wasmesh (this cluster may use HTTP/2)")
	}
	compileDNS(e, c, cfg)
	cfg.outlier = compileOutlier(e, c.GetOutlierDetection())
	for i, hc := range c.GetHealthChecks() {
		hcfg, herrs := health.Compile(hc)
		for _, he := range herrs {
			p := idx("", "health_checks", i)
			if pe, ok := he.(*health.PathError); ok {
				e.add(at(p, pe.Path), pe.Err)
				continue
			}
			e.add(p, he)
		}
		if hcfg != nil {
			cfg.health = append(cfg.health, hcfg)
		}
	}
	if cfg.kind == discOriginalDst && len(c.GetHealthChecks()) > 0 {
		e.errf("health_checks", "not allowed on an ORIGINAL_DST cluster")
	}
	cfg.closeOnHealthFailure = c.GetCloseConnectionsOnHostHealthFailure()

	if uc := c.GetUpstreamConnectionOptions(); uc != nil {
		e.only("upstream_connection_options", uc, "tcp_keepalive")
		if ka := uc.GetTcpKeepalive(); ka != nil {
			cfg.keepAlive = &net.KeepAliveConfig{Enable: true, Count: -1, Idle: -1, Interval: -1}
			if v := ka.GetKeepaliveProbes(); v != nil {
				cfg.keepAlive.Count = int(v.GetValue())
			}
			if v := ka.GetKeepaliveTime(); v != nil {
				cfg.keepAlive.Idle = time.Duration(v.GetValue()) * time.Second
			}
			if v := ka.GetKeepaliveInterval(); v != nil {
				cfg.keepAlive.Interval = time.Duration(v.GetValue()) * time.Second
			}
		}
	}
	if bc := c.GetUpstreamBindConfig(); bc != nil {
		e.only("upstream_bind_config", bc, "source_address")
		sa := bc.GetSourceAddress()
		e.only("upstream_bind_config.source_address", sa, "address", "port_value", "protocol")
		a, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			e.errf("upstream_bind_config.source_address.address", "malformed IP address %q", sa.GetAddress())
		} else {
			cfg.localAddr = &net.TCPAddr{IP: a.AsSlice(), Port: int(sa.GetPortValue())}
		}
	}

	switch cfg.kind {
	case discOriginalDst:
		if c.GetLoadAssignment() != nil && len(c.GetLoadAssignment().GetEndpoints()) > 0 {
			e.errf("load_assignment", "not allowed on an ORIGINAL_DST cluster")
		}
		od := &origDstSettings{header: "x-envoy-original-dst-host", cleanup: durationOr(c.GetCleanupInterval(), 5*time.Second)}
		if oc := c.GetOriginalDstLbConfig(); oc != nil {
			e.only("original_dst_lb_config", oc, "use_http_header", "http_header_name", "upstream_port_override")
			od.useHeader = oc.GetUseHttpHeader()
			if oc.GetHttpHeaderName() != "" {
				od.header = oc.GetHttpHeaderName()
			}
			if p := oc.GetUpstreamPortOverride(); p != nil {
				if p.GetValue() == 0 || p.GetValue() > 65535 {
					e.errf("original_dst_lb_config.upstream_port_override", "port %d out of range", p.GetValue())
				}
				od.portOverride = p.GetValue()
			}
		}
		cfg.origDst = od
	default:
		if c.GetCleanupInterval() != nil {
			e.errf("cleanup_interval", "only valid for an ORIGINAL_DST cluster")
		}
		if c.GetOriginalDstLbConfig() != nil {
			e.errf("original_dst_lb_config", "only valid for an ORIGINAL_DST cluster")
		}
		if la := c.GetLoadAssignment(); la != nil {
			cfg.assignment = compileAssignment(e, "load_assignment", la, cfg.kind)
		} else if cfg.kind != discEDS {
			e.errf("load_assignment", "required for a %s cluster", cfg.kind)
		}
		if cfg.kind == discLogicalDNS && cfg.assignment != nil {
			if len(cfg.assignment.hosts) != 1 || len(la(c).GetEndpoints()) != 1 {
				e.errf("load_assignment", "a LOGICAL_DNS cluster must have exactly one locality with one endpoint")
			}
		}
	}

	if !e.ok() {
		return e.err()
	}
	return nil
}

func la(c *clusterv3.Cluster) *endpointv3.ClusterLoadAssignment { return c.GetLoadAssignment() }

func compileLB(e *errs, c *clusterv3.Cluster, cfg *config) {
	l := &cfg.lb
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		l.Policy = lb.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		l.Policy = lb.LeastRequest
	case clusterv3.Cluster_RANDOM:
		l.Policy = lb.Random
	case clusterv3.Cluster_RING_HASH:
		l.Policy = lb.RingHash
	case clusterv3.Cluster_MAGLEV:
		l.Policy = lb.Maglev
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
			e.errf("lb_policy", "CLUSTER_PROVIDED is only valid for an ORIGINAL_DST cluster")
		}
	default:
		e.unsupportedValue("lb_policy", c.GetLbPolicy())
	}
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST && c.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
		e.errf("lb_policy", "an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED, not %s", c.GetLbPolicy())
	}
	policyOnly := func(field string, p clusterv3.Cluster_LbPolicy) {
		if c.GetLbPolicy() != p {
			e.errf(field, "only valid with lb_policy %s", p)
		}
	}
	if rr := c.GetRoundRobinLbConfig(); rr != nil {
		policyOnly("round_robin_lb_config", clusterv3.Cluster_ROUND_ROBIN)
		e.only("round_robin_lb_config", rr)
	}
	if lr := c.GetLeastRequestLbConfig(); lr != nil {
		policyOnly("least_request_lb_config", clusterv3.Cluster_LEAST_REQUEST)
		e.only("least_request_lb_config", lr, "choice_count", "active_request_bias")
		l.ChoiceCount = u32Or(lr.GetChoiceCount(), 0)
		if b := lr.GetActiveRequestBias(); b != nil {
			if b.GetRuntimeKey() != "" {
				// The runtime key only matters with runtime overrides, which
				// wasmesh does not have; the default value applies.
			}
			l.ActiveRequestBias, l.HasActiveRequestBias = b.GetDefaultValue(), true
			if l.ActiveRequestBias < 0 {
				e.errf("least_request_lb_config.active_request_bias", "must not be negative")
			}
		}
	}
	if rh := c.GetRingHashLbConfig(); rh != nil {
		policyOnly("ring_hash_lb_config", clusterv3.Cluster_RING_HASH)
		e.only("ring_hash_lb_config", rh, "minimum_ring_size", "maximum_ring_size", "hash_function")
		l.MinRingSize = u64Or(rh.GetMinimumRingSize(), 0)
		l.MaxRingSize = u64Or(rh.GetMaximumRingSize(), 0)
		if rh.GetHashFunction() == clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2 {
			l.Hash = lb.Murmur2
		}
	}
	if mg := c.GetMaglevLbConfig(); mg != nil {
		policyOnly("maglev_lb_config", clusterv3.Cluster_MAGLEV)
		e.only("maglev_lb_config", mg, "table_size")
		l.TableSize = u64Or(mg.GetTableSize(), 0)
	}
	if err := l.Validate(); err != nil {
		switch l.Policy {
		case lb.RingHash:
			e.add("ring_hash_lb_config", err)
		case lb.Maglev:
			e.add("maglev_lb_config.table_size", err)
		default:
			e.add("least_request_lb_config.choice_count", err)
		}
	}

	cfg.panicThreshold = lb.DefaultPanicThreshold
	if cl := c.GetCommonLbConfig(); cl != nil {
		e.only("common_lb_config", cl, "healthy_panic_threshold", "zone_aware_lb_config", "update_merge_window",
			"ignore_new_hosts_until_first_hc", "consistent_hashing_lb_config")
		if p := cl.GetHealthyPanicThreshold(); p != nil {
			v := p.GetValue()
			if v < 0 || v > 100 {
				e.errf("common_lb_config.healthy_panic_threshold", "must be within [0, 100]")
			}
			cfg.panicThreshold = uint32(v + 0.5)
		}
		// zone_aware_lb_config needs a local cluster (cluster_manager.
		// local_cluster_name), which wasmesh does not have: like Envoy
		// without one, it routes without zone awareness.
		cfg.ignoreNewHostsUntilFirstHC = cl.GetIgnoreNewHostsUntilFirstHc()
		if ch := cl.GetConsistentHashingLbConfig(); ch != nil {
			e.only("common_lb_config.consistent_hashing_lb_config", ch, "use_hostname_for_hashing")
			cfg.useHostnameForHashing = ch.GetUseHostnameForHashing()
		}
	}
}

func compileBreakers(e *errs, cb *clusterv3.CircuitBreakers, cfg *config) {
	cfg.breakers = [2]thresholds{defaultThresholds, defaultThresholds}
	if cb == nil {
		return
	}
	e.only("circuit_breakers", cb, "thresholds")
	seen := map[corev3.RoutingPriority]bool{}
	for i, t := range cb.GetThresholds() {
		p := idx("circuit_breakers", "thresholds", i)
		e.only(p, t, "priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "track_remaining")
		if seen[t.GetPriority()] {
			e.errf(at(p, "priority"), "duplicate thresholds for priority %s", t.GetPriority())
		}
		seen[t.GetPriority()] = true
		th := thresholds{
			maxConnections: uint64(u32Or(t.GetMaxConnections(), 1024)),
			maxPending:     uint64(u32Or(t.GetMaxPendingRequests(), 1024)),
			maxRequests:    uint64(u32Or(t.GetMaxRequests(), 1024)),
			maxRetries:     uint64(u32Or(t.GetMaxRetries(), 3)),
			trackRemaining: t.GetTrackRemaining(),
		}
		cfg.breakers[t.GetPriority()&1] = th
	}
}

// compileProtocol reads the upstream protocol options; it returns the
// field path of max_requests_per_connection when set.
func compileProtocol(e *errs, c *clusterv3.Cluster, cfg *config) (maxReqPath string) {
	cfg.protocol = protoHTTP1
	cfg.idleTimeout = time.Hour
	common := func(path string, o *corev3.HttpProtocolOptions) {
		if o == nil {
			return
		}
		e.only(path, o, "idle_timeout", "max_requests_per_connection")
		if o.GetIdleTimeout() != nil {
			cfg.idleTimeout = o.GetIdleTimeout().AsDuration()
		}
		if v := o.GetMaxRequestsPerConnection(); v != nil {
			cfg.maxRequestsPerConn, maxReqPath = v.GetValue(), at(path, "max_requests_per_connection")
		}
	}
	if v := c.GetMaxRequestsPerConnection(); v != nil { //nolint:staticcheck // deprecated in v3, still read by Envoy
		cfg.maxRequestsPerConn, maxReqPath = v.GetValue(), "max_requests_per_connection"
	}
	common("common_http_protocol_options", c.GetCommonHttpProtocolOptions())
	if h1 := c.GetHttpProtocolOptions(); h1 != nil {
		e.only("http_protocol_options", h1)
	}
	if h2 := c.GetHttp2ProtocolOptions(); h2 != nil {
		cfg.protocol = protoHTTP2
		cfg.h2 = compileH2(e, "http2_protocol_options", h2)
	}
	if c.GetProtocolSelection() == clusterv3.Cluster_USE_DOWNSTREAM_PROTOCOL {
		cfg.protocol = protoDownstream
	}
	for name, a := range c.GetTypedExtensionProtocolOptions() {
		p := fmt.Sprintf("typed_extension_protocol_options[%q]", name)
		if name != httpProtocolOptionsName && a.GetTypeUrl() != "type.googleapis.com/"+httpProtocolOptionsName {
			e.unsupported(p)
			continue
		}
		o := &httpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(o); err != nil {
			e.errf(p, "want %s: %v", httpProtocolOptionsName, err)
			continue
		}
		if err := o.ValidateAll(); err != nil {
			e.addValidation(p, err)
			continue
		}
		e.only(p, o, "common_http_protocol_options", "explicit_http_config", "use_downstream_protocol_config", "auto_config", "upstream_http_protocol_options")
		common(at(p, "common_http_protocol_options"), o.GetCommonHttpProtocolOptions())
		if u := o.GetUpstreamHttpProtocolOptions(); u != nil {
			e.only(at(p, "upstream_http_protocol_options"), u)
		}
		switch {
		case o.GetExplicitHttpConfig() != nil:
			x := o.GetExplicitHttpConfig()
			pp := at(p, "explicit_http_config")
			switch {
			case x.GetHttpProtocolOptions() != nil:
				e.only(at(pp, "http_protocol_options"), x.GetHttpProtocolOptions())
				cfg.protocol = protoHTTP1
			case x.GetHttp2ProtocolOptions() != nil:
				cfg.protocol = protoHTTP2
				cfg.h2 = compileH2(e, at(pp, "http2_protocol_options"), x.GetHttp2ProtocolOptions())
			default:
				e.unsupported(at(pp, "http3_protocol_options"))
			}
		case o.GetUseDownstreamProtocolConfig() != nil:
			x := o.GetUseDownstreamProtocolConfig()
			pp := at(p, "use_downstream_protocol_config")
			e.only(pp, x, "http_protocol_options", "http2_protocol_options")
			if x.GetHttpProtocolOptions() != nil {
				e.only(at(pp, "http_protocol_options"), x.GetHttpProtocolOptions())
			}
			if x.GetHttp2ProtocolOptions() != nil {
				cfg.h2 = compileH2(e, at(pp, "http2_protocol_options"), x.GetHttp2ProtocolOptions())
			}
			cfg.protocol = protoDownstream
		case o.GetAutoConfig() != nil:
			x := o.GetAutoConfig()
			pp := at(p, "auto_config")
			e.only(pp, x, "http_protocol_options", "http2_protocol_options")
			if x.GetHttpProtocolOptions() != nil {
				e.only(at(pp, "http_protocol_options"), x.GetHttpProtocolOptions())
			}
			if x.GetHttp2ProtocolOptions() != nil {
				cfg.h2 = compileH2(e, at(pp, "http2_protocol_options"), x.GetHttp2ProtocolOptions())
			}
			cfg.protocol = protoAuto
		}
	}
	return maxReqPath
}

func compileH2(e *errs, path string, o *corev3.Http2ProtocolOptions) *http.HTTP2Config {
	e.only(path, o, "max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size", "connection_keepalive", "hpack_table_size")
	h := &http.HTTP2Config{}
	if v := o.GetInitialStreamWindowSize(); v != nil {
		h.MaxReceiveBufferPerStream = int(v.GetValue())
	}
	if v := o.GetInitialConnectionWindowSize(); v != nil {
		h.MaxReceiveBufferPerConnection = int(v.GetValue())
	}
	if v := o.GetHpackTableSize(); v != nil {
		h.MaxDecoderHeaderTableSize = int(v.GetValue())
		h.MaxEncoderHeaderTableSize = int(v.GetValue())
	}
	if v := o.GetMaxConcurrentStreams(); v != nil && v.GetValue() < 2147483647 {
		// Go's client follows the server's SETTINGS_MAX_CONCURRENT_STREAMS;
		// a lower client-side limit cannot be enforced.
		e.unsupportedValue(at(path, "max_concurrent_streams"), v.GetValue())
	}
	if ka := o.GetConnectionKeepalive(); ka != nil {
		e.only(at(path, "connection_keepalive"), ka, "interval", "timeout")
		h.SendPingTimeout = durationOr(ka.GetInterval(), 0)
		h.PingTimeout = durationOr(ka.GetTimeout(), 0)
	}
	return h
}

func compileDNS(e *errs, c *clusterv3.Cluster, cfg *config) {
	isDNS := cfg.kind == discStrictDNS || cfg.kind == discLogicalDNS
	dnsFields := []struct {
		name string
		set  bool
	}{
		{"dns_refresh_rate", c.GetDnsRefreshRate() != nil},
		{"dns_failure_refresh_rate", c.GetDnsFailureRefreshRate() != nil},
		{"dns_jitter", c.GetDnsJitter() != nil},
		{"respect_dns_ttl", c.GetRespectDnsTtl()},
		{"dns_resolvers", len(c.GetDnsResolvers()) > 0},
		{"dns_resolution_config", c.GetDnsResolutionConfig() != nil},
		{"typed_dns_resolver_config", c.GetTypedDnsResolverConfig() != nil},
		{"use_tcp_for_dns_lookups", c.GetUseTcpForDnsLookups()},
	}
	if !isDNS {
		for _, f := range dnsFields {
			if f.set {
				e.errf(f.name, "only valid for a STRICT_DNS or LOGICAL_DNS cluster")
			}
		}
		return
	}
	d := &dnsSettings{refresh: durationOr(c.GetDnsRefreshRate(), 5*time.Second), respectTTL: c.GetRespectDnsTtl()}
	if d.refresh < time.Millisecond {
		e.errf("dns_refresh_rate", "must be at least 1ms")
	}
	d.failureBase, d.failureMax = d.refresh, d.refresh
	if f := c.GetDnsFailureRefreshRate(); f != nil {
		e.only("dns_failure_refresh_rate", f, "base_interval", "max_interval")
		d.failureBase = durationOr(f.GetBaseInterval(), d.refresh)
		d.failureMax = durationOr(f.GetMaxInterval(), 10*d.failureBase)
		if d.failureMax < d.failureBase {
			e.errf("dns_failure_refresh_rate.max_interval", "must not be below base_interval")
		}
	}
	d.jitter = durationOr(c.GetDnsJitter(), 0)
	switch c.GetDnsLookupFamily() {
	case clusterv3.Cluster_AUTO:
		d.family = dns.Auto
	case clusterv3.Cluster_V4_ONLY:
		d.family = dns.V4Only
	case clusterv3.Cluster_V6_ONLY:
		d.family = dns.V6Only
	case clusterv3.Cluster_V4_PREFERRED:
		d.family = dns.V4Preferred
	case clusterv3.Cluster_ALL:
		d.family = dns.All
	}
	var rc *dns.Config
	addServers := func(path string, addrs []*corev3.Address) {
		for i, a := range addrs {
			p := idx(path, "", i)
			if path != "" {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			sa := a.GetSocketAddress()
			if sa == nil {
				e.errf(p, "must be a socket_address")
				continue
			}
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				e.errf(at(p, "socket_address.address"), "malformed IP address %q", sa.GetAddress())
				continue
			}
			port := sa.GetPortValue()
			if port == 0 {
				port = 53
			}
			if rc == nil {
				rc = &dns.Config{}
			}
			rc.Servers = append(rc.Servers, netip.AddrPortFrom(ip, uint16(port)).String())
		}
	}
	options := func(path string, o *corev3.DnsResolverOptions) {
		if o == nil {
			return
		}
		if rc == nil {
			rc = &dns.Config{}
		}
		rc.TCP = rc.TCP || o.GetUseTcpForDnsLookups()
		rc.NoSearch = o.GetNoDefaultSearchDomain()
	}
	addServers("dns_resolvers", c.GetDnsResolvers())
	if c.GetUseTcpForDnsLookups() {
		if rc == nil {
			rc = &dns.Config{}
		}
		rc.TCP = true
	}
	if r := c.GetDnsResolutionConfig(); r != nil {
		e.only("dns_resolution_config", r, "resolvers", "dns_resolver_options")
		addServers("dns_resolution_config.resolvers", r.GetResolvers())
		options("dns_resolution_config.dns_resolver_options", r.GetDnsResolverOptions())
	}
	if t := c.GetTypedDnsResolverConfig(); t != nil {
		p := "typed_dns_resolver_config"
		switch t.GetTypedConfig().GetTypeUrl() {
		case "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig":
			ca := &caresv3.CaresDnsResolverConfig{}
			if err := t.GetTypedConfig().UnmarshalTo(ca); err != nil {
				e.errf(at(p, "typed_config"), "%v", err)
				break
			}
			pp := at(p, "typed_config")
			e.only(pp, ca, "resolvers", "use_resolvers_as_fallback", "dns_resolver_options", "query_timeout_seconds", "query_tries", "rotate_nameservers", "filter_unroutable_families", "udp_max_queries", "edns0_max_payload_size")
			addServers(at(pp, "resolvers"), ca.GetResolvers())
			options(at(pp, "dns_resolver_options"), ca.GetDnsResolverOptions())
			if rc == nil {
				rc = &dns.Config{}
			}
			rc.ServersAsFallback = ca.GetUseResolversAsFallback()
			if v := ca.GetQueryTimeoutSeconds(); v != nil {
				rc.Timeout = time.Duration(v.GetValue()) * time.Second
			}
			if v := ca.GetQueryTries(); v != nil {
				rc.Tries = int(v.GetValue())
			}
		case "type.googleapis.com/envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig":
			g := &getaddrinfov3.GetAddrInfoDnsResolverConfig{}
			if err := t.GetTypedConfig().UnmarshalTo(g); err != nil {
				e.errf(at(p, "typed_config"), "%v", err)
				break
			}
			e.only(at(p, "typed_config"), g, "num_retries", "num_resolver_threads")
			// The system resolver: resolv.conf and the hosts file, which is
			// what the default resolver reads.
		default:
			e.errf(at(p, "typed_config"), "resolver type %q is %v by wasmesh", t.GetTypedConfig().GetTypeUrl(), ErrUnsupported)
		}
	}
	d.resolver = rc
	cfg.dns = d
}

// compileAssignment turns a ClusterLoadAssignment into host specs. It
// compiles without building the field paths of every locality and endpoint
// first (they are garbage unless there is a problem, and an xDS push
// compiles tens of thousands of endpoints), and again with them when there
// is a problem, so that errors name the field.
func compileAssignment(e *errs, path string, cla *endpointv3.ClusterLoadAssignment, kind discovery) *assignment {
	quick := &errs{resource: e.resource, kind: e.kind, name: e.name}
	if a := compileAssignmentPaths(quick, path, cla, kind, false); quick.ok() {
		return a
	}
	return compileAssignmentPaths(e, path, cla, kind, true)
}

// compileAssignmentPaths is compileAssignment; without paths, problems
// are reported with the field names only.
func compileAssignmentPaths(e *errs, path string, cla *endpointv3.ClusterLoadAssignment, kind discovery, paths bool) *assignment {
	if !paths {
		path = "" // at("", field) is field: no string is built
	}
	e.onlyFields(path, cla, claRefused)
	a := &assignment{overprovisioning: lb.DefaultOverprovisioningFactor}
	if p := cla.GetPolicy(); p != nil {
		e.only(at(path, "policy"), p, "overprovisioning_factor", "weighted_priority_health", "endpoint_stale_after")
		if v := p.GetOverprovisioningFactor(); v != nil {
			a.overprovisioning = v.GetValue()
		}
		a.weightedHealth = p.GetWeightedPriorityHealth()
	}
	n := 0
	for _, loc := range cla.GetEndpoints() {
		n += len(loc.GetLbEndpoints())
	}
	a.hosts = make([]hostSpec, 0, n)
	var seen map[string]bool // with many hosts; a.hosts is searched otherwise
	if n > hostMapMin {
		seen = make(map[string]bool, n)
	}
	for i, loc := range cla.GetEndpoints() {
		lp := ""
		if paths {
			lp = idx(path, "endpoints", i)
		}
		e.onlyFields(lp, loc, localityRefused)
		for j, le := range loc.GetLbEndpoints() {
			ep := ""
			if paths {
				ep = idx(lp, "lb_endpoints", j)
			}
			e.onlyFields(ep, le, lbEndpointRefused)
			end := le.GetEndpoint()
			if end == nil {
				e.errf(ep, "endpoint is required")
				continue
			}
			e.onlyFields(at(ep, "endpoint"), end, endpointRefused)
			s := hostSpec{
				weight:   u32Or(le.GetLoadBalancingWeight(), 1),
				priority: loc.GetPriority(),
				locality: loc.GetLocality(),
				metadata: le.GetMetadata(),
				health:   le.GetHealthStatus(),
				hostname: end.GetHostname(),
			}
			if s.weight == 0 {
				e.errf(at(ep, "load_balancing_weight"), "must be at least 1")
			}
			addrPath := at(ep, "endpoint.address")
			compileAddress(e, addrPath, end.GetAddress(), kind, &s)
			if hc := end.GetHealthCheckConfig(); hc != nil {
				hp := at(ep, "endpoint.health_check_config")
				e.only(hp, hc, "port_value", "hostname", "disable_active_health_check")
				s.hcPort, s.hcHost, s.hcOff = hc.GetPortValue(), hc.GetHostname(), hc.GetDisableActiveHealthCheck()
			}
			s.hashKey = metadataHashKey(s.metadata)
			if kind == discStatic || kind == discEDS {
				// Like Envoy, one address is one host; the first entry wins.
				if seen != nil {
					k := s.key()
					if seen[k] {
						continue
					}
					seen[k] = true
				} else if slices.ContainsFunc(a.hosts, func(h hostSpec) bool { return h.network == s.network && h.address == s.address }) {
					continue
				}
			}
			a.hosts = append(a.hosts, s)
		}
	}
	return a
}

func compileAddress(e *errs, path string, addr *corev3.Address, kind discovery, s *hostSpec) {
	if addr == nil {
		e.errf(path, "address is required")
		return
	}
	switch {
	case addr.GetPipe() != nil:
		if kind != discStatic && kind != discEDS {
			e.errf(at(path, "pipe"), "a pipe is only valid in a STATIC or EDS cluster")
			return
		}
		e.only(at(path, "pipe"), addr.GetPipe(), "path", "mode")
		s.network, s.address = "unix", addr.GetPipe().GetPath()
	case addr.GetSocketAddress() != nil:
		sa := addr.GetSocketAddress()
		sp := at(path, "socket_address")
		e.onlyFields(sp, sa, socketAddrRefused)
		if sa.GetProtocol() != corev3.SocketAddress_TCP {
			e.unsupportedValue(at(sp, "protocol"), sa.GetProtocol())
		}
		if _, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue); !ok {
			e.errf(at(sp, "port_value"), "port_value is required")
		}
		port := sa.GetPortValue()
		s.network, s.port = "tcp", port
		switch kind {
		case discStrictDNS, discLogicalDNS:
			if sa.GetAddress() == "" {
				e.errf(at(sp, "address"), "host name is required")
			}
			s.dnsName = sa.GetAddress()
			s.address = net.JoinHostPort(sa.GetAddress(), itoa(int(port)))
			if s.hostname == "" {
				s.hostname = sa.GetAddress()
			}
		default:
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				e.errf(at(sp, "address"), "malformed IP address %q", sa.GetAddress())
				return
			}
			s.address = netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
		}
	default:
		e.errf(path, "a socket_address or pipe is required")
	}
}

// metadataHashKey reads filter_metadata["envoy.lb"]["hash_key"].
func metadataHashKey(m *corev3.Metadata) string {
	st := m.GetFilterMetadata()["envoy.lb"]
	if st == nil {
		return ""
	}
	v, ok := st.GetFields()["hash_key"]
	if !ok {
		return ""
	}
	if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
		return s.StringValue
	}
	return ""
}

// compileEndpoints checks a ClusterLoadAssignment from EDS.
func compileEndpoints(name string, cla *endpointv3.ClusterLoadAssignment, kind discovery) (*assignment, error) {
	e := &errs{kind: "cluster_load_assignment", name: name}
	if err := cla.ValidateAll(); err != nil {
		e.addValidation("", err)
		return nil, e.err()
	}
	a := compileAssignment(e, "", cla, kind)
	if !e.ok() {
		return nil, e.err()
	}
	return a, nil
}
