// Package hcm is envoy.filters.network.http_connection_manager: it serves
// HTTP/1.1 and HTTP/2 (TLS ALPN and cleartext prior knowledge) with Go's
// net/http, turns each request into a filterchain.Stream, matches the route
// table, runs the route's compiled filter plan (request callbacks in order,
// response callbacks in reverse, pausing and resuming as filters ask),
// forwards through the router, and writes Envoy's access logs and
// http.<stat_prefix>.* statistics.
package hcm
