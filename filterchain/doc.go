// Package filterchain defines the HTTP filter interface, compiles per-route
// execution plans, and holds the built-in filters (router, wasm, and a few
// native ones) with Kong's chain semantics.
package filterchain
