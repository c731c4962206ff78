package cluster

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
)

const (
	tlsSocketName = "envoy.transport_sockets.tls"
	rawSocketName = "envoy.transport_sockets.raw_buffer"
)

// tlsSettings is a compiled UpstreamTlsContext.
type tlsSettings struct {
	base *tls.Config
	// alpn is alpn_protocols; nil means the protocol's default.
	alpn []string
}

// config returns the client config for one connection kind: the
// configured alpn_protocols, else "h2" for HTTP/2, "h2" and "http/1.1" for
// protocol auto-detection, none otherwise (Envoy sets no ALPN for
// HTTP/1.1 upstreams unless asked to).
func (t *tlsSettings) config(def []string) *tls.Config {
	c := t.base.Clone()
	if t.alpn != nil {
		c.NextProtos = t.alpn
	} else {
		c.NextProtos = def
	}
	return c
}

// compileTransportSocket compiles a cluster's transport_socket; nil means
// plaintext.
func compileTransportSocket(e *errs, path string, ts *corev3.TransportSocket, o *Options) *tlsSettings {
	if ts == nil {
		return nil
	}
	e.only(path, ts, "name", "typed_config")
	url := ts.GetTypedConfig().GetTypeUrl()
	switch {
	case url == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":
	case url == "" && ts.GetName() == rawSocketName, strings.HasSuffix(url, "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"):
		return nil
	case url == "" && ts.GetName() == tlsSocketName:
		e.errf(at(path, "typed_config"), "an UpstreamTlsContext is required")
		return nil
	default:
		e.errf(at(path, "typed_config"), "transport socket %q (%s) is %v by wasmesh", ts.GetName(), url, ErrUnsupported)
		return nil
	}
	u := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
		e.errf(at(path, "typed_config"), "%v", err)
		return nil
	}
	p := at(path, "typed_config")
	if err := u.ValidateAll(); err != nil {
		e.addValidation(p, err)
		return nil
	}
	return compileUpstreamTLS(e, p, u, o)
}

