package route

import (
	"fmt"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wasmesh/wasmesh/header"
)

// DefaultTimeout is the route timeout when RouteAction.timeout is unset.
const DefaultTimeout = 15 * time.Second

// ActionKind says what a route does with a request.
type ActionKind uint8

// Route actions.
const (
	// ActionRoute forwards to a cluster (Route.Action).
	ActionRoute ActionKind = iota + 1
	// ActionRedirect answers with a redirect (Route.Redirect).
	ActionRedirect
	// ActionDirectResponse answers with a fixed response (Route.DirectResponse).
	ActionDirectResponse
)

func (k ActionKind) String() string {
	switch k {
	case ActionRoute:
		return "route"
	case ActionRedirect:
		return "redirect"
	case ActionDirectResponse:
		return "direct_response"
	}
	return "unknown"
}

// OptionalDuration is a duration that may be unset; Set with D == 0 means
// "configured as zero" (usually: disabled).
type OptionalDuration struct {
	D   time.Duration
	Set bool
}

func optDuration(d *durationpb.Duration) OptionalDuration {
	if d == nil {
		return OptionalDuration{}
	}
	return OptionalDuration{D: durationMs(d), Set: true}
}

// durationMs converts with Envoy's millisecond precision.
func durationMs(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration().Truncate(time.Millisecond)
}

// Priority is the routing priority (circuit breaker thresholds).
type Priority uint8

// Routing priorities.
const (
	PriorityDefault Priority = iota
	PriorityHigh
)

// RouteAction is a compiled envoy.config.route.v3.RouteAction: where and
// how the router forwards the request.
type RouteAction struct {
	// Exactly one of Cluster, ClusterHeader and Weighted is set.
	Cluster       string
	ClusterHeader string
	Weighted      *WeightedClusters
	// ClusterNotFoundCode is the status when the cluster does not exist
	// (503 by default, or 404 or 500).
	ClusterNotFoundCode int

	// PrefixRewrite and RegexRewrite rewrite the path; see Route.RewritePath.
	PrefixRewrite string
	RegexRewrite  *RegexRewrite

	// Host rewrites, at most one set. AutoHostRewrite is applied by the
	// router once it has picked an upstream host (the host's hostname).
	HostRewriteLiteral   string
	AutoHostRewrite      bool
	HostRewriteHeader    string
	HostRewritePathRegex *RegexRewrite
	AppendXForwardedHost bool

	// Timeout is the upstream request timeout: 15 s by default, 0 means
	// none.
	Timeout time.Duration
	// TimeoutMs is Timeout in milliseconds, as x-envoy-expected-rq-timeout-ms
	// carries it.
	TimeoutMs string
	// IdleTimeout overrides the HTTP connection manager's
	// stream_idle_timeout when Set (0: disabled).
	IdleTimeout OptionalDuration
	// gRPC timeouts: max_stream_duration's fields and the deprecated
	// max_grpc_timeout / grpc_timeout_offset.
	MaxStreamDuration       OptionalDuration
	GrpcTimeoutHeaderMax    OptionalDuration
	GrpcTimeoutHeaderOffset OptionalDuration
	MaxGrpcTimeout          OptionalDuration
	GrpcTimeoutOffset       OptionalDuration

	// Retry is the route's retry policy, else the virtual host's; nil when
	// neither has one.
	Retry *RetryPolicy
	// Hash is the hash policy for ring hash and maglev; nil when unset.
	Hash *HashPolicy
	// Priority selects the circuit breaker thresholds.
	Priority Priority
	// Upgrades maps a lower-case upgrade type ("websocket") to whether it
	// is enabled on this route, overriding the connection manager's
	// upgrade_configs.
	Upgrades map[string]bool
}

// WeightedClusters is a compiled weighted_clusters.
type WeightedClusters struct {
	Clusters []*WeightedCluster
	// TotalWeight is the sum of the weights (> 0).
	TotalWeight uint64
	// HeaderName, when set, names a request header whose integer value is
	// the random value for the pick.
	HeaderName string
	// UseHashPolicy picks with the route's hash policy when it yields a
	// hash.
	UseHashPolicy bool
}

