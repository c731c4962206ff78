package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap"
)

type instanceKey struct{}

// instanceFrom returns the instance a host function was called from.
func instanceFrom(ctx context.Context) *instance {
	i, _ := ctx.Value(instanceKey{}).(*instance)
	return i
}

// callbacks holds the guest's exported callbacks, nil when not exported.
type callbacks struct {
	malloc, onMemoryAllocate                              api.Function
	onContextCreate, onVMStart, onConfigure, onTick       api.Function
	onDone, onLog, onDelete                               api.Function
	onRequestHeaders, onRequestBody, onRequestTrailers    api.Function
	onResponseHeaders, onResponseBody, onResponseTrailers api.Function
	onNewConnection, onDownstreamData, onUpstreamData     api.Function
	onDownstreamClose, onUpstreamClose                    api.Function
	onHTTPCallResponse, onQueueReady, onForeignFunction   api.Function
	onGRPCInitialMetadata, onGRPCTrailingMetadata         api.Function
	onGRPCReceive, onGRPCClose                            api.Function
}

// instance is one wazero module instance of a VM: its own linear memory,
// its contexts, calls serialised by mu.
type instance struct {
	vm   *VM
	slot int
	log  *zap.Logger
	ctx  context.Context
	// cancel ends every call into the instance (the watchdog's deadline).
	cancel context.CancelFunc

	mod api.Module
	mem api.Memory
	fns callbacks

	// mu serialises every call into the guest and guards all fields below.
	mu       sync.Mutex
	stack    [16]uint64
	depth    int
	contexts map[uint32]*contextState
	nextID   uint32
	roots    map[*Plugin]*contextState
	// effective is the context host functions act on; active is the
	// context the host called into.
	effective *contextState
	active    *contextState
	// Transient data visible to host functions during one callback.
	callout *calloutView
	// callouts are the HTTP and gRPC callouts in flight (callouts_http.go).
	callouts calloutTable
	// deferred runs after the current outermost callback returns.
	deferred []func()
	// arities caches guest function arities; allocStack is the stack of
	// nested allocation calls.
	arities    map[api.Function]arity
	allocStack [1]uint64

	// Watchdog state.
	busy     atomic.Bool
	callSeq  atomic.Uint64
	deadline atomic.Int64 // nanoseconds
	timedOut atomic.Bool
	// stop is the module's stop global (instrument.go), nil when the
	// module runs with wazero's termination checks instead.
	stop atomic.Pointer[stopFlag]

	dead    atomic.Bool
	failure FailureKind
}

// stopFlag holds an instrumented module's stop global: set to 1, the
// running call traps at its next loop iteration.
type stopFlag struct{ g api.MutableGlobal }

// errDeadline fails a call that returned (or is about to start) after the
// watchdog found its instance past a deadline.
var errDeadline = errors.New("wasm: callback deadline exceeded")

// calloutView is what HTTP/gRPC callout responses and foreign function calls
// expose to the guest while their callback runs.
type calloutView struct {
	headers  *Headers
	trailers *Headers
	body     []byte
	// status code and message for proxy_get_status.
	statusCode uint32
	statusMsg  string
	hasStatus  bool
	// foreign function arguments.
	ffArgs []byte
}

func (i *instance) bindModule(m api.Module) {
	i.mod = m
	i.mem = m.Memory()
}

