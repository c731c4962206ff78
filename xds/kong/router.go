package kong

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Kong's traditional_compat router orders routes, most significant first,
// by:
//  1. priority points: one each for methods, hosts, headers and snis;
//  2. plain hosts before wildcard hosts;
//  3. the number of headers;
//  4. paths, each path of a route ranked on its own: regex paths first, by
//     regex_priority (higher first), then prefix paths by length (longer
//     first), then routes without paths.
//
// Envoy picks a virtual host by the Host header (exact domains, then
// wildcards, then "*") and then the first route that matches in it. So
// every distinct host becomes a virtual host holding, in Kong's order, the
// routes that list that host (or a wildcard covering it) and the routes
// without hosts; the "*" virtual host holds the routes without hosts. Each
// virtual host ends with Kong's 404.

// entry is one path of one route (or a route without paths).
type entry struct {
	r     *Route
	path  string // "" when the route has no paths
	regex bool
	seq   int // definition order, for stable ties
}

type hostPattern struct {
	domain   string
	wildcard bool
}

func isWildcard(h string) bool { return strings.HasPrefix(h, "*") || strings.HasSuffix(h, "*") }

// covers reports whether route host pattern h matches every host that
// domain d matches.
func covers(h, d string) bool {
	if h == d {
		return true
	}
	switch {
	case strings.HasPrefix(h, "*"):
		suffix := h[1:]
		return strings.HasSuffix(strings.TrimPrefix(d, "*"), suffix) && !strings.HasSuffix(d, "*")
	case strings.HasSuffix(h, "*"):
		prefix := h[:len(h)-1]
		return strings.HasPrefix(strings.TrimSuffix(d, "*"), prefix) && !strings.HasPrefix(d, "*")
	}
	return false
}

// less orders two entries for one virtual host (domain d, "" for "*").
func less(a, b entry, d string) bool {
	pa, pb := points(a.r), points(b.r)
	if pa != pb {
		return pa > pb
	}
	wa, wb := viaWildcard(a.r, d), viaWildcard(b.r, d)
	if wa != wb {
		return !wa
	}
	if ha, hb := len(a.r.Headers), len(b.r.Headers); ha != hb {
		return ha > hb
	}
	ka, kb := pathRank(a), pathRank(b)
	if ka != kb {
		return ka > kb
	}
	switch {
	case a.regex && b.regex && a.r.RegexPriority != b.r.RegexPriority:
		return a.r.RegexPriority > b.r.RegexPriority
	case !a.regex && !b.regex && len(a.path) != len(b.path):
		return len(a.path) > len(b.path)
	}
	return a.seq < b.seq
}

func pathRank(e entry) int {
	switch {
	case e.regex:
		return 2
	case e.path != "":
		return 1
	}
	return 0
}

func points(r *Route) int {
	n := 0
	for _, l := range []int{len(r.Methods), len(r.Hosts), len(r.Headers), len(r.SNIs)} {
		if l > 0 {
			n++
		}
	}
	return n
}

// viaWildcard reports whether r reaches virtual host d only through a
// wildcard host.
func viaWildcard(r *Route, d string) bool {
	if len(r.Hosts) == 0 {
		return false
	}
	for _, h := range r.Hosts {
		if strings.ToLower(h) == d && !isWildcard(h) {
			return false
		}
	}
	return true
}

