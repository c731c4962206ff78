package server

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wasmesh/wasmesh/admin"
	"github.com/wasmesh/wasmesh/listener"
	"github.com/wasmesh/wasmesh/listener/hcm"
	"github.com/wasmesh/wasmesh/xds/client"
)

// The Server is the admin's view of the process.

// State is the server state for /server_info and /ready.
func (s *Server) State() adminv3.ServerInfo_State { return adminv3.ServerInfo_State(s.state.Load()) }

// Version is Envoy's version string.
func (s *Server) Version() string {
	return fmt.Sprintf("%s/%s/Clean/RELEASE/BoringSSL", orZeros(revision()), EnvoyAPIVersion)
}

func orZeros(r string) string {
	if r == "" {
		return "0000000000000000000000000000000000000000"
	}
	return r
}

// StartTime is when the server started.
func (s *Server) StartTime() time.Time { return s.start }

// Node is the bootstrap node.
func (s *Server) Node() *corev3.Node { return s.bootstrap.GetNode() }

// CommandLineOptions mirrors Envoy's for /server_info.
func (s *Server) CommandLineOptions() *adminv3.CommandLineOptions {
	o := s.opts
	mode := adminv3.CommandLineOptions_Serve
	switch o.Mode {
	case "validate":
		mode = adminv3.CommandLineOptions_Validate
	case "init_only":
		mode = adminv3.CommandLineOptions_InitOnly
	}
	return &adminv3.CommandLineOptions{
		ConfigPath: o.ConfigPath, ConfigYaml: o.ConfigYAML, Concurrency: uint32(o.Concurrency),
		LogLevel: o.LogLevel, ComponentLogLevel: o.ComponentLogLevel, LogFormat: o.LogFormat, LogPath: o.LogPath,
		ServiceCluster: o.ServiceCluster, ServiceNode: o.ServiceNode, ServiceZone: o.ServiceZone,
		DrainTime: durationpb.New(o.DrainTime), ParentShutdownTime: durationpb.New(o.ParentShutdownTime),
		Mode: mode, DisableHotRestart: true, RestartEpoch: uint32(o.RestartEpoch), BaseId: o.BaseID,
		AllowUnknownStaticFields: o.AllowUnknownStatic, RejectUnknownDynamicFields: o.RejectUnknownDynamic,
		IgnoreUnknownDynamicFields: o.IgnoreUnknownDynamic,
	}
}

// ListenerStatuses lists the listeners for /listeners.
func (s *Server) ListenerStatuses() []admin.ListenerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]admin.ListenerStatus, 0, len(s.listeners))
	for name, l := range s.listeners {
		st := admin.ListenerStatus{Name: name}
		if a := l.Addr(); a != nil {
			st.Addresses = []*corev3.Address{admin.AddressFromNet(a)}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DrainListeners drains every listener (/drain_listeners).
func (s *Server) DrainListeners(o admin.DrainOptions) error {
	s.mu.Lock()
	ls := make([]interface {
		Drain(context.Context, time.Duration) error
	}, 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	drain := s.opts.DrainTime
	if !o.Graceful {
		drain = 0
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), drain+time.Second)
			defer cancel()
			_ = l.Drain(ctx, drain)
		}()
	}
	go wg.Wait()
	return nil
}

type adminClusters struct{ s *Server }

func (a adminClusters) ClusterStatuses() []admin.ClusterStatus { return clusterStatuses(a.s.Clusters) }

