package route

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/header"
)

// Table is a compiled route configuration. It is immutable and safe for
// concurrent use.
type Table struct {
	Name string

	proto            *routev3.RouteConfiguration
	vhosts           []*VirtualHost
	exact            map[string]*VirtualHost
	suffixes         []wildcards // longest first
	prefixes         []wildcards // longest first
	dflt             *VirtualHost
	onlyDefault      bool
	ignorePort       bool
	hostHeader       string
	ignorePathParams bool
	mostSpecificWins bool
	sharedRoutes     bool // some *Route is in more than one virtual host

	requestHeaders      *HeaderMutation
	responseHeaders     *HeaderMutation
	filters             filterConfigs
	internalOnlyHeaders []string
}

type wildcards struct {
	n     int
	hosts map[string]*VirtualHost
}

// VirtualHost is a compiled envoy.config.route.v3.VirtualHost.
type VirtualHost struct {
	Name    string
	Domains []string
	// Attempt-count headers the router adds (x-envoy-attempt-count) and
	// x-envoy-is-timeout-retry.
	IncludeRequestAttemptCount    bool
	IncludeAttemptCountInResponse bool
	IncludeIsTimeoutRetryHeader   bool

	table           *Table
	proto           *routev3.VirtualHost
	routes          []*Route
	requireTLS      routev3.VirtualHost_TlsRequirementType
	sslRedirect     *Route
	retry           *RetryPolicy
	requestHeaders  *HeaderMutation
	responseHeaders *HeaderMutation
	filters         filterConfigs
	virtualClusters []virtualCluster
	bufferLimit     bufferLimit
	index           *routeIndex
}

type virtualCluster struct {
	name    string
	headers []HeaderMatcher
}

type bufferLimit struct {
	perRequest     uint32
	requestBody    uint64
	requestBodySet bool
}

type pathKind uint8

const (
	pathPrefix pathKind = iota + 1
	pathExact
	pathRegex
	pathSeparated
	pathConnect
)

type fraction struct{ numerator, denominator uint64 }

// tlsMatch holds tls_context: 0 unset, 1 must be true, -1 must be false.
type tlsMatch struct{ presented, validated int8 }

// Route is a compiled envoy.config.route.v3.Route.
type Route struct {
	Name       string
	StatPrefix string
	// Decorator is decorator.operation.
	Decorator string

	// Kind says which of Action, Redirect and DirectResponse is set.
	Kind           ActionKind
	Action         *RouteAction
	Redirect       *Redirect
	DirectResponse *DirectResponse

	vhost       *VirtualHost
	index       int
	proto       *routev3.Route
	sslRedirect bool

	pathKind      pathKind
	pathValue     string
	caseSensitive bool
	re            *regexp.Regexp
	literalPrefix string   // of re: every path re matches starts with it
	hostKeys      []string // of its :authority matcher (hostindex.go)
	runtime       *fraction
	grpc          bool
	headers       []HeaderMatcher
	query         []queryMatcher
	tls           *tlsMatch

	requestHeaders  *HeaderMutation
	responseHeaders *HeaderMutation
	filters         filterConfigs
	bufferLimit     bufferLimit
}

// RequestInfo is what matching needs besides the request headers.
type RequestInfo struct {
	// Random is the stream's random value (Envoy derives it from the
	// request id): it decides runtime_fraction matches and weighted
	// cluster picks.
	Random uint64
	// PeerCertPresented and PeerCertValidated describe the downstream TLS
	// client certificate, for tls_context matches.
	PeerCertPresented bool
	PeerCertValidated bool
	// RemoteAddr is the downstream address, for weighted clusters that
	// pick by the hash policy with connection_properties.source_ip.
	RemoteAddr netip.Addr
}

// Match is the result of matching a request. Route is nil when no route
// matched (Envoy answers 404 with the NR response flag); VirtualHost is
// then the virtual host that was selected, if any.
type Match struct {
	VirtualHost *VirtualHost
	Route       *Route
	// Cluster is the upstream cluster for an ActionRoute route: cluster,
	// the value of cluster_header ("" when the header is absent), or the
	// picked weighted cluster's.
	Cluster string
	// Weighted is the picked weighted cluster, nil otherwise.
	Weighted *WeightedCluster
}

