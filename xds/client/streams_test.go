package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	runtimeservice "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/client"
)

// fullPlane is go-control-plane's server with every discovery service
// (ADS and the per-type ones, SotW and delta) on gRPC and its REST
// gateway on HTTP, both on 127.0.0.1, over a non-ADS snapshot cache. It
// records each request with the stream ("" for ADS, else the type URL of
// the per-type service; "rest" for REST) it came on.
type fullPlane struct {
	t              testing.TB
	cache          cachev3.SnapshotCache
	addr, httpAddr string

	mu      sync.Mutex
	streams map[int64]string
	reqs    []streamReq
	grpc    *grpc.Server
	done    chan struct{}
	httpSrv *http.Server
}

const restID = int64(-1 << 62)

type streamReq struct {
	stream string
	request
}

func startFullPlane(t testing.TB, addr string) *fullPlane {
	t.Helper()
	cp := &fullPlane{t: t, cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), streams: map[int64]string{}}
	cp.serve(addr)
	t.Cleanup(cp.stop)
	return cp
}

func (cp *fullPlane) serve(addr string) {
	cp.t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.addr = ln.Addr().String()
	// SotW and delta streams are numbered apart: delta ids are negated.
	open := func(_ context.Context, id int64, typ string) error {
		cp.mu.Lock()
		cp.streams[id] = typ
		cp.mu.Unlock()
		return nil
	}
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: open,
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, typ string) error {
			return open(ctx, -id-1, typ)
		},
		StreamRequestFunc: func(id int64, r *discoveryv3.DiscoveryRequest) error {
			cp.record(id, request{typeURL: r.GetTypeUrl(), version: r.GetVersionInfo(), nonce: r.GetResponseNonce(),
				errDetail: r.GetErrorDetail().GetMessage(), names: r.GetResourceNames(), hasNode: r.GetNode() != nil})
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			cp.record(-id-1, request{typeURL: r.GetTypeUrl(), nonce: r.GetResponseNonce(), errDetail: r.GetErrorDetail().GetMessage(),
				subscribe: r.GetResourceNamesSubscribe(), unsubscribe: r.GetResourceNamesUnsubscribe(),
				initial: r.GetInitialResourceVersions(), hasNode: r.GetNode() != nil})
			return nil
		},
		FetchRequestFunc: func(_ context.Context, r *discoveryv3.DiscoveryRequest) error {
			cp.record(restID, request{typeURL: r.GetTypeUrl(), version: r.GetVersionInfo(), errDetail: r.GetErrorDetail().GetMessage(),
				names: r.GetResourceNames(), hasNode: r.GetNode() != nil})
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, cp.cache, cb)
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(g, srv)
	secretservice.RegisterSecretDiscoveryServiceServer(g, srv)
	runtimeservice.RegisterRuntimeDiscoveryServiceServer(g, srv)
	extensionservice.RegisterExtensionConfigDiscoveryServiceServer(g, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		_ = g.Serve(ln)
	}()

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if cp.httpAddr != "" {
		for i := 0; i < 50; i++ {
			if hl, err = net.Listen("tcp", cp.httpAddr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.httpAddr = hl.Addr().String()
	gw := &serverv3.HTTPGateway{Server: srv}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, code, err := gw.ServeHTTP(r)
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(b)
	})}
	go hs.Serve(hl)

	cp.mu.Lock()
	cp.grpc, cp.done, cp.httpSrv = g, done, hs
	cp.mu.Unlock()
}

func (cp *fullPlane) stop() {
	cp.mu.Lock()
	g, done, hs := cp.grpc, cp.done, cp.httpSrv
	cp.grpc, cp.httpSrv = nil, nil
	cp.mu.Unlock()
	if g != nil {
		g.Stop()
		<-done
	}
	if hs != nil {
		hs.Close()
	}
}

func (cp *fullPlane) restart() {
	cp.cache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	cp.serve(cp.addr)
}

