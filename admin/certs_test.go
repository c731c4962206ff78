package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
)

type fakeCerts []TLSContextCertificates

func (f fakeCerts) TLSContexts() []TLSContextCertificates { return f }

// makeCert creates a certificate signed by parent (self-signed when nil).
func makeCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestCerts(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	ca, caKey := makeCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(0x1a2b), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	spiffe, _ := url.Parse("spiffe://mesh/ns/default/sa/web")
	leaf, _ := makeCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(0xbeef), Subject: pkix.Name{CommonName: "web"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30*24*time.Hour + 23*time.Hour),
		DNSNames: []string{"web.example", "*.web.example"}, URIs: []*url.URL{spiffe},
		IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1), net.ParseIP("::1")},
	}, ca, caKey)
	expired, _ := makeCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(7), NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour),
	}, nil, nil)

	ta := startAdmin(t, Options{
		Now: func() time.Time { return now },
		Certificates: fakeCerts{
			{CA: []CertificateSource{{Path: "/etc/ca.pem", Cert: ca}}, Chain: []CertificateSource{{Path: "/etc/web.pem", Cert: leaf}}},
			{Chain: []CertificateSource{{Path: "<inline>", Cert: expired}}},
		},
	})
	var certs adminv3.Certificates
	ta.getJSON(t, "/certs", &certs)
	if n := len(certs.GetCertificates()); n != 2 {
		t.Fatalf("%d certificates", n)
	}
	c0 := certs.GetCertificates()[0]
	if len(c0.GetCaCert()) != 1 || len(c0.GetCertChain()) != 1 {
		t.Fatalf("context 0: %v", c0)
	}
	caD, leafD := c0.GetCaCert()[0], c0.GetCertChain()[0]
	if caD.GetPath() != "/etc/ca.pem" || caD.GetSerialNumber() != "1a2b" || caD.GetDaysUntilExpiration() != 365 {
		t.Errorf("ca details: %v", caD)
	}
	if leafD.GetPath() != "/etc/web.pem" || leafD.GetSerialNumber() != "beef" {
		t.Errorf("leaf details: %v", leafD)
	}
	if d := leafD.GetDaysUntilExpiration(); d != 30 {
		t.Errorf("days_until_expiration %d, want 30 (whole days)", d)
	}
	if !leafD.GetValidFrom().AsTime().Equal(leaf.NotBefore) || !leafD.GetExpirationTime().AsTime().Equal(leaf.NotAfter) {
		t.Errorf("validity %v - %v", leafD.GetValidFrom().AsTime(), leafD.GetExpirationTime().AsTime())
	}
	var sans []string
	for _, s := range leafD.GetSubjectAltNames() {
		switch n := s.GetName().(type) {
		case *adminv3.SubjectAlternateName_Dns:
			sans = append(sans, "dns:"+n.Dns)
		case *adminv3.SubjectAlternateName_Uri:
			sans = append(sans, "uri:"+n.Uri)
		case *adminv3.SubjectAlternateName_IpAddress:
			sans = append(sans, "ip:"+n.IpAddress)
		}
	}
	want := []string{"dns:web.example", "dns:*.web.example", "uri:spiffe://mesh/ns/default/sa/web", "ip:10.0.0.1", "ip:::1"}
	if len(sans) != len(want) {
		t.Fatalf("sans %v, want %v", sans, want)
	}
	for i := range want {
		if sans[i] != want[i] {
			t.Errorf("sans %v, want %v", sans, want)
			break
		}
	}
	exp := certs.GetCertificates()[1].GetCertChain()[0]
	if exp.GetPath() != "<inline>" || exp.GetDaysUntilExpiration() != 0 {
		t.Errorf("expired cert: %v", exp)
	}
	// days_until_expiration is printed even when 0.
	_, body := ta.get(t, "/certs")
	if want := `"days_until_expiration": "0"`; !containsNormalized(body, want) {
		t.Errorf("/certs lacks %s:\n%s", want, body)
	}

	empty := startAdmin(t, Options{})
	var none adminv3.Certificates
	empty.getJSON(t, "/certs", &none)
	if len(none.GetCertificates()) != 0 {
		t.Errorf("certificates without a provider: %v", &none)
	}
}
