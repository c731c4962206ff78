package route_test

import (
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/route"
)

func Example() {
	rc := &routev3.RouteConfiguration{
		Name: "local",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "backend",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "api"},
					PrefixRewrite:    "/",
				}},
			}},
		}},
	}
	tbl, err := route.Compile(rc, route.CompileOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := header.New(":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", "/api/users?id=7", "x-forwarded-proto", "http")
	m := tbl.Match(h, route.RequestInfo{Random: 42})
	if m.Route == nil {
		fmt.Println("404 NR")
		return
	}
	m.FinalizeRequestHeaders(h, nil, true)
	path, _ := h.Get(":path")
	orig, _ := h.Get("x-envoy-original-path")
	fmt.Println(m.Cluster, path, orig, m.Route.Action.Timeout)
	// Output: api /users?id=7 /api/users?id=7 15s
}
