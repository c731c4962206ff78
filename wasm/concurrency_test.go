package wasm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

var myFilterPath = filepath.Join("..", "examples", "filters", "my-filter", "my-filter.wasm")

// TestConcurrentStreams runs 200 goroutines x 1000 streams on one plugin
// with 4 instances (about 2 s on two cores, 13 s under -race): each stream
// runs request headers, response headers and close, and every response
// must carry the greeting. After the runtime is closed no goroutine is
// left.
func TestConcurrentStreams(t *testing.T) {
	const goroutines, streamsPerGoroutine = 200, 1000
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	code, err := os.ReadFile(myFilterPath)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := rt.VM(ctx, wasm.VMConfig{ID: "concurrency", Code: code, Instances: 4})
	if err != nil {
		t.Fatal(err)
	}
	p, err := vm.NewPlugin(ctx, wasm.PluginConfig{Name: "greeter", Configuration: []byte(`{"my_greeting":"hello"}`)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var bad atomic.Int64
	var firstErr atomic.Pointer[string]
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < streamsPerGoroutine; i++ {
				s := p.NewHTTPStream(wasm.StreamOptions{})
				a1 := s.OnRequestHeaders(wasm.NewHeaders(":method", "GET", ":path", "/", ":authority", "x"), true)
				rh := wasm.NewHeaders(":status", "200", "content-type", "text/plain")
				a2 := s.OnResponseHeaders(rh, true)
				s.Close()
				if v, _ := rh.Get("x-greeting"); v != "hello" || a1 != wasm.ActionContinue || a2 != wasm.ActionContinue {
					if bad.Add(1) == 1 {
						msg := fmt.Sprintf("actions %d %d, failure %v, response %s", a1, a2, s.Failure(), rh)
						firstErr.Store(&msg)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := goroutines * streamsPerGoroutine
	t.Logf("%d streams in %v (%v per stream, %d instances, 2 callbacks + create + done each)",
		total, elapsed, elapsed/time.Duration(total), 4)
	if n := bad.Load(); n != 0 {
		t.Errorf("%d of %d streams went wrong; first: %s", n, total, *firstErr.Load())
	}
	if f := rt.Failures().Snapshot(); len(f) != 0 {
		t.Errorf("failures counted: %v", f)
	}
	if live := vm.LiveInstances(); live != 4 {
		t.Errorf("%d live instances after the run, want 4", live)
	}
	p.Close(ctx)
	vm.Close(ctx)
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, ignore)
}

// TestConcurrentStreamsWhileInstancesDie: normal streams keep being served
// on a VM whose instances a trapping stream kills again and again. A
// normal stream may get its failure policy when the instance it is pinned
// to dies under it (or none is live), but it never hangs, never sees a
// half-run filter and, once the trapping stops, every stream succeeds on
// a full set of fresh instances.
func TestConcurrentStreamsWhileInstancesDie(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:      ctlPath,
		Instances: 4,
		Plugin:    wasm.PluginConfig{Name: "ctl"},
		Quiet:     true,
	})
	const workers = 8
	var served, answered atomic.Int64
	var wrong atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := h.Run(wasmtest.Exchange{})
				switch {
				case r.Failure == nil && r.Request.Header("x-ctl") == "ok" && r.Response.Header("x-ctl-resp") == "ok":
					served.Add(1)
				case r.Failure != nil && r.Local != nil && r.Local.StatusCode == 503:
					answered.Add(1)
				default:
					msg := fmt.Sprintf("failure %v local %+v request %s response %s",
						r.Failure, r.Local, r.Request.Headers, r.Response.Headers)
					wrong.CompareAndSwap(nil, &msg)
				}
			}
		}()
	}
	traps := 0
	for i := 0; i < 40; i++ {
		r := h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-trap", "1"}})
		if r.Local == nil || r.Local.StatusCode != 503 {
			t.Errorf("trapping stream not answered with 503: %+v", r.Local)
		}
		traps++
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if m := wrong.Load(); m != nil {
		t.Fatalf("a stream went wrong while instances died: %s", *m)
	}
	t.Logf("%d trapping streams; %d normal streams served, %d answered by the failure policy; counters %s",
		traps, served.Load(), answered.Load(), failureCounts(h))
	if served.Load() == 0 {
		t.Fatal("no stream was served while instances died")
	}
	if n := h.Failure(wasm.FailureTrap); n == 0 || n > uint64(traps) {
		t.Fatalf("trap counter %d for %d trapping streams", n, traps)
	}
	h.MustLiveInstances(4, replaceTimeout)
	for i := 0; i < 20; i++ {
		if r := h.Run(wasmtest.Exchange{}); r.Failure != nil || r.Response.Header("x-ctl-resp") != "ok" {
			t.Fatalf("stream after recovery: %v", r.Failure)
		}
	}
}
