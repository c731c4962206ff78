package kong

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startRole(t *testing.T, host string, env ...string) *Gateway {
	t.Helper()
	s, warns, err := LoadSettings(Sources{Env: append(env, "KONG_LOG_LEVEL=error", "KONG_NGINX_WORKER_PROCESSES=2"), NumCPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Fatalf("warnings: %v", warns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := Start(ctx, Options{Settings: s, DrainTime: time.Second, Warn: io.Discard, Hostname: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// hybrid starts a control plane from the walk-through's kong.yml (its
// proxy_listen the data planes' proxy address) and a data plane connected
// to it.
func hybrid(t *testing.T, cpEnv, dpEnv []string) (cp, dp *Gateway, admin, proxy, upstreamURL string) {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the upstream\n")
	}))
	t.Cleanup(upstream.Close)
	dir := walkDir(t, upstream.URL)
	proxyAddr := freePort(t)
	cp = startRole(t, "cp-host", append([]string{
		"KONG_ROLE=control_plane",
		"KONG_CLUSTER_LISTEN=127.0.0.1:0",
		"KONG_WASM=on",
		"KONG_WASM_FILTERS_PATH=" + filepath.Join(dir, "filters"),
		"KONG_DECLARATIVE_CONFIG=" + filepath.Join(dir, "config", "kong.yml"),
		"KONG_PROXY_LISTEN=" + proxyAddr,
		"KONG_ADMIN_LISTEN=127.0.0.1:0",
	}, cpEnv...)...)
	if cp.ProxyAddr(0) != nil {
		t.Fatalf("the control plane proxies on %s", cp.ProxyAddr(0))
	}
	dp = startRole(t, "dp-host", append([]string{
		"KONG_ROLE=data_plane",
		"KONG_CLUSTER_CONTROL_PLANE=" + cp.ClusterAddr().String(),
	}, dpEnv...)...)
	if a := dp.ProxyAddr(0); a == nil || a.String() != proxyAddr {
		t.Fatalf("data plane proxy on %v, want %s", a, proxyAddr)
	}
	if len(dp.AdminAddrs()) != 0 {
		t.Fatalf("the data plane serves an Admin API on %v", dp.AdminAddrs())
	}
	return cp, dp, "http://" + cp.AdminAddrs()[0].String(), "http://" + proxyAddr, upstream.URL
}

// eventuallyGreeting polls the proxy until the filter's greeting is want.
func eventuallyGreeting(t *testing.T, proxy, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if got = greeting(t, proxy); got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("X-Greeting %q, want %q", got, want)
}

// TestHybridWalkThrough: a control plane serves the walk-through over
// ADS; a wasmesh data plane proxies it with the filter; POST /config on
// the control plane reaches the data plane; the data plane keeps serving
// when the control plane goes away.
func TestHybridWalkThrough(t *testing.T) {
	for _, tc := range []struct {
		name string
		mtls bool
	}{{"plain", false}, {"mtls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.mtls {
				cert, key := clusterCert(t)
				env = []string{"KONG_CLUSTER_CERT=" + cert, "KONG_CLUSTER_CERT_KEY=" + key}
			}
			cp, _, admin, proxy, upstream := hybrid(t, env, env)
			if g := greeting(t, proxy); g != "Hello from wasmesh using WebAssembly!" {
				t.Fatalf("X-Greeting %q", g)
			}
			v1 := cp.SnapshotVersion()
			// The Admin API is the control plane's.
			if m := getJSON(t, admin+"/", 200); m["configuration"].(map[string]any)["role"] != "control_plane" {
				t.Fatalf("GET / role: %v", m["configuration"])
			}
			getJSON(t, admin+"/status", 200)

			// A rejected configuration changes nothing.
			resp, body := do(t, "POST", admin+"/config", "application/x-yaml", []byte("_format_version: \"3.0\"\nservices: [{name: x}]\n"))
			if resp.StatusCode != 400 || cp.SnapshotVersion() != v1 {
				t.Fatalf("bad config: status %d version %s (was %s): %s", resp.StatusCode, cp.SnapshotVersion(), v1, body)
			}

			resp, body = do(t, "POST", admin+"/config", "application/x-yaml", []byte(walkConfig(upstream, "Hello again")))
			if resp.StatusCode != 201 {
				t.Fatalf("POST /config: %d %s", resp.StatusCode, body)
			}
			if cp.SnapshotVersion() == v1 {
				t.Fatal("POST /config kept the snapshot version")
			}
			eventuallyGreeting(t, proxy, "Hello again")

			// The control plane goes away: the data plane keeps serving.
			cp.Close()
			for range 20 {
				if g := greeting(t, proxy); g != "Hello again" {
					t.Fatalf("after the control plane stopped: X-Greeting %q", g)
				}
			}
		})
	}
}

// TestHybridDelta: a data plane on the incremental protocol (DELTA_GRPC)
// gets the configuration and its change.
func TestHybridDelta(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the upstream\n")
	}))
	t.Cleanup(upstream.Close)
	dir := walkDir(t, upstream.URL)
	proxyAddr := freePort(t)
	cp := startRole(t, "cp-host", "KONG_ROLE=control_plane", "KONG_CLUSTER_LISTEN=127.0.0.1:0", "KONG_WASM=on",
		"KONG_WASM_FILTERS_PATH="+filepath.Join(dir, "filters"),
		"KONG_DECLARATIVE_CONFIG="+filepath.Join(dir, "config", "kong.yml"),
		"KONG_PROXY_LISTEN="+proxyAddr, "KONG_ADMIN_LISTEN=127.0.0.1:0")
	s, _, err := LoadSettings(Sources{Env: []string{"KONG_ROLE=data_plane", "KONG_LOG_LEVEL=error",
		"KONG_CLUSTER_CONTROL_PLANE=" + cp.ClusterAddr().String()}, NumCPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dp, err := Start(ctx, Options{Settings: s, DrainTime: time.Second, Warn: io.Discard, Hostname: "dp", deltaXDS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	proxy := "http://" + proxyAddr
	eventuallyGreeting(t, proxy, "Hello from wasmesh using WebAssembly!")
	resp, body := do(t, "POST", "http://"+cp.AdminAddrs()[0].String()+"/config", "application/x-yaml", []byte(walkConfig(upstream.URL, "delta")))
	if resp.StatusCode != 201 {
		t.Fatalf("POST /config: %d %s", resp.StatusCode, body)
	}
	eventuallyGreeting(t, proxy, "delta")
}

// clusterCert writes a self-signed certificate with Kong's common name
// kong_clustering (as `kong hybrid gen_cert` makes it) and its key.
func clusterCert(t *testing.T) (cert, key string) {
	t.Helper()
	return clusterCertIn(t, t.TempDir())
}

func clusterCertIn(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ClusterServerName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "cluster.crt"), filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestSharedMTLSRefusesOtherCertificates: with cluster_mtls = shared the
// control plane accepts only a client presenting cluster_cert itself.
func TestSharedMTLSRefusesOtherCertificates(t *testing.T) {
	cert, key := clusterCert(t)
	otherCert, otherKey := clusterCert(t)
	srvCfg, err := sharedServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Write([]byte("ok"))
			}()
		}
	}()
	for _, tc := range []struct {
		name      string
		cert, key string
		ok        bool
	}{{"same certificate", cert, key, true}, {"other certificate", otherCert, otherKey, false}, {"no certificate", "", "", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}} //nolint:gosec // the server side is under test
			if tc.cert != "" {
				c, err := tls.LoadX509KeyPair(tc.cert, tc.key)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Certificates = []tls.Certificate{c}
			}
			c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			if err == nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = io.ReadFull(c, make([]byte, 2))
				c.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestHybridSettings: role and cluster_* values, and settings a data
// plane does not read, are errors naming the key.
func TestHybridSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string // "" when valid
	}{
		{"traditional by default", nil, ""},
		{"control plane", []string{"KONG_ROLE=control_plane", "KONG_CLUSTER_LISTEN=127.0.0.1:9005"}, ""},
		{"data plane", []string{"KONG_ROLE=data_plane", "KONG_CLUSTER_CONTROL_PLANE=cp.example:8005", "KONG_ADMIN_LISTEN=off"}, ""},
		{"bad role", []string{"KONG_ROLE=leader"}, `role (KONG_ROLE): "leader" is not a role`},
		{"pki", []string{"KONG_CLUSTER_MTLS=pki"}, `cluster_mtls (KONG_CLUSTER_MTLS): "pki" is not supported`},
		{"cluster_ca_cert", []string{"KONG_CLUSTER_CA_CERT=/ca.pem"}, `cluster_ca_cert (KONG_CLUSTER_CA_CERT)`},
		{"cluster_server_name", []string{"KONG_CLUSTER_SERVER_NAME=cp"}, `cluster_server_name (KONG_CLUSTER_SERVER_NAME)`},
		{"cert without key", []string{"KONG_CLUSTER_CERT=/c.pem"}, `cluster_cert (KONG_CLUSTER_CERT): cluster_cert and cluster_cert_key must be set together`},
		{"bad cluster_listen", []string{"KONG_CLUSTER_LISTEN=8005"}, `cluster_listen (KONG_CLUSTER_LISTEN)`},
		{"bad control plane", []string{"KONG_ROLE=data_plane", "KONG_CLUSTER_CONTROL_PLANE=cp"}, `cluster_control_plane (KONG_CLUSTER_CONTROL_PLANE)`},
		{"data plane with declarative_config", []string{"KONG_ROLE=data_plane", "KONG_DECLARATIVE_CONFIG=/kong.yml"}, `declarative_config (KONG_DECLARATIVE_CONFIG): not read when role = data_plane`},
		{"data plane with proxy_listen", []string{"KONG_ROLE=data_plane", "KONG_PROXY_LISTEN=0.0.0.0:9000"}, ""},
		{"data plane with admin_listen", []string{"KONG_ROLE=data_plane", "KONG_ADMIN_LISTEN=127.0.0.1:9001"}, `admin_listen (KONG_ADMIN_LISTEN): not read when role = data_plane`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := LoadSettings(Sources{Env: tc.env, NumCPU: 1})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Role == "" || s.ClusterListen == "" || s.ClusterControlPlane == "" {
					t.Fatalf("settings %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDataPlaneBootstrap: the generated bootstrap is valid and points ADS
// at cluster_control_plane through a static cluster, with the shared
// certificate when cluster_cert is set.
func TestDataPlaneBootstrap(t *testing.T) {
	cert, key := clusterCert(t)
	s, _, err := LoadSettings(Sources{Env: []string{"KONG_ROLE=data_plane", "KONG_CLUSTER_CONTROL_PLANE=cp.example:8005",
		"KONG_CLUSTER_CERT=" + cert, "KONG_CLUSTER_CERT_KEY=" + key}, NumCPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := DataPlaneBootstrap(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := b.GetStaticResources().GetClusters()[0]
	if c.GetType().String() != "STRICT_DNS" || c.GetTransportSocket() == nil ||
		b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != ControlPlaneCluster {
		t.Fatalf("bootstrap %v", b)
	}
	s.ClusterCert = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := DataPlaneBootstrap(s, nil); err == nil || !strings.Contains(err.Error(), "cluster_cert") {
		t.Fatalf("missing cluster_cert: %v", err)
	}
}

// TestHybridCertificates: the control plane ships certificates inline
// (ssl_cert read from its file on the control plane, certificates
// entities from kong.yml), so a data plane without the files serves TLS,
// and POST /config can add a certificate while running.
func TestHybridCertificates(t *testing.T) {
	certA, keyA, poolA := selfSigned(t)
	certB, keyB, poolB := selfSigned(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the upstream\n")
	}))
	t.Cleanup(upstream.Close)
	dir := walkDir(t, upstream.URL)
	proxyAddr := freePort(t)
	cp := startRole(t, "cp-host", "KONG_ROLE=control_plane", "KONG_CLUSTER_LISTEN=127.0.0.1:0", "KONG_WASM=on",
		"KONG_WASM_FILTERS_PATH="+filepath.Join(dir, "filters"),
		"KONG_DECLARATIVE_CONFIG="+filepath.Join(dir, "config", "kong.yml"),
		"KONG_PROXY_LISTEN="+proxyAddr+" ssl http2", "KONG_ADMIN_LISTEN=127.0.0.1:0",
		"KONG_SSL_CERT="+certA, "KONG_SSL_CERT_KEY="+keyA)
	// The data plane cannot read ssl_cert's files: it gets the contents.
	for _, f := range []string{certA, keyA} {
		if err := os.Rename(f, f+".away"); err != nil {
			t.Fatal(err)
		}
	}
	startRole(t, "dp-host", "KONG_ROLE=data_plane", "KONG_CLUSTER_CONTROL_PLANE="+cp.ClusterAddr().String())
	for _, f := range []string{certA, keyA} {
		if err := os.Rename(f+".away", f); err != nil {
			t.Fatal(err)
		}
	}
	get := func(pool *x509.CertPool) (string, error) {
		c := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
		defer c.CloseIdleConnections()
		r, err := c.Get("https://" + proxyAddr + "/")
		if err != nil {
			return "", err
		}
		r.Body.Close()
		return r.Header.Get("X-Greeting"), nil
	}
	if g, err := get(poolA); err != nil || g != "Hello from wasmesh using WebAssembly!" {
		t.Fatalf("ssl_cert: X-Greeting %q, %v", g, err)
	}
	c, _ := os.ReadFile(certB)
	k, _ := os.ReadFile(keyB)
	indent := func(b []byte) string {
		return "      " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n      ")
	}
	cfg := walkConfig(upstream.URL, "over tls") + "certificates:\n- cert: |\n" + indent(c) + "\n  key: |\n" + indent(k) + "\n  snis:\n  - name: localhost\n"
	resp, body := do(t, "POST", "http://"+cp.AdminAddrs()[0].String()+"/config", "application/yaml", []byte(cfg))
	if resp.StatusCode != 201 {
		t.Fatalf("POST /config: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		g, err := get(poolB)
		if err == nil && g == "over tls" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate entity: X-Greeting %q, %v", g, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHybridControlPlaneRestart: a data plane keeps its configuration
// while the control plane is down and takes the configuration of the
// control plane that comes back on the same address.
func TestHybridControlPlaneRestart(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the upstream\n")
	}))
	t.Cleanup(upstream.Close)
	dir := walkDir(t, upstream.URL)
	proxyAddr, clusterAddr := freePort(t), freePort(t)
	cpEnv := func(greet string) []string {
		return []string{"KONG_ROLE=control_plane", "KONG_CLUSTER_LISTEN=" + clusterAddr, "KONG_WASM=on",
			"KONG_WASM_FILTERS_PATH=" + filepath.Join(dir, "filters"),
			"KONG_DECLARATIVE_CONFIG_STRING=" + walkConfig(upstream.URL, greet),
			"KONG_PROXY_LISTEN=" + proxyAddr, "KONG_ADMIN_LISTEN=off"}
	}
	cp := startRole(t, "cp-host", cpEnv("first")...)
	startRole(t, "dp-host", "KONG_ROLE=data_plane", "KONG_CLUSTER_CONTROL_PLANE="+clusterAddr)
	proxy := "http://" + proxyAddr
	eventuallyGreeting(t, proxy, "first")
	cp.Close()
	for range 10 {
		if g := greeting(t, proxy); g != "first" {
			t.Fatalf("control plane down: X-Greeting %q", g)
		}
	}
	startRole(t, "cp-host", cpEnv("second")...)
	eventuallyGreeting(t, proxy, "second")
}

// TestHybridDataPlaneProxyListen: a data plane with its own proxy_listen
// listens there (the control plane translates for it); one without
// listens on the control plane's; POST /config reaches both.
func TestHybridDataPlaneProxyListen(t *testing.T) {
	cp, _, admin, proxy, upstream := hybrid(t, nil, nil)
	own := freePort(t)
	dp2 := startRole(t, "dp2-host", "KONG_ROLE=data_plane", "KONG_CLUSTER_CONTROL_PLANE="+cp.ClusterAddr().String(),
		"KONG_PROXY_LISTEN="+own)
	if a := dp2.ProxyAddr(0); a == nil || a.String() != own {
		t.Fatalf("data plane with proxy_listen %s listens on %v", own, a)
	}
	for _, p := range []string{proxy, "http://" + own} {
		if g := greeting(t, p); g != "Hello from wasmesh using WebAssembly!" {
			t.Fatalf("%s: X-Greeting %q", p, g)
		}
	}
	resp, body := do(t, "POST", admin+"/config", "application/x-yaml", []byte(walkConfig(upstream, "to both")))
	if resp.StatusCode != 201 {
		t.Fatalf("POST /config: %d %s", resp.StatusCode, body)
	}
	eventuallyGreeting(t, proxy, "to both")
	eventuallyGreeting(t, "http://"+own, "to both")
	if got := cp.cp.proxyListens(); len(got) != 1 || got[0] != own {
		t.Fatalf("proxy_listen snapshots %v, want [%s]", got, own)
	}
	// The data plane goes: so does its snapshot.
	dp2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(cp.cp.proxyListens()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("proxy_listen snapshots %v after the data plane left", cp.cp.proxyListens())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHybridProxyListenCannotBeServed: a data plane's proxy_listen the
// control plane cannot translate for (ssl without any certificate) ends
// its stream with the reason, and leaves no snapshot behind.
func TestHybridProxyListenCannotBeServed(t *testing.T) {
	cp, _, _, _, _ := hybrid(t, nil, nil)
	md, _ := structpb.NewStruct(map[string]any{ProxyListenMetadata: "127.0.0.1:9443 ssl"})
	err := cp.cp.ensure(context.Background(), streamID{id: 1000}, &corev3.Node{Id: "dp-ssl", Metadata: md})
	if err == nil || !strings.Contains(err.Error(), `node "dp-ssl" metadata kong_proxy_listen "127.0.0.1:9443 ssl"`) ||
		!strings.Contains(err.Error(), "no listener left") {
		t.Fatalf("err %v", err)
	}
	if got := cp.cp.proxyListens(); len(got) != 0 {
		t.Fatalf("proxy_listen snapshots %v", got)
	}
}
