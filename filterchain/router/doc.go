// Package router is envoy.filters.http.router, the terminal HTTP filter: it
// turns a route match into an upstream request (header mutations, path and
// host rewrites, timeouts, retries with back-off) sent through the cluster
// manager, or into the local reply a direct_response, redirect, missing
// route or failed upstream calls for, with Envoy's status codes, bodies and
// response flags.
package router
