package cluster_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/wasmesh/wasmesh/cluster"
)

// testCA issues certificates for tests.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue returns a leaf certificate and key as PEM, and as a tls.Certificate.
func (ca *testCA) issue(t testing.TB, cn string, dns []string, uris []string, ips []net.IP) (string, string, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var us []*url.URL
	for _, u := range uris {
		pu, _ := url.Parse(u)
		us = append(us, pu)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
		URIs:         us,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// tlsUpstream is a TLS test server that records what clients offered.
type tlsUpstream struct {
	*upstream
	mu       sync.Mutex
	sni      []string
	alpn     [][]string
	versions []uint16
	clientCN []string
}

func startTLSUpstream(t testing.TB, name string, cert tls.Certificate, clientCA *testCA, h2 bool) *tlsUpstream {
	t.Helper()
	u := &tlsUpstream{upstream: &upstream{name: name}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			u.mu.Lock()
			u.clientCN = append(u.clientCN, r.TLS.PeerCertificates[0].Subject.CommonName)
			u.mu.Unlock()
		}
		u.upstream.ServeHTTP(w, r)
	}))
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			u.mu.Lock()
			u.sni = append(u.sni, hello.ServerName)
			u.alpn = append(u.alpn, hello.SupportedProtos)
			u.mu.Unlock()
			return nil, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			u.mu.Lock()
			u.versions = append(u.versions, cs.Version)
			u.mu.Unlock()
			return nil
		},
	}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	srv.TLS = cfg
	srv.EnableHTTP2 = h2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	u.srv = srv
	u.addr = srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	return u
}

func (u *tlsUpstream) last() (sni string, alpn []string, version uint16) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.sni) > 0 {
		sni, alpn = u.sni[len(u.sni)-1], u.alpn[len(u.alpn)-1]
	}
	if len(u.versions) > 0 {
		version = u.versions[len(u.versions)-1]
	}
	return
}

func yamlString(s string) string {
	// A YAML block scalar keeps PEM newlines intact.
	return "|\n" + indent(s, "              ")
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}

type staticSecrets map[string]*tlsv3.Secret

func (s staticSecrets) Secret(name string) (*tlsv3.Secret, bool) { v, ok := s[name]; return v, ok }

