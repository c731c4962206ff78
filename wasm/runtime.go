package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure a Runtime. The zero value works: a no-op logger, the
// system clock, an in-memory compilation cache and no upstreams.
type Options struct {
	// Logger receives host logs and guest log lines (component "wasm").
	Logger *zap.Logger
	// LogLevel, when set, is the level proxy_get_log_level reports and
	// below which guest log lines are dropped. Defaults to the logger's.
	LogLevel *zap.AtomicLevel
	// CacheDir keeps wazero's compiled code on disk so a restart does not
	// recompile. Empty means in memory.
	CacheDir string
	// Upstreams sends HTTP and gRPC callouts. Nil fails every callout with
	// BAD_ARGUMENT (unknown cluster).
	Upstreams Upstreams
	// Now is the clock for proxy_get_current_time_nanoseconds and WASI's
	// realtime clock. Defaults to time.Now.
	Now func() time.Time
	// Metrics receives the plugin-defined metrics; defaults to a new
	// registry (see Runtime.Metrics).
	Metrics *MetricRegistry
	// Interpreter forces wazero's interpreter instead of its compiler.
	Interpreter bool
}

// Runtime is the process-wide Proxy-Wasm host: wazero runtimes, the module
// cache, shared data, shared queues, metrics and the watchdog that enforces
// callback deadlines. Create one per process.
type Runtime struct {
	opts     Options
	log      *zap.Logger
	cache    wazero.CompilationCache
	provided map[string]hostFunc

	mu      sync.Mutex
	engines map[engineKey]*engine
	vms     map[string]*VM // keyed by vm_id + code sha256
	closed  bool

	shared   *sharedData
	queues   *queueRegistry
	metrics  *MetricRegistry
	failures *FailureCounters

	watch *watchdog

	// monoEpoch anchors WASI's monotonic clock (wasi.go).
	monoEpoch time.Time
}

// engine is one wazero runtime with the host modules linked; modules are
// compiled per engine because a wazero memory limit is per runtime.
type engine struct {
	rt      wazero.Runtime
	modules map[string]*Module // by sha256
	mu      sync.Mutex
}

// NewRuntime creates the host.
func NewRuntime(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetricRegistry()
	}
	var cache wazero.CompilationCache
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache %s: %w", opts.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	r := &Runtime{
		opts:     opts,
		log:      opts.Logger.With(zap.String("component", "wasm")),
		cache:    cache,
		provided: map[string]hostFunc{},
		engines:  map[engineKey]*engine{},
		vms:      map[string]*VM{},
		shared:   newSharedData(),
		metrics:  opts.Metrics,
		failures: &FailureCounters{},
	}
	r.queues = newQueueRegistry()
	for _, f := range allHostFuncs() {
		r.provided[f.module+"."+f.name] = f
	}
	r.watch = newWatchdog()
	r.monoEpoch = time.Now()
	return r, nil
}

// Metrics is the registry holding every plugin-defined metric.
func (r *Runtime) Metrics() *MetricRegistry { return r.metrics }

// Failures counts contained instance failures by kind.
func (r *Runtime) Failures() *FailureCounters { return r.failures }

// SharedData gives access to the host-wide key-value store (for tests and
// the admin API).
func (r *Runtime) SharedData() *sharedData { return r.shared }

// Close stops every VM and releases compiled code.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	vms := make([]*VM, 0, len(r.vms))
	for _, vm := range r.vms {
		vms = append(vms, vm)
	}
	engines := r.engines
	r.engines = map[engineKey]*engine{}
	r.mu.Unlock()

	for _, vm := range vms {
		vm.shutdown(ctx)
	}
	r.watch.stop()
	var errs []error
	for _, e := range engines {
		errs = append(errs, e.rt.Close(ctx))
	}
	errs = append(errs, r.cache.Close(ctx))
	return errors.Join(errs...)
}

// engineKey selects a wazero runtime: the memory limit is per runtime, and
// so is compiling in termination checks (what callback deadlines need).
type engineKey struct {
	pages     uint32
	unbounded bool
}

// engineFor returns the wazero runtime for a memory page limit, creating it
// and linking the host modules on first use. unbounded engines compile no
// wazero termination checks: they run modules with no deadline and modules
// carrying the host's own loop checks (instrument.go).
func (r *Runtime) engineFor(ctx context.Context, pages uint32, unbounded bool) (*engine, error) {
	key := engineKey{pages: pages, unbounded: unbounded}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("wasm: runtime closed")
	}
	if e, ok := r.engines[key]; ok {
		return e, nil
	}
	cfg := wazero.NewRuntimeConfig()
	if r.opts.Interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	cfg = cfg.WithCompilationCache(r.cache).
		WithCloseOnContextDone(!unbounded).
		WithMemoryLimitPages(pages).
		WithCoreFeatures(api.CoreFeaturesV2)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if err := r.linkHostModules(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	e := &engine{rt: rt, modules: map[string]*Module{}}
	r.engines[key] = e
	return e, nil
}

