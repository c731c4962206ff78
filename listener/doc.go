// Package listener compiles envoy.config.listener.v3.Listener into a
// running listener and serves its connections.
//
// Compile validates the proto (unimplemented fields that change behaviour
// are errors naming the field: `listener "ingress".filter_chains[1]...`)
// and builds an immutable Listener: listener filters (tls_inspector,
// http_inspector, original_dst), filter chains with their
// filter_chain_match, DownstreamTlsContext (package tlsctx) and network
// filters. A chain ending in http_connection_manager is served by
// listener/hcm's own HTTP/1.1 and HTTP/2 codecs (hcm.H1Server); any
// other chain runs in a network.Conn session (packages network, tcpproxy,
// directresponse, netwasm).
//
// Per connection: accept → listener filters peek at the first bytes
// without consuming them (under listener_filters_timeout) → the original
// destination may hand the connection to the listener bound to it
// (use_original_dst) → the filter chain is chosen with Envoy's
// most-specific-wins order (destination port, destination IP, server name,
// transport protocol, application protocols, direct source IP, source
// type, source IP, source port; default_filter_chain when none) → TLS is
// terminated when the chain has a transport socket → the chain serves it.
//
// Lifecycle: Start binds (SO_REUSEADDR; SO_REUSEPORT with reuse_port) and
// serves; Adopt moves a bound socket to a newer compiled version of the
// same listener so a config change never closes the port (the accept loop
// belongs to the socket and hands each connection to the current
// version); Drain stops accepting (unless adopted), lets HTTP requests and
// TCP sessions finish, and closes what is left after the drain time; Stop
// closes everything and releases the filters' resources.
package listener
