package health_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/cluster/health"
)

// FuzzCompile: any HealthCheck message compiles or is refused with
// errors, never a panic.
func FuzzCompile(f *testing.F) {
	for _, y := range []string{
		"timeout: 1s\ninterval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\nhttp_health_check: {path: /h, expected_statuses: [{start: 200, end: 300}], request_headers_to_add: [{header: {key: a, value: b}}]}\n",
		"timeout: 1s\ninterval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\ntcp_health_check: {send: {text: \"0102\"}, receive: [{binary: \"AQI=\"}]}\n",
	} {
		b, err := proto.Marshal(compileProto(f, y))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hc := &corev3.HealthCheck{}
		if proto.Unmarshal(b, hc) != nil {
			return
		}
		cfg, errs := health.Compile(hc)
		if cfg == nil && len(errs) == 0 {
			t.Fatal("neither a config nor an error")
		}
	})
}