func compileUpstreamTLS(e *errs, p string, u *tlsv3.UpstreamTlsContext, o *Options) *tlsSettings {
	e.only(p, u, "common_tls_context", "sni", "allow_renegotiation", "max_session_keys", "enforce_rsa_key_usage")
	cfg := &tls.Config{
		ServerName:         u.GetSni(),
		InsecureSkipVerify: true, // verification is ours: Envoy does not check the name against SNI
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
	}
	if u.GetAllowRenegotiation() {
		cfg.Renegotiation = tls.RenegotiateFreelyAsClient
	}
	sessions := 0
	if n := u.GetMaxSessionKeys(); n == nil || n.GetValue() > 0 {
		sessions = 1
		if n != nil {
			sessions = int(n.GetValue())
		}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(sessions)
	}
	ts := &tlsSettings{base: cfg}
	ctc := u.GetCommonTlsContext()
	cp := at(p, "common_tls_context")
	e.only(cp, ctc, "tls_params", "tls_certificates", "tls_certificate_sds_secret_configs", "validation_context",
		"validation_context_sds_secret_config", "combined_validation_context", "alpn_protocols")
	if tp := ctc.GetTlsParams(); tp != nil {
		compileTLSParams(e, at(cp, "tls_params"), tp, cfg)
	}
	for i, c := range ctc.GetTlsCertificates() {
		if cert, ok := loadCertificate(e, idx(cp, "tls_certificates", i), c, o); ok {
			cfg.Certificates = append(cfg.Certificates, cert)
		}
	}
	var dcert *sdsCert
	for i, s := range ctc.GetTlsCertificateSdsSecretConfigs() {
		sp := idx(cp, "tls_certificate_sds_secret_configs", i)
		sec, load := lookupSecret(e, sp, s, o)
		if load != nil {
			if dcert != nil {
				e.errf(at(cp, "tls_certificate_sds_secret_configs"), "a client presents one certificate; more than one SDS secret given")
				continue
			}
			dcert = &sdsCert{name: s.GetName(), load: load, o: o}
			cfg.GetClientCertificate = dcert.get
			continue
		}
		if sec == nil {
			continue
		}
		tc := sec.GetTlsCertificate()
		if tc == nil {
			e.errf(at(sp, "name"), "secret %q is not a tls_certificate", s.GetName())
			continue
		}
		if cert, ok := loadCertificate(e, fmt.Sprintf("secret %q", s.GetName()), tc, o); ok {
			cfg.Certificates = append(cfg.Certificates, cert)
		}
	}
	if n := len(cfg.Certificates); n > 1 || (n > 0 && cfg.GetClientCertificate != nil) {
		e.errf(at(cp, "tls_certificates"), "a client presents one certificate; %d given", n+btoi(cfg.GetClientCertificate != nil))
	}
	if len(ctc.GetAlpnProtocols()) > 0 {
		ts.alpn = slices.Clone(ctc.GetAlpnProtocols())
	}

	var vc *tlsv3.CertificateValidationContext
	vcPath := ""
	var dyn *sdsValidation
	switch {
	case ctc.GetValidationContext() != nil:
		vc, vcPath = ctc.GetValidationContext(), at(cp, "validation_context")
	case ctc.GetValidationContextSdsSecretConfig() != nil:
		sp := at(cp, "validation_context_sds_secret_config")
		sc := ctc.GetValidationContextSdsSecretConfig()
		sec, load := lookupSecret(e, sp, sc, o)
		if load != nil {
			dyn = &sdsValidation{name: sc.GetName(), load: load, o: o}
		} else if sec != nil {
			if vc = sec.GetValidationContext(); vc == nil {
				e.errf(at(sp, "name"), "secret %q is not a validation_context", sec.GetName())
			}
			vcPath = fmt.Sprintf("secret %q", sec.GetName())
		}
	case ctc.GetCombinedValidationContext() != nil:
		cc := ctc.GetCombinedValidationContext()
		ccp := at(cp, "combined_validation_context")
		e.only(ccp, cc, "default_validation_context", "validation_context_sds_secret_config")
		vcPath = at(ccp, "default_validation_context")
		vc = proto.Clone(cc.GetDefaultValidationContext()).(*tlsv3.CertificateValidationContext)
		if s := cc.GetValidationContextSdsSecretConfig(); s != nil {
			sec, load := lookupSecret(e, at(ccp, "validation_context_sds_secret_config"), s, o)
			if load != nil {
				dyn = &sdsValidation{name: s.GetName(), load: load, o: o, def: vc}
				vc = nil
			} else if sec != nil {
				if d := sec.GetValidationContext(); d != nil {
					vc = combineVC(vc, d)
				}
			}
		}
	}
	var loads []func() *tlsv3.Secret
	if dcert != nil {
		loads = append(loads, dcert.load)
	}
	if dyn != nil {
		cfg.VerifyConnection = dyn.verify
		loads = append(loads, dyn.load)
	} else if vc != nil {
		if v := compileValidation(e, vcPath, vc, o); v != nil {
			cfg.VerifyConnection = v.verify
		}
	}
	if len(loads) > 0 && sessions > 0 {
		// A rotated secret starts a new session cache, so that a new
		// connection does not resume a session made with the old
		// certificate or trust (Envoy makes a new SSL context).
		cfg.ClientSessionCache = &sdsSessionCache{size: sessions, loads: loads, seen: make([]*tlsv3.Secret, len(loads))}
	}
	return ts
}

// sdsSessionCache is the client session cache of a context with SDS
// secrets: emptied when one of them changes.
type sdsSessionCache struct {
	size  int
	loads []func() *tlsv3.Secret
	mu    sync.Mutex
	seen  []*tlsv3.Secret
	lru   tls.ClientSessionCache
}

