// Package xds holds the xDS client of the data plane, the xDS server of the
// control plane (on go-control-plane's server and caches), and the Kong to
// xDS translation. It is filled in by the xDS and Kong issues.
package xds
