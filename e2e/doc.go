// Package e2e holds the data plane's end-to-end tests: each test starts the
// real proxy (server.New + Start) from a bootstrap in testdata/ whose ports
// and paths are filled in by text/template, real upstreams on 127.0.0.1
// (HTTP/1.1, h2c, TLS, WebSocket, gRPC, raw TCP, DNS) and real clients, and
// asserts what a user of Envoy would observe: responses, headers, trailers,
// access log lines, log lines and admin endpoints.
//
// Conventions:
//   - Listeners and the admin bind port 0; tests read the bound addresses
//     from the server. Upstream ports are template values.
//   - Endpoints that must refuse connections are on 127.0.0.3, which no
//     test binds, so parallel tests cannot bring them back to life.
//   - The AssemblyScript filter is built with
//     wasm/testdata/asfilter/build.sh; its tests skip when npm is missing.
//
// The package has no non-test code besides this file.
package e2e