func (c *sdsSessionCache) current() tls.ClientSessionCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := c.lru == nil
	for i, load := range c.loads {
		if v := load(); v != c.seen[i] {
			c.seen[i], changed = v, true
		}
	}
	if changed {
		c.lru = tls.NewLRUClientSessionCache(c.size)
	}
	return c.lru
}

func (c *sdsSessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return c.current().Get(key)
}

func (c *sdsSessionCache) Put(key string, cs *tls.ClientSessionState) { c.current().Put(key, cs) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// combineVC merges a combined validation context's secret with its
// default (the default's fields win, repeated fields append).
func combineVC(def, dyn *tlsv3.CertificateValidationContext) *tlsv3.CertificateValidationContext {
	merged := proto.Clone(dyn).(*tlsv3.CertificateValidationContext)
	proto.Merge(merged, def)
	return merged
}

// sdsCert is the client certificate of an SDS secret: read at every
// handshake that asks for one, parsed once per value.
type sdsCert struct {
	name  string
	load  func() *tlsv3.Secret
	o     *Options
	cache atomic.Pointer[sdsCertValue]
}

type sdsCertValue struct {
	seen *tlsv3.Secret
	cert *tls.Certificate
}

// get is the tls.Config's GetClientCertificate: the current secret's
// certificate, none while the secret has not arrived. A value that does
// not parse keeps the previous certificate.
func (d *sdsCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	sec := d.load()
	cur := d.cache.Load()
	if cur != nil && cur.seen == sec {
		return cur.cert, nil
	}
	next := &sdsCertValue{seen: sec, cert: &tls.Certificate{}}
	if cur != nil {
		next.cert = cur.cert
	}
	if tc := sec.GetTlsCertificate(); tc != nil {
		e := &errs{resource: fmt.Sprintf("secret %q", d.name)}
		if cert, ok := loadCertificate(e, "tls_certificate", tc, d.o); ok {
			next.cert = &cert
		}
	}
	d.cache.Store(next)
	return next.cert, nil
}

// sdsValidation is a validation context from an SDS secret (merged with
// the default of a combined context): compiled once per value, checked at
// every handshake. Until the secret arrives every server is refused.
type sdsValidation struct {
	name  string
	load  func() *tlsv3.Secret
	o     *Options
	def   *tlsv3.CertificateValidationContext // combined_validation_context's default
	cache atomic.Pointer[sdsValidationValue]
}

type sdsValidationValue struct {
	seen *tlsv3.Secret
	v    *validator
	ok   bool // a validation context compiled (v nil: nothing to check)
}

func (d *sdsValidation) current() *sdsValidationValue {
	sec := d.load()
	cur := d.cache.Load()
	if cur != nil && cur.seen == sec {
		return cur
	}
	next := &sdsValidationValue{seen: sec}
	if cur != nil {
		next.v, next.ok = cur.v, cur.ok
	}
	if vc := sec.GetValidationContext(); vc != nil {
		if d.def != nil {
			vc = combineVC(d.def, vc)
		}
		e := &errs{resource: fmt.Sprintf("secret %q", d.name)}
		if v := compileValidation(e, "validation_context", vc, d.o); e.ok() {
			next.v, next.ok = v, true
		}
	}
	d.cache.Store(next)
	return next
}

func (d *sdsValidation) verify(cs tls.ConnectionState) error {
	cur := d.current()
	if !cur.ok {
		return fmt.Errorf("tls: validation context secret %q not received", d.name)
	}
	if cur.v == nil {
		return nil
	}
	return cur.v.verify(cs)
}

var tlsVersions = map[tlsv3.TlsParameters_TlsProtocol]uint16{
	tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
	tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11,
	tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12,
	tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13,
}

// cipherNames maps BoringSSL's names to Go's suites (TLS 1.2 and below;
// TLS 1.3 suites are not configurable, in Envoy either).
var cipherNames = map[string]uint16{
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
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

var curveNames = map[string]tls.CurveID{
	"X25519":                tls.X25519,
	"P-256":                 tls.CurveP256,
	"P-384":                 tls.CurveP384,
	"P-521":                 tls.CurveP521,
	"X25519MLKEM768":        tls.X25519MLKEM768,
	"X25519Kyber768Draft00": tls.X25519MLKEM768,
}

func compileTLSParams(e *errs, p string, tp *tlsv3.TlsParameters, cfg *tls.Config) {
	e.only(p, tp, "tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites", "ecdh_curves")
	if v, ok := tlsVersions[tp.GetTlsMinimumProtocolVersion()]; ok {
		cfg.MinVersion = v
	}
	if v, ok := tlsVersions[tp.GetTlsMaximumProtocolVersion()]; ok {
		cfg.MaxVersion = v
	}
	if cfg.MinVersion > cfg.MaxVersion {
		e.errf(at(p, "tls_minimum_protocol_version"), "above tls_maximum_protocol_version")
	}
	for i, name := range tp.GetCipherSuites() {
		for _, n := range strings.Split(strings.Trim(name, "[]"), "|") {
			id, ok := cipherNames[n]
			if !ok {
				e.errf(fmt.Sprintf("%s.cipher_suites[%d]", p, i), "unknown or unsupported cipher suite %q", n)
				continue
			}
			cfg.CipherSuites = append(cfg.CipherSuites, id)
		}
	}
	for i, name := range tp.GetEcdhCurves() {
		id, ok := curveNames[name]
		if !ok {
			e.errf(fmt.Sprintf("%s.ecdh_curves[%d]", p, i), "unknown or unsupported curve %q", name)
			continue
		}
		cfg.CurvePreferences = append(cfg.CurvePreferences, id)
	}
}

// SDSLookup is implemented by a SecretLookup that also serves secrets
// over SDS (an SdsSecretConfig with sds_config): SDSSecret checks the
// config source and returns a reader of the secret's current value, nil
// until the first arrives and a new pointer for every accepted update. A
// cluster reads it at each new connection, so a rotation reaches new
// connections without recompiling the cluster.
type SDSLookup interface {
	SDSSecret(name string, source *corev3.ConfigSource) (func() *tlsv3.Secret, error)
}

// lookupSecret resolves an SdsSecretConfig: a static secret (sec) or,
// with an sds_config, the reader of an SDS secret (load).
func lookupSecret(e *errs, p string, s *tlsv3.SdsSecretConfig, o *Options) (sec *tlsv3.Secret, load func() *tlsv3.Secret) {
	e.only(p, s, "name", "sds_config")
	if src := s.GetSdsConfig(); src != nil {
		sl, ok := o.Secrets.(SDSLookup)
		if !ok {
			e.errf(at(p, "sds_config"), "SDS needs an xDS client (dynamic_resources.ads_config)")
			return nil, nil
		}
		load, err := sl.SDSSecret(s.GetName(), src)
		if err != nil {
			e.errf(at(p, "sds_config"), "%v", err)
			return nil, nil
		}
		return nil, load
	}
	if o.Secrets == nil {
		e.errf(at(p, "name"), "secret %q: no secrets are available", s.GetName())
		return nil, nil
	}
	sec, ok := o.Secrets.Secret(s.GetName())
	if !ok || sec == nil {
		e.errf(at(p, "name"), "unknown secret %q", s.GetName())
		return nil, nil
	}
	return sec, nil
}

// readSource reads a DataSource: a file, inline bytes or string, or an
// environment variable.
func readSource(d *corev3.DataSource, o *Options) ([]byte, error) {
	switch v := d.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		return o.readFile(v.Filename)
	case *corev3.DataSource_InlineBytes:
		return v.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(v.InlineString), nil
	case *corev3.DataSource_EnvironmentVariable:
		s, ok := os.LookupEnv(v.EnvironmentVariable)
		if !ok {
			return nil, fmt.Errorf("environment variable %q is not set", v.EnvironmentVariable)
		}
		return []byte(s), nil
	}
	return nil, errors.New("empty data source")
}

func loadCertificate(e *errs, p string, c *tlsv3.TlsCertificate, o *Options) (tls.Certificate, bool) {
	e.only(p, c, "certificate_chain", "private_key")
	chain, err := readSource(c.GetCertificateChain(), o)
	if err != nil {
		e.errf(at(p, "certificate_chain"), "%v", err)
		return tls.Certificate{}, false
	}
	key, err := readSource(c.GetPrivateKey(), o)
	if err != nil {
		e.errf(at(p, "private_key"), "%v", err)
		return tls.Certificate{}, false
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		e.errf(p, "%v", err)
		return tls.Certificate{}, false
	}
	return cert, true
}

// validator checks the server's certificate as Envoy's default certificate
// validator does (without checking the name against SNI).
type validator struct {
	roots           *x509.CertPool
	acceptUntrusted bool
	sans            []sanMatcher
	hashes          [][]byte
	spki            [][]byte
	now             func() time.Time
}

type sanMatcher struct {
	kind tlsv3.SubjectAltNameMatcher_SanType // SAN_TYPE_UNSPECIFIED: any
	m    *stringMatcher
}

func compileValidation(e *errs, p string, vc *tlsv3.CertificateValidationContext, o *Options) *validator {
	e.only(p, vc, "trusted_ca", "system_root_certs", "verify_certificate_spki", "verify_certificate_hash",
		"match_typed_subject_alt_names", "match_subject_alt_names", "trust_chain_verification", "max_verify_depth")
	v := &validator{now: o.now}
	if ca := vc.GetTrustedCa(); ca != nil {
		pem, err := readSource(ca, o)
		if err != nil {
			e.errf(at(p, "trusted_ca"), "%v", err)
		} else {
			v.roots = x509.NewCertPool()
			if !v.roots.AppendCertsFromPEM(pem) {
				e.errf(at(p, "trusted_ca"), "no PEM certificates found")
			}
		}
	}
	if vc.GetSystemRootCerts() != nil {
		sys, err := x509.SystemCertPool()
		if err != nil {
			e.errf(at(p, "system_root_certs"), "%v", err)
		} else if v.roots == nil {
			v.roots = sys
		} else {
			// Both: the system pool plus the configured CAs.
			pem, _ := readSource(vc.GetTrustedCa(), o)
			sys.AppendCertsFromPEM(pem)
			v.roots = sys
		}
	}
	v.acceptUntrusted = vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	for i, h := range vc.GetVerifyCertificateHash() {
		b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil || len(b) != sha256.Size {
			e.errf(fmt.Sprintf("%s.verify_certificate_hash[%d]", p, i), "not a hex SHA-256 hash: %q", h)
			continue
		}
		v.hashes = append(v.hashes, b)
	}
	for i, h := range vc.GetVerifyCertificateSpki() {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			e.errf(fmt.Sprintf("%s.verify_certificate_spki[%d]", p, i), "not a base64 SHA-256 hash: %q", h)
			continue
		}
		v.spki = append(v.spki, b)
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		mp := idx(p, "match_typed_subject_alt_names", i)
		e.only(mp, m, "san_type", "matcher")
		if m.GetSanType() == tlsv3.SubjectAltNameMatcher_OTHER_NAME {
			e.unsupportedValue(at(mp, "san_type"), m.GetSanType())
			continue
		}
		if sm := compileStringMatcher(e, at(mp, "matcher"), m.GetMatcher()); sm != nil {
			v.sans = append(v.sans, sanMatcher{kind: m.GetSanType(), m: sm})
		}
	}
	for i, m := range vc.GetMatchSubjectAltNames() {
		if sm := compileStringMatcher(e, idx(p, "match_subject_alt_names", i), m); sm != nil {
			v.sans = append(v.sans, sanMatcher{m: sm})
		}
	}
	if v.roots == nil && len(v.sans) == 0 && len(v.hashes) == 0 && len(v.spki) == 0 {
		return nil
	}
	return v
}

