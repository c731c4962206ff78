package tlsctx

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func TestCompileParams(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tp      *tlsv3.TlsParameters
		min     uint16
		max     uint16
		suites  []uint16
		wantErr string
	}{
		{"defaults", &tlsv3.TlsParameters{}, tls.VersionTLS12, tls.VersionTLS13, nil, ""},
		{"versions", &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}, tls.VersionTLS13, tls.VersionTLS13, nil, ""},
		{"equal-preference group", &tlsv3.TlsParameters{CipherSuites: []string{"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", "ECDHE-RSA-AES256-GCM-SHA384"}},
			tls.VersionTLS12, tls.VersionTLS13,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}, ""},
		{"TLS 1.3 suite", &tlsv3.TlsParameters{CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}}, 0, 0, nil, `p.cipher_suites[0]: unknown or unsupported cipher suite "TLS_AES_128_GCM_SHA256"`},
		{"min above max", &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3, TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2}, 0, 0, nil, "above"},
		{"curve", &tlsv3.TlsParameters{EcdhCurves: []string{"X448"}}, 0, 0, nil, `p.ecdh_curves[0]: unsupported curve "X448"`},
		{"signature algorithms", &tlsv3.TlsParameters{SignatureAlgorithms: []string{"ecdsa_secp256r1_sha256"}}, 0, 0, nil, "p.signature_algorithms: not implemented by wasmesh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
			errs := compileParams("p", tc.tp, cfg)
			if tc.wantErr != "" {
				if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.wantErr) {
					t.Fatalf("errors %v, want %q", errs, tc.wantErr)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if cfg.MinVersion != tc.min || cfg.MaxVersion != tc.max {
				t.Fatalf("versions %x-%x", cfg.MinVersion, cfg.MaxVersion)
			}
			if len(tc.suites) > 0 && !equal(cfg.CipherSuites, tc.suites) {
				t.Fatalf("suites %v", cfg.CipherSuites)
			}
		})
	}
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSANMatching(t *testing.T) {
	u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/web")
	cert := &x509.Certificate{DNSNames: []string{"*.example.com"}, URIs: []*url.URL{u}, EmailAddresses: []string{"ops@example.com"}}
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	for _, tc := range []struct {
		name string
		typ  tlsv3.SubjectAltNameMatcher_SanType
		m    *matcherv3.StringMatcher
		want bool
	}{
		{"wildcard SAN covers one label", tlsv3.SubjectAltNameMatcher_DNS, exact("api.example.com"), true},
		{"wildcard SAN not two labels", tlsv3.SubjectAltNameMatcher_DNS, exact("a.b.example.com"), false},
		{"literal wildcard", tlsv3.SubjectAltNameMatcher_DNS, exact("*.example.com"), true},
		{"URI prefix", tlsv3.SubjectAltNameMatcher_URI, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://cluster.local/"}}, true},
		{"URI regex", tlsv3.SubjectAltNameMatcher_URI, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "spiffe://.*/sa/db"}}}, false},
		{"email ignore case", tlsv3.SubjectAltNameMatcher_EMAIL, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "OPS@example.com"}, IgnoreCase: true}, true},
		{"type matters", tlsv3.SubjectAltNameMatcher_URI, exact("ops@example.com"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := compileSAN("m", &tlsv3.SubjectAltNameMatcher{SanType: tc.typ, Matcher: tc.m})
			if err != nil {
				t.Fatal(err)
			}
			if got := matchSANs([]sanMatcher{sm}, cert); got != tc.want {
				t.Fatalf("match = %v", got)
			}
		})
	}
}
