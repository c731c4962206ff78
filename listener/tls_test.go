package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// tlsSocket is a transport_socket with a DownstreamTlsContext; extra is
// inserted under typed_config, ctx under common_tls_context.
func tlsSocket(certFile, keyFile, extra, ctx string) string {
	return fmt.Sprintf(`
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext%s
      common_tls_context:%s
        tls_certificates:
        - certificate_chain: {filename: %s}
          private_key: {filename: %s}`, extra, ctx, certFile, keyFile)
}

// tlsClient makes HTTPS requests to one address whatever the URL's host.
type tlsClient struct {
	roots *x509.CertPool
	certs []tls.Certificate
	alpn  []string
}

type tlsResult struct {
	body, proto string
	peer        string // the server certificate's common name
}

func (c tlsClient) get(addr, sni string) (tlsResult, error) {
	cfg := &tls.Config{RootCAs: c.roots, NextProtos: c.alpn}
	if len(c.certs) > 0 {
		// Sent whatever CAs the server names.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c.certs[0], nil }
	}
	tr := &http.Transport{
		TLSClientConfig:   cfg,
		ForceAttemptHTTP2: len(c.alpn) > 0 && c.alpn[0] == "h2",
		DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, n, addr)
		},
	}
	defer tr.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(addr)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + net.JoinHostPort(sni, port) + "/")
	if err != nil {
		return tlsResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return tlsResult{body: string(b), proto: resp.Proto, peer: resp.TLS.PeerCertificates[0].Subject.CommonName}, err
}

func TestSNIFilterChainSelection(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	ca := newCA(t, "test-ca")
	files := map[string][2]string{}
	for _, n := range []struct {
		cn  string
		dns []string
	}{
		{"exact", []string{"a.example.com"}},
		{"wildcard", []string{"*.example.com", "*.x.example.com"}},
		{"deeper", []string{"*.b.example.com"}},
		{"default", []string{"other.test", "localhost"}},
	} {
		c, k := ca.issue(t, n.cn, false, n.dns...)
		files[n.cn] = [2]string{writeFile(t, dir, n.cn+".crt", c), writeFile(t, dir, n.cn+".key", k)}
	}
	chain := func(names, cn string) string {
		m := ""
		if names != "" {
			m = fmt.Sprintf("\n  filter_chain_match: {server_names: [%s]}", names)
		}
		return fmt.Sprintf(`
- name: %s%s%s
  filters:%s`, cn, m, tlsSocket(files[cn][0], files[cn][1], "", ""), hcmFilter(cn))
	}
	l := e.start(`
name: sni
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
listener_filters:
- name: envoy.filters.listener.tls_inspector
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
filter_chains:` + chain(`"a.example.com"`, "exact") + chain(`"*.example.com"`, "wildcard") + chain(`"*.b.example.com", "unused.test"`, "deeper") + chain("", "default"))
	cl := tlsClient{roots: ca.pool()}
	for _, tc := range []struct{ sni, want string }{
		{"a.example.com", "exact"},
		{"x.example.com", "wildcard"},
		{"y.x.example.com", "wildcard"},
		{"c.b.example.com", "deeper"},
		{"other.test", "default"},
		{"localhost", "default"},
	} {
		r, err := cl.get(l.Addr().String(), tc.sni)
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		if r.body != tc.want || r.peer != tc.want {
			t.Errorf("SNI %s: body %q cert %q, want %q", tc.sni, r.body, r.peer, tc.want)
		}
	}
	p := StatPrefix(l.Config())
	if n := e.counter(p + "tls_inspector.sni_found"); n != 6 {
		t.Errorf("sni_found = %d", n)
	}
	if n := e.counter(p + "ssl.handshake"); n != 6 {
		t.Errorf("ssl.handshake = %d", n)
	}
}

