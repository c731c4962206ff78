package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/stats"
)

// Status is what a filter callback returns.
type Status int

// Statuses.
const (
	// Continue passes the data (or the new connection) to the next filter.
	Continue Status = iota
	// StopIteration holds it at this filter until Conn.Continue.
	StopIteration
)

// Direction is one way through the connection.
type Direction int

// Directions.
const (
	// Read is downstream to upstream (Envoy's read filters).
	Read Direction = iota
	// Write is upstream to downstream (Envoy's write filters).
	Write
)

func (d Direction) String() string {
	if d == Read {
		return "read"
	}
	return "write"
}

// Peer says who ended one side of a connection.
type Peer int

// Peers (proxy_peer_type_t's values).
const (
	PeerUnknown Peer = 0
	// PeerLocal: the proxy closed it.
	PeerLocal Peer = 1
	// PeerRemote: the other end closed it.
	PeerRemote Peer = 2
)

// Info are the downstream connection's facts.
type Info struct {
	ID          uint64
	Local       netip.AddrPort
	Remote      netip.AddrPort
	OriginalDst netip.AddrPort
	TLS         bool
	SNI         string
	// FilterChain is the name of the matched filter chain.
	FilterChain string
}

// Filter is one connection's instance of a read/write network filter.
// Callbacks of one connection never run concurrently.
type Filter interface {
	// OnNewConnection runs once, before any data.
	OnNewConnection() Status
	// OnDownstreamData gets everything buffered for the read direction and
	// returns it, possibly changed.
	OnDownstreamData(data []byte, endStream bool) ([]byte, Status)
	// OnUpstreamData is the same for the write direction.
	OnUpstreamData(data []byte, endStream bool) ([]byte, Status)
	// OnDownstreamClose and OnUpstreamClose report how each side ended.
	OnDownstreamClose(peer Peer)
	OnUpstreamClose(peer Peer)
	// OnDestroy releases the filter's per-connection state.
	OnDestroy()
}

// FilterConfig is a compiled non-terminal filter.
type FilterConfig interface {
	NewFilter(c *Conn) Filter
}

// Upstream is what a terminal filter connects the session to.
type Upstream struct {
	// Conn is the upstream connection; the session closes it.
	Conn net.Conn
	// Host is the upstream address, for logs.
	Host string
	// IdleTimeout closes the connection after this long without data in
	// either direction (0: never).
	IdleTimeout time.Duration
	// Stats, when set, receives byte counts and events.
	Stats *ProxyStats
}

// ProxyStats are the counters a terminal filter asks the session to keep
// (tcp.<stat_prefix>.*). Nil fields are skipped.
type ProxyStats struct {
	RxBytes       *stats.Counter // downstream_cx_rx_bytes_total
	TxBytes       *stats.Counter // downstream_cx_tx_bytes_total
	IdleTimeout   *stats.Counter // idle_timeout
	UpstreamFlush *stats.Counter // upstream_flush_total
}

// TerminalConfig is a compiled terminal filter, the last of a chain.
type TerminalConfig interface {
	// Open is called when every read filter let the new connection
	// through. It returns the upstream the session copies to, or nil when
	// the terminal answered by itself (through Conn.WriteDownstream and
	// Conn.Close).
	Open(ctx context.Context, c *Conn) (*Upstream, error)
}

// Closer is implemented by configs that hold resources (a Wasm plugin).
type Closer interface {
	Close()
}

// Dialer opens upstream connections to clusters (the cluster manager
// implements it). origDst is the downstream's original destination, for
// ORIGINAL_DST clusters (invalid when unknown). It returns the connection
// and the upstream host's address.
type Dialer interface {
	Dial(ctx context.Context, cluster string, origDst netip.AddrPort) (net.Conn, string, error)
}

// Env carries the shared objects filters compile against.
type Env struct {
	Logger *zap.Logger
	Stats  *stats.Store
	Dialer Dialer
	// Filters is the HTTP filters' environment; the network Wasm filter
	// uses its Wasm runtime, concurrency and values.
	Filters *filterchain.Env
	Now     func() time.Time
}

// Factory turns one filter type's typed config into a FilterConfig or a
// TerminalConfig (Envoy's NamedNetworkFilterConfigFactory).
type Factory interface {
	TypeURLs() []string
	// Compile compiles the filters entry called name. The result is a
	// FilterConfig or a TerminalConfig.
	Compile(ctx context.Context, name string, cfg *anypb.Any, env *Env) (any, error)
}

// Registry maps type URLs to factories. Filter packages add themselves
// with a Register(*Registry) function; there is no global registry.
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Add registers f for each of its type URLs.
func (r *Registry) Add(f Factory) {
	for _, u := range f.TypeURLs() {
		r.factories[u] = f
	}
}

// Lookup returns the factory for a type URL.
func (r *Registry) Lookup(typeURL string) (Factory, bool) {
	f, ok := r.factories[typeURL]
	return f, ok
}

// TypeURLs lists the registered type URLs, sorted.
func (r *Registry) TypeURLs() []string {
	out := make([]string, 0, len(r.factories))
	for u := range r.factories {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// Chain is a compiled network filter chain: filters then one terminal.
type Chain struct {
	Filters  []FilterConfig
	Terminal TerminalConfig
	// BufferLimit is the listener's per_connection_buffer_limit_bytes:
	// how much a direction queues before it stops reading.
	BufferLimit int
	Logger      *zap.Logger
}

// Close releases the configs' resources.
func (ch *Chain) Close() {
	for _, f := range ch.Filters {
		if c, ok := f.(Closer); ok {
			c.Close()
		}
	}
	if c, ok := ch.Terminal.(Closer); ok {
		c.Close()
	}
}

// Compile compiles filter configs from a registry: every entry but the
// last must be a FilterConfig, the last a TerminalConfig.
func Compile(ctx context.Context, reg *Registry, env *Env, entries []NamedConfig) (*Chain, error) {
	ch := &Chain{Logger: env.Logger}
	if ch.Logger == nil {
		ch.Logger = zap.NewNop()
	}
	fail := func(err error) (*Chain, error) {
		ch.Close()
		return nil, err
	}
	for i, e := range entries {
		path := fmt.Sprintf("filters[%d]", i)
		if e.Config == nil {
			return fail(fmt.Errorf("%s.typed_config: missing", path))
		}
		f, ok := reg.Lookup(e.Config.GetTypeUrl())
		if !ok {
			return fail(fmt.Errorf("%s: unsupported network filter type %q", path, e.Config.GetTypeUrl()))
		}
		c, err := f.Compile(ctx, e.Name, e.Config, env)
		if err != nil {
			return fail(fmt.Errorf("%s (%s): %w", path, e.Name, err))
		}
		last := i == len(entries)-1
		switch c := c.(type) {
		case TerminalConfig:
			if !last {
				if cl, ok := c.(Closer); ok {
					cl.Close()
				}
				return fail(fmt.Errorf("%s (%s): a terminal filter must be the last in the chain", path, e.Name))
			}
			ch.Terminal = c
		case FilterConfig:
			ch.Filters = append(ch.Filters, c)
			if last {
				return fail(fmt.Errorf("%s (%s): the last filter must be a terminal filter (tcp_proxy, direct_response, http_connection_manager)", path, e.Name))
			}
		default:
			return fail(fmt.Errorf("%s (%s): factory returned %T", path, e.Name, c))
		}
	}
	if ch.Terminal == nil {
		return fail(fmt.Errorf("filters: empty"))
	}
	return ch, nil
}

// NamedConfig is one filters entry.
type NamedConfig struct {
	Name   string
	Config *anypb.Any
}
