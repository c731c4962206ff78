// Package cluster is the upstream side of the data plane: it compiles
// Envoy's envoy.config.cluster.v3.Cluster (and ClusterLoadAssignment) into
// running clusters and sends requests and connections to their hosts.
//
// A Manager holds clusters by name. Add compiles a cluster (every problem
// is a *FieldError naming the field, e.g. `cluster "backend" lb_policy:
// ...`; a field that would change behaviour but is not implemented is an
// error, never ignored), warms it (first DNS resolution, first health
// check round) and swaps it in; Remove drops one; UpdateEndpoints replaces
// the endpoints of an EDS cluster. Each operation touches one cluster only,
// and Get is a lock-free map read, so the xDS client can apply CDS and EDS
// updates one resource at a time while traffic flows.
//
// A *Cluster serves requests with RoundTrip (HTTP, through pooled
// connections: HTTP/1.1 keep-alive with the package's own client (h1.go),
// HTTP/2 over TLS by ALPN or h2c prior knowledge with net/http's, chosen by
// http2_protocol_options or the
// envoy.extensions.upstreams.http.v3.HttpProtocolOptions extension) and
// connections with Dial (the TCP proxy). Both pick a host with the cluster's
// load balancer (package lb) over the healthy hosts of Envoy's priority
// levels, apply the circuit breakers, feed the outlier detector and count
// Envoy's cluster stats. Failures are typed: ErrNoHealthyUpstream (UH),
// ErrOverflow (UO), ErrConnectFailure (UF), ErrUpstreamReset (UC); the
// request's own deadline shows as context.DeadlineExceeded (UT).
//
// Cluster types: STATIC, STRICT_DNS and LOGICAL_DNS (package dns, through
// miekg/dns, with TTLs, refresh and failure backoff), ORIGINAL_DST (a host
// per original destination, from the load balancer context or the
// x-envoy-original-dst-host header), EDS (static load_assignment until
// UpdateEndpoints). Active health checks run in package health.
//
// Hosts keep their identity while their address stays, so health, outlier
// state and counters survive endpoint updates. The host set the load
// balancer reads is an immutable snapshot rebuilt on membership and health
// changes and swapped atomically; a pick does not lock or allocate.
//
// A cluster that has not served a request costs about 3 KB (a proxy may
// hold tens of thousands): its always-present stats are one stats block
// reached by position (StatsSlots), and the HTTP/1.1 pool, the HIGH
// priority circuit breaker, the connection-slot semaphore, the logger and
// the Ready channel are made on first use; up to 8 hosts are looked up by
// scanning rather than through maps.
//
// Decisions where Envoy's documentation is silent or Go differs:
//
//   - max_connections bounds HTTP/1.1 requests in flight (each holds one
//     connection); a request finding none free waits as pending, bounded by
//     max_pending_requests. For HTTP/2 only max_requests applies per
//     request. Idle keep-alive connections are not counted against the
//     limit.
//   - Hosts removed by EDS go at once, even while passing active health
//     checks (Envoy keeps them unless ignore_health_on_host_removal).
//   - RANDOM ignores endpoint weights, as Envoy's does.
//   - Without a validation_context the server certificate is not checked,
//     as in Envoy; with one, the chain is verified against trusted_ca and
//     the SANs against the matchers, but the name is never compared with
//     SNI (Envoy does not either). Client TLS defaults to TLS 1.2 only, as
//     Envoy's upstream default.
//   - HTTP/2 clusters send requests with an Upgrade header over HTTP/1.1.
//   - Health check connections do not count as upstream connections.
//   - max_requests_per_connection (common_http_protocol_options, or the
//     deprecated top-level field) closes an HTTP/1.1 connection after that
//     many requests; a cluster that may use HTTP/2 refuses it by name (the
//     HTTP/2 pool does not count streams).
package cluster