// WeightedCluster is one entry of weighted_clusters.
type WeightedCluster struct {
	// Name or ClusterHeader (the cluster is that header's value).
	Name          string
	ClusterHeader string
	Weight        uint32
	// HostRewriteLiteral sets :authority before the route's own rewrites.
	HostRewriteLiteral string

	requestHeaders  *HeaderMutation
	responseHeaders *HeaderMutation
	filters         filterConfigs
	route           *Route
}

// Pick returns the entry whose weight interval holds value % TotalWeight.
func (w *WeightedClusters) Pick(value uint64) *WeightedCluster {
	v := value % w.TotalWeight
	var end uint64
	for _, c := range w.Clusters {
		end += uint64(c.Weight)
		if v < end {
			return c
		}
	}
	return w.Clusters[len(w.Clusters)-1]
}

// Route is the route this entry belongs to.
func (wc *WeightedCluster) Route() *Route { return wc.route }

// FilterOverride resolves a filter's per-filter config with this weighted
// cluster as the most specific level.
func (wc *WeightedCluster) FilterOverride(filterName string) FilterOverride {
	r := wc.route
	return resolve(filterName, wc.filters, r.filters, r.vhost.filters, r.vhost.table.filters)
}

// Redirect is a compiled envoy.config.route.v3.RedirectAction.
type Redirect struct {
	// Scheme is scheme_redirect, or "https" for https_redirect; "" keeps
	// the request's.
	Scheme string
	// Host and Port replace the request's when set.
	Host string
	Port uint32
	// PathRedirect replaces the path (and the query when it has one).
	PathRedirect  string
	PrefixRewrite string
	RegexRewrite  *RegexRewrite
	StripQuery    bool
	// Code is 301, 302, 303, 307 or 308.
	Code int

	pathHasQuery bool
	ssl          bool // the redirect require_tls synthesizes
	route        *Route
}

// DirectResponse is a compiled envoy.config.route.v3.DirectResponseAction.
type DirectResponse struct {
	Status int
	// Body is the response body; empty when none was configured.
	Body string
}

