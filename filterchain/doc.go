// Package filterchain defines the HTTP filter contract of the data plane,
// the registry that turns a filter's typed proto into a compiled filter
// configuration, and the per-route execution plans: for each route, the
// ordered list of filters that run for it, computed once at config time from
// the HTTP connection manager's http_filters (with `disabled`) and the
// route's typed_per_filter_config, so a request pays only for the filters
// that run for its route.
//
// Built-in filters live in sub-packages (router, wasmfilter), each with its
// factory, behaviour and tests side by side.
package filterchain
