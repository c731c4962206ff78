package route

import (
	"fmt"
	"math"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/header"
)

// CompileOptions are the caller's hooks into Compile. The zero value
// compiles without cluster validation, per-filter config validation or
// file access.
type CompileOptions struct {
	// ClusterExists validates cluster names (Envoy's validate_clusters).
	// Validation runs when the route configuration's validate_clusters
	// says so, or, when it is unset, when ValidateClustersByDefault is set
	// (Envoy: on for route configurations inline in the connection manager,
	// off for RDS).
	ClusterExists             func(name string) bool
	ValidateClustersByDefault bool
	// ValidateFilterConfig checks one typed_per_filter_config entry (the
	// unwrapped config) for the named filter. Return ErrUnknownFilterConfig
	// when no filter knows the type: is_optional entries are then dropped
	// instead of failing the configuration.
	ValidateFilterConfig func(filterName string, cfg *anypb.Any) error
	// CheckFormatCommand validates the %COMMAND% substitutions of header
	// values; nil accepts every well-formed command.
	CheckFormatCommand func(cmd FormatCommand) error
	// ReadFile reads direct response bodies given as a filename; nil
	// rejects such bodies.
	ReadFile func(name string) ([]byte, error)
}

// compiler carries one compilation's state.
type compiler struct {
	errs
	sharing
	opts             *CompileOptions
	validateClusters bool
	maxBody          uint32
}

const defaultMaxDirectResponseBody = 4096

// Compile compiles a route configuration into an immutable Table. The
// error joins a *FieldError per problem found.
func Compile(rc *routev3.RouteConfiguration, opts CompileOptions) (*Table, error) {
	if rc == nil {
		rc = &routev3.RouteConfiguration{}
	}
	c := &compiler{
		errs:             errs{resource: fmt.Sprintf("route_config %q", rc.GetName())},
		opts:             &opts,
		validateClusters: opts.ValidateClustersByDefault,
		maxBody:          defaultMaxDirectResponseBody,
	}
	// Own a copy (the table keeps pointers into it and must not change
	// when the caller reuses its message), checked with
	// protoc-gen-validate's rules first; the compiler then reports what
	// they cannot see, except for fields they already flagged.
	rc = c.own(rc)
	var flagged []string
	for _, e := range c.list {
		flagged = append(flagged, e.(*FieldError).Path)
	}
	if rc.GetValidateClusters() != nil {
		c.validateClusters = rc.GetValidateClusters().GetValue()
	}
	if rc.GetMaxDirectResponseBodySizeBytes() != nil {
		c.maxBody = rc.GetMaxDirectResponseBodySizeBytes().GetValue()
	}
	t := c.table(rc)
	if len(flagged) > 0 {
		c.dropUnder(len(flagged), flagged)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return t, nil
}

// dropUnder removes the compiler's errors (those after the first n) that
// are at or below a path protoc-gen-validate already reported.
func (c *compiler) dropUnder(n int, paths []string) {
	keep := c.list[:n]
	for _, e := range c.list[n:] {
		p := e.(*FieldError).Path
		dup := false
		for _, f := range paths {
			if p == f || strings.HasPrefix(p, f+".") || strings.HasPrefix(p, f+"[") {
				dup = true
				break
			}
		}
		if !dup {
			keep = append(keep, e)
		}
	}
	c.list = keep
}

func (c *compiler) table(rc *routev3.RouteConfiguration) *Table {
	// metadata has no effect on routing; it stays available through Proto.
	c.only("", rc, "name", "virtual_hosts", "internal_only_headers", "response_headers_to_add",
		"response_headers_to_remove", "request_headers_to_add", "request_headers_to_remove",
		"most_specific_header_mutations_wins", "validate_clusters", "max_direct_response_body_size_bytes",
		"ignore_port_in_host_matching", "vhost_header", "ignore_path_parameters_in_path_matching",
		"typed_per_filter_config", "metadata")
	t := &Table{
		Name:             rc.GetName(),
		proto:            rc,
		exact:            map[string]*VirtualHost{},
		ignorePort:       rc.GetIgnorePortInHostMatching(),
		hostHeader:       ":authority",
		ignorePathParams: rc.GetIgnorePathParametersInPathMatching(),
		mostSpecificWins: rc.GetMostSpecificHeaderMutationsWins(),
	}
	if v := rc.GetVhostHeader(); v != "" {
		t.hostHeader = header.Lower(v)
	}
	for _, h := range rc.GetInternalOnlyHeaders() {
		t.internalOnlyHeaders = append(t.internalOnlyHeaders, header.Lower(h))
	}
	t.requestHeaders = c.headerMutation("", "request_headers_to_add", "request_headers_to_remove",
		rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), c.opts)
	t.responseHeaders = c.headerMutation("", "response_headers_to_add", "response_headers_to_remove",
		rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove(), c.opts)
	t.filters = c.filterConfigs("", rc.GetTypedPerFilterConfig(), c.opts)

	suffixes := map[int]map[string]*VirtualHost{}
	prefixes := map[int]map[string]*VirtualHost{}
	for i, v := range rc.GetVirtualHosts() {
		p := idx("", "virtual_hosts", i)
		vh := c.virtualHost(p, t, v, c.vhostContext(v, i))
		t.vhosts = append(t.vhosts, vh)
		for j, d := range v.GetDomains() {
			dp := idx(p, "domains", j)
			d = header.Lower(d)
			var dup bool
			switch {
			case d == "*":
				if t.dflt != nil {
					c.errf(dp, "only a single wildcard domain is permitted in route %s", rc.GetName())
					continue
				}
				t.dflt = vh
			case d != "" && d[0] == '*':
				dup = addWildcard(suffixes, d[1:], vh)
			case d != "" && d[len(d)-1] == '*':
				dup = addWildcard(prefixes, d[:len(d)-1], vh)
			default:
				if _, dup = t.exact[d]; !dup {
					t.exact[d] = vh
				}
			}
			if dup {
				c.errf(dp, "only unique values for domains are permitted; duplicate entry of domain %s in route %s", d, rc.GetName())
			}
		}
	}
	t.sharedRoutes = c.sharing.shared
	t.suffixes = sortWildcards(suffixes)
	t.prefixes = sortWildcards(prefixes)
	t.onlyDefault = len(t.exact) == 0 && len(t.suffixes) == 0 && len(t.prefixes) == 0
	return t
}