func (c *compiler) routeAction(path string, r *Route, a *routev3.RouteAction, vh *VirtualHost) *RouteAction {
	c.only(path, a, "cluster", "cluster_header", "weighted_clusters", "cluster_not_found_response_code",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "host_rewrite_header",
		"host_rewrite_path_regex", "append_x_forwarded_host", "timeout", "idle_timeout", "retry_policy",
		"priority", "include_vh_rate_limits", "hash_policy", "max_grpc_timeout", "grpc_timeout_offset",
		"upgrade_configs", "internal_redirect_action", "max_internal_redirects", "max_stream_duration")
	ra := &RouteAction{ClusterNotFoundCode: 503, Timeout: DefaultTimeout}
	switch s := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		ra.Cluster = s.Cluster
		if c.opts.ClusterExists != nil && c.validateClusters && !c.opts.ClusterExists(s.Cluster) {
			c.errf(at(path, "cluster"), "unknown cluster %q", s.Cluster)
		}
	case *routev3.RouteAction_ClusterHeader:
		ra.ClusterHeader = header.Lower(s.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		ra.Weighted = c.weightedClusters(at(path, "weighted_clusters"), r, s.WeightedClusters)
	case nil:
		c.errf(path, "one of cluster, cluster_header or weighted_clusters is required")
	default:
		// cluster_specifier_plugin, inline_cluster_specifier_plugin: reported by only().
	}
	switch a.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_NOT_FOUND:
		ra.ClusterNotFoundCode = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		ra.ClusterNotFoundCode = 500
	}

	ra.PrefixRewrite = a.GetPrefixRewrite()
	ra.RegexRewrite = c.regexRewrite(at(path, "regex_rewrite"), a.GetRegexRewrite())
	if ra.PrefixRewrite != "" && a.GetRegexRewrite() != nil {
		c.errf(path, "specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy")
	}

	switch h := a.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		ra.HostRewriteLiteral = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		ra.AutoHostRewrite = h.AutoHostRewrite.GetValue()
	case *routev3.RouteAction_HostRewriteHeader:
		ra.HostRewriteHeader = header.Lower(h.HostRewriteHeader)
	case *routev3.RouteAction_HostRewritePathRegex:
		ra.HostRewritePathRegex = c.regexRewrite(at(path, "host_rewrite_path_regex"), h.HostRewritePathRegex)
	}
	ra.AppendXForwardedHost = a.GetAppendXForwardedHost()

	if a.GetTimeout() != nil {
		ra.Timeout = durationMs(a.GetTimeout())
	}
	ra.IdleTimeout = optDuration(a.GetIdleTimeout())
	ra.MaxGrpcTimeout = optDuration(a.GetMaxGrpcTimeout())
	ra.GrpcTimeoutOffset = optDuration(a.GetGrpcTimeoutOffset())
	if m := a.GetMaxStreamDuration(); m != nil {
		c.only(at(path, "max_stream_duration"), m, "max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset")
		ra.MaxStreamDuration = optDuration(m.GetMaxStreamDuration())
		ra.GrpcTimeoutHeaderMax = optDuration(m.GetGrpcTimeoutHeaderMax())
		ra.GrpcTimeoutHeaderOffset = optDuration(m.GetGrpcTimeoutHeaderOffset())
	}

	if a.GetRetryPolicy() != nil {
		ra.Retry = c.retryPolicy(at(path, "retry_policy"), a.GetRetryPolicy())
	} else {
		ra.Retry = vh.retry
	}
	ra.Hash = c.hashPolicy(path, a.GetHashPolicy())
	if a.GetPriority() == corev3.RoutingPriority_HIGH {
		ra.Priority = PriorityHigh
	}
	if a.GetInternalRedirectAction() == routev3.RouteAction_HANDLE_INTERNAL_REDIRECT {
		c.add(at(path, "internal_redirect_action"), fmt.Errorf("HANDLE_INTERNAL_REDIRECT is %w", ErrUnsupported))
	}
	for i, u := range a.GetUpgradeConfigs() {
		up := idx(path, "upgrade_configs", i)
		c.only(up, u, "upgrade_type", "enabled")
		if ra.Upgrades == nil {
			ra.Upgrades = map[string]bool{}
		}
		t := header.Lower(u.GetUpgradeType())
		if _, dup := ra.Upgrades[t]; dup {
			c.errf(up, "duplicate upgrade %s", u.GetUpgradeType())
		}
		ra.Upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	ra.TimeoutMs = strconv.FormatInt(ra.Timeout.Milliseconds(), 10)
	return ra
}

func (c *compiler) weightedClusters(path string, r *Route, w *routev3.WeightedCluster) *WeightedClusters {
	// total_weight is deprecated and, as in current Envoy, ignored: the sum
	// of the weights is the total. runtime_key_prefix reads runtime
	// overrides of the weights; without runtime values it changes nothing.
	c.only(path, w, "clusters", "total_weight", "runtime_key_prefix", "header_name", "use_hash_policy")
	out := &WeightedClusters{HeaderName: header.Lower(w.GetHeaderName()), UseHashPolicy: w.GetUseHashPolicy().GetValue()}
	for i, cw := range w.GetClusters() {
		p := idx(path, "clusters", i)
		c.only(p, cw, "name", "cluster_header", "weight", "request_headers_to_add", "request_headers_to_remove",
			"response_headers_to_add", "response_headers_to_remove", "typed_per_filter_config", "host_rewrite_literal")
		if (cw.GetName() == "") == (cw.GetClusterHeader() == "") {
			if cw.GetName() == "" {
				c.errf(p, "at least one of name or cluster_header need to be specified")
			} else {
				c.errf(p, "only one of name or cluster_header can be specified")
			}
		}
		if cw.GetName() != "" && c.opts.ClusterExists != nil && c.validateClusters && !c.opts.ClusterExists(cw.GetName()) {
			c.errf(at(p, "name"), "unknown cluster %q", cw.GetName())
		}
		e := &WeightedCluster{
			Name:               cw.GetName(),
			ClusterHeader:      header.Lower(cw.GetClusterHeader()),
			Weight:             cw.GetWeight().GetValue(),
			HostRewriteLiteral: cw.GetHostRewriteLiteral(),
			route:              r,
		}
		e.requestHeaders = c.headerMutation(p, "request_headers_to_add", "request_headers_to_remove",
			cw.GetRequestHeadersToAdd(), cw.GetRequestHeadersToRemove(), c.opts)
		e.responseHeaders = c.headerMutation(p, "response_headers_to_add", "response_headers_to_remove",
			cw.GetResponseHeadersToAdd(), cw.GetResponseHeadersToRemove(), c.opts)
		e.filters = c.filterConfigs(p, cw.GetTypedPerFilterConfig(), c.opts)
		out.TotalWeight += uint64(e.Weight)
		out.Clusters = append(out.Clusters, e)
	}
	if out.TotalWeight > 1<<32-1 {
		c.errf(path, "the sum of the weights exceeds %d", uint32(1<<32-1))
	}
	if out.TotalWeight == 0 {
		c.errf(path, "sum of weights in the weighted_cluster must be greater than 0")
	}
	return out
}