// newInstance instantiates the VM's module and runs its start functions like
// proxy-wasm-cpp-host: the start section, then _initialize and main if
// present, else _start.
func (vm *VM) newInstance(ctx context.Context, slot int) (*instance, error) {
	i := &instance{
		vm:       vm,
		slot:     slot,
		log:      vm.log.With(zap.Int("instance", slot)),
		contexts: map[uint32]*contextState{},
		roots:    map[*Plugin]*contextState{},
	}
	i.ctx, i.cancel = context.WithCancel(context.WithValue(context.Background(), instanceKey{}, i))
	// Guest memory outside the Go heap (linearmem_linux.go); the
	// allocator is read when the module is instantiated.
	instCtx := experimental.WithMemoryAllocator(i.ctx, experimental.MemoryAllocatorFunc(allocateLinearMemory))
	i.deadline.Store(int64(vm.cfg.StartTimeout))
	vm.rt.watch.add(i)
	// A new call number first, then busy: the watchdog must never see a
	// busy instance with a stale call number.
	i.callSeq.Add(1)
	i.busy.Store(true)
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	mod, err := vm.engine.rt.InstantiateModule(instCtx, vm.mod.compiled, cfg)
	i.busy.Store(false)
	if err != nil {
		vm.rt.watch.remove(i)
		return nil, fmt.Errorf("instantiate: %w", i.classify(err))
	}
	i.bindModule(mod)
	if vm.mod.stopCheck {
		g, ok := mod.ExportedGlobal(stopGlobalExport).(api.MutableGlobal)
		if !ok {
			vm.rt.watch.remove(i)
			mod.Close(ctx)
			return nil, fmt.Errorf("instantiate: %s is not a mutable global", stopGlobalExport)
		}
		i.stop.Store(&stopFlag{g: g})
	}
	i.resolveCallbacks()
	i.mu.Lock()
	defer i.mu.Unlock()
	run := func(name string, args ...uint64) error {
		fn := mod.ExportedFunction(name)
		if fn == nil {
			return nil
		}
		if _, err := i.callLocked(fn, args...); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if vm.mod.startExport {
		// The start section, which instrumentLoops turned into an export.
		if err = run(startFuncExport); err != nil {
			i.dieLocked(err)
			return nil, err
		}
	}
	if vm.mod.has("_initialize") {
		err = run("_initialize")
		if err == nil && vm.mod.has("main") && vm.mod.paramCounts["main"] == 2 {
			err = run("main", 0, 0)
		}
	} else if vm.mod.has("_start") {
		err = run("_start")
	}
	if err != nil {
		i.dieLocked(err)
		return nil, err
	}
	// Work deferred by host functions during the start functions.
	i.runDeferredLocked()
	i.deadline.Store(int64(vm.cfg.CallTimeout))
	return i, nil
}

func (i *instance) resolveCallbacks() {
	f := func(name string) api.Function { return i.mod.ExportedFunction(name) }
	i.fns = callbacks{
		malloc:                 f("malloc"),
		onMemoryAllocate:       f("proxy_on_memory_allocate"),
		onContextCreate:        f("proxy_on_context_create"),
		onVMStart:              f("proxy_on_vm_start"),
		onConfigure:            f("proxy_on_configure"),
		onTick:                 f("proxy_on_tick"),
		onDone:                 f("proxy_on_done"),
		onLog:                  f("proxy_on_log"),
		onDelete:               f("proxy_on_delete"),
		onRequestHeaders:       f("proxy_on_request_headers"),
		onRequestBody:          f("proxy_on_request_body"),
		onRequestTrailers:      f("proxy_on_request_trailers"),
		onResponseHeaders:      f("proxy_on_response_headers"),
		onResponseBody:         f("proxy_on_response_body"),
		onResponseTrailers:     f("proxy_on_response_trailers"),
		onNewConnection:        f("proxy_on_new_connection"),
		onDownstreamData:       f("proxy_on_downstream_data"),
		onUpstreamData:         f("proxy_on_upstream_data"),
		onDownstreamClose:      f("proxy_on_downstream_connection_close"),
		onUpstreamClose:        f("proxy_on_upstream_connection_close"),
		onHTTPCallResponse:     f("proxy_on_http_call_response"),
		onQueueReady:           f("proxy_on_queue_ready"),
		onForeignFunction:      f("proxy_on_foreign_function"),
		onGRPCInitialMetadata:  f("proxy_on_grpc_receive_initial_metadata"),
		onGRPCTrailingMetadata: f("proxy_on_grpc_receive_trailing_metadata"),
		onGRPCReceive:          f("proxy_on_grpc_receive"),
		onGRPCClose:            f("proxy_on_grpc_close"),
	}
	if i.fns.onGRPCTrailingMetadata == nil {
		// Older SDKs (AssemblyScript proxy-runtime) use the pre-spec name.
		i.fns.onGRPCTrailingMetadata = f("proxy_on_grpc_trailing_metadata")
	}
}

// callLocked calls fn with args (truncated to the function's arity, so the
// 0.1.0 and 0.2.x signatures of a callback are both served) and returns its
// first result. The caller holds i.mu. A guest failure kills the instance
// and is returned as an *InstanceFailure.
func (i *instance) callLocked(fn api.Function, args ...uint64) (uint64, error) {
	if i.dead.Load() {
		return 0, &InstanceFailure{Kind: i.failure}
	}
	ar := i.arityOf(fn)
	n := ar.params
	if n > len(args) {
		n = len(args)
	}
	stack := i.stack[:]
	copy(stack, args[:n])
	outer := i.depth == 0
	if outer {
		if i.timedOut.Load() {
			return 0, i.dieLocked(errDeadline)
		}
		i.callSeq.Add(1)
		i.busy.Store(true)
	}
	i.depth++
	err := fn.CallWithStack(i.ctx, stack)
	i.depth--
	if outer {
		i.busy.Store(false)
		if err == nil && i.timedOut.Load() {
			// Past its deadline, the call returned before reaching a
			// loop check: it still fails, as under wazero's checks.
			err = errDeadline
		}
	}
	if err != nil {
		if i.depth > 0 {
			// A nested call (malloc from a host function) failed: the
			// outer call will fail too; classify once there.
			return 0, err
		}
		return 0, i.dieLocked(err)
	}
	if ar.results == 0 {
		return 0, nil
	}
	return stack[0], nil
}

// arity is a guest function's parameter and result counts.
type arity struct{ params, results int }

// arityOf returns fn's arity, cached: the definition's type lists allocate.
func (i *instance) arityOf(fn api.Function) arity {
	if a, ok := i.arities[fn]; ok {
		return a
	}
	d := fn.Definition()
	a := arity{params: len(d.ParamTypes()), results: len(d.ResultTypes())}
	if i.arities == nil {
		i.arities = map[api.Function]arity{}
	}
	i.arities[fn] = a
	return a
}

// InstanceFailure is returned when a callback killed its instance.
type InstanceFailure struct {
	Kind FailureKind
	Err  error
}

func (e *InstanceFailure) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("wasm instance failed earlier (%s)", e.Kind)
	}
	return fmt.Sprintf("wasm instance failed (%s): %v", e.Kind, e.Err)
}

