package route

import (
	"strings"

	"github.com/wasmesh/wasmesh/header"
)

// matchedPath is the part of the path the route's matcher consumed, which a
// prefix rewrite replaces: the prefix for prefix and path_separated_prefix
// routes, the configured path for path routes, and the whole path without
// its query for regex and CONNECT routes.
func (r *Route) matchedPath(p string) string {
	switch r.pathKind {
	case pathPrefix, pathExact, pathSeparated:
		return r.pathValue
	}
	just, _ := splitQuery(p)
	return just
}

// RewritePath applies the route's prefix_rewrite or regex_rewrite to a
// :path value (query included) and reports whether it changed anything.
// For a redirect route it applies the redirect's rewrites.
func (r *Route) RewritePath(p string) (string, bool) {
	switch {
	case r.Kind == ActionRoute && r.Action != nil:
		return rewritePath(p, r.matchedPath(p), r.Action.PrefixRewrite, r.Action.RegexRewrite)
	case r.Kind == ActionRedirect && r.Redirect != nil:
		return rewritePath(p, r.matchedPath(p), r.Redirect.PrefixRewrite, r.Redirect.RegexRewrite)
	}
	return p, false
}

// headerLevels lists a match's route-level mutations in Envoy's order:
// most specific first (the last applied wins, so the route configuration
// wins) unless most_specific_header_mutations_wins reverses it.
func (m *Match) headerLevels(request bool) [3]*HeaderMutation {
	r := m.Route
	vh, t := r.vhost, r.vhost.table
	var l [3]*HeaderMutation
	if request {
		l = [3]*HeaderMutation{r.requestHeaders, vh.requestHeaders, t.requestHeaders}
	} else {
		l = [3]*HeaderMutation{r.responseHeaders, vh.responseHeaders, t.responseHeaders}
	}
	if t.mostSpecificWins {
		l[0], l[2] = l[2], l[0]
	}
	return l
}

// FinalizeRequestHeaders prepares the upstream request as Envoy's route
// entry does: the picked weighted cluster's header mutations and
// host_rewrite_literal, then the route, virtual host and route
// configuration mutations (in the order most_specific_header_mutations_wins
// selects), then the host rewrite (host_rewrite_literal,
// host_rewrite_header or host_rewrite_path_regex, with
// append_x_forwarded_host), then the path rewrite. With
// insertOriginalPath the path before a rewrite is kept in
// x-envoy-original-path. auto_host_rewrite is left to the router, which
// knows the upstream host. f expands header value format commands.
func (m *Match) FinalizeRequestHeaders(h *header.Map, f Formatter, insertOriginalPath bool) {
	if m.Route == nil || m.Route.sslRedirect {
		return
	}
	if m.Weighted != nil {
		m.Weighted.requestHeaders.Apply(h, f)
		if m.Weighted.HostRewriteLiteral != "" {
			h.Set(":authority", m.Weighted.HostRewriteLiteral)
		}
	}
	for _, l := range m.headerLevels(true) {
		l.Apply(h, f)
	}
	a := m.Route.Action
	if a == nil {
		return
	}
	if host := a.rewrittenHost(h); host != "" {
		updateAuthority(h, host, a.AppendXForwardedHost)
	}
	if p, ok := h.Get(":path"); ok {
		if np, changed := m.Route.RewritePath(p); changed {
			if insertOriginalPath {
				h.Set("x-envoy-original-path", p)
			}
			h.Set(":path", np)
		}
	}
}

// FinalizeResponseHeaders applies the response header mutations: the
// picked weighted cluster's, then the route levels in Envoy's order.
func (m *Match) FinalizeResponseHeaders(h *header.Map, f Formatter) {
	if m.Route == nil || m.Route.sslRedirect {
		return
	}
	if m.Weighted != nil {
		m.Weighted.responseHeaders.Apply(h, f)
	}
	for _, l := range m.headerLevels(false) {
		l.Apply(h, f)
	}
}

// rewrittenHost is the host a route's host rewrite asks for, "" for none.
func (a *RouteAction) rewrittenHost(h *header.Map) string {
	switch {
	case a.HostRewriteLiteral != "":
		return a.HostRewriteLiteral
	case a.HostRewriteHeader != "":
		v, _ := h.Get(a.HostRewriteHeader)
		return v
	case a.HostRewritePathRegex != nil:
		p, _ := h.Get(":path")
		just, _ := splitQuery(p)
		return a.HostRewritePathRegex.ReplaceAll(just)
	}
	return ""
}

// RewriteHostForUpstream is auto_host_rewrite: the router calls it with the
// chosen upstream host's hostname.
func (a *RouteAction) RewriteHostForUpstream(h *header.Map, hostname string) {
	if a.AutoHostRewrite && hostname != "" {
		updateAuthority(h, hostname, a.AppendXForwardedHost)
	}
}

// updateAuthority sets :authority, first appending the old value to
// x-forwarded-host when asked and when it is not already its last element
// (Envoy's Utility::updateAuthority).
func updateAuthority(h *header.Map, host string, appendXFH bool) {
	if old, _ := h.Get(":authority"); appendXFH && old != "" {
		xfh, ok := h.Get("x-forwarded-host")
		switch {
		case !ok || xfh == "":
			h.Set("x-forwarded-host", old)
		default:
			last := xfh
			if i := strings.LastIndexByte(xfh, ','); i >= 0 {
				last = xfh[i+1:]
			}
			if last != old {
				h.Set("x-forwarded-host", xfh+","+old)
			}
		}
	}
	h.Set(":authority", host)
}
