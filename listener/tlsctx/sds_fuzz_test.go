package tlsctx

import (
	"crypto/tls"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// FuzzCheckSecret feeds arbitrary chains, keys and CA bundles to the
// check an SDS secret passes before it is accepted: it must not panic, and
// what it accepts must load.
func FuzzCheckSecret(f *testing.F) {
	ca := newTestCA(f, "ca")
	c, k := ca.issue(f, "s", false)
	f.Add(c, k)
	f.Add(c, c)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), k)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, chain, key []byte) {
		if err := CheckSecret(certSecret("s", chain, key)); err == nil {
			if _, err := tls.X509KeyPair(chain, key); err != nil {
				t.Fatalf("accepted a pair that does not load: %v", err)
			}
		}
		_ = CheckSecret(vcSecret("v", chain))
		_ = CheckSecret(&tlsv3.Secret{Name: "v", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			VerifyCertificateHash: []string{string(key)},
		}}})
	})
}

// TestConfigForClientSteadyStateAllocs: with SDS secrets that did not
// change, picking the handshake's configuration allocates nothing.
func TestConfigForClientSteadyStateAllocs(t *testing.T) {
	ca := newTestCA(t, "ca")
	sds := newFakeSDS()
	c, k := ca.issue(t, "server", false)
	sds.set(certSecret("server", c, k))
	sds.set(vcSecret("trust", ca.pem))
	s, err := Compile("ctx", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server")},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsRef("trust")},
	}}, sds, nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "server", SupportedProtos: []string{"h2"}}
	first, _ := s.Config.GetConfigForClient(hello)
	if n := testing.AllocsPerRun(100, func() {
		cfg, _ := s.Config.GetConfigForClient(hello)
		if cfg != first {
			t.Fatal("a new configuration without a change")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per handshake configuration", n)
	}
	c2, k2 := ca.issue(t, "server", false)
	sds.set(certSecret("server", c2, k2))
	if cfg, _ := s.Config.GetConfigForClient(hello); cfg == first {
		t.Fatal("the same configuration after a rotation")
	}
}
