package kong

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"

	xkong "github.com/wasmesh/wasmesh/xds/kong"
)

// idNamespace is the UUID v5 namespace of generated ids (the RFC's DNS
// namespace; names are "kong:<kind>:<key>").
var idNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// StableID is the UUID v5 of "kong:<kind>:<key>".
func StableID(kind, key string) string {
	h := sha1.New()
	h.Write(idNamespace[:])
	h.Write([]byte("kong:" + kind + ":" + key))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// assignIDs gives every entity without an id a stable one.
func assignIDs(cfg *xkong.Config) {
	for i, s := range cfg.Services {
		if s.ID == "" {
			key := s.Name
			if key == "" {
				key = "#" + strconv.Itoa(i)
			}
			s.ID = StableID("service", key)
		}
	}
	for i, r := range cfg.Routes {
		if r.ID == "" {
			key := r.Name
			if key == "" {
				key = "#" + strconv.Itoa(i)
				if r.Service != nil {
					key = r.Service.ID + key
				}
			}
			r.ID = StableID("route", key)
		}
	}
	for i, u := range cfg.Upstreams {
		if u.ID == "" {
			key := u.Name
			if key == "" {
				key = "#" + strconv.Itoa(i)
			}
			u.ID = StableID("upstream", key)
		}
		for _, t := range u.Targets {
			if t.ID == "" {
				t.ID = StableID("target", u.ID+":"+targetString(t))
			}
		}
	}
	for _, s := range cfg.Services {
		if fc := s.FilterChain; fc != nil && fc.ID == "" {
			fc.ID = StableID("filter_chain", "service:"+s.ID)
		}
	}
	for _, r := range cfg.Routes {
		if fc := r.FilterChain; fc != nil && fc.ID == "" {
			fc.ID = StableID("filter_chain", "route:"+r.ID)
		}
	}
	for _, c := range cfg.Certificates {
		if c.ID == "" {
			sum := sha256.Sum256([]byte(c.Cert))
			c.ID = StableID("certificate", hex.EncodeToString(sum[:]))
		}
	}
	for _, c := range cfg.CACertificates {
		if c.ID == "" {
			sum := sha256.Sum256([]byte(c.Cert))
			c.ID = StableID("ca_certificate", hex.EncodeToString(sum[:]))
		}
	}
}

func targetString(t *xkong.Target) string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// obj is one entity as Kong's Admin API renders it.
type obj = map[string]any

func ref(id string) any {
	if id == "" {
		return nil
	}
	return obj{"id": id}
}

func strs(v []string) any {
	if v == nil {
		return nil
	}
	return v
}

func serviceJSON(s *xkong.Service, ts int64) obj {
	var path any
	if s.Path != "" {
		path = s.Path
	}
	return obj{
		"id": s.ID, "name": nullable(s.Name), "protocol": s.Protocol, "host": s.Host, "port": s.Port,
		"path": path, "retries": s.Retries, "connect_timeout": s.ConnectTimeout,
		"read_timeout": s.ReadTimeout, "write_timeout": s.WriteTimeout,
		"tls_verify": s.TLSVerify, "tls_verify_depth": s.TLSVerifyDepth,
		"ca_certificates": strs(s.CACertificates), "client_certificate": ref(s.ClientCertID),
		"enabled": s.Enabled, "tags": strs(s.Tags), "created_at": ts, "updated_at": ts,
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func routeJSON(r *xkong.Route, ts int64) obj {
	var svc any
	if r.Service != nil {
		svc = ref(r.Service.ID)
	}
	var headers any
	if len(r.Headers) > 0 {
		headers = r.Headers
	}
	return obj{
		"id": r.ID, "name": nullable(r.Name), "protocols": strs(r.Protocols), "methods": strs(r.Methods),
		"hosts": strs(r.Hosts), "paths": strs(r.Paths), "headers": headers, "snis": strs(r.SNIs),
		"sources": nil, "destinations": nil,
		"strip_path": r.StripPath, "preserve_host": r.PreserveHost, "regex_priority": r.RegexPriority,
		"path_handling": r.PathHandling, "https_redirect_status_code": r.HTTPSRedirectStatusCode,
		"request_buffering": r.RequestBuffering, "response_buffering": r.ResponseBuffering,
		"tags": strs(r.Tags), "service": svc, "created_at": ts, "updated_at": ts,
	}
}

func upstreamJSON(u *xkong.Upstream, ts int64) obj {
	return obj{
		"id": u.ID, "name": u.Name, "algorithm": u.Algorithm, "hash_on": u.HashOn,
		"hash_fallback": u.HashFallback, "hash_on_header": nullable(u.HashOnHeader),
		"hash_fallback_header": nullable(u.HashFallbackHeader), "hash_on_cookie": nullable(u.HashOnCookie),
		"hash_on_cookie_path": u.HashOnCookiePath, "hash_on_query_arg": nullable(u.HashOnQueryArg),
		"hash_fallback_query_arg": nullable(u.HashFallbackQueryArg),
		"hash_on_uri_capture":     nullable(u.HashOnURICapture), "hash_fallback_uri_capture": nullable(u.HashFallbackURICapture),
		"slots": u.Slots, "host_header": nullable(u.HostHeader), "tags": strs(u.Tags),
		"created_at": ts, "updated_at": ts,
	}
}

func targetJSON(u *xkong.Upstream, t *xkong.Target, ts int64) obj {
	return obj{"id": t.ID, "target": targetString(t), "weight": t.Weight, "upstream": ref(u.ID),
		"tags": strs(t.Tags), "created_at": ts, "updated_at": ts}
}

func filterChainJSON(fc *xkong.FilterChain, service, route string, ts int64) obj {
	filters := make([]obj, 0, len(fc.Filters))
	for _, f := range fc.Filters {
		var cfg any
		if f.HasConfig {
			cfg = f.Config
		}
		filters = append(filters, obj{"name": f.Name, "config": cfg, "enabled": f.Enabled})
	}
	return obj{"id": fc.ID, "name": nullable(fc.Name), "enabled": fc.Enabled, "filters": filters,
		"service": ref(service), "route": ref(route), "tags": strs(fc.Tags), "created_at": ts, "updated_at": ts}
}

// chainRef is a filter chain and its owner.
type chainRef struct {
	fc      *xkong.FilterChain
	service *xkong.Service
	route   *xkong.Route
}

func (c chainRef) json(ts int64) obj {
	var s, r string
	if c.service != nil {
		s = c.service.ID
	}
	if c.route != nil {
		r = c.route.ID
	}
	return filterChainJSON(c.fc, s, r, ts)
}

func chains(cfg *xkong.Config) []chainRef {
	var out []chainRef
	for _, s := range cfg.Services {
		if s.FilterChain != nil {
			out = append(out, chainRef{fc: s.FilterChain, service: s})
		}
	}
	for _, r := range cfg.Routes {
		if r.FilterChain != nil {
			out = append(out, chainRef{fc: r.FilterChain, route: r})
		}
	}
	return out
}

// routeFilters is Kong's execution plan for a route
// (GET /routes/{id}/filters/{all,enabled,disabled}): every filter of its
// service's chain, then of its own, each with the chain it comes from,
// "from" (service or route) and "enabled" (the chain's and the filter's
// flags both on). which keeps the enabled ones, the disabled ones or all.
func routeFilters(r *xkong.Route, which string) []obj {
	out := []obj{}
	add := func(fc *xkong.FilterChain, from string) {
		if fc == nil {
			return
		}
		for _, f := range fc.Filters {
			on := fc.Enabled && f.Enabled
			if which == "enabled" && !on || which == "disabled" && on {
				continue
			}
			var cfg any
			if f.HasConfig {
				cfg = f.Config
			}
			out = append(out, obj{"name": f.Name, "config": cfg, "from": from, "enabled": on,
				"filter_chain": obj{"id": fc.ID, "name": nullable(fc.Name)}})
		}
	}
	if r.Service != nil {
		add(r.Service.FilterChain, "service")
	}
	add(r.FilterChain, "route")
	return out
}

// flattened is POST /config's answer: the entities by kind and id.
func flattened(cfg *xkong.Config, ts int64) obj {
	by := func(items []obj) obj {
		m := obj{}
		for _, it := range items {
			m[fmt.Sprint(it["id"])] = it
		}
		return m
	}
	var svcs, rts, ups, tgs, fcs []obj
	for _, s := range cfg.Services {
		svcs = append(svcs, serviceJSON(s, ts))
	}
	for _, r := range cfg.Routes {
		rts = append(rts, routeJSON(r, ts))
	}
	for _, u := range cfg.Upstreams {
		ups = append(ups, upstreamJSON(u, ts))
		for _, t := range u.Targets {
			tgs = append(tgs, targetJSON(u, t, ts))
		}
	}
	for _, c := range chains(cfg) {
		fcs = append(fcs, c.json(ts))
	}
	return obj{"services": by(svcs), "routes": by(rts), "upstreams": by(ups), "targets": by(tgs), "filter_chains": by(fcs)}
}
