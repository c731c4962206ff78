// Package client is the data plane's xDS client: one aggregated (ADS)
// stream to a control plane, State-of-the-World (GRPC) or incremental
// (DELTA_GRPC), carrying clusters (CDS, wildcard), their endpoints (EDS, by
// the names of the EDS clusters) and listeners (LDS, wildcard).
//
// The client owns the protocol: subscriptions, ACK with version_info and
// response_nonce, NACK with error_detail naming the resource and the field
// while the previous version keeps serving, SotW removal of clusters and
// listeners absent from a response, delta removed_resources and
// initial_resource_versions on reconnect, reconnection with jittered
// exponential backoff and gRPC keepalive. What it accepts it hands to a
// DataPlane (the server implements it over its cluster manager and listener
// swap), in Envoy's order: clusters, then their endpoints, then listeners.
//
// Warming: an EDS cluster that is new (or changed) is handed to the data
// plane only once its ClusterLoadAssignment arrived, or when the
// initial_fetch_timeout of cds_config ran out (it then starts with no
// hosts). The LDS subscription starts once the first CDS response was
// applied and its clusters warmed (or CDS's initial fetch timed out), as
// Envoy's cluster manager initialisation gates LDS. Ready is closed once
// both CDS and LDS initialised.
//
// Decisions where Envoy's documentation is silent or Go differs:
//
//   - A CDS response with some bad clusters applies the good ones and
//     NACKs naming the bad ones (Envoy does the same); an LDS response is
//     all-or-nothing, because the data plane compiles the whole listener
//     set before swapping it.
//   - Keepalive pings every 5 minutes (20 s timeout): gRPC servers by
//     default refuse pings more frequent than 5 minutes.
//   - Backoff: base 500 ms, maximum 30 s, full jitter; reset once a
//     response arrives on a new stream.
//   - Only ADS is implemented: lds_config/cds_config must be `ads: {}`;
//     separate api_config_source streams, REST and path_config_source are
//     rejected naming the field.
package client
