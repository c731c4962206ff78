// Package health runs Envoy's active health checks (a cluster's
// health_checks) against a changing set of targets: HTTP (HTTP/1.1 or h2)
// and TCP (connect only, or send a payload and expect byte blocks back).
//
// Compile turns an envoy.config.core.v3.HealthCheck into a Config, naming
// the offending field of anything it cannot honour. A Checker runs one
// session per target and config on its own goroutine and reports the
// combined health of a target (healthy only if every config passes) through
// a callback when it changes.
//
// State machine, as Envoy's HealthCheckerImplBase:
//
//   - a target starts unhealthy and pending; its first check decides at
//     once (one success makes it healthy, whatever healthy_threshold says);
//   - an unhealthy target needs healthy_threshold consecutive successes;
//   - a healthy target becomes unhealthy after unhealthy_threshold
//     consecutive failures, except that an HTTP response whose status is
//     neither expected nor retriable fails it at once, as in Envoy;
//   - intervals: no_traffic_interval (and no_traffic_healthy_interval)
//     until the cluster has carried traffic, then interval, or
//     unhealthy_interval while unhealthy; unhealthy_edge_interval and
//     healthy_edge_interval right after a transition; plus interval_jitter
//     and interval_jitter_percent; the first check waits initial_jitter.
//
// HTTP checks send "user-agent: Envoy/HC", the configured host (default: the
// cluster name; an endpoint's health_check_config.hostname wins), method,
// path and request_headers_to_add/remove; a response passes when its status
// is in expected_statuses (default 200) and, with a receive payload, its
// body contains it. With reuse_connection (the default) the connection is
// kept between checks. TCP checks open a new connection per check.
package health
