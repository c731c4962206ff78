// Package kong translates Kong's declarative configuration (kong.yml,
// _format_version "3.0") into Envoy v3 xDS resources: Listeners with an
// inline RouteConfiguration, Clusters, ClusterLoadAssignments and Secrets.
//
// Parse reads and validates the file and reports every schema error at
// once in Kong's error shape (*Error). Translate is a pure function from
// the parsed Config and Options (kong.conf settings) to Resources; the
// data plane and the control plane serve what it returns. Kong's filter
// chains become one envoy.filters.http.wasm entry per filter instance,
// disabled by default and enabled per route through typed_per_filter_config,
// service-chain instances before route-chain instances. Kong's router
// priorities become the order of the routes of one virtual host, hosts
// being :authority matchers (see router.go). RATIONALE.md lists the decisions where Kong and Envoy
// differ.
package kong