func (t *translator) routeConfig() *routev3.RouteConfiguration {
	var entries []entry
	var hosts []hostPattern
	seenHost := map[string]bool{}
	for _, r := range t.cfg.Routes {
		if r.Service != nil && !r.Service.Enabled {
			continue // a disabled service's routes are not routed
		}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			if !seenHost[h] {
				seenHost[h] = true
				hosts = append(hosts, hostPattern{domain: h, wildcard: isWildcard(h)})
			}
		}
		if len(r.Paths) == 0 {
			entries = append(entries, entry{r: r, seq: len(entries)})
		}
		for _, p := range r.Paths {
			re, isRe := strings.CutPrefix(p, "~")
			if !isRe {
				re = p
			}
			entries = append(entries, entry{r: r, path: re, regex: isRe, seq: len(entries)})
		}
	}
	// Each entry's Envoy routes are built once and shared by the virtual
	// hosts that hold them (the messages are never modified afterwards).
	built := make([][]*routev3.Route, len(entries))
	for i, e := range entries {
		built[i] = t.routes(e)
	}
	vhost := func(name string, domains []string, d string, in func(*Route) bool) *routev3.VirtualHost {
		var mine []entry
		for _, e := range entries {
			if in(e.r) {
				mine = append(mine, e)
			}
		}
		sort.SliceStable(mine, func(i, j int) bool { return less(mine[i], mine[j], d) })
		vh := &routev3.VirtualHost{Name: name, Domains: domains}
		for _, e := range mine {
			vh.Routes = append(vh.Routes, built[e.seq]...)
		}
		vh.Routes = append(vh.Routes, noRoute())
		return vh
	}
	// Without hosts that name a port, the Host header's port never
	// matters, as in Kong.
	ignorePort := !slices.ContainsFunc(hosts, func(h hostPattern) bool { return strings.Contains(h.domain, ":") })
	rc := &routev3.RouteConfiguration{
		Name:                     RouteConfigName,
		IgnorePortInHostMatching: ignorePort,
		// Kong tells the upstream the client's address.
		RequestHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-real-ip", Value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
	for _, h := range hosts {
		d := h.domain
		domains := []string{d}
		if !ignorePort && !h.wildcard && !strings.Contains(d, ":") {
			// Kong ignores the port of the Host header when the route's
			// host has none (wildcard hosts rely on the connection
			// manager's strip_matching_host_port).
			domains = append(domains, d+":*")
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vhost("kong.host."+d, domains, d, func(r *Route) bool {
			if len(r.Hosts) == 0 {
				return true
			}
			for _, rh := range r.Hosts {
				if covers(strings.ToLower(rh), d) {
					return true
				}
			}
			return false
		}))
	}
	rc.VirtualHosts = append(rc.VirtualHosts, vhost("kong.any", []string{"*"}, "", func(r *Route) bool { return len(r.Hosts) == 0 }))
	return rc
}

// noRoute is Kong's answer when no route matches.
func noRoute() *routev3.Route {
	return &routev3.Route{
		Name:  "kong.no_route",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 404,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: NoRouteBody}},
		}},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{jsonContentType()},
	}
}

func jsonContentType() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json; charset=utf-8"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func (t *translator) entryName(e entry) string {
	name := routeName(e.r)
	if len(e.r.Paths) > 1 {
		i := slices.IndexFunc(e.r.Paths, func(p string) bool { return strings.TrimPrefix(p, "~") == e.path })
		name = fmt.Sprintf("%s#%d", name, i)
	}
	return name
}

// match builds the RouteMatch of an entry, without the scheme check.
func (t *translator) match(e entry) *routev3.RouteMatch {
	m := &routev3.RouteMatch{}
	switch {
	case e.regex:
		// Kong anchors regex paths at the start only.
		m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: re2("(?:" + e.path + ").*")}
	case e.path != "":
		m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: e.path}
	default:
		m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	r := e.r
	if len(r.Methods) == 1 {
		m.Headers = append(m.Headers, headerMatch(":method", exact(r.Methods[0])))
	} else if len(r.Methods) > 1 {
		m.Headers = append(m.Headers, headerMatch(":method", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: re2(alternatives(r.Methods)),
		}}))
	}
	for _, name := range sortedKeys(r.Headers) {
		m.Headers = append(m.Headers, headerMatch(name, headerValues(r.Headers[name])))
	}
	if len(r.SNIs) > 0 {
		// No route matcher sees the TLS server name: the SNIs are
		// checked against the Host (they agree for browsers and most
		// clients), on HTTPS requests only.
		hostRe := "(?i:" + alternatives(r.SNIs) + ")(?::[0-9]+)?"
		m.Headers = append(m.Headers, headerMatch(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re2(hostRe)}}),
			headerMatch(":scheme", exact("https")))
	}
	return m
}

func alternatives(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = regexp.QuoteMeta(v)
	}
	return strings.Join(q, "|")
}

// headerValues matches one of Kong's header values: plain values compare
// case-insensitively, "~*" values are regexes found anywhere in the value.
func headerValues(vals []string) *matcherv3.StringMatcher {
	if len(vals) == 1 && !strings.HasPrefix(vals[0], "~*") {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: vals[0]}, IgnoreCase: true}
	}
	var alts []string
	for _, v := range vals {
		if re, ok := strings.CutPrefix(v, "~*"); ok {
			alts = append(alts, ".*(?:"+re+").*")
		} else {
			alts = append(alts, "(?i:"+regexp.QuoteMeta(v)+")")
		}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: re2(strings.Join(alts, "|"))}}
}

