package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestFilterChainMatch selects filter chains by transport protocol,
// server name, application protocol (http_inspector) and source prefix,
// with one TLS certificate from a static secret, and serves a listener on
// IPv6 loopback when the machine has one.
func TestFilterChainMatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t, dir, "match-ca")
	secret := ca.issue(t, "secret", false, "secret.example.com")
	file := ca.issue(t, "file", false, "file.example.com")
	v6 := false
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l.Close()
		v6 = true
	}
	p := startProxy(t, "listener.yaml", vars{
		"SecretCert": secret.CertPath, "SecretKey": secret.KeyPath,
		"FileCert": file.CertPath, "FileKey": file.KeyPath, "V6": v6,
	})
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Protocols: protocols(true, false, false),
			DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
				return d.DialContext(ctx, n, a)
			},
		}}
	}
	for _, tc := range []struct {
		name, scheme string
		client       *http.Client
		want         string
	}{
		{"tls-sni-static-secret", "https", tlsClient(&tls.Config{RootCAs: ca.pool(), ServerName: "secret.example.com"}, false), "tls via static secret"},
		{"tls-other-sni", "https", tlsClient(&tls.Config{RootCAs: ca.pool(), ServerName: "file.example.com"}, true), "tls via file"},
		{"h2c-application-protocol", "http", h2cClient(), "h2c chain"},
		{"source-prefix", "http", from("127.0.0.2"), "source 127.0.0.2"},
		{"default", "http", h1Client(), "default chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "source-prefix" {
				if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
					t.Skipf("127.0.0.2 is not a local address here: %v", err)
				} else {
					l.Close()
				}
			}
			resp, body := get(t, tc.client, tc.scheme+"://"+p.addr("match")+"/")
			if resp.StatusCode != 200 || body != tc.want {
				t.Fatalf("%d %q, want %q", resp.StatusCode, body, tc.want)
			}
		})
	}
	t.Run("ipv6", func(t *testing.T) {
		if !v6 {
			t.Skip("no IPv6 loopback on this machine")
		}
		resp, body := get(t, h1Client(), "http://"+p.addr("v6")+"/")
		if resp.StatusCode != 200 || body != "over ipv6" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}
