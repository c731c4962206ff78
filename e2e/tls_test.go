package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
)

// tlsFixture is the CAs and certificates of tls.yaml.
type tlsFixture struct {
	p                     *proxy
	serverCA, clientCA    *testCA
	clientOK, clientOther *leaf
	upstream              *upstream
}

func startTLSProxy(t *testing.T) *tlsFixture {
	dir := t.TempDir()
	f := &tlsFixture{}
	f.serverCA = newCA(t, dir, "server-ca")
	f.clientCA = newCA(t, dir, "client-ca")
	otherCA := newCA(t, dir, "other-ca")
	upCA := newCA(t, dir, "upstream-ca")
	a := f.serverCA.issue(t, "a", false, "a.example.com")
	b := f.serverCA.issue(t, "b", false, "b.example.com")
	f.clientOK = f.clientCA.issue(t, "client", true)
	f.clientOther = otherCA.issue(t, "intruder", true)
	f.upstream = startTLSUpstream(t, "tls-up", upCA.issue(t, "upstream", false, "upstream.test").Pair, nil)
	f.p = startProxy(t, "tls.yaml", vars{
		"CertA": a.CertPath, "KeyA": a.KeyPath, "CertB": b.CertPath, "KeyB": b.KeyPath,
		"ClientCA": f.clientCA.Path, "UpstreamCA": upCA.Path, "Up": f.upstream.Port,
	})
	return f
}

// TestTLSSNIChainSelection connects with SNI a.example.com and
// b.example.com: each gets its filter chain's certificate (verified by the
// client against the CA, for that name) and its chain's routes; an
// unknown name matches no chain.
func TestTLSSNIChainSelection(t *testing.T) {
	t.Parallel()
	f := startTLSProxy(t)
	for _, tc := range []struct {
		sni, wantCN, path, wantBody string
	}{
		{"a.example.com", "a", "/", "chain a"},
		{"b.example.com", "b", "/", `"sni":"upstream.test"`},
	} {
		t.Run(tc.sni, func(t *testing.T) {
			for _, h2 := range []bool{false, true} {
				c := tlsClient(&tls.Config{RootCAs: f.serverCA.pool(), ServerName: tc.sni}, h2)
				resp, body := get(t, c, "https://"+f.p.addr("sni")+tc.path)
				if resp.StatusCode != 200 || !strings.Contains(body, tc.wantBody) {
					t.Fatalf("h2=%v: status %d body %q", h2, resp.StatusCode, body)
				}
				if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != tc.wantCN {
					t.Errorf("certificate CN %q, want %q", cn, tc.wantCN)
				}
			}
		})
	}
	t.Run("unknown-sni", func(t *testing.T) {
		conn, err := tls.Dial("tcp", f.p.addr("sni"), &tls.Config{RootCAs: f.serverCA.pool(), ServerName: "c.example.com"})
		if err == nil {
			conn.Close()
			t.Fatal("handshake with an SNI no chain matches succeeded")
		}
	})
	t.Run("name-mismatch", func(t *testing.T) {
		// Chain a's certificate does not cover b's name: a client asking
		// for a.example.com but verifying b.example.com must fail, proving
		// the chain's own certificate is served.
		cfg := &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: f.serverCA.pool(), DNSName: "b.example.com"})
				return err
			}}
		conn, err := tls.Dial("tcp", f.p.addr("sni"), cfg)
		if err == nil {
			conn.Close()
			t.Fatal("chain a served a certificate valid for b.example.com")
		}
	})
}

// TestTLSClientCertificate: require_client_certificate accepts a client
// certificate from the trusted CA and rejects none or another CA's.
func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	f := startTLSProxy(t)
	base := tls.Config{RootCAs: f.serverCA.pool(), ServerName: "a.example.com"}
	ok := base.Clone()
	ok.Certificates = []tls.Certificate{f.clientOK.Pair}
	resp, body := get(t, tlsClient(ok, true), "https://"+f.p.addr("mtls")+"/")
	if resp.StatusCode != 200 || body != "client verified" {
		t.Fatalf("trusted client: %d %q", resp.StatusCode, body)
	}
	for name, cfg := range map[string]*tls.Config{
		"no-certificate": base.Clone(),
		"untrusted-ca": func() *tls.Config {
			c := base.Clone()
			c.Certificates = []tls.Certificate{f.clientOther.Pair}
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tlsClient(cfg, false).Get("https://" + f.p.addr("mtls") + "/")
			if err == nil {
				t.Fatal("request succeeded without a trusted client certificate")
			}
		})
	}
}

// TestUpstreamTLS: a cluster's UpstreamTlsContext sends its SNI and
// verifies the upstream against trusted_ca; a cluster trusting another CA
// fails the connection (503, UF).
func TestUpstreamTLS(t *testing.T) {
	t.Parallel()
	f := startTLSProxy(t)
	c := tlsClient(&tls.Config{RootCAs: f.serverCA.pool(), ServerName: "b.example.com"}, false)
	resp, body := get(t, c, "https://"+f.p.addr("sni")+"/x")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	if e := parseEcho(t, body); e.SNI != "upstream.test" {
		t.Errorf("upstream saw SNI %q", e.SNI)
	}
	resp, body = get(t, c, "https://"+f.p.addr("sni")+"/wrong-ca")
	if resp.StatusCode != 503 {
		t.Fatalf("wrong CA: status %d %q", resp.StatusCode, body)
	}
}
