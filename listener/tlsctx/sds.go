package tlsctx

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// builder holds what a DownstreamTlsContext compiled to, with the SDS
// secrets still to be read: build turns it plus the secrets' current
// values into a handshake configuration. Immutable after Compile.
type builder struct {
	base       *tls.Config // parameters, ALPN, session settings
	certs      []certSlot
	vc         vcSpec
	alpn       []string
	require    bool
	requireSNI bool
	stats      *Stats
}

// certSlot is one certificate: loaded at compile time (inline, file or
// static secret), or an SDS secret read through load.
type certSlot struct {
	path string // the field, for errors
	name string // the SDS secret's name
	cert tls.Certificate
	src  CertSource
	load func() *tlsv3.Secret
}

// vcSpec is the validation context: inline (or a static secret, or a
// combined context already merged), or an SDS secret, merged over inline
// when combined.
type vcSpec struct {
	set      bool
	path     string
	inline   *tlsv3.CertificateValidationContext
	combined bool
	name     string
	load     func() *tlsv3.Secret
}

// state is a built configuration and the SDS values it was built from.
type state struct {
	seen        []*tlsv3.Secret
	cfg, noALPN *tls.Config
	ca, chain   []CertSource
	err         error // why the last rebuild failed (the state kept serving)
}

// values reads the current value of every SDS secret, in slot order (the
// certificates, then the validation context).
func (b *builder) values() []*tlsv3.Secret {
	var out []*tlsv3.Secret
	for _, c := range b.certs {
		if c.load != nil {
			out = append(out, c.load())
		}
	}
	if b.vc.load != nil {
		out = append(out, b.vc.load())
	}
	return out
}

// unchanged reports, without allocating, whether the SDS secrets still
// have the values seen.
func (b *builder) unchanged(seen []*tlsv3.Secret) bool {
	i := 0
	for _, c := range b.certs {
		if c.load != nil {
			if c.load() != seen[i] {
				return false
			}
			i++
		}
	}
	return b.vc.load == nil || b.vc.load() == seen[i]
}

// build makes the handshake configuration from the SDS values vals. A
// certificate secret not received yet is left out (a handshake needing it
// fails); a validation context secret not received yet rejects every
// client certificate.
func (b *builder) build(vals []*tlsv3.Secret) (*state, []error) {
	st := &state{seen: vals}
	cfg := b.base.Clone()
	cfg.Certificates = nil
	var errs []error
	i := 0
	for _, c := range b.certs {
		if c.load == nil {
			cfg.Certificates = append(cfg.Certificates, c.cert)
			st.chain = append(st.chain, c.src)
			continue
		}
		sec := vals[i]
		i++
		if sec == nil {
			continue
		}
		tc := sec.GetTlsCertificate()
		if tc == nil {
			errs = append(errs, fmt.Errorf("%s: secret %q is not a tls_certificate", c.path, c.name))
			continue
		}
		cert, src, err := loadCertificate(fmt.Sprintf("secret %q tls_certificate", c.name), tc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.path, err))
			continue
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		st.chain = append(st.chain, src)
	}
	vc := b.vc.inline
	missing := false
	if b.vc.load != nil {
		switch sec := vals[i]; {
		case sec == nil:
			missing = true
		case sec.GetValidationContext() == nil:
			errs = append(errs, fmt.Errorf("%s: secret %q is not a validation_context", b.vc.path, b.vc.name))
		case b.vc.combined:
			vc = mergedVC(b.vc.inline, sec.GetValidationContext())
		default:
			vc = sec.GetValidationContext()
		}
	}
	switch {
	case missing:
		name := b.vc.name
		cfg.ClientAuth = tls.RequestClientCert
		cfg.VerifyConnection = func(tls.ConnectionState) error {
			inc(b.stats.FailVerifyError)
			return fmt.Errorf("tls: validation context secret %q not received", name)
		}
	case vc != nil:
		v, verrs := compileValidation(b.vc.path, vc)
		errs = append(errs, verrs...)
		if v != nil {
			st.ca = v.caSources
			v.apply(cfg, b.require, b.stats)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(vals) > 0 && !cfg.SessionTicketsDisabled {
		// New ticket keys per secret version: a client cannot resume a
		// session made with the previous certificate or trust (Envoy makes
		// a new SSL context with its own keys).
		var key [32]byte
		_, _ = rand.Read(key[:])
		cfg.SetSessionTicketKeys([][32]byte{key})
	}
	st.cfg = cfg
	st.noALPN = cfg.Clone()
	st.noALPN.NextProtos = nil
	return st, nil
}

// current is the state for a new handshake: rebuilt once after an SDS
// secret changed. A rebuild that fails (a secret of the wrong kind) keeps
// the previous state serving.
func (s *Server) current() *state {
	st := s.state.Load()
	if len(st.seen) == 0 || s.b.unchanged(st.seen) {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st = s.state.Load()
	vals := s.b.values()
	if s.b.unchanged(st.seen) {
		return st
	}
	next, errs := s.b.build(vals)
	if len(errs) > 0 {
		kept := *st
		kept.seen, kept.err = vals, errors.Join(errs...)
		next = &kept
	}
	s.state.Store(next)
	return next
}

// Err is why the last rebuild after an SDS update failed (the previous
// certificates kept serving), nil when the current secrets are in use.
func (s *Server) Err() error { return s.current().err }

// mergedVC is a combined validation context: the dynamic one over the
// default, as Envoy merges them.
func mergedVC(def, dyn *tlsv3.CertificateValidationContext) *tlsv3.CertificateValidationContext {
	merged := cloneVC(def)
	mergeVC(merged, dyn)
	return merged
}

// CheckSecret checks a secret delivered over SDS before it is accepted: a
// tls_certificate's chain and key parse and belong together, a
// validation_context's trusted CAs parse and its pins are well formed.
// Errors name the secret and the field, e.g.
// `secret "web" tls_certificate.private_key: tls: private key does not
// match public key`. Other kinds of secret are accepted unchecked.
func CheckSecret(sec *tlsv3.Secret) error {
	p := fmt.Sprintf("secret %q", sec.GetName())
	if err := sec.ValidateAll(); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	switch {
	case sec.GetTlsCertificate() != nil:
		_, _, err := loadCertificate(p+" tls_certificate", sec.GetTlsCertificate())
		return err
	case sec.GetValidationContext() != nil:
		return checkVC(p+" validation_context", sec.GetValidationContext())
	}
	return nil
}

// checkVC checks what can be wrong in a validation context's data,
// whatever uses it (listeners and clusters support different fields).
func checkVC(path string, vc *tlsv3.CertificateValidationContext) error {
	var errs []error
	if ca := vc.GetTrustedCa(); ca != nil {
		b, _, err := ReadDataSource(path+".trusted_ca", ca)
		if err != nil {
			errs = append(errs, err)
		} else if _, err := parseCerts(b); err != nil {
			errs = append(errs, fmt.Errorf("%s.trusted_ca: %w", path, err))
		}
	}
	for i, h := range vc.GetVerifyCertificateHash() {
		if b, err := hex.DecodeString(strings.ReplaceAll(h, ":", "")); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s.verify_certificate_hash[%d]: not a hex SHA-256 fingerprint: %q", path, i, h))
		}
	}
	for i, h := range vc.GetVerifyCertificateSpki() {
		if b, err := base64.StdEncoding.DecodeString(h); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s.verify_certificate_spki[%d]: not a base64 SHA-256 SPKI hash: %q", path, i, h))
		}
	}
	return errors.Join(errs...)
}

// parseCerts parses every CERTIFICATE block of a PEM bundle; it needs at
// least one.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
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
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}
