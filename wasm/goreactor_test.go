package wasm

import (
	"context"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// goReactorWasm is built from testdata/goreactor/main.go by its build.sh
// (Go's own toolchain, GOOS=wasip1, -buildmode=c-shared); main.go states the
// contract these tests assert.
const goReactorWasm = "testdata/goreactor/goreactor.wasm"

// TestGoReactor runs a Proxy-Wasm filter built by the Go toolchain as a WASI
// reactor. The module is large (about 3 MB), so the subtests share one
// runtime and wazero compiles it once.
func TestGoReactor(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile(goReactorWasm)
	if err != nil {
		t.Fatal(err)
	}
	core, all := observer.New(zapcore.DebugLevel)
	rt, err := NewRuntime(ctx, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	// startVM starts the reactor as VM cfg.ID; logs returns that VM's log
	// lines so far.
	startVM := func(t *testing.T, cfg VMConfig) (vm *VM, logs func() *observer.ObservedLogs) {
		t.Helper()
		cfg.Code = code
		vm, err := rt.VM(ctx, cfg)
		if err != nil {
			t.Fatalf("start the Go reactor: %v", err)
		}
		t.Cleanup(func() { vm.Close(ctx) })
		return vm, func() *observer.ObservedLogs {
			return all.Filter(func(e observer.LoggedEntry) bool { return wasiLogField(e, "vm_id") == cfg.ID })
		}
	}
	startPlugin := func(t *testing.T, vm *VM, name, config string) *Plugin {
		t.Helper()
		p, err := vm.NewPlugin(ctx, PluginConfig{Name: name, RootID: name + "-root", Configuration: []byte(config)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(ctx) })
		return p
	}

	t.Run("100 streams on 2 instances", func(t *testing.T) {
		const instances, streams = 2, 100
		vm, logs := startVM(t, VMConfig{
			ID:        "goreactor",
			Instances: instances,
			Env:       []Field{{Key: "GOREACTOR_VALUE", Value: "from-env"}, {Key: "OTHER", Value: "x"}},
		})
		if vm.ABI() != ABI021 {
			t.Fatalf("ABI %s, want 0.2.1", vm.ABI())
		}
		if !vm.Module().has("_initialize") || vm.Module().has("_start") {
			t.Fatal("the module is not a reactor (_initialize, no _start)")
		}
		// _initialize ran Go's package init in each instance: its
		// fmt.Println came out as an INFO line through fd_write.
		if got := len(wasiLogLines(logs(), zapcore.InfoLevel, "goreactor: init")); got != instances {
			t.Fatalf("%d init lines, want %d:\n%v", got, instances, logs().All())
		}

		p := startPlugin(t, vm, "go-plugin", "GOREACTOR_VALUE")
		cfgLines := wasiLogLines(logs(), zapcore.InfoLevel, "goreactor: configured with GOREACTOR_VALUE")
		if len(cfgLines) != instances {
			t.Fatalf("%d configure lines, want %d", len(cfgLines), instances)
		}
		if got := wasiLogField(cfgLines[0], "plugin"); got != "go-plugin" {
			t.Fatalf("configure line names plugin %q", got)
		}

		before := time.Now().Add(-time.Second)
		var wg sync.WaitGroup
		var mu sync.Mutex
		used := map[int]int{}
		randoms := map[string]bool{}
		errs := make(chan string, 4*streams)
		for n := 0; n < streams; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := p.NewHTTPStream(StreamOptions{})
				defer s.Close()
				h := NewHeaders(":method", "GET", ":path", "/")
				if a := s.OnRequestHeaders(h, true); a != ActionContinue {
					errs <- "action " + strconv.Itoa(int(a)) + ": " + wasiErrString(s.Failure())
					return
				}
				if v, _ := h.Get("x-go-reactor"); v != "from-env" {
					errs <- "x-go-reactor=" + v
				}
				ts, _ := h.Get("x-go-time")
				if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || tm.Before(before) || tm.After(time.Now().Add(time.Second)) {
					errs <- "x-go-time=" + ts
				}
				r, _ := h.Get("x-go-random")
				if b, err := hex.DecodeString(r); err != nil || len(b) != 8 {
					errs <- "x-go-random=" + r
				}
				mu.Lock()
				used[s.inst.slot]++
				randoms[r] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if len(used) != instances {
			t.Errorf("streams ran on instances %v, want all %d", used, instances)
		}
		if len(randoms) < streams-1 {
			t.Errorf("only %d distinct x-go-random values in %d streams", len(randoms), streams)
		}
		reqLines := wasiLogLines(logs(), zapcore.InfoLevel, "goreactor: request ")
		if len(reqLines) != streams {
			t.Fatalf("%d request lines from fmt.Println, want %d", len(reqLines), streams)
		}
		for _, e := range reqLines {
			if wasiLogField(e, "plugin") != "go-plugin" {
				t.Fatalf("stdout line without the plugin: %+v", e)
			}
		}
		if errs := logs().FilterLevelExact(zapcore.ErrorLevel).All(); len(errs) != 0 {
			t.Fatalf("%d error lines: %v", len(errs), errs)
		}
	})

	t.Run("unset variable", func(t *testing.T) {
		vm, _ := startVM(t, VMConfig{ID: "goreactor-noenv", Instances: 1})
		p := startPlugin(t, vm, "go-noenv", "NOT_SET")
		s := p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		h := NewHeaders(":path", "/")
		if a := s.OnRequestHeaders(h, true); a != ActionContinue {
			t.Fatalf("action %d: %v", a, s.Failure())
		}
		if v, _ := h.Get("x-go-reactor"); v != "none" {
			t.Fatalf("x-go-reactor=%q, want none", v)
		}
	})

	// time.Sleep in a callback reaches poll_oneoff with a clock
	// subscription and the host sleeps for real. A sleep past the callback
	// deadline ends as a timeout, on time, and the next stream runs on a
	// fresh instance.
	t.Run("time.Sleep", func(t *testing.T) {
		const deadline = 300 * time.Millisecond
		vm, _ := startVM(t, VMConfig{ID: "goreactor-sleep", Instances: 1, CallTimeout: deadline})
		p := startPlugin(t, vm, "go-sleep", "X")
		sleep := func(ms string) (*HTTPStream, *Headers, Action, time.Duration) {
			s := p.NewHTTPStream(StreamOptions{})
			h := NewHeaders(":path", "/", "x-go-sleep-ms", ms)
			start := time.Now()
			a := s.OnRequestHeaders(h, true)
			return s, h, a, time.Since(start)
		}

		s, h, a, took := sleep("40")
		s.Close()
		if a != ActionContinue {
			t.Fatalf("action %d: %v", a, s.Failure())
		}
		slept, _ := h.Get("x-go-slept-ms")
		if n, err := strconv.Atoi(slept); err != nil || n < 40 {
			t.Fatalf("x-go-slept-ms=%q, want >= 40", slept)
		}
		if took < 40*time.Millisecond {
			t.Fatalf("callback took %v for a 40ms sleep", took)
		}

		before := rt.Failures().Get(FailureTimeout)
		s, _, a, took = sleep("60000")
		s.Close()
		if a != ActionPause || s.LocalResponse() == nil || s.LocalResponse().StatusCode != 503 {
			t.Fatalf("a sleep past the deadline: action %d, local %+v", a, s.LocalResponse())
		}
		if took > deadline+2*time.Second {
			t.Fatalf("a sleep past the %v deadline returned after %v", deadline, took)
		}
		if got := rt.Failures().Get(FailureTimeout) - before; got != 1 {
			t.Fatalf("timeouts %d, want 1 (%v)", got, rt.Failures().Snapshot())
		}

		wasiWaitFor(t, 10*time.Second, func() bool { return vm.LiveInstances() == 1 })
		s, h, a, _ = sleep("1")
		s.Close()
		if a != ActionContinue {
			t.Fatalf("after the timeout: action %d: %v", a, s.Failure())
		}
		if _, ok := h.Get("x-go-reactor"); !ok {
			t.Fatal("no x-go-reactor after the replacement")
		}
	})
}

// wasiLogLines returns the entries logged at lvl whose message starts with
// prefix.
func wasiLogLines(logs *observer.ObservedLogs, lvl zapcore.Level, prefix string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Level == lvl && strings.HasPrefix(e.Message, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// wasiLogField returns a string field of a log entry.
func wasiLogField(e observer.LoggedEntry, key string) string {
	for _, f := range e.Context {
		if f.Key == key {
			return f.String
		}
	}
	return ""
}

func wasiErrString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// wasiWaitFor polls cond until it holds or the timeout passes.
func wasiWaitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
