// Package header is the HTTP header map shared by the data plane and the
// Proxy-Wasm host: an ordered multimap with lower-case keys, where
// pseudo-headers (":method", ":path", ":authority", ":scheme", ":status")
// are ordinary fields, as Envoy and the Proxy-Wasm ABI see them.
package header
