package client_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

// sdsCA issues certificates for the SDS tests.
type sdsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newSDSCA(t testing.TB, cn string) *sdsCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	ca := &sdsCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: x509.NewCertPool()}
	ca.pool.AddCert(c)
	return ca
}

// issue returns a leaf for 127.0.0.1 as PEM and as a pair.
func (ca *sdsCA) issue(t testing.TB, cn string) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

func tlsSecret(name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}
}

func trustSecret(name string, caPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
	}}}
}

// setSDS publishes a snapshot with clusters, listeners and secrets.
func (cp *controlPlane) setSDS(version string, clusters []*clusterv3.Cluster, ls []*listenerv3.Listener, secrets ...*tlsv3.Secret) {
	cp.t.Helper()
	cp.publish(version, map[resource.Type][]types.Resource{resource.ClusterType: asResources(clusters), resource.EndpointType: {},
		resource.ListenerType: asResources(ls), resource.SecretType: asResources(secrets)})
}

// startSDSControlPlane is startControlPlane with a snapshot cache that
// answers a request for some of a type's resources. go-control-plane's
// ADS-mode cache answers only a request naming every resource of the
// snapshot; the clusters' secrets are requested before the listeners'
// (LDS starts once the clusters warmed), so with it the first secrets
// would come only after their initial_fetch_timeout, in Envoy too.
func startSDSControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	cp := startControlPlane(t, "")
	cp.stop()
	cp.cache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	cp.serve(cp.addr)
	return cp
}

// tlsListener is an HTTPS listener routing everything to cluster; its
// certificate (and, with trust, its client validation context) come over
// SDS.
func tlsListener(t testing.TB, name string, port int, cluster, cert, trust string) *listenerv3.Listener {
	validation := fmt.Sprintf(`
      common_tls_context:
        tls_certificate_sds_secret_configs:
        - name: %s
          sds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 30s}`, cert)
	if trust != "" {
		validation = fmt.Sprintf(`
      require_client_certificate: true
      common_tls_context:
        tls_certificate_sds_secret_configs:
        - name: %s
          sds_config: {ads: {}, resource_api_version: V3}
        validation_context_sds_secret_config:
          name: %s
          sds_config: {ads: {}, resource_api_version: V3}`, cert, trust)
	}
	return parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: %s
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext%s
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: %s
      route_config:
        virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: %s}}]}]
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, name, port, validation, name, cluster))
}

// plainListener is an HTTP listener routing everything to cluster.
func plainListener(t testing.TB, name string, port int, cluster string) *listenerv3.Listener {
	return parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: %s
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: %s
      route_config:
        virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: %s}}]}]
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, name, port, name, cluster))
}

// httpsConn is one kept-alive HTTPS connection to the proxy.
type httpsConn struct {
	c  *tls.Conn
	br *bufio.Reader
}

func dialHTTPS(t testing.TB, port int, roots *x509.CertPool, client *tls.Certificate) (*httpsConn, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &httpsConn{c: c, br: bufio.NewReader(c)}, nil
}

// get sends a request on the connection and returns the body.
func (h *httpsConn) get(path string) (string, error) {
	h.c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1"+path, nil)
	if err := req.Write(h.c); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(h.br, req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func (h *httpsConn) serial() *big.Int { return h.c.ConnectionState().PeerCertificates[0].SerialNumber }

// serialOf dials and reports the serial of the certificate served.
func serialOf(t testing.TB, port int, roots *x509.CertPool) (*big.Int, error) {
	t.Helper()
	c, err := dialHTTPS(t, port, roots, nil)
	if err != nil {
		return nil, err
	}
	defer c.c.Close()
	return c.serial(), nil
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSDSListener: a listener's certificate over SDS, SotW and delta: the
// handshake works once the secret arrived; a rotation reaches new
// handshakes while a connection made before keeps working (and keeps its
// certificate); a bad secret is NACKed naming the secret and the field
// while the last good certificate serves; /config_dump shows the secret
// with its private key redacted and /certs the certificate in use.
func TestSDSListener(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) { testSDSListener(t, apiType) })
	}
}

