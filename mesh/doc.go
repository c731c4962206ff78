// Package mesh holds sidecar injection, transparent-proxy rules, mesh DNS,
// workload identity (SPIFFE certificates) and traffic permissions.
package mesh
