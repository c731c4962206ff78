package wasm_test

import (
	"context"
	"os"
	"testing"

	"github.com/wasmesh/wasmesh/wasm"
)

// A VM with CallTimeout < 0 runs without termination checks (a separate
// wazero runtime) and behaves the same for a well-behaved filter; a VM with
// the same code and a deadline is a different VM.
func TestVMWithoutDeadline(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile(myFilterPath)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.NewRuntime(ctx, wasm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	fast, err := rt.VM(ctx, wasm.VMConfig{ID: "g", Code: code, Instances: 1, CallTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close(ctx)
	bounded, err := rt.VM(ctx, wasm.VMConfig{ID: "g", Code: code, Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer bounded.Close(ctx)
	if fast == bounded {
		t.Fatal("a VM without deadline was shared with one that has a deadline")
	}
	for _, vm := range []*wasm.VM{fast, bounded} {
		p, err := vm.NewPlugin(ctx, wasm.PluginConfig{Name: "g", Configuration: []byte(`{"my_greeting":"fast"}`)})
		if err != nil {
			t.Fatal(err)
		}
		s := p.NewHTTPStream(wasm.StreamOptions{})
		s.OnRequestHeaders(wasm.NewHeaders(":path", "/"), true)
		rh := wasm.NewHeaders(":status", "200")
		s.OnResponseHeaders(rh, true)
		s.Close()
		if v, _ := rh.Get("x-greeting"); v != "fast" {
			t.Fatalf("x-greeting = %q", v)
		}
		p.Close(ctx)
	}
}
