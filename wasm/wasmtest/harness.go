package wasmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wasmesh/wasmesh/wasm"
)

// Options configure a Harness. Only Code or Path is required.
type Options struct {
	// Code is the module's bytes; Path is read when Code is empty.
	Code []byte
	Path string

	// Runtime is the base for the harness's runtime options. Logger and
	// LogLevel are always replaced by the harness's own; Upstreams by
	// Options.Upstreams when that is set.
	Runtime wasm.Options
	// VM overrides the VM configuration. Code is always the module's;
	// ID defaults to "wasmtest".
	VM wasm.VMConfig
	// Plugin overrides the plugin configuration; Name defaults to
	// "wasmtest".
	Plugin wasm.PluginConfig

	// Instances is how many instances the VM runs when VM.Instances is 0;
	// the default is 1, so streams are deterministic.
	Instances int
	// Upstreams sends the plugin's callouts.
	Upstreams wasm.Upstreams
	// LogLevel is the level below which lines (the host's and the guest's)
	// are dropped and the level proxy_get_log_level reports. The zero value
	// is Info.
	LogLevel zapcore.Level
	// Quiet stops copying log lines to the test's output (t.Log); they are
	// still recorded.
	Quiet bool

	// SkipLeakCheck turns off the goroutine leak check that runs after the
	// harness is closed. Parallel tests in the same package need it: their
	// goroutines are not the harness's leaks.
	SkipLeakCheck bool
	// NoPlugin stops after creating the VM (for tests that start their own
	// plugins on h.VM()).
	NoPlugin bool
}

// Harness is a Runtime, a VM and a Plugin for one test.
type Harness struct {
	t     testing.TB
	opts  Options
	rt    *wasm.Runtime
	vm    *wasm.VM
	p     *wasm.Plugin
	logs  *observer.ObservedLogs
	level zap.AtomicLevel
	code  []byte
	name  string

	closeOnce sync.Once
	leakOpts  []goleak.Option
}

// New starts a harness and fails the test if the module does not load or
// the plugin does not start.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	h, err := Start(t, opts)
	if err != nil {
		t.Fatalf("wasmtest: %v", err)
	}
	return h
}

// Start is New that returns the error instead of failing the test. The
// harness is never nil: its Runtime and Logs work even when loading the
// module or starting the plugin failed (then VM or Plugin is nil).
func Start(t testing.TB, opts Options) (*Harness, error) {
	t.Helper()
	h := &Harness{t: t, opts: opts}
	if !opts.SkipLeakCheck {
		h.leakOpts = []goleak.Option{goleak.IgnoreCurrent()}
	}
	code := opts.Code
	if len(code) == 0 && opts.Path != "" {
		b, err := os.ReadFile(opts.Path)
		if err != nil {
			t.Fatalf("wasmtest: %v", err)
		}
		code = b
	}
	h.code = code

	h.level = zap.NewAtomicLevelAt(opts.LogLevel)
	core, logs := observer.New(h.level)
	h.logs = logs
	if !opts.Quiet {
		core = zapcore.NewTee(core, zaptest.NewLogger(t, zaptest.Level(h.level)).Core())
	}
	ropts := opts.Runtime
	ropts.Logger = zap.New(core)
	ropts.LogLevel = &h.level
	if opts.Upstreams != nil {
		ropts.Upstreams = opts.Upstreams
	}
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, ropts)
	if err != nil {
		t.Fatalf("wasmtest: runtime: %v", err)
	}
	h.rt = rt
	t.Cleanup(h.Close)

	vcfg := opts.VM
	vcfg.Code = code
	if vcfg.ID == "" {
		vcfg.ID = "wasmtest"
	}
	if vcfg.Instances == 0 {
		vcfg.Instances = opts.Instances
		if vcfg.Instances == 0 {
			vcfg.Instances = 1
		}
	}
	vm, err := rt.VM(ctx, vcfg)
	if err != nil {
		return h, err
	}
	h.vm = vm
	if opts.NoPlugin {
		return h, nil
	}
	pcfg := opts.Plugin
	if pcfg.Name == "" {
		pcfg.Name = "wasmtest"
	}
	h.name = pcfg.Name
	p, err := vm.NewPlugin(ctx, pcfg)
	if err != nil {
		return h, err
	}
	h.p = p
	return h, nil
}

