// Package deps pins the project's chosen dependencies in go.mod before every
// package that uses them exists, so parallel work does not race on go.mod.
// Remove an import here once a real package imports it.
package deps

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/miekg/dns"
	_ "go.uber.org/goleak"
	_ "golang.org/x/net/http2"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/encoding/protojson"
	_ "sigs.k8s.io/yaml"
)
