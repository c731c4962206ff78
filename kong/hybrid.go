package kong

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	deltav3 "github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wasmesh/wasmesh/server"
	xkong "github.com/wasmesh/wasmesh/xds/kong"
)

// Kong's roles (kong.conf role).
const (
	RoleTraditional  = "traditional"
	RoleControlPlane = "control_plane"
	RoleDataPlane    = "data_plane"
)

// SnapshotNode is the key of the control plane's one snapshot: every data
// plane, whatever its node id, gets the same resources, as every Kong data
// plane gets the same configuration.
const SnapshotNode = "kong"

// ProxyListenMetadata is the node metadata key in which a data plane with
// its own proxy_listen sends it to the control plane.
const ProxyListenMetadata = "kong_proxy_listen"

// ControlPlaneCluster names the data plane's static cluster reaching the
// control plane.
const ControlPlaneCluster = "kong_control_plane"

// ClusterServerName is the server name a data plane asks for and the
// common name of the shared certificate, as in Kong's cluster_mtls =
// shared.
const ClusterServerName = "kong_clustering"

// loadHybrid reads role and the cluster_* settings. isSet tells whether a
// key was set (kong.conf or environment) rather than defaulted.
func (s *Settings) loadHybrid(get, name func(string) string, isSet func(string) bool) []error {
	var errs []error
	s.Role = get("role")
	switch s.Role {
	case RoleTraditional, RoleControlPlane, RoleDataPlane:
	default:
		errs = append(errs, fmt.Errorf("%s: %q is not a role (traditional, control_plane, data_plane)", name("role"), s.Role))
	}
	addr := func(key string) string {
		v := strings.TrimSpace(get(key))
		f := strings.Fields(v)
		if len(f) != 1 {
			errs = append(errs, fmt.Errorf("%s: %q: expected one host:port without flags", name(key), v))
			return ""
		}
		host, port, err := net.SplitHostPort(f[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", name(key), v, err))
			return ""
		}
		if pn, err := strconv.Atoi(port); err != nil || pn < 0 || pn > 65535 {
			errs = append(errs, fmt.Errorf("%s: %q: invalid port", name(key), v))
			return ""
		}
		if host == "" || host == "*" {
			host = "0.0.0.0"
		}
		return net.JoinHostPort(host, port)
	}
	s.ClusterListen = addr("cluster_listen")
	s.ClusterControlPlane = addr("cluster_control_plane")
	if m := get("cluster_mtls"); m != "shared" {
		errs = append(errs, fmt.Errorf("%s: %q is not supported by wasmesh (only \"shared\")", name("cluster_mtls"), m))
	}
	s.ClusterCert, s.ClusterCertKey = get("cluster_cert"), get("cluster_cert_key")
	if (s.ClusterCert == "") != (s.ClusterCertKey == "") {
		errs = append(errs, fmt.Errorf("%s: cluster_cert and cluster_cert_key must be set together", name("cluster_cert")))
	}
	if s.Role == RoleDataPlane {
		// A data plane takes its whole configuration from the control
		// plane: settings that would configure it locally are errors.
		s.proxyListenSet = isSet("proxy_listen")
		for _, k := range []string{"declarative_config", "declarative_config_string", "admin_listen"} {
			if isSet(k) && !(k == "admin_listen" && get(k) == "off") {
				errs = append(errs, fmt.Errorf("%s: not read when role = data_plane (%s)", name(k), dataPlaneWhy(k)))
			}
		}
	}
	return errs
}

func dataPlaneWhy(k string) string {
	switch k {
	case "admin_listen":
		return "a data plane serves no Admin API; set it to off"
	}
	return "the configuration comes from the control plane"
}

// controlPlane serves the translated resources over ADS (SotW and delta)
// with go-control-plane's server and snapshot cache.
type controlPlane struct {
	cache cachev3.SnapshotCache
	grpc  *grpc.Server
	ln    net.Listener
	done  chan struct{} // closed when the gRPC server stopped serving
	log   *zap.Logger

	// render translates a configuration for a data plane's own
	// proxy_listen.
	render func(raw []byte, proxyListen []Listen) (*xkong.Resources, error)

	mu      sync.Mutex
	version string              // of the default snapshot
	raw     []byte              // the published configuration
	nodes   map[string][]Listen // snapshot key → proxy_listen, data planes with their own
	// streams are the open streams of data planes with their own
	// proxy_listen (SotW and delta number their streams apart): a key
	// without streams is dropped.
	streams map[streamID]string
}

type streamID struct {
	delta bool
	id    int64
}

// adsServer is the aggregated discovery service over go-control-plane's
// SotW and delta servers.
type adsServer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	sotw  sotwv3.Server
	delta deltav3.Server
}

