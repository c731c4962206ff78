package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The tests of shared data, shared queues and metrics drive
// testdata/shared/shared.wasm: its callbacks for the realistic paths
// (streams, proxy_on_configure, proxy_on_queue_ready) and its t_*
// trampolines, which forward their arguments to one host function and
// return its status, for exact statuses and hostile pointers.

// Guest memory the tests use (see shared.wat): a scratch page the module
// never touches, a large area inside its heap for big values, and the
// memory size.
const (
	shScratch  = 0xF000 // keys, names, values
	shRet      = 0xFF00 // return slots
	shBig      = 0x100000
	shMemBytes = 40 * 65536
)

type shEnv struct {
	t    testing.TB
	rt   *Runtime
	logs *observer.ObservedLogs
	code []byte
}

func newShEnv(t testing.TB) *shEnv {
	t.Helper()
	code, err := os.ReadFile("testdata/shared/shared.wasm")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	return &shEnv{t: t, rt: rt, logs: logs, code: code}
}

func (e *shEnv) vm(id string, instances int) *VM {
	e.t.Helper()
	ctx := context.Background()
	vm, err := e.rt.VM(ctx, VMConfig{ID: id, Code: e.code, Instances: instances})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { vm.Close(ctx) })
	return vm
}

func (e *shEnv) plugin(vm *VM, name, config string) *Plugin {
	e.t.Helper()
	ctx := context.Background()
	p, err := vm.NewPlugin(ctx, PluginConfig{Name: name, Configuration: []byte(config)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close(ctx) })
	return p
}

// shGuest is one plugin's root context in one instance: where the t_*
// trampolines run.
type shGuest struct {
	t    testing.TB
	inst *instance
	root *contextState
}

func shGuests(t testing.TB, p *Plugin) []shGuest {
	t.Helper()
	var out []shGuest
	for _, inst := range p.vm.liveInstances() {
		inst.mu.Lock()
		root := inst.roots[p]
		inst.mu.Unlock()
		if root == nil {
			t.Fatalf("instance %d has no root context for %s", inst.slot, p.Name())
		}
		out = append(out, shGuest{t: t, inst: inst, root: root})
	}
	return out
}

// call runs export fn in the root context and returns its i32 result.
func (g shGuest) call(fn string, args ...uint64) uint32 {
	g.t.Helper()
	g.inst.mu.Lock()
	defer g.inst.mu.Unlock()
	f := g.inst.mod.ExportedFunction(fn)
	if f == nil {
		g.t.Fatalf("no export %s", fn)
	}
	res, err := g.inst.enterResultLocked(g.root, f, args...)
	if err != nil {
		g.t.Fatalf("%s: %v", fn, err)
	}
	return uint32(res)
}

// status runs a trampoline and returns the host function's status.
func (g shGuest) status(fn string, args ...uint64) Status {
	g.t.Helper()
	return Status(g.call(fn, args...))
}

func (g shGuest) write(ptr uint32, b []byte) {
	g.t.Helper()
	g.inst.mu.Lock()
	defer g.inst.mu.Unlock()
	if !g.inst.mem.Write(ptr, b) {
		g.t.Fatalf("write %d bytes at %#x out of bounds", len(b), ptr)
	}
}

func (g shGuest) u32(ptr uint32) uint32 {
	g.t.Helper()
	g.inst.mu.Lock()
	defer g.inst.mu.Unlock()
	v, ok := g.inst.mem.ReadUint32Le(ptr)
	if !ok {
		g.t.Fatalf("read at %#x out of bounds", ptr)
	}
	return v
}

func (g shGuest) u64(ptr uint32) uint64 {
	g.t.Helper()
	g.inst.mu.Lock()
	defer g.inst.mu.Unlock()
	v, ok := g.inst.mem.ReadUint64Le(ptr)
	if !ok {
		g.t.Fatalf("read at %#x out of bounds", ptr)
	}
	return v
}