func (cp *fullPlane) record(id int64, r request) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	stream := "rest"
	if id != restID {
		stream = cp.streams[id]
	}
	cp.reqs = append(cp.reqs, streamReq{stream, r})
}

func (cp *fullPlane) requests() []streamReq {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]streamReq(nil), cp.reqs...)
}

func (cp *fullPlane) waitRequest(what string, f func(streamReq) bool) streamReq {
	cp.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range cp.requests() {
			if f(r) {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	cp.t.Fatalf("no %s; requests: %+v", what, cp.requests())
	return streamReq{}
}

func (cp *fullPlane) set(version string, clusters []*clusterv3.Cluster, clas []*endpointv3.ClusterLoadAssignment, ls []*listenerv3.Listener, secrets ...*tlsv3.Secret) {
	cp.t.Helper()
	publishSnapshot(cp.t, cp.cache, version, map[resource.Type][]types.Resource{resource.ClusterType: asResources(clusters),
		resource.EndpointType: asResources(clas), resource.ListenerType: asResources(ls), resource.SecretType: asResources(secrets)})
}

// sourceCluster is an EDS cluster whose eds_config is the given source.
func sourceCluster(t testing.TB, name, edsConfig string) *clusterv3.Cluster {
	return parse(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: %s
type: EDS
connect_timeout: 1s
eds_cluster_config: {eds_config: %s}
`, name, edsConfig))
}

// sourcedProxy starts a proxy whose xds cluster is the control plane's
// gRPC address and xds_rest its REST gateway; ads is the ads_config YAML
// (or ""), cds and lds the config sources.
func sourcedProxy(t testing.TB, cp *fullPlane, ads, cds, lds string) *server.Server {
	t.Helper()
	return sourcedProxyWith(t, cp, ads, cds, lds, "")
}

// sourcedProxyWith is sourcedProxy with extra top-level bootstrap YAML.
func sourcedProxyWith(t testing.TB, cp *fullPlane, ads, cds, lds, extra string) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(cp.addr)
	hhost, hport, _ := net.SplitHostPort(cp.httpAddr)
	if ads != "" {
		ads = "\n  ads_config: " + ads
	}
	return startProxy(t, fmt.Sprintf(`
node: {id: %s, cluster: test}
dynamic_resources:%s
  cds_config: %s
  lds_config: %s
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}]}]
  - name: xds_rest
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds_rest
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}]}]
%s`, nodeID, ads, cds, lds, host, port, hhost, hport, extra))
}

func grpcSource(apiType, service string) string {
	return fmt.Sprintf(`{api_config_source: {api_type: %s, transport_api_version: V3, set_node_on_first_message_only: true, grpc_services: [%s]}, resource_api_version: V3, initial_fetch_timeout: 10s}`, apiType, service)
}

const restSource = `{api_config_source: {api_type: REST, transport_api_version: V3, cluster_names: [xds_rest], refresh_delay: 0.05s, request_timeout: 2s}, resource_api_version: V3, initial_fetch_timeout: 10s}`

func ackOn(stream, typeURL, version string) func(streamReq) bool {
	return func(r streamReq) bool {
		return r.stream == stream && r.typeURL == typeURL && r.version == version && r.errDetail == "" && (r.nonce != "" || stream == "rest")
	}
}

func deltaAckOn(stream, typeURL string) func(streamReq) bool {
	return func(r streamReq) bool {
		return r.stream == stream && r.typeURL == typeURL && r.errDetail == "" && r.nonce != ""
	}
}

// TestSeparateStreams: no ADS; CDS, LDS and EDS each on their own stream
// of the per-type services (envoy_grpc through a static cluster for CDS
// and EDS, google_grpc for LDS), SotW and delta: traffic flows, every
// request comes on its type's stream, a bad cluster is NACKed on the CDS
// stream while the old version serves, the control plane killed and
// restarted with a new version is followed.
func TestSeparateStreams(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) {
			cp := startFullPlane(t, "")
			up1, up2 := upstream(t, "one"), upstream(t, "two")
			port := freePort(t)
			envoyGRPC := grpcSource(apiType, `{envoy_grpc: {cluster_name: xds}}`)
			googleGRPC := grpcSource(apiType, fmt.Sprintf(`{google_grpc: {target_uri: "%s", stat_prefix: lds}}`, cp.addr))
			clusters := []*clusterv3.Cluster{sourceCluster(t, "backend", envoyGRPC), sourceCluster(t, "backend2", envoyGRPC)}
			clas := []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1), assignment(t, "backend2", up2)}
			cp.set("v1", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v1"), "")})
			s := sourcedProxy(t, cp, "", envoyGRPC, googleGRPC)
			eventually(t, port, "/", "one", "hello v1")

			for _, r := range cp.requests() {
				if r.stream != r.typeURL {
					t.Errorf("request of %s on stream %q, want its own stream", r.typeURL, r.stream)
				}
			}
			ack := func(typeURL, version string) func(streamReq) bool {
				if apiType == "DELTA_GRPC" {
					return deltaAckOn(typeURL, typeURL)
				}
				return ackOn(typeURL, typeURL, version)
			}
			for _, typeURL := range []string{client.TypeCluster, client.TypeEndpoint, client.TypeListener} {
				cp.waitRequest(typeURL+" ACK", ack(typeURL, "v1"))
			}
			if got := s.Stats.Gauge("control_plane.connected_state", 1).Value(); got != 1 {
				t.Errorf("control_plane.connected_state = %d, want 1", got)
			}

			// A bad cluster is NACKed on the CDS stream; traffic goes on.
			weird := parse(t, &clusterv3.Cluster{}, `