// Close closes the plugin, the VM and the runtime, then (unless
// SkipLeakCheck) fails the test if a goroutine started since New is still
// running. It runs at the end of the test by itself; calling it earlier is
// allowed and the later call does nothing.
func (h *Harness) Close() {
	h.closeOnce.Do(func() {
		ctx := context.Background()
		if h.p != nil {
			h.p.Close(ctx)
		}
		if h.vm != nil {
			h.vm.Close(ctx)
		}
		if err := h.rt.Close(ctx); err != nil {
			h.t.Errorf("wasmtest: close runtime: %v", err)
		}
		if h.leakOpts != nil {
			if err := goleak.Find(h.leakOpts...); err != nil {
				h.t.Errorf("wasmtest: goroutines leaked: %v", err)
			}
		}
	})
}

// T is the test the harness belongs to.
func (h *Harness) T() testing.TB { return h.t }

// Runtime is the harness's runtime.
func (h *Harness) Runtime() *wasm.Runtime { return h.rt }

// VM is the harness's VM (nil if it failed to load).
func (h *Harness) VM() *wasm.VM { return h.vm }

// Plugin is the harness's plugin (nil if it failed to start).
func (h *Harness) Plugin() *wasm.Plugin { return h.p }

// Code is the module's bytes.
func (h *Harness) Code() []byte { return h.code }

// Failures are the runtime's contained-failure counters.
func (h *Harness) Failures() *wasm.FailureCounters { return h.rt.Failures() }

// Failure is the count of one failure kind.
func (h *Harness) Failure(k wasm.FailureKind) uint64 { return h.rt.Failures().Get(k) }

// Metrics is the runtime's metric registry.
func (h *Harness) Metrics() *wasm.MetricRegistry { return h.rt.Metrics() }

// Metric returns a plugin-defined metric by name and type.
func (h *Harness) Metric(name string, typ wasm.MetricType) (wasm.MetricSnapshot, bool) {
	return h.rt.Metrics().Lookup(name, typ)
}

// SharedData returns a value from the shared data of the harness's vm_id.
func (h *Harness) SharedData(key string) (value []byte, cas uint32, ok bool) {
	return h.rt.SharedData().Get(h.vmID(), key)
}

// SetSharedData stores a value in the shared data of the harness's vm_id
// (cas 0: unconditionally).
func (h *Harness) SetSharedData(key string, value []byte, cas uint32) wasm.Status {
	return h.rt.SharedData().Set(h.vmID(), key, value, cas)
}

func (h *Harness) vmID() string {
	if h.vm != nil {
		return h.vm.ID()
	}
	if h.opts.VM.ID != "" {
		return h.opts.VM.ID
	}
	return "wasmtest"
}

// SetLogLevel changes the level below which lines are dropped (and what
// proxy_get_log_level reports) while the test runs.
func (h *Harness) SetLogLevel(l zapcore.Level) { h.level.SetLevel(l) }

// WaitLiveInstances waits until the VM has n live instances and reports
// whether it got there before the timeout.
func (h *Harness) WaitLiveInstances(n int, timeout time.Duration) bool {
	return poll(timeout, func() bool { return h.vm != nil && h.vm.LiveInstances() == n })
}

// MustLiveInstances is WaitLiveInstances that fails the test on timeout.
func (h *Harness) MustLiveInstances(n int, timeout time.Duration) {
	h.t.Helper()
	if !h.WaitLiveInstances(n, timeout) {
		got := -1
		if h.vm != nil {
			got = h.vm.LiveInstances()
		}
		h.t.Fatalf("wasmtest: %d live instances after %v, want %d", got, timeout, n)
	}
}

// NewPlugin starts another plugin on the harness's VM, closed at the end
// of the test.
func (h *Harness) NewPlugin(cfg wasm.PluginConfig) (*wasm.Plugin, error) {
	if h.vm == nil {
		return nil, errors.New("wasmtest: no VM")
	}
	p, err := h.vm.NewPlugin(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	h.t.Cleanup(func() { p.Close(context.Background()) })
	return p, nil
}

// poll calls cond every millisecond or so until it returns true or timeout
// passes, and reports the last result.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Microsecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(wait)
		if wait < 5*time.Millisecond {
			wait *= 2
		}
	}
}

func (h *Harness) plugin() (*wasm.Plugin, error) {
	if h.p == nil {
		return nil, fmt.Errorf("wasmtest: no plugin started")
	}
	return h.p, nil
}
