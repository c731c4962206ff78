// Package tlsctx compiles Envoy's DownstreamTlsContext (the listener side
// of envoy.transport_sockets.tls) into a crypto/tls server configuration:
// certificates from files, inline data or static secrets by name, ALPN,
// protocol versions, cipher suites and curves under Envoy's OpenSSL names,
// require_sni, and client certificate validation (trusted CA, subject
// alternative name matchers, certificate hashes and SPKI pins,
// require_client_certificate). Fields that would change behaviour and are
// not implemented are errors naming the field.
package tlsctx