func (e *InstanceFailure) Unwrap() error { return e.Err }

// classify names the kind of a guest failure.
func (i *instance) classify(err error) error {
	kind := FailureTrap
	var exit *sys.ExitError
	switch {
	case i.timedOut.Load():
		kind = FailureTimeout
	case errors.As(err, &exit):
		kind = FailureExit
	case i.nearMemoryLimit():
		kind = FailureMemoryLimit
	}
	return &InstanceFailure{Kind: kind, Err: err}
}

// nearMemoryLimit reports whether the guest's memory is within 1/16 of its
// page limit (at least 16 pages): a trap there is almost always an allocator
// that could not grow.
func (i *instance) nearMemoryLimit() bool {
	if i.mem == nil {
		return false
	}
	limit := uint64(i.vm.cfg.MemoryLimitPages) * 65536
	slack := limit / 16
	if slack < 16*65536 {
		slack = 16 * 65536
	}
	return uint64(i.mem.Size())+slack >= limit
}

// dieLocked discards the instance after a guest failure: counts it, logs
// it, stops its timers and asks the VM for a replacement. Streams pinned to
// it get their failure policy at their next callback.
func (i *instance) dieLocked(err error) error {
	f, ok := err.(*InstanceFailure)
	if !ok {
		f = i.classify(err).(*InstanceFailure)
	}
	if i.dead.Swap(true) {
		return f
	}
	i.failure = f.Kind
	i.vm.rt.failures.add(f.Kind)
	i.vm.rt.watch.remove(i)
	i.log.Error("wasm instance failed; discarding it",
		zap.String("kind", string(f.Kind)), zap.Error(f.Err))
	for _, c := range i.contexts {
		c.stopTick()
	}
	i.cancelCalloutsLocked(nil)
	if i.mod != nil {
		mod := i.mod
		go mod.Close(context.Background())
	}
	i.vm.instanceDied(i)
	return f
}

