package kong

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Options are the kong.conf settings the translation depends on.
type Options struct {
	// FiltersPath is wasm_filters_path: filter <name> is <FiltersPath>/<name>.wasm.
	FiltersPath string
	// AllowedFilters is the wasm_filters allow-list: filter names, "user"
	// (every filter in FiltersPath), "bundled" (none: wasmesh bundles no
	// filters) or "off". Empty means Kong's default "bundled,user".
	AllowedFilters []string
	// ProxyListen are proxy_listen addresses ("0.0.0.0:8000"); empty means
	// Kong's default 0.0.0.0:8000. Flags after the address are not read here.
	ProxyListen []string
	// SSLCert and SSLCertKey are ssl_cert and ssl_cert_key (file paths):
	// the certificate of ssl listeners for clients whose SNI names no
	// certificate. Without them such handshakes fail.
	SSLCert, SSLCertKey string
	// Headers is Kong's headers setting: "server_tokens" (Via),
	// "latency_tokens" (X-Kong-*-Latency), "off". Empty means Kong's
	// default (both).
	Headers []string
	// Version appears in Via ("kong/<Version>"); empty means "3.9.0".
	Version string
	// FileExists reports whether a filter's .wasm exists; nil stats the
	// file system. Tests substitute it to keep Translate pure.
	FileExists func(path string) bool
}

// Resources are the translated xDS resources. Each Listener carries its
// RouteConfiguration inline (the data plane has no RDS yet); Routes holds the
// same configuration for a control plane that serves RDS. Each Cluster
// carries its load assignment inline; Endpoints holds them for EDS.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
}

// RouteConfigName is the name of the translated RouteConfiguration.
const RouteConfigName = "kong"

// NoRouteBody is Kong's 404 body.
const NoRouteBody = `{"message":"no Route matched with those values"}`

const (
	wasmFilterType = "envoy.filters.http.wasm"
	wasmRuntime    = "envoy.wasm.runtime.v8"
)

// instance is one filter of one chain, as one http_filters entry.
type instance struct {
	entry  string // http_filters name
	filter Filter
}

type translator struct {
	cfg      *Config
	opts     Options
	errs     []error
	svcInsts map[*Service][]instance
	rtInsts  map[*Route][]instance
	insts    []instance
	clusters map[*Service]string
}

// Translate turns a parsed configuration into xDS resources. Errors (a
// filter missing or not allowed, a field wasmesh cannot express) are all
// returned at once, each naming the entity and field.
func Translate(cfg *Config, opts Options) (*Resources, error) {
	t := &translator{cfg: cfg, opts: opts, svcInsts: map[*Service][]instance{}, rtInsts: map[*Route][]instance{}, clusters: map[*Service]string{}}
	res := &Resources{}
	t.chains()
	for _, s := range cfg.Services {
		c, cla := t.cluster(s)
		if c != nil {
			res.Clusters = append(res.Clusters, c)
			res.Endpoints = append(res.Endpoints, cla)
		}
	}
	rc := t.routeConfig()
	res.Routes = append(res.Routes, rc)
	res.Secrets = t.secrets()
	listens := opts.ProxyListen
	if len(listens) == 0 {
		listens = []string{"0.0.0.0:8000"}
	}
	for i, l := range listens {
		ln, err := t.listener(i, l, rc)
		if err != nil {
			t.errs = append(t.errs, err)
			continue
		}
		res.Listeners = append(res.Listeners, ln)
	}
	if len(t.errs) > 0 {
		return nil, fmt.Errorf("kong: %w", errors.Join(t.errs...))
	}
	return res, nil
}

func (t *translator) errf(format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf(format, args...))
}

func svcName(s *Service) string {
	switch {
	case s.Name != "":
		return s.Name
	case s.ID != "":
		return s.ID
	}
	return fmt.Sprintf("service-%d", s.index)
}

func routeName(r *Route) string {
	switch {
	case r.Name != "":
		return r.Name
	case r.ID != "":
		return r.ID
	}
	return fmt.Sprintf("route-%d", r.index)
}