func TestALPNToConnectionManager(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	ca := newCA(t, "ca")
	c, k := ca.issue(t, "server", false, "localhost")
	cf, kf := writeFile(t, dir, "s.crt", c), writeFile(t, dir, "s.key", k)
	l := e.start(`
name: alpn
address: {socket_address: {address: "::1", port_value: 0}}
filter_chains:
- filters:` + hcmFilter("ok") + tlsSocket(cf, kf, "", `
        alpn_protocols: [h2, http/1.1]`))
	for _, tc := range []struct {
		alpn  []string
		proto string
	}{
		{[]string{"h2", "http/1.1"}, "HTTP/2.0"},
		{[]string{"http/1.1"}, "HTTP/1.1"},
		{nil, "HTTP/1.1"},
	} {
		r, err := tlsClient{roots: ca.pool(), alpn: tc.alpn}.get(l.Addr().String(), "localhost")
		if err != nil {
			t.Fatalf("%v: %v", tc.alpn, err)
		}
		if r.body != "ok" || r.proto != tc.proto {
			t.Errorf("ALPN %v: %q %s, want %s", tc.alpn, r.body, r.proto, tc.proto)
		}
	}
	// A client that offers only protocols the server does not speak still
	// connects (without ALPN), as with Envoy.
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool(), ServerName: "localhost", NextProtos: []string{"spdy/3"}})
	if err != nil {
		t.Fatalf("mismatched ALPN: %v", err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("negotiated %q", p)
	}
	conn.Close()
}

func TestClientCertificateValidation(t *testing.T) {
	e := newEnv(t)
	ca := newCA(t, "ca")
	other := newCA(t, "other-ca")
	sc, sk := ca.issue(t, "server", false, "localhost")
	good, goodKey := ca.issue(t, "client", true, "client.example.com")
	wrongSAN, wrongSANKey := ca.issue(t, "client2", true, "intruder.example.com")
	foreign, foreignKey := other.issue(t, "client3", true, "client.example.com")
	pair := func(c, k []byte) []tls.Certificate {
		p, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{p}
	}
	// The server certificate and the CA come from static secrets.
	e.deps.Secrets = staticSecrets{
		"server": parseSecret(t, fmt.Sprintf(`
name: server
tls_certificate:
  certificate_chain: {inline_string: %q}
  private_key: {inline_string: %q}`, sc, sk)),
		"ca": parseSecret(t, fmt.Sprintf(`
name: ca
validation_context:
  trusted_ca: {inline_string: %q}`, ca.pem)),
	}
	l := e.start(`
name: mtls
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:` + hcmFilter("mtls") + `
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      require_client_certificate: true
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: server}]
        combined_validation_context:
          default_validation_context:
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {exact: client.example.com}
          validation_context_sds_secret_config: {name: ca}
`)
	addr := l.Addr().String()
	p := StatPrefix(l.Config())
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
		stat  string
	}{
		{"valid", pair(good, goodKey), true, "ssl.handshake"},
		{"none", nil, false, "ssl.fail_verify_no_cert"},
		{"wrong SAN", pair(wrongSAN, wrongSANKey), false, "ssl.fail_verify_san"},
		{"other CA", pair(foreign, foreignKey), false, "ssl.fail_verify_error"},
	} {
		before := e.counter(p + tc.stat)
		r, err := tlsClient{roots: ca.pool(), certs: tc.certs}.get(addr, "localhost")
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.ok && r.body != "mtls" {
			t.Errorf("%s: body %q", tc.name, r.body)
		}
		waitFor(t, func() bool { return e.counter(p+tc.stat) > before })
	}
}

func TestTLSAndRawBufferOnOnePort(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	ca := newCA(t, "ca")
	c, k := ca.issue(t, "server", false, "localhost")
	cf, kf := writeFile(t, dir, "s.crt", c), writeFile(t, dir, "s.key", k)
	l := e.start(`
name: mixed
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
listener_filters:
- name: envoy.filters.listener.tls_inspector
filter_chains:
- filter_chain_match: {transport_protocol: tls}
  filters:` + hcmFilter("tls") + tlsSocket(cf, kf, "", "") + `
- filter_chain_match: {transport_protocol: raw_buffer}
  filters:` + directFilter("raw"))
	r, err := tlsClient{roots: ca.pool()}.get(l.Addr().String(), "localhost")
	if err != nil || r.body != "tls" {
		t.Fatalf("TLS: %q %v", r.body, err)
	}
	if got := rawExchange(t, l.Addr().String(), "hello there"); got != "raw" {
		t.Fatalf("raw: %q", got)
	}
	p := StatPrefix(l.Config())
	if e.counter(p+"tls_inspector.tls_found") != 1 || e.counter(p+"tls_inspector.tls_not_found") != 1 {
		t.Errorf("tls_found %d tls_not_found %d", e.counter(p+"tls_inspector.tls_found"), e.counter(p+"tls_inspector.tls_not_found"))
	}
}

