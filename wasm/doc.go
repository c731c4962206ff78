// Package wasm is the Proxy-Wasm host of wasmesh, built on wazero.
//
// It loads modules written against the Proxy-Wasm ABI (0.1.0, 0.2.0 and
// 0.2.1), checks their imports before instantiating them, runs a configurable
// number of instances per VM, creates root and stream contexts, and implements
// every host function of the spec plus Envoy's properties and foreign
// functions, one file per ABI area (log.go, buffers.go, headers.go, ...).
//
// The data plane reaches it through a few types: Runtime (one per process),
// VM (a vm_id and its code, with N instances), Plugin (a root context per
// instance), HTTPStream and TCPStream (one per request or connection, pinned
// to one instance). The host reaches the proxy only through the small
// interfaces in env.go (Upstreams for callouts, Properties for stream facts,
// StreamCallbacks for resuming or closing a stream), which the data plane
// implements and tests implement with real sockets.
//
// Containment is the host's first duty: a guest pointer out of bounds answers
// INVALID_MEMORY_ACCESS, a trap, a callback past its deadline or memory growth
// past the page limit discards the instance, gives the stream its failure
// policy at once and counts the failure by kind; later streams run on fresh
// instances.
package wasm