// allowed reports whether wasm_filters allows name.
func (t *translator) allowed(name string) bool {
	list := t.opts.AllowedFilters
	if len(list) == 0 {
		list = []string{"bundled", "user"}
	}
	if slices.Contains(list, "off") {
		return false
	}
	return slices.Contains(list, "user") || slices.Contains(list, name)
}

func (t *translator) exists(path string) bool {
	if t.opts.FileExists != nil {
		return t.opts.FileExists(path)
	}
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// FilterFile is where a filter's module lives.
func FilterFile(filtersPath, name string) string {
	return filepath.Join(filtersPath, name+".wasm")
}

// chains assigns http_filters entries to every enabled filter of every
// enabled chain: all service chains first, then all route chains, so that
// for any route its service's filters come before its own.
func (t *translator) chains() {
	add := func(owner string, fc *FilterChain) []instance {
		if fc == nil {
			return nil
		}
		var out []instance
		for i, f := range fc.Filters {
			field := fmt.Sprintf("%s filter_chains.filters[%d].name", owner, i)
			if !t.allowed(f.Name) {
				t.errf("%s: filter %q is not allowed by wasm_filters", field, f.Name)
				continue
			}
			if t.opts.FiltersPath == "" {
				t.errf("%s: filter %q: wasm_filters_path is not set", field, f.Name)
				continue
			}
			if !t.exists(FilterFile(t.opts.FiltersPath, f.Name)) {
				t.errf("%s: no such filter %q (no %s)", field, f.Name, FilterFile(t.opts.FiltersPath, f.Name))
				continue
			}
			if !fc.Enabled || !f.Enabled {
				continue // disabled chains and filters do not run
			}
			in := instance{entry: fmt.Sprintf("kong.wasm.%d.%s", len(t.insts), f.Name), filter: f}
			t.insts = append(t.insts, in)
			out = append(out, in)
		}
		return out
	}
	for _, s := range t.cfg.Services {
		t.svcInsts[s] = add("service '"+svcName(s)+"'", s.FilterChain)
	}
	for _, r := range t.cfg.Routes {
		t.rtInsts[r] = add("route '"+routeName(r)+"'", r.FilterChain)
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only for messages of the generated types
	}
	return a
}

// wasmFilter is one http_filters entry, disabled until a route enables it.
func (t *translator) wasmFilter(in instance) *hcmv3.HttpFilter {
	pc := &wasmv3.PluginConfig{
		Name:   in.filter.Name,
		RootId: "",
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId:    in.filter.Name,
			Runtime: wasmRuntime,
			Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: FilterFile(t.opts.FiltersPath, in.filter.Name)},
			}}},
		}},
		Configuration: mustAny(wrapperspb.String(in.filter.Config)),
	}
	return &hcmv3.HttpFilter{
		Name:       in.entry,
		Disabled:   true,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&wasmhttpv3.Wasm{Config: pc})},
	}
}

// listenFlags are the proxy_listen flags: ssl and http2 change the
// listener; the others tune sockets nginx-style and change no behaviour.
var listenFlags = map[string]bool{"ssl": true, "http2": true, "reuseport": true, "deferred": true, "bind": true, "default_server": true}

