package admin

import (
	"crypto/x509"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/zap/zapcore"
)

// Server is what /server_info and /ready report about the process.
type Server interface {
	// State is the server's initialisation state: PRE_INITIALIZING before
	// the init manager starts, INITIALIZING while it waits for its
	// targets, LIVE after, DRAINING while the server drains. The admin
	// reports LIVE as DRAINING by itself while /healthcheck/fail is in
	// effect.
	State() adminv3.ServerInfo_State
	// Version is Envoy's version string without the binary name, as
	// --version prints it: "<revision>/1.36.0/Clean/RELEASE/BoringSSL".
	Version() string
	// StartTime is when the server started; uptime is counted from it.
	StartTime() time.Time
	// CommandLineOptions are the parsed flags (may be nil).
	CommandLineOptions() *adminv3.CommandLineOptions
	// Node is the bootstrap's node after the --service-* flags (may be nil).
	Node() *corev3.Node
}

// Logging is the process's per-component log levels (server.Logging
// implements it). Levels are zap levels; Options.ParseLevel reads Envoy's
// level names.
type Logging interface {
	// Levels lists components and their Envoy level names, sorted.
	Levels() [][2]string
	// Set sets one component's level; false if the component is unknown.
	Set(component string, lvl zapcore.Level) bool
	// SetAll sets every component's level.
	SetAll(lvl zapcore.Level)
}

// ListenerStatus is one listener as /listeners shows it.
type ListenerStatus struct {
	Name string
	// Addresses are the addresses the listener is bound to, the first one
	// being its local_address; a port 0 in the config shows the port the
	// kernel chose. AddressFromNet converts a net.Addr.
	Addresses []*corev3.Address
}

// DrainOptions are the parameters of POST /drain_listeners.
type DrainOptions struct {
	// InboundOnly drains only listeners whose traffic_direction is INBOUND.
	InboundOnly bool
	// Graceful enters the drain sequence (--drain-time-s, --drain-strategy)
	// before the listeners stop; a second graceful call while draining is
	// ignored by the server.
	Graceful bool
	// SkipExit keeps the process running after a graceful drain.
	SkipExit bool
}

// Listeners is the listener manager as the admin sees it.
type Listeners interface {
	// ListenerStatuses lists the active listeners in configuration order.
	ListenerStatuses() []ListenerStatus
	// DrainListeners starts draining and returns at once; a graceful drain
	// continues in the background.
	DrainListeners(o DrainOptions) error
}

// Clusters is the cluster manager as /clusters sees it.
type Clusters interface {
	// ClusterStatuses lists the active clusters (any order; the admin
	// sorts them by name). The admin does not modify the result.
	ClusterStatuses() []ClusterStatus
}

// ConfigDumpers supply the sections of /config_dump, one function per
// Envoy config tracker key. A nil function, or a nil result, leaves its
// section out. The admin clones what it is given before it masks, filters
// or redacts, so a function may return a shared snapshot.
type ConfigDumpers struct {
	Bootstrap func() *adminv3.BootstrapConfigDump
	Clusters  func() *adminv3.ClustersConfigDump
	// Endpoints is dumped only with ?include_eds, as in Envoy.
	Endpoints func() *adminv3.EndpointsConfigDump
	Listeners func() *adminv3.ListenersConfigDump
	Routes    func() *adminv3.RoutesConfigDump
	Secrets   func() *adminv3.SecretsConfigDump
}

// RuntimeLayer is one layer of the layered runtime, with its raw values.
type RuntimeLayer struct {
	Name   string
	Values map[string]string
}

// Runtime is the layered runtime.
type Runtime interface {
	// Layers lists the layers, lowest precedence first (Envoy's order).
	Layers() []RuntimeLayer
	// MergeValues sets values in the admin layer; an empty value removes
	// the key from that layer.
	MergeValues(values map[string]string) error
}

// CertificateSource is one loaded certificate and where it came from: a
// file name, or "<inline>" for inline bytes and strings, as Envoy shows.
type CertificateSource struct {
	Path string
	Cert *x509.Certificate
}

// TLSContextCertificates are the certificates of one TLS context
// (listener filter chain or cluster transport socket).
type TLSContextCertificates struct {
	// CA is the validation context's trusted CA certificate(s).
	CA []CertificateSource
	// Chain holds the leaf certificate of each tls_certificate.
	Chain []CertificateSource
}

// Certificates lists the TLS contexts in use (/certs).
type Certificates interface {
	TLSContexts() []TLSContextCertificates
}

// AccessLog receives one entry per admin request (admin.access_log).
// NewWriterAccessLog writes Envoy's default format to a writer.
type AccessLog interface {
	Log(e *AccessLogEntry)
}
