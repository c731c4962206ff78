package kong

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/wasmesh/wasmesh/stats"
	xkong "github.com/wasmesh/wasmesh/xds/kong"
)

// maxConfigBody bounds POST /config.
const maxConfigBody = 64 << 20

// Handler is the DB-less Admin API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", g.root)
	mux.HandleFunc("GET /status", g.status)
	mux.HandleFunc("GET /config", g.getConfig)
	mux.HandleFunc("POST /config", g.postConfig)
	mux.HandleFunc("GET /services", g.list(func(c *xkong.Config, ts int64) []obj {
		out := make([]obj, 0, len(c.Services))
		for _, s := range c.Services {
			out = append(out, serviceJSON(s, ts))
		}
		return out
	}))
	mux.HandleFunc("GET /services/{id}", g.one(func(c *xkong.Config, id string, ts int64) obj {
		if s := findService(c, id); s != nil {
			return serviceJSON(s, ts)
		}
		return nil
	}))
	mux.HandleFunc("GET /services/{id}/routes", g.sub(func(c *xkong.Config, id string, ts int64) []obj {
		s := findService(c, id)
		if s == nil {
			return nil
		}
		out := []obj{}
		for _, r := range c.Routes {
			if r.Service == s {
				out = append(out, routeJSON(r, ts))
			}
		}
		return out
	}))
	mux.HandleFunc("GET /services/{id}/filter-chains", g.wasmOnly(g.sub(func(c *xkong.Config, id string, ts int64) []obj {
		s := findService(c, id)
		if s == nil {
			return nil
		}
		out := []obj{}
		if s.FilterChain != nil {
			out = append(out, filterChainJSON(s.FilterChain, s.ID, "", ts))
		}
		return out
	})))
	mux.HandleFunc("GET /routes", g.list(func(c *xkong.Config, ts int64) []obj {
		out := make([]obj, 0, len(c.Routes))
		for _, r := range c.Routes {
			out = append(out, routeJSON(r, ts))
		}
		return out
	}))
	mux.HandleFunc("GET /routes/{id}", g.one(func(c *xkong.Config, id string, ts int64) obj {
		if r := findRoute(c, id); r != nil {
			return routeJSON(r, ts)
		}
		return nil
	}))
	mux.HandleFunc("GET /routes/{id}/filter-chains", g.wasmOnly(g.sub(func(c *xkong.Config, id string, ts int64) []obj {
		r := findRoute(c, id)
		if r == nil {
			return nil
		}
		out := []obj{}
		if r.FilterChain != nil {
			out = append(out, filterChainJSON(r.FilterChain, "", r.ID, ts))
		}
		return out
	})))
	for _, which := range []string{"all", "enabled", "disabled"} {
		mux.HandleFunc("GET /routes/{id}/filters/"+which, g.wasmOnly(g.one(func(c *xkong.Config, id string, ts int64) obj {
			if r := findRoute(c, id); r != nil {
				return obj{"filters": routeFilters(r, which)}
			}
			return nil
		})))
	}
	mux.HandleFunc("GET /upstreams", g.list(func(c *xkong.Config, ts int64) []obj {
		out := make([]obj, 0, len(c.Upstreams))
		for _, u := range c.Upstreams {
			out = append(out, upstreamJSON(u, ts))
		}
		return out
	}))
	mux.HandleFunc("GET /upstreams/{id}", g.one(func(c *xkong.Config, id string, ts int64) obj {
		if u := findUpstream(c, id); u != nil {
			return upstreamJSON(u, ts)
		}
		return nil
	}))
	mux.HandleFunc("GET /upstreams/{id}/targets", g.sub(func(c *xkong.Config, id string, ts int64) []obj {
		u := findUpstream(c, id)
		if u == nil {
			return nil
		}
		out := make([]obj, 0, len(u.Targets))
		for _, t := range u.Targets {
			out = append(out, targetJSON(u, t, ts))
		}
		return out
	}))
	mux.HandleFunc("GET /filter-chains", g.wasmOnly(g.list(func(c *xkong.Config, ts int64) []obj {
		out := []obj{}
		for _, ch := range chains(c) {
			out = append(out, ch.json(ts))
		}
		return out
	})))
	mux.HandleFunc("GET /filter-chains/{id}", g.wasmOnly(g.one(func(c *xkong.Config, id string, ts int64) obj {
		for _, ch := range chains(c) {
			if ch.fc.ID == id || ch.fc.Name != "" && ch.fc.Name == id {
				return ch.json(ts)
			}
		}
		return nil
	})))
	// DB-less: entities change only through POST /config, as in Kong.
	for _, kind := range []string{"services", "routes", "upstreams", "targets", "filter-chains", "certificates", "snis", "ca_certificates"} {
		readOnly := func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusMethodNotAllowed, obj{"message": fmt.Sprintf(
				"cannot %s '%s' entities when not using a database", verb(r.Method), strings.ReplaceAll(kind, "-", "_"))})
		}
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			mux.HandleFunc(m+" /"+kind, readOnly)
			mux.HandleFunc(m+" /"+kind+"/", readOnly)
			for _, parent := range []string{"services", "routes", "upstreams"} {
				mux.HandleFunc(m+" /"+parent+"/{id}/"+kind, readOnly)
				mux.HandleFunc(m+" /"+parent+"/{id}/"+kind+"/", readOnly)
			}
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, obj{"message": "Not found"})
	})
	return mux
}

