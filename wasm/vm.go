package wasm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for VMConfig.
const (
	DefaultMemoryLimitPages = 1024 // 64 MiB
	DefaultCallTimeout      = time.Second
	DefaultStartTimeout     = 30 * time.Second
	replaceBackoffMin       = 50 * time.Millisecond
	replaceBackoffMax       = 30 * time.Second
)

// VMConfig describes a VM: Envoy's vm_config.
type VMConfig struct {
	// ID is the vm_id; plugins with the same ID and code share a VM.
	ID string
	// Code is the module's bytes.
	Code []byte
	// Configuration is the VM configuration, read in proxy_on_vm_start.
	Configuration []byte
	// Env is the guest's environment (environ_get), in order.
	Env []Field
	// Instances is how many instances run the module (each with its own
	// memory); 0 means the CPU count.
	Instances int
	// MemoryLimitPages caps each instance's linear memory (64 KiB pages);
	// 0 means DefaultMemoryLimitPages.
	MemoryLimitPages uint32
	// CallTimeout bounds each callback; 0 means DefaultCallTimeout. A
	// negative value means no deadline, as in Envoy: the module runs
	// without any loop check, and a runaway loop then pins its instance
	// (and stalls the process's garbage collector) for good. Deadlines
	// normally cost a few percent: the host adds its own loop checks to the
	// module (instrument.go); only a module the rewriter cannot handle (or
	// the interpreter) gets wazero's termination checks, which start a
	// goroutine per call and leave compiled code at every loop iteration.
	CallTimeout time.Duration
	// StartTimeout bounds start functions, proxy_on_vm_start and
	// proxy_on_configure; 0 means DefaultStartTimeout.
	StartTimeout time.Duration
}

// VM is a module with N instances. Streams are spread over the live
// instances and pinned to one for their life.
type VM struct {
	rt     *Runtime
	cfg    VMConfig
	key    string
	mod    *Module
	engine *engine
	log    *zap.Logger

	next atomic.Uint32

	mu       sync.Mutex
	slots    []*instance
	retries  []slotRetry
	plugins  []*Plugin
	closed   bool
	refs     int
	replacer sync.WaitGroup
}

type slotRetry struct {
	failures int
	timer    *time.Timer
	pending  bool
}

// ErrNoInstance is returned when every instance of a VM is down (failed and
// waiting for its replacement).
var ErrNoInstance = errors.New("wasm: no live instance")

// VM returns the VM for cfg, creating it (and its instances) if no VM with
// the same vm_id and code exists yet. Each call must be matched by a
// VM.Close.
func (r *Runtime) VM(ctx context.Context, cfg VMConfig) (*VM, error) {
	if cfg.Instances <= 0 {
		cfg.Instances = runtime.NumCPU()
	}
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = DefaultMemoryLimitPages
	}
	unbounded := cfg.CallTimeout < 0
	if unbounded {
		cfg.CallTimeout = time.Duration(1<<63 - 1)
	} else if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	key := cfg.ID + "\x00" + sha256Hex(cfg.Code)
	if unbounded {
		key += "\x00unbounded"
	}
	r.mu.Lock()
	if vm, ok := r.vms[key]; ok {
		vm.mu.Lock()
		vm.refs++
		vm.mu.Unlock()
		r.mu.Unlock()
		return vm, nil
	}
	r.mu.Unlock()

	mod, err := r.compileOn(ctx, cfg.Code, cfg.MemoryLimitPages, unbounded)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", cfg.ID, err)
	}
	e := mod.engine
	vm := &VM{
		rt:      r,
		cfg:     cfg,
		key:     key,
		mod:     mod,
		engine:  e,
		log:     r.log.With(zap.String("vm_id", cfg.ID)),
		slots:   make([]*instance, cfg.Instances),
		retries: make([]slotRetry, cfg.Instances),
		refs:    1,
	}
	for s := range vm.slots {
		inst, err := vm.newInstance(ctx, s)
		if err != nil {
			vm.Close(ctx)
			return nil, fmt.Errorf("vm %q: start instance: %w", cfg.ID, err)
		}
		vm.slots[s] = inst
	}
	r.mu.Lock()
	if existing, ok := r.vms[key]; ok {
		// Lost a race with another creator: use theirs.
		r.mu.Unlock()
		vm.Close(ctx)
		existing.mu.Lock()
		existing.refs++
		existing.mu.Unlock()
		return existing, nil
	}
	r.vms[key] = vm
	r.mu.Unlock()
	r.retainVMID(cfg.ID)
	return vm, nil
}

// ID is the vm_id.
func (vm *VM) ID() string { return vm.cfg.ID }

// ABI is the module's ABI version.
func (vm *VM) ABI() ABIVersion { return vm.mod.ABI }

// Module is the compiled module.
func (vm *VM) Module() *Module { return vm.mod }

// LiveInstances counts instances that can take streams.
func (vm *VM) LiveInstances() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	n := 0
	for _, s := range vm.slots {
		if s != nil && !s.dead.Load() {
			n++
		}
	}
	return n
}

