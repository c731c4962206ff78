package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/bootstrap"
)

const nodeID = "test-node"

// controlPlane is go-control-plane's xDS server with a snapshot cache on
// 127.0.0.1, recording the requests it receives.
type controlPlane struct {
	t     testing.TB
	addr  string
	cache cachev3.SnapshotCache

	mu   sync.Mutex
	reqs []request
	grpc *grpc.Server
	done chan struct{}
	opts []grpc.ServerOption
}

// request is one DiscoveryRequest or DeltaDiscoveryRequest as the server
// saw it.
type request struct {
	typeURL, version, nonce, errDetail string
	names, subscribe, unsubscribe      []string
	initial                            map[string]string
	hasNode                            bool
	userAgent                          string
}

func startControlPlane(t testing.TB, addr string, opts ...grpc.ServerOption) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), opts: opts}
	cp.serve(addr)
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) serve(addr string) {
	cp.t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger briefly after a restart
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.addr = ln.Addr().String()
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			cp.record(request{typeURL: r.GetTypeUrl(), version: r.GetVersionInfo(), nonce: r.GetResponseNonce(),
				errDetail: r.GetErrorDetail().GetMessage(), names: r.GetResourceNames(), hasNode: r.GetNode() != nil,
				userAgent: r.GetNode().GetUserAgentName()})
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			cp.record(request{typeURL: r.GetTypeUrl(), nonce: r.GetResponseNonce(), errDetail: r.GetErrorDetail().GetMessage(),
				subscribe: r.GetResourceNamesSubscribe(), unsubscribe: r.GetResourceNamesUnsubscribe(),
				initial: r.GetInitialResourceVersions(), hasNode: r.GetNode() != nil, userAgent: r.GetNode().GetUserAgentName()})
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, cp.cache, cb)
	g := grpc.NewServer(cp.opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		_ = g.Serve(ln)
	}()
	cp.mu.Lock()
	cp.grpc, cp.done = g, done
	cp.mu.Unlock()
}

// stop kills the control plane: its streams end at once.
func (cp *controlPlane) stop() {
	cp.mu.Lock()
	g, done := cp.grpc, cp.done
	cp.grpc = nil
	cp.mu.Unlock()
	if g != nil {
		g.Stop()
		<-done
	}
}

// restart serves again on the same address with a fresh cache.
func (cp *controlPlane) restart() {
	cp.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	cp.serve(cp.addr)
}

func (cp *controlPlane) record(r request) {
	cp.mu.Lock()
	cp.reqs = append(cp.reqs, r)
	cp.mu.Unlock()
}

func (cp *controlPlane) requests() []request {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]request(nil), cp.reqs...)
}