func (c *compiler) redirect(path string, r *Route, a *routev3.RedirectAction) *Redirect {
	c.only(path, a, "https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
		"path_redirect", "prefix_rewrite", "regex_rewrite", "response_code", "strip_query")
	rd := &Redirect{
		Host:       a.GetHostRedirect(),
		Port:       a.GetPortRedirect(),
		StripQuery: a.GetStripQuery(),
		route:      r,
	}
	if a.GetHttpsRedirect() {
		rd.Scheme = "https"
	}
	if s := a.GetSchemeRedirect(); s != "" {
		rd.Scheme = s
	}
	switch p := a.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		rd.PathRedirect = p.PathRedirect
		rd.pathHasQuery = indexByte(p.PathRedirect, '?') >= 0
	case *routev3.RedirectAction_PrefixRewrite:
		rd.PrefixRewrite = p.PrefixRewrite
	case *routev3.RedirectAction_RegexRewrite:
		rd.RegexRewrite = c.regexRewrite(at(path, "regex_rewrite"), p.RegexRewrite)
	}
	switch a.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		rd.Code = 301
	case routev3.RedirectAction_FOUND:
		rd.Code = 302
	case routev3.RedirectAction_SEE_OTHER:
		rd.Code = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		rd.Code = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		rd.Code = 308
	default:
		c.errf(at(path, "response_code"), "unknown redirect response code %v", a.GetResponseCode())
	}
	return rd
}

func (c *compiler) directResponse(path string, d *routev3.DirectResponseAction) *DirectResponse {
	c.only(path, d, "status", "body")
	dr := &DirectResponse{Status: int(d.GetStatus())}
	if dr.Status < 200 || dr.Status > 599 {
		c.errf(at(path, "status"), "status %d out of range [200, 599]", dr.Status)
	}
	b := d.GetBody()
	if b == nil {
		return dr
	}
	bp := at(path, "body")
	c.only(bp, b, "filename", "inline_bytes", "inline_string")
	var body []byte
	switch {
	case b.GetFilename() != "":
		if c.opts.ReadFile == nil {
			c.errf(at(bp, "filename"), "reading %q needs CompileOptions.ReadFile", b.GetFilename())
			return dr
		}
		data, err := c.opts.ReadFile(b.GetFilename())
		if err != nil {
			c.errf(at(bp, "filename"), "response body file %s: %v", b.GetFilename(), err)
			return dr
		}
		body = data
	case len(b.GetInlineBytes()) > 0:
		body = b.GetInlineBytes()
	default:
		body = []byte(b.GetInlineString())
	}
	if uint64(len(body)) > uint64(c.maxBody) {
		c.errf(bp, "response body size is %d bytes; maximum is %d", len(body), c.maxBody)
		return dr
	}
	dr.Body = string(body)
	return dr
}
