package filterchain

import (
	"context"
	"fmt"
	"sort"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/wasm"
)

// Config is a compiled filter configuration, shared by every stream that
// runs the filter. It makes one Filter per stream.
type Config interface {
	NewFilter(s *Stream) Filter
}

// Closer is implemented by configs that hold resources (a Wasm plugin);
// the snapshot that owns them closes them when it is retired.
type Closer interface {
	Close()
}

// PerRouteCompiler is implemented by configs that accept a per-route
// override in typed_per_filter_config; it returns the config to run on that
// route.
type PerRouteCompiler interface {
	CompilePerRoute(ctx context.Context, cfg *anypb.Any) (Config, error)
}

// Terminal is implemented by the config of a terminal filter (the router):
// it must be last and cannot be disabled.
type Terminal interface {
	IsTerminal() bool
}

// Env carries the shared resources filters compile against.
type Env struct {
	Logger *zap.Logger
	// Wasm is the process's Proxy-Wasm host.
	Wasm *wasm.Runtime
	// Concurrency is the number of Wasm instances per VM (Envoy's workers).
	Concurrency int
	// Values lets the server hand other shared objects (cluster manager,
	// stats store) to filters without an import cycle.
	Values map[string]any
}

// Factory turns one filter type's typed config into a Config (Envoy's
// NamedHttpFilterConfigFactory).
type Factory interface {
	// TypeURLs lists the typed_config type URLs it accepts.
	TypeURLs() []string
	// Compile compiles the config of the http_filters entry called name.
	Compile(ctx context.Context, name string, cfg *anypb.Any, env *Env) (Config, error)
}

// Registry maps type URLs to factories. Filter packages register
// themselves with a Register(*Registry) function; there is no global
// registry.
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

// TypeURLs lists every registered type URL, sorted.
func (r *Registry) TypeURLs() []string {
	out := make([]string, 0, len(r.factories))
	for u := range r.factories {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// UnknownFilterError names a filter whose type no factory accepts.
type UnknownFilterError struct {
	Path    string
	TypeURL string
}

func (e *UnknownFilterError) Error() string {
	return fmt.Sprintf("%s: unsupported filter type %q", e.Path, e.TypeURL)
}
