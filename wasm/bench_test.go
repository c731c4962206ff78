package wasm_test

// Benchmarks: go test -run '^$' -bench . -benchmem ./wasm/
//
// Goals (issue): <= 150 ns per host call, <= 3 µs per request/response pair
// through a header-adding filter.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
)

// hostCallsPerCallback is how many host calls each hostloop callback makes.
const hostCallsPerCallback = 1000

// benchPlugin starts code as a plugin on a fresh runtime whose log level
// is Info, closed when the benchmark ends.
func benchPlugin(b *testing.B, code []byte, instances int, config string) *wasm.Plugin {
	return benchPluginRoot(b, code, instances, "", config)
}

func benchPluginRoot(b *testing.B, code []byte, instances int, rootID, config string) *wasm.Plugin {
	return benchPluginTimeout(b, code, instances, rootID, config, 0)
}

// benchPluginTimeout is benchPluginRoot with a VMConfig.CallTimeout (a
// negative one runs without termination checks).
func benchPluginTimeout(b *testing.B, code []byte, instances int, rootID, config string, timeout time.Duration) *wasm.Plugin {
	b.Helper()
	ctx := context.Background()
	lvl := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: zap.NewNop(), LogLevel: &lvl})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	vm, err := rt.VM(ctx, wasm.VMConfig{ID: "bench", Code: code, Instances: instances, CallTimeout: timeout})
	if err != nil {
		b.Fatal(err)
	}
	p, err := vm.NewPlugin(ctx, wasm.PluginConfig{Name: "bench", RootID: rootID, Configuration: []byte(config)})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func readFile(b *testing.B, path string) []byte {
	b.Helper()
	code, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return code
}

// BenchmarkHostCall measures one host call from inside a callback: each op
// is one callback making hostCallsPerCallback calls; ns/hostcall is the
// op's time divided by that count (the callback's own cost, measured by
// BenchmarkCallback, is spread over the calls).
func BenchmarkHostCall(b *testing.B) {
	code := readFile(b, filepath.Join("testdata", "harness", "hostloop.wasm"))
	cases := []struct {
		name string
		call func(s *wasm.HTTPStream, h *wasm.Headers) wasm.Action
	}{
		// Finds ":path" and copies its value into guest memory (a nested
		// call to the guest's malloc).
		{"get_header_map_value", func(s *wasm.HTTPStream, h *wasm.Headers) wasm.Action {
			return s.OnRequestHeaders(h, false)
		}},
		// Writes one u32: the host call's fixed cost.
		{"get_header_map_size", func(s *wasm.HTTPStream, _ *wasm.Headers) wasm.Action {
			_, a := s.OnRequestBody(nil, false)
			return a
		}},
		// proxy_log at TRACE with the host at INFO: dropped.
		{"log_disabled", func(s *wasm.HTTPStream, h *wasm.Headers) wasm.Action {
			return s.OnResponseHeaders(h, false)
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			p := benchPlugin(b, code, 1, itoa(hostCallsPerCallback))
			s := p.NewHTTPStream(wasm.StreamOptions{})
			defer s.Close()
			h := requestHeaders()
			if a := tc.call(s, h); a != wasm.ActionContinue || s.Failure() != nil {
				b.Fatalf("action %d failure %v", a, s.Failure())
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				tc.call(s, h)
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/hostCallsPerCallback, "ns/hostcall")
		})
	}
}

// BenchmarkCallback is one callback that makes no host call: the fixed
// cost of entering the guest.
func BenchmarkCallback(b *testing.B) {
	code := readFile(b, filepath.Join("testdata", "harness", "hostloop.wasm"))
	p := benchPlugin(b, code, 1, "0")
	s := p.NewHTTPStream(wasm.StreamOptions{})
	defer s.Close()
	h := requestHeaders()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.OnRequestHeaders(h, false)
	}
}