// configDumpers give /config_dump the static configuration.
func (s *Server) configDumpers() admin.ConfigDumpers {
	b := s.bootstrap
	now := timestamppb.New(s.start)
	return admin.ConfigDumpers{
		Bootstrap: func() *adminv3.BootstrapConfigDump {
			return &adminv3.BootstrapConfigDump{Bootstrap: b, LastUpdated: now}
		},
		Listeners: func() *adminv3.ListenersConfigDump {
			d := &adminv3.ListenersConfigDump{}
			for _, l := range b.GetStaticResources().GetListeners() {
				a, _ := anypb.New(l)
				d.StaticListeners = append(d.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: a, LastUpdated: now})
			}
			d.DynamicListeners = s.dyn.dumpListeners()
			d.VersionInfo = s.dyn.versionOf(client.TypeListener)
			return d
		},
		Clusters: func() *adminv3.ClustersConfigDump {
			d := &adminv3.ClustersConfigDump{}
			for _, c := range b.GetStaticResources().GetClusters() {
				a, _ := anypb.New(c)
				d.StaticClusters = append(d.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: a, LastUpdated: now})
			}
			d.DynamicActiveClusters = s.dyn.dumpClusters()
			d.VersionInfo = s.dyn.versionOf(client.TypeCluster)
			return d
		},
		Endpoints: func() *adminv3.EndpointsConfigDump {
			d := &adminv3.EndpointsConfigDump{}
			for _, c := range b.GetStaticResources().GetClusters() {
				if la := c.GetLoadAssignment(); la != nil {
					a, _ := anypb.New(la)
					d.StaticEndpointConfigs = append(d.StaticEndpointConfigs, &adminv3.EndpointsConfigDump_StaticEndpointConfig{EndpointConfig: a, LastUpdated: now})
				}
			}
			return d
		},
		Routes: func() *adminv3.RoutesConfigDump {
			d := &adminv3.RoutesConfigDump{}
			for _, l := range b.GetStaticResources().GetListeners() {
				for _, fc := range l.GetFilterChains() {
					for _, f := range fc.GetFilters() {
						h := &hcmv3.HttpConnectionManager{}
						if f.GetTypedConfig().UnmarshalTo(h) != nil || h.GetRouteConfig() == nil {
							continue
						}
						a, _ := anypb.New(h.GetRouteConfig())
						d.StaticRouteConfigs = append(d.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: a, LastUpdated: now})
					}
				}
			}
			d.DynamicRouteConfigs = s.dyn.dumpRoutes()
			return d
		},
		Secrets: func() *adminv3.SecretsConfigDump {
			d := &adminv3.SecretsConfigDump{}
			for _, sec := range b.GetStaticResources().GetSecrets() {
				a, _ := anypb.New(sec)
				d.StaticSecrets = append(d.StaticSecrets, &adminv3.SecretsConfigDump_StaticSecret{Name: sec.GetName(), Secret: a, LastUpdated: now})
			}
			d.DynamicActiveSecrets = s.dyn.dumpSecrets()
			return d
		},
	}
}

// startAdmin serves the admin endpoints on the bootstrap's admin address.
func (s *Server) startAdmin(ctx context.Context) error {
	addr := s.bootstrap.GetAdmin().GetAddress().GetSocketAddress()
	if addr == nil {
		return nil
	}
	ab := s.bootstrap.GetAdmin()
	reqLog, err := hcm.CompileRequestLogger(ab.GetAccessLog(), ab.GetAccessLogPath(), s.logFiles) //nolint:staticcheck // access_log_path is deprecated but still read by Envoy
	if err != nil {
		return fmt.Errorf("admin.%w", err)
	}
	a, err := admin.New(admin.Options{
		Wrap:          reqLog.Wrap,
		Logger:        s.logging.Logger("admin"),
		Server:        s,
		Stats:         s.Stats,
		Logging:       s.logging,
		ParseLevel:    ParseLevel,
		Listeners:     s,
		Clusters:      adminClusters{s},
		ConfigDumpers: s.configDumpers(),
		Runtime:       s.runtimeLayers(),
		Certificates:  certificates{s},
		Quit:          s.Quit,
	})
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.GetAddress(), fmt.Sprint(addr.GetPortValue())))
	if err != nil {
		return fmt.Errorf("admin.address: %w", err)
	}
	s.admin, s.adminLn = a, ln
	s.adminPtr.Store(a)
	go a.Serve(context.WithoutCancel(ctx), ln)
	return nil
}

// certificates lists the listeners' TLS certificates for /certs.
type certificates struct{ s *Server }

func (c certificates) TLSContexts() []admin.TLSContextCertificates {
	c.s.mu.Lock()
	ls := make([]*listener.Listener, 0, len(c.s.listeners))
	for _, l := range c.s.listeners {
		ls = append(ls, l)
	}
	c.s.mu.Unlock()
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name() < ls[j].Name() })
	var out []admin.TLSContextCertificates
	for _, l := range ls {
		for _, tc := range l.TLSContexts() {
			var e admin.TLSContextCertificates
			cas, chain := tc.Certificates()
			for _, ca := range cas {
				e.CA = append(e.CA, admin.CertificateSource{Path: ca.Path, Cert: ca.Cert})
			}
			for _, ch := range chain {
				e.Chain = append(e.Chain, admin.CertificateSource{Path: ch.Path, Cert: ch.Cert})
			}
			out = append(out, e)
		}
	}
	return out
}
