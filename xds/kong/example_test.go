package kong_test

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/xds/kong"
)

func Example() {
	cfg, err := kong.Parse([]byte(`_format_version: "3.0"
services:
- name: my-wasm-service
  url: http://127.0.0.1:8080
  routes:
  - name: my-wasm-route
    paths: ["/"]
    filter_chains:
    - filters:
      - name: my-filter
        config: '{"my_greeting": "Hello!"}'
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := kong.Translate(cfg, kong.Options{
		FiltersPath: "/kong/filters",
		FileExists:  func(string) bool { return true },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b := res.Bootstrap(&corev3.Node{Id: "kong"})
	fmt.Println(len(b.StaticResources.Listeners), "listener,", len(b.StaticResources.Clusters), "cluster")
	for _, vh := range res.Routes[0].VirtualHosts {
		for _, r := range vh.Routes {
			fmt.Println(vh.Domains, r.Name)
		}
	}
	// Output:
	// 1 listener, 1 cluster
	// [*] my-wasm-route
	// [*] kong.no_route
}

func ExampleError() {
	_, err := kong.Parse([]byte(`_format_version: "3.0"
services:
- port: -12
`))
	fmt.Println(err.(*kong.Error).Message)
	// Output:
	// declarative config is invalid: {services={{host="required field missing",port="value should be between 0 and 65535"}}}
}