func headerMatch(name string, sm *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// routes turns one entry into Envoy routes: an HTTPS redirect first for
// https-only routes, then the route proper (and, where Kong's path
// joining needs it, an exact-path variant before it).
func (t *translator) routes(e entry) []*routev3.Route {
	r := e.r
	name := t.entryName(e)
	httpOK := slices.Contains(r.Protocols, "http") || slices.Contains(r.Protocols, "grpc")
	httpsOK := slices.Contains(r.Protocols, "https") || slices.Contains(r.Protocols, "grpcs")
	var out []*routev3.Route
	if !httpOK && httpsOK {
		m := t.match(e)
		m.Headers = append(m.Headers, headerMatch(":scheme", exact("http")))
		rr := &routev3.Route{Name: name + ".https_redirect", Match: m}
		if code := r.HTTPSRedirectStatusCode; code == 426 {
			rr.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 426,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: `{"message":"Please use HTTPS protocol"}`}},
			}}
			rr.ResponseHeadersToAdd = []*corev3.HeaderValueOption{jsonContentType(),
				{Header: &corev3.HeaderValue{Key: "connection", Value: "Upgrade"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
				{Header: &corev3.HeaderValue{Key: "upgrade", Value: "TLS/1.2, HTTP/1.1"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
		} else {
			rc := map[int]routev3.RedirectAction_RedirectResponseCode{
				301: routev3.RedirectAction_MOVED_PERMANENTLY, 302: routev3.RedirectAction_FOUND,
				307: routev3.RedirectAction_TEMPORARY_REDIRECT, 308: routev3.RedirectAction_PERMANENT_REDIRECT,
			}[code]
			rr.Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
				ResponseCode:           rc,
			}}
		}
		out = append(out, rr)
	}
	base := func() *routev3.RouteMatch {
		m := t.match(e)
		switch {
		case httpOK && !httpsOK:
			m.Headers = append(m.Headers, headerMatch(":scheme", exact("http")))
		case !httpOK && httpsOK && len(r.SNIs) == 0:
			m.Headers = append(m.Headers, headerMatch(":scheme", exact("https")))
		}
		return m
	}
	if r.Service == nil || !r.Service.Enabled {
		out = append(out, &routev3.Route{Name: name, Match: base(), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 503,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: `{"message":"no Service found with those values"}`}},
		}}, ResponseHeadersToAdd: []*corev3.HeaderValueOption{jsonContentType()}})
		return out
	}
	for _, rw := range t.rewrites(e) {
		m := base()
		if rw.exact != "" {
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: rw.exact}
		}
		a := t.action(r)
		if rw.pattern != "" {
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: re2(rw.pattern), Substitution: rw.subst}
		}
		rt := &routev3.Route{
			Name:                 name,
			Match:                m,
			Action:               &routev3.Route_Route{Route: a},
			ResponseHeadersToAdd: t.kongHeaders(),
			TypedPerFilterConfig: t.enable(r),
		}
		out = append(out, rt)
	}
	return out
}

// rewrite is one Envoy route's path rewrite; exact restricts the route to
// one path (placed before the general one).
type rewrite struct{ exact, pattern, subst string }

// rewrites implements strip_path and path_handling (Kong's
// "path_handling" table) with regex_rewrite:
//
//	v0: service.path and the rest of the request path are joined with
//	    exactly one slash; an empty rest leaves service.path alone.
//	v1: service.path is a plain prefix of the rest with its leading
//	    slashes dropped.
//
// The rest is the request path, minus the matched part with strip_path.
func (t *translator) rewrites(e entry) []rewrite {
	r, s := e.r, e.r.Service
	sp := s.Path
	root := sp == "" || sp == "/"
	matched := regexp.QuoteMeta(e.path)
	if e.regex {
		matched = "(?:" + e.path + ")"
	}
	if e.path == "" {
		matched = ""
	}
	trimmed := strings.TrimRight(sp, "/")
	// Stripping "/" and joining again is the identity in v0 and v1.
	strip := r.StripPath && !(e.path == "/" && !e.regex)
	if !strip {
		switch {
		case root:
			return []rewrite{{}}
		case r.PathHandling == "v1":
			return []rewrite{{pattern: `^/(.*)$`, subst: sp + `\1`}}
		default:
			out := []rewrite{{pattern: `^/*(.*)$`, subst: trimmed + `/\1`}}
			if (e.path == "" || e.path == "/") && !e.regex {
				out = []rewrite{{exact: "/", pattern: `^.*$`, subst: sp}, out[0]}
			}
			return out
		}
	}
	pattern := "^" + matched + `/*(.*)$`
	switch {
	case root:
		return []rewrite{{pattern: pattern, subst: `/\1`}}
	case r.PathHandling == "v1":
		return []rewrite{{pattern: pattern, subst: sp + `\1`}}
	case !e.regex && e.path != "" && !strings.HasSuffix(e.path, "/"):
		return []rewrite{{exact: e.path, pattern: `^.*$`, subst: sp}, {pattern: pattern, subst: trimmed + `/\1`}}
	default:
		return []rewrite{{pattern: pattern, subst: trimmed + `/\1`}}
	}
}