func (a adsServer) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.sotw.StreamHandler(s, resource.AnyType)
}

func (a adsServer) DeltaAggregatedResources(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return a.delta.DeltaStreamHandler(s, resource.AnyType)
}

// callbacks (SotW and delta) log the configurations data planes reject
// and make the snapshot of a data plane with its own proxy_listen.
type callbacks struct{ cp *controlPlane }

func (c callbacks) request(id streamID, node *corev3.Node, typeURL string, d interface{ GetMessage() string }) error {
	if d != nil {
		c.cp.log.Warn("data plane rejected a configuration", zap.String("node", node.GetId()),
			zap.String("type", typeURL), zap.String("error", d.GetMessage()))
	}
	return c.cp.ensure(context.Background(), id, node)
}

func (callbacks) OnStreamOpen(context.Context, int64, string) error { return nil }
func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node)         { c.cp.closed(streamID{id: id}) }
func (c callbacks) OnStreamRequest(id int64, r *discoveryv3.DiscoveryRequest) error {
	if r.GetErrorDetail() == nil {
		return c.request(streamID{id: id}, r.GetNode(), r.GetTypeUrl(), nil)
	}
	return c.request(streamID{id: id}, r.GetNode(), r.GetTypeUrl(), r.GetErrorDetail())
}
func (callbacks) OnStreamResponse(context.Context, int64, *discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {
}
func (callbacks) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }
func (c callbacks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	c.cp.closed(streamID{delta: true, id: id})
}
func (c callbacks) OnStreamDeltaRequest(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
	if r.GetErrorDetail() == nil {
		return c.request(streamID{delta: true, id: id}, r.GetNode(), r.GetTypeUrl(), nil)
	}
	return c.request(streamID{delta: true, id: id}, r.GetNode(), r.GetTypeUrl(), r.GetErrorDetail())
}
func (callbacks) OnStreamDeltaResponse(int64, *discoveryv3.DeltaDiscoveryRequest, *discoveryv3.DeltaDiscoveryResponse) {
}

// nodeKey maps every data plane onto the one snapshot, except a data
// plane with its own proxy_listen: its snapshot is keyed by that
// proxy_listen (data planes with the same one share it).
type nodeKey struct{}

func (nodeKey) ID(n *corev3.Node) string {
	if pl := nodeProxyListen(n); pl != "" {
		return SnapshotNode + " proxy_listen=" + pl
	}
	return SnapshotNode
}

func nodeProxyListen(n *corev3.Node) string {
	return n.GetMetadata().GetFields()[ProxyListenMetadata].GetStringValue()
}

