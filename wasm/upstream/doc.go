// Package upstream sends the HTTP and gRPC callouts of Proxy-Wasm filters.
//
// Static implements wasm.Upstreams over a fixed table of clusters, each a
// host:port with how to speak to it: plaintext HTTP/1.1, h2c (HTTP/2 with
// prior knowledge) or TLS with its own CA pool. HTTP callouts go through
// net/http transports that keep connections alive and send and receive
// trailers; gRPC callouts go through one grpc-go ClientConn per cluster with
// a codec that passes message bytes through untouched, so a filter speaks to
// any method without the host knowing its protos.
//
// Static is what tests use, with real servers on 127.0.0.1, and what the
// first version of the data plane uses until clusters come from xDS. Close
// stops every call in flight and returns once their goroutines are gone.
package upstream