func testSDSListener(t *testing.T, apiType string) {
	ca := newSDSCA(t, "sds-ca")
	up := upstream(t, "backend")
	cp := startControlPlane(t, "")
	port, adminPort := freePort(t), freePort(t)
	backend := staticCluster(t, "backend", up)
	l := tlsListener(t, "secure", port, "backend", "server-cert", "")
	c1, k1, _ := ca.issue(t, "one")
	cp.setSDS("1", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{l}, tlsSecret("server-cert", c1, k1))
	proxyWithAdmin(t, cp.addr, apiType, "10s", adminPort)

	old, err := dialHTTPS(t, port, ca.pool, nil)
	if err != nil {
		t.Fatalf("handshake after the secret arrived: %v", err)
	}
	if body, err := old.get("/"); err != nil || body != "backend" {
		t.Fatalf("request: %q %v", body, err)
	}
	first := old.serial()

	// Rotation: the same secret name, a new certificate.
	c2, k2, pair2 := ca.issue(t, "two")
	cp.setSDS("2", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{l}, tlsSecret("server-cert", c2, k2))
	waitUntil(t, "the rotated certificate on new handshakes", func() bool {
		s, err := serialOf(t, port, ca.pool)
		return err == nil && s.Cmp(pair2.Leaf.SerialNumber) == 0
	})
	if body, err := old.get("/again"); err != nil || body != "backend" {
		t.Fatalf("connection made before the rotation: %q %v", body, err)
	}
	if old.serial().Cmp(first) != 0 {
		t.Fatal("the old connection's certificate changed")
	}

	// A key that is not the certificate's: NACKed, the rotated one serves.
	c3, _, _ := ca.issue(t, "three")
	cp.setSDS("3", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{l}, tlsSecret("server-cert", c3, k2))
	nack := cp.waitRequest("SDS NACK", nackOf(client.TypeSecret, `secret "server-cert" tls_certificate.private_key: tls: private key does not match public key`))
	if nack.version != "" && nack.version != "2" && apiType == "GRPC" {
		t.Fatalf("NACK version_info %q, want the last accepted (2)", nack.version)
	}
	if s, err := serialOf(t, port, ca.pool); err != nil || s.Cmp(pair2.Leaf.SerialNumber) != 0 {
		t.Fatalf("after the NACK: serial %v err %v, want the last good certificate", s, err)
	}

	dump := configDump(t, adminPort)
	for _, want := range []string{`"dynamic_active_secrets"`, `"name": "server-cert"`, `"W3JlZGFjdGVkXQ=="`, `"last_updated"`} { // the private key: base64 of "[redacted]"
		if !strings.Contains(dump, want) {
			t.Fatalf("config_dump lacks %s:\n%s", want, dump)
		}
	}
	if apiType == "GRPC" && !strings.Contains(dump, `"version_info": "2"`) {
		t.Fatalf("config_dump lacks the secret's version 2:\n%s", dump)
	}
	if strings.Contains(dump, strings.TrimSpace(string(k2))[:40]) {
		t.Fatal("config_dump shows the private key")
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/certs", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(certs), pair2.Leaf.SerialNumber.Text(16)) {
		t.Fatalf("/certs does not list the rotated certificate (serial %x):\n%s", pair2.Leaf.SerialNumber, certs)
	}

	// The listener goes: its secret is no longer read, so it is
	// unsubscribed (delta) and forgotten.
	cp.setSDS("4", []*clusterv3.Cluster{backend}, nil, tlsSecret("server-cert", c2, k2))
	if apiType == "DELTA_GRPC" {
		cp.waitRequest("SDS unsubscription", func(r request) bool {
			return r.typeURL == client.TypeSecret && contains(r.unsubscribe, "server-cert")
		})
	}
	waitUntil(t, "the secret leaving /config_dump", func() bool {
		return !strings.Contains(configDump(t, adminPort), `"dynamic_active_secrets"`)
	})
}