func verb(method string) string {
	switch method {
	case "POST":
		return "create"
	case "DELETE":
		return "delete"
	}
	return "create or update"
}

func findService(c *xkong.Config, id string) *xkong.Service {
	for _, s := range c.Services {
		if s.ID == id || s.Name != "" && s.Name == id {
			return s
		}
	}
	return nil
}

func findRoute(c *xkong.Config, id string) *xkong.Route {
	for _, r := range c.Routes {
		if r.ID == id || r.Name != "" && r.Name == id {
			return r
		}
	}
	return nil
}

func findUpstream(c *xkong.Config, id string) *xkong.Upstream {
	for _, u := range c.Upstreams {
		if u.ID == id || u.Name == id {
			return u
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"message":"An unexpected error occurred"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Server", "kong/"+Version)
	w.WriteHeader(code)
	w.Write(b)
}

// page answers a collection in Kong's shape: {"data": [...], "next": ...}
// with size (default 100, at most 1000) and an opaque offset.
func page(w http.ResponseWriter, r *http.Request, items []obj) {
	size := 100
	if v := r.URL.Query().Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, obj{"code": 2, "name": "schema violation",
				"message": "schema violation (size: must be an integer between 1 and 1000)",
				"fields":  obj{"size": "must be an integer between 1 and 1000"}})
			return
		}
		size = n
	}
	start := 0
	if v := r.URL.Query().Get("offset"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 || n > len(items) {
			writeJSON(w, http.StatusBadRequest, obj{"code": 7, "name": "invalid offset",
				"message": fmt.Sprintf("'%s' is not a valid offset: bad base64 encoding", v)})
			return
		}
		start = n
	}
	end := min(start+size, len(items))
	var next, offset any
	if end < len(items) {
		o := base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		q := r.URL.Query()
		q.Set("offset", o)
		next, offset = r.URL.Path+"?"+q.Encode(), o
	}
	data := items[start:end]
	if data == nil {
		data = []obj{}
	}
	body := obj{"data": data, "next": next}
	if offset != nil {
		body["offset"] = offset
	}
	writeJSON(w, http.StatusOK, body)
}

func (g *Gateway) list(f func(*xkong.Config, int64) []obj) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := g.state.Load()
		page(w, r, f(st.cfg, st.at))
	}
}

func (g *Gateway) sub(f func(*xkong.Config, string, int64) []obj) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := g.state.Load()
		items := f(st.cfg, r.PathValue("id"), st.at)
		if items == nil {
			writeJSON(w, http.StatusNotFound, obj{"message": "Not found"})
			return
		}
		page(w, r, items)
	}
}

// wasmOnly answers Kong's 400 on the filter chain endpoints when wasm is
// off.
func (g *Gateway) wasmOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !g.settings.Wasm {
			writeJSON(w, http.StatusBadRequest, obj{"message": "this endpoint is only available when wasm is enabled"})
			return
		}
		h(w, r)
	}
}

func (g *Gateway) one(f func(*xkong.Config, string, int64) obj) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := g.state.Load()
		o := f(st.cfg, r.PathValue("id"), st.at)
		if o == nil {
			writeJSON(w, http.StatusNotFound, obj{"message": "Not found"})
			return
		}
		writeJSON(w, http.StatusOK, o)
	}
}

func listenJSON(ls []Listen) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.String())
	}
	return out
}

