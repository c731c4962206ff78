package listener

import (
	"context"
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
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/listener/hcm"
	"github.com/wasmesh/wasmesh/stats"
	"github.com/wasmesh/wasmesh/xds/bootstrap"
	"google.golang.org/protobuf/proto"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM chain and key for a leaf with the given DNS names.
func (ca *testCA) issue(t testing.TB, cn string, client bool, dns ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	eku := x509.ExtKeyUsageServerAuth
	if client {
		eku = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dns,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// writeFile writes b under dir and returns the path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// staticSecrets is a SecretLookup over a map.
type staticSecrets map[string]*tlsv3.Secret

func (s staticSecrets) Secret(name string) (*tlsv3.Secret, bool) { sec, ok := s[name]; return sec, ok }

// fixedDialer dials one address per cluster.
type fixedDialer struct {
	mu    sync.Mutex
	addrs map[string]string
	dials map[string]int
}

func (d *fixedDialer) Dial(ctx context.Context, cluster string, _ netip.AddrPort) (net.Conn, string, error) {
	d.mu.Lock()
	addr, ok := d.addrs[cluster]
	if d.dials == nil {
		d.dials = map[string]int{}
	}
	d.dials[cluster]++
	d.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("unknown cluster %q", cluster)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	return c, addr, err
}

// echoServer echoes each connection until EOF, then half-closes.
func echoServer(t testing.TB, network, addr string) string {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// env is a test's shared dependencies.
type env struct {
	t      *testing.T
	store  *stats.Store
	deps   Deps
	dialer *fixedDialer
}

func newEnv(t *testing.T) *env {
	reg := filterchain.NewRegistry()
	router.Register(reg)
	store := stats.New(stats.Options{})
	d := &fixedDialer{addrs: map[string]string{}}
	files := hcm.NewLogFiles()
	t.Cleanup(files.Close)
	e := &env{t: t, store: store, dialer: d}
	e.deps = Deps{
		Logger: zaptest.NewLogger(t),
		Stats:  store,
		HCM: hcm.Deps{
			Registry: reg, AccessLogs: files,
			Env: &filterchain.Env{Concurrency: 1, Values: map[string]any{}},
		},
		Dialer: d,
	}
	return e
}

// parseListener reads a YAML listener.
func parseListener(t testing.TB, y string) *listenerv3.Listener {
	t.Helper()
	cfg := &listenerv3.Listener{}
	if err := bootstrap.Parse([]byte(y), cfg, false); err != nil {
		t.Fatalf("parse listener: %v\n%s", err, y)
	}
	return cfg
}

// start compiles and starts a listener and stops it at the end.
func (e *env) start(y string) *Listener {
	e.t.Helper()
	l, err := Compile(context.Background(), parseListener(e.t, y), e.deps)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Stop() })
	return l
}

func (e *env) counter(name string) uint64 { return e.store.Counter(name).Value() }

// hcmFilter is an http_connection_manager answering every request with
// body on a direct response.
func hcmFilter(body string) string {
	return fmt.Sprintf(`
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        route_config:
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: {prefix: "/"}
              direct_response: {status: 200, body: {inline_string: %q}}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}`, body)
}

// directFilter is a network direct_response filter.
func directFilter(body string) string {
	return fmt.Sprintf(`
    - name: envoy.filters.network.direct_response
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config
        response: {inline_string: %q}`, body)
}

// tcpProxyFilter is a tcp_proxy to cluster.
func tcpProxyFilter(cluster string) string {
	return fmt.Sprintf(`
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: %s
        cluster: %s`, cluster, cluster)
}

// get does a GET and returns the body and protocol.
func get(t testing.TB, c *http.Client, url string) (string, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Proto
}

// h2cClient speaks HTTP/2 with prior knowledge.
func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}}}
}

// rawExchange writes msg, half-closes and reads everything back.
func rawExchange(t testing.TB, addr string, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if msg != "" {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func parseYAML(y string, m proto.Message) error { return bootstrap.Parse([]byte(y), m, false) }