// close shuts a healthy instance down (VM or runtime close).
func (i *instance) close(ctx context.Context) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, c := range i.contexts {
		c.stopTick()
	}
	i.cancelCalloutsLocked(nil)
	if i.dead.Swap(true) {
		return
	}
	i.vm.rt.watch.remove(i)
	if i.mod != nil {
		i.mod.Close(ctx)
	}
	i.cancel()
}

// allocate reserves size bytes in guest memory through malloc or
// proxy_on_memory_allocate.
func (i *instance) allocate(size uint32) (uint32, bool) {
	fn := i.fns.onMemoryAllocate
	if fn == nil {
		fn = i.fns.malloc
	}
	if fn == nil {
		return 0, false
	}
	// Nested call: use a separate stack so the outer call's is untouched.
	i.allocStack[0] = uint64(size)
	i.depth++
	err := fn.CallWithStack(i.ctx, i.allocStack[:])
	i.depth--
	if err != nil {
		return 0, false
	}
	ptr := uint32(i.allocStack[0])
	if ptr == 0 && size > 0 {
		return 0, false
	}
	return ptr, true
}

// read returns a view of guest memory; ok is false when out of bounds.
func (i *instance) read(ptr, size uint32) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	return i.mem.Read(ptr, size)
}

// readString copies a guest string.
func (i *instance) readString(ptr, size uint32) (string, bool) {
	b, ok := i.read(ptr, size)
	if !ok {
		return "", false
	}
	return string(b), true
}

func (i *instance) writeU32(ptr, v uint32) bool { return i.mem.WriteUint32Le(ptr, v) }
func (i *instance) writeU64(ptr uint32, v uint64) bool {
	return i.mem.WriteUint64Le(ptr, v)
}

// copyOut allocates guest memory for data, copies it there and writes the
// pointer and size to retPtr and retSize.
func (i *instance) copyOut(data []byte, retPtr, retSize uint32) Status {
	return i.copyOutN(len(data), func(p uint32) bool { return i.mem.Write(p, data) }, retPtr, retSize)
}

// copyOutString is copyOut for a string, without converting it.
func (i *instance) copyOutString(s string, retPtr, retSize uint32) Status {
	return i.copyOutN(len(s), func(p uint32) bool { return i.mem.WriteString(p, s) }, retPtr, retSize)
}

// copyOutN allocates n bytes in the guest, fills them with write and
// writes the pointer and size to retPtr and retSize. The return slots are
// checked first, so a bad pointer costs no guest memory.
func (i *instance) copyOutN(n int, write func(ptr uint32) bool, retPtr, retSize uint32) Status {
	if _, ok := i.mem.Read(retPtr, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	if _, ok := i.mem.Read(retSize, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	var ptr uint32
	if n > 0 {
		if uint64(n) > uint64(^uint32(0)) {
			return StatusInvalidMemoryAccess
		}
		p, ok := i.allocate(uint32(n))
		if !ok || !write(p) {
			return StatusInvalidMemoryAccess
		}
		ptr = p
	}
	if !i.writeU32(retPtr, ptr) || !i.writeU32(retSize, uint32(n)) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

// now is the runtime's clock.
func (i *instance) now() time.Time { return i.vm.rt.opts.Now() }
