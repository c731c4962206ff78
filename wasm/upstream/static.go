package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/wasmesh/wasmesh/wasm"
)

// Protocol is how a cluster is spoken to.
type Protocol int

// Protocols.
const (
	// HTTP1 is plaintext HTTP/1.1. gRPC callouts to such a cluster use
	// h2c, the only plaintext gRPC there is.
	HTTP1 Protocol = iota
	// H2C is plaintext HTTP/2 with prior knowledge.
	H2C
	// TLS is HTTP/1.1 or HTTP/2 (by ALPN) over TLS.
	TLS
)

func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "http1"
	case H2C:
		return "h2c"
	case TLS:
		return "tls"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// Cluster is one named destination.
type Cluster struct {
	// Address is host:port.
	Address string
	// Protocol is how to speak to Address.
	Protocol Protocol
	// RootCAs verifies the server of a TLS cluster; nil means the system
	// pool.
	RootCAs *x509.CertPool
	// ServerName is the TLS server name (SNI and verification); empty
	// means the host of Address.
	ServerName string
	// RoundTripper, when set, sends HTTP callouts instead of a transport
	// to Address (the data plane's cluster: its load balancer and pools).
	RoundTripper http.RoundTripper
	// Dial, when set, opens gRPC callout connections instead of dialing
	// Address (through the data plane's cluster).
	Dial func(ctx context.Context) (net.Conn, error)
}

// Defaults for Config.
const (
	DefaultMaxResponseBytes = 16 << 20
	DefaultDialTimeout      = 5 * time.Second
	idleConnTimeout         = 90 * time.Second
	maxIdleConnsPerHost     = 64
)

// Config configures a Static.
type Config struct {
	// Clusters maps cluster names to destinations.
	Clusters map[string]Cluster
	// Logger receives debug lines about failed callouts; nil discards
	// them.
	Logger *zap.Logger
	// MaxResponseBytes caps a buffered HTTP callout response body; a larger
	// body fails the callout. 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// DialTimeout bounds connection setup; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Lookup resolves cluster names that are not in Clusters, at call
	// time (the data plane's clusters change). The Cluster it returns
	// should set RoundTripper and Dial.
	Lookup func(name string) (Cluster, bool)
}

// ErrClosed is returned for callouts started after Close.
var ErrClosed = errors.New("upstream: closed")

// ErrResponseTooLarge fails an HTTP callout whose body exceeds
// Config.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("upstream: response body too large")

// Static sends callouts to a fixed set of clusters.
type Static struct {
	clusters map[string]*cluster
	dynamic  func(name string) (Cluster, bool)
	log      *zap.Logger
	maxBody  int64

	// base is cancelled by Close; every call's context derives from it.
	base     context.Context
	stopBase context.CancelFunc

	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup
	conns  map[string]*grpc.ClientConn
}

var _ wasm.Upstreams = (*Static)(nil)

// cluster is a validated Cluster with its HTTP transport.
type cluster struct {
	name string
	Cluster
	scheme    string
	transport *http.Transport
}

// NewStatic validates cfg and builds the transports. It reports every bad
// cluster at once, naming the cluster and the field.
func NewStatic(cfg Config) (*Static, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	maxBody := cfg.MaxResponseBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxResponseBytes
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	names := make([]string, 0, len(cfg.Clusters))
	for n := range cfg.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		errs = append(errs, validate(n, cfg.Clusters[n])...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	newTransport := func(protos func(*http.Protocols), tlsConf *tls.Config) *http.Transport {
		t := &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: dialTimeout,
			MaxIdleConnsPerHost: maxIdleConnsPerHost,
			IdleConnTimeout:     idleConnTimeout,
			// A callout's response is handed to the filter as sent.
			DisableCompression: true,
			Protocols:          new(http.Protocols),
		}
		protos(t.Protocols)
		return t
	}
	// Plaintext clusters share one transport per protocol, which pools
	// connections per address.
	h1 := newTransport(func(p *http.Protocols) { p.SetHTTP1(true) }, nil)
	h2c := newTransport(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }, nil)

	base, stop := context.WithCancel(context.Background())
	s := &Static{
		clusters: make(map[string]*cluster, len(cfg.Clusters)),
		log:      log.With(zap.String("component", "upstream")),
		maxBody:  maxBody,
		base:     base,
		stopBase: stop,
		conns:    map[string]*grpc.ClientConn{},
		dynamic:  cfg.Lookup,
	}
	for n, c := range cfg.Clusters {
		cl := &cluster{name: n, Cluster: c, scheme: "http"}
		switch c.Protocol {
		case HTTP1:
			cl.transport = h1
		case H2C:
			cl.transport = h2c
		case TLS:
			cl.scheme = "https"
			cl.transport = newTransport(func(p *http.Protocols) {
				p.SetHTTP1(true)
				p.SetHTTP2(true)
			}, cl.tlsConfig())
		}
		s.clusters[n] = cl
	}
	return s, nil
}

// validate returns the problems of one cluster.
func validate(name string, c Cluster) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("upstream: cluster %q: %s: %s", name, field, fmt.Sprintf(format, args...)))
	}
	if name == "" {
		bad("name", "empty")
	}
	host, port, err := net.SplitHostPort(c.Address)
	switch {
	case err != nil:
		bad("address", "%q is not host:port: %v", c.Address, err)
	case host == "":
		bad("address", "%q has no host", c.Address)
	default:
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			bad("address", "%q has no valid port", c.Address)
		}
	}
	if c.Protocol < HTTP1 || c.Protocol > TLS {
		bad("protocol", "unknown %v", c.Protocol)
	}
	if c.Protocol != TLS && (c.RootCAs != nil || c.ServerName != "") {
		bad("protocol", "root_cas and server_name need protocol tls, not %v", c.Protocol)
	}
	return errs
}

func (c *cluster) tlsConfig() *tls.Config {
	name := c.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(c.Address)
	}
	return &tls.Config{RootCAs: c.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
}

// lookup returns the named cluster.
func (s *Static) lookup(name string) (*cluster, error) {
	c, ok := s.clusters[name]
	if ok {
		return c, nil
	}
	if s.dynamic != nil {
		if dc, ok := s.dynamic(name); ok {
			return &cluster{name: name, Cluster: dc, scheme: "http"}, nil
		}
	}
	return nil, fmt.Errorf("upstream: cluster %q: %w", name, wasm.ErrUnknownCluster)
}

// begin registers a call; false after Close.
func (s *Static) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.calls.Add(1)
	return true
}

// callContext derives a call's context from the Static's (ended by Close)
// and the caller's, with the timeout if any.
func (s *Static) callContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(s.base)
	stop := context.AfterFunc(ctx, cancel)
	if timeout > 0 {
		var cancelT context.CancelFunc
		cctx, cancelT = context.WithTimeout(cctx, timeout)
		inner := cancel
		cancel = func() { cancelT(); inner() }
	}
	return cctx, func() { stop(); cancel() }
}

// Close ends every call in flight (their handlers see a cancellation, the
// host drops it), closes idle connections and the gRPC connections, and
// returns once the calls' goroutines have finished.
func (s *Static) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = map[string]*grpc.ClientConn{}
	s.mu.Unlock()

	s.stopBase()
	s.calls.Wait()
	var errs []error
	for _, name := range sortedKeys(conns) {
		if err := conns[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("upstream: cluster %q: close grpc connection: %w", name, err))
		}
	}
	seen := map[*http.Transport]bool{}
	for _, c := range s.clusters {
		if !seen[c.transport] {
			seen[c.transport] = true
			c.transport.CloseIdleConnections()
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
