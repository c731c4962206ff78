package netwasm

import (
	"context"
	"errors"
	"fmt"

	netwasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/wasm/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain/wasmfilter"
	"github.com/wasmesh/wasmesh/listener/network"
	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/pluginconfig"
)

// TypeURL is the filter's typed_config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"

// PropertiesFunc builds the wasm.Properties of a connection; the data
// plane may set it under EnvKeyConnProperties in the filter environment's
// values so plugins see Envoy's connection attributes.
type PropertiesFunc func(c *network.Conn) wasm.Properties

// EnvKeyConnProperties is the filterchain.Env.Values key of a
// PropertiesFunc.
const EnvKeyConnProperties = "wasm.connection_properties"

// Register adds the filter's factory to r.
func Register(r *network.Registry) { r.Add(factory{}) }

type factory struct{}

func (factory) TypeURLs() []string { return []string{TypeURL} }

func (factory) Compile(ctx context.Context, _ string, raw *anypb.Any, env *network.Env) (any, error) {
	cfg := &netwasmv3.Wasm{}
	if err := raw.UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	if err := cfg.ValidateAll(); err != nil {
		return nil, err
	}
	fe := env.Filters
	if fe == nil || fe.Wasm == nil {
		return nil, errors.New("no Proxy-Wasm runtime configured")
	}
	loaded, err := wasmfilter.LoadPlugin(ctx, fe, cfg.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("config.%w", err)
	}
	c := &Config{loaded: loaded}
	if pf, ok := fe.Values[EnvKeyConnProperties].(PropertiesFunc); ok {
		c.props = pf
	}
	return c, nil
}

// Config is a loaded plugin shared by every connection of the filter.
type Config struct {
	loaded *pluginconfig.Loaded
	props  PropertiesFunc
}

var (
	_ network.FilterConfig = (*Config)(nil)
	_ network.Closer       = (*Config)(nil)
)

// Plugin is the running plugin.
func (c *Config) Plugin() *wasm.Plugin { return c.loaded.Plugin }

// Close stops the plugin.
func (c *Config) Close() { c.loaded.Close() }

// NewFilter starts the plugin's TCP context for a connection.
func (c *Config) NewFilter(conn *network.Conn) network.Filter {
	f := &filter{conn: conn}
	opts := wasm.StreamOptions{Callbacks: f}
	if c.props != nil {
		opts.Properties = c.props(conn)
	}
	f.s = c.loaded.Plugin.NewTCPStream(opts)
	return f
}

// filter adapts a wasm.TCPStream to network.Filter; it is also the
// stream's callbacks.
type filter struct {
	conn *network.Conn
	s    *wasm.TCPStream
}

func status(a wasm.Action) network.Status {
	if a == wasm.ActionContinue {
		return network.Continue
	}
	return network.StopIteration
}

func (f *filter) OnNewConnection() network.Status { return status(f.s.OnNewConnection()) }

func (f *filter) OnDownstreamData(b []byte, end bool) ([]byte, network.Status) {
	out, a := f.s.OnDownstreamData(b, end)
	return out, status(a)
}

func (f *filter) OnUpstreamData(b []byte, end bool) ([]byte, network.Status) {
	out, a := f.s.OnUpstreamData(b, end)
	return out, status(a)
}

func (f *filter) OnDownstreamClose(p network.Peer) { f.s.OnDownstreamClose(wasm.PeerType(p)) }
func (f *filter) OnUpstreamClose(p network.Peer)   { f.s.OnUpstreamClose(wasm.PeerType(p)) }
func (f *filter) OnDestroy()                       { f.s.Close() }

// wasm.StreamCallbacks

func (f *filter) ContinueStream(t wasm.StreamType) {
	if t == wasm.StreamUpstream {
		f.conn.Continue(network.Write)
		return
	}
	f.conn.Continue(network.Read)
}

// CloseStream closes the connection, as Envoy does for either direction.
func (f *filter) CloseStream(wasm.StreamType)           { f.conn.Close() }
func (f *filter) SendLocalResponse(*wasm.LocalResponse) {}
func (f *filter) ClearRouteCache()                      {}
