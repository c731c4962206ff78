package admin

import (
	"crypto/x509"
	"net/http"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// handleCerts answers /certs with envoy.admin.v3.Certificates: one entry
// per TLS context, its CA and its certificate chain.
func (a *Admin) handleCerts(w http.ResponseWriter, _ *http.Request) {
	out := &adminv3.Certificates{}
	if a.o.Certificates != nil {
		now := a.now()
		for _, ctx := range a.o.Certificates.TLSContexts() {
			c := &adminv3.Certificate{}
			for _, s := range ctx.CA {
				c.CaCert = append(c.CaCert, certificateDetails(s, now))
			}
			for _, s := range ctx.Chain {
				c.CertChain = append(c.CertChain, certificateDetails(s, now))
			}
			out.Certificates = append(out.Certificates, c)
		}
	}
	writeJSON(w, out, true)
}

// certificateDetails describes one certificate as Envoy does: the serial
// number in lower-case hex, the SANs (DNS names, URIs, IP addresses), the
// whole days left before expiry (0 once expired) and the validity period.
func certificateDetails(s CertificateSource, now time.Time) *adminv3.CertificateDetails {
	d := &adminv3.CertificateDetails{Path: s.Path}
	cert := s.Cert
	if cert == nil {
		return d
	}
	if cert.SerialNumber != nil {
		d.SerialNumber = cert.SerialNumber.Text(16)
	}
	d.SubjectAltNames = subjectAltNames(cert)
	if left := cert.NotAfter.Sub(now); left > 0 {
		d.DaysUntilExpiration = uint64(left / (24 * time.Hour))
	}
	d.ValidFrom = timestamppb.New(cert.NotBefore)
	d.ExpirationTime = timestamppb.New(cert.NotAfter)
	return d
}

func subjectAltNames(cert *x509.Certificate) []*adminv3.SubjectAlternateName {
	var out []*adminv3.SubjectAlternateName
	for _, n := range cert.DNSNames {
		out = append(out, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Dns{Dns: n}})
	}
	for _, u := range cert.URIs {
		out = append(out, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Uri{Uri: u.String()}})
	}
	for _, ip := range cert.IPAddresses {
		out = append(out, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_IpAddress{IpAddress: ip.String()}})
	}
	return out
}