// linkHostModules instantiates "env", "wasi_snapshot_preview1" and
// "wasi_unstable" in rt with every host function.
func (r *Runtime) linkHostModules(ctx context.Context, rt wazero.Runtime) error {
	byModule := map[string][]hostFunc{}
	for _, f := range r.provided {
		byModule[f.module] = append(byModule[f.module], f)
	}
	for mod, funcs := range byModule {
		b := rt.NewHostModuleBuilder(mod)
		for _, f := range funcs {
			f := f
			b.NewFunctionBuilder().
				WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
					inst := instanceFrom(ctx)
					if inst == nil {
						// Not called through the host (cannot happen for
						// modules the host instantiates): refuse.
						if len(f.results) > 0 {
							stack[0] = uint64(StatusInternalFailure)
						}
						return
					}
					if inst.mod == nil {
						// A start section runs before InstantiateModule returns.
						inst.bindModule(m)
					}
					f.fn(ctx, inst, stack)
				}), f.params, f.results).
				Export(f.name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("wasm: link host module %s: %w", mod, err)
		}
	}
	return nil
}

// Compile compiles code once per memory limit (cached by sha256), detects its
// ABI and checks its imports. The error names what is wrong.
func (r *Runtime) Compile(ctx context.Context, code []byte, memoryLimitPages uint32) (*Module, error) {
	return r.compileOn(ctx, code, memoryLimitPages, false)
}

func (r *Runtime) compileOn(ctx context.Context, code []byte, memoryLimitPages uint32, unbounded bool) (*Module, error) {
	if memoryLimitPages == 0 {
		memoryLimitPages = DefaultMemoryLimitPages
	}
	key := sha256Hex(code)
	if !unbounded && !r.opts.Interpreter {
		// Deadlines through loop checks in the guest's own code
		// (instrument.go) on an engine without wazero's termination
		// checks; a module the rewriter cannot handle keeps wazero's.
		if inst, hadStart, ok := instrumentLoops(code); ok {
			m, err := r.compileIn(ctx, inst, key+"\x00stop", memoryLimitPages, true)
			if err == nil {
				m.SHA256 = key
				m.stopCheck = true
				if hadStart {
					m.startExport = true
					delete(m.exports, startFuncExport)
					delete(m.paramCounts, startFuncExport)
				}
				return m, nil
			}
			r.log.Debug("instrumented module did not compile; using wazero's termination checks", zap.Error(err))
		}
	}
	return r.compileIn(ctx, code, key, memoryLimitPages, unbounded)
}

// compileIn compiles code (whose cache key is key) on the engine for a
// memory limit with (unbounded false) or without wazero's termination
// checks.
func (r *Runtime) compileIn(ctx context.Context, code []byte, key string, memoryLimitPages uint32, unbounded bool) (*Module, error) {
	e, err := r.engineFor(ctx, memoryLimitPages, unbounded)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if m, ok := e.modules[key]; ok {
		return m, nil
	}
	m, err := compile(ctx, e.rt, code, r.provided)
	if err != nil {
		return nil, fmt.Errorf("wasm: module %s: %w", key[:12], err)
	}
	m.engine = e
	e.modules[key] = m
	return m, nil
}

// FailureCounters count contained instance failures by kind.
type FailureCounters struct {
	mu     sync.Mutex
	counts map[FailureKind]uint64
}

// FailureKind names why an instance was discarded.
type FailureKind string

// Failure kinds.
const (
	FailureTrap        FailureKind = "trap"
	FailureTimeout     FailureKind = "timeout"
	FailureMemoryLimit FailureKind = "memory_limit"
	FailureExit        FailureKind = "proc_exit"
	FailureStart       FailureKind = "start"
)

func (c *FailureCounters) add(k FailureKind) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[FailureKind]uint64{}
	}
	c.counts[k]++
	c.mu.Unlock()
}

// Get returns the count for a kind.
func (c *FailureCounters) Get(k FailureKind) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}

// Snapshot returns all counts.
func (c *FailureCounters) Snapshot() map[FailureKind]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[FailureKind]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// levelEnabled reports whether the runtime logs at lvl.
func (r *Runtime) levelEnabled(lvl zapcore.Level) bool {
	if r.opts.LogLevel != nil {
		return r.opts.LogLevel.Enabled(lvl)
	}
	return r.log.Core().Enabled(lvl)
}