func (t *translator) listener(i int, addr string, rc *routev3.RouteConfiguration) (*listenerv3.Listener, error) {
	fields := strings.Fields(addr)
	if len(fields) == 0 {
		return nil, fmt.Errorf("proxy_listen[%d]: empty address", i)
	}
	host, port, err := net.SplitHostPort(fields[0])
	if err != nil {
		return nil, fmt.Errorf("proxy_listen[%d]: %q: %w", i, fields[0], err)
	}
	pn, err := strconv.Atoi(port)
	if err != nil || pn < 0 || pn > 65535 {
		return nil, fmt.Errorf("proxy_listen[%d]: %q: invalid port", i, fields[0])
	}
	if host == "" || host == "*" {
		host = "0.0.0.0"
	}
	flags := map[string]bool{}
	for _, f := range fields[1:] {
		name, _, _ := strings.Cut(f, "=")
		switch {
		case listenFlags[name], name == "backlog", name == "so_keepalive", name == "ipv6only":
			flags[name] = true
		default:
			return nil, fmt.Errorf("proxy_listen[%d]: flag %q is not supported by wasmesh", i, f)
		}
	}
	var filters []*hcmv3.HttpFilter
	for _, in := range t.insts {
		filters = append(filters, t.wasmFilter(in))
	}
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:            "kong_proxy",
		RouteSpecifier:        &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:           filters,
		StripMatchingHostPort: true,
		// Kong appends the client address to X-Forwarded-For and sets
		// X-Forwarded-Proto from the connection.
		UseRemoteAddress: wrapperspb.Bool(true),
		// Kong passes the upstream's Server header on (and adds none); its
		// own responses carry server_tokens' value (noRoute).
		ServerHeaderTransformation: hcmv3.HttpConnectionManager_PASS_THROUGH,
	}
	hcmFilter := []*listenerv3.Filter{{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}}
	l := &listenerv3.Listener{
		Name: fmt.Sprintf("kong_proxy_%d", i),
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pn)},
		}}},
	}
	if !flags["ssl"] {
		l.FilterChains = []*listenerv3.FilterChain{{Filters: hcmFilter}}
		return l, nil
	}
	// ssl: one filter chain per certificate, chosen by SNI, and the
	// ssl_cert chain for every other client.
	alpn := []string{"http/1.1"}
	if flags["http2"] {
		alpn = []string{"h2", "http/1.1"}
	}
	tlsChain := func(match *listenerv3.FilterChainMatch, secrets ...string) *listenerv3.FilterChain {
		ctc := &tlsv3.CommonTlsContext{AlpnProtocols: alpn}
		for _, name := range secrets {
			ctc.TlsCertificateSdsSecretConfigs = append(ctc.TlsCertificateSdsSecretConfigs, &tlsv3.SdsSecretConfig{Name: name})
		}
		return &listenerv3.FilterChain{
			FilterChainMatch: match,
			Filters:          hcmFilter,
			TransportSocket: &corev3.TransportSocket{
				Name:       "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{CommonTlsContext: ctc})},
			},
		}
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspv3.TlsInspector{})},
	}}
	seen := map[string]bool{}
	for k, c := range t.cfg.Certificates {
		var snis []string
		for _, sni := range c.SNIs {
			if !seen[sni] {
				seen[sni] = true
				snis = append(snis, sni)
			}
		}
		if len(snis) == 0 {
			continue
		}
		secrets := []string{certSecretName(certID(c, k), 0)}
		if c.CertAlt != "" {
			secrets = append(secrets, certSecretName(certID(c, k), 1))
		}
		l.FilterChains = append(l.FilterChains, tlsChain(&listenerv3.FilterChainMatch{ServerNames: snis}, secrets...))
	}
	if t.opts.SSLCert != "" {
		l.FilterChains = append(l.FilterChains, tlsChain(nil, DefaultCertificateSecret))
	}
	if len(l.FilterChains) == 0 {
		return nil, fmt.Errorf("proxy_listen[%d]: ssl needs ssl_cert/ssl_cert_key or certificates with snis", i)
	}
	return l, nil
}

// DefaultCertificateSecret names the Secret made of ssl_cert/ssl_cert_key.
const DefaultCertificateSecret = "kong.default_certificate"

func certID(c *Certificate, i int) string {
	if c.ID != "" {
		return c.ID
	}
	return strconv.Itoa(i)
}

func ms(n int) *durationpb.Duration { return durationpb.New(time.Duration(n) * time.Millisecond) }