name: weird
connect_timeout: 1s
cluster_type: {name: envoy.clusters.no_such_type}
`)
			cp.set("v2", append(append([]*clusterv3.Cluster(nil), clusters...), weird), clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v1"), "")})
			nack := cp.waitRequest("CDS NACK", func(r streamReq) bool {
				return r.stream == client.TypeCluster && r.typeURL == client.TypeCluster && strings.Contains(r.errDetail, `cluster "weird"`)
			})
			if apiType == "GRPC" && nack.version != "v1" {
				t.Errorf("NACK version_info %q, want v1", nack.version)
			}
			eventually(t, port, "/", "one", "hello v1")
			if got := s.Stats.Counter("cluster_manager.cds.update_rejected").Value(); got < 1 {
				t.Errorf("cluster_manager.cds.update_rejected = %d", got)
			}

			// Control plane gone: the last configuration serves.
			cp.stop()
			for i := 0; i < 20; i++ {
				if code, body, _, err := get(port, "/"); err != nil || code != 200 || body != "one" {
					t.Fatalf("with the control plane down: %d %q %v", code, body, err)
				}
			}
			// Back with a new version: the streams reconnect and converge.
			cp.restart()
			cp.set("v3", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend2", greeting("hello v3"), "")})
			eventually(t, port, "/", "two", "hello v3")
		})
	}
}

// TestMixedADSAndEDSStream: CDS and LDS over ADS, EDS on its own delta
// stream of the same server: endpoints arrive on EDS's stream, the
// others on ADS, and an endpoint change reaches traffic.
func TestMixedADSAndEDSStream(t *testing.T) {
	cp := startFullPlane(t, "")
	up1, up2 := upstream(t, "one"), upstream(t, "two")
	port := freePort(t)
	eds := grpcSource("DELTA_GRPC", `{envoy_grpc: {cluster_name: xds}}`)
	clusters := []*clusterv3.Cluster{sourceCluster(t, "backend", eds)}
	cp.set("v1", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1)}, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hi"), "")})
	sourcedProxy(t, cp, `{api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}`,
		`{ads: {}, resource_api_version: V3}`, `{ads: {}, resource_api_version: V3}`)
	eventually(t, port, "/", "one", "hi")
	cp.waitRequest("CDS ACK on ADS", ackOn("", client.TypeCluster, "v1"))
	cp.waitRequest("LDS ACK on ADS", ackOn("", client.TypeListener, "v1"))
	cp.waitRequest("EDS ACK on its stream", deltaAckOn(client.TypeEndpoint, client.TypeEndpoint))
	for _, r := range cp.requests() {
		if (r.typeURL == client.TypeEndpoint) != (r.stream == client.TypeEndpoint) {
			t.Errorf("request of %s on stream %q", r.typeURL, r.stream)
		}
	}
	cp.set("v2", clusters, []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up2)}, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hi"), "")})
	eventually(t, port, "/", "two", "hi")
}

// TestSecondEDSSourceRejected: a cluster naming an EDS config source
// other than the one the EDS clusters use is NACKed naming the field.
func TestSecondEDSSourceRejected(t *testing.T) {
	cp := startFullPlane(t, "")
	up1 := upstream(t, "one")
	port := freePort(t)
	eds := grpcSource("GRPC", `{envoy_grpc: {cluster_name: xds}}`)
	other := grpcSource("DELTA_GRPC", `{envoy_grpc: {cluster_name: xds}}`)
	clusters := []*clusterv3.Cluster{sourceCluster(t, "backend", eds)}
	clas := []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1)}
	ls := []*listenerv3.Listener{ingress(t, port, "backend", greeting("hi"), "")}
	cp.set("v1", clusters, clas, ls)
	ads := `{api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}`
	sourcedProxy(t, cp, ads, `{ads: {}}`, `{ads: {}}`)
	eventually(t, port, "/", "one", "hi")
	cp.set("v2", append(clusters, sourceCluster(t, "other", other)), clas, ls)
	nack := cp.waitRequest("CDS NACK", func(r streamReq) bool { return r.typeURL == client.TypeCluster && r.errDetail != "" })
	if !strings.Contains(nack.errDetail, `cluster "other": eds_cluster_config.eds_config: a second EDS config source`) {
		t.Errorf("NACK detail: %s", nack.errDetail)
	}
	eventually(t, port, "/", "one", "hi")
}

// TestRESTPolling: CDS, LDS and EDS polled over REST (go-control-plane's
// HTTP gateway, through the static cluster xds_rest): traffic flows; each
// poll carries the accepted version_info; a bad cluster is NACKed through
// error_detail on the next poll with the old version_info while traffic
// goes on; the next good version is accepted; with the gateway down the
// last configuration serves, and polling picks up after its restart.
func TestRESTPolling(t *testing.T) {
	cp := startFullPlane(t, "")
	up1, up2 := upstream(t, "one"), upstream(t, "two")
	port := freePort(t)
	clusters := []*clusterv3.Cluster{sourceCluster(t, "backend", restSource), sourceCluster(t, "backend2", restSource)}
	clas := []*endpointv3.ClusterLoadAssignment{assignment(t, "backend", up1), assignment(t, "backend2", up2)}
	cp.set("v1", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v1"), "")})
	s := sourcedProxy(t, cp, "", restSource, restSource)
	eventually(t, port, "/", "one", "hello v1")
	for _, typeURL := range []string{client.TypeCluster, client.TypeEndpoint, client.TypeListener} {
		cp.waitRequest(typeURL+" poll with v1", ackOn("rest", typeURL, "v1"))
	}
	for _, r := range cp.requests() {
		if r.stream != "rest" || !r.hasNode {
			t.Errorf("request %+v: want REST with the node", r)
		}
		if r.typeURL == client.TypeEndpoint && strings.Join(r.names, ",") != "backend,backend2" {
			t.Errorf("EDS poll names %v", r.names)
		}
	}

	weird := parse(t, &clusterv3.Cluster{}, `
