package admin

import (
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func inlineString(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

// configFixture is a server's config: a bootstrap with a static secret, a
// static and two dynamic clusters, endpoints, a static listener whose TLS
// context holds a private key inside a typed_config, a dynamic listener, a
// route configuration and a secret with a key and a password.
type configFixture struct {
	bootstrap *adminv3.BootstrapConfigDump
	clusters  *adminv3.ClustersConfigDump
	endpoints *adminv3.EndpointsConfigDump
	listeners *adminv3.ListenersConfigDump
	routes    *adminv3.RoutesConfigDump
	secrets   *adminv3.SecretsConfigDump
}

func newConfigFixture(t *testing.T) *configFixture {
	updated := timestamppb.New(time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC))
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/cert.pem"}},
			PrivateKey:       inlineString("LISTENER-KEY"),
		}},
	}}
	return &configFixture{
		bootstrap: &adminv3.BootstrapConfigDump{
			Bootstrap: &bootstrapv3.Bootstrap{
				Node: &corev3.Node{Id: "node1"},
				StaticResources: &bootstrapv3.Bootstrap_StaticResources{
					Secrets: []*tlsv3.Secret{{Name: "boot_secret", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
						PrivateKey: inlineString("BOOT-KEY"),
					}}}},
				},
			},
			LastUpdated: updated,
		},
		clusters: &adminv3.ClustersConfigDump{
			VersionInfo: "v3",
			StaticClusters: []*adminv3.ClustersConfigDump_StaticCluster{
				{Cluster: mustAny(t, &clusterv3.Cluster{Name: "static_a", ConnectTimeout: durationpb.New(time.Second)}), LastUpdated: updated},
			},
			DynamicActiveClusters: []*adminv3.ClustersConfigDump_DynamicCluster{
				{VersionInfo: "v3", Cluster: mustAny(t, &clusterv3.Cluster{Name: "dyn_b", ConnectTimeout: durationpb.New(2 * time.Second)}), LastUpdated: updated},
				{VersionInfo: "v3", Cluster: mustAny(t, &clusterv3.Cluster{Name: "dyn_c"}), LastUpdated: updated},
			},
		},
		endpoints: &adminv3.EndpointsConfigDump{
			StaticEndpointConfigs: []*adminv3.EndpointsConfigDump_StaticEndpointConfig{
				{EndpointConfig: mustAny(t, &endpointv3.ClusterLoadAssignment{ClusterName: "static_a", Endpoints: []*endpointv3.LocalityLbEndpoints{{
					LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", 9000)}}}},
				}}})},
			},
		},
		listeners: &adminv3.ListenersConfigDump{
			VersionInfo: "1",
			StaticListeners: []*adminv3.ListenersConfigDump_StaticListener{{
				Listener: mustAny(t, &listenerv3.Listener{
					Name:    "ingress",
					Address: sockAddr("0.0.0.0", 10000),
					FilterChains: []*listenerv3.FilterChain{{TransportSocket: &corev3.TransportSocket{
						Name:       "envoy.transport_sockets.tls",
						ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, tlsCtx)},
					}}},
				}),
				LastUpdated: updated,
			}},
			DynamicListeners: []*adminv3.ListenersConfigDump_DynamicListener{{
				Name: "dyn_l",
				ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
					VersionInfo: "1", Listener: mustAny(t, &listenerv3.Listener{Name: "dyn_l"}), LastUpdated: updated,
				},
			}},
		},
		routes: &adminv3.RoutesConfigDump{
			StaticRouteConfigs: []*adminv3.RoutesConfigDump_StaticRouteConfig{
				{RouteConfig: mustAny(t, &routev3.RouteConfiguration{Name: "local"}), LastUpdated: updated},
			},
		},
		secrets: &adminv3.SecretsConfigDump{
			StaticSecrets: []*adminv3.SecretsConfigDump_StaticSecret{{
				Name: "server_cert",
				Secret: mustAny(t, &tlsv3.Secret{Name: "server_cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: inlineString("-----BEGIN CERTIFICATE-----"),
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("SECRET-KEY")}},
					Password:         inlineString("hunter2"),
				}}}),
				LastUpdated: updated,
			}},
		},
	}
}

func (f *configFixture) dumpers() ConfigDumpers {
	return ConfigDumpers{
		Bootstrap: func() *adminv3.BootstrapConfigDump { return f.bootstrap },
		Clusters:  func() *adminv3.ClustersConfigDump { return f.clusters },
		Endpoints: func() *adminv3.EndpointsConfigDump { return f.endpoints },
		Listeners: func() *adminv3.ListenersConfigDump { return f.listeners },
		Routes:    func() *adminv3.RoutesConfigDump { return f.routes },
		Secrets:   func() *adminv3.SecretsConfigDump { return f.secrets },
	}
}

