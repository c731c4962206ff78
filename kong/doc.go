// Package kong runs wasmesh as a Kong gateway in DB-less mode: it reads
// Kong's configuration sources (KONG_* environment variables over a
// kong.conf file, see LoadSettings), translates the declarative config
// (kong.yml) into xDS resources with package xds/kong, serves them with the
// data plane (package server) and answers a DB-less Admin API on
// admin_listen (GET /, /status, services, routes, upstreams, targets, filter
// chains, /routes/{id}/filters/enabled, GET and POST /config).
//
// POST /config replaces the whole configuration: it is parsed, translated
// and every cluster validated first; then clusters are added or updated
// through the cluster manager and the listener set is swapped (sockets are
// kept), so requests never see a half-applied configuration and a rejected
// configuration leaves the old one serving.
//
// Hybrid mode (hybrid.go): with role = control_plane, Start translates the
// configuration as usual but, instead of proxying, serves the resources
// over ADS (State of the World and delta, go-control-plane's server and
// snapshot cache) on cluster_listen; every POST /config publishes a new
// snapshot. With role = data_plane, Start runs the proxy from a generated
// bootstrap whose ADS reaches cluster_control_plane through a static
// cluster (TLS with the shared cluster_cert when it is set) and serves no
// Admin API.
//
// Entities without an id get a stable one: a UUID v5 (SHA-1, RFC 9562) in a
// fixed namespace of the entity's kind and name (or, for an unnamed entity,
// its owner and position), so ids survive restarts and reloads of the same
// file.
package kong

// Decisions where Kong and the data plane differ:
//
//   - database defaults to off (Kong's default is postgres); any other value
//     is an error naming the key. Keys wasmesh knows but cannot honour
//     (stream_listen, status_listen, router_flavor = expressions, plugins,
//     trusted_ips, cluster_mtls = pki, cluster_ca_cert, ...) are errors
//     naming the key and where it was set (kong.conf line or KONG_
//     variable); unknown keys are warnings.
//   - Hybrid mode: the control plane has one snapshot for every node (its
//     node hash maps every node id onto SnapshotNode), as every Kong data
//     plane gets the same configuration; a data plane with its own
//     proxy_listen sends it in the node metadata (ProxyListenMetadata) and
//     gets a snapshot translated for it, shared by data planes with the
//     same proxy_listen. A version is a hash of the resources, so an
//     unchanged configuration is not pushed again and a restarted control
//     plane does not reuse a version for other contents. A data plane's
//     admin_listen or declarative_config is an error naming it. Kong's control plane
//     needs a database; wasmesh's is DB-less (kong.yml and POST /config).
//     Certificates travel inline in the TLS contexts (ssl_cert's files are
//     read on the control plane): a secret named without sds_config would
//     be a static secret the data plane does not have. Without
//     cluster_cert the xDS connection is plain gRPC (Kong requires the
//     certificate); with it, cluster_mtls = shared: the control plane
//     accepts only a client presenting cluster_cert itself, the data plane
//     trusts only cluster_cert and asks for server name kong_clustering.
//   - proxy_access_log defaults to off and proxy_error_log to stderr:
//     wasmesh has no prefix directory of its own (a relative path is taken
//     under prefix when prefix is set, else under the working directory).
//   - An ssl entry of proxy_listen serves Kong's certificates by SNI and
//     ssl_cert/ssl_cert_key to every other client (xds/kong translates
//     it); with neither it is skipped with a warning (Kong would generate
//     a self-signed certificate). An ssl admin_listen entry needs ssl_cert.
//   - A POST /config that adds certificates needs a restart: the data
//     plane's secrets are fixed when it starts.
//   - A connection opened before a POST /config finishes on the previous
//     configuration while it drains (Envoy's listener update: HTTP/1
//     responses carry Connection: close, HTTP/2 gets GOAWAY); Kong applies
//     a new configuration to the next request of every connection.
//   - Clusters a new configuration no longer uses are removed after twice
//     the drain time plus a second, so requests on draining connections
//     still reach them.
//   - GET /status reports total_requests and connections_writing from the
//     proxy's statistics and zeros for nginx's other connection counters.