// pick returns a live instance, round robin.
func (vm *VM) pick() (*instance, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return nil, errors.New("wasm: vm closed")
	}
	n := len(vm.slots)
	start := int(vm.next.Add(1))
	var busy *instance
	for k := 0; k < n; k++ {
		s := vm.slots[(start+k)%n]
		if s == nil || s.dead.Load() {
			continue
		}
		// Prefer an instance that is not inside a callback, so a stream
		// does not queue behind a long (or runaway) call.
		if !s.busy.Load() {
			return s, nil
		}
		if busy == nil {
			busy = s
		}
	}
	if busy != nil {
		return busy, nil
	}
	return nil, ErrNoInstance
}

// instanceDied is called (with the instance's lock held) when an instance
// failed; it schedules the slot's replacement.
func (vm *VM) instanceDied(i *instance) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed || vm.slots[i.slot] != i {
		return
	}
	vm.slots[i.slot] = nil
	vm.scheduleReplaceLocked(i.slot, 0)
}

// scheduleReplaceLocked starts a replacement for slot after delay.
func (vm *VM) scheduleReplaceLocked(slot int, delay time.Duration) {
	r := &vm.retries[slot]
	if r.pending {
		return
	}
	r.pending = true
	vm.replacer.Add(1)
	r.timer = time.AfterFunc(delay, func() {
		defer vm.replacer.Done()
		vm.replace(slot)
	})
}

// replace builds a fresh instance for slot with every plugin's root context;
// on failure it retries with exponential backoff. Lock order: an instance's
// lock is never taken while holding vm.mu.
func (vm *VM) replace(slot int) {
	ctx := context.Background()
	inst, err := vm.newInstance(ctx, slot)
	var started []*Plugin
	for err == nil {
		vm.mu.Lock()
		closed := vm.closed
		var todo []*Plugin
		for _, p := range vm.plugins {
			if !containsPlugin(started, p) {
				todo = append(todo, p)
			}
		}
		var gone []*Plugin
		for _, p := range started {
			if !containsPlugin(vm.plugins, p) {
				gone = append(gone, p)
			}
		}
		if len(gone) > 0 && !closed {
			// Plugins closed while this instance was starting them: stop
			// their root contexts before publishing (without vm.mu, as
			// stopping calls into the instance).
			vm.mu.Unlock()
			for _, p := range gone {
				inst.stopPlugin(p)
				started = slices.DeleteFunc(started, func(q *Plugin) bool { return q == p })
			}
			continue
		}
		if closed || len(todo) == 0 {
			if !closed {
				// Publish while still holding vm.mu, so no plugin can be
				// added or closed in between.
				vm.retries[slot].pending = false
				vm.retries[slot].failures = 0
				vm.slots[slot] = inst
				vm.mu.Unlock()
				vm.log.Info("wasm instance replaced", zap.Int("instance", slot))
				return
			}
			vm.retries[slot].pending = false
			vm.mu.Unlock()
			inst.close(ctx)
			return
		}
		vm.mu.Unlock()
		for _, p := range todo {
			if err = inst.startPlugin(p); err != nil {
				break
			}
			started = append(started, p)
		}
	}
	if inst != nil {
		inst.close(ctx)
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	r := &vm.retries[slot]
	r.pending = false
	if vm.closed {
		return
	}
	r.failures++
	vm.rt.failures.add(FailureStart)
	backoff := replaceBackoffMin << min(r.failures, 20)
	if backoff > replaceBackoffMax {
		backoff = replaceBackoffMax
	}
	vm.log.Error("wasm instance replacement failed; retrying",
		zap.Int("instance", slot), zap.Duration("backoff", backoff), zap.Error(err))
	vm.scheduleReplaceLocked(slot, backoff)
}

func containsPlugin(ps []*Plugin, p *Plugin) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// instances returns the live instances.
func (vm *VM) liveInstances() []*instance {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := make([]*instance, 0, len(vm.slots))
	for _, s := range vm.slots {
		if s != nil && !s.dead.Load() {
			out = append(out, s)
		}
	}
	return out
}

// Close releases one reference; the last one stops the instances.
func (vm *VM) Close(ctx context.Context) {
	vm.mu.Lock()
	vm.refs--
	last := vm.refs <= 0
	vm.mu.Unlock()
	if last {
		vm.shutdown(ctx)
	}
}

// shutdown stops the VM whatever its references (the last Close, or the
// runtime closing).
func (vm *VM) shutdown(ctx context.Context) {
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		return
	}
	vm.closed = true
	for s := range vm.retries {
		if t := vm.retries[s].timer; t != nil && t.Stop() {
			vm.retries[s].pending = false
			vm.replacer.Done()
		}
	}
	slots := append([]*instance(nil), vm.slots...)
	vm.mu.Unlock()
	vm.replacer.Wait()
	for _, s := range slots {
		if s != nil {
			s.close(ctx)
		}
	}
	vm.rt.mu.Lock()
	registered := vm.rt.vms[vm.key] == vm
	if registered {
		delete(vm.rt.vms, vm.key)
	}
	vm.rt.mu.Unlock()
	if registered {
		vm.rt.releaseVMID(vm.cfg.ID)
	}
}
