package tlsctx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testCA issues certificates for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns the PEM chain and key of a leaf for cn.
func (ca *testCA) issue(t testing.TB, cn string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	eku := x509.ExtKeyUsageServerAuth
	if client {
		eku = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func certSecret(name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}
}

func vcSecret(name string, caPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
	}}}
}

// fakeSDS serves secrets as SDS would: a value per name, swapped
// atomically.
type fakeSDS struct {
	m map[string]*atomic.Pointer[tlsv3.Secret]
}

func newFakeSDS() *fakeSDS { return &fakeSDS{m: map[string]*atomic.Pointer[tlsv3.Secret]{}} }

func (f *fakeSDS) slot(name string) *atomic.Pointer[tlsv3.Secret] {
	if f.m[name] == nil {
		f.m[name] = &atomic.Pointer[tlsv3.Secret]{}
	}
	return f.m[name]
}

func (f *fakeSDS) set(s *tlsv3.Secret) { f.slot(s.GetName()).Store(s) }

func (f *fakeSDS) Secret(string) (*tlsv3.Secret, bool) { return nil, false }

func (f *fakeSDS) SDSSecret(name string, src *corev3.ConfigSource) (func() *tlsv3.Secret, error) {
	p := f.slot(name)
	return p.Load, nil
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion: corev3.ApiVersion_V3}
}

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// serveTLS accepts TLS connections with cfg on 127.0.0.1 and echoes one
// line per connection... it keeps every connection open until the test
// ends.
func serveTLS(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, s.Config)
				err := tc.Handshake()
				s.CountHandshake(err, tc.ConnectionState())
				if err != nil {
					return
				}
				buf := make([]byte, 1)
				for {
					if _, err := tc.Read(buf); err != nil {
						return
					}
					if _, err := tc.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with the server and returns the connection and the
// common name of the certificate it presented.
func dial(t *testing.T, addr string, roots *x509.CertPool, client *tls.Certificate) (*tls.Conn, string, error) {
	t.Helper()
	cfg := &tls.Config{ServerName: "server", RootCAs: roots}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, "", err
	}
	// TLS 1.3: the server checks the client certificate after the
	// client's handshake ended; a round trip surfaces its verdict.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'x'}); err == nil {
		_, err = c.Read(make([]byte, 1))
		if err != nil {
			c.Close()
			return nil, "", err
		}
	}
	c.SetDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return c, c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func echo(c *tls.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'y'}); err != nil {
		return err
	}
	_, err := c.Read(make([]byte, 1))
	return err
}

