// Package hcm is envoy.filters.network.http_connection_manager: it serves
// HTTP/1.1 (h1conn.go, h1parse.go, h1writer.go) and HTTP/2 (h2conn.go: TLS
// ALPN and cleartext prior knowledge) with its own codecs, turns each request into a filterchain.Stream, matches the route
// table, runs the route's compiled filter plan (request callbacks in order,
// response callbacks in reverse, pausing and resuming as filters ask),
// forwards through the router, and writes Envoy's access logs and
// http.<stat_prefix>.* statistics.
package hcm
