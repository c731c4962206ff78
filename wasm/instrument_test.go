package wasm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap/zaptest"
)

// instrumentCorpus is every committed test module.
func instrumentCorpus(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*", "*.wasm"))
	if err != nil {
		tb.Fatal(err)
	}
	paths = append(paths, filepath.Join("..", "examples", "filters", "my-filter", "my-filter.wasm"),
		filepath.Join("testdata", "asfilter", "build", "filter.wasm"))
	out := map[string][]byte{}
	for _, p := range paths {
		if code, err := os.ReadFile(p); err == nil {
			out[p] = code
		}
	}
	return out
}

// validates reports whether wazero compiles code (with every feature the
// host enables).
func validates(code []byte) error {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, code)
	return err
}

// TestInstrumentLoopsCorpus: every committed module wazero accepts is
// rewritten, and the rewrite is accepted too, with the stop global
// exported and the start section (if any) turned into an export.
func TestInstrumentLoopsCorpus(t *testing.T) {
	for path, code := range instrumentCorpus(t) {
		t.Run(path, func(t *testing.T) {
			if validates(code) != nil {
				t.Skip("not a valid module")
			}
			out, hadStart, ok := instrumentLoops(code)
			if !ok {
				t.Fatal("not instrumented")
			}
			if err := validates(out); err != nil {
				t.Fatalf("instrumented module invalid: %v", err)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			cm, err := rt.CompileModule(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := cm.ExportedFunctions()[startFuncExport]; ok != hadStart {
				t.Errorf("start export %v, had start %v", ok, hadStart)
			}
		})
	}
}

// TestInstrumentLoopsRejects: what the rewriter does not understand is left
// to wazero.
func TestInstrumentLoopsRejects(t *testing.T) {
	for name, code := range map[string][]byte{
		"empty":     nil,
		"bad magic": []byte("\x00asx\x01\x00\x00\x00"),
		"truncated": []byte("\x00asm\x01\x00\x00\x00\x0a\x05\x01"),
		// One body: no locals, then the unknown opcode 0x06 (try).
		"unknown opcode": []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x06\x01\x04\x00\x06\x40\x0b"),
	} {
		if _, _, ok := instrumentLoops(code); ok {
			t.Errorf("%s: instrumented", name)
		}
	}
}

// TestInstrumentStartLoopStopped: a start section that never returns is
// stopped by the start deadline.
func TestInstrumentStartLoopStopped(t *testing.T) {
	code, err := os.ReadFile(filepath.Join("testdata", "deadline", "start_loop.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	start := time.Now()
	vm, err := rt.VM(ctx, VMConfig{ID: "start-loop", Code: code, Instances: 1, StartTimeout: 100 * time.Millisecond})
	if err == nil {
		vm.Close(ctx)
		t.Fatal("VM started")
	}
	var f *InstanceFailure
	if !errors.As(err, &f) || f.Kind != FailureTimeout {
		t.Fatalf("error %v, want a timeout failure", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopped after %v", d)
	}
}

// FuzzInstrumentLoops: the rewriter never panics, and what it produces from
// a module wazero accepts is accepted too.
func FuzzInstrumentLoops(f *testing.F) {
	for _, code := range instrumentCorpus(f) {
		if len(code) < 64<<10 {
			f.Add(code)
		}
	}
	f.Fuzz(func(t *testing.T, code []byte) {
		out, _, ok := instrumentLoops(code)
		if !ok || validates(code) != nil {
			return
		}
		if err := validates(out); err != nil {
			t.Fatalf("instrumented module invalid: %v", err)
		}
	})
}