func TestUpstreamTLS(t *testing.T) {
	ca := newCA(t, "test-ca")
	other := newCA(t, "other-ca")
	_, _, serverCert := ca.issue(t, "backend", []string{"backend.example", "*.wild.example"}, []string{"spiffe://mesh/backend"}, []net.IP{net.ParseIP("127.0.0.1")})
	clientCertPEM, clientKeyPEM, _ := ca.issue(t, "client-one", nil, nil, nil)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	for f, s := range map[string]string{caFile: ca.certPEM, certFile: clientCertPEM, keyFile: clientKeyPEM} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	plain := startTLSUpstream(t, "tls", serverCert, nil, false)
	mtls := startTLSUpstream(t, "mtls", serverCert, ca, false)
	h2 := startTLSUpstream(t, "h2", serverCert, nil, true)

	secrets := staticSecrets{
		"client": {Name: "client", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: dataSource(clientCertPEM), PrivateKey: dataSource(clientKeyPEM)}}},
		"ca": {Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: dataSource(ca.certPEM)}}},
	}

	tlsCluster := func(name, addr, extra, upstreamTLS string) string {
		return staticCluster(t, name, extra+`
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
`+upstreamTLS, addr)
	}
	inlineCA := `
    common_tls_context:
      validation_context:
        trusted_ca:
          inline_string: ` + yamlString(ca.certPEM)

	cases := []struct {
		name      string
		up        *tlsUpstream
		extra     string
		tls       string
		fail      bool
		wantSNI   string
		wantProto string
		wantALPN  string
		wantVer   uint16
		wantCN    string
	}{
		{name: "no validation context accepts any certificate", up: plain, tls: "    sni: anything.example\n", wantSNI: "anything.example", wantProto: "HTTP/1.1", wantVer: tls.VersionTLS12},
		{name: "trusted ca inline", up: plain, tls: "    sni: backend.example" + inlineCA, wantSNI: "backend.example", wantProto: "HTTP/1.1"},
		{name: "trusted ca file, SAN exact", up: plain, tls: `    sni: backend.example
    common_tls_context:
      validation_context:
        trusted_ca: {filename: ` + caFile + `}
        match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: backend.example}}]
`, wantSNI: "backend.example", wantProto: "HTTP/1.1"},
		{name: "SAN wildcard", up: plain, tls: `    common_tls_context:
      validation_context:
        trusted_ca: {filename: ` + caFile + `}
        match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: api.wild.example}}]
`, wantProto: "HTTP/1.1"},
		{name: "SAN URI", up: plain, tls: `    common_tls_context:
      validation_context:
        trusted_ca: {filename: ` + caFile + `}
        match_typed_subject_alt_names: [{san_type: URI, matcher: {prefix: "spiffe://mesh/"}}]
`, wantProto: "HTTP/1.1"},
		{name: "SAN mismatch", up: plain, fail: true, tls: `    common_tls_context:
      validation_context:
        trusted_ca: {filename: ` + caFile + `}
        match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: other.example}}]
`},
		{name: "SAN without trusted ca still checked", up: plain, fail: true, tls: `    common_tls_context:
      validation_context:
        match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "spiffe://mesh/other"}}]
`},
		{name: "wrong ca", up: plain, fail: true, tls: `    common_tls_context:
      validation_context:
        trusted_ca:
          inline_string: ` + yamlString(other.certPEM)},
		{name: "accept untrusted", up: plain, tls: `    common_tls_context:
      validation_context:
        trust_chain_verification: ACCEPT_UNTRUSTED
        trusted_ca:
          inline_string: ` + yamlString(other.certPEM), wantProto: "HTTP/1.1"},
		{name: "mtls client cert from files", up: mtls, tls: `    common_tls_context:
      tls_certificates: [{certificate_chain: {filename: ` + certFile + `}, private_key: {filename: ` + keyFile + `}}]
      validation_context: {trusted_ca: {filename: ` + caFile + `}}
`, wantProto: "HTTP/1.1", wantCN: "client-one"},
		{name: "mtls client cert from static secret", up: mtls, tls: `    common_tls_context:
      tls_certificate_sds_secret_configs: [{name: client}]
      validation_context_sds_secret_config: {name: ca}
`, wantProto: "HTTP/1.1", wantCN: "client-one"},
		{name: "mtls without client cert", up: mtls, fail: true, tls: "    common_tls_context: {}\n"},
		{name: "http2 by alpn", up: h2, extra: "http2_protocol_options: {}", tls: "    common_tls_context: {}\n", wantProto: "HTTP/2.0", wantALPN: "h2"},
		{name: "auto config negotiates h2", up: h2, extra: `typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    auto_config: {}`, tls: "    common_tls_context: {}\n", wantProto: "HTTP/2.0", wantALPN: "h2,http/1.1"},
		{name: "configured alpn", up: plain, tls: "    common_tls_context: {alpn_protocols: [http/1.1]}\n", wantProto: "HTTP/1.1", wantALPN: "http/1.1"},
		{name: "tls 1.3 allowed", up: plain, tls: "    common_tls_context: {tls_params: {tls_maximum_protocol_version: TLSv1_3}}\n", wantProto: "HTTP/1.1", wantVer: tls.VersionTLS13},
		{name: "tls 1.3 required", up: plain, tls: "    common_tls_context: {tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}}\n", wantProto: "HTTP/1.1", wantVer: tls.VersionTLS13},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *cluster.Options) { o.Secrets = secrets })
			name := fmt.Sprintf("tls%d", i)
			cl := e.add(tlsCluster(name, tc.up.addr, tc.extra, tc.tls))
			req, _ := http.NewRequest(http.MethodGet, "http://backend/secure", nil)
			resp, _, err := cl.RoundTrip(req, cluster.LoadBalancerContext{})
			if tc.fail {
				if !errors.Is(err, cluster.ErrConnectFailure) {
					t.Fatalf("err = %v, want a connect failure", err)
				}
				if e.stats.value("cluster."+name+".upstream_cx_connect_fail") != 1 {
					t.Fatal("upstream_cx_connect_fail not counted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Proto != tc.wantProto || resp.TLS == nil {
				t.Fatalf("proto %s tls %v, want %s over TLS", resp.Proto, resp.TLS != nil, tc.wantProto)
			}
			sni, alpn, ver := tc.up.last()
			if sni != tc.wantSNI {
				t.Errorf("SNI %q, want %q", sni, tc.wantSNI)
			}
			if tc.wantALPN != "" && strings.Join(alpn, ",") != tc.wantALPN {
				t.Errorf("ALPN %v, want %s", alpn, tc.wantALPN)
			}
			if tc.wantVer != 0 && ver != tc.wantVer {
				t.Errorf("TLS version %x, want %x", ver, tc.wantVer)
			}
			if tc.wantCN != "" {
				tc.up.mu.Lock()
				cn := tc.up.clientCN[len(tc.up.clientCN)-1]
				tc.up.mu.Unlock()
				if cn != tc.wantCN {
					t.Errorf("client certificate %q, want %q", cn, tc.wantCN)
				}
			}
		})
	}
}

func dataSource(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}