// waitRequest waits for a request matching f.
func (cp *controlPlane) waitRequest(what string, f func(request) bool) request {
	cp.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range cp.requests() {
			if f(r) {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	cp.t.Fatalf("no request: %s; got %+v", what, cp.requests())
	return request{}
}

// set publishes a snapshot.
func (cp *controlPlane) set(version string, clusters []*clusterv3.Cluster, clas []*endpointv3.ClusterLoadAssignment, ls []*listenerv3.Listener) {
	cp.t.Helper()
	cp.publish(version, map[resource.Type][]types.Resource{resource.ClusterType: asResources(clusters),
		resource.EndpointType: asResources(clas), resource.ListenerType: asResources(ls)})
}

// publish sets a snapshot of res. Every type listed gets the version, even
// empty: an empty set is an answer.
func (cp *controlPlane) publish(version string, res map[resource.Type][]types.Resource) {
	cp.t.Helper()
	publishSnapshot(cp.t, cp.cache, version, res)
}

// publishSnapshot sets the node's snapshot of res in cache.
func publishSnapshot(t testing.TB, cache cachev3.SnapshotCache, version string, res map[resource.Type][]types.Resource) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// asResources is a typed list as a snapshot's resources.
func asResources[T types.Resource](items []T) []types.Resource {
	out := make([]types.Resource, len(items))
	for i, x := range items {
		out[i] = x
	}
	return out
}

// parse decodes a YAML resource.
func parse[T proto.Message](t testing.TB, m T, y string) T {
	t.Helper()
	if err := bootstrap.Parse([]byte(y), m, false); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return m
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is an httptest server answering with its name.
func upstream(t testing.TB, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(t testing.TB, s *httptest.Server) (string, int) {
	t.Helper()
	a := s.Listener.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func edsCluster(t testing.TB, name string) *clusterv3.Cluster {
	return parse(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: %s
type: EDS
connect_timeout: 1s
eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
`, name))
}

func assignment(t testing.TB, name string, ups ...*httptest.Server) *endpointv3.ClusterLoadAssignment {
	var eps []string
	for _, u := range ups {
		h, p := hostPort(t, u)
		eps = append(eps, fmt.Sprintf(`{endpoint: {address: {socket_address: {address: %s, port_value: %d}}}}`, h, p))
	}
	return parse(t, &endpointv3.ClusterLoadAssignment{}, fmt.Sprintf(`
cluster_name: %s
endpoints: [{lb_endpoints: [%s]}]
`, name, strings.Join(eps, ", ")))
}

var wasmPath, _ = filepath.Abs("../../examples/filters/my-filter/my-filter.wasm")

// ingress is an HTTP listener routing prefix / to cluster through the
// my-filter Wasm filter with the greeting; route is extra route YAML
// placed before the catch-all.
func ingress(t testing.TB, port int, cluster, greeting, route string) *listenerv3.Listener {
	return parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: ingress
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress_http
      route_config:
        name: local
        virtual_hosts:
        - name: all
          domains: ["*"]
          routes:
          %s
          - match: {prefix: "/"}
            route: {cluster: %s}
      http_filters:
      - name: my-filter
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          config:
            name: my-filter
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '%s'
            vm_config:
              vm_id: my-filter
              runtime: envoy.wasm.runtime.v8
              code: {local: {filename: %s}}
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, port, route, cluster, greeting, wasmPath))
}

func greeting(s string) string { return fmt.Sprintf(`{"my_greeting": %q}`, s) }

// proxy starts a wasmesh server whose configuration comes from the control
// plane over ADS (GRPC or DELTA_GRPC) through the static cluster "xds".
func proxy(t testing.TB, cp *controlPlane, apiType string) *server.Server {
	t.Helper()
	return proxyAt(t, cp.addr, apiType, "10s")
}

// proxyAt is proxy with the control plane's address and the
// initial_fetch_timeout given.
func proxyAt(t testing.TB, addr, apiType, fetchTimeout string) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf(`
node: {id: %s, cluster: test}
dynamic_resources:
  ads_config:
    api_type: %s
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: %[5]s}
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: %[5]s}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %[3]s, port_value: %[4]s}}}}]}]
`, nodeID, apiType, host, port, fetchTimeout)
	return startProxy(t, cfg)
}

// startProxy starts a wasmesh server from a bootstrap in YAML.
func startProxy(t testing.TB, cfg string) *server.Server {
	t.Helper()
	o, err := server.ParseFlags([]string{"--config-yaml", cfg, "-l", "off", "--drain-time-s", "1", "--concurrency", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// bootstrap.Load still rejects dynamic_resources (its checker is
	// another package's); parse without that check.
	b := parse(t, &bootstrapv3.Bootstrap{}, cfg)
	server.ApplyNodeFlags(b, o)
	ctx := context.Background()
	s, err := server.New(ctx, o, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.Start(sctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// get sends one request through the proxy.
func get(port int, path string) (status int, body, greet string, err error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Greeting"), err
}

// eventually polls until a request through the proxy returns body and
// greeting.
func eventually(t testing.TB, port int, path, body, greet string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		code, b, g, err := get(port, path)
		if err == nil && code == 200 && b == body && g == greet {
			return
		}
		last = fmt.Sprintf("status %d body %q greeting %q err %v", code, b, g, err)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: never got body %q greeting %q; last: %s", path, body, greet, last)
}