func TestSDSCertificateRotation(t *testing.T) {
	ca := newTestCA(t, "ca")
	sds := newFakeSDS()
	dtc := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server")},
	}}
	s, err := Compile("ctx", dtc, sds, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	// Not received yet: no certificate to present.
	if _, _, err := dial(t, addr, roots, nil); err == nil {
		t.Fatal("handshake succeeded without a certificate")
	}
	c1, k1 := ca.issue(t, "server", false)
	sds.set(certSecret("server", c1, k1))
	old, cn, err := dial(t, addr, roots, nil)
	if err != nil || cn != "server" {
		t.Fatalf("after the secret arrived: %v (cn %q)", err, cn)
	}
	first := old.ConnectionState().PeerCertificates[0].SerialNumber

	// Rotation: a new certificate for the same name.
	c2, k2 := ca.issue(t, "server", false)
	sds.set(certSecret("server", c2, k2))
	nc, _, err := dial(t, addr, roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	if nc.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(first) == 0 {
		t.Fatal("new handshake still sees the old certificate")
	}
	if err := echo(old); err != nil {
		t.Fatalf("old connection after rotation: %v", err)
	}
	_, chain := s.Certificates()
	if len(chain) != 1 || chain[0].Cert.SerialNumber.Cmp(first) == 0 {
		t.Fatalf("Certificates() = %v, want the rotated certificate", chain)
	}
}

func TestSDSValidationContextMTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctc  func() *tlsv3.CommonTlsContext
	}{
		{"validation_context_sds_secret_config", func() *tlsv3.CommonTlsContext {
			return &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsRef("trust")}}
		}},
		{"combined_validation_context", func() *tlsv3.CommonTlsContext {
			return &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_DNS,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "client"}},
					}}},
					ValidationContextSdsSecretConfig: sdsRef("trust"),
				}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverCA, clientCA, otherCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
			sds := newFakeSDS()
			ctc := tc.ctc()
			ctc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef("server")}
			s, err := Compile("ctx", &tlsv3.DownstreamTlsContext{CommonTlsContext: ctc, RequireClientCertificate: wrapperspb.Bool(true)}, sds, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, k := serverCA.issue(t, "server", false)
			sds.set(certSecret("server", c, k))
			addr := serveTLS(t, s)
			roots := x509.NewCertPool()
			roots.AddCert(serverCA.cert)
			cc, ck := clientCA.issue(t, "client", true)
			client, _ := tls.X509KeyPair(cc, ck)

			if _, _, err := dial(t, addr, roots, &client); err == nil {
				t.Fatal("client accepted before the validation context arrived")
			}
			sds.set(vcSecret("trust", clientCA.pem))
			conn, _, err := dial(t, addr, roots, &client)
			if err != nil {
				t.Fatalf("client certificate from the trusted CA: %v", err)
			}
			// Rotate the trust to another CA: new handshakes with the old
			// client certificate fail, the open connection goes on.
			sds.set(vcSecret("trust", otherCA.pem))
			if _, _, err := dial(t, addr, roots, &client); err == nil {
				t.Fatal("client accepted after its CA was rotated out")
			}
			if err := echo(conn); err != nil {
				t.Fatalf("open connection after the rotation: %v", err)
			}
			if ca, _ := s.Certificates(); len(ca) != 1 || ca[0].Cert.Subject.CommonName != "other-ca" {
				t.Fatalf("CA = %v", ca)
			}
		})
	}
}

func TestSDSSecretOfWrongKind(t *testing.T) {
	ca := newTestCA(t, "ca")
	sds := newFakeSDS()
	sds.set(vcSecret("server", ca.pem))
	_, err := Compile("ctx", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server")},
	}}, sds, nil)
	want := `ctx.common_tls_context.tls_certificate_sds_secret_configs[0]: secret "server" is not a tls_certificate`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}

	// A rotation to the wrong kind keeps the previous certificate.
	sds2 := newFakeSDS()
	c, k := ca.issue(t, "server", false)
	sds2.set(certSecret("server", c, k))
	s, err := Compile("ctx", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server")},
	}}, sds2, nil)
	if err != nil {
		t.Fatal(err)
	}
	sds2.set(vcSecret("server", ca.pem))
	if _, chain := s.Certificates(); len(chain) != 1 || s.Err() == nil {
		t.Fatalf("chain %v err %v: want the previous certificate and an error", chain, s.Err())
	}
}

func TestSDSWithoutLookup(t *testing.T) {
	_, err := Compile("ctx", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server")},
	}}, nil, nil)
	want := "ctx.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config: SDS needs an xDS client"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestCheckSecret(t *testing.T) {
	ca := newTestCA(t, "ca")
	c1, k1 := ca.issue(t, "a", false)
	_, k2 := ca.issue(t, "b", false)
	for _, tc := range []struct {
		name string
		sec  *tlsv3.Secret
		want string
	}{
		{"good certificate", certSecret("s", c1, k1), ""},
		{"key of another certificate", certSecret("s", c1, k2), `secret "s" tls_certificate.private_key: tls: private key does not match public key`},
		{"unparsable chain", certSecret("s", []byte("not pem"), k1), `secret "s" tls_certificate.certificate_chain: no PEM certificate found`},
		{"unparsable key", certSecret("s", c1, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")), `secret "s" tls_certificate.private_key:`},
		{"good validation context", vcSecret("v", ca.pem), ""},
		{"bad trusted_ca", vcSecret("v", []byte("garbage")), `secret "v" validation_context.trusted_ca: no PEM certificate found`},
		{"bad pin", &tlsv3.Secret{Name: "v", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			VerifyCertificateHash: []string{strings.Repeat("z", 64)}}}}, `secret "v" validation_context.verify_certificate_hash[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSecret(tc.sec)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