// configs fetches /config_dump?query and unpacks its configs.
func (ta *testAdmin) configs(t *testing.T, query string) []proto.Message {
	t.Helper()
	var dump adminv3.ConfigDump
	ta.getJSON(t, "/config_dump"+query, &dump)
	var out []proto.Message
	for _, a := range dump.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func typeNames(ms []proto.Message) string {
	var names []string
	for _, m := range ms {
		names = append(names, string(m.ProtoReflect().Descriptor().Name()))
	}
	return strings.Join(names, ",")
}

func unpack[T proto.Message](t *testing.T, a *anypb.Any) T {
	t.Helper()
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := m.(T)
	if !ok {
		t.Fatalf("Any holds %T", m)
	}
	return v
}

func TestConfigDumpSectionsInEnvoyOrder(t *testing.T) {
	f := newConfigFixture(t)
	ta := startAdmin(t, Options{ConfigDumpers: f.dumpers()})
	for _, tc := range []struct{ query, want string }{
		{"", "BootstrapConfigDump,ClustersConfigDump,ListenersConfigDump,RoutesConfigDump,SecretsConfigDump"},
		{"?include_eds", "BootstrapConfigDump,ClustersConfigDump,EndpointsConfigDump,ListenersConfigDump,RoutesConfigDump,SecretsConfigDump"},
	} {
		if got := typeNames(ta.configs(t, tc.query)); got != tc.want {
			t.Errorf("/config_dump%s sections %s, want %s", tc.query, got, tc.want)
		}
	}
	// A missing function or a nil result leaves the section out.
	d := f.dumpers()
	d.Routes = nil
	d.Secrets = func() *adminv3.SecretsConfigDump { return nil }
	partial := startAdmin(t, Options{ConfigDumpers: d})
	if got := typeNames(partial.configs(t, "")); got != "BootstrapConfigDump,ClustersConfigDump,ListenersConfigDump" {
		t.Errorf("partial dump sections %s", got)
	}
	none := startAdmin(t, Options{})
	if got := none.configs(t, ""); len(got) != 0 {
		t.Errorf("dump without dumpers: %s", typeNames(got))
	}
}

func TestConfigDumpContentAndRedaction(t *testing.T) {
	f := newConfigFixture(t)
	ta := startAdmin(t, Options{ConfigDumpers: f.dumpers()})
	ms := ta.configs(t, "?include_eds")
	if len(ms) != 6 {
		t.Fatalf("sections %s", typeNames(ms))
	}
	boot := ms[0].(*adminv3.BootstrapConfigDump)
	if boot.GetBootstrap().GetNode().GetId() != "node1" || !boot.GetLastUpdated().AsTime().Equal(f.bootstrap.GetLastUpdated().AsTime()) {
		t.Errorf("bootstrap dump %v", boot)
	}
	if k := boot.GetBootstrap().GetStaticResources().GetSecrets()[0].GetTlsCertificate().GetPrivateKey().GetInlineString(); k != "[redacted]" {
		t.Errorf("bootstrap secret private key %q", k)
	}

	clusters := ms[1].(*adminv3.ClustersConfigDump)
	if clusters.GetVersionInfo() != "v3" || len(clusters.GetStaticClusters()) != 1 || len(clusters.GetDynamicActiveClusters()) != 2 {
		t.Errorf("clusters dump %v", clusters)
	}
	if c := unpack[*clusterv3.Cluster](t, clusters.GetDynamicActiveClusters()[0].GetCluster()); c.GetName() != "dyn_b" || c.GetConnectTimeout().AsDuration() != 2*time.Second {
		t.Errorf("dynamic cluster %v", c)
	}

	eps := ms[2].(*adminv3.EndpointsConfigDump)
	if cla := unpack[*endpointv3.ClusterLoadAssignment](t, eps.GetStaticEndpointConfigs()[0].GetEndpointConfig()); cla.GetClusterName() != "static_a" {
		t.Errorf("endpoints %v", cla)
	}

	listeners := ms[3].(*adminv3.ListenersConfigDump)
	l := unpack[*listenerv3.Listener](t, listeners.GetStaticListeners()[0].GetListener())
	tlsCtx := unpack[*tlsv3.DownstreamTlsContext](t, l.GetFilterChains()[0].GetTransportSocket().GetTypedConfig())
	cert := tlsCtx.GetCommonTlsContext().GetTlsCertificates()[0]
	if k := cert.GetPrivateKey().GetInlineString(); k != "[redacted]" {
		t.Errorf("private key inside a typed_config: %q", k)
	}
	if fn := cert.GetCertificateChain().GetFilename(); fn != "/etc/cert.pem" {
		t.Errorf("certificate chain (not sensitive) changed: %q", fn)
	}
	dl := listeners.GetDynamicListeners()[0]
	if dl.GetName() != "dyn_l" || dl.GetActiveState().GetVersionInfo() != "1" || dl.GetActiveState().GetLastUpdated() == nil {
		t.Errorf("dynamic listener %v", dl)
	}

	secrets := ms[5].(*adminv3.SecretsConfigDump)
	sec := unpack[*tlsv3.Secret](t, secrets.GetStaticSecrets()[0].GetSecret())
	tc := sec.GetTlsCertificate()
	if string(tc.GetPrivateKey().GetInlineBytes()) != "[redacted]" || tc.GetPassword().GetInlineString() != "[redacted]" {
		t.Errorf("secret not redacted: %v", tc)
	}
	if tc.GetCertificateChain().GetInlineString() != "-----BEGIN CERTIFICATE-----" {
		t.Errorf("certificate chain redacted: %v", tc.GetCertificateChain())
	}

	// The dumpers' messages are not modified.
	orig := unpack[*tlsv3.Secret](t, f.secrets.GetStaticSecrets()[0].GetSecret())
	if string(orig.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != "SECRET-KEY" {
		t.Error("redaction changed the dumper's message")
	}
	if k := f.bootstrap.GetBootstrap().GetStaticResources().GetSecrets()[0].GetTlsCertificate().GetPrivateKey().GetInlineString(); k != "BOOT-KEY" {
		t.Error("redaction changed the dumper's bootstrap")
	}

	// The raw answer never carries a secret.
	_, body := ta.get(t, "/config_dump?include_eds")
	for _, secret := range []string{"LISTENER-KEY", "BOOT-KEY", "hunter2", "SECRET-KEY", "U0VDUkVULUtFWQ"} {
		if strings.Contains(body, secret) {
			t.Errorf("/config_dump contains %q", secret)
		}
	}
}

func TestConfigDumpResource(t *testing.T) {
	f := newConfigFixture(t)
	ta := startAdmin(t, Options{ConfigDumpers: f.dumpers()})
	names := func(ms []proto.Message) string {
		var out []string
		for _, m := range ms {
			out = append(out, resourceName(m.ProtoReflect()))
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		query, types, names string
	}{
		{"?resource=dynamic_active_clusters", "DynamicCluster,DynamicCluster", "dyn_b,dyn_c"},
		{"?resource=static_clusters", "StaticCluster", "static_a"},
		{"?resource=static_listeners", "StaticListener", "ingress"},
		{"?resource=dynamic_listeners", "DynamicListener", "dyn_l"},
		{"?resource=static_route_configs", "StaticRouteConfig", "local"},
		{"?resource=static_secrets", "StaticSecret", "server_cert"},
		{"?resource=dynamic_warming_clusters", "", ""},
		{"?resource=static_endpoint_configs&include_eds", "StaticEndpointConfig", "static_a"},
		{"?resource=dynamic_active_clusters&name_regex=dyn_b", "DynamicCluster", "dyn_b"},
		{"?resource=dynamic_active_clusters&name_regex=dyn", "", ""},
		{"?resource=dynamic_active_clusters&name_regex=dyn_.*", "DynamicCluster,DynamicCluster", "dyn_b,dyn_c"},
	} {
		ms := ta.configs(t, tc.query)
		if got := typeNames(ms); got != tc.types {
			t.Errorf("%s: types %q, want %q", tc.query, got, tc.types)
		}
		if got := names(ms); got != tc.names {
			t.Errorf("%s: names %q, want %q", tc.query, got, tc.names)
		}
	}
	for _, tc := range []struct {
		query string
		code  int
		body  string
	}{
		{"?resource=nope", 404, "nope not found in config dump"},
		{"?resource=static_endpoint_configs", 404, "static_endpoint_configs not found in config dump"},
		{"?resource=version_info", 400, "version_info is not a repeated field. Use ?mask=version_info to get only this field"},
		{"?resource=bootstrap", 400, "bootstrap is not a repeated field. Use ?mask=bootstrap to get only this field"},
		{"?name_regex=(", 400, `invalid name_regex "("`},
	} {
		code, body := ta.get(t, "/config_dump"+tc.query)
		if code != tc.code || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s = %d %q, want %d %q", tc.query, code, body, tc.code, tc.body)
		}
	}
}

func TestConfigDumpMask(t *testing.T) {
	f := newConfigFixture(t)
	ta := startAdmin(t, Options{ConfigDumpers: f.dumpers()})

	// With a resource, the mask applies to each item, through its Any.
	ms := ta.configs(t, "?resource=dynamic_active_clusters&mask=cluster.name")
	if len(ms) != 2 {
		t.Fatalf("%d items", len(ms))
	}
	for _, m := range ms {
		dc := m.(*adminv3.ClustersConfigDump_DynamicCluster)
		if dc.GetVersionInfo() != "" || dc.GetLastUpdated() != nil {
			t.Errorf("fields outside the mask kept: %v", dc)
		}
		c := unpack[*clusterv3.Cluster](t, dc.GetCluster())
		if c.GetName() == "" || c.GetConnectTimeout() != nil {
			t.Errorf("cluster not trimmed to its name: %v", c)
		}
	}

	// Without a resource, the mask applies to each section.
	ms = ta.configs(t, "?mask=static_clusters,version_info")
	if typeNames(ms) != "BootstrapConfigDump,ClustersConfigDump,ListenersConfigDump,RoutesConfigDump,SecretsConfigDump" {
		t.Fatalf("sections %s", typeNames(ms))
	}
	clusters := ms[1].(*adminv3.ClustersConfigDump)
	if clusters.GetVersionInfo() != "v3" || len(clusters.GetStaticClusters()) != 1 || len(clusters.GetDynamicActiveClusters()) != 0 {
		t.Errorf("masked clusters dump %v", clusters)
	}
	if boot := ms[0].(*adminv3.BootstrapConfigDump); boot.GetBootstrap() != nil {
		t.Errorf("bootstrap kept outside the mask: %v", boot)
	}
	if l := ms[2].(*adminv3.ListenersConfigDump); l.GetVersionInfo() != "1" || len(l.GetStaticListeners()) != 0 {
		t.Errorf("masked listeners dump %v", l)
	}

	// A nested path keeps only that field of the message.
	ms = ta.configs(t, "?mask=bootstrap.node")
	boot := ms[0].(*adminv3.BootstrapConfigDump)
	if boot.GetBootstrap().GetNode().GetId() != "node1" || boot.GetBootstrap().GetStaticResources() != nil || boot.GetLastUpdated() != nil {
		t.Errorf("bootstrap.node mask: %v", boot)
	}
}

func TestConfigDumpNameRegex(t *testing.T) {
	f := newConfigFixture(t)
	ta := startAdmin(t, Options{ConfigDumpers: f.dumpers()})
	ms := ta.configs(t, "?name_regex=dyn_.*&include_eds")
	if len(ms) != 6 {
		t.Fatalf("sections %s", typeNames(ms))
	}
	if boot := ms[0].(*adminv3.BootstrapConfigDump); boot.GetBootstrap().GetNode().GetId() != "node1" {
		t.Error("bootstrap was filtered")
	}
	clusters := ms[1].(*adminv3.ClustersConfigDump)
	if len(clusters.GetStaticClusters()) != 0 || len(clusters.GetDynamicActiveClusters()) != 2 || clusters.GetVersionInfo() != "v3" {
		t.Errorf("clusters %v", clusters)
	}
	if eps := ms[2].(*adminv3.EndpointsConfigDump); len(eps.GetStaticEndpointConfigs()) != 0 {
		t.Errorf("endpoints %v", eps)
	}
	listeners := ms[3].(*adminv3.ListenersConfigDump)
	if len(listeners.GetStaticListeners()) != 0 || len(listeners.GetDynamicListeners()) != 1 {
		t.Errorf("listeners %v", listeners)
	}
	if r := ms[4].(*adminv3.RoutesConfigDump); len(r.GetStaticRouteConfigs()) != 0 {
		t.Errorf("routes %v", r)
	}
	if s := ms[5].(*adminv3.SecretsConfigDump); len(s.GetStaticSecrets()) != 0 {
		t.Errorf("secrets %v", s)
	}
	// The dumper's lists are untouched.
	if len(f.clusters.GetStaticClusters()) != 1 {
		t.Error("name_regex changed the dumper's message")
	}
}
