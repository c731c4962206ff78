package tlsctx

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/stats"
)

// TypeURL is the DownstreamTlsContext type URL of a transport_socket.
const TypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

// SecretLookup finds static secrets (bootstrap static_resources.secrets)
// by name; the server implements it.
type SecretLookup interface {
	Secret(name string) (*tlsv3.Secret, bool)
}

// Stats are Envoy's ssl.* counters of the context's owner
// (listener.<address>.ssl.*). Nil counters are skipped.
type Stats struct {
	Handshake          *stats.Counter
	ConnectionError    *stats.Counter
	NoCertificate      *stats.Counter
	FailVerifyNoCert   *stats.Counter
	FailVerifyError    *stats.Counter
	FailVerifySAN      *stats.Counter
	FailVerifyCertHash *stats.Counter
}

// NewStats returns the counters under sc ("listener.<address>.ssl.").
func NewStats(sc *stats.Scope) *Stats {
	return &Stats{
		Handshake:          sc.Counter("handshake"),
		ConnectionError:    sc.Counter("connection_error"),
		NoCertificate:      sc.Counter("no_certificate"),
		FailVerifyNoCert:   sc.Counter("fail_verify_no_cert"),
		FailVerifyError:    sc.Counter("fail_verify_error"),
		FailVerifySAN:      sc.Counter("fail_verify_san"),
		FailVerifyCertHash: sc.Counter("fail_verify_cert_hash"),
	}
}

func inc(c *stats.Counter) {
	if c != nil {
		c.Inc()
	}
}

// CertSource is one loaded certificate and where it came from (a file
// name, or "<inline>").
type CertSource struct {
	Path string
	Cert *x509.Certificate
}

// Server is a compiled DownstreamTlsContext.
type Server struct {
	// Config is the handshake configuration; use it as is (it selects
	// ALPN leniently and enforces require_sni itself).
	Config *tls.Config
	// CA are the trusted CA certificates, Chain the leaf of each
	// tls_certificate (for the admin's /certs).
	CA, Chain []CertSource

	alpn       []string
	requireSNI bool
	stats      *Stats
}

