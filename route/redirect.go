package route

import (
	"strconv"
	"strings"

	"github.com/wasmesh/wasmesh/header"
)

// Location builds the redirect's Location header for a request, as Envoy's
// router: the path is first rewritten by prefix_rewrite or regex_rewrite,
// then scheme, host, port, path_redirect and strip_query apply.
func (rd *Redirect) Location(h *header.Map) string {
	host, _ := h.Get(":authority")
	path, _ := h.Get(":path")
	if rd.ssl {
		return "https://" + host + path
	}
	if rd.route != nil {
		path, _ = rd.route.RewritePath(path)
	}
	scheme := rd.Scheme
	if scheme == "" {
		scheme, _ = h.Get(":scheme")
	}
	port := ""
	if rd.Port != 0 {
		port = ":" + strconv.FormatUint(uint64(rd.Port), 10)
	}
	if rd.Host != "" {
		host = rd.Host
	} else {
		xfp, _ := h.Get("x-forwarded-proto")
		host = redirectHost(host, scheme, port, xfp)
	}
	if rd.PathRedirect != "" {
		switch {
		case rd.pathHasQuery:
			path = rd.PathRedirect
		default:
			if i := strings.IndexByte(path, '?'); i >= 0 {
				path = rd.PathRedirect + path[i:]
			} else {
				path = rd.PathRedirect
			}
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !rd.pathHasQuery && rd.StripQuery {
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
	}
	return scheme + "://" + host + port + path
}

// redirectHost drops the request's port when the redirect sets one, or
// when the scheme changes and the port is the old scheme's default
// (Envoy's processRequestHost; the old scheme is x-forwarded-proto).
func redirectHost(host, newScheme, newPort, requestProto string) string {
	if host == "" {
		return host
	}
	end := -1
	if host[0] == '[' {
		if i := strings.LastIndex(host, "]:"); i >= 0 {
			end = i + 1
		}
	} else {
		end = strings.LastIndexByte(host, ':')
	}
	if end < 0 {
		return host
	}
	reqPort := host[end:]
	remove := newPort != ""
	if newScheme != requestProto {
		remove = remove || equalFold(requestProto, "https") && reqPort == ":443"
		remove = remove || equalFold(requestProto, "http") && reqPort == ":80"
	}
	if remove {
		return host[:end]
	}
	return host
}
