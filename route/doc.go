// Package route compiles an Envoy envoy.config.route.v3.RouteConfiguration
// into an immutable route table and matches requests against it as Envoy's
// router does: virtual hosts by domain (exact, "*.suffix", "prefix.*", "*"),
// then the virtual host's routes in order, first match wins.
//
// Compile is pure: it reads no files and no clocks (a direct response body
// given as a filename is read through CompileOptions.ReadFile). It reports
// every problem it finds at once, each as a *FieldError naming the resource
// and the field path, and it rejects fields that would change behaviour but
// are not implemented instead of ignoring them.
//
// A *Table is never modified after Compile, so a configuration swap is an
// atomic pointer swap and a request keeps the table it started with. Match
// does not allocate for requests that select a route by prefix or path.
//
// Besides matching, the package holds the route-level pieces of a request's
// life that the router filter applies: header mutations in Envoy's order
// (FinalizeRequestHeaders, FinalizeResponseHeaders), path and host rewrites,
// redirect locations, retry and hash policies, and the per-filter
// configuration (typed_per_filter_config) resolved most-specific-first.
package route
