package kong

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kong"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: nil, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}

// TestSSLListenersAndAccessLog: proxy_listen and admin_listen ssl entries
// serve TLS with ssl_cert (h2 with http2), and proxy_access_log gets a line
// per request.
func TestSSLListenersAndAccessLog(t *testing.T) {
	cert, key, pool := selfSigned(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	g, _, _, _ := startWalk(t, "KONG_SSL_CERT="+cert, "KONG_SSL_CERT_KEY="+key,
		"KONG_PROXY_LISTEN=127.0.0.1:0, 127.0.0.1:0 ssl http2",
		"KONG_ADMIN_LISTEN=127.0.0.1:0 ssl", "KONG_PROXY_ACCESS_LOG="+logFile)
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + g.ProxyAddr(1).String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("X-Greeting") != "Hello from wasmesh using WebAssembly!" {
		t.Fatalf("proto %s X-Greeting %q", resp.Proto, resp.Header.Get("X-Greeting"))
	}
	resp, err = client.Get("https://" + g.AdminAddrs()[0].String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin over TLS: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "GET / HTTP/2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log: %q", b)
		}
		time.Sleep(10 * time.Millisecond) // the log is flushed asynchronously
	}
}

func TestSSLListenerWithoutCertIsSkipped(t *testing.T) {
	s, _, err := LoadSettings(Sources{Env: []string{"KONG_PROXY_LISTEN=127.0.0.1:0, 127.0.0.1:0 ssl"}})
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	_, res, err := Prepare(s, []byte(EmptyConfig), func(w string) { warned = append(warned, w) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listeners) != 1 || len(warned) != 1 || !strings.Contains(warned[0], "ssl: skipped") {
		t.Fatalf("listeners %d warnings %v", len(res.Listeners), warned)
	}
	s2, _, _ := LoadSettings(Sources{Env: []string{"KONG_PROXY_LISTEN=127.0.0.1:0 ssl"}})
	if _, _, err := Prepare(s2, []byte(EmptyConfig), nil); err == nil || !strings.Contains(err.Error(), "no listener left") {
		t.Fatalf("err %v", err)
	}
}

// TestSNICertificate: an ssl proxy_listen without ssl_cert serves Kong's
// certificates entities by SNI; the skipped-listener warning does not apply.
func TestSNICertificate(t *testing.T) {
	cert, key, pool := selfSigned(t)
	c, _ := os.ReadFile(cert)
	k, _ := os.ReadFile(key)
	g, _, admin, up := startWalk(t, "KONG_PROXY_LISTEN=127.0.0.1:0, 127.0.0.1:0 ssl")
	indent := func(b []byte) string {
		return "      " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n      ")
	}
	cfg := walkConfig(up.URL, "over tls") + "certificates:\n- cert: |\n" + indent(c) + "\n  key: |\n" + indent(k) + "\n  snis:\n  - name: localhost\n"
	// The certificate's secret is loaded when the data plane starts, so a
	// new certificate through POST /config is rejected and the old
	// configuration keeps serving.
	resp, b := do(t, "POST", admin+"/config", "application/yaml", []byte(cfg))
	if resp.StatusCode != 400 || !strings.Contains(string(b), "invalid declarative configuration") {
		t.Fatalf("POST /config with a new certificate: %d %s", resp.StatusCode, b)
	}
	if g.ProxyAddr(1) != nil {
		t.Fatal("a second listener appeared")
	}

	s, _, err := LoadSettings(Sources{Env: []string{"KONG_PROXY_LISTEN=127.0.0.1:0 ssl http2", "KONG_ADMIN_LISTEN=off", "KONG_LOG_LEVEL=error",
		"KONG_WASM=on", "KONG_WASM_FILTERS_PATH=" + filtersOf(t)}, NumCPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Start(t.Context(), Options{Settings: s, Declarative: []byte(cfg), DrainTime: time.Second, Warn: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	defer client.CloseIdleConnections()
	r, err := client.Get("https://" + g2.ProxyAddr(0).String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.ProtoMajor != 2 || r.Header.Get("X-Greeting") != "over tls" {
		t.Fatalf("proto %s X-Greeting %q", r.Proto, r.Header.Get("X-Greeting"))
	}
}

func filtersOf(t *testing.T) string {
	return filepath.Join(walkDir(t, "http://127.0.0.1:1"), "filters")
}

func TestFilterChainsNeedWasm(t *testing.T) {
	s, _, err := LoadSettings(Sources{Env: []string{"KONG_PROXY_LISTEN=127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Prepare(s, []byte(walkConfig("http://127.0.0.1:1", "x")), nil)
	var ke *Error
	if !errors.As(err, &ke) || !strings.Contains(ke.Kong.Message, "wasm is off") {
		t.Fatalf("err %v", err)
	}
}
