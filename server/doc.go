// Package server is the wasmesh proxy process: Envoy's command-line options,
// loading and validating the bootstrap, compiling it into a snapshot,
// serving listeners and the admin endpoints, swapping snapshots atomically,
// draining on SIGTERM/SIGINT or /quitquitquit.
package server
