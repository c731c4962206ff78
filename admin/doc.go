// Package admin serves Envoy's admin HTTP endpoints on the bootstrap's
// admin.address.
//
// The server builds one Admin with New, giving it the parts of the process
// it reports on through the small interfaces of interfaces.go (Server,
// Logging, Listeners, Clusters, ConfigDumpers, Runtime, Certificates) and
// the stats store, then calls Serve(ctx, listener). The admin package
// imports none of those components; the server adapts them. A part left
// nil answers as a server without that part would (no clusters, no
// runtime layers, ...).
//
// Endpoints, as in Envoy: a request is routed on its exact path (the query
// is the handler's); an unknown path answers 404 with the help text; an
// endpoint that changes state (/healthcheck/fail, /logging, /quitquitquit,
// /runtime_modify, /drain_listeners, /reset_counters, ...) answers any
// method but POST with 405 "Method GET not allowed, POST required.". Text
// answers are "text/plain; charset=UTF-8", JSON answers are
// "application/json" marshalled with protojson from go-control-plane's
// envoy.admin.v3 types, and every answer carries "cache-control: no-cache,
// max-age=0" and "x-content-type-options: nosniff". HTTP/1.1 and HTTP/2
// with prior knowledge (h2c) are both served, as Envoy's admin codec is
// AUTO.
//
// Admin owns the health-check-failed flag: POST /healthcheck/fail sets it,
// /healthcheck/ok clears it, and HealthCheckFailed reports it to the
// server and the health check filter. While it is set /ready and
// /server_info report a LIVE server as DRAINING, as Envoy does.
//
// Where wasmesh differs from Envoy, on purpose or where Envoy's docs are
// silent:
//   - GET /logging without parameters lists the loggers (Envoy wants POST
//     even to list); any GET that would change a level is refused with 405.
//   - "/" is a small HTML page listing the endpoints, not Envoy's full UI;
//     /stats accepts format=text|json|prometheus (no html modes).
//   - /clusters lists clusters sorted by name (Envoy's order is its hash
//     map's).
//   - ?mask= on /config_dump also reaches through Any fields and applies a
//     path under a repeated field to each element; Envoy trims only the
//     outer message there (with ?resource=, one Any level, as Envoy).
//     Unknown mask paths trim, as in Envoy; they are not errors.
//   - ?name_regex= is RE2 matched against the whole name (Envoy's
//     RegexMatcher semantics); the bootstrap section is never filtered.
//   - /memory maps Go's runtime.MemStats onto Envoy's tcmalloc fields (see
//     memory.go).
//   - Redaction follows udpa.annotations.sensitive as Envoy's
//     MessageUtil::redact does, including through Any fields; TypedStruct
//     wrapped configs are not unwrapped.
package admin
