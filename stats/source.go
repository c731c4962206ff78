package stats

// Source contributes stats that live outside the store, read when an output
// is written. The Proxy-Wasm host's metric registry is one: its metrics are
// listed under the names the filter defined.
//
// Collect calls emit once per counter or gauge (kind is KindCounter or
// KindGauge). It runs on the admin goroutine, must not block for long and
// must not call back into the store.
type Source interface {
	Collect(emit func(name string, kind Kind, value uint64))
}

// HistogramSource is a Source that also has histograms. It keeps them as
// *Histogram values (NewHistogram), so they record lock-free and print with
// the same quantiles and buckets as the store's own.
type HistogramSource interface {
	Source
	CollectHistograms(emit func(name string, h *Histogram))
}

// SourceFunc adapts a function to Source.
type SourceFunc func(emit func(name string, kind Kind, value uint64))

// Collect calls f.
func (f SourceFunc) Collect(emit func(name string, kind Kind, value uint64)) { f(emit) }

// CustomNamespace is the namespace Envoy keeps Proxy-Wasm metrics in
// ("wasmcustom"). A source added with AddCustomSource is treated as living in
// it: tag extraction sees "wasmcustom.<name>", the text and JSON outputs show
// <name>, and Prometheus shows the sanitized <name> without the envoy_ prefix.
const CustomNamespace = "wasmcustom"

type sourceEntry struct {
	src    Source
	custom bool
}

// AddSource registers a source whose names are Envoy stat names, exported
// like the store's own (envoy_ prefix and tags in Prometheus). The returned
// function unregisters it.
func (s *Store) AddSource(src Source) (remove func()) { return s.addSource(src, false) }

// AddCustomSource registers a source of user-defined metrics, Envoy's custom
// stat namespace: this is how the Proxy-Wasm metric registry is exported.
// The returned function unregisters it.
func (s *Store) AddCustomSource(src Source) (remove func()) { return s.addSource(src, true) }

func (s *Store) addSource(src Source, custom bool) func() {
	e := &sourceEntry{src: src, custom: custom}
	s.mu.Lock()
	s.sources = append(s.sources, e)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.sources {
			if x == e {
				s.sources = append(s.sources[:i:i], s.sources[i+1:]...)
				return
			}
		}
	}
}
