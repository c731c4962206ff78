package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

const nodeID = "bench"

// cpParams are what the control plane child needs from the parent.
type cpParams struct {
	clusters   int
	listenPort int
	setA, setB [2]int // upstream ports of the two endpoint sets
}

// controlPlane is go-control-plane's ADS server with a snapshot cache; it
// runs in a child process so that its memory is not counted as the
// proxy's. It reads commands on stdin and reports events on stdout:
//
//	full           publish all clusters, endpoints and the listener
//	eds K SET      cluster K's endpoints become set A or B (EDS version only)
//	cds K          cluster K's connect_timeout changes (CDS version only)
//
//	addr HOST:PORT        the server listens
//	stream                the proxy's first request arrived
//	resp TYPE VERSION NS  a response was handed to gRPC (unix ns)
//	ack TYPE VERSION NS   the proxy ACKed it (unix ns)
//	nack TYPE VERSION MSG the proxy NACKed it
type controlPlane struct {
	p     cpParams
	cache cachev3.SnapshotCache
	out   *bufio.Writer
	outMu sync.Mutex

	clusters, clas, listeners map[string]types.ResourceWithTTL
	cdsV, edsV, ldsV          int
	timeouts                  []bool // per cluster: connect_timeout toggled
	// versions are the resources' hashes by type URL and name, kept up
	// to date per change: go-control-plane would otherwise hash every
	// resource of every new snapshot for delta xDS.
	versions map[string]map[string]string

	mu     sync.Mutex
	nonces map[string][2]string // nonce -> type, version
	opened bool
}

func (cp *controlPlane) emit(format string, args ...any) {
	cp.outMu.Lock()
	defer cp.outMu.Unlock()
	fmt.Fprintf(cp.out, format+"\n", args...)
	cp.out.Flush()
}

func shortType(url string) string {
	switch url {
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	case resource.ListenerType:
		return "lds"
	}
	return url
}

func runControlPlane(p cpParams, in io.Reader, out io.Writer) error {
	cp := &controlPlane{
		p: p, cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), out: bufio.NewWriter(out),
		clusters: map[string]types.ResourceWithTTL{}, clas: map[string]types.ResourceWithTTL{}, listeners: map[string]types.ResourceWithTTL{},
		timeouts: make([]bool, p.clusters), nonces: map[string][2]string{},
	}
	for i := 0; i < p.clusters; i++ {
		cp.clusters[clusterName(i)] = types.ResourceWithTTL{Resource: cp.cluster(i)}
		cp.clas[clusterName(i)] = types.ResourceWithTTL{Resource: cp.assignment(i, p.setA)}
	}
	l, err := cp.listener()
	if err != nil {
		return err
	}
	cp.listeners["ingress"] = types.ResourceWithTTL{Resource: l}
	cp.versions = map[string]map[string]string{}
	for url, items := range map[string]map[string]types.ResourceWithTTL{resource.ClusterType: cp.clusters, resource.EndpointType: cp.clas, resource.ListenerType: cp.listeners} {
		cp.versions[url] = map[string]string{}
		for name, r := range items {
			if err := cp.setVersion(url, name, r.Resource); err != nil {
				return err
			}
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := serverv3.NewServer(ctx, cp.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			cp.request(r.GetResponseNonce(), r.GetErrorDetail().GetMessage())
			return nil
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, r *discoveryv3.DiscoveryResponse) {
			cp.response(r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce())
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			cp.request(r.GetResponseNonce(), r.GetErrorDetail().GetMessage())
			return nil
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, r *discoveryv3.DeltaDiscoveryResponse) {
			cp.response(r.GetTypeUrl(), r.GetSystemVersionInfo(), r.GetNonce())
		},
	})
	g := grpc.NewServer(grpc.MaxRecvMsgSize(1 << 30))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
	go g.Serve(ln)
	defer g.Stop()
	cp.emit("addr %s", ln.Addr())

	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "full":
			cp.cdsV, cp.edsV, cp.ldsV = cp.cdsV+1, cp.edsV+1, cp.ldsV+1
		case "eds":
			k, _ := strconv.Atoi(f[1])
			set := p.setA
			if f[2] == "B" {
				set = p.setB
			}
			cp.clas = maps.Clone(cp.clas)
			r := cp.assignment(k, set)
			cp.clas[clusterName(k)] = types.ResourceWithTTL{Resource: r}
			cp.versions[resource.EndpointType] = maps.Clone(cp.versions[resource.EndpointType])
			if err := cp.setVersion(resource.EndpointType, clusterName(k), r); err != nil {
				return err
			}
			cp.edsV++
		case "cds":
			k, _ := strconv.Atoi(f[1])
			cp.timeouts[k] = !cp.timeouts[k]
			cp.clusters = maps.Clone(cp.clusters)
			r := cp.cluster(k)
			cp.clusters[clusterName(k)] = types.ResourceWithTTL{Resource: r}
			cp.versions[resource.ClusterType] = maps.Clone(cp.versions[resource.ClusterType])
			if err := cp.setVersion(resource.ClusterType, clusterName(k), r); err != nil {
				return err
			}
			cp.cdsV++
		default:
			return fmt.Errorf("control plane: unknown command %q", sc.Text())
		}
		if err := cp.publish(ctx); err != nil {
			return err
		}
	}
	return sc.Err()
}