name: weird
connect_timeout: 1s
cluster_type: {name: envoy.clusters.no_such_type}
`)
	cp.set("v2", append(append([]*clusterv3.Cluster(nil), clusters...), weird), clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v1"), "")})
	nack := cp.waitRequest("CDS NACK", func(r streamReq) bool {
		return r.typeURL == client.TypeCluster && strings.Contains(r.errDetail, `cluster "weird"`)
	})
	if nack.version != "v1" {
		t.Errorf("NACK version_info %q, want v1", nack.version)
	}
	eventually(t, port, "/", "one", "hello v1")
	if got := s.Stats.Counter("cluster_manager.cds.update_rejected").Value(); got < 1 {
		t.Errorf("cluster_manager.cds.update_rejected = %d", got)
	}

	cp.set("v3", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend2", greeting("hello v3"), "")})
	eventually(t, port, "/", "two", "hello v3")
	cp.waitRequest("CDS poll with v3", ackOn("rest", client.TypeCluster, "v3"))

	cp.stop()
	for i := 0; i < 20; i++ {
		if code, body, _, err := get(port, "/"); err != nil || code != 200 || body != "two" {
			t.Fatalf("with the control plane down: %d %q %v", code, body, err)
		}
	}
	cp.restart()
	cp.set("v4", clusters, clas, []*listenerv3.Listener{ingress(t, port, "backend", greeting("hello v4"), "")})
	eventually(t, port, "/", "one", "hello v4")
}

// TestSDSSeparateStream: CDS and LDS over ADS, the listener's certificate
// over SDS on its own stream (SotW and delta): the handshake works, the
// secret's requests arrive on the SecretDiscoveryService stream, a
// rotation reaches new handshakes.
func TestSDSSeparateStream(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) {
			ca := newSDSCA(t, "sds-ca")
			up := upstream(t, "backend")
			cp := startFullPlane(t, "")
			port := freePort(t)
			backend := staticCluster(t, "backend", up)
			l := tlsListener(t, "secure", port, "backend", "server-cert", "")
			src := grpcSource(apiType, `{envoy_grpc: {cluster_name: xds}}`)
			sds := parse(t, &corev3.TransportSocket{}, "typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig, sds_config: "+src+"}")
			secretConfig := &tlsv3.SdsSecretConfig{}
			if err := sds.GetTypedConfig().UnmarshalTo(secretConfig); err != nil {
				t.Fatal(err)
			}
			ts := l.GetFilterChains()[0].GetTransportSocket()
			dtc := &tlsv3.DownstreamTlsContext{}
			if err := ts.GetTypedConfig().UnmarshalTo(dtc); err != nil {
				t.Fatal(err)
			}
			dtc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].SdsConfig = secretConfig.GetSdsConfig()
			a, err := anypb.New(dtc)
			if err != nil {
				t.Fatal(err)
			}
			ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
			c1, k1, _ := ca.issue(t, "one")
			cp.set("1", []*clusterv3.Cluster{backend}, nil, []*listenerv3.Listener{l}, tlsSecret("server-cert", c1, k1))
			sourcedProxy(t, cp, `{api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}`,
				`{ads: {}, resource_api_version: V3}`, `{ads: {}, resource_api_version: V3}`)
			conn, err := dialHTTPS(t, port, ca.pool, nil)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if body, err := conn.get("/"); err != nil || body != "backend" {
				t.Fatalf("request: %q %v", body, err)
			}
			for _, r := range cp.requests() {
				if (r.typeURL == client.TypeSecret) != (r.stream == client.TypeSecret) {
					t.Errorf("request of %s on stream %q", r.typeURL, r.stream)
				}
			}
			c2, k2, pair2 := ca.issue(t, "two")
			cp.set("2", []*clusterv3.Cluster{backend}, nil, []*listenerv3.Listener{l}, tlsSecret("server-cert", c2, k2))
			waitUntil(t, "the rotated certificate on new handshakes", func() bool {
				s, err := serialOf(t, port, ca.pool)
				return err == nil && s.Cmp(pair2.Leaf.SerialNumber) == 0
			})
		})
	}
}

// setRuntime publishes a snapshot of Runtime layers only.
func (cp *fullPlane) setRuntime(version string, layers map[string]map[string]any) {
	cp.t.Helper()
	res := map[resource.Type][]types.Resource{resource.ClusterType: {}, resource.ListenerType: {}, resource.RuntimeType: {}}
	for name, vals := range layers {
		st, err := structpb.NewStruct(vals)
		if err != nil {
			cp.t.Fatal(err)
		}
		res[resource.RuntimeType] = append(res[resource.RuntimeType], &runtimeservice.Runtime{Name: name, Layer: st})
	}
	publishSnapshot(cp.t, cp.cache, version, res)
}

// runtimeJSON is the admin's /runtime answer without white space.
func runtimeJSON(t testing.TB, adminPort int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/runtime", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Join(strings.Fields(string(b)), "") // no layout
}

// TestRTDS: a layered_runtime rtds_layer over ADS (SotW) and over its own
// RuntimeDiscoveryService delta stream: start-up waits for the layer, its
// values (nested structs as dotted keys) show in /runtime as the layer; a
// layer with a list value is NACKed naming the key while the last one
// stays; the next good one is applied.
func TestRTDS(t *testing.T) {
	for _, tc := range []struct{ name, rtdsConfig, stream string }{
		{"ADS", `{ads: {}, resource_api_version: V3}`, ""},
		{"separate delta", grpcSource("DELTA_GRPC", `{envoy_grpc: {cluster_name: xds}}`), client.TypeRuntime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := startFullPlane(t, "")
			adminPort := freePort(t)
			cp.setRuntime("1", map[string]map[string]any{"rtds0": {"feature": map[string]any{"enabled": true}, "ratio": 0.5, "name": "one"}})
			sourcedProxyWith(t, cp, `{api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}`,
				`{ads: {}}`, `{ads: {}}`, fmt.Sprintf(`
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
layered_runtime:
  layers:
  - name: base
    static_layer: {name: base}
  - name: rtds
    rtds_layer: {name: rtds0, rtds_config: %s}
  - name: admin
    admin_layer: {}
