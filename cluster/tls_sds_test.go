package cluster_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/wasmesh/wasmesh/cluster"
)

// sdsSecrets serves secrets as SDS does: one value per name, swapped
// atomically; it records the config sources it was asked with.
type sdsSecrets struct {
	mu sync.Mutex
	m  map[string]*atomic.Pointer[tlsv3.Secret]
}

func (s *sdsSecrets) slot(name string) *atomic.Pointer[tlsv3.Secret] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*atomic.Pointer[tlsv3.Secret]{}
	}
	if s.m[name] == nil {
		s.m[name] = &atomic.Pointer[tlsv3.Secret]{}
	}
	return s.m[name]
}

func (s *sdsSecrets) set(sec *tlsv3.Secret) { s.slot(sec.GetName()).Store(sec) }

func (s *sdsSecrets) Secret(string) (*tlsv3.Secret, bool) { return nil, false }

func (s *sdsSecrets) SDSSecret(name string, src *corev3.ConfigSource) (func() *tlsv3.Secret, error) {
	return s.slot(name).Load, nil
}

var _ cluster.SDSLookup = (*sdsSecrets)(nil)

func sdsCertSecret(name, certPEM, keyPEM string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: dataSource(certPEM), PrivateKey: dataSource(keyPEM)}}}
}

func sdsTrustSecret(name, caPEM string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: dataSource(caPEM)}}}
}

func sdsCluster(t *testing.T, name, addr, common string) string {
	return staticCluster(t, name, `
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
`+common, addr)
}

const sdsRefs = `      tls_certificate_sds_secret_configs:
      - name: client
        sds_config: {ads: {}, resource_api_version: V3}
      validation_context_sds_secret_config:
        name: trust
        sds_config: {ads: {}, resource_api_version: V3}
`

// TestUpstreamSDSRotation: the client certificate and the trusted CA come
// from SDS; a rotated client certificate is presented on new connections
// while a connection opened before goes on.
func TestUpstreamSDSRotation(t *testing.T) {
	ca := newCA(t, "test-ca")
	_, _, serverCert := ca.issue(t, "backend", nil, nil, []net.IP{net.ParseIP("127.0.0.1")})
	up := startTLSUpstream(t, "mtls", serverCert, ca, false)
	secrets := &sdsSecrets{}
	e := newEnv(t, func(o *cluster.Options) { o.Secrets = secrets })
	c := e.add(sdsCluster(t, "sds", up.addr, sdsRefs))

	// Nothing received: the server's certificate cannot be verified.
	if _, _, err := get(t, c, "/", cluster.LoadBalancerContext{}); err == nil {
		t.Fatal("request succeeded before the validation context arrived")
	}
	c1, k1, _ := ca.issue(t, "client-one", nil, nil, nil)
	secrets.set(sdsCertSecret("client", c1, k1))
	secrets.set(sdsTrustSecret("trust", ca.certPEM))
	if _, code, err := get(t, c, "/", cluster.LoadBalancerContext{}); err != nil || code != 200 {
		t.Fatalf("after the secrets arrived: %d %v", code, err)
	}

	// A long response keeps the first connection busy across the rotation.
	req, _ := http.NewRequest(http.MethodGet, "http://backend/hold", nil)
	held, _, err := c.RoundTrip(req, cluster.LoadBalancerContext{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	c2, k2, _ := ca.issue(t, "client-two", nil, nil, nil)
	secrets.set(sdsCertSecret("client", c2, k2))
	if _, code, err := get(t, c, "/", cluster.LoadBalancerContext{}); err != nil || code != 200 {
		t.Fatalf("after the rotation: %d %v", code, err)
	}
	up.release()
	if _, err := io.ReadAll(held.Body); err != nil {
		t.Fatalf("connection opened before the rotation: %v", err)
	}
	up.mu.Lock()
	cns := strings.Join(up.clientCN, ",")
	up.mu.Unlock()
	if !strings.HasPrefix(cns, "client-one,client-one") || !strings.HasSuffix(cns, "client-two") {
		t.Fatalf("client certificates seen by the upstream: %s", cns)
	}
}

// TestUpstreamSDSValidation: a combined validation context whose SDS part
// trusts another CA refuses the server; the default part's SAN matcher
// applies with the right CA.
func TestUpstreamSDSValidation(t *testing.T) {
	ca, other := newCA(t, "test-ca"), newCA(t, "other-ca")
	_, _, serverCert := ca.issue(t, "backend", []string{"backend.example"}, nil, nil)
	up := startTLSUpstream(t, "tls", serverCert, nil, false)
	for _, tc := range []struct {
		name  string
		trust string
		san   string
		ok    bool
	}{
		{"trusted", ca.certPEM, "backend.example", true},
		{"other CA", other.certPEM, "backend.example", false},
		{"SAN from the default part", ca.certPEM, "nope.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secrets := &sdsSecrets{}
			secrets.set(sdsTrustSecret("trust", tc.trust))
			e := newEnv(t, func(o *cluster.Options) { o.Secrets = secrets })
			c := e.add(sdsCluster(t, "combined", up.addr, `      combined_validation_context:
        default_validation_context:
          match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: `+tc.san+`}}]
        validation_context_sds_secret_config:
          name: trust
          sds_config: {ads: {}}
`))
			_, _, err := get(t, c, "/", cluster.LoadBalancerContext{})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestUpstreamSDSWithoutLookup: sds_config without an SDS-capable lookup
// names the field.
func TestUpstreamSDSWithoutLookup(t *testing.T) {
	c := parseCluster(t, sdsCluster(t, "x", "127.0.0.1:1", sdsRefs))
	err := cluster.Validate(c, cluster.Options{Secrets: staticSecrets{}})
	want := "tls_certificate_sds_secret_configs[0].sds_config"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "SDS needs an xDS client") {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
