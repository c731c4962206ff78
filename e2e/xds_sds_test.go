package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// sdsControlPlane is go-control-plane's ADS server with a snapshot cache
// on 127.0.0.1.
type sdsControlPlane struct {
	t     testing.TB
	port  int
	cache cachev3.SnapshotCache
}

func startSDSControlPlane(t testing.TB) *sdsControlPlane {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Not ADS mode: go-control-plane's ADS mode answers a secret request
	// only once it names every secret of the snapshot.
	cp := &sdsControlPlane{t: t, port: ln.Addr().(*net.TCPAddr).Port, cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)}
	ctx, cancel := context.WithCancel(context.Background())
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cp.cache, nil))
	go g.Serve(ln)
	t.Cleanup(func() { g.Stop(); cancel() })
	return cp
}

func (cp *sdsControlPlane) set(version string, rs ...types.Resource) {
	cp.t.Helper()
	res := map[resource.Type][]types.Resource{resource.ClusterType: {}, resource.ListenerType: {}, resource.SecretType: {}}
	for _, r := range rs {
		switch r.(type) {
		case *clusterv3.Cluster:
			res[resource.ClusterType] = append(res[resource.ClusterType], r)
		case *listenerv3.Listener:
			res[resource.ListenerType] = append(res[resource.ListenerType], r)
		case *tlsv3.Secret:
			res[resource.SecretType] = append(res[resource.SecretType], r)
		}
	}
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		cp.t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), "e2e-sds", snap); err != nil {
		cp.t.Fatal(err)
	}
}

func yamlProto[T proto.Message](t testing.TB, m T, y string) T {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(j, m); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return m
}

func pemSecret(t testing.TB, name string, l *leaf) *tlsv3.Secret {
	t.Helper()
	c, err := os.ReadFile(l.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(l.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return yamlProto(t, &tlsv3.Secret{}, fmt.Sprintf(`
name: %s
tls_certificate:
  certificate_chain: {inline_string: %q}
  private_key: {inline_string: %q}
`, name, c, k))
}

// TestXDSSDSRotationHTTP2: an HTTPS listener (ALPN h2, http/1.1) whose
// certificate comes over SDS serves HTTP/2; after a rotation, new
// connections get the new certificate while an HTTP/2 connection opened
// before keeps carrying new requests with the old one, and /certs shows
// the new certificate.
func TestXDSSDSRotationHTTP2(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) {
			dir := t.TempDir()
			ca := newCA(t, dir, "sds-ca")
			one, two := ca.issue(t, "one", false, "127.0.0.1"), ca.issue(t, "two", false, "127.0.0.1")
			up := startUpstream(t, "backend", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, "backend")
			}))
			port := closedPort(t)
			cluster := yamlProto(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: backend
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: backend
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`, up.Port))
			lis := yamlProto(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: https
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      common_tls_context:
        alpn_protocols: [h2, http/1.1]
        tls_certificate_sds_secret_configs: [{name: web, sds_config: {ads: {}, resource_api_version: V3}}]
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: https
      route_config:
        virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: backend}}]}]
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, port))
			cp := startSDSControlPlane(t)
			cp.set("1", cluster, lis, pemSecret(t, "web", one))
			p := startProxy(t, "xds_sds.yaml", vars{"XDSPort": cp.port, "APIType": apiType})
			url := fmt.Sprintf("https://127.0.0.1:%d/", port)

			old := tlsClient(&tls.Config{RootCAs: ca.pool()}, true)
			resp, body := get(t, old, url)
			if resp.StatusCode != 200 || body != "backend" || resp.Proto != "HTTP/2.0" {
				t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
			}
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "one" {
				t.Fatalf("certificate %q, want one", cn)
			}

			cp.set("2", cluster, lis, pemSecret(t, "web", two))
			waitFor(t, "the rotated certificate on a new connection", 10*time.Second, func() bool {
				c := tlsClient(&tls.Config{RootCAs: ca.pool()}, true)
				defer c.CloseIdleConnections()
				resp, err := c.Get(url)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.TLS.PeerCertificates[0].Subject.CommonName == "two"
			})
			resp, body = get(t, old, url)
			if resp.StatusCode != 200 || body != "backend" || resp.TLS.PeerCertificates[0].Subject.CommonName != "one" {
				t.Fatalf("the HTTP/2 connection opened before the rotation: %d %q %s", resp.StatusCode, body, resp.TLS.PeerCertificates[0].Subject.CommonName)
			}
			if code, certs := p.admin("/certs"); code != 200 || !strings.Contains(certs, two.Pair.Leaf.SerialNumber.Text(16)) {
				t.Fatalf("/certs (%d) does not show the rotated certificate:\n%s", code, certs)
			}
		})
	}
}