// publish sets a snapshot whose types carry their own versions, so that
// only the changed type is sent again, as a control plane that tracks
// changes per type (Istio, Kuma) does.
func (cp *controlPlane) publish(ctx context.Context) error {
	snap := &cachev3.Snapshot{}
	snap.Resources[types.Cluster] = cachev3.Resources{Version: fmt.Sprintf("c%d", cp.cdsV), Items: cp.clusters}
	snap.Resources[types.Endpoint] = cachev3.Resources{Version: fmt.Sprintf("e%d", cp.edsV), Items: cp.clas}
	snap.Resources[types.Listener] = cachev3.Resources{Version: fmt.Sprintf("l%d", cp.ldsV), Items: cp.listeners}
	for _, t := range []types.ResponseType{types.Route, types.ScopedRoute, types.VirtualHost, types.Secret, types.Runtime, types.ExtensionConfig, types.RateLimitConfig} {
		snap.Resources[t] = cachev3.Resources{Version: "0", Items: map[string]types.ResourceWithTTL{}}
	}
	snap.VersionMap = maps.Clone(cp.versions)
	return cp.cache.SetSnapshot(ctx, nodeID, snap)
}

func (cp *controlPlane) setVersion(typeURL, name string, r types.Resource) error {
	b, err := cachev3.MarshalResource(r)
	if err != nil {
		return err
	}
	cp.versions[typeURL][name] = cachev3.HashResource(b)
	return nil
}

func (cp *controlPlane) response(typeURL, version, nonce string) {
	cp.mu.Lock()
	cp.nonces[nonce] = [2]string{typeURL, version}
	cp.mu.Unlock()
	cp.emit("resp %s %s %d", shortType(typeURL), version, time.Now().UnixNano())
}

func (cp *controlPlane) request(nonce, errDetail string) {
	now := time.Now().UnixNano()
	cp.mu.Lock()
	first := !cp.opened
	cp.opened = true
	tv, ok := cp.nonces[nonce]
	delete(cp.nonces, nonce)
	cp.mu.Unlock()
	if first {
		cp.emit("stream")
	}
	if nonce == "" || !ok {
		return
	}
	if errDetail != "" {
		cp.emit("nack %s %s %q", shortType(tv[0]), tv[1], errDetail)
		return
	}
	cp.emit("ack %s %s %d", shortType(tv[0]), tv[1], now)
}

func clusterName(i int) string { return fmt.Sprintf("c%05d", i) }

func (cp *controlPlane) cluster(i int) *clusterv3.Cluster {
	timeout := time.Second
	if cp.timeouts[i] {
		timeout = 2 * time.Second
	}
	return &clusterv3.Cluster{
		Name:                 clusterName(i),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(timeout),
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
	}
}

func (cp *controlPlane) assignment(i int, ports [2]int) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: clusterName(i), Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
	for _, port := range ports {
		cla.Endpoints[0].LbEndpoints = append(cla.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(port)}},
		})
	}
	return cla
}

func socketAddress(port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// listener is one HTTP listener whose inline route configuration has a
// route per cluster: prefix /cNNNNN/ goes to cluster cNNNNN.
func (cp *controlPlane) listener() (*listenerv3.Listener, error) {
	vh := &routev3.VirtualHost{Name: "all", Domains: []string{"*"}}
	for i := 0; i < cp.p.clusters; i++ {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + clusterName(i) + "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName(i)}}},
		})
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "ingress_http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{vh}}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    "ingress",
		Address: socketAddress(cp.p.listenPort),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}, nil
}