// startControlPlane opens cluster_listen.
func startControlPlane(s *Settings, log *zap.Logger, render func([]byte, []Listen) (*xkong.Resources, error)) (*controlPlane, error) {
	var opts []grpc.ServerOption
	if s.ClusterCert != "" {
		tc, err := sharedServerTLS(s.ClusterCert, s.ClusterCertKey)
		if err != nil {
			return nil, fmt.Errorf("kong: cluster_cert: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	ln, err := net.Listen("tcp", s.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("kong: cluster_listen %s: %w", s.ClusterListen, err)
	}
	cp := &controlPlane{
		cache:   cachev3.NewSnapshotCache(true, nodeKey{}, nil),
		grpc:    grpc.NewServer(opts...),
		ln:      ln,
		done:    make(chan struct{}),
		log:     log,
		render:  render,
		nodes:   map[string][]Listen{},
		streams: map[streamID]string{},
	}
	// The SotW and delta servers behind the one ADS service: the
	// umbrella serverv3 package would also link every per-type discovery
	// service into the proxy binary.
	cb := callbacks{cp}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.grpc, adsServer{
		sotw:  sotwv3.NewServer(context.Background(), cp.cache, cb),
		delta: deltav3.NewServer(context.Background(), cp.cache, cb),
	})
	go func() {
		defer close(cp.done)
		if err := cp.grpc.Serve(ln); err != nil {
			log.Error("cluster_listen stopped", zap.Error(err))
		}
	}()
	log.Info("control plane listening", zap.Stringer("address", ln.Addr()), zap.Bool("mtls", s.ClusterCert != ""))
	return cp, nil
}

// publish makes the resources the snapshot every data plane gets, and
// translates raw again for each proxy_listen of data planes with their
// own (one failing keeps its previous snapshot, logged). Versions are a
// hash of the resources, so the same configuration keeps its version
// across POST /config and control plane restarts.
func (cp *controlPlane) publish(ctx context.Context, raw []byte, res *xkong.Resources) (string, error) {
	snap, err := newSnapshot(res)
	if err != nil {
		return "", err
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if err := cp.cache.SetSnapshot(ctx, SnapshotNode, snap); err != nil {
		return "", err
	}
	cp.version, cp.raw = snap.GetVersion(resource.ListenerType), raw
	cp.log.Info("configuration published", zap.String("version", cp.version),
		zap.Int("clusters", len(res.Clusters)), zap.Int("listeners", len(res.Listeners)))
	for key, ls := range cp.nodes {
		if err := cp.setLocked(ctx, key, ls); err != nil {
			cp.log.Warn("data planes with their own proxy_listen keep their previous configuration",
				zap.String("proxy_listen", listensString(ls)), zap.Error(err))
		}
	}
	return cp.version, nil
}

// ensure makes the snapshot of a data plane with its own proxy_listen the
// first time one asks. An error ends the stream and names the reason; the
// data plane retries.
func (cp *controlPlane) ensure(ctx context.Context, id streamID, node *corev3.Node) error {
	pl := nodeProxyListen(node)
	if pl == "" {
		return nil
	}
	key := nodeKey{}.ID(node)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if _, ok := cp.nodes[key]; ok {
		cp.streams[id] = key
		return nil
	}
	ls, err := parseListens(pl)
	if err == nil && len(ls) == 0 {
		err = errors.New("no listener")
	}
	if err == nil && cp.raw != nil {
		err = cp.setLocked(ctx, key, ls)
	}
	if err != nil {
		cp.log.Warn("data plane's proxy_listen cannot be served", zap.String("node", node.GetId()),
			zap.String("proxy_listen", pl), zap.Error(err))
		return fmt.Errorf("kong control plane: node %q metadata %s %q: %w", node.GetId(), ProxyListenMetadata, pl, err)
	}
	cp.nodes[key] = ls
	cp.streams[id] = key
	return nil
}

// closed forgets a stream; the snapshot of a proxy_listen no data plane
// uses any more is dropped.
func (cp *controlPlane) closed(id streamID) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	key, ok := cp.streams[id]
	if !ok {
		return
	}
	delete(cp.streams, id)
	for _, k := range cp.streams {
		if k == key {
			return
		}
	}
	delete(cp.nodes, key)
	cp.cache.ClearSnapshot(key)
}

// proxyListens are the proxy_listen values of connected data planes with
// their own (tests).
func (cp *controlPlane) proxyListens() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out []string
	for _, ls := range cp.nodes {
		out = append(out, listensString(ls))
	}
	return out
}

func (cp *controlPlane) setLocked(ctx context.Context, key string, ls []Listen) error {
	res, err := cp.render(cp.raw, ls)
	if err != nil {
		return err
	}
	snap, err := newSnapshot(res)
	if err != nil {
		return err
	}
	return cp.cache.SetSnapshot(ctx, key, snap)
}

func listensString(ls []Listen) string { return strings.Join(listenJSON(ls), ", ") }