func addWildcard(m map[int]map[string]*VirtualHost, key string, vh *VirtualHost) (dup bool) {
	l := m[len(key)]
	if l == nil {
		l = map[string]*VirtualHost{}
		m[len(key)] = l
	}
	if _, dup = l[key]; dup {
		return true
	}
	l[key] = vh
	return false
}

func sortWildcards(m map[int]map[string]*VirtualHost) []wildcards {
	out := make([]wildcards, 0, len(m))
	for n, l := range m {
		out = append(out, wildcards{n: n, hosts: l})
	}
	// Longest first.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].n > out[j-1].n; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (c *compiler) virtualHost(path string, t *Table, v *routev3.VirtualHost, ctx int) *VirtualHost {
	// virtual_clusters only add statistics; metadata has no effect on
	// routing. Both stay available through Proto.
	c.only(path, v, "name", "domains", "routes", "require_tls", "virtual_clusters",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
		"response_headers_to_remove", "typed_per_filter_config", "include_request_attempt_count",
		"include_attempt_count_in_response", "retry_policy", "include_is_timeout_retry_header",
		"per_request_buffer_limit_bytes", "request_body_buffer_limit", "metadata")
	vh := &VirtualHost{
		Name:                          v.GetName(),
		Domains:                       append([]string(nil), v.GetDomains()...),
		IncludeRequestAttemptCount:    v.GetIncludeRequestAttemptCount(),
		IncludeAttemptCountInResponse: v.GetIncludeAttemptCountInResponse(),
		IncludeIsTimeoutRetryHeader:   v.GetIncludeIsTimeoutRetryHeader(),
		requireTLS:                    v.GetRequireTls(),
		table:                         t,
		proto:                         v,
	}
	if v.GetPerRequestBufferLimitBytes() != nil && v.GetRequestBodyBufferLimit() != nil {
		c.errf(path, "only one of per_request_buffer_limit_bytes and request_body_buffer_limit may be set")
	}
	vh.bufferLimit = bufferLimit{perRequest: math.MaxUint32}
	if v.GetPerRequestBufferLimitBytes() != nil {
		vh.bufferLimit.perRequest = v.GetPerRequestBufferLimitBytes().GetValue()
	}
	if v.GetRequestBodyBufferLimit() != nil {
		vh.bufferLimit.requestBody, vh.bufferLimit.requestBodySet = v.GetRequestBodyBufferLimit().GetValue(), true
	}
	for i, vc := range v.GetVirtualClusters() {
		p := idx(path, "virtual_clusters", i)
		c.only(p, vc, "headers", "name")
		if len(vc.GetHeaders()) == 0 {
			c.errf(p, "virtual clusters must define 'headers'")
		}
		vh.virtualClusters = append(vh.virtualClusters, virtualCluster{
			name:    vc.GetName(),
			headers: c.headerMatchers(p, "headers", vc.GetHeaders()),
		})
	}
	vh.requestHeaders = c.headerMutation(path, "request_headers_to_add", "request_headers_to_remove",
		v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove(), c.opts)
	vh.responseHeaders = c.headerMutation(path, "response_headers_to_add", "response_headers_to_remove",
		v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove(), c.opts)
	vh.filters = c.filterConfigs(path, v.GetTypedPerFilterConfig(), c.opts)
	vh.retry = c.retryPolicy(at(path, "retry_policy"), v.GetRetryPolicy())
	if vh.requireTLS != routev3.VirtualHost_NONE {
		sr := &Route{Name: "ssl_redirect", Kind: ActionRedirect, vhost: vh, sslRedirect: true}
		sr.Redirect = &Redirect{Scheme: "https", Code: 301, ssl: true, route: sr}
		vh.sslRedirect = sr
	}
	for i, r := range v.GetRoutes() {
		vh.routes = append(vh.routes, c.sharedRoute(idx(path, "routes", i), vh, ctx, r, i))
	}
	vh.index = buildIndex(vh.routes)
	return vh
}