func TestRequireSNIAndNoChainMatch(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	ca := newCA(t, "ca")
	c, k := ca.issue(t, "server", false, "localhost")
	cf, kf := writeFile(t, dir, "s.crt", c), writeFile(t, dir, "s.key", k)
	l := e.start(`
name: strict
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
listener_filters:
- name: envoy.filters.listener.tls_inspector
filter_chains:
- filter_chain_match: {transport_protocol: tls}
  filters:` + hcmFilter("tls") + tlsSocket(cf, kf, "\n      require_sni: true", ""))
	// No SNI (an IP address as the name): the handshake fails.
	if _, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool(), ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("handshake without SNI succeeded")
	}
	if _, err := (tlsClient{roots: ca.pool()}).get(l.Addr().String(), "localhost"); err != nil {
		t.Fatal(err)
	}
	// Plain text matches no chain: closed, counted.
	if got := rawExchange(t, l.Addr().String(), "GET / HTTP/1.1\r\n\r\n"); got != "" {
		t.Fatalf("got %q", got)
	}
	waitFor(t, func() bool { return e.counter(StatPrefix(l.Config())+"no_filter_chain_match") == 1 })
}

func TestHTTPInspector(t *testing.T) {
	e := newEnv(t)
	l := e.start(`
name: sniff
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
listener_filters:
- name: envoy.filters.listener.http_inspector
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
filter_chains:
- filter_chain_match: {application_protocols: [http/1.1, http/1.0]}
  filters:` + hcmFilter("h1") + `
- filter_chain_match: {application_protocols: [h2c]}
  filters:` + hcmFilter("h2c") + `
- filters:` + directFilter("not http"))
	url := "http://" + l.Addr().String() + "/"
	if body, _ := get(t, &http.Client{}, url); body != "h1" {
		t.Fatalf("HTTP/1.1: %q", body)
	}
	if body, proto := get(t, h2cClient(), url); body != "h2c" || proto != "HTTP/2.0" {
		t.Fatalf("h2c: %q %s", body, proto)
	}
	if got := rawExchange(t, l.Addr().String(), "hello\n"); got != "not http" {
		t.Fatalf("raw: %q", got)
	}
	if got := rawExchange(t, l.Addr().String(), "GET / HTTP/1.0\r\n\r\n"); !strings.Contains(got, "h1") {
		t.Fatalf("HTTP/1.0: %q", got)
	}
	p := StatPrefix(l.Config())
	for _, s := range []string{"http11_found", "http2_found", "http_not_found", "http10_found"} {
		if n := e.counter(p + "http_inspector." + s); n != 1 {
			t.Errorf("%s = %d", s, n)
		}
	}
}

func TestListenerFiltersTimeout(t *testing.T) {
	for _, cont := range []bool{false, true} {
		t.Run(fmt.Sprint("continue=", cont), func(t *testing.T) {
			e := newEnv(t)
			l := e.start(fmt.Sprintf(`
name: slow
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
listener_filters_timeout: 0.05s
continue_on_listener_filters_timeout: %v
listener_filters:
- name: envoy.filters.listener.tls_inspector
filter_chains:
- filters:`+directFilter("served"), cont))
			// A server-first protocol: the client sends nothing.
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			want := ""
			if cont {
				want = "served"
			}
			if string(b) != want {
				t.Fatalf("got %q, want %q", b, want)
			}
			if !cont {
				waitFor(t, func() bool { return e.counter(StatPrefix(l.Config())+"downstream_pre_cx_timeout") == 1 })
			}
		})
	}
}

func parseSecret(t *testing.T, y string) *tlsv3.Secret {
	t.Helper()
	s := &tlsv3.Secret{}
	if err := parseYAML(y, s); err != nil {
		t.Fatal(err)
	}
	return s
}
