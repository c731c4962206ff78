// Package tlsctx compiles Envoy's DownstreamTlsContext (the listener side
// of envoy.transport_sockets.tls) into a crypto/tls server configuration:
// certificates from files, inline data, static secrets by name or secrets
// delivered over SDS, ALPN, protocol versions, cipher suites and curves
// under Envoy's OpenSSL names, require_sni, and client certificate
// validation (trusted CA, subject alternative name matchers, certificate
// hashes and SPKI pins, require_client_certificate; inline, from a
// secret, or combined). Fields that would change behaviour and are not
// implemented are errors naming the field.
//
// SDS: an SdsSecretConfig with sds_config is read through the lookup's
// SDSLookup, a reader of the secret's current value. The compiled Server
// checks the readers at every handshake (GetConfigForClient) and rebuilds
// its configuration once after a secret changed, so a rotation applies to
// new handshakes without recompiling the listener, and open connections
// keep the certificate they were made with. CheckSecret is what the xDS
// client runs before accepting a secret (a NACK names the secret and the
// field).
package tlsctx