func (v *validator) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if v.roots != nil && !v.acceptUntrusted {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: v.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if v.now != nil {
			opts.CurrentTime = v.now()
		}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("tls: certificate verify failed: %w", err)
		}
	}
	if len(v.sans) > 0 && !v.matchSAN(leaf) {
		return errors.New("tls: certificate subject alt names do not match")
	}
	if len(v.hashes) > 0 || len(v.spki) > 0 {
		h := sha256.Sum256(leaf.Raw)
		s := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		ok := false
		for _, x := range v.hashes {
			ok = ok || string(x) == string(h[:])
		}
		for _, x := range v.spki {
			ok = ok || string(x) == string(s[:])
		}
		if !ok {
			return errors.New("tls: certificate hash or SPKI pin does not match")
		}
	}
	return nil
}

func (v *validator) matchSAN(c *x509.Certificate) bool {
	for _, m := range v.sans {
		any := m.kind == tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED
		if any || m.kind == tlsv3.SubjectAltNameMatcher_DNS {
			for _, n := range c.DNSNames {
				if m.m.match(n) || (m.m.exactValue != "" && dnsWildcardMatch(n, m.m)) {
					return true
				}
			}
		}
		if any || m.kind == tlsv3.SubjectAltNameMatcher_URI {
			for _, u := range c.URIs {
				if m.m.match(u.String()) {
					return true
				}
			}
		}
		if any || m.kind == tlsv3.SubjectAltNameMatcher_EMAIL {
			for _, a := range c.EmailAddresses {
				if m.m.match(a) {
					return true
				}
			}
		}
		if any || m.kind == tlsv3.SubjectAltNameMatcher_IP_ADDRESS {
			for _, ip := range c.IPAddresses {
				if m.m.match(ip.String()) {
					return true
				}
			}
		}
	}
	return false
}