func (g shGuest) bytes(ptr, n uint32) []byte {
	g.t.Helper()
	g.inst.mu.Lock()
	defer g.inst.mu.Unlock()
	b, ok := g.inst.mem.Read(ptr, n)
	if !ok {
		g.t.Fatalf("read %d bytes at %#x out of bounds", n, ptr)
	}
	return append([]byte{}, b...)
}

// str writes s at ptr and returns (ptr, len) as call arguments.
func (g shGuest) str(ptr uint32, s string) (uint64, uint64) {
	g.write(ptr, []byte(s))
	return uint64(ptr), uint64(len(s))
}

// setShared calls proxy_set_shared_data(key, value, cas) from the guest.
func (g shGuest) setShared(key string, value []byte, cas uint32) Status {
	g.t.Helper()
	kp, kl := g.str(shScratch, key)
	g.write(shScratch+0x400, value)
	return g.status("t_set_shared_data", kp, kl, shScratch+0x400, uint64(len(value)), uint64(cas))
}

// getShared calls proxy_get_shared_data(key) from the guest.
func (g shGuest) getShared(key string) ([]byte, uint32, Status) {
	g.t.Helper()
	kp, kl := g.str(shScratch, key)
	s := g.status("t_get_shared_data", kp, kl, shRet, shRet+4, shRet+8)
	if s != StatusOK {
		return nil, 0, s
	}
	return g.bytes(g.u32(shRet), g.u32(shRet+4)), g.u32(shRet + 8), s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSharedDataGetSetCAS(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("cas", 1), "p", ""))[0]

	if _, _, s := g.getShared("k"); s != StatusNotFound {
		t.Fatalf("get of a missing key: %v, want NOT_FOUND", s)
	}
	if s := g.setShared("k", []byte("v1"), 0); s != StatusOK {
		t.Fatalf("set cas 0: %v", s)
	}
	v, cas1, s := g.getShared("k")
	if s != StatusOK || string(v) != "v1" || cas1 == 0 {
		t.Fatalf("get: %q cas %d status %v", v, cas1, s)
	}

	steps := []struct {
		name  string
		value string
		cas   func() uint32
		want  Status
	}{
		{"matching cas", "v2", func() uint32 { return cas1 }, StatusOK},
		{"stale cas", "v3", func() uint32 { return cas1 }, StatusCASMismatch},
		{"made-up cas", "v3", func() uint32 { return cas1 + 1000 }, StatusCASMismatch},
		{"cas 0 is unconditional", "v4", func() uint32 { return 0 }, StatusOK},
	}
	want, prev := "v1", cas1
	for _, st := range steps {
		if s := g.setShared("k", []byte(st.value), st.cas()); s != st.want {
			t.Fatalf("%s: %v, want %v", st.name, s, st.want)
		}
		if st.want == StatusOK {
			want = st.value
		}
		v, cas, s := g.getShared("k")
		if s != StatusOK || string(v) != want {
			t.Fatalf("%s: get %q %v, want %q", st.name, v, s, want)
		}
		if st.want == StatusOK && cas <= prev {
			t.Fatalf("%s: cas %d not above %d", st.name, cas, prev)
		}
		if st.want != StatusOK && cas != prev {
			t.Fatalf("%s: failed set changed cas %d -> %d", st.name, prev, cas)
		}
		prev = cas
	}

	// Like Envoy, a cas given for a missing key creates it.
	if s := g.setShared("fresh", []byte("x"), 12345); s != StatusOK {
		t.Fatalf("set missing key with cas: %v", s)
	}
	// An empty value is stored and read back as empty.
	if s := g.setShared("empty", nil, 0); s != StatusOK {
		t.Fatalf("set empty: %v", s)
	}
	if v, cas, s := g.getShared("empty"); s != StatusOK || len(v) != 0 || cas == 0 {
		t.Fatalf("get empty: %q cas %d %v", v, cas, s)
	}
	// The empty key is a key like any other.
	if s := g.setShared("", []byte("e"), 0); s != StatusOK {
		t.Fatalf("set empty key: %v", s)
	}
	if got := e.rt.SharedData().Keys("cas"); fmt.Sprint(got) != "[ empty fresh k]" {
		t.Fatalf("keys %q", got)
	}
}

