// Package tcpproxy is envoy.filters.network.tcp_proxy: the terminal network
// filter that connects each downstream connection to an upstream host of a
// cluster (one cluster, or one picked per connection by weight from
// weighted_clusters), dialled through the cluster manager, and copies
// bytes both ways with half-close until both sides end or the connection
// idles for idle_timeout (default one hour; 0s disables it). It counts
// tcp.<stat_prefix>.* as Envoy does.
package tcpproxy