// Match finds the virtual host and the first matching route, as Envoy's
// RouteMatcher::route. It does not allocate for prefix, path and
// path_separated_prefix routes.
func (t *Table) Match(h *header.Map, info RequestInfo) Match {
	vh := t.findVirtualHost(h)
	if vh == nil {
		return Match{}
	}
	m := Match{VirtualHost: vh}
	// Envoy reads the scheme from x-forwarded-proto, which the connection
	// manager always sets; without it fall back to :scheme.
	scheme, ok := h.Get("x-forwarded-proto")
	if !ok || scheme == "" {
		scheme, _ = h.Get(":scheme")
	}
	if scheme == "" {
		return m
	}
	if vh.requireTLS == routev3.VirtualHost_ALL && scheme != "https" {
		m.Route = vh.sslRedirect
		return m
	}
	if vh.requireTLS == routev3.VirtualHost_EXTERNAL_ONLY && scheme != "https" {
		if v, _ := h.Get("x-envoy-internal"); v != "true" {
			m.Route = vh.sslRedirect
			return m
		}
	}
	path, hasPath := h.Get(":path")
	// Path matchers see the path without its query (and without path
	// parameters when configured); query parameter matchers see the
	// whole :path, as in Envoy.
	just := path
	if t.ignorePathParams {
		if i := strings.IndexByte(just, ';'); i >= 0 {
			just = just[:i]
		}
	}
	just, _ = splitQuery(just)
	if r := vh.route(h, path, just, hasPath, &info); r != nil {
		m.Route = r
		if r.Kind == ActionRoute {
			m.Cluster, m.Weighted = r.Action.cluster(h, &info)
		}
	}
	return m
}

// route returns the first route of the virtual host that matches.
func (vh *VirtualHost) route(h *header.Map, path, just string, hasPath bool, info *RequestInfo) *Route {
	if vh.index != nil && hasPath {
		var lists [maxIndexLists][]int32
		if n, ok := vh.index.candidates(h, just, &lists); ok {
			for {
				best, from := int32(-1), -1
				for j := 0; j < n; j++ {
					if l := lists[j]; len(l) > 0 && (best < 0 || l[0] < best) {
						best, from = l[0], j
					}
				}
				if best < 0 {
					return nil
				}
				lists[from] = lists[from][1:]
				if r := vh.routes[best]; r.matches(h, path, just, info) {
					return r
				}
			}
		}
	}
	for _, r := range vh.routes {
		if !hasPath && r.pathKind != pathConnect {
			continue
		}
		if r.matches(h, path, just, info) {
			return r
		}
	}
	return nil
}

func (t *Table) findVirtualHost(h *header.Map) *VirtualHost {
	if t.onlyDefault {
		return t.dflt
	}
	host, ok := h.Get(t.hostHeader)
	if !ok {
		return nil
	}
	if t.ignorePort {
		if i := portStart(host); i >= 0 {
			host = host[:i]
		}
	}
	host = header.Lower(host)
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		if w.n >= len(host) {
			continue
		}
		if vh, ok := w.hosts[host[len(host)-w.n:]]; ok {
			return vh
		}
	}
	for _, w := range t.prefixes {
		if w.n >= len(host) {
			continue
		}
		if vh, ok := w.hosts[host[:w.n]]; ok {
			return vh
		}
	}
	return t.dflt
}

// portStart is the index of the ':' before a port in an authority, or -1
// (Envoy's HeaderUtility::getPortStart: IPv6 literals are bracketed).
func portStart(host string) int {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if j := strings.LastIndexByte(host, ']'); j >= 0 && j > i {
		return -1
	}
	return i
}