func (c *compiler) route(path string, vh *VirtualHost, r *routev3.Route, index int) *Route {
	// decorator and tracing only matter when the connection manager
	// traces, which it refuses to configure; metadata has no effect on
	// routing. All stay available through Proto.
	c.only(path, r, "name", "match", "route", "redirect", "direct_response", "metadata", "decorator",
		"typed_per_filter_config", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove", "tracing", "per_request_buffer_limit_bytes",
		"stat_prefix", "request_body_buffer_limit")
	rt := &Route{
		Name:       r.GetName(),
		StatPrefix: r.GetStatPrefix(),
		Decorator:  r.GetDecorator().GetOperation(),
		vhost:      vh,
		index:      index,
		proto:      r,
	}
	c.routeMatch(at(path, "match"), rt, r.GetMatch(), vh.table)
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		rt.Kind = ActionRoute
		rt.Action = c.routeAction(at(path, "route"), rt, a.Route, vh)
	case *routev3.Route_Redirect:
		rt.Kind = ActionRedirect
		rt.Redirect = c.redirect(at(path, "redirect"), rt, a.Redirect)
	case *routev3.Route_DirectResponse:
		rt.Kind = ActionDirectResponse
		rt.DirectResponse = c.directResponse(at(path, "direct_response"), a.DirectResponse)
	}
	if r.GetPerRequestBufferLimitBytes() != nil && r.GetRequestBodyBufferLimit() != nil {
		c.errf(path, "only one of per_request_buffer_limit_bytes and request_body_buffer_limit may be set")
	}
	rt.bufferLimit = vh.bufferLimit
	if r.GetPerRequestBufferLimitBytes() != nil {
		rt.bufferLimit.perRequest = r.GetPerRequestBufferLimitBytes().GetValue()
	}
	if r.GetRequestBodyBufferLimit() != nil {
		rt.bufferLimit.requestBody, rt.bufferLimit.requestBodySet = r.GetRequestBodyBufferLimit().GetValue(), true
	}
	rt.requestHeaders = c.headerMutation(path, "request_headers_to_add", "request_headers_to_remove",
		r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), c.opts)
	rt.responseHeaders = c.headerMutation(path, "response_headers_to_add", "response_headers_to_remove",
		r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), c.opts)
	rt.filters = c.filterConfigs(path, r.GetTypedPerFilterConfig(), c.opts)
	return rt
}

