// Package client is the data plane's xDS client: one aggregated (ADS)
// stream to a control plane, State-of-the-World (GRPC) or incremental
// (DELTA_GRPC), carrying clusters (CDS, wildcard), their endpoints (EDS, by
// the names of the EDS clusters), listeners (LDS, wildcard) and route
// configurations (RDS, by the names the listeners' connection managers
// give in rds.route_config_name).
//
// CDS, LDS, EDS, SDS, RTDS, RDS and ECDS may instead come from separate
// config sources, each on its own stream or REST poller (see Config
// sources below).
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
// both CDS and LDS initialised. Later, an LDS response arriving while a new
// cluster warms is held (not yet ACKed) until the cluster is in, so a
// listener routing to it passes validate_clusters.
//
// Decisions where Envoy's documentation is silent or Go differs:
//
//   - A CDS response with some bad clusters applies the good ones and
//     NACKs naming the bad ones (Envoy does the same); an LDS response is
//     all-or-nothing, because the data plane compiles the whole listener
//     set before swapping it.
//   - Keepalive pings every 5 minutes (20 s timeout): gRPC servers by
//     default refuse pings more frequent than 5 minutes.
//   - Backoff: base 500 ms, maximum 30 s, full jitter, per stream; reset
//     once a response arrives. A failed REST poll is retried after
//     refresh_delay. control_plane.connected_state is 1 while every
//     stream is up. Warming EDS clusters wait the cds_config
//     initial_fetch_timeout, whatever their eds_config says.
//   - Config sources (channels.go): ADS (`ads: {}`), a separate
//     api_config_source for cds_config, lds_config, EDS clusters'
//     eds_config, secrets' sds_config and rtds_config (GRPC or DELTA_GRPC
//     on the type's own service, one stream per type; or REST polling
//     every refresh_delay), or
//     path_config_source for both CDS and LDS (a file holding a
//     DiscoveryResponse, re-read when its content changes, checked every
//     second; replace it atomically). Every stream, poller and the file
//     check feed one event loop owning all state, so the handling is the
//     same whatever the transport; each stream backs off and reconnects on
//     its own. The EDS clusters of a data plane share one config source
//     (a cluster naming another is rejected, naming
//     eds_cluster_config.eds_config), and the SDS secrets one too. RDS
//     and ECDS likewise (sources.go): a connection manager's
//     rds.config_source and its HTTP filters' config_discovery
//     config_source are checked when it compiles (listener/hcm asks
//     Sources.Use through the server); the first valid source seen for
//     the type (in an arriving LDS response, a static listener, or at
//     compile) is taken before its names are requested and kept; a
//     second one fails the listener naming the field. The type's channel
//     opens when its names are first due.
//     Resource types: Cluster, ClusterLoadAssignment, Listener,
//     RouteConfiguration, Secret, TypedExtensionConfig and Runtime;
//     other type URLs in a response are NACKed.
//   - RTDS (rtds.go): the layered_runtime's rtds_layers are subscribed by
//     name from start-up (one config source for all); Ready waits for
//     their first answer or the shortest initial_fetch_timeout. A layer is
//     flattened to dotted keys and handed to the data plane
//     (RuntimeUpdater); a list or null value NACKs that layer, the last
//     one staying. A delta removal empties the layer (as Envoy's), a SotW
//     response without it keeps it.
//   - ECDS (ecds.go): HTTP filters with config_discovery are subscribed
//     by their names; an LDS response is held until each such filter's
//     TypedExtensionConfig arrives (or is rejected, or its
//     initial_fetch_timeout passes), except for filters with
//     default_config and apply_default_config_without_warming. A removal
//     keeps the last configuration, as for RDS.
//   - SDS (secrets.go): secrets are subscribed by the names the clusters
//     (serving and warming), the serving listeners and the held LDS
//     responses read in their TLS contexts (sds_config `ads: {}` or an
//     api_config_source). A
//     cluster warms, and an LDS response is held, until its secrets
//     arrive, their first version is rejected, or their sds_config
//     initial_fetch_timeout passes. Accepted secrets go into the Secrets
//     store, which compiled TLS contexts read at each handshake: a
//     rotation recompiles nothing. Each secret is checked by the data
//     plane (SecretValidator); a bad one is NACKed while its previous
//     value serves, the others of the response are applied. A removed
//     secret keeps its last value.
//   - RDS warming: an LDS response naming a route configuration that has
//     not arrived is held until it arrives (accepted or rejected) or the
//     rds config_source's initial_fetch_timeout passes; the listener then
//     serves without routes (404 NR) until they come. An RDS removal
//     (delta removed_resources, or a SotW response without the name) is
//     ignored as Envoy ignores it: the last routes keep serving. A SotW
//     response without a waited-for name does not end the wait.
//   - An EDS assignment removed by the control plane (delta
//     removed_resources, or a cluster no longer watched) leaves the
//     cluster's current hosts in place.
//   - client_features is left empty: the cluster manager honours
//     overprovisioning_factor, so envoy.lb.does_not_support_overprovisioning
//     would be wrong. user_agent_name "envoy" and a user_agent_build_version
//     are filled in when the node has none.
//   - The server (server.StartXDS) starts its static listeners before the
//     xDS client initialises; Envoy holds every listener until then. The
//     server reports INITIALIZING until Ready.
//
// Stats (through Stats): control_plane.connected_state, and for CDS
// (cluster_manager.cds.) and LDS (listener_manager.lds.) update_attempt,
// update_success, update_rejected, update_failure (stream failures),
// init_fetch_timeout and update_time.
package client