// matches reports whether the request matches the route; path is the
// :path, p the path matchers' view of it: without query and fragment, and
// without path parameters when configured.
func (r *Route) matches(h *header.Map, path, p string, info *RequestInfo) bool {
	switch r.pathKind {
	case pathPrefix:
		if r.caseSensitive {
			if !strings.HasPrefix(p, r.pathValue) {
				return false
			}
		} else if !hasPrefixFold(p, r.pathValue) {
			return false
		}
	case pathExact:
		if r.caseSensitive {
			if p != r.pathValue {
				return false
			}
		} else if !equalFold(p, r.pathValue) {
			return false
		}
	case pathSeparated:
		n := len(r.pathValue)
		if len(p) < n || len(p) > n && p[n] != '/' {
			return false
		}
		if r.caseSensitive {
			if p[:n] != r.pathValue {
				return false
			}
		} else if !equalFold(p[:n], r.pathValue) {
			return false
		}
	case pathRegex:
		if r.re == nil || !r.re.MatchString(p) {
			return false
		}
	case pathConnect:
		if m, _ := h.Get(":method"); m != "CONNECT" {
			return false
		}
		if proto, ok := h.Get(":protocol"); ok && proto != "connect-udp" {
			return false
		}
	default:
		return false
	}
	if r.runtime != nil && info.Random%r.runtime.denominator >= r.runtime.numerator {
		return false
	}
	if r.grpc && !isGrpcRequest(h) {
		return false
	}
	if !matchAllHeaders(r.headers, h) {
		return false
	}
	for i := range r.query {
		if !r.query[i].matches(path) {
			return false
		}
	}
	if r.tls != nil {
		if r.tls.presented != 0 && (r.tls.presented > 0) != info.PeerCertPresented {
			return false
		}
		if r.tls.validated != 0 && (r.tls.validated > 0) != info.PeerCertValidated {
			return false
		}
	}
	return true
}

// isGrpcRequest is Envoy's Grpc::Common::isGrpcRequestHeaders: a :path and
// a content-type of exactly application/grpc or application/grpc+<codec>.
func isGrpcRequest(h *header.Map) bool {
	if _, ok := h.Get(":path"); !ok {
		return false
	}
	ct, _ := h.Get("content-type")
	const g = "application/grpc"
	return strings.HasPrefix(ct, g) && (len(ct) == len(g) || ct[len(g)] == '+')
}

// cluster resolves the upstream cluster for a request.
func (a *RouteAction) cluster(h *header.Map, info *RequestInfo) (string, *WeightedCluster) {
	switch {
	case a.Cluster != "":
		return a.Cluster, nil
	case a.ClusterHeader != "":
		v, _ := h.Get(a.ClusterHeader)
		return v, nil
	case a.Weighted != nil && len(a.Weighted.Clusters) > 0 && a.Weighted.TotalWeight > 0:
		w := a.Weighted
		value := info.Random
		if w.UseHashPolicy && a.Hash != nil {
			if hv, ok := a.Hash.Hash(HashInput{Headers: h, RemoteAddr: info.RemoteAddr}); ok {
				value = hv
			}
		}
		if w.HeaderName != "" {
			if v, ok := singleValue(h, w.HeaderName); ok {
				if n, err := strconv.ParseUint(v, 10, 64); err == nil {
					value = n
				}
			}
		}
		wc := w.Pick(value)
		if wc.Name != "" {
			return wc.Name, wc
		}
		v, _ := h.Get(wc.ClusterHeader)
		return v, wc
	}
	return "", nil
}

// singleValue returns the header's value when it appears exactly once.
func singleValue(h *header.Map, name string) (string, bool) {
	var v string
	n := 0
	for _, f := range h.Fields() {
		if f.Key == name {
			v = f.Value
			n++
		}
	}
	return v, n == 1
}

// --- accessors ---

// Proto is the compiled configuration (a private copy; do not modify).
func (t *Table) Proto() *routev3.RouteConfiguration { return t.proto }

// VirtualHosts lists the virtual hosts in configuration order.
func (t *Table) VirtualHosts() []*VirtualHost { return t.vhosts }

// InternalOnlyHeaders are removed by the connection manager from requests
// that are not internal.
func (t *Table) InternalOnlyHeaders() []string { return t.internalOnlyHeaders }

// Routes visits every distinct route of the table once, in virtual host
// and route order, for per-route compilation (filter plans). Identical
// routes of virtual hosts with the same settings are one *Route (see
// VirtualHost.Routes), visited where it first appears.
func (t *Table) Routes(yield func(*Route) bool) {
	var seen map[*Route]bool
	if t.sharedRoutes {
		seen = map[*Route]bool{}
	}
	for _, vh := range t.vhosts {
		for _, r := range vh.routes {
			if seen != nil {
				if seen[r] {
					continue
				}
				seen[r] = true
			}
			if !yield(r) {
				return
			}
		}
	}
}