func TestSharedDataScopedByVMID(t *testing.T) {
	e := newShEnv(t)
	vmA := e.vm("a", 2)
	a1 := shGuests(t, e.plugin(vmA, "p1", ""))
	a2 := shGuests(t, e.plugin(vmA, "p2", ""))
	b := shGuests(t, e.plugin(e.vm("b", 1), "p", ""))[0]

	if s := a1[0].setShared("color", []byte("blue"), 0); s != StatusOK {
		t.Fatal(s)
	}
	// Every instance of every plugin on vm_id a sees it.
	for _, g := range append(a1, a2...) {
		if v, _, s := g.getShared("color"); s != StatusOK || string(v) != "blue" {
			t.Fatalf("instance %d: %q %v", g.inst.slot, v, s)
		}
	}
	// vm_id b does not.
	if _, _, s := b.getShared("color"); s != StatusNotFound {
		t.Fatalf("vm b sees vm a's key: %v", s)
	}
	if s := b.setShared("color", []byte("red"), 0); s != StatusOK {
		t.Fatal(s)
	}
	if v, _, _ := a2[1].getShared("color"); string(v) != "blue" {
		t.Fatalf("vm b's set changed vm a's key: %q", v)
	}
	if v, _, ok := e.rt.SharedData().Get("b", "color"); !ok || string(v) != "red" {
		t.Fatalf("host view of b: %q %v", v, ok)
	}
	if got := e.rt.SharedData().VMIDs(); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("vm ids %q", got)
	}
}

func TestSharedDataLimits(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("lim", 1), "p", ""))[0]
	def := DefaultSharedDataLimits

	big := func(n int) (uint64, uint64) { return shBig, uint64(n) }
	kp, kl := g.str(shScratch, "k")
	cases := []struct {
		name     string
		key      func() (uint64, uint64)
		value    func() (uint64, uint64)
		want     Status
		wantKeys int
	}{
		{"value at the cap", func() (uint64, uint64) { return kp, kl }, func() (uint64, uint64) { return big(def.MaxValueBytes) }, StatusOK, 1},
		{"value past the cap", func() (uint64, uint64) { return kp, kl }, func() (uint64, uint64) { return big(def.MaxValueBytes + 1) }, StatusBadArgument, 1},
		{"key at the cap", func() (uint64, uint64) { return big(def.MaxKeyBytes) }, func() (uint64, uint64) { return kp, kl }, StatusOK, 2},
		{"key past the cap", func() (uint64, uint64) { return big(def.MaxKeyBytes + 1) }, func() (uint64, uint64) { return kp, kl }, StatusBadArgument, 2},
	}
	for _, c := range cases {
		k1, k2 := c.key()
		v1, v2 := c.value()
		if s := g.status("t_set_shared_data", k1, k2, v1, v2, 0); s != c.want {
			t.Errorf("%s: %v, want %v", c.name, s, c.want)
		}
		if n := len(e.rt.SharedData().Keys("lim")); n != c.wantKeys {
			t.Errorf("%s: %d keys, want %d", c.name, n, c.wantKeys)
		}
	}

	// The total cap counts every entry of every vm_id.
	sd := e.rt.SharedData()
	used := sd.Bytes()
	value := bytes.Repeat([]byte("v"), 80)
	sd.SetLimits(SharedDataLimits{MaxKeyBytes: 100, MaxValueBytes: 100, MaxTotalBytes: used + 2*(SharedDataEntryOverhead+2+80)})
	defer sd.SetLimits(def)
	if s := g.setShared("t1", value, 0); s != StatusOK {
		t.Fatal(s)
	}
	if s := g.setShared("t2", value, 0); s != StatusOK {
		t.Fatal(s)
	}
	if s := g.setShared("t3", []byte("1"), 0); s != StatusBadArgument {
		t.Fatalf("past the total cap: %v", s)
	}
	if s := sd.Set("other-vm", "x", nil, 0); s != StatusBadArgument {
		t.Fatalf("past the total cap from another vm_id: %v", s)
	}
	// Replacing a value with a smaller one fits.
	if s := g.setShared("t2", []byte("1"), 0); s != StatusOK {
		t.Fatalf("shrinking: %v", s)
	}
	if s := g.setShared("t3", []byte("1"), 0); s != StatusOK {
		t.Fatalf("after shrinking: %v", s)
	}
}

