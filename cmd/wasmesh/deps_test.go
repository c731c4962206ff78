package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildTags are the tags the Makefile and bench/run.sh build the proxy with.
const buildTags = "grpcnotrace"

// TestBinaryDependencies guards the proxy's idle memory: most of its RSS is
// the binary's pages touched at start-up (every linked generated protobuf
// package runs an init per file), so the packages below, dropped on
// purpose, must not come back unnoticed. See docs/architecture.md, "Memory".
func TestBinaryDependencies(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to list the dependencies with")
		}
	}
	cmd := exec.Command(goBin, "list", "-deps", "-tags", buildTags, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["github.com/wasmesh/wasmesh/server"] {
		t.Fatalf("go list output does not look like the proxy's dependencies:\n%s", out)
	}
	dropped := []struct{ pkg, why string }{
		// gRPC's request tracing, left out by the grpcnotrace tag. It imports
		// html/template, whose reflect.Value.Method use makes the linker keep
		// every exported method of every reachable type (about 4 MB here).
		{"golang.org/x/net/trace", "gRPC tracing (build with -tags grpcnotrace)"},
		{"html/template", "reflection on methods keeps every exported method in the binary"},
		{"text/template", "reflection on methods keeps every exported method in the binary"},
		// Envoy extensions wasmesh does not implement (xds/bootstrap/types.go).
		{"github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dynamic_forward_proxy/v3", "unimplemented extension"},
		{"github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3", "unimplemented extension"},
		{"github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3", "unimplemented extension"},
		{"github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3", "unimplemented extension"},
		{"github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3", "unimplemented extension"},
		{"github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3", "unimplemented extension"},
		// envoy/service/runtime/v3 is linked again: go-control-plane's
		// snapshot cache (the Kong control plane, kong/hybrid.go) imports
		// every discovery service.
		// Profiling endpoints are not part of the proxy binary.
		{"net/http/pprof", "profiling belongs to bench/cmd/wasmesh-prof"},
	}
	for _, d := range dropped {
		if deps[d.pkg] {
			t.Errorf("cmd/wasmesh links %s (%s); find the importer with `go list -deps -tags %s -f '{{.ImportPath}}: {{.Imports}}' ./cmd/wasmesh`", d.pkg, d.why, buildTags)
		}
	}
}

// TestBuildLinesUseTheTags checks that the Makefile, bench/run.sh and the
// Dockerfile build
// the proxy the way TestBinaryDependencies lists it.
func TestBuildLinesUseTheTags(t *testing.T) {
	for _, f := range []string{"../../Makefile", "../../bench/run.sh", "../../Dockerfile"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, want := range []string{"-tags " + buildTags, "CGO_ENABLED=0", "-trimpath"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s does not build the proxy with %q", f, want)
			}
		}
	}
}
