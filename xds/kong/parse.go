package kong

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Parse reads a kong.yml (YAML or JSON, _format_version "3.0" as decK
// writes it). Schema errors are returned all at once as *Error.
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, parseFailure(err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, parseFailure(err)
	}
	m, ok := top.(map[string]any)
	if !ok {
		return nil, parseFailure(fmt.Errorf("expected an object"))
	}
	p := &parser{cfg: &Config{}, root: errNode{}, routeErrs: map[*Route]errNode{}}
	p.document(m)
	if e := newError(p.root); e != nil {
		return nil, e
	}
	return p.cfg, nil
}

func parseFailure(err error) *Error {
	msg := "failed parsing declarative configuration: " + err.Error()
	return &Error{
		Code:    CodeDeclarativeConfig,
		Name:    "invalid declarative configuration",
		Message: "declarative config is invalid: {error=" + strconv.Quote(msg) + "}",
		Fields:  map[string]any{"error": msg},
	}
}

type parser struct {
	cfg  *Config
	root errNode
	// pending references resolved once every entity is known.
	routeRefs  []pendingRef
	targetRefs []pendingRef
	sniRefs    []pendingRef
	chainRefs  []pendingChain
	routeErrs  map[*Route]errNode
}

type pendingRef struct {
	ref  map[string]any
	errs errNode
	set  func(owner any)
}

type pendingChain struct {
	fc   *FilterChain
	svc  map[string]any
	rt   map[string]any
	errs errNode
}

// obj reads one entity's fields and reports the unknown ones.
type obj struct {
	m    map[string]any
	errs errNode
	seen map[string]bool
}

func newObj(v any, errs errNode) (*obj, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return &obj{m: m, errs: errs, seen: map[string]bool{}}, true
}

func (o *obj) get(k string) (any, bool) {
	o.seen[k] = true
	v, ok := o.m[k]
	if v == nil {
		return nil, false // null means unset, as in Kong
	}
	return v, ok
}

func (o *obj) str(k string) string {
	v, ok := o.get(k)
	if !ok {
		return ""
	}
	s, isStr := v.(string)
	if !isStr {
		o.errs.set(k, "expected a string")
	}
	return s
}

func (o *obj) required(k string) string {
	if _, ok := o.get(k); !ok {
		o.errs.set(k, "required field missing")
		return ""
	}
	return o.str(k)
}

func (o *obj) integer(k string, def, min, max int) int {
	v, ok := o.get(k)
	if !ok {
		return def
	}
	n, isNum := v.(json.Number)
	if !isNum {
		o.errs.set(k, "expected an integer")
		return def
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		o.errs.set(k, "expected an integer")
		return def
	}
	if i < int64(min) || i > int64(max) {
		o.errs.set(k, fmt.Sprintf("value should be between %d and %d", min, max))
		return def
	}
	return int(i)
}

func (o *obj) number(k string, def, min, max float64) float64 {
	v, ok := o.get(k)
	if !ok {
		return def
	}
	n, isNum := v.(json.Number)
	if !isNum {
		o.errs.set(k, "expected a number")
		return def
	}
	f, err := n.Float64()
	if err != nil || f < min || f > max {
		o.errs.set(k, fmt.Sprintf("value should be between %v and %v", min, max))
		return def
	}
	return f
}

func (o *obj) boolean(k string, def bool) bool {
	v, ok := o.get(k)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		o.errs.set(k, "expected a boolean")
		return def
	}
	return b
}

func (o *obj) optBool(k string) *bool {
	if _, ok := o.get(k); !ok {
		return nil
	}
	b := o.boolean(k, false)
	return &b
}

func (o *obj) strs(k string) []string {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	a, isArr := v.([]any)
	if !isArr {
		o.errs.set(k, "expected a set")
		return nil
	}
	out := make([]string, 0, len(a))
	for i, e := range a {
		s, isStr := e.(string)
		if !isStr {
			o.errs.setAt(k, i, "expected a string")
			continue
		}
		out = append(out, s)
	}
	return out
}