// Proto is the virtual host's configuration.
func (vh *VirtualHost) Proto() *routev3.VirtualHost { return vh.proto }

// Routes lists the routes in order. A route whose configuration equals a
// route of an earlier virtual host with the same settings (everything but
// name, domains, routes, virtual_clusters and metadata) is that route's
// *Route: its VirtualHost and Index are those of the first virtual host
// that holds it.
func (vh *VirtualHost) Routes() []*Route { return vh.routes }

// Table is the route table the virtual host belongs to.
func (vh *VirtualHost) Table() *Table { return vh.table }

// Retry is the virtual host's retry policy (nil when unset); routes
// without their own inherit it in RouteAction.Retry.
func (vh *VirtualHost) Retry() *RetryPolicy { return vh.retry }

// VirtualCluster names the virtual cluster a request belongs to, for
// statistics: the first whose headers all match, "other" when the virtual
// host has virtual clusters but none matches, "" when it has none.
func (vh *VirtualHost) VirtualCluster(h *header.Map) string {
	for i := range vh.virtualClusters {
		if matchAllHeaders(vh.virtualClusters[i].headers, h) {
			return vh.virtualClusters[i].name
		}
	}
	if len(vh.virtualClusters) > 0 {
		return "other"
	}
	return ""
}

// Proto is the route's configuration; nil for the redirect require_tls
// synthesizes.
func (r *Route) Proto() *routev3.Route { return r.proto }

// VirtualHost is the virtual host the route belongs to; for a route
// shared by several virtual hosts, the first (Match.VirtualHost is the one
// a request selected).
func (r *Route) VirtualHost() *VirtualHost { return r.vhost }

// Index is the route's position in its virtual host's routes (the first
// virtual host's for a shared route); -1 for the require_tls redirect.
func (r *Route) Index() int {
	if r.sslRedirect {
		return -1
	}
	return r.index
}

// RetryShadowBufferLimit is per_request_buffer_limit_bytes of the route,
// else of the virtual host, else the maximum uint32 (no limit).
func (r *Route) RetryShadowBufferLimit() uint32 { return r.bufferLimit.perRequest }

// RequestBodyBufferLimit is request_body_buffer_limit of the route, else
// of the virtual host; ok is false when neither sets it.
func (r *Route) RequestBodyBufferLimit() (limit uint64, ok bool) {
	return r.bufferLimit.requestBody, r.bufferLimit.requestBodySet
}

// FilterOverride resolves a filter's typed_per_filter_config for this
// route: route, then virtual host, then route configuration.
func (r *Route) FilterOverride(filterName string) FilterOverride {
	if r.sslRedirect {
		return FilterOverride{}
	}
	return resolve(filterName, r.filters, r.vhost.filters, r.vhost.table.filters)
}

// FilterNames lists the filters that have typed_per_filter_config at the
// route, its virtual host or the route configuration.
func (r *Route) FilterNames() []string {
	if r.sslRedirect {
		return nil
	}
	return filterNames(r.filters, r.vhost.filters, r.vhost.table.filters)
}

// PerFilterConfig answers, in the shape of raw typed_per_filter_config,
// the resolved entry for a filter: a FilterConfig carrying the most
// specific config and disabled flag. ok is false when no level has an
// entry. It fits filterchain.PerFilterConfig.
func (r *Route) PerFilterConfig(filterName string) (*anypb.Any, bool) {
	o := r.FilterOverride(filterName)
	if !o.Explicit {
		return nil, false
	}
	return o.asFilterConfig(), true
}

// FilterOverride resolves a filter's per-filter config for the matched
// request, the picked weighted cluster being the most specific level.
func (m *Match) FilterOverride(filterName string) FilterOverride {
	if m.Weighted != nil {
		return m.Weighted.FilterOverride(filterName)
	}
	if m.Route != nil {
		return m.Route.FilterOverride(filterName)
	}
	return FilterOverride{}
}