// TestSharedDataCASRaceStreams runs many streams at once on a plugin with
// several instances; each increments one shared counter with the guest's
// get / set(cas) loop. No increment may be lost.
func TestSharedDataCASRaceStreams(t *testing.T) {
	e := newShEnv(t)
	p := e.plugin(e.vm("race", 4), "p", "")
	// cas 0 on a missing key is unconditional, so start from a stored 0.
	if s := e.rt.SharedData().Set("race", "counter", make([]byte, 4), 0); s != StatusOK {
		t.Fatal(s)
	}
	const goroutines, perGoroutine = 16, 25
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		retries int
	)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perGoroutine {
				s := p.NewHTTPStream(StreamOptions{})
				h := NewHeaders(":path", "/", "x-cas", "1")
				if a := s.OnRequestHeaders(h, true); a != ActionContinue {
					t.Errorf("action %d: %v", a, s.Failure())
				}
				r, _ := h.Get("x-cas-retries")
				var n int
				fmt.Sscan(r, &n)
				mu.Lock()
				retries += n
				mu.Unlock()
				s.Close()
			}
		}()
	}
	wg.Wait()
	v, _, ok := e.rt.SharedData().Get("race", "counter")
	if !ok || len(v) != 4 {
		t.Fatalf("counter %x", v)
	}
	if got := binary.LittleEndian.Uint32(v); got != goroutines*perGoroutine {
		t.Fatalf("counter %d, want %d", got, goroutines*perGoroutine)
	}
	t.Logf("%d increments, %d CAS retries", goroutines*perGoroutine, retries)
}

