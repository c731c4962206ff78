package router_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/route"

	"github.com/wasmesh/wasmesh/internal/rawupstream"
)

// benchClusters is the server's adapter from router.Clusters to the
// cluster manager, trimmed to what the benchmark needs.
type benchClusters struct{ m *cluster.Manager }

func (r benchClusters) Has(name string) bool { return r.m.Get(name) != nil }

func (r benchClusters) RoundTrip(name string, req *http.Request, lb router.LBContext) (*http.Response, string, error) {
	resp, host, err := r.m.Get(name).RoundTrip(req, cluster.LoadBalancerContext{DownstreamHTTP2: lb.DownstreamHTTP2})
	addr := ""
	if host != nil {
		addr = host.Address()
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, addr, err
		}
		return nil, addr, &router.UpstreamError{Kind: router.FailureReset, Err: err}
	}
	return resp, addr, nil
}

func compileRouter(b testing.TB, clusters router.Clusters, suppress bool) *router.Config {
	b.Helper()
	raw := fmt.Sprintf(`{"@type": %q, "suppress_envoy_headers": %v}`, router.TypeURL, suppress)
	cfg, err := router.CompileForTest(raw, clusters)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkForwardH1 measures the router and cluster path of one request
// (route finalization, timeouts, the upstream request, the response
// wrapping, reading the body) against a keep-alive HTTP/1.1 upstream on
// 127.0.0.1.
//
//	go test -run - -bench ForwardH1 -benchmem ./filterchain/router/
func BenchmarkForwardH1(b *testing.B) {
	addr := rawupstream.Start(b, rawupstream.Small)
	m := cluster.NewManager(context.Background(), cluster.Options{})
	b.Cleanup(func() { m.Close() })
	host, port, _ := net.SplitHostPort(addr)
	cy := fmt.Sprintf(`
name: up
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: up
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: %q, port_value: %s}}}
`, host, port)
	cc := &clusterv3.Cluster{}
	unmarshalYAML(b, cy, cc)
	if err := m.Add(context.Background(), cc); err != nil {
		b.Fatal(err)
	}
	clusters := benchClusters{m}

	for _, tc := range []struct {
		name, route string
	}{
		{"timeout=default", `{match: {prefix: "/"}, route: {cluster: up}}`},
		{"timeout=none", `{match: {prefix: "/"}, route: {cluster: up, timeout: 0s}}`},
		{"per_try", `{match: {prefix: "/"}, route: {cluster: up, retry_policy: {retry_on: "5xx", num_retries: 2, per_try_timeout: 5s}}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rc := &routev3.RouteConfiguration{}
			unmarshalYAML(b, `
name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - `+tc.route, rc)
			table, err := route.Compile(rc, route.CompileOptions{})
			if err != nil {
				b.Fatal(err)
			}
			cfg := compileRouter(b, clusters, false)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 512)
				for pb.Next() {
					h := header.New(":method", "GET", ":path", "/bench?x=1", ":authority", "example.com", ":scheme", "http")
					h.Add("user-agent", "bench")
					h.Add("accept", "*/*")
					s := filterchain.NewStream(ctx, nil, &filterchain.StreamInfo{Protocol: "HTTP/1.1"})
					s.RequestHeaders = h
					match := table.Match(h, route.RequestInfo{})
					resp, lr := cfg.Forward(&router.Request{Stream: s, Match: &match, ContentLength: 0})
					if lr != nil {
						b.Errorf("local reply %d %s", lr.Status, lr.Details)
						return
					}
					for {
						if _, err := resp.Body.Read(buf); err != nil {
							if err != io.EOF {
								b.Error(err)
							}
							break
						}
					}
					resp.Body.Close()
				}
			})
		})
	}
}

func unmarshalYAML(b testing.TB, y string, m proto.Message) {
	b.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		b.Fatal(err)
	}
	if err := protojson.Unmarshal(j, m); err != nil {
		b.Fatal(err)
	}
}
