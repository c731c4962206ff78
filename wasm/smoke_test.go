package wasm

import (
	"context"
	"os"
	"testing"

	"go.uber.org/zap/zaptest"
)

func TestSmokeMyFilter(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile("../examples/filters/my-filter/my-filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(ctx, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	vm, err := rt.VM(ctx, VMConfig{ID: "v", Code: code, Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(ctx)
	p, err := vm.NewPlugin(ctx, PluginConfig{Name: "my-filter", Configuration: []byte(`{"my_greeting":"hi there"}`)})
	if err != nil {
		t.Fatal(err)
	}
	s := p.NewHTTPStream(StreamOptions{})
	if a := s.OnRequestHeaders(NewHeaders(":path", "/", ":method", "GET"), true); a != ActionContinue {
		t.Fatalf("action %d err %v", a, s.Failure())
	}
	rh := NewHeaders(":status", "200")
	if a := s.OnResponseHeaders(rh, true); a != ActionContinue {
		t.Fatalf("action %d", a)
	}
	if v, _ := rh.Get("x-greeting"); v != "hi there" {
		t.Fatalf("x-greeting=%q headers=%s", v, rh)
	}
	s.Close()
}
