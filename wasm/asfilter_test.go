package wasm

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

// buildASFilter builds testdata/asfilter with its build.sh and returns the
// module. npm comes from scripts/deps.sh (make test): without it the
// test fails rather than pass unrun.
func buildASFilter(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: cannot build the AssemblyScript filter (testdata/asfilter/build.sh); scripts/deps.sh installs it")
	}
	var stderr strings.Builder
	cmd := exec.Command("testdata/asfilter/build.sh")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/asfilter/build.sh: %v\n%s", err, stderr.String())
	}
	code, err := os.ReadFile(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestASFilterEndToEnd runs the AssemblyScript SDK filter: the SDK asks for
// plugin_root_id while creating its root context and aborts unless the host
// answers OK.
func TestASFilterEndToEnd(t *testing.T) {
	code := buildASFilter(t)
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	vm, err := rt.VM(ctx, VMConfig{ID: "as", Code: code, Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(ctx)
	if vm.ABI() != ABI020 {
		t.Fatalf("ABI %s, want 0.2.0", vm.ABI())
	}
	for _, c := range []struct {
		name, rootID, config, want string
	}{
		{"named root", "as_filter", "hello from config", "hello from config"},
		{"empty root id", "", "", "as-default"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := vm.NewPlugin(ctx, PluginConfig{Name: "as-" + c.name, RootID: c.rootID, Configuration: []byte(c.config)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			for n := 0; n < 4; n++ { // both instances
				s := p.NewHTTPStream(StreamOptions{})
				req := NewHeaders(":method", "GET", ":path", "/")
				if a := s.OnRequestHeaders(req, true); a != ActionContinue {
					t.Fatalf("request action %d: %v", a, s.Failure())
				}
				if v, _ := req.Get("x-as-request"); v != "1" {
					t.Fatalf("x-as-request = %q", v)
				}
				resp := NewHeaders(":status", "200")
				if a := s.OnResponseHeaders(resp, true); a != ActionContinue {
					t.Fatalf("response action %d: %v", a, s.Failure())
				}
				if v, _ := resp.Get("x-as-filter"); v != c.want {
					t.Fatalf("x-as-filter = %q, want %q", v, c.want)
				}
				s.Close()
			}
		})
	}
	if f := rt.Failures().Snapshot(); len(f) != 0 {
		t.Fatalf("instance failures: %v", f)
	}
}