func (o *obj) ints(k string, def []int, min, max int) []int {
	v, ok := o.get(k)
	if !ok {
		return def
	}
	a, isArr := v.([]any)
	if !isArr {
		o.errs.set(k, "expected an array")
		return def
	}
	out := make([]int, 0, len(a))
	for i, e := range a {
		n, isNum := e.(json.Number)
		x, err := strconv.Atoi(string(n))
		if !isNum || err != nil {
			o.errs.setAt(k, i, "expected an integer")
			continue
		}
		if x < min || x > max {
			o.errs.setAt(k, i, fmt.Sprintf("value should be between %d and %d", min, max))
			continue
		}
		out = append(out, x)
	}
	return out
}

func (o *obj) oneOf(k, def string, allowed ...string) string {
	if _, ok := o.get(k); !ok {
		return def
	}
	s := o.str(k)
	if !slices.Contains(allowed, s) {
		o.errs.set(k, "expected one of: "+strings.Join(allowed, ", "))
		return def
	}
	return s
}

// array returns the entries of an entity list.
func (o *obj) array(k string) []any {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	a, isArr := v.([]any)
	if !isArr {
		o.errs.set(k, "expected an array")
		return nil
	}
	return a
}

func (o *obj) object(k string) (*obj, bool) {
	v, ok := o.get(k)
	if !ok {
		return nil, false
	}
	c, isObj := newObj(v, o.errs.sub(k))
	if !isObj {
		o.errs.set(k, "expected a record")
		return nil, false
	}
	return c, true
}

// headers reads a map of header name → list of values.
func (o *obj) headers(k string) map[string][]string {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		o.errs.set(k, "expected a map")
		return nil
	}
	out := map[string][]string{}
	sub := o.errs.sub(k)
	for name, vals := range m {
		a, isArr := vals.([]any)
		if !isArr {
			if s, isStr := vals.(string); isStr {
				a = []any{s}
			} else {
				sub.set(name, "expected an array")
				continue
			}
		}
		for _, e := range a {
			s, isStr := e.(string)
			if !isStr {
				sub.set(name, "expected a string")
				continue
			}
			out[strings.ToLower(name)] = append(out[strings.ToLower(name)], s)
		}
	}
	return out
}

// unknown reports every field not read and not in ignore.
func (o *obj) unknown(ignore ...string) {
	for k := range o.m {
		if !o.seen[k] && !slices.Contains(ignore, k) {
			o.errs.set(k, "unknown field")
		}
	}
}

// common fields every entity accepts.
var metaFields = []string{"created_at", "updated_at"}

func (p *parser) document(m map[string]any) {
	o := &obj{m: m, errs: p.root, seen: map[string]bool{}}
	p.cfg.FormatVersion = o.str("_format_version")
	switch p.cfg.FormatVersion {
	case "3.0":
	case "":
		o.errs.set("_format_version", "required field missing")
	default:
		o.errs.set("_format_version", "unsupported declarative configuration _format_version: "+p.cfg.FormatVersion+` (wasmesh reads "3.0")`)
	}
	p.cfg.Transform = o.boolean("_transform", true)
	o.get("_comment")
	o.get("_info")
	o.get("_workspace")
	for _, k := range []string{"plugins", "consumers"} {
		if a := o.array(k); len(a) > 0 {
			o.errs.set(k, "not supported by wasmesh: Lua plugins and consumers are out of scope; use filter_chains")
		}
	}
	for i, v := range o.array("upstreams") {
		p.upstream(v, o.errs.child("upstreams", i))
	}
	for i, v := range o.array("services") {
		p.service(v, o.errs.child("services", i))
	}
	for i, v := range o.array("routes") {
		p.route(v, o.errs.child("routes", i), nil, true)
	}
	for i, v := range o.array("targets") {
		p.target(v, o.errs.child("targets", i), nil, true)
	}
	for i, v := range o.array("certificates") {
		p.certificate(v, o.errs.child("certificates", i))
	}
	for i, v := range o.array("ca_certificates") {
		p.caCertificate(v, o.errs.child("ca_certificates", i))
	}
	for i, v := range o.array("snis") {
		p.topSNI(v, o.errs.child("snis", i))
	}
	for i, v := range o.array("filter_chains") {
		p.topChain(v, o.errs.child("filter_chains", i))
	}
	o.unknown()
	p.resolve()
}

