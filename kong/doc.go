// Package kong runs wasmesh as a Kong gateway in DB-less mode: it reads
// Kong's configuration sources (KONG_* environment variables over a
// kong.conf file, see LoadSettings), translates the declarative config
// (kong.yml) into xDS resources with package xds/kong, serves them with the
// data plane (package server) and answers a DB-less Admin API on
// admin_listen (GET /, /status, services, routes, upstreams, targets, filter
// chains, /routes/{id}/filters/enabled, GET and POST /config).
//
// POST /config replaces the whole configuration: it is parsed, translated
// and every cluster validated first; then clusters are added or updated
// through the cluster manager and the listener set is swapped (sockets are
// kept), so requests never see a half-applied configuration and a rejected
// configuration leaves the old one serving.
//
// Entities without an id get a stable one: a UUID v5 (SHA-1, RFC 9562) in a
// fixed namespace of the entity's kind and name (or, for an unnamed entity,
// its owner and position), so ids survive restarts and reloads of the same
// file.
package kong
