package kong

import (
	"fmt"
	"math"
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

// Kong's traditional_compat router gives every route a 64-bit priority
// and tries routes from the highest priority down (kong/router/compat.lua,
// get_priority, moved to kong/router/transform.lua in later releases; the
// ATC router walks its matchers by descending priority). Most significant
// bits first:
//
//	bits 61-63  match weight: one each for non-empty methods, hosts,
//	            headers, snis and paths
//	bit  60     plain hosts only: the route has hosts and none of them
//	            contains "*" (a route without hosts does not get it)
//	bits 52-59  number of header names, at most 255
//	bit  51     the path is a regex
//	bits 19-50  regex_priority, for a regex path only
//	bits  0-18  length of a prefix path (masked to 19 bits)
//
// A route with several paths is split first, one route per prefix length
// and one for all its regex paths, each ranked with its own paths
// (split_routes_and_services_by_path); ranking each path on its own gives
// the same order. Kong's docs leave the order of equal priorities
// undefined (the ATC router happens to use the route's UUID); here they
// keep definition order.
//
// The translation keeps that single order: one virtual host "*" holds
// every route once, sorted by it, each route carrying its hosts as an
// :authority matcher, so Envoy's first match is Kong's. It ends with
// Kong's 404.

// entry is one path of one route (or a route without paths).
type entry struct {
	r     *Route
	path  string // "" when the route has no paths
	regex bool
	seq   int    // definition order, for stable ties
	prio  uint64 // Kong's priority, see priority
}

func isWildcard(h string) bool { return strings.HasPrefix(h, "*") || strings.HasSuffix(h, "*") }

// Bits of Kong's route priority.
const (
	prioWeightShift  = 61
	prioPlainHostBit = 1 << 60
	prioHeaderShift  = 52
	prioRegexBit     = 1 << 51
	prioRegexShift   = 19
	prioLengthMask   = 0x7FFFF
	maxHeaderCount   = 255
)

// priority is Kong's priority of one path of a route (path "" for a route
// without paths). One difference: Kong shifts regex_priority into its 32
// bits as is, so a negative value would spill into the bits above it;
// here it is biased by 2^31 (clamped to 32 bits), so a higher
// regex_priority always ranks first, as Kong's docs say.
func priority(r *Route, path string, regex bool) uint64 {
	var weight uint64
	for _, n := range []int{len(r.Methods), len(r.Hosts), len(r.Headers), len(r.SNIs), len(r.Paths)} {
		if n > 0 {
			weight++
		}
	}
	p := weight << prioWeightShift
	if len(r.Hosts) > 0 && !slices.ContainsFunc(r.Hosts, func(h string) bool { return strings.Contains(h, "*") }) {
		p |= prioPlainHostBit
	}
	p |= uint64(min(len(r.Headers), maxHeaderCount)) << prioHeaderShift
	switch {
	case regex:
		rp := int64(min(max(r.RegexPriority, math.MinInt32), math.MaxInt32)) + 1<<31
		p |= prioRegexBit | uint64(rp)<<prioRegexShift
	case path != "":
		p |= uint64(len(path)) & prioLengthMask
	}
	return p
}

// less orders entries as Kong tries them: higher priority first, then
// definition order.
func less(a, b entry) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.seq < b.seq
}

func (t *translator) routeConfig() *routev3.RouteConfiguration {
	var entries []entry
	for _, r := range t.cfg.Routes {
		if r.Service != nil && !r.Service.Enabled {
			continue // a disabled service's routes are not routed
		}
		if len(r.Paths) == 0 {
			entries = append(entries, entry{r: r, seq: len(entries), prio: priority(r, "", false)})
		}
		for _, p := range r.Paths {
			re, isRe := strings.CutPrefix(p, "~")
			if !isRe {
				re = p
			}
			entries = append(entries, entry{r: r, path: re, regex: isRe, seq: len(entries), prio: priority(r, re, isRe)})
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return less(entries[i], entries[j]) })
	vh := &routev3.VirtualHost{Name: "kong.any", Domains: []string{"*"}}
	for _, e := range entries {
		vh.Routes = append(vh.Routes, t.routes(e)...)
	}
	vh.Routes = append(vh.Routes, t.noRoute())
	return &routev3.RouteConfiguration{
		Name:         RouteConfigName,
		VirtualHosts: []*routev3.VirtualHost{vh},
		// Kong tells the upstream the client's address.
		RequestHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-real-ip", Value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
}

// anyPort is an optional port after a host.
const anyPort = "(?::[0-9]+)?"

// hostsMatch matches the Host (:authority) against a route's hosts as
// Kong does: case-insensitively; a host without a port matches any port
// (Kong compares the Host header without its port), a host with a port
// only that port; "*.example.com" matches one or more labels before
// ".example.com", "example.*" one or more after "example.". Plain hosts
// without a port come first as one group, "(?i:a|b)(?::[0-9]+)?", the
// shape the route package indexes by host.
func hostsMatch(hosts []string) *routev3.HeaderMatcher {
	var plain, other []string
	for _, h := range hosts {
		h = strings.ToLower(h)
		name, port := h, ""
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
			name, port = h[:i], h[i:]
		}
		if !isWildcard(name) && port == "" {
			plain = append(plain, regexp.QuoteMeta(name))
			continue
		}
		var re string
		switch {
		case strings.HasPrefix(name, "*"):
			re = "[^:]+" + regexp.QuoteMeta(name[1:])
		case strings.HasSuffix(name, "*"):
			re = regexp.QuoteMeta(name[:len(name)-1]) + "[^:]+"
		default:
			re = regexp.QuoteMeta(name)
		}
		if port == "" {
			re += anyPort
		} else {
			re += regexp.QuoteMeta(port)
		}
		other = append(other, re)
	}
	var alts []string
	if len(plain) > 0 {
		alts = append(alts, "(?i:"+strings.Join(plain, "|")+")"+anyPort)
	}
	if len(other) > 0 {
		alts = append(alts, "(?i:"+strings.Join(other, "|")+")")
	}
	return headerMatch(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: re2(strings.Join(alts, "|")),
	}})
}

// noRoute is Kong's answer when no route matches; Kong names itself in
// the Server header of the responses it makes (with server_tokens).
func (t *translator) noRoute() *routev3.Route {
	hdrs := []*corev3.HeaderValueOption{jsonContentType()}
	if v := t.serverToken(); v != "" {
		hdrs = append(hdrs, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "server", Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	return &routev3.Route{
		Name:  "kong.no_route",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 404,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: NoRouteBody}},
		}},
		ResponseHeadersToAdd: hdrs,
	}
}

// serverToken is the Server value of Kong's own responses ("kong/3.9.0"),
// "" when the headers setting leaves server_tokens out.
func (t *translator) serverToken() string {
	hs := t.opts.Headers
	if len(hs) == 0 {
		hs = []string{"server_tokens", "latency_tokens"}
	}
	if slices.Contains(hs, "off") || !slices.Contains(hs, "server_tokens") && !slices.Contains(hs, "Server") {
		return ""
	}
	version := t.opts.Version
	if version == "" {
		version = "3.9.0"
	}
	return "kong/" + version
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
	if len(r.Hosts) > 0 {
		m.Headers = append(m.Headers, hostsMatch(r.Hosts))
	}
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
		hostRe := "(?i:" + alternatives(r.SNIs) + ")" + anyPort
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
