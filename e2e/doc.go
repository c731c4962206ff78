// Package e2e holds the data plane's end-to-end tests: each test starts the
// real proxy (server.New + Start) from a bootstrap in testdata/ whose ports
// and paths are filled in by text/template, real upstreams on 127.0.0.1
// (HTTP/1.1, h2c, TLS, WebSocket, gRPC, raw TCP) and real clients, and
// asserts what a user of Envoy would observe: responses, headers, trailers,
// access log lines and admin endpoints.
//
// The package has no non-test code besides this file.
package e2e