// dnsWildcardMatch lets an exact matcher "foo.example.com" accept a
// certificate for "*.example.com", as Envoy's DNS SAN matching does.
func dnsWildcardMatch(san string, m *stringMatcher) bool {
	if !strings.HasPrefix(san, "*.") {
		return false
	}
	v := m.exactValue
	i := strings.IndexByte(v, '.')
	if i <= 0 {
		return false
	}
	if m.ignoreCase {
		return strings.EqualFold(v[i:], san[1:])
	}
	return v[i:] == san[1:]
}

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	exact, prefix, suffix, contains string
	exactValue                      string
	re                              *regexp.Regexp
	ignoreCase                      bool
	kind                            uint8
}

func compileStringMatcher(e *errs, p string, m *matcherv3.StringMatcher) *stringMatcher {
	if m == nil {
		e.errf(p, "a matcher is required")
		return nil
	}
	e.only(p, m, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case")
	s := &stringMatcher{ignoreCase: m.GetIgnoreCase()}
	low := func(v string) string {
		if s.ignoreCase {
			return strings.ToLower(v)
		}
		return v
	}
	switch v := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.exact, s.exactValue = 1, low(v.Exact), v.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.prefix = 2, low(v.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.suffix = 3, low(v.Suffix)
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.contains = 4, low(v.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + v.SafeRegex.GetRegex() + ")$")
		if err != nil {
			e.errf(at(p, "safe_regex.regex"), "invalid regex: %v", err)
			return nil
		}
		s.kind, s.re = 5, re
	default:
		e.errf(p, "no match pattern set")
		return nil
	}
	return s
}

func (s *stringMatcher) match(v string) bool {
	if s.ignoreCase && s.kind != 5 {
		v = strings.ToLower(v)
	}
	switch s.kind {
	case 1:
		return v == s.exact
	case 2:
		return strings.HasPrefix(v, s.prefix)
	case 3:
		return strings.HasSuffix(v, s.suffix)
	case 4:
		return strings.Contains(v, s.contains)
	case 5:
		return s.re.MatchString(v)
	}
	return false
}