// newSnapshot is the snapshot of the resources (certificates inlined),
// versioned by their hash.
func newSnapshot(res *xkong.Resources) (*cachev3.Snapshot, error) {
	listeners, clusters, err := inlineSecrets(res)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	m := proto.MarshalOptions{Deterministic: true}
	rs := map[resource.Type][]types.Resource{resource.ClusterType: {}, resource.ListenerType: {}}
	for _, c := range clusters {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
		}
		rs[resource.ClusterType] = append(rs[resource.ClusterType], c)
		b, _ := m.Marshal(c)
		h.Write(b)
	}
	for _, l := range listeners {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
		}
		rs[resource.ListenerType] = append(rs[resource.ListenerType], l)
		b, _ := m.Marshal(l)
		h.Write(b)
	}
	snap, err := cachev3.NewSnapshot(hex.EncodeToString(h.Sum(nil))[:16], rs)
	if err != nil {
		return nil, err
	}
	if err := snap.Consistent(); err != nil {
		return nil, err
	}
	return snap, nil
}

// Version is the version of the published snapshot.
func (cp *controlPlane) Version() string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.version
}

// close stops serving: streams end at once (data planes keep their last
// configuration).
func (cp *controlPlane) close() {
	cp.grpc.Stop()
	<-cp.done
}

// inlineSecrets returns copies of the listeners and clusters whose TLS
// contexts carry the certificates themselves instead of naming Secrets:
// a secret named without sds_config is a static secret of the bootstrap,
// which a data plane does not have. Certificate files named by ssl_cert
// are read here, on the control plane, as Kong's control plane ships
// certificates to its data planes.
func inlineSecrets(res *xkong.Resources) ([]*listenerv3.Listener, []*clusterv3.Cluster, error) {
	secrets := map[string]*tlsv3.Secret{}
	for _, s := range res.Secrets {
		secrets[s.GetName()] = s
	}
	listeners := make([]*listenerv3.Listener, 0, len(res.Listeners))
	for _, l := range res.Listeners {
		changed := false
		var out *listenerv3.Listener
		for i, fc := range l.GetFilterChains() {
			ts := fc.GetTransportSocket()
			if ts == nil {
				continue
			}
			dt := &tlsv3.DownstreamTlsContext{}
			if err := ts.GetTypedConfig().UnmarshalTo(dt); err != nil {
				return nil, nil, fmt.Errorf("listener %q filter_chains[%d].transport_socket: %w", l.GetName(), i, err)
			}
			if err := inlineCommon(dt.GetCommonTlsContext(), secrets); err != nil {
				return nil, nil, fmt.Errorf("listener %q filter_chains[%d].transport_socket: %w", l.GetName(), i, err)
			}
			if !changed {
				out = proto.Clone(l).(*listenerv3.Listener)
				changed = true
			}
			a, err := anypb.New(dt)
			if err != nil {
				return nil, nil, err
			}
			out.FilterChains[i].TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
		}
		if !changed {
			out = l
		}
		listeners = append(listeners, out)
	}
	clusters := make([]*clusterv3.Cluster, 0, len(res.Clusters))
	for _, c := range res.Clusters {
		ts := c.GetTransportSocket()
		if ts == nil {
			clusters = append(clusters, c)
			continue
		}
		ut := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(ut); err != nil {
			return nil, nil, fmt.Errorf("cluster %q transport_socket: %w", c.GetName(), err)
		}
		if err := inlineCommon(ut.GetCommonTlsContext(), secrets); err != nil {
			return nil, nil, fmt.Errorf("cluster %q transport_socket: %w", c.GetName(), err)
		}
		a, err := anypb.New(ut)
		if err != nil {
			return nil, nil, err
		}
		out := proto.Clone(c).(*clusterv3.Cluster)
		out.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
		clusters = append(clusters, out)
	}
	return listeners, clusters, nil
}