// TestSharedDataStoreConcurrent hammers the store from goroutines directly:
// CAS increments on a few keys plus readers.
func TestSharedDataStoreConcurrent(t *testing.T) {
	s := newSharedData()
	const workers, each = 32, 200
	keys := []string{"a", "b", "c"}
	for _, k := range keys {
		s.set("vm", k, binary.LittleEndian.AppendUint64(nil, 0), 0)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := keys[w%len(keys)]
			for range each {
				for {
					v, cas, _ := s.get("vm", key)
					n := binary.LittleEndian.Uint64(v)
					st := s.set("vm", key, binary.LittleEndian.AppendUint64(nil, n+1), cas)
					if st == StatusOK {
						break
					}
					if st != StatusCASMismatch {
						t.Errorf("set: %v", st)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	var total uint64
	for _, k := range keys {
		v, _, _ := s.get("vm", k)
		total += binary.LittleEndian.Uint64(v)
	}
	if total != workers*each {
		t.Fatalf("total %d, want %d", total, workers*each)
	}
}

func TestSharedDataCASNeverZero(t *testing.T) {
	s := newSharedData()
	s.cas = math.MaxUint32 - 1
	var seen []uint32
	for k := range 3 {
		if st := s.Set("vm", "k", []byte{byte(k)}, 0); st != StatusOK {
			t.Fatal(st)
		}
		_, cas, _ := s.get("vm", "k")
		seen = append(seen, cas)
	}
	if fmt.Sprint(seen) != fmt.Sprint([]uint32{math.MaxUint32, 1, 2}) {
		t.Fatalf("cas sequence %v", seen)
	}
}

// TestSharedDataReleaseVMID: a vm_id's keys and queues go away with its
// last VM, as in Envoy.
func TestSharedDataReleaseVMID(t *testing.T) {
	e := newShEnv(t)
	rt := e.rt
	rt.retainVMID("x")
	rt.retainVMID("x")
	rt.shared.Set("x", "k", []byte("v"), 0)
	rt.shared.Set("y", "k", []byte("v"), 0)
	id, _ := rt.queues.register("x", "q", nil)
	rt.queues.enqueue(id, []byte("item"), nil)
	rt.releaseVMID("x")
	if _, _, ok := rt.shared.Get("x", "k"); !ok {
		t.Fatal("dropped while a VM still holds the vm_id")
	}
	rt.releaseVMID("x")
	if _, _, ok := rt.shared.Get("x", "k"); ok {
		t.Fatal("kept after the last VM released the vm_id")
	}
	if _, _, ok := rt.shared.Get("y", "k"); !ok {
		t.Fatal("another vm_id's key dropped")
	}
	if _, ok := rt.queues.resolve("x", "q"); ok {
		t.Fatal("queue kept")
	}
	if _, s := rt.queues.dequeue(id); s != StatusNotFound {
		t.Fatalf("dequeue from a dropped queue: %v", s)
	}
	if want := entryCost("k", []byte("v")); rt.shared.Bytes() != want {
		t.Fatalf("bytes %d, want %d", rt.shared.Bytes(), want)
	}
}

// shOOB is a hostcall with one bad pointer or length; prepare sets up the
// state under which the only thing wrong is that argument.
type shOOB struct {
	name    string
	fn      string
	args    []uint64
	prepare func(g shGuest)
}

const (
	shWrap = 0xFFFFFFF0 // pointer whose range wraps past 2^32
	shPast = shMemBytes // first byte past the memory
	shEdge = shMemBytes - 2
	shHuge = 0x7FFFFFFF // length beyond the memory
)

func runOOB(t *testing.T, g shGuest, cases []shOOB) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.prepare != nil {
				c.prepare(g)
			}
			if s := g.status(c.fn, c.args...); s != StatusInvalidMemoryAccess {
				t.Fatalf("%s: %v, want INVALID_MEMORY_ACCESS", c.fn, s)
			}
			if g.inst.dead.Load() {
				t.Fatal("instance died")
			}
		})
	}
}

func TestSharedDataOutOfBounds(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("oob", 1), "p", ""))[0]
	kp, kl := g.str(shScratch, "key")
	vp, vl := g.str(shScratch+0x100, "value")
	if s := g.setShared("key", []byte("value"), 0); s != StatusOK {
		t.Fatal(s)
	}
	r := uint64(shRet)
	cases := []shOOB{
		{"get key ptr wraps", "t_get_shared_data", []uint64{shWrap, 0x20, r, r + 4, r + 8}, nil},
		{"get key past end", "t_get_shared_data", []uint64{shPast, 3, r, r + 4, r + 8}, nil},
		{"get key size huge", "t_get_shared_data", []uint64{kp, shHuge, r, r + 4, r + 8}, nil},
		{"get value ptr slot", "t_get_shared_data", []uint64{kp, kl, shEdge, r + 4, r + 8}, nil},
		{"get value size slot", "t_get_shared_data", []uint64{kp, kl, r, shWrap + 0xC, r + 8}, nil},
		{"get cas slot", "t_get_shared_data", []uint64{kp, kl, r, r + 4, shPast}, nil},
		{"set key ptr wraps", "t_set_shared_data", []uint64{shWrap, 0x20, vp, vl, 0}, nil},
		{"set key size huge", "t_set_shared_data", []uint64{kp, shHuge, vp, vl, 0}, nil},
		{"set value ptr past end", "t_set_shared_data", []uint64{kp, kl, shPast, vl, 0}, nil},
		{"set value size huge", "t_set_shared_data", []uint64{kp, kl, vp, shHuge, 0}, nil},
	}
	runOOB(t, g, cases)
	if v, _, _ := e.rt.SharedData().Get("oob", "key"); string(v) != "value" {
		t.Fatalf("value changed to %q", v)
	}
}