// TestSDSListenerWarming: a listener naming a secret the control plane
// does not have yet is not served (and LDS not yet applied) until the
// secret arrives.
func TestSDSListenerWarming(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) {
			ca := newSDSCA(t, "sds-ca")
			up := upstream(t, "backend")
			cp := startControlPlane(t, "")
			plainPort, port := freePort(t), freePort(t)
			backend := staticCluster(t, "backend", up)
			plain := plainListener(t, "plain", plainPort, "backend")
			cp.setSDS("1", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{plain})
			proxyAt(t, cp.addr, apiType, "10s")
			eventually(t, plainPort, "/", "backend", "")

			secure := tlsListener(t, "secure", port, "backend", "late-cert", "")
			cp.setSDS("2", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{plain, secure})
			cp.waitRequest("SDS subscription to late-cert", func(r request) bool {
				return r.typeURL == client.TypeSecret && (contains(r.names, "late-cert") || contains(r.subscribe, "late-cert"))
			})
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
				c.Close()
				t.Fatal("the listener serves before its certificate arrived")
			}
			c1, k1, _ := ca.issue(t, "late")
			cp.setSDS("3", []*clusterv3.Cluster{backend}, []*listenerv3.Listener{plain, secure}, tlsSecret("late-cert", c1, k1))
			waitUntil(t, "the listener after its secret arrived", func() bool {
				c, err := dialHTTPS(t, port, ca.pool, nil)
				if err != nil {
					return false
				}
				body, err := c.get("/")
				return err == nil && body == "backend"
			})
			eventually(t, plainPort, "/", "backend", "")
		})
	}
}

// TestSDSMutualTLS: the listener's client validation context and the
// cluster's client certificate and trusted CA come over SDS; the
// upstream requires the client certificate.
func TestSDSMutualTLS(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) { testSDSMutualTLS(t, apiType) })
	}
}

func testSDSMutualTLS(t *testing.T, apiType string) {
	ca, clientCA, otherCA := newSDSCA(t, "server-ca"), newSDSCA(t, "client-ca"), newSDSCA(t, "other-ca")
	// The upstream: TLS, requiring a client certificate from ca.
	_, _, upPair := ca.issue(t, "upstream")
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "mtls-upstream:", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{upPair}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	up.StartTLS()
	t.Cleanup(up.Close)
	h, p := hostPort(t, up)
	upstreamCluster := parse(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: secure-upstream
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: secure-upstream
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %d}}}}]}]
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      tls_certificate_sds_secret_configs: [{name: proxy-client, sds_config: {ads: {}, resource_api_version: V3}}]
      combined_validation_context:
        default_validation_context:
          match_typed_subject_alt_names: [{san_type: IP_ADDRESS, matcher: {exact: 127.0.0.1}}]
        validation_context_sds_secret_config: {name: upstream-trust, sds_config: {ads: {}, resource_api_version: V3}}
`, h, p))

	cp := startSDSControlPlane(t)
	port := freePort(t)
	l := tlsListener(t, "mtls", port, "secure-upstream", "server-cert", "client-trust")
	sc, sk, _ := ca.issue(t, "proxy-server")
	pc, pk, _ := ca.issue(t, "proxy-client")
	secrets := []*tlsv3.Secret{tlsSecret("server-cert", sc, sk), trustSecret("client-trust", clientCA.pem),
		tlsSecret("proxy-client", pc, pk), trustSecret("upstream-trust", ca.pem)}
	cp.setSDS("1", []*clusterv3.Cluster{upstreamCluster}, []*listenerv3.Listener{l}, secrets...)
	proxyAt(t, cp.addr, apiType, "10s")

	_, _, alice := clientCA.issue(t, "alice")
	c, err := dialHTTPS(t, port, ca.pool, &alice)
	if err != nil {
		t.Fatalf("mTLS handshake: %v", err)
	}
	if body, err := c.get("/"); err != nil || body != "mtls-upstream:proxy-client" {
		t.Fatalf("request through both TLS hops: %q %v", body, err)
	}
	if c, err := dialHTTPS(t, port, ca.pool, nil); err == nil {
		if _, err := c.get("/"); err == nil {
			t.Fatal("a client without a certificate got through")
		}
	}
	_, _, mallory := otherCA.issue(t, "mallory")
	if c, err := dialHTTPS(t, port, ca.pool, &mallory); err == nil {
		if _, err := c.get("/"); err == nil {
			t.Fatal("a client certificate from an untrusted CA got through")
		}
	}

	// Trust rotated to the other CA: mallory gets in, alice's open
	// connection goes on.
	secrets[1] = trustSecret("client-trust", otherCA.pem)
	cp.setSDS("2", []*clusterv3.Cluster{upstreamCluster}, []*listenerv3.Listener{l}, secrets...)
	waitUntil(t, "the rotated client trust", func() bool {
		m, err := dialHTTPS(t, port, ca.pool, &mallory)
		if err != nil {
			return false
		}
		_, err = m.get("/")
		return err == nil
	})
	if body, err := c.get("/again"); err != nil || body != "mtls-upstream:proxy-client" {
		t.Fatalf("connection made before the trust rotation: %q %v", body, err)
	}
}