// inlineCommon replaces the SDS references of a TLS context with the named
// secrets' contents.
func inlineCommon(ctc *tlsv3.CommonTlsContext, secrets map[string]*tlsv3.Secret) error {
	if ctc == nil {
		return nil
	}
	for i, ref := range ctc.GetTlsCertificateSdsSecretConfigs() {
		s := secrets[ref.GetName()]
		if s.GetTlsCertificate() == nil || ref.GetSdsConfig() != nil {
			return fmt.Errorf("tls_certificate_sds_secret_configs[%d]: no certificate secret %q", i, ref.GetName())
		}
		tc, err := inlineFiles(s.GetTlsCertificate())
		if err != nil {
			return fmt.Errorf("tls_certificate_sds_secret_configs[%d] (secret %q): %w", i, ref.GetName(), err)
		}
		ctc.TlsCertificates = append(ctc.TlsCertificates, tc)
	}
	ctc.TlsCertificateSdsSecretConfigs = nil
	if ref := ctc.GetValidationContextSdsSecretConfig(); ref != nil {
		s := secrets[ref.GetName()]
		if s.GetValidationContext() == nil || ref.GetSdsConfig() != nil {
			return fmt.Errorf("validation_context_sds_secret_config: no validation context secret %q", ref.GetName())
		}
		ctc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: s.GetValidationContext()}
	}
	if cv := ctc.GetCombinedValidationContext(); cv != nil && cv.GetValidationContextSdsSecretConfig() != nil {
		ref := cv.GetValidationContextSdsSecretConfig()
		s := secrets[ref.GetName()]
		if s.GetValidationContext() == nil || ref.GetSdsConfig() != nil {
			return fmt.Errorf("combined_validation_context: no validation context secret %q", ref.GetName())
		}
		merged := proto.Clone(s.GetValidationContext()).(*tlsv3.CertificateValidationContext)
		proto.Merge(merged, cv.GetDefaultValidationContext())
		ctc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: merged}
	}
	return nil
}

// inlineFiles reads a certificate's files into inline bytes.
func inlineFiles(tc *tlsv3.TlsCertificate) (*tlsv3.TlsCertificate, error) {
	out := proto.Clone(tc).(*tlsv3.TlsCertificate)
	for _, f := range []struct {
		field string
		ds    *corev3.DataSource
	}{{"certificate_chain", out.GetCertificateChain()}, {"private_key", out.GetPrivateKey()}} {
		if fn := f.ds.GetFilename(); fn != "" {
			b, err := os.ReadFile(fn)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.field, err)
			}
			f.ds.Specifier = &corev3.DataSource_InlineBytes{InlineBytes: b}
		}
	}
	return out, nil
}

// sharedServerTLS is the control plane's side of cluster_mtls = shared:
// it presents cluster_cert and accepts a data plane only if it presents
// the very same certificate.
func sharedServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	want := cert.Certificate[0]
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], want) {
				return errors.New("kong: cluster_mtls shared: the data plane's certificate is not cluster_cert")
			}
			return nil
		},
	}, nil
}

// DataPlaneBootstrap is the data plane's bootstrap: ADS (SotW) over a
// static cluster reaching cluster_control_plane, CDS and LDS from ADS; with
// cluster_cert, the cluster speaks TLS with the shared certificate as
// client certificate and as the only trusted CA, asking for server name
// kong_clustering.
func DataPlaneBootstrap(s *Settings, node *corev3.Node) (*bootstrapv3.Bootstrap, error) {
	host, port, err := net.SplitHostPort(s.ClusterControlPlane)
	if err != nil {
		return nil, fmt.Errorf("cluster_control_plane: %w", err)
	}
	pn, _ := strconv.Atoi(port)
	typ := clusterv3.Cluster_STRICT_DNS
	if net.ParseIP(host) != nil {
		typ = clusterv3.Cluster_STATIC
	}
	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		return nil, err
	}
	c := &clusterv3.Cluster{
		Name:                 ControlPlaneCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(5e9),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2,
		},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: ControlPlaneCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pn)},
					}}},
				}},
			}}}},
		},
	}
	if s.ClusterCert != "" {
		if err := checkPEMFile(s.ClusterCert); err != nil {
			return nil, fmt.Errorf("cluster_cert: %w", err)
		}
		file := func(f string) *corev3.DataSource {
			return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: f}}
		}
		ut, err := anypb.New(&tlsv3.UpstreamTlsContext{
			Sni: ClusterServerName,
			CommonTlsContext: &tlsv3.CommonTlsContext{
				AlpnProtocols:   []string{"h2"},
				TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(s.ClusterCert), PrivateKey: file(s.ClusterCertKey)}},
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: file(s.ClusterCert),
				}},
			},
		})
		if err != nil {
			return nil, err
		}
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ut}}
	}
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}
	if s.proxyListenSet {
		// The control plane translates for this proxy_listen.
		node = proto.Clone(node).(*corev3.Node)
		if node == nil {
			node = &corev3.Node{}
		}
		md, err := structpb.NewStruct(map[string]any{ProxyListenMetadata: listensString(s.ProxyListen)})
		if err != nil {
			return nil, err
		}
		if node.GetMetadata() != nil {
			proto.Merge(md, node.GetMetadata())
		}
		node.Metadata = md
	}
	b := &bootstrapv3.Bootstrap{
		Node: node,
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ControlPlaneCluster},
				}}},
			},
			CdsConfig: ads,
			LdsConfig: proto.Clone(ads).(*corev3.ConfigSource),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{c}},
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("kong: data plane bootstrap: %w", err)
	}
	return b, nil
}