// FuzzSharedAreaHostCalls feeds arbitrary pointers, lengths and ids to the
// ten host functions of this area through a real guest. The host must never
// panic or kill the instance, must answer a status the spec knows, and must
// never answer OK when an argument's memory is out of bounds.
func FuzzSharedAreaHostCalls(f *testing.F) {
	f.Add(uint8(0), uint32(shScratch), uint32(3), uint32(shRet), uint32(shRet+4), uint32(shRet+8), int64(0))
	f.Add(uint8(1), uint32(shScratch), uint32(3), uint32(shScratch), uint32(5), uint32(0), int64(0))
	f.Add(uint8(1), uint32(shWrap), uint32(0x20), uint32(shScratch), uint32(5), uint32(7), int64(0))
	f.Add(uint8(2), uint32(shScratch), uint32(4), uint32(shRet), uint32(0), uint32(0), int64(0))
	f.Add(uint8(3), uint32(0), uint32(0), uint32(shScratch), uint32(4), uint32(shPast), int64(0))
	f.Add(uint8(4), uint32(1), uint32(shScratch), uint32(shHuge), uint32(0), uint32(0), int64(0))
	f.Add(uint8(5), uint32(1), uint32(shRet), uint32(shEdge), uint32(0), uint32(0), int64(0))
	f.Add(uint8(6), uint32(2), uint32(shScratch), uint32(6), uint32(shRet), uint32(0), int64(0))
	f.Add(uint8(7), uint32(4), uint32(0), uint32(0), uint32(0), uint32(0), int64(-3))
	f.Add(uint8(8), uint32(7), uint32(0), uint32(0), uint32(0), uint32(0), int64(math.MaxInt64))
	f.Add(uint8(9), uint32(5), uint32(shPast), uint32(0), uint32(0), uint32(0), int64(0))

	code, err := os.ReadFile("testdata/shared/shared.wasm")
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer rt.Close(ctx)
	vm, err := rt.VM(ctx, VMConfig{ID: "fuzz", Code: code, Instances: 1})
	if err != nil {
		f.Fatal(err)
	}
	defer vm.Close(ctx)
	p, err := vm.NewPlugin(ctx, PluginConfig{Name: "fuzz", Configuration: []byte("fq")})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close(ctx)
	valid := map[Status]bool{}
	for s := StatusOK; s <= StatusUnimplemented; s++ {
		valid[s] = true
	}

	f.Fuzz(func(t *testing.T, op uint8, a, b, c, d, e uint32, n int64) {
		gs := shGuests(t, p)
		if len(gs) == 0 {
			t.Skip("instance being replaced")
		}
		g := gs[0]
		// in reports whether [ptr, ptr+size) is inside the memory.
		in := func(ptr, size uint32) bool { return size == 0 || uint64(ptr)+uint64(size) <= shMemBytes }
		var fn string
		var args []uint64
		var inBounds bool
		switch op % 10 {
		case 0:
			fn, args = "t_get_shared_data", []uint64{uint64(a), uint64(b), uint64(c), uint64(d), uint64(e)}
			inBounds = in(a, b) && in(c, 4) && in(d, 4) && in(e, 4)
		case 1:
			fn, args = "t_set_shared_data", []uint64{uint64(a), uint64(b), uint64(c), uint64(d), uint64(e)}
			inBounds = in(a, b) && in(c, d)
		case 2:
			fn, args = "t_register_shared_queue", []uint64{uint64(a), uint64(b), uint64(c)}
			inBounds = in(a, b) && in(c, 4)
		case 3:
			fn, args = "t_resolve_shared_queue", []uint64{uint64(a), uint64(b), uint64(c), uint64(d), uint64(e)}
			inBounds = in(a, b) && in(c, d) && in(e, 4)
		case 4:
			fn, args = "t_enqueue_shared_queue", []uint64{uint64(a), uint64(b), uint64(c)}
			inBounds = in(b, c)
		case 5:
			fn, args = "t_dequeue_shared_queue", []uint64{uint64(a), uint64(b), uint64(c)}
			inBounds = in(b, 4) && in(c, 4)
		case 6:
			fn, args = "t_define_metric", []uint64{uint64(a), uint64(b), uint64(c), uint64(d)}
			inBounds = in(b, c) && in(d, 4)
		case 7:
			fn, args = "t_increment_metric", []uint64{uint64(a), uint64(n)}
			inBounds = true
		case 8:
			fn, args = "t_record_metric", []uint64{uint64(a), uint64(n)}
			inBounds = true
		case 9:
			fn, args = "t_get_metric", []uint64{uint64(a), uint64(b)}
			inBounds = in(b, 8)
		}
		s := g.status(fn, args...)
		if !valid[s] {
			t.Fatalf("%s%v: status %d", fn, args, s)
		}
		if !inBounds && s == StatusOK {
			t.Fatalf("%s%v: OK with out-of-bounds memory", fn, args)
		}
		if g.inst.dead.Load() {
			t.Fatalf("%s%v killed the instance", fn, args)
		}
	})
}

