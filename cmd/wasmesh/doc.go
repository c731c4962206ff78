// Command wasmesh is the wasmesh proxy. With Envoy's flags (or installed
// under the name envoy) it runs as Envoy would: wasmesh -c envoy.yaml.
// Its subcommands:
//
//	wasmesh demo [-filter path.wasm] [-config json] [-listen addr] [-serve]
//
// demo loads an example Proxy-Wasm filter, starts an embedded upstream and a
// small HTTP front that runs the filter, drives one real HTTP request through
// it and prints what the filter did. With -serve it keeps serving so curl can
// be pointed at it. The Envoy-compatible command line arrives with the data
// plane.
package main
