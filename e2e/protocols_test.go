package e2e

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
)

// TestProtocolMatrix sends requests over HTTP/1.1, h2c (prior knowledge)
// and TLS with ALPN h2 and http/1.1 to an HTTP/1.1 cluster and to an
// HTTP/2 cluster (typed_extension_protocol_options explicit http2), and
// checks the protocol each side saw.
func TestProtocolMatrix(t *testing.T) {
	t.Parallel()
	h1 := startUpstream(t, "h1", nil)
	h2 := startUpstream(t, "h2", nil, withH2C())
	dir := t.TempDir()
	ca := newCA(t, dir, "proto-ca")
	srv := ca.issue(t, "proxy", false, "proxy.test")
	p := startProxy(t, "protocols.yaml", vars{"H1": h1.Port, "H2": h2.Port, "Cert": srv.CertPath, "Key": srv.KeyPath})
	tlsCfg := &tls.Config{RootCAs: ca.pool(), ServerName: "proxy.test"}

	downstream := []struct {
		name, listener, scheme string
		client                 *http.Client
		wantProto              string
	}{
		{"http1", "plain", "http", h1Client(), "HTTP/1.1"},
		{"h2c", "plain", "http", h2cClient(), "HTTP/2.0"},
		{"tls-http1", "tls", "https", tlsClient(tlsCfg, false), "HTTP/1.1"},
		{"tls-h2", "tls", "https", tlsClient(tlsCfg, true), "HTTP/2.0"},
	}
	upstreams := []struct {
		prefix, wantProto, upstream string
	}{
		{"/h1/", "HTTP/1.1", "h1"},
		{"/h2/", "HTTP/2.0", "h2"},
		{"/h2l/", "HTTP/2.0", "h2"},
	}
	for _, d := range downstream {
		for _, u := range upstreams {
			t.Run(d.name+strings.TrimSuffix(u.prefix, "/"), func(t *testing.T) {
				resp, body := do(t, d.client, mustReq(t, "POST", d.scheme+"://"+p.addr(d.listener)+u.prefix+"x?q=1", stringsReader("payload")))
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if resp.Proto != d.wantProto {
					t.Errorf("downstream protocol %s, want %s", resp.Proto, d.wantProto)
				}
				e := parseEcho(t, body)
				if e.Proto != u.wantProto || e.Upstream != u.upstream {
					t.Errorf("upstream %s saw %s, want %s on %s", e.Upstream, e.Proto, u.wantProto, u.upstream)
				}
				if e.Path != u.prefix+"x?q=1" || e.Method != "POST" || e.Body != "payload" {
					t.Errorf("upstream got %s %s body %q", e.Method, e.Path, e.Body)
				}
				if resp.Header.Get("X-Upstream") != u.upstream {
					t.Errorf("response header x-upstream %q", resp.Header.Get("X-Upstream"))
				}
			})
		}
	}
}