func socketAddr(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// cluster translates a service (and the upstream its host names).
func (t *translator) cluster(s *Service) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	if !s.Enabled {
		return nil, nil
	}
	name := svcName(s)
	t.clusters[s] = name
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: ms(s.ConnectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	allIPs := true
	if u := s.upstream; u != nil {
		eps := &endpointv3.LocalityLbEndpoints{}
		for _, tg := range u.Targets {
			if tg.Weight == 0 {
				continue // weight 0 disables a target in Kong
			}
			allIPs = allIPs && net.ParseIP(tg.Host) != nil
			eps.LbEndpoints = append(eps.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddr(tg.Host, tg.Port), Hostname: tg.Host,
				}},
				LoadBalancingWeight: wrapperspb.UInt32(uint32(tg.Weight)),
			})
		}
		if len(eps.LbEndpoints) > 0 {
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{eps}
		}
		t.balancing(c, u)
		t.healthchecks(c, u)
	} else {
		allIPs = net.ParseIP(s.Host) != nil
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddr(s.Host, s.Port), Hostname: s.Host,
			}},
		}}}}
	}
	if allIPs {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	} else {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
	}
	c.LoadAssignment = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	if s.Protocol == "https" || s.Protocol == "grpcs" {
		t.upstreamTLS(c, s)
	}
	if s.Protocol == "grpc" || s.Protocol == "grpcs" {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	return c, cla
}

func (t *translator) upstreamTLS(c *clusterv3.Cluster, s *Service) {
	sni := s.Host
	if u := s.upstream; u != nil && u.HostHeader != "" {
		sni = u.HostHeader
	}
	ut := &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: &tlsv3.CommonTlsContext{}}
	if s.TLSVerify != nil && *s.TLSVerify {
		var pem strings.Builder
		for _, id := range s.CACertificates {
			found := false
			for _, ca := range t.cfg.CACertificates {
				if ca.ID == id {
					pem.WriteString(ca.Cert)
					if !strings.HasSuffix(ca.Cert, "\n") {
						pem.WriteByte('\n')
					}
					found = true
				}
			}
			if !found {
				t.errf("service '%s' ca_certificates: no ca_certificate with id %q", svcName(s), id)
			}
		}
		if pem.Len() == 0 {
			t.errf("service '%s' tls_verify: true needs ca_certificates (wasmesh has no lua_ssl_trusted_certificate)", svcName(s))
		}
		vc := &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: pem.String()}},
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: exact(sni),
			}},
		}
		if s.TLSVerifyDepth != nil {
			vc.MaxVerifyDepth = wrapperspb.UInt32(uint32(*s.TLSVerifyDepth))
		}
		if net.ParseIP(sni) != nil {
			vc.MatchTypedSubjectAltNames[0].SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
		}
		ut.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	if s.ClientCertID != "" && !slices.ContainsFunc(t.cfg.Certificates, func(c *Certificate) bool { return c.ID == s.ClientCertID }) {
		t.errf("service '%s' client_certificate: no certificate with id %q", svcName(s), s.ClientCertID)
	}
	if s.ClientCertID != "" {
		ut.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: certSecretName(s.ClientCertID, 0)}}
	}
	c.TransportSocket = &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ut)},
	}
}

// certSecretName names the Secret of a certificate (alt = 1 for cert_alt).
func certSecretName(id string, alt int) string {
	if alt == 1 {
		return "kong.certificate." + id + ".alt"
	}
	return "kong.certificate." + id
}

func (t *translator) secrets() []*tlsv3.Secret {
	var out []*tlsv3.Secret
	if t.opts.SSLCert != "" || t.opts.SSLCertKey != "" {
		if t.opts.SSLCert == "" || t.opts.SSLCertKey == "" {
			t.errf("ssl_cert and ssl_cert_key: set both or neither")
		}
		out = append(out, &tlsv3.Secret{
			Name: DefaultCertificateSecret,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.opts.SSLCert}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.opts.SSLCertKey}},
			}},
		})
	}
	for i, c := range t.cfg.Certificates {
		id := certID(c, i)
		pairs := [][2]string{{c.Cert, c.Key}}
		if c.CertAlt != "" {
			pairs = append(pairs, [2]string{c.CertAlt, c.KeyAlt})
		}
		for alt, p := range pairs {
			out = append(out, &tlsv3.Secret{
				Name: certSecretName(id, alt),
				Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: p[0]}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: p[1]}},
				}},
			})
		}
	}
	for i, c := range t.cfg.CACertificates {
		id := c.ID
		if id == "" {
			id = strconv.Itoa(i)
		}
		out = append(out, &tlsv3.Secret{
			Name: "kong.ca_certificate." + id,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: c.Cert}},
			}},
		})
	}
	return out
}
