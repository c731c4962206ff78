package client_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/client"
)

// mtlsUpstream is a TLS upstream requiring a client certificate from ca;
// it answers with the client certificate's common name.
func mtlsUpstream(t testing.TB, ca *sdsCA) *httptest.Server {
	_, _, pair := ca.issue(t, "upstream")
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "mtls:", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	up.StartTLS()
	t.Cleanup(up.Close)
	return up
}

// sdsUpstreamCluster is a STATIC cluster of up whose client certificate
// and trusted CA come over SDS.
func sdsUpstreamCluster(t testing.TB, name string, up *httptest.Server, cert, trust, fetchTimeout string) *clusterv3.Cluster {
	h, p := hostPort(t, up)
	return parse(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: %s
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: %[1]s
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %[2]s, port_value: %[3]d}}}}]}]
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      tls_certificate_sds_secret_configs: [{name: %[4]s, sds_config: {ads: {}, initial_fetch_timeout: %[6]s}}]
      validation_context_sds_secret_config: {name: %[5]s, sds_config: {ads: {}, initial_fetch_timeout: %[6]s}}
`, name, h, p, cert, trust, fetchTimeout))
}

// TestSDSClusterWarming: a cluster changed to read secrets that have not
// arrived warms while its previous version serves, and is swapped in once
// they arrive.
func TestSDSClusterWarming(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) {
			ca := newSDSCA(t, "ca")
			plain, secure := upstream(t, "plain"), mtlsUpstream(t, ca)
			cp := startSDSControlPlane(t)
			port := freePort(t)
			l := plainListener(t, "ingress", port, "backend")
			cp.setSDS("1", []*clusterv3.Cluster{staticCluster(t, "backend", plain)}, []*listenerv3.Listener{l})
			proxyAt(t, cp.addr, apiType, "10s")
			eventually(t, port, "/", "plain", "")

			tlsBackend := sdsUpstreamCluster(t, "backend", secure, "proxy-client", "upstream-trust", "30s")
			cp.setSDS("2", []*clusterv3.Cluster{tlsBackend}, []*listenerv3.Listener{l})
			cp.waitRequest("SDS subscription to the cluster's secrets", func(r request) bool {
				return r.typeURL == client.TypeSecret && (contains(r.names, "upstream-trust") || contains(r.subscribe, "upstream-trust"))
			})
			for i := 0; i < 5; i++ {
				if code, body, _, err := get(port, "/"); err != nil || code != 200 || body != "plain" {
					t.Fatalf("while the new cluster warms: %d %q %v, want the previous version serving", code, body, err)
				}
			}

			cc, ck, _ := ca.issue(t, "proxy")
			cp.setSDS("3", []*clusterv3.Cluster{tlsBackend}, []*listenerv3.Listener{l},
				tlsSecret("proxy-client", cc, ck), trustSecret("upstream-trust", ca.pem))
			eventually(t, port, "/", "mtls:proxy", "")
		})
	}
}

// TestSDSInitialFetchTimeout: a listener whose secret never comes starts
// after the sds_config initial_fetch_timeout, failing handshakes, and
// serves once the secret arrives; a cluster likewise refuses its
// upstream until its trust arrives.
func TestSDSInitialFetchTimeout(t *testing.T) {
	ca := newSDSCA(t, "ca")
	secure := mtlsUpstream(t, ca)
	cp := startSDSControlPlane(t)
	port := freePort(t)
	l := parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: slow
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: never-yet, sds_config: {ads: {}, initial_fetch_timeout: 0.3s}}]
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: slow
      route_config:
        virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: backend}}]}]
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, port))
	backend := sdsUpstreamCluster(t, "backend", secure, "proxy-client", "upstream-trust", "0.3s")
	cp.setSDS("1", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{l})
	start := time.Now()
	proxyAt(t, cp.addr, "GRPC", "10s")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("ready after %v, before the secrets' initial_fetch_timeout", d)
	}
	// The listener is up (the port accepts) but has no certificate.
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		t.Fatalf("listener not started after the timeout: %v", err)
	}
	c.Close()
	if _, err := dialHTTPS(t, port, ca.pool, nil); err == nil {
		t.Fatal("handshake succeeded without a certificate")
	}

	sc, sk, _ := ca.issue(t, "server")
	cc, ck, _ := ca.issue(t, "proxy")
	cp.setSDS("2", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{l},
		tlsSecret("never-yet", sc, sk), tlsSecret("proxy-client", cc, ck), trustSecret("upstream-trust", ca.pem))
	waitUntil(t, "the listener and the cluster once their secrets arrived", func() bool {
		h, err := dialHTTPS(t, port, ca.pool, nil)
		if err != nil {
			return false
		}
		body, err := h.get("/")
		return err == nil && body == "mtls:proxy"
	})
}

// TestSDSLinearCache serves secrets from go-control-plane's linear cache
// (clusters and listeners from a snapshot cache, muxed on one ADS
// server): the certificate arrives, rotates, and a bad one is NACKed
// while the rotated one serves.
func TestSDSLinearCache(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) { testSDSLinearCache(t, apiType) })
	}
}

func testSDSLinearCache(t *testing.T, apiType string) {
	snaps := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	secrets := cachev3.NewLinearCache(resource.SecretType)
	classify := func(typeURL string) string {
		if typeURL == resource.SecretType {
			return "secrets"
		}
		return "snap"
	}
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return classify(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return classify(r.GetTypeUrl()) },
		Caches:        map[string]cachev3.Cache{"secrets": secrets, "snap": snaps},
	}
	nacks := make(chan string, 16)
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			if r.GetTypeUrl() == resource.SecretType && r.GetErrorDetail() != nil {
				nacks <- r.GetErrorDetail().GetMessage()
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			if r.GetTypeUrl() == resource.SecretType && r.GetErrorDetail() != nil {
				nacks <- r.GetErrorDetail().GetMessage()
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, mux, cb))
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	ca := newSDSCA(t, "ca")
	up := upstream(t, "backend")
	port := freePort(t)
	publishSnapshot(t, snaps, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {staticCluster(t, "backend", up)},
		resource.ListenerType: {tlsListener(t, "secure", port, "backend", "server-cert", "")},
	})
	c1, k1, _ := ca.issue(t, "one")
	if err := secrets.UpdateResource("server-cert", tlsSecret("server-cert", c1, k1)); err != nil {
		t.Fatal(err)
	}
	proxyAt(t, ln.Addr().String(), apiType, "10s")
	old, err := dialHTTPS(t, port, ca.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, err := old.get("/"); err != nil || body != "backend" {
		t.Fatalf("%q %v", body, err)
	}

	c2, k2, pair2 := ca.issue(t, "two")
	if err := secrets.UpdateResource("server-cert", tlsSecret("server-cert", c2, k2)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rotated certificate", func() bool {
		s, err := serialOf(t, port, ca.pool)
		return err == nil && s.Cmp(pair2.Leaf.SerialNumber) == 0
	})
	if body, err := old.get("/"); err != nil || body != "backend" {
		t.Fatalf("connection made before the rotation: %q %v", body, err)
	}

	if err := secrets.UpdateResource("server-cert", tlsSecret("server-cert", []byte("not a certificate"), k2)); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-nacks:
		if want := `secret "server-cert" tls_certificate.certificate_chain: no PEM certificate found`; msg != want {
			t.Fatalf("NACK %q, want %q", msg, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bad secret was not NACKed")
	}
	if s, err := serialOf(t, port, ca.pool); err != nil || s.Cmp(pair2.Leaf.SerialNumber) != 0 {
		t.Fatalf("after the NACK: %v %v, want the last good certificate", s, err)
	}
}

// TestSDSInStaticResourcesRejected: a bootstrap listener reading an SDS
// secret is refused naming the field (only xDS-delivered listeners and
// clusters have their secrets subscribed).
func TestSDSInStaticResourcesRejected(t *testing.T) {
	cp := startSDSControlPlane(t)
	host, port, _ := net.SplitHostPort(cp.addr)
	cfg := fmt.Sprintf(`
node: {id: %s, cluster: test}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}}
  lds_config: {ads: {}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}]}]
  listeners:
  - name: static-tls
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs: [{name: cert, sds_config: {ads: {}}}]
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: xds}
`, nodeID, host, port)
	o, err := server.ParseFlags([]string{"--config-yaml", cfg, "-l", "off"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := parse(t, &bootstrapv3.Bootstrap{}, cfg)
	s, err := server.New(context.Background(), o, b, nil)
	if err == nil {
		s.Close(context.Background())
		t.Fatal("a static listener reading an SDS secret was accepted")
	}
	want := "tls_certificate_sds_secret_configs[0].sds_config: SDS secrets in static_resources are not implemented"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