// checkPEMFile reports a certificate file that cannot be read or holds no
// PEM certificate, before the data plane starts.
func checkPEMFile(f string) error {
	b, err := os.ReadFile(f)
	if err != nil {
		return err
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM certificate", f)
	}
	return nil
}

// startControlPlane publishes the first configuration, then opens
// cluster_listen and the Admin API. The control plane proxies nothing.
func (g *Gateway) startControlPlane(ctx context.Context, cfg *xkong.Config, res *xkong.Resources, raw []byte, warn func(string)) error {
	render := func(raw []byte, pl []Listen) (*xkong.Resources, error) {
		s := *g.settings
		s.ProxyListen = pl
		_, res, err := Prepare(&s, raw, func(msg string) { g.log.Warn(msg) })
		return res, err
	}
	cp, err := startControlPlane(g.settings, g.logging.Logger("xds"), render)
	if err != nil {
		return err
	}
	g.cp = cp
	g.quit = make(chan struct{})
	go func() {
		<-cp.done
		close(g.quit)
	}()
	if err := g.apply(ctx, cfg, res, raw); err != nil {
		return err
	}
	return g.startAdmin(warn)
}

// publish is apply on a control plane: the translated resources become the
// snapshot every data plane gets. Errors are *Error.
func (g *Gateway) publish(ctx context.Context, cfg *xkong.Config, res *xkong.Resources, raw []byte) error {
	if _, err := g.cp.publish(ctx, raw, res); err != nil {
		return kongError(err)
	}
	names := make([]string, 0, len(res.Clusters))
	for _, c := range res.Clusters {
		names = append(names, c.GetName())
	}
	g.state.Store(&snapshot{cfg: cfg, raw: raw, hash: md5hex(raw), res: res, clusters: names, at: time.Now().Unix()})
	return nil
}

// ClusterAddr is the bound address of cluster_listen on a control plane,
// or nil.
func (g *Gateway) ClusterAddr() net.Addr {
	if g.cp == nil {
		return nil
	}
	return g.cp.ln.Addr()
}

// SnapshotVersion is the version of the configuration a control plane
// serves ("" elsewhere).
func (g *Gateway) SnapshotVersion() string {
	if g.cp == nil {
		return ""
	}
	return g.cp.Version()
}

// startDataPlane runs the proxy with a bootstrap whose ADS reaches
// cluster_control_plane; it returns once the first configuration arrived
// (or the initial fetch timed out: the data plane then serves nothing
// until the control plane answers, and keeps trying).
func (g *Gateway) startDataPlane(ctx context.Context, so *server.Options) error {
	b, err := DataPlaneBootstrap(g.settings, &corev3.Node{Id: g.nodeID, Cluster: "kong"})
	if err != nil {
		return fmt.Errorf("kong: %w", err)
	}
	if g.opts.deltaXDS {
		b.DynamicResources.AdsConfig.ApiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	srv, err := server.New(ctx, so, b, g.logging)
	if err != nil {
		return fmt.Errorf("kong: %w", err)
	}
	g.srv = srv
	if err := srv.Start(g.ctx); err != nil {
		return fmt.Errorf("kong: %w", err)
	}
	g.log.Info("data plane started", zap.String("control_plane", g.settings.ClusterControlPlane),
		zap.Bool("mtls", g.settings.ClusterCert != ""), zap.String("node_id", g.nodeID))
	return nil
}