func (c *compiler) routeMatch(path string, rt *Route, m *routev3.RouteMatch, t *Table) {
	c.only(path, m, "prefix", "path", "safe_regex", "connect_matcher", "path_separated_prefix",
		"case_sensitive", "runtime_fraction", "headers", "query_parameters", "grpc", "tls_context")
	rt.caseSensitive = m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rt.pathKind, rt.pathValue = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		rt.pathKind, rt.pathValue = pathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		rt.pathKind = pathRegex
		rt.re = c.compileRegex(at(path, "safe_regex"), p.SafeRegex)
		if raw, err := c.regex(p.SafeRegex.GetRegex(), false); err == nil {
			// A full match of the path is a match of the pattern that
			// starts at 0, so the path starts with the pattern's literal
			// prefix.
			rt.literalPrefix, _ = raw.LiteralPrefix()
		}
	case *routev3.RouteMatch_PathSeparatedPrefix:
		rt.pathKind, rt.pathValue = pathSeparated, p.PathSeparatedPrefix
		if indexByte(p.PathSeparatedPrefix, '?') >= 0 || indexByte(p.PathSeparatedPrefix, '#') >= 0 ||
			(len(p.PathSeparatedPrefix) > 0 && p.PathSeparatedPrefix[len(p.PathSeparatedPrefix)-1] == '/') {
			c.errf(at(path, "path_separated_prefix"), "must not contain '?' or '#' nor end in '/'")
		}
	case *routev3.RouteMatch_ConnectMatcher_:
		rt.pathKind = pathConnect
	case nil:
		c.errf(path, "a path specifier (prefix, path, safe_regex, path_separated_prefix or connect_matcher) is required")
	}
	if f := m.GetRuntimeFraction(); f != nil {
		// runtime_key reads a runtime override of the fraction; without
		// runtime values the default applies, as in Envoy.
		c.only(at(path, "runtime_fraction"), f, "default_value", "runtime_key")
		rt.runtime = &fraction{numerator: uint64(f.GetDefaultValue().GetNumerator()), denominator: denominator(f.GetDefaultValue().GetDenominator())}
	}
	rt.headers = c.headerMatchers(path, "headers", m.GetHeaders())
	rt.hostKeys = hostKeys(rt.headers)
	rt.query = c.queryMatchers(path, m.GetQueryParameters())
	if g := m.GetGrpc(); g != nil {
		c.only(at(path, "grpc"), g)
		rt.grpc = true
	}
	if tc := m.GetTlsContext(); tc != nil {
		c.only(at(path, "tls_context"), tc, "presented", "validated")
		rt.tls = &tlsMatch{}
		if tc.GetPresented() != nil {
			rt.tls.presented = tri(tc.GetPresented().GetValue())
		}
		if tc.GetValidated() != nil {
			rt.tls.validated = tri(tc.GetValidated().GetValue())
		}
	}
}

func denominator(d typev3.FractionalPercent_DenominatorType) uint64 {
	switch d {
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10000
	case typev3.FractionalPercent_MILLION:
		return 1000000
	}
	return 100
}

func tri(b bool) int8 {
	if b {
		return 1
	}
	return -1
}
