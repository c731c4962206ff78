package tlsctx

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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

// SDSLookup is implemented by a SecretLookup that also serves secrets
// over SDS (an SdsSecretConfig with sds_config). SDSSecret checks the
// config source and returns a reader of the secret's current value: nil
// until the first one arrives, a new pointer for every accepted update.
// The reader must be cheap and safe for concurrent use: it is called at
// every handshake.
type SDSLookup interface {
	SDSSecret(name string, source *corev3.ConfigSource) (func() *tlsv3.Secret, error)
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
	// Config is the handshake configuration; use it as is: its
	// GetConfigForClient enforces require_sni, selects ALPN leniently and
	// serves the current certificates and validation context of SDS
	// secrets (a rotated secret takes effect at the next handshake).
	Config *tls.Config
	// CA are the trusted CA certificates, Chain the leaf of each
	// tls_certificate, as compiled; Certificates has the current ones.
	CA, Chain []CertSource

	b     *builder
	state atomic.Pointer[state]
	mu    sync.Mutex // serialises rebuilds after a secret rotation
}

// Compile compiles a DownstreamTlsContext. Errors name the field under
// the given path prefix. Secrets with an sds_config are read through
// secrets' SDSLookup; one that has not arrived yet leaves its certificate
// (or validation context) out until it does: the xDS client warms the
// listener meanwhile.
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
	b := &builder{require: dtc.GetRequireClientCertificate().GetValue(), requireSNI: dtc.GetRequireSni().GetValue(), stats: st}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	b.base = cfg
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
		b.certs = append(b.certs, certSlot{path: p, cert: cert, src: src})
	}
	for i, sc := range ctc.GetTlsCertificateSdsSecretConfigs() {
		p := fmt.Sprintf("%s.tls_certificate_sds_secret_configs[%d]", cp, i)
		sec, load, err := lookup(p, sc, secrets)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if load != nil {
			b.certs = append(b.certs, certSlot{path: p, name: sc.GetName(), load: load})
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
		b.certs = append(b.certs, certSlot{path: p, cert: cert, src: src})
	}
	if len(ctc.GetTlsCertificates())+len(ctc.GetTlsCertificateSdsSecretConfigs()) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no tls_certificates or tls_certificate_sds_secret_configs (a server needs a certificate)", cp))
	}
	b.alpn = ctc.GetAlpnProtocols()
	cfg.NextProtos = b.alpn

	// Validation context: inline, by secret, or combined.
	vs := &b.vc
	switch {
	case ctc.GetValidationContext() != nil:
		vs.set, vs.path, vs.inline = true, cp+".validation_context", ctc.GetValidationContext()
	case ctc.GetValidationContextSdsSecretConfig() != nil:
		vs.set, vs.path = true, cp+".validation_context_sds_secret_config"
		sc := ctc.GetValidationContextSdsSecretConfig()
		sec, load, err := lookup(vs.path, sc, secrets)
		switch {
		case err != nil:
			errs = append(errs, err)
		case load != nil:
			vs.name, vs.load = sc.GetName(), load
		default:
			if vs.inline = sec.GetValidationContext(); vs.inline == nil {
				errs = append(errs, fmt.Errorf("%s: secret %q is not a validation_context", vs.path, sec.GetName()))
			}
		}
	case ctc.GetCombinedValidationContext() != nil:
		cvc := ctc.GetCombinedValidationContext()
		vs.set, vs.combined, vs.path = true, true, cp+".combined_validation_context"
		errs = append(errs, protocheck.Only(vs.path, cvc, "default_validation_context", "validation_context_sds_secret_config")...)
		vs.inline = cvc.GetDefaultValidationContext()
		if vs.inline == nil {
			vs.inline = &tlsv3.CertificateValidationContext{}
		}
		sc := cvc.GetValidationContextSdsSecretConfig()
		sec, load, err := lookup(vs.path+".validation_context_sds_secret_config", sc, secrets)
		switch {
		case err != nil:
			errs = append(errs, err)
		case load != nil:
			vs.name, vs.load = sc.GetName(), load
		default:
			if sv := sec.GetValidationContext(); sv == nil {
				errs = append(errs, fmt.Errorf("%s.validation_context_sds_secret_config: secret %q is not a validation_context", vs.path, sec.GetName()))
			} else {
				vs.inline = mergedVC(vs.inline, sv)
				vs.combined = false
			}
		}
	}
	if !vs.set && b.require {
		errs = append(errs, fmt.Errorf("%s.require_client_certificate: needs a validation context to verify the certificate against", path))
	}
	if dtc.GetDisableStatelessSessionResumption() {
		cfg.SessionTicketsDisabled = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	first, berrs := b.build(b.values())
	if len(berrs) > 0 {
		return nil, errors.Join(berrs...)
	}
	s := &Server{b: b, CA: first.ca, Chain: first.chain}
	s.state.Store(first)
	s.Config = first.cfg.Clone()
	s.Config.GetConfigForClient = s.configForClient
	return s, nil
}