// Compile compiles a DownstreamTlsContext. Errors name the field under
// the given path prefix.
func Compile(path string, dtc *tlsv3.DownstreamTlsContext, secrets SecretLookup, st *Stats) (*Server, error) {
	if err := dtc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st == nil {
		st = &Stats{}
	}
	var errs []error
	errs = append(errs, protocheck.Only(path, dtc, "common_tls_context", "require_client_certificate", "require_sni",
		"disable_stateless_session_resumption", "disable_stateful_session_resumption", "full_scan_certs_on_sni_mismatch",
		"prefer_client_ciphers", "ocsp_staple_policy")...)
	if dtc.GetOcspStaplePolicy() != tlsv3.DownstreamTlsContext_LENIENT_STAPLING {
		errs = append(errs, fmt.Errorf("%s.ocsp_staple_policy: only LENIENT_STAPLING is implemented (no OCSP stapling)", path))
	}
	s := &Server{requireSNI: dtc.GetRequireSni().GetValue(), stats: st}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	ctc := dtc.GetCommonTlsContext()
	cp := path + ".common_tls_context"
	if ctc == nil {
		errs = append(errs, fmt.Errorf("%s: missing (a server needs a certificate)", cp))
		return nil, errors.Join(errs...)
	}
	errs = append(errs, protocheck.Only(cp, ctc, "tls_params", "tls_certificates", "tls_certificate_sds_secret_configs",
		"alpn_protocols", "validation_context", "validation_context_sds_secret_config", "combined_validation_context")...)
	if tp := ctc.GetTlsParams(); tp != nil {
		errs = append(errs, compileParams(cp+".tls_params", tp, cfg)...)
	}
	for i, tc := range ctc.GetTlsCertificates() {
		p := fmt.Sprintf("%s.tls_certificates[%d]", cp, i)
		cert, src, err := loadCertificate(p, tc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		s.Chain = append(s.Chain, src)
	}
	for i, sc := range ctc.GetTlsCertificateSdsSecretConfigs() {
		p := fmt.Sprintf("%s.tls_certificate_sds_secret_configs[%d]", cp, i)
		sec, err := lookup(p, sc, secrets)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tc := sec.GetTlsCertificate()
		if tc == nil {
			errs = append(errs, fmt.Errorf("%s: secret %q is not a tls_certificate", p, sc.GetName()))
			continue
		}
		cert, src, err := loadCertificate(fmt.Sprintf("secret %q tls_certificate", sc.GetName()), tc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		s.Chain = append(s.Chain, src)
	}
	if len(cfg.Certificates) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no tls_certificates or tls_certificate_sds_secret_configs (a server needs a certificate)", cp))
	}
	s.alpn = ctc.GetAlpnProtocols()
	cfg.NextProtos = s.alpn

	// Validation context: inline, by secret, or combined.
	var vc *tlsv3.CertificateValidationContext
	vp := cp + ".validation_context"
	switch {
	case ctc.GetValidationContext() != nil:
		vc = ctc.GetValidationContext()
	case ctc.GetValidationContextSdsSecretConfig() != nil:
		vp = cp + ".validation_context_sds_secret_config"
		sec, err := lookup(vp, ctc.GetValidationContextSdsSecretConfig(), secrets)
		if err != nil {
			errs = append(errs, err)
		} else if vc = sec.GetValidationContext(); vc == nil {
			errs = append(errs, fmt.Errorf("%s: secret %q is not a validation_context", vp, sec.GetName()))
		}
	case ctc.GetCombinedValidationContext() != nil:
		cvc := ctc.GetCombinedValidationContext()
		vp = cp + ".combined_validation_context"
		errs = append(errs, protocheck.Only(vp, cvc, "default_validation_context", "validation_context_sds_secret_config")...)
		sec, err := lookup(vp+".validation_context_sds_secret_config", cvc.GetValidationContextSdsSecretConfig(), secrets)
		if err != nil {
			errs = append(errs, err)
		} else if sv := sec.GetValidationContext(); sv == nil {
			errs = append(errs, fmt.Errorf("%s.validation_context_sds_secret_config: secret %q is not a validation_context", vp, sec.GetName()))
		} else {
			// Envoy merges the dynamic context over the default one.
			merged := cvc.GetDefaultValidationContext()
			if merged == nil {
				merged = &tlsv3.CertificateValidationContext{}
			}
			merged = cloneVC(merged)
			mergeVC(merged, sv)
			vc = merged
		}
	}
	require := dtc.GetRequireClientCertificate().GetValue()
	if vc != nil {
		v, verrs := compileValidation(vp, vc)
		errs = append(errs, verrs...)
		if v != nil {
			s.CA = v.caSources
			v.apply(cfg, require, st)
		}
	} else if require {
		errs = append(errs, fmt.Errorf("%s.require_client_certificate: needs a validation context to verify the certificate against", path))
	}
	if dtc.GetDisableStatelessSessionResumption() {
		cfg.SessionTicketsDisabled = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.Config = cfg
	base := cfg
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if s.requireSNI && hello.ServerName == "" {
			return nil, errors.New("tls: require_sni: the client sent no server name")
		}
		if len(s.alpn) > 0 && len(hello.SupportedProtos) > 0 && !overlaps(s.alpn, hello.SupportedProtos) {
			// Envoy (BoringSSL) goes on without ALPN when nothing
			// overlaps; Go would fail the handshake.
			c := base.Clone()
			c.GetConfigForClient = nil
			c.NextProtos = nil
			return c, nil
		}
		return nil, nil
	}
	return s, nil
}

// CountHandshake records a handshake's outcome in the ssl.* counters.
func (s *Server) CountHandshake(err error, cs tls.ConnectionState) {
	if err != nil {
		inc(s.stats.ConnectionError)
		return
	}
	inc(s.stats.Handshake)
	if len(cs.PeerCertificates) == 0 {
		inc(s.stats.NoCertificate)
	}
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func lookup(path string, sc *tlsv3.SdsSecretConfig, secrets SecretLookup) (*tlsv3.Secret, error) {
	if sc.GetSdsConfig() != nil {
		return nil, fmt.Errorf("%s.sds_config: dynamic SDS is not supported yet; use a static secret by name", path)
	}
	if secrets == nil {
		return nil, fmt.Errorf("%s: secret %q: no static secrets configured", path, sc.GetName())
	}
	sec, ok := secrets.Secret(sc.GetName())
	if !ok {
		return nil, fmt.Errorf("%s: secret %q not found in static_resources.secrets", path, sc.GetName())
	}
	return sec, nil
}

// ReadDataSource reads a DataSource (filename, inline_bytes,
// inline_string or environment_variable) and names where it came from.
func ReadDataSource(path string, ds *corev3.DataSource) ([]byte, string, error) {
	if ds == nil {
		return nil, "", fmt.Errorf("%s: missing", path)
	}
	if ds.GetWatchedDirectory() != nil {
		return nil, "", fmt.Errorf("%s.watched_directory: not implemented by wasmesh", path)
	}
	switch {
	case ds.GetFilename() != "":
		b, err := os.ReadFile(ds.GetFilename())
		if err != nil {
			return nil, "", fmt.Errorf("%s.filename: %w", path, err)
		}
		return b, ds.GetFilename(), nil
	case ds.GetInlineBytes() != nil:
		return ds.GetInlineBytes(), "<inline>", nil
	case ds.GetInlineString() != "":
		return []byte(ds.GetInlineString()), "<inline>", nil
	case ds.GetEnvironmentVariable() != "":
		v, ok := os.LookupEnv(ds.GetEnvironmentVariable())
		if !ok {
			return nil, "", fmt.Errorf("%s.environment_variable: %q is not set", path, ds.GetEnvironmentVariable())
		}
		return []byte(v), "<inline>", nil
	}
	return nil, "", fmt.Errorf("%s: empty data source", path)
}

func loadCertificate(path string, tc *tlsv3.TlsCertificate) (tls.Certificate, CertSource, error) {
	if errs := protocheck.Only(path, tc, "certificate_chain", "private_key"); len(errs) > 0 {
		return tls.Certificate{}, CertSource{}, errors.Join(errs...)
	}
	chain, src, err := ReadDataSource(path+".certificate_chain", tc.GetCertificateChain())
	if err != nil {
		return tls.Certificate{}, CertSource{}, err
	}
	key, _, err := ReadDataSource(path+".private_key", tc.GetPrivateKey())
	if err != nil {
		return tls.Certificate{}, CertSource{}, err
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return tls.Certificate{}, CertSource{}, fmt.Errorf("%s: %w", path, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, CertSource{}, fmt.Errorf("%s.certificate_chain: %w", path, err)
	}
	cert.Leaf = leaf
	return cert, CertSource{Path: src, Cert: leaf}, nil
}

// tlsVersions maps Envoy's TlsProtocol to Go's versions.
var tlsVersions = map[tlsv3.TlsParameters_TlsProtocol]uint16{
	tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
	tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11,
	tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12,
	tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13,
}

// cipherSuites maps OpenSSL/BoringSSL names (Envoy's) to Go's suites.
var cipherSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

var curves = map[string]tls.CurveID{
	"X25519":         tls.X25519,
	"P-256":          tls.CurveP256,
	"P-384":          tls.CurveP384,
	"P-521":          tls.CurveP521,
	"X25519MLKEM768": tls.X25519MLKEM768,
}

func compileParams(path string, tp *tlsv3.TlsParameters, cfg *tls.Config) []error {
	errs := protocheck.Only(path, tp, "tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites", "ecdh_curves")
	if v := tp.GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO {
		cfg.MinVersion = tlsVersions[v]
	}
	if v := tp.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO {
		cfg.MaxVersion = tlsVersions[v]
	}
	if cfg.MinVersion > cfg.MaxVersion {
		errs = append(errs, fmt.Errorf("%s: tls_minimum_protocol_version is above tls_maximum_protocol_version", path))
	}
	for i, name := range tp.GetCipherSuites() {
		// "[A|B]" is an equal-preference group; Go orders suites itself.
		for _, n := range strings.Split(strings.Trim(name, "[]"), "|") {
			id, ok := cipherSuites[strings.TrimSpace(n)]
			if !ok {
				errs = append(errs, fmt.Errorf("%s.cipher_suites[%d]: unknown or unsupported cipher suite %q (TLS 1.3 suites are not configurable)", path, i, n))
				continue
			}
			cfg.CipherSuites = append(cfg.CipherSuites, id)
		}
	}
	for i, name := range tp.GetEcdhCurves() {
		id, ok := curves[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s.ecdh_curves[%d]: unsupported curve %q", path, i, name))
			continue
		}
		cfg.CurvePreferences = append(cfg.CurvePreferences, id)
	}
	return errs
}

// validation is a compiled CertificateValidationContext.
type validation struct {
	roots     *x509.CertPool
	caSources []CertSource
	untrusted bool
	sans      []sanMatcher
	hashes    [][]byte
	spkis     [][]byte
}

func cloneVC(v *tlsv3.CertificateValidationContext) *tlsv3.CertificateValidationContext {
	out := &tlsv3.CertificateValidationContext{}
	mergeVC(out, v)
	return out
}

// mergeVC sets in dst every field set in src (repeated fields append), the
// way Envoy merges a combined validation context.
func mergeVC(dst, src *tlsv3.CertificateValidationContext) {
	if src.GetTrustedCa() != nil {
		dst.TrustedCa = src.GetTrustedCa()
	}
	dst.MatchTypedSubjectAltNames = append(dst.MatchTypedSubjectAltNames, src.GetMatchTypedSubjectAltNames()...)
	dst.MatchSubjectAltNames = append(dst.MatchSubjectAltNames, src.GetMatchSubjectAltNames()...)
	dst.VerifyCertificateHash = append(dst.VerifyCertificateHash, src.GetVerifyCertificateHash()...)
	dst.VerifyCertificateSpki = append(dst.VerifyCertificateSpki, src.GetVerifyCertificateSpki()...)
	if src.GetTrustChainVerification() != tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN {
		dst.TrustChainVerification = src.GetTrustChainVerification()
	}
	if src.GetCrl() != nil {
		dst.Crl = src.GetCrl()
	}
	if src.GetAllowExpiredCertificate() {
		dst.AllowExpiredCertificate = true
	}
}

func compileValidation(path string, vc *tlsv3.CertificateValidationContext) (*validation, []error) {
	errs := protocheck.Only(path, vc, "trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names",
		"verify_certificate_hash", "verify_certificate_spki", "trust_chain_verification")
	v := &validation{untrusted: vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED}
	if ca := vc.GetTrustedCa(); ca != nil {
		b, src, err := ReadDataSource(path+".trusted_ca", ca)
		if err != nil {
			errs = append(errs, err)
		} else {
			v.roots = x509.NewCertPool()
			for rest := b; ; {
				var blk *pem.Block
				blk, rest = pem.Decode(rest)
				if blk == nil {
					break
				}
				if blk.Type != "CERTIFICATE" {
					continue
				}
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s.trusted_ca: %w", path, err))
					continue
				}
				v.roots.AddCert(c)
				v.caSources = append(v.caSources, CertSource{Path: src, Cert: c})
			}
			if len(v.caSources) == 0 {
				errs = append(errs, fmt.Errorf("%s.trusted_ca: no PEM certificate found", path))
			}
		}
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		p := fmt.Sprintf("%s.match_typed_subject_alt_names[%d]", path, i)
		sm, err := compileSAN(p, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v.sans = append(v.sans, sm)
	}
	for i, m := range vc.GetMatchSubjectAltNames() {
		p := fmt.Sprintf("%s.match_subject_alt_names[%d]", path, i)
		str, err := compileStringMatcher(p, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v.sans = append(v.sans, sanMatcher{kind: sanAny, m: str})
	}
	for i, h := range vc.GetVerifyCertificateHash() {
		b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s.verify_certificate_hash[%d]: not a hex SHA-256 fingerprint: %q", path, i, h))
			continue
		}
		v.hashes = append(v.hashes, b)
	}
	for i, h := range vc.GetVerifyCertificateSpki() {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s.verify_certificate_spki[%d]: not a base64 SHA-256 SPKI hash: %q", path, i, h))
			continue
		}
		v.spkis = append(v.spkis, b)
	}
	if v.roots == nil && len(v.hashes) == 0 && len(v.spkis) == 0 && !v.untrusted {
		errs = append(errs, fmt.Errorf("%s: needs trusted_ca, verify_certificate_hash or verify_certificate_spki", path))
	}
	return v, errs
}

// apply sets how the handshake asks for and checks client certificates.
func (v *validation) apply(cfg *tls.Config, require bool, st *Stats) {
	// The certificate is requested, and its absence judged below, so the
	// failure is counted like every other verification failure.
	cfg.ClientAuth = tls.RequestClientCert
	if v.roots != nil {
		cfg.ClientCAs = v.roots
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			if require {
				inc(st.FailVerifyNoCert)
				return errors.New("tls: client certificate required")
			}
			return nil
		}
		leaf := cs.PeerCertificates[0]
		if v.roots != nil && !v.untrusted {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				inc(st.FailVerifyError)
				return fmt.Errorf("tls: client certificate: %w", err)
			}
		}
		if len(v.hashes) > 0 || len(v.spkis) > 0 {
			sum := sha256.Sum256(leaf.Raw)
			spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
			ok := false
			for _, h := range v.hashes {
				ok = ok || string(h) == string(sum[:])
			}
			for _, h := range v.spkis {
				ok = ok || string(h) == string(spki[:])
			}
			if !ok {
				inc(st.FailVerifyCertHash)
				return errors.New("tls: client certificate hash or SPKI does not match")
			}
		}
		if len(v.sans) > 0 && !matchSANs(v.sans, leaf) {
			inc(st.FailVerifySAN)
			return errors.New("tls: client certificate subject alternative names do not match")
		}
		return nil
	}
}