// root is GET /: node information.
func (g *Gateway) root(w http.ResponseWriter, r *http.Request) {
	s := g.settings
	conf := obj{
		"database": "off", "role": s.Role, "router_flavor": "traditional_compatible",
		"wasm": s.Wasm, "wasm_filters_path": nullable(s.WasmFiltersPath), "wasm_filters": s.WasmFilters,
		"wasm_modules_parsed": g.availableFilters(),
		"declarative_config":  nullable(s.DeclarativeConfig),
		"proxy_listen":        listenJSON(s.ProxyListen), "admin_listen": listenJSON(s.AdminListen),
		"log_level": s.LogLevel, "proxy_access_log": s.Values["proxy_access_log"],
		"proxy_error_log": s.Values["proxy_error_log"], "headers": s.Headers,
		"nginx_worker_processes": s.Values["nginx_worker_processes"],
		"real_ip_header":         s.RealIPHeader, "trusted_ips": strs(s.TrustedIPs),
		"ssl_cert": strs(list(s.SSLCert)), "plugins": []string{}, "loaded_plugins": obj{},
		"cluster_listen": listenJSON([]Listen{{Address: s.ClusterListen}}), "cluster_control_plane": s.ClusterControlPlane,
		"cluster_mtls": "shared", "cluster_cert": nullable(s.ClusterCert),
	}
	writeJSON(w, http.StatusOK, obj{
		"version": Version, "edition": "community", "tagline": "Welcome to kong",
		"hostname": g.hostname, "node_id": g.nodeID, "lua_version": "wasmesh (no Lua)",
		"pids":          obj{"master": os.Getpid(), "workers": []int{}},
		"plugins":       obj{"available_on_server": obj{}, "enabled_in_cluster": []string{}},
		"configuration": conf,
	})
}

// status is GET /status. total_requests and connections_writing (requests
// in progress) come from the proxy's HTTP statistics; wasmesh does not
// count nginx's other connection states and reports zeros for them.
func (g *Gateway) status(w http.ResponseWriter, r *http.Request) {
	st := g.state.Load()
	var total, active uint64
	if g.srv != nil { // a control plane proxies nothing
		total = g.srv.Stats.Counter("http.kong_proxy.downstream_rq_total").Value()
		active = g.srv.Stats.Gauge("http.kong_proxy.downstream_rq_active", stats.Accumulate).Value()
	}
	writeJSON(w, http.StatusOK, obj{
		"database": obj{"reachable": true},
		"server": obj{"connections_accepted": 0, "connections_active": 0, "connections_handled": 0,
			"connections_reading": 0, "connections_waiting": 0, "connections_writing": active, "total_requests": total},
		"memory":             obj{"workers_lua_vms": []obj{}, "lua_shared_dicts": obj{}},
		"configuration_hash": st.hash,
	})
}

// getConfig is GET /config: the declarative configuration as submitted.
func (g *Gateway) getConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, obj{"config": string(g.state.Load().raw)})
}

// postConfig is POST /config: the body is the configuration (JSON or YAML),
// a JSON object {"config": "<text>"}, or a form (urlencoded or multipart)
// with a config field.
func (g *Gateway) postConfig(w http.ResponseWriter, r *http.Request) {
	raw, err := configBody(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, obj{"message": err.Error()})
		return
	}
	if r.URL.Query().Get("check_hash") == "1" {
		if st := g.state.Load(); st.hash == md5hex(raw) {
			writeJSON(w, http.StatusNotModified, obj{})
			return
		}
	}
	// A client that goes away does not abort an apply half-way.
	cfg, err := g.Reload(context.WithoutCancel(r.Context()), raw)
	if err != nil {
		var ke *Error
		if errors.As(err, &ke) {
			writeJSON(w, http.StatusBadRequest, ke.Kong)
			return
		}
		writeJSON(w, http.StatusInternalServerError, obj{"message": err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, flattened(cfg, g.state.Load().at))
}

func configBody(r *http.Request) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(nil, r.Body, maxConfigBody)
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(maxConfigBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return nil, fmt.Errorf("cannot read the form: %w", err)
		}
		if v := r.FormValue("config"); v != "" {
			return []byte(v), nil
		}
		if r.MultipartForm != nil {
			if fh := r.MultipartForm.File["config"]; len(fh) > 0 {
				f, err := fh[0].Open()
				if err != nil {
					return nil, err
				}
				defer f.Close()
				return io.ReadAll(f)
			}
		}
		return nil, errors.New("expected a declarative configuration in the config field")
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot read the body: %w", err)
	}
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
		var wrap struct {
			Config *string `json:"config"`
		}
		if json.Unmarshal(b, &wrap) == nil && wrap.Config != nil {
			return []byte(*wrap.Config), nil
		}
	}
	return b, nil
}
