package wasmfilter

import (
	"context"
	"fmt"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"

	httpwasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/pluginconfig"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"

// EnvKeyRemote is the filterchain.Env.Values key of a
// pluginconfig.RemoteFetcher (the cluster manager) for remote code.
const EnvKeyRemote = "wasm.remote_fetcher"

// EnvKeyProperties is the Env.Values key of a wasm.Properties for root
// contexts (node, xds facts).
const EnvKeyProperties = "wasm.root_properties"

// PropertiesFunc builds the wasm.Properties of a stream from its info; the
// data plane sets it (Env.Values[EnvKeyStreamProperties]) so plugins see
// Envoy's request/connection/upstream properties.
type PropertiesFunc func(s *filterchain.Stream) wasm.Properties

// EnvKeyStreamProperties is the Env.Values key of a PropertiesFunc.
const EnvKeyStreamProperties = "wasm.stream_properties"

// Register adds the filter's factory to r.
func Register(r *filterchain.Registry) { r.Add(factory{}) }

type factory struct{}

func (factory) TypeURLs() []string { return []string{TypeURL} }

func (factory) Compile(ctx context.Context, name string, raw *anypb.Any, env *filterchain.Env) (filterchain.Config, error) {
	cfg := &httpwasmv3.Wasm{}
	if err := raw.UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	if err := cfg.ValidateAll(); err != nil {
		return nil, err
	}
	if env.Wasm == nil {
		return nil, fmt.Errorf("no Proxy-Wasm runtime configured")
	}
	loaded, err := LoadPlugin(ctx, env, cfg.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("config.%w", err)
	}
	c := &Config{loaded: loaded}
	if pf, ok := env.Values[EnvKeyStreamProperties].(PropertiesFunc); ok {
		c.props = pf
	}
	return c, nil
}

// LoadPlugin loads a PluginConfig with the process settings the filter
// environment carries (instances per VM, remote code fetcher, root
// properties). The HTTP and the network Wasm filters both use it.
func LoadPlugin(ctx context.Context, env *filterchain.Env, pc *wasmv3.PluginConfig) (*pluginconfig.Loaded, error) {
	opts := pluginconfig.Options{Instances: env.Concurrency}
	if f, ok := env.Values[EnvKeyRemote].(pluginconfig.RemoteFetcher); ok {
		opts.Remote = f
	}
	if p, ok := env.Values[EnvKeyProperties].(wasm.Properties); ok {
		opts.Properties = p
	}
	return pluginconfig.Load(ctx, env.Wasm, pc, opts)
}

// Config is a loaded plugin, shared by every stream of the filter.
type Config struct {
	loaded *pluginconfig.Loaded
	props  PropertiesFunc
}

var (
	_ filterchain.Config     = (*Config)(nil)
	_ filterchain.Closer     = (*Config)(nil)
	_ filterchain.BodyFilter = (*Config)(nil)
)

// Plugin is the running plugin.
func (c *Config) Plugin() *wasm.Plugin { return c.loaded.Plugin }

// Close stops the plugin.
func (c *Config) Close() { c.loaded.Close() }

// WantsBody reports whether the module exports the body callbacks.
func (c *Config) WantsBody(d filterchain.Direction) bool {
	if d == filterchain.Request {
		return c.loaded.VM.Module().Exports("proxy_on_request_body")
	}
	return c.loaded.VM.Module().Exports("proxy_on_response_body")
}

// NewFilter starts the plugin's HTTP context for a stream.
func (c *Config) NewFilter(s *filterchain.Stream) filterchain.Filter {
	f := &filter{stream: s}
	opts := wasm.StreamOptions{Callbacks: f}
	if c.props != nil {
		opts.Properties = c.props(s)
	}
	f.hs = c.loaded.Plugin.NewHTTPStream(opts)
	return f
}

// filter adapts one wasm.HTTPStream to filterchain.Filter; it is also the
// stream's wasm.StreamCallbacks.
type filter struct {
	stream *filterchain.Stream
	hs     *wasm.HTTPStream
}

func status(a wasm.Action) filterchain.Status {
	if a == wasm.ActionContinue {
		return filterchain.Continue
	}
	return filterchain.StopIteration
}

func (f *filter) OnRequestHeaders(s *filterchain.Stream, end bool) filterchain.Status {
	return status(f.hs.OnRequestHeaders(s.RequestHeaders, end))
}

func (f *filter) OnRequestBody(s *filterchain.Stream, b []byte, end bool) ([]byte, filterchain.Status) {
	out, a := f.hs.OnRequestBody(b, end)
	return out, status(a)
}

func (f *filter) OnRequestTrailers(s *filterchain.Stream) filterchain.Status {
	return status(f.hs.OnRequestTrailers(s.RequestTrailers))
}

func (f *filter) OnResponseHeaders(s *filterchain.Stream, end bool) filterchain.Status {
	return status(f.hs.OnResponseHeaders(s.ResponseHeaders, end))
}

func (f *filter) OnResponseBody(s *filterchain.Stream, b []byte, end bool) ([]byte, filterchain.Status) {
	out, a := f.hs.OnResponseBody(b, end)
	return out, status(a)
}

func (f *filter) OnResponseTrailers(s *filterchain.Stream) filterchain.Status {
	return status(f.hs.OnResponseTrailers(s.ResponseTrailers))
}

func (f *filter) OnLog(*filterchain.Stream)     { f.hs.Log() }
func (f *filter) OnDestroy(*filterchain.Stream) { f.hs.Close() }

// wasm.StreamCallbacks

func (f *filter) ContinueStream(t wasm.StreamType) {
	if t == wasm.StreamHTTPResponse {
		f.stream.Continue(filterchain.Response)
		return
	}
	f.stream.Continue(filterchain.Request)
}

func (f *filter) CloseStream(wasm.StreamType) { f.stream.Reset() }

func (f *filter) SendLocalResponse(r *wasm.LocalResponse) {
	f.stream.SendLocalReply(filterchain.LocalReply{
		Status:     int(r.StatusCode),
		Body:       r.Body,
		Headers:    r.Headers,
		Details:    r.Details,
		GRPCStatus: int(r.GRPCStatus),
	})
}

func (f *filter) ClearRouteCache() { f.stream.ClearRouteCache() }