func requestHeaders() *wasm.Headers {
	return wasm.NewHeaders(":method", "GET", ":path", "/api/v1/items?id=42", ":authority", "example.com",
		":scheme", "https", "user-agent", "bench/1.0", "accept", "*/*", "x-request-id", "3f1c2a")
}

// BenchmarkRequestResponse is one whole stream through a header-adding
// filter: create, request headers, response headers (the filter adds its
// header), done/log/delete.
func BenchmarkRequestResponse(b *testing.B) {
	filters := []struct {
		name, header, want, rootID, config string
		code                               func(b *testing.B) []byte
	}{
		{"my-filter_C", "x-greeting", "hi", "", `{"my_greeting":"hi"}`, func(b *testing.B) []byte {
			return readFile(b, myFilterPath)
		}},
		// The SDK picks its root context factory by root id.
		{"asfilter_AssemblyScript", "x-as-filter", "hi", "as_filter", "hi", buildASFilter},
	}
	for _, f := range filters {
		run := func(b *testing.B, p *wasm.Plugin) {
			s := p.NewHTTPStream(wasm.StreamOptions{})
			s.OnRequestHeaders(requestHeaders(), true)
			rh := wasm.NewHeaders(":status", "200", "content-type", "application/json", "content-length", "42")
			s.OnResponseHeaders(rh, true)
			s.Close()
			if v, _ := rh.Get(f.header); v != f.want {
				b.Fatalf("%s = %q (failure %v)", f.header, v, s.Failure())
			}
		}
		b.Run(f.name, func(b *testing.B) {
			p := benchPluginRoot(b, f.code(b), 1, f.rootID, f.config)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run(b, p)
			}
		})
		// Without termination checks (VMConfig.CallTimeout < 0), as Envoy
		// runs filters: what the deadline costs.
		b.Run(f.name+"_no_deadline", func(b *testing.B) {
			p := benchPluginTimeout(b, f.code(b), 1, f.rootID, f.config, -1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run(b, p)
			}
		})
		b.Run(f.name+"_parallel", func(b *testing.B) {
			p := benchPluginRoot(b, f.code(b), 4, f.rootID, f.config)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					run(b, p)
				}
			})
		})
	}
}

// buildASFilter builds the AssemblyScript filter with its build.sh; the
// benchmark fails when node/npm (scripts/deps.sh) are missing or the build
// fails.
func buildASFilter(b *testing.B) []byte {
	b.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("AssemblyScript filter not built: %s not in PATH (testdata/asfilter/build.sh needs node and npm)", tool)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join("testdata", "asfilter", "build.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("AssemblyScript filter not built: testdata/asfilter/build.sh: %v\n%s", err, stderr.String())
	}
	return readFile(b, strings.TrimSpace(stdout.String()))
}

// BenchmarkASFilterStream is one HTTP/1.1 GET through the AssemblyScript
// filter as filterchain/wasmfilter drives it: context create, request
// headers (end of stream), response headers (a body follows), log,
// done/delete. ns/op is the host's CPU per proxied request for this filter.
func BenchmarkASFilterStream(b *testing.B) {
	code := buildASFilter(b)
	for _, c := range []struct {
		name    string
		timeout time.Duration
	}{{"deadline", 0}, {"no_deadline", -1}} {
		b.Run(c.name, func(b *testing.B) {
			p := benchPluginTimeout(b, code, 1, "as_filter", "bench", c.timeout)
			req := requestHeaders()
			resp := wasm.NewHeaders(":status", "200", "content-type", "application/json", "content-length", "42")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := p.NewHTTPStream(wasm.StreamOptions{})
				s.OnRequestHeaders(req, true)
				s.OnResponseHeaders(resp, false)
				s.Log()
				s.Close()
				if s.Failure() != nil {
					b.Fatal(s.Failure())
				}
				// What the filter added, so every op sees the same maps.
				req.Del("x-as-request")
				resp.Del("x-as-filter")
			}
		})
	}
}
