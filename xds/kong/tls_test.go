package kong

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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
)

// selfSigned returns a PEM certificate and key for dns names.
func selfSigned(t *testing.T, dns ...string) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: dns[0]}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), pool
}

// TestSSLListenerCertificatesAndProtocols serves a certificate by SNI on
// an "ssl http2" proxy_listen, and answers an https-only route's plain
// HTTP request with Kong's 426.
func TestSSLListenerCertificatesAndProtocols(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure upstream "+r.URL.Path)
	}))
	defer up.Close()
	cert, key, pool := selfSigned(t, "kong.test")
	doc := map[string]any{
		"_format_version": "3.0",
		"services": []any{map[string]any{
			"name": "s", "url": up.URL,
			"routes": []any{
				map[string]any{"name": "secure", "protocols": []string{"https"}, "paths": []string{"/secure"}},
				map[string]any{"name": "by-sni", "protocols": []string{"https"}, "snis": []string{"kong.test"}, "paths": []string{"/sni"}},
			},
		}},
		"certificates": []any{map[string]any{"cert": cert, "key": key, "snis": []string{"kong.test"}}},
	}
	b, _ := json.Marshal(doc)
	cfg, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(cfg, Options{ProxyListen: []string{"127.0.0.1:0", "127.0.0.1:0 ssl http2 reuseport backlog=16384"}})
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, res)
	s := startTranslated(t, res)
	plain := "http://" + s.ListenerAddr("kong_proxy_0").String()
	_, port, _ := strings.Cut(s.ListenerAddr("kong_proxy_1").String(), ":")

	resp, body := get(t, plain+"/secure")
	if resp.StatusCode != 426 || body != `{"message":"Please use HTTPS protocol"}` {
		t.Fatalf("plain HTTP to an https route: %d %q", resp.StatusCode, body)
	}
	addr := s.ListenerAddr("kong_proxy_1").String()
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "kong.test"},
		ForceAttemptHTTP2: true,
		// kong.test does not resolve: every connection goes to the listener.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	defer client.CloseIdleConnections()
	// strip_path (default true) removes the matched path.
	for _, path := range []string{"/secure", "/sni"} {
		resp, err := client.Get(fmt.Sprintf("https://kong.test:%s%s", port, path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "secure upstream /" || resp.Proto != "HTTP/2.0" {
			t.Errorf("%s over TLS: %d %q %s", path, resp.StatusCode, b, resp.Proto)
		}
	}
}
