package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/client"
)

// setRDS publishes a snapshot with clusters, listeners and route
// configurations (no endpoints: the clusters are STATIC).
func (cp *controlPlane) setRDS(version string, clusters []*clusterv3.Cluster, ls []*listenerv3.Listener, rcs []*routev3.RouteConfiguration) {
	cp.t.Helper()
	cp.publish(version, map[resource.Type][]types.Resource{resource.ClusterType: asResources(clusters), resource.EndpointType: {},
		resource.ListenerType: asResources(ls), resource.RouteType: asResources(rcs)})
}

// staticCluster is a STATIC cluster of one upstream.
func staticCluster(t testing.TB, name string, up *httptest.Server) *clusterv3.Cluster {
	h, p := hostPort(t, up)
	return parse(t, &clusterv3.Cluster{}, fmt.Sprintf(`
name: %s
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: %s
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %d}}}}]}]
`, name, name, h, p))
}

// rdsListener is an HTTP listener whose connection manager fetches the
// route configuration routeName over ADS.
func rdsListener(t testing.TB, name string, port int, routeName, fetchTimeout string) *listenerv3.Listener {
	return parse(t, &listenerv3.Listener{}, fmt.Sprintf(`
name: %s
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: %s
      rds:
        route_config_name: %s
        config_source: {ads: {}, resource_api_version: V3, initial_fetch_timeout: %s}
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, name, port, name, routeName, fetchTimeout))
}

// routeConfig routes /slow and / to clusters; extra is more route YAML
// placed first.
func routeConfig(t testing.TB, name, slowCluster, cluster, extra string) *routev3.RouteConfiguration {
	return parse(t, &routev3.RouteConfiguration{}, fmt.Sprintf(`
name: %s
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  %s
  - match: {prefix: "/slow"}
    route: {cluster: %s, timeout: 10s}
  - match: {prefix: "/"}
    route: {cluster: %s}
`, name, extra, slowCluster, cluster))
}

// gatedUpstream answers with its name; /slow waits for release.
type gatedUpstream struct {
	*httptest.Server
	started chan struct{}
	release chan struct{}
}

func gated(t testing.TB, name string) *gatedUpstream {
	g := &gatedUpstream{started: make(chan struct{}, 16), release: make(chan struct{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/slow") {
			g.started <- struct{}{}
			<-g.release
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		g.Close()
	})
	return g
}

func nackOf(typeURL, detail string) func(request) bool {
	return func(r request) bool {
		return r.typeURL == typeURL && r.errDetail != "" && r.nonce != "" && strings.Contains(r.errDetail, detail)
	}
}

// TestRDS drives a connection manager's routes over RDS, SotW and delta:
// the listener warms until its RouteConfiguration arrives; a route update
// swaps the table of the running connection manager without dropping a
// keep-alive connection, while a request in flight finishes on the table
// it started with; a bad route configuration is NACKed naming the
// resource and the field while the previous one serves; the next good
// one is applied; /config_dump shows dynamic_route_configs.
func TestRDS(t *testing.T) {
	for _, apiType := range []string{"GRPC", "DELTA_GRPC"} {
		t.Run(apiType, func(t *testing.T) { testRDS(t, apiType) })
	}
}

func testRDS(t *testing.T, apiType string) {
	cp := startControlPlane(t, "")
	a, b := gated(t, "a"), gated(t, "b")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a.Server), staticCluster(t, "b", b.Server)}
	port := freePort(t)
	ls := []*listenerv3.Listener{rdsListener(t, "ingress", port, "r1", "10s")}

	r1 := routeConfig(t, "r1", "a", "a", "")
	cp.setRDS("v1", clusters, ls, []*routev3.RouteConfiguration{r1})
	adminPort := freePort(t)
	s := proxyWithAdmin(t, cp.addr, apiType, "1s", adminPort)
	eventually(t, port, "/", "a", "")

	// v2 adds a listener whose routes are not in the snapshot: the cache
	// does not answer the RDS request, so the new listener warms (its
	// port is not served) while the first one serves.
	port2 := freePort(t)
	ls2 := append(ls[:1:1], rdsListener(t, "second", port2, "r2", "30s"))
	cp.setRDS("v2", clusters, ls2, []*routev3.RouteConfiguration{r1})
	cp.waitRequest("RDS subscription to r2", func(r request) bool {
		return r.typeURL == client.TypeRoute && (contains(r.names, "r2") || contains(r.subscribe, "r2"))
	})
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port2), time.Second); err == nil {
		c.Close()
		t.Fatal("the new listener serves before its routes arrived")
	}
	eventually(t, port, "/", "a", "")
	r2 := routeConfig(t, "r2", "b", "b", "")
	cp.setRDS("v2b", clusters, ls2, []*routev3.RouteConfiguration{r1, r2})
	eventually(t, port2, "/", "b", "")
	if apiType == "GRPC" {
		cp.waitRequest("LDS ACK v2b", ackOf(client.TypeListener, "v2b"))
	}

	// One keep-alive connection through every step.
	var reused, fresh int
	var mu sync.Mutex
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	do := func(path string) (int, string) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			mu.Lock()
			if i.Reused {
				reused++
			} else {
				fresh++
			}
			mu.Unlock()
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := do("/"); code != 200 || body != "a" {
		t.Fatalf("v2: %d %q", code, body)
	}

	// A request in flight on /slow (cluster a) while the routes move
	// everything to b: it finishes on a.
	slow := make(chan string, 1)
	go func() {
		code, body, _, err := get(port, "/slow")
		slow <- fmt.Sprintf("%d %s %v", code, body, err)
	}()
	<-a.started
	cp.setRDS("v3", clusters, ls2, []*routev3.RouteConfiguration{r2, routeConfig(t, "r1", "b", "b", "")})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := do("/")
		if body == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route update never applied; still %q", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(a.release)
	if got := <-slow; got != "200 a <nil>" {
		t.Errorf("request in flight across the route update: %s, want 200 from a", got)
	}
	mu.Lock()
	if fresh != 1 {
		t.Errorf("keep-alive connection: %d new connections (%d reused), want 1: the route update dropped it", fresh, reused)
	}
	mu.Unlock()

	// A bad route configuration is NACKed naming the resource and the
	// field; b keeps serving.
	cp.setRDS("v4", clusters, ls2, []*routev3.RouteConfiguration{r2, routeConfig(t, "r1", "a", "a", `- match: {safe_regex: {regex: "(["}}
    route: {cluster: a}`)})
	nack := cp.waitRequest("RDS NACK", nackOf(client.TypeRoute, `route_config "r1"`))
	if !strings.Contains(nack.errDetail, "safe_regex") {
		t.Errorf("NACK detail %q does not name the field", nack.errDetail)
	}
	if apiType == "GRPC" && nack.version != "v3" {
		t.Errorf("NACK version_info %q, want the previous v3", nack.version)
	}
	if code, body := do("/"); code != 200 || body != "b" {
		t.Errorf("after the NACK: %d %q, want b", code, body)
	}
	// A field that changes behaviour and is not implemented is NACKed too.
	cp.setRDS("v5", clusters, ls2, []*routev3.RouteConfiguration{r2, routeConfig(t, "r1", "a", "a", `- match: {prefix: "/x"}
    route: {cluster: a, request_mirror_policies: [{cluster: b}]}`)})
	nack = cp.waitRequest("RDS NACK unsupported field", nackOf(client.TypeRoute, "request_mirror_policies"))
	t.Logf("NACK detail: %s", nack.errDetail)

	// The next good version is applied.
	cp.setRDS("v6", clusters, ls2, []*routev3.RouteConfiguration{r2, routeConfig(t, "r1", "a", "a", "")})
	eventually(t, port, "/", "a", "")
	if apiType == "GRPC" {
		cp.waitRequest("RDS ACK v6", ackOf(client.TypeRoute, "v6"))
	}
	// v1, v3, v6 reached the connection manager.
	if n := s.Stats.Counter("http.ingress.rds.r1.config_reload").Value(); n < 3 {
		t.Errorf("http.ingress.rds.r1.config_reload = %d, want at least 3", n)
	}

	// /config_dump shows the route configuration with its version.
	dump := configDump(t, adminPort)
	if !strings.Contains(dump, `"dynamic_route_configs"`) || !strings.Contains(dump, `"last_updated"`) || !strings.Contains(dump, `"name": "r1"`) {
		t.Errorf("config_dump has no dynamic route configuration r1:\n%s", dump)
	}
	if apiType == "GRPC" && !strings.Contains(dump, `"version_info": "v6"`) {
		t.Errorf("config_dump lacks version_info v6 for r1")
	}

	// Removal: a delta removal keeps the last routes serving (Envoy
	// ignores RDS removals); in SotW a route configuration absent from the
	// snapshot is never answered.
	cp.setRDS("v7", clusters, ls2, nil)
	if apiType == "DELTA_GRPC" {
		cp.waitRequest("delta RDS ACK of the removal", func(r request) bool {
			return r.typeURL == client.TypeRoute && r.nonce != "" && r.errDetail == ""
		})
	}
	time.Sleep(100 * time.Millisecond) // let a removal, if any, be applied
	if code, body := do("/"); code != 200 || body != "a" {
		t.Errorf("after the route configuration's removal: %d %q, want the last routes serving", code, body)
	}
}

// TestRDSInitialFetchTimeout: a listener whose routes never arrive serves
// after initial_fetch_timeout with no routes (404, NR), as Envoy's does,
// and gets its routes when they arrive.
func TestRDSInitialFetchTimeout(t *testing.T) {
	cp := startControlPlane(t, "")
	a := gated(t, "a")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a.Server)}
	port := freePort(t)
	ls := []*listenerv3.Listener{rdsListener(t, "ingress", port, "late", "0.3s")}
	cp.setRDS("v1", clusters, ls, nil)
	proxyWithAdmin(t, cp.addr, "GRPC", "5s", freePort(t))
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, _, err := get(port, "/")
		if err == nil {
			if code != 404 {
				t.Fatalf("before its routes arrive the listener answers %d, want 404", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener never served after initial_fetch_timeout: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cp.waitRequest("LDS ACK v1", ackOf(client.TypeListener, "v1"))
	cp.setRDS("v2", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "late", "a", "a", "")})
	eventually(t, port, "/", "a", "")
}

// TestRDSSharedByListeners: two listeners naming one route configuration
// follow it together; a configuration valid for one and not the other is
// rejected for both.
func TestRDSSharedByListeners(t *testing.T) {
	cp := startControlPlane(t, "")
	a, b := gated(t, "a"), gated(t, "b")
	clusters := []*clusterv3.Cluster{staticCluster(t, "a", a.Server), staticCluster(t, "b", b.Server)}
	p1, p2 := freePort(t), freePort(t)
	ls := []*listenerv3.Listener{rdsListener(t, "one", p1, "shared", "10s"), rdsListener(t, "two", p2, "shared", "10s")}
	cp.setRDS("v1", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "shared", "a", "a", "")})
	proxyWithAdmin(t, cp.addr, "DELTA_GRPC", "5s", freePort(t))
	eventually(t, p1, "/", "a", "")
	eventually(t, p2, "/", "a", "")
	cp.setRDS("v2", clusters, ls, []*routev3.RouteConfiguration{routeConfig(t, "shared", "b", "b", "")})
	eventually(t, p1, "/", "b", "")
	eventually(t, p2, "/", "b", "")
	// A listener dropping the name leaves the other following it.
	ls2 := []*listenerv3.Listener{ls[0]}
	cp.setRDS("v3", clusters, ls2, []*routev3.RouteConfiguration{routeConfig(t, "shared", "a", "a", "")})
	eventually(t, p1, "/", "a", "")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// proxyWithAdmin is proxyAt with an admin listener.
func proxyWithAdmin(t testing.TB, addr, apiType, fetchTimeout string, adminPort int) *server.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf(`
node: {id: %[1]s, cluster: test}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %[6]d}}}
dynamic_resources:
  ads_config:
    api_type: %[2]s
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
`, nodeID, apiType, host, port, fetchTimeout, adminPort)
	return startProxy(t, cfg)
}

// configDump fetches /config_dump, indented.
func configDump(t testing.TB, adminPort int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config_dump", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("config_dump: %v\n%s", err, raw)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}

// TestRDSStaticListener: a bootstrap listener whose connection manager
// names a route configuration gets it over ADS.
func TestRDSStaticListener(t *testing.T) {
	cp := startControlPlane(t, "")
	a := gated(t, "a")
	port := freePort(t)
	cp.setRDS("v1", []*clusterv3.Cluster{staticCluster(t, "a", a.Server)}, nil, []*routev3.RouteConfiguration{routeConfig(t, "static-routes", "a", "a", "")})
	host, cpPort, _ := net.SplitHostPort(cp.addr)
	startProxy(t, fmt.Sprintf(`
node: {id: %[1]s, cluster: test}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  listeners:
  - name: static
    address: {socket_address: {address: 127.0.0.1, port_value: %[4]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: static
          rds: {route_config_name: static-routes, config_source: {ads: {}, resource_api_version: V3}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %[2]s, port_value: %[3]s}}}}]}]
`, nodeID, host, cpPort, port))
	eventually(t, port, "/", "a", "")
	cp.waitRequest("RDS ACK v1", ackOf(client.TypeRoute, "v1"))
}