// hostcalls starts testdata/hostcalls/hostcalls.wasm, the C filter whose
// README is the host-function contract shared by every area's tests.
func (e *shEnv) hostcalls(vmID, config string, instances int) *Plugin {
	e.t.Helper()
	code, err := os.ReadFile("testdata/hostcalls/hostcalls.wasm")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	vm, err := e.rt.VM(ctx, VMConfig{ID: vmID, Code: code, Instances: instances})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { vm.Close(ctx) })
	return e.plugin(vm, "hostcalls", config)
}

// hcCase is one request-path case of hostcalls.wasm and the local response
// it must answer.
type hcCase struct {
	path    string
	headers []string
	status  uint32
	body    string
}

func runHostcalls(t *testing.T, p *Plugin, cases []hcCase) {
	t.Helper()
	for _, c := range cases {
		s := p.NewHTTPStream(StreamOptions{})
		s.OnRequestHeaders(NewHeaders(append([]string{":path", c.path, ":method", "GET"}, c.headers...)...), true)
		lr := s.LocalResponse()
		s.Close()
		if lr == nil {
			t.Errorf("%s %v: no local response (failure %v)", c.path, c.headers, s.Failure())
			continue
		}
		if lr.StatusCode != c.status || string(lr.Body) != c.body {
			t.Errorf("%s %v: %d %q, want %d %q", c.path, c.headers, lr.StatusCode, lr.Body, c.status, c.body)
		}
	}
}

func TestSharedDataHostcallsContract(t *testing.T) {
	e := newShEnv(t)
	p := e.hostcalls("hc", "", 2)
	other := e.hostcalls("hc-other", "", 1)
	runHostcalls(t, p, []hcCase{
		{"/t/shared/get_missing", nil, 200, "ok"},
		{"/t/shared/get", []string{"x-key", "k"}, 500, "proxy_get_shared_data status=1"},
		{"/t/shared/set", []string{"x-key", "k", "x-value", "v"}, 200, "ok"},
		{"/t/shared/get", []string{"x-key", "k"}, 200, "v"},
		{"/t/shared/cas", []string{"x-key", "c"}, 200, "ok"},
		{"/t/shared/get", []string{"x-key", "c"}, 200, "v2"},
	})
	runHostcalls(t, other, []hcCase{
		{"/t/shared/get", []string{"x-key", "k"}, 500, "proxy_get_shared_data status=1"},
	})
}
