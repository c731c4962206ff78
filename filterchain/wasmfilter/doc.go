// Package wasmfilter is the envoy.filters.http.wasm HTTP filter: it runs a
// Proxy-Wasm plugin (loaded by wasm/pluginconfig) for each stream, maps the
// filter callbacks onto the plugin's HTTP context, and turns the plugin's
// requests (continue, local response, close, clear route cache) into stream
// controls. Register adds its factory to a filterchain.Registry.
package wasmfilter