var (
	nameRe = regexp.MustCompile(`^[\p{L}\p{N}\-._~]+$`)
	hostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*$`)
)

func (o *obj) name(k string) string {
	s := o.str(k)
	if s != "" && !nameRe.MatchString(s) {
		o.errs.set(k, "invalid value '"+s+"': it must only contain alphanumeric and '., -, _, ~' characters")
	}
	return s
}

func isHost(s string) bool {
	if net.ParseIP(strings.Trim(s, "[]")) != nil {
		return true
	}
	return hostRe.MatchString(s)
}

var serviceProtocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss"}

func (p *parser) service(v any, errs errNode) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	s := &Service{index: len(p.cfg.Services)}
	s.ID = o.str("id")
	s.Name = o.name("name")
	s.Protocol = "http"
	if u := o.str("url"); u != "" {
		for _, k := range []string{"protocol", "host", "port", "path"} {
			if _, set := o.m[k]; set {
				errs.set(k, "cannot be set together with 'url'")
			}
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme == "" || pu.Hostname() == "" {
			errs.set("url", "missing host in url")
		} else {
			s.Protocol = pu.Scheme
			s.Host = pu.Hostname()
			if pu.Port() != "" {
				s.Port, _ = strconv.Atoi(pu.Port())
			}
			s.Path = pu.EscapedPath()
		}
	} else {
		s.Protocol = o.str("protocol")
		if s.Protocol == "" {
			s.Protocol = "http"
		}
		s.Host = o.required("host")
		s.Port = o.integer("port", 0, 0, 65535)
		s.Path = o.str("path")
	}
	if !slices.Contains(serviceProtocols, s.Protocol) {
		errs.set("protocol", "expected one of: "+strings.Join(serviceProtocols, ", "))
	} else if s.Protocol != "http" && s.Protocol != "https" && s.Protocol != "grpc" && s.Protocol != "grpcs" {
		errs.set("protocol", "protocol '"+s.Protocol+"' is not supported by wasmesh (HTTP services only)")
	}
	if s.Host != "" && !isHost(s.Host) {
		errs.set("host", "invalid hostname: "+s.Host)
	}
	if s.Port == 0 {
		s.Port = 80
		if s.Protocol == "https" || s.Protocol == "grpcs" {
			s.Port = 443
		}
	}
	if s.Path != "" && !strings.HasPrefix(s.Path, "/") {
		errs.set("path", "should start with: /")
	}
	s.Retries = o.integer("retries", 5, 0, 32767)
	s.ConnectTimeout = o.integer("connect_timeout", 60000, 1, 2147483646)
	s.ReadTimeout = o.integer("read_timeout", 60000, 1, 2147483646)
	s.WriteTimeout = o.integer("write_timeout", 60000, 1, 2147483646)
	s.TLSVerify = o.optBool("tls_verify")
	if _, set := o.get("tls_verify_depth"); set {
		d := o.integer("tls_verify_depth", 0, 0, 64)
		s.TLSVerifyDepth = &d
	}
	s.CACertificates = o.strs("ca_certificates")
	if cc, ok := o.object("client_certificate"); ok {
		s.ClientCertID = cc.str("id")
		cc.unknown()
	}
	s.Enabled = o.boolean("enabled", true)
	s.Tags = o.strs("tags")
	if a := o.array("plugins"); len(a) > 0 {
		errs.set("plugins", "not supported by wasmesh: Lua plugins are out of scope; use filter_chains")
	}
	p.cfg.Services = append(p.cfg.Services, s)
	for i, c := range o.array("filter_chains") {
		ce := errs.child("filter_chains", i)
		fc := p.chain(c, ce, false)
		if fc == nil {
			continue
		}
		if s.FilterChain != nil {
			ce.set("@entity", fmt.Sprintf("service %s already has a filter chain; a service has at most one%s", entityName(s.Name, s.ID), chainLabel(fc)))
			continue
		}
		s.FilterChain = fc
	}
	for i, r := range o.array("routes") {
		p.route(r, errs.child("routes", i), s, false)
	}
	o.unknown(metaFields...)
}

// chainLabel names a rejected second chain.
func chainLabel(fc *FilterChain) string {
	if fc.Name == "" && fc.ID == "" {
		return ""
	}
	return " (filter chain " + entityName(fc.Name, fc.ID) + ")"
}

func entityName(name, id string) string {
	if name != "" {
		return "'" + name + "'"
	}
	if id != "" {
		return "'" + id + "'"
	}
	return "(unnamed)"
}

var routeProtocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss"}

func (p *parser) route(v any, errs errNode, svc *Service, top bool) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	r := &Route{index: len(p.cfg.Routes), Service: svc}
	r.ID = o.str("id")
	r.Name = o.name("name")
	r.Protocols = o.strs("protocols")
	if len(r.Protocols) == 0 {
		r.Protocols = []string{"http", "https"}
	}
	for i, pr := range r.Protocols {
		switch {
		case !slices.Contains(routeProtocols, pr):
			errs.setAt("protocols", i, "expected one of: "+strings.Join(routeProtocols, ", "))
		case pr != "http" && pr != "https" && pr != "grpc" && pr != "grpcs":
			errs.setAt("protocols", i, "protocol '"+pr+"' is not supported by wasmesh (HTTP routes only)")
		}
	}
	r.Methods = o.strs("methods")
	for i, m := range r.Methods {
		if m == "" || strings.ToUpper(m) != m {
			errs.setAt("methods", i, "invalid value: "+m)
		}
	}
	r.Hosts = o.strs("hosts")
	for i, h := range r.Hosts {
		if !validHostPattern(h) {
			errs.setAt("hosts", i, "invalid wildcard: must be placed at leftmost or rightmost label")
		}
	}
	r.Paths = o.strs("paths")
	for i, pa := range r.Paths {
		switch {
		case strings.HasPrefix(pa, "~"):
			if _, err := regexp.Compile(pa[1:]); err != nil {
				errs.setAt("paths", i, "invalid regex: '"+pa[1:]+"' ("+err.Error()+")")
			}
		case !strings.HasPrefix(pa, "/"):
			errs.setAt("paths", i, "should start with: / (fixed path) or ~/ (regex path)")
		}
	}
	r.Headers = o.headers("headers")
	if _, bad := r.Headers["host"]; bad {
		errs.sub("headers").set("host", "cannot contain 'host' header, which must be specified in the 'hosts' attribute")
	}
	for name, vals := range r.Headers {
		for _, hv := range vals {
			if re, isRe := strings.CutPrefix(hv, "~*"); isRe {
				if _, err := regexp.Compile(re); err != nil {
					errs.sub("headers").set(name, "invalid regex: '"+re+"'")
				}
			}
		}
	}
	r.SNIs = o.strs("snis")
	for _, k := range []string{"sources", "destinations"} {
		if a := o.array(k); len(a) > 0 {
			errs.set(k, "not supported by wasmesh: stream routes are out of scope")
		}
	}
	grpcOnly := !slices.ContainsFunc(r.Protocols, func(p string) bool { return p != "grpc" && p != "grpcs" })
	r.StripPath = o.boolean("strip_path", !grpcOnly)
	if grpcOnly && r.StripPath {
		errs.set("strip_path", "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'")
	}
	r.PreserveHost = o.boolean("preserve_host", false)
	r.RegexPriority = o.integer("regex_priority", 0, -2147483648, 2147483647)
	r.PathHandling = o.oneOf("path_handling", "v0", "v0", "v1")
	r.HTTPSRedirectStatusCode = 426
	if _, set := o.get("https_redirect_status_code"); set {
		r.HTTPSRedirectStatusCode = o.integer("https_redirect_status_code", 426, 0, 999)
		if !slices.Contains([]int{426, 301, 302, 307, 308}, r.HTTPSRedirectStatusCode) {
			errs.set("https_redirect_status_code", "expected one of: 426, 301, 302, 307, 308")
		}
	}
	r.RequestBuffering = o.boolean("request_buffering", true)
	r.ResponseBuffering = o.boolean("response_buffering", true)
	r.Tags = o.strs("tags")
	if a := o.array("plugins"); len(a) > 0 {
		errs.set("plugins", "not supported by wasmesh: Lua plugins are out of scope; use filter_chains")
	}
	if len(r.Methods)+len(r.Hosts)+len(r.Paths)+len(r.Headers)+len(r.SNIs) == 0 {
		errs.set("@entity", "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is '"+strings.Join(r.Protocols, "', '")+"'")
	}
	if len(r.SNIs) > 0 && !slices.Contains(r.Protocols, "https") && !slices.Contains(r.Protocols, "grpcs") {
		errs.set("snis", "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'")
	}
	if ref, set := o.get("service"); set {
		if !top {
			errs.set("service", "value must be null (the route is nested in a service)")
		} else if m := refObject(ref); m == nil {
			errs.set("service", "expected a record")
		} else {
			p.routeRefs = append(p.routeRefs, pendingRef{ref: m, errs: errs, set: func(s any) { r.Service = s.(*Service); r.Service.Routes = append(r.Service.Routes, r) }})
		}
	}
	p.cfg.Routes = append(p.cfg.Routes, r)
	p.routeErrs[r] = errs
	if svc != nil {
		svc.Routes = append(svc.Routes, r)
	}
	for i, c := range o.array("filter_chains") {
		ce := errs.child("filter_chains", i)
		fc := p.chain(c, ce, false)
		if fc == nil {
			continue
		}
		if r.FilterChain != nil {
			ce.set("@entity", fmt.Sprintf("route %s already has a filter chain; a route has at most one%s", entityName(r.Name, r.ID), chainLabel(fc)))
			continue
		}
		r.FilterChain = fc
	}
	o.unknown(metaFields...)
}

// refObject accepts a reference as {id|name} or a bare name/id string.
func refObject(v any) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		return v
	case string:
		return map[string]any{"name": v, "id": v}
	}
	return nil
}

func validHostPattern(h string) bool {
	host := h
	if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.Contains(h[i:], "]") {
		if _, err := strconv.Atoi(h[i+1:]); err == nil {
			host = h[:i]
		}
	}
	switch {
	case strings.HasPrefix(host, "*."):
		host = "x" + host[1:]
	case strings.HasSuffix(host, ".*"):
		host = host[:len(host)-1] + "x"
	}
	return !strings.Contains(host, "*") && isHost(host)
}

func (p *parser) chain(v any, errs errNode, top bool) *FilterChain {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return nil
	}
	fc := &FilterChain{}
	fc.ID = o.str("id")
	fc.Name = o.name("name")
	fc.Enabled = o.boolean("enabled", true)
	fc.Tags = o.strs("tags")
	filters := o.array("filters")
	if _, set := o.m["filters"]; !set {
		errs.set("filters", "required field missing")
	} else if len(filters) == 0 {
		errs.set("filters", "length must be at least 1")
	}
	for i, fv := range filters {
		fe := errs.child("filters", i)
		f, ok := newObj(fv, fe)
		if !ok {
			fe.set("@entity", "expected a record")
			continue
		}
		flt := Filter{Name: f.required("name"), Enabled: f.boolean("enabled", true)}
		if c, set := f.get("config"); set {
			flt.HasConfig = true
			switch c := c.(type) {
			case string:
				flt.Config = c
			default:
				b, err := json.Marshal(c)
				if err != nil {
					fe.set("config", "expected a string or a JSON value")
				}
				flt.Config = string(b)
			}
		}
		f.unknown()
		fc.Filters = append(fc.Filters, flt)
	}
	if !top {
		for _, k := range []string{"service", "route"} {
			if _, set := o.get(k); set {
				errs.set(k, "value must be null (the chain is nested in its owner)")
			}
		}
	}
	o.unknown(append(metaFields, "service", "route")...)
	return fc
}

func (p *parser) topChain(v any, errs errNode) {
	fc := p.chain(v, errs, true)
	if fc == nil {
		return
	}
	m := v.(map[string]any)
	svc, rt := refObject(m["service"]), refObject(m["route"])
	if (svc == nil) == (rt == nil) {
		errs.set("@entity", "exactly one of these fields must be non-empty: 'service', 'route'")
		return
	}
	p.chainRefs = append(p.chainRefs, pendingChain{fc: fc, svc: svc, rt: rt, errs: errs})
}

var algorithms = []string{"consistent-hashing", "least-connections", "round-robin", "latency"}
var hashOns = []string{"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}

func (p *parser) upstream(v any, errs errNode) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	u := &Upstream{}
	u.ID = o.str("id")
	u.Name = o.required("name")
	if u.Name != "" && !validHostPattern(u.Name) {
		errs.set("name", "Invalid name ('"+u.Name+"'); must be a valid hostname")
	}
	u.Algorithm = o.oneOf("algorithm", "round-robin", algorithms...)
	u.HashOn = o.oneOf("hash_on", "none", hashOns...)
	u.HashFallback = o.oneOf("hash_fallback", "none", hashOns...)
	u.HashOnHeader = o.str("hash_on_header")
	u.HashFallbackHeader = o.str("hash_fallback_header")
	u.HashOnCookie = o.str("hash_on_cookie")
	u.HashOnCookiePath = o.str("hash_on_cookie_path")
	if u.HashOnCookiePath == "" {
		u.HashOnCookiePath = "/"
	}
	u.HashOnQueryArg = o.str("hash_on_query_arg")
	u.HashFallbackQueryArg = o.str("hash_fallback_query_arg")
	u.HashOnURICapture = o.str("hash_on_uri_capture")
	u.HashFallbackURICapture = o.str("hash_fallback_uri_capture")
	u.Slots = o.integer("slots", 10000, 10, 65536)
	u.HostHeader = o.str("host_header")
	u.Tags = o.strs("tags")
	o.get("use_srv_name")
	if _, set := o.get("client_certificate"); set {
		errs.set("client_certificate", "not supported by wasmesh yet")
	}
	for _, c := range []struct{ on, field, val string }{
		{"header", "hash_on_header", u.HashOnHeader}, {"cookie", "hash_on_cookie", u.HashOnCookie},
		{"query_arg", "hash_on_query_arg", u.HashOnQueryArg}, {"uri_capture", "hash_on_uri_capture", u.HashOnURICapture},
	} {
		if u.HashOn == c.on && c.val == "" {
			errs.set(c.field, "required field missing")
		}
	}
	if u.HashFallback == "header" && u.HashFallbackHeader == "" {
		errs.set("hash_fallback_header", "required field missing")
	}
	if u.HashOn != "none" && u.Algorithm != "consistent-hashing" {
		errs.set("algorithm", "hash_on requires algorithm 'consistent-hashing'")
	}
	u.Healthchecks = healthchecks(o)
	p.cfg.Upstreams = append(p.cfg.Upstreams, u)
	for i, t := range o.array("targets") {
		p.target(t, errs.child("targets", i), u, false)
	}
	o.unknown(metaFields...)
}

func healthchecks(o *obj) Healthchecks {
	hc := Healthchecks{
		Active: ActiveCheck{Type: "http", Timeout: 1, Concurrency: 10, HTTPPath: "/", HTTPSVerifyCertificate: true,
			Healthy:   Thresholds{HTTPStatuses: []int{200, 302}},
			Unhealthy: Thresholds{HTTPStatuses: []int{429, 404, 500, 501, 502, 503, 504, 505}}},
		Passive: PassiveCheck{Type: "http",
			Healthy:   Thresholds{HTTPStatuses: []int{200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308}},
			Unhealthy: Thresholds{HTTPStatuses: []int{429, 500, 503}}},
	}
	h, ok := o.object("healthchecks")
	if !ok {
		return hc
	}
	hc.Threshold = h.number("threshold", 0, 0, 100)
	if a, ok := h.object("active"); ok {
		ac := &hc.Active
		ac.Type = a.oneOf("type", "http", "tcp", "http", "https", "grpc", "grpcs")
		ac.Timeout = a.number("timeout", 1, 0, 65535)
		ac.Concurrency = a.integer("concurrency", 10, 1, 2147483648)
		if s := a.str("http_path"); s != "" {
			ac.HTTPPath = s
		}
		ac.HTTPSSNI = a.str("https_sni")
		ac.HTTPSVerifyCertificate = a.boolean("https_verify_certificate", true)
		ac.Headers = a.headers("headers")
		thresholds(a, "healthy", &ac.Healthy, true)
		thresholds(a, "unhealthy", &ac.Unhealthy, true)
		a.unknown()
	}
	if p, ok := h.object("passive"); ok {
		pc := &hc.Passive
		pc.Type = p.oneOf("type", "http", "tcp", "http", "https", "grpc", "grpcs")
		thresholds(p, "healthy", &pc.Healthy, false)
		thresholds(p, "unhealthy", &pc.Unhealthy, false)
		p.unknown()
	}
	h.unknown()
	return hc
}

func thresholds(o *obj, k string, t *Thresholds, active bool) {
	c, ok := o.object(k)
	if !ok {
		return
	}
	if active {
		t.Interval = c.number("interval", 0, 0, 65535)
	}
	t.HTTPStatuses = c.ints("http_statuses", t.HTTPStatuses, 100, 999)
	if k == "healthy" {
		t.Successes = c.integer("successes", 0, 0, 255)
	} else {
		t.HTTPFailures = c.integer("http_failures", 0, 0, 255)
		t.TCPFailures = c.integer("tcp_failures", 0, 0, 255)
		t.Timeouts = c.integer("timeouts", 0, 0, 255)
	}
	c.unknown()
}

func (p *parser) target(v any, errs errNode, u *Upstream, top bool) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	t := &Target{ID: o.str("id"), Weight: o.integer("weight", 100, 0, 65535), Tags: o.strs("tags")}
	raw := o.required("target")
	if raw != "" {
		host, port, err := net.SplitHostPort(raw)
		if err != nil {
			host, port = strings.Trim(raw, "[]"), "8000"
		}
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 1 || n > 65535 || !isHost(host) {
			errs.set("target", "Invalid target ('"+raw+"'); not a valid hostname or ip address")
		}
		t.Host, t.Port = host, n
	}
	if top {
		ref := refObject(o.m["upstream"])
		o.get("upstream")
		if ref == nil {
			errs.set("upstream", "required field missing")
		} else {
			p.targetRefs = append(p.targetRefs, pendingRef{ref: ref, errs: errs, set: func(x any) {
				x.(*Upstream).Targets = append(x.(*Upstream).Targets, t)
			}})
		}
	} else {
		if _, set := o.get("upstream"); set {
			errs.set("upstream", "value must be null (the target is nested in its upstream)")
		}
		u.Targets = append(u.Targets, t)
	}
	o.unknown(metaFields...)
}

func (p *parser) certificate(v any, errs errNode) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	c := &Certificate{ID: o.str("id"), Cert: o.required("cert"), Key: o.required("key"),
		CertAlt: o.str("cert_alt"), KeyAlt: o.str("key_alt"), Tags: o.strs("tags")}
	if c.Cert != "" && !strings.Contains(c.Cert, "-----BEGIN CERTIFICATE-----") {
		errs.set("cert", "invalid certificate: expected a PEM certificate")
	}
	if (c.CertAlt == "") != (c.KeyAlt == "") {
		errs.set("@entity", "all or none of these fields must be set: 'cert_alt', 'key_alt'")
	}
	for i, s := range o.array("snis") {
		switch s := s.(type) {
		case string:
			c.SNIs = append(c.SNIs, s)
		case map[string]any:
			so, _ := newObj(s, errs.child("snis", i))
			if n := so.required("name"); n != "" {
				c.SNIs = append(c.SNIs, n)
			}
			so.str("id")
			so.strs("tags")
			so.unknown(metaFields...)
		default:
			errs.setAt("snis", i, "expected a record")
		}
	}
	p.cfg.Certificates = append(p.cfg.Certificates, c)
	o.unknown(metaFields...)
}

func (p *parser) topSNI(v any, errs errNode) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	name := o.required("name")
	o.str("id")
	o.strs("tags")
	ref := refObject(o.m["certificate"])
	o.get("certificate")
	o.unknown(metaFields...)
	if ref == nil {
		errs.set("certificate", "required field missing")
		return
	}
	p.sniRefs = append(p.sniRefs, pendingRef{ref: ref, errs: errs, set: func(x any) {
		c := x.(*Certificate)
		c.SNIs = append(c.SNIs, name)
	}})
}

func (p *parser) caCertificate(v any, errs errNode) {
	o, ok := newObj(v, errs)
	if !ok {
		errs.set("@entity", "expected a record")
		return
	}
	c := &CACertificate{ID: o.str("id"), Cert: o.required("cert"), CertDigest: o.str("cert_digest"), Tags: o.strs("tags")}
	if c.Cert != "" && !strings.Contains(c.Cert, "-----BEGIN CERTIFICATE-----") {
		errs.set("cert", "invalid certificate: expected a PEM certificate")
	}
	p.cfg.CACertificates = append(p.cfg.CACertificates, c)
	o.unknown(metaFields...)
}

// resolve links references by id or name and checks uniqueness.
func (p *parser) resolve() {
	svcs := map[string]*Service{}
	for i, s := range p.cfg.Services {
		for _, k := range []string{s.ID, s.Name} {
			if k == "" {
				continue
			}
			if _, dup := svcs[k]; dup {
				p.root.child("services", i).set("@entity", "uniqueness violation: 'services' entity with name or id '"+k+"' already declared")
			}
			svcs[k] = s
		}
	}
	ups := map[string]*Upstream{}
	for i, u := range p.cfg.Upstreams {
		for _, k := range []string{u.ID, u.Name} {
			if k == "" {
				continue
			}
			if _, dup := ups[k]; dup && k == u.Name {
				p.root.child("upstreams", i).set("name", "uniqueness violation: 'upstreams' entity with name '"+k+"' already declared")
			}
			ups[k] = u
		}
	}
	routes := map[string]*Route{}
	for _, r := range p.cfg.Routes {
		for _, k := range []string{r.ID, r.Name} {
			if k == "" {
				continue
			}
			if prev, dup := routes[k]; dup && prev != r {
				p.routeErrs[r].set("@entity", "uniqueness violation: 'routes' entity with name or id '"+k+"' already declared")
				continue
			}
			routes[k] = r
		}
	}
	certs := map[string]*Certificate{}
	for _, c := range p.cfg.Certificates {
		if c.ID != "" {
			certs[c.ID] = c
		}
	}
	lookup := func(ref map[string]any, m any) any {
		for _, k := range []string{"id", "name"} {
			s, _ := ref[k].(string)
			if s == "" {
				continue
			}
			switch m := m.(type) {
			case map[string]*Service:
				if v, ok := m[s]; ok {
					return v
				}
			case map[string]*Upstream:
				if v, ok := m[s]; ok {
					return v
				}
			case map[string]*Route:
				if v, ok := m[s]; ok {
					return v
				}
			case map[string]*Certificate:
				if v, ok := m[s]; ok {
					return v
				}
			}
		}
		return nil
	}
	refName := func(ref map[string]any) string {
		if s, _ := ref["name"].(string); s != "" {
			return s
		}
		s, _ := ref["id"].(string)
		return s
	}
	for _, r := range p.routeRefs {
		if s := lookup(r.ref, svcs); s != nil {
			r.set(s)
		} else {
			r.errs.set("service", "could not find services with name or id '"+refName(r.ref)+"'")
		}
	}
	for _, r := range p.targetRefs {
		if x := lookup(r.ref, ups); x != nil {
			r.set(x)
		} else {
			r.errs.set("upstream", "could not find upstreams with name or id '"+refName(r.ref)+"'")
		}
	}
	for _, r := range p.sniRefs {
		if x := lookup(r.ref, certs); x != nil {
			r.set(x)
		} else {
			r.errs.set("certificate", "could not find certificates with id '"+refName(r.ref)+"'")
		}
	}
	for _, c := range p.chainRefs {
		if c.svc != nil {
			s, _ := lookup(c.svc, svcs).(*Service)
			switch {
			case s == nil:
				c.errs.set("service", "could not find services with name or id '"+refName(c.svc)+"'")
			case s.FilterChain != nil:
				c.errs.set("@entity", fmt.Sprintf("service %s already has a filter chain; a service has at most one%s", entityName(s.Name, s.ID), chainLabel(c.fc)))
			default:
				s.FilterChain = c.fc
			}
			continue
		}
		r, _ := lookup(c.rt, routes).(*Route)
		switch {
		case r == nil:
			c.errs.set("route", "could not find routes with name or id '"+refName(c.rt)+"'")
		case r.FilterChain != nil:
			c.errs.set("@entity", fmt.Sprintf("route %s already has a filter chain; a route has at most one%s", entityName(r.Name, r.ID), chainLabel(c.fc)))
		default:
			r.FilterChain = c.fc
		}
	}
	for _, s := range p.cfg.Services {
		if u := ups[s.Host]; u != nil && u.Name == s.Host {
			s.upstream = u
		}
	}
}