// configForClient picks the handshake's configuration: the current state
// (rebuilt when an SDS secret changed), without ALPN when nothing
// overlaps, and refuses a client without SNI when require_sni is set.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if s.b.requireSNI && hello.ServerName == "" {
		return nil, errors.New("tls: require_sni: the client sent no server name")
	}
	st := s.current()
	if len(s.b.alpn) > 0 && len(hello.SupportedProtos) > 0 && !overlaps(s.b.alpn, hello.SupportedProtos) {
		// Envoy (BoringSSL) goes on without ALPN when nothing
		// overlaps; Go would fail the handshake.
		return st.noALPN, nil
	}
	return st.cfg, nil
}

// Certificates returns the trusted CA certificates and the leaf of each
// certificate that serves now (SDS secrets as last received), for the
// admin's /certs.
func (s *Server) Certificates() (ca, chain []CertSource) {
	st := s.current()
	return st.ca, st.chain
}

// CountHandshake records a handshake's outcome in the ssl.* counters.
func (s *Server) CountHandshake(err error, cs tls.ConnectionState) {
	if err != nil {
		inc(s.b.stats.ConnectionError)
		return
	}
	inc(s.b.stats.Handshake)
	if len(cs.PeerCertificates) == 0 {
		inc(s.b.stats.NoCertificate)
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

// lookup resolves an SdsSecretConfig: a static secret by name (sec), or,
// with an sds_config, a reader of the secret SDS delivers (load).
func lookup(path string, sc *tlsv3.SdsSecretConfig, secrets SecretLookup) (sec *tlsv3.Secret, load func() *tlsv3.Secret, err error) {
	if errs := protocheck.Only(path, sc, "name", "sds_config"); len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if src := sc.GetSdsConfig(); src != nil {
		sl, ok := secrets.(SDSLookup)
		if !ok {
			return nil, nil, fmt.Errorf("%s.sds_config: SDS needs an xDS client (dynamic_resources.ads_config)", path)
		}
		load, err := sl.SDSSecret(sc.GetName(), src)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.sds_config: %w", path, err)
		}
		return nil, load, nil
	}
	if secrets == nil {
		return nil, nil, fmt.Errorf("%s: secret %q: no static secrets configured", path, sc.GetName())
	}
	sec, ok := secrets.Secret(sc.GetName())
	if !ok {
		return nil, nil, fmt.Errorf("%s: secret %q not found in static_resources.secrets", path, sc.GetName())
	}
	return sec, nil, nil
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
	if _, err := parseCerts(chain); err != nil {
		return tls.Certificate{}, CertSource{}, fmt.Errorf("%s.certificate_chain: %w", path, err)
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		// The chain parsed: the key is unparsable or not the chain's.
		return tls.Certificate{}, CertSource{}, fmt.Errorf("%s.private_key: %w", path, err)
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
			certs, err := parseCerts(b)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.trusted_ca: %w", path, err))
			} else {
				v.roots = x509.NewCertPool()
				for _, c := range certs {
					v.roots.AddCert(c)
					v.caSources = append(v.caSources, CertSource{Path: src, Cert: c})
				}
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