`, adminPort, tc.rtdsConfig))
			// Start returned after the layer arrived.
			got := runtimeJSON(t, adminPort)
			for _, want := range []string{`"rtds"`, `"feature.enabled"`, `"final_value":"true"`, `"ratio"`, `"final_value":"0.5"`, `"final_value":"one"`} {
				if !strings.Contains(got, want) {
					t.Fatalf("/runtime lacks %s:\n%s", want, got)
				}
			}
			for _, r := range cp.requests() {
				if r.typeURL == client.TypeRuntime && r.stream != tc.stream {
					t.Errorf("RTDS request on stream %q, want %q", r.stream, tc.stream)
				}
			}

			cp.setRuntime("2", map[string]map[string]any{"rtds0": {"name": "two", "bad": []any{1, 2}}})
			nack := cp.waitRequest("RTDS NACK", func(r streamReq) bool { return r.typeURL == client.TypeRuntime && r.errDetail != "" })
			if !strings.Contains(nack.errDetail, `runtime "rtds0" layer.bad: invalid runtime entry value`) {
				t.Errorf("NACK detail: %s", nack.errDetail)
			}
			if got := runtimeJSON(t, adminPort); !strings.Contains(got, `"final_value":"one"`) {
				t.Fatalf("after the NACK /runtime lost the last layer:\n%s", got)
			}

			cp.setRuntime("3", map[string]map[string]any{"rtds0": {"name": "three"}})
			waitUntil(t, "the new layer in /runtime", func() bool {
				got := runtimeJSON(t, adminPort)
				return strings.Contains(got, `"final_value":"three"`) && !strings.Contains(got, "feature.enabled")
			})
		})
	}
}