func (t *translator) action(r *Route) *routev3.RouteAction {
	s := r.Service
	a := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: t.clusters[s]},
		// Kong has no overall deadline: read_timeout and write_timeout
		// bound the time between two reads or writes, which is Envoy's
		// per-route stream idle timeout.
		Timeout:     durationpb.New(0),
		IdleTimeout: ms(max(s.ReadTimeout, s.WriteTimeout)),
		HashPolicy:  t.hashPolicy(r, s.upstream),
	}
	if s.Retries > 0 {
		// Kong (nginx proxy_next_upstream "error timeout") retries when
		// the connection fails or the upstream fails before answering.
		a.RetryPolicy = &routev3.RetryPolicy{
			RetryOn:    "connect-failure,refused-stream,reset",
			NumRetries: wrapperspb.UInt32(uint32(s.Retries)),
		}
	}
	if !r.PreserveHost {
		switch {
		case s.upstream != nil && s.upstream.HostHeader != "":
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: s.upstream.HostHeader}
		case s.upstream != nil:
			a.HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
		default:
			host := s.Host
			if !(s.Port == 80 && (s.Protocol == "http" || s.Protocol == "grpc")) && !(s.Port == 443 && (s.Protocol == "https" || s.Protocol == "grpcs")) {
				host = fmt.Sprintf("%s:%d", host, s.Port)
				if strings.Contains(s.Host, ":") {
					host = fmt.Sprintf("[%s]:%d", s.Host, s.Port)
				}
			}
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: host}
		}
	}
	return a
}

// kongHeaders are the response headers Kong adds to proxied responses.
// Kong's latencies have no exact Envoy counterpart: X-Kong-Proxy-Latency
// is %REQUEST_DURATION% (until the request was received, hence proxied)
// and X-Kong-Upstream-Latency is %RESPONSE_DURATION% (until the first
// upstream byte, which includes the proxy latency).
func (t *translator) kongHeaders() []*corev3.HeaderValueOption {
	hs := t.opts.Headers
	if len(hs) == 0 {
		hs = []string{"server_tokens", "latency_tokens"}
	}
	if slices.Contains(hs, "off") {
		return nil
	}
	version := t.opts.Version
	if version == "" {
		version = "3.9.0"
	}
	var out []*corev3.HeaderValueOption
	add := func(k, v string) {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	if slices.Contains(hs, "server_tokens") || slices.Contains(hs, "via") {
		add("via", "1.1 kong/"+version)
	}
	if slices.Contains(hs, "latency_tokens") || slices.Contains(hs, "X-Kong-Proxy-Latency") {
		add("x-kong-proxy-latency", "%REQUEST_DURATION%")
	}
	if slices.Contains(hs, "latency_tokens") || slices.Contains(hs, "X-Kong-Upstream-Latency") {
		add("x-kong-upstream-latency", "%RESPONSE_DURATION%")
	}
	return out
}

// enable turns on the route's service-chain and route-chain instances.
func (t *translator) enable(r *Route) map[string]*anypb.Any {
	insts := append(slices.Clone(t.svcInsts[r.Service]), t.rtInsts[r]...)
	if len(insts) == 0 {
		return nil
	}
	m := make(map[string]*anypb.Any, len(insts))
	for _, in := range insts {
		m[in.entry] = mustAny(&routev3.FilterConfig{Config: &anypb.Any{}}) // an empty config enables
	}
	return m
}

func durationFromSeconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
