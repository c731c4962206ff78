package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// testdata/wasi/calls.wasm re-exports every WASI function as "p1.<name>"
// (wasi_snapshot_preview1) and "u.<name>" (wasi_unstable); see gen.sh.
const wasiCallsWasm = "testdata/wasi/calls.wasm"

// wasiSpecFuncs is every wasi_snapshot_preview1 function.
var wasiSpecFuncs = []string{
	"args_get", "args_sizes_get", "environ_get", "environ_sizes_get",
	"clock_res_get", "clock_time_get",
	"fd_advise", "fd_allocate", "fd_close", "fd_datasync", "fd_fdstat_get",
	"fd_fdstat_set_flags", "fd_fdstat_set_rights", "fd_filestat_get",
	"fd_filestat_set_size", "fd_filestat_set_times", "fd_pread",
	"fd_prestat_get", "fd_prestat_dir_name", "fd_pwrite", "fd_read",
	"fd_readdir", "fd_renumber", "fd_seek", "fd_sync", "fd_tell", "fd_write",
	"path_create_directory", "path_filestat_get", "path_filestat_set_times",
	"path_link", "path_open", "path_readlink", "path_remove_directory",
	"path_rename", "path_symlink", "path_unlink_file",
	"poll_oneoff", "proc_exit", "proc_raise", "sched_yield", "random_get",
	"sock_accept", "sock_recv", "sock_send", "sock_shutdown",
}

// wasiNS is one WASI module name as the tests see it, with the layouts the
// spec gives it (written out here, not taken from wasi.go).
type wasiNS struct {
	prefix       string // export prefix in calls.wasm
	module       string
	subSize      uint32 // poll_oneoff subscription
	clockOff     uint32 // clock id inside a subscription
	filestatSize uint32
}

var wasiNamespaces = []wasiNS{
	{prefix: "p1", module: "wasi_snapshot_preview1", subSize: 48, clockOff: 16, filestatSize: 64},
	{prefix: "u", module: "wasi_unstable", subSize: 56, clockOff: 24, filestatSize: 56},
}

const (
	wasiMemEnd = 2 * 65536  // first byte past calls.wasm's memory
	wasiOOB    = 0xFFFFFFF0 // wraps past 2^32
	// Scratch addresses in page 0.
	wasiRet  = 0x0100
	wasiRet2 = 0x0108
	wasiIovs = 0x0200
	wasiBuf  = 0x0400
)

var wasiFixedNow = time.Unix(1_700_000_000, 123_456_789)

// wasiCaller runs calls.wasm in one instance and calls its wrappers
// directly, the way the host calls a callback.
type wasiCaller struct {
	t    testing.TB
	rt   *Runtime
	vm   *VM
	inst *instance
	logs *observer.ObservedLogs
	ns   wasiNS
}

func newWASICaller(t testing.TB, cfg VMConfig, lvl zapcore.Level) *wasiCaller {
	t.Helper()
	ctx := context.Background()
	code, err := os.ReadFile(wasiCallsWasm)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(lvl)
	rt, err := NewRuntime(ctx, Options{Logger: zap.New(core), Now: func() time.Time { return wasiFixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	cfg.ID, cfg.Code, cfg.Instances = "wasi", code, 1
	vm, err := rt.VM(ctx, cfg)
	if err != nil {
		t.Fatalf("load calls.wasm: %v", err)
	}
	t.Cleanup(func() { vm.Close(ctx) })
	insts := vm.liveInstances()
	if len(insts) != 1 {
		t.Fatalf("%d live instances", len(insts))
	}
	return &wasiCaller{t: t, rt: rt, vm: vm, inst: insts[0], logs: logs, ns: wasiNamespaces[0]}
}

// call calls ns.prefix+"."+name and returns the errno.
func (c *wasiCaller) call(name string, args ...uint64) (uint32, error) {
	c.t.Helper()
	fn := c.inst.mod.ExportedFunction(c.ns.prefix + "." + name)
	if fn == nil {
		c.t.Fatalf("calls.wasm has no export %s.%s", c.ns.prefix, name)
	}
	c.inst.mu.Lock()
	defer c.inst.mu.Unlock()
	res, err := c.inst.callLocked(fn, args...)
	return uint32(res), err
}

// errno calls and fails the test on a guest failure.
func (c *wasiCaller) errno(name string, args ...uint64) uint32 {
	c.t.Helper()
	e, err := c.call(name, args...)
	if err != nil {
		c.t.Fatalf("%s.%s(%v) failed the instance: %v", c.ns.prefix, name, args, err)
	}
	return e
}

func (c *wasiCaller) write(addr uint32, b []byte) {
	c.t.Helper()
	if !c.inst.mem.Write(addr, b) {
		c.t.Fatalf("test setup: write %d bytes at %#x", len(b), addr)
	}
}

func (c *wasiCaller) bytes(addr, n uint32) []byte {
	c.t.Helper()
	b, ok := c.inst.mem.Read(addr, n)
	if !ok {
		c.t.Fatalf("test: read %d bytes at %#x", n, addr)
	}
	return append([]byte(nil), b...)
}

func (c *wasiCaller) u32(addr uint32) uint32 { return binary.LittleEndian.Uint32(c.bytes(addr, 4)) }
func (c *wasiCaller) u64(addr uint32) uint64 { return binary.LittleEndian.Uint64(c.bytes(addr, 8)) }

// fill sets n bytes at addr to 0xAA, so a test sees what the host wrote.
func (c *wasiCaller) fill(addr, n uint32) {
	c.write(addr, []byte(strings.Repeat("\xaa", int(n))))
}

// iovs writes an iovec array at addr.
func (c *wasiCaller) iovs(addr uint32, vec ...[2]uint32) {
	b := make([]byte, 8*len(vec))
	for k, v := range vec {
		binary.LittleEndian.PutUint32(b[8*k:], v[0])
		binary.LittleEndian.PutUint32(b[8*k+4:], v[1])
	}
	c.write(addr, b)
}

// wasiCase is one call of one WASI function.
type wasiCase struct {
	name  string
	fn    string
	args  []uint64
	setup func(c *wasiCaller)
	want  uint32
	check func(t *testing.T, c *wasiCaller)
}

func a(v ...uint64) []uint64 { return v }

// wasiFdCases covers a function that only looks at its fd argument.
func wasiFdCases(fn string, nargs int, onStdio uint32) []wasiCase {
	args := func(fd uint64) []uint64 {
		v := make([]uint64, nargs)
		v[0] = fd
		for k := 1; k < nargs; k++ {
			v[k] = wasiRet
		}
		return v
	}
	return []wasiCase{
		{name: "stdin", fn: fn, args: args(0), want: onStdio},
		{name: "stdout", fn: fn, args: args(1), want: onStdio},
		{name: "stderr", fn: fn, args: args(2), want: onStdio},
		{name: "fd 3", fn: fn, args: args(3), want: errnoBadf},
		{name: "fd max", fn: fn, args: args(math.MaxUint32), want: errnoBadf},
	}
}

// wasiPathCases covers a path_* function whose directory fd is argument
// dirArg.
func wasiPathCases(fn string, nargs, dirArg int) []wasiCase {
	args := func(fd uint64) []uint64 {
		v := make([]uint64, nargs)
		for k := range v {
			v[k] = wasiBuf
		}
		v[dirArg] = fd
		return v
	}
	return []wasiCase{
		{name: "stdout is not a directory", fn: fn, args: args(1), want: errnoNotdir},
		{name: "no preopen fd 3", fn: fn, args: args(3), want: errnoBadf},
	}
}

func wasiCases(ns wasiNS) []wasiCase {
	fdstat := func(fd uint32, rights uint64) func(t *testing.T, c *wasiCaller) {
		return func(t *testing.T, c *wasiCaller) {
			b := c.bytes(wasiRet, 24)
			if b[0] != 2 || binary.LittleEndian.Uint16(b[2:]) != 0 {
				t.Fatalf("fd %d: filetype %d flags %d, want character device, no flags", fd, b[0], binary.LittleEndian.Uint16(b[2:]))
			}
			got := binary.LittleEndian.Uint64(b[8:])
			if got&rights != rights || got&(1<<2|1<<5) != 0 {
				t.Fatalf("fd %d: rights %#x, want %#x and no seek/tell", fd, got, rights)
			}
			if binary.LittleEndian.Uint64(b[16:]) != 0 {
				t.Fatalf("fd %d: inheriting rights %#x", fd, binary.LittleEndian.Uint64(b[16:]))
			}
		}
	}
	const envBuf = "A=1\x00BB=22\x00"
	cases := []wasiCase{
		// Arguments: there are none.
		{name: "no args", fn: "args_get", args: a(wasiRet, wasiBuf), want: errnoSuccess},
		{name: "no args, bad pointers", fn: "args_get", args: a(wasiOOB, wasiOOB), want: errnoSuccess},
		{name: "sizes", fn: "args_sizes_get", args: a(wasiRet, wasiRet+4),
			setup: func(c *wasiCaller) { c.fill(wasiRet, 8) },
			want:  errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if c.u32(wasiRet) != 0 || c.u32(wasiRet+4) != 0 {
					t.Fatalf("argc %d, argv_buf_size %d", c.u32(wasiRet), c.u32(wasiRet+4))
				}
			}},
		{name: "sizes, bad argc", fn: "args_sizes_get", args: a(wasiOOB, wasiRet), want: errnoFault},
		{name: "sizes, argv_buf_size across the end", fn: "args_sizes_get", args: a(wasiRet, wasiMemEnd-2), want: errnoFault},

		// Environment: VMConfig.Env is A=1, BB=22.
		{name: "sizes", fn: "environ_sizes_get", args: a(wasiRet, wasiRet+4), want: errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if c.u32(wasiRet) != 2 || c.u32(wasiRet+4) != uint32(len(envBuf)) {
					t.Fatalf("count %d size %d", c.u32(wasiRet), c.u32(wasiRet+4))
				}
			}},
		{name: "sizes, bad count", fn: "environ_sizes_get", args: a(wasiMemEnd, wasiRet), want: errnoFault},
		{name: "sizes, bad size", fn: "environ_sizes_get", args: a(wasiRet, wasiOOB), want: errnoFault},
		{name: "get", fn: "environ_get", args: a(wasiRet, wasiBuf), want: errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if c.u32(wasiRet) != wasiBuf || c.u32(wasiRet+4) != wasiBuf+4 {
					t.Fatalf("pointers %#x %#x", c.u32(wasiRet), c.u32(wasiRet+4))
				}
				if got := string(c.bytes(wasiBuf, uint32(len(envBuf)))); got != envBuf {
					t.Fatalf("buffer %q", got)
				}
			}},
		{name: "get, buffer past the end writes nothing", fn: "environ_get", args: a(wasiRet, wasiMemEnd-5),
			setup: func(c *wasiCaller) { c.fill(wasiRet, 8) },
			want:  errnoFault,
			check: func(t *testing.T, c *wasiCaller) {
				if c.u32(wasiRet) != 0xaaaaaaaa {
					t.Fatal("environ pointers written before the fault")
				}
			}},
		{name: "get, bad pointer array", fn: "environ_get", args: a(wasiOOB, wasiBuf), want: errnoFault},

		// Clocks.
		{name: "realtime resolution", fn: "clock_res_get", args: a(0, wasiRet), want: errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if c.u64(wasiRet) != 1 {
					t.Fatalf("resolution %d", c.u64(wasiRet))
				}
			}},
		{name: "monotonic resolution", fn: "clock_res_get", args: a(1, wasiRet), want: errnoSuccess},
		{name: "process cputime", fn: "clock_res_get", args: a(2, wasiRet), want: errnoNotsup},
		{name: "thread cputime", fn: "clock_res_get", args: a(3, wasiRet), want: errnoNotsup},
		{name: "unknown clock", fn: "clock_res_get", args: a(4, wasiRet), want: errnoInval},
		{name: "bad pointer", fn: "clock_res_get", args: a(0, wasiMemEnd-4), want: errnoFault},
		{name: "realtime is Options.Now", fn: "clock_time_get", args: a(0, 1000, wasiRet), want: errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if got := c.u64(wasiRet); got != uint64(wasiFixedNow.UnixNano()) {
					t.Fatalf("realtime %d, want %d", got, wasiFixedNow.UnixNano())
				}
			}},
		{name: "monotonic advances", fn: "clock_time_get", args: a(1, 0, wasiRet), want: errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				first := c.u64(wasiRet)
				time.Sleep(time.Millisecond)
				if e := c.errno("clock_time_get", 1, 0, wasiRet); e != 0 {
					t.Fatalf("errno %d", e)
				}
				if second := c.u64(wasiRet); first == 0 || second < first+uint64(time.Millisecond) {
					t.Fatalf("monotonic %d then %d", first, second)
				}
			}},
		{name: "precision is ignored", fn: "clock_time_get", args: a(1, math.MaxUint64, wasiRet), want: errnoSuccess},
		{name: "process cputime", fn: "clock_time_get", args: a(2, 0, wasiRet), want: errnoNotsup},
		{name: "unknown clock", fn: "clock_time_get", args: a(1000, 0, wasiRet), want: errnoInval},
		{name: "bad pointer", fn: "clock_time_get", args: a(0, 0, wasiOOB), want: errnoFault},
		{name: "pointer across the end", fn: "clock_time_get", args: a(1, 0, wasiMemEnd-7), want: errnoFault},

		// Randomness.
		{name: "32 bytes", fn: "random_get", args: a(wasiBuf, 32),
			setup: func(c *wasiCaller) { c.write(wasiBuf, make([]byte, 32)) },
			want:  errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if b := c.bytes(wasiBuf, 32); slices.Equal(b, make([]byte, 32)) {
					t.Fatal("random_get left the buffer zero")
				}
			}},
		{name: "zero bytes anywhere", fn: "random_get", args: a(wasiOOB, 0), want: errnoSuccess},
		{name: "64 KiB", fn: "random_get", args: a(wasiBuf, 64<<10), want: errnoSuccess},
		{name: "past 64 KiB", fn: "random_get", args: a(wasiBuf, 64<<10+1), want: errnoInval},
		{name: "bad pointer", fn: "random_get", args: a(wasiOOB, 16), want: errnoFault},
		{name: "across the end", fn: "random_get", args: a(wasiMemEnd-8, 16), want: errnoFault},

		// Scheduling and processes (proc_exit: TestWASIProcExit).
		{name: "yield", fn: "sched_yield", want: errnoSuccess},
		{name: "raise", fn: "proc_raise", args: a(9), want: errnoNosys},

		// fd_fdstat_get: the standard streams are character devices.
		{name: "stdin", fn: "fd_fdstat_get", args: a(0, wasiRet), setup: func(c *wasiCaller) { c.fill(wasiRet, 24) },
			want: errnoSuccess, check: fdstat(0, 1<<1)},
		{name: "stdout", fn: "fd_fdstat_get", args: a(1, wasiRet), setup: func(c *wasiCaller) { c.fill(wasiRet, 24) },
			want: errnoSuccess, check: fdstat(1, 1<<6)},
		{name: "stderr", fn: "fd_fdstat_get", args: a(2, wasiRet), want: errnoSuccess, check: fdstat(2, 1<<6)},
		{name: "fd 3", fn: "fd_fdstat_get", args: a(3, wasiRet), want: errnoBadf},
		{name: "bad pointer", fn: "fd_fdstat_get", args: a(1, wasiOOB), want: errnoFault},
		{name: "across the end", fn: "fd_fdstat_get", args: a(1, wasiMemEnd-23), want: errnoFault},

		// fd_filestat_get: the layout differs between the module names.
		{name: "stdout", fn: "fd_filestat_get", args: a(1, wasiRet),
			setup: func(c *wasiCaller) { c.fill(wasiRet, 64) },
			want:  errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				b := c.bytes(wasiRet, 64)
				var nlink uint64
				if ns.filestatSize == 64 {
					nlink = binary.LittleEndian.Uint64(b[24:])
				} else {
					nlink = uint64(binary.LittleEndian.Uint32(b[20:]))
				}
				if b[16] != 2 || nlink != 1 {
					t.Fatalf("filetype %d nlink %d", b[16], nlink)
				}
				if !slices.Equal(b[ns.filestatSize:], []byte(strings.Repeat("\xaa", int(64-ns.filestatSize)))) {
					t.Fatalf("wrote past the %d-byte filestat", ns.filestatSize)
				}
			}},
		{name: "fd 3", fn: "fd_filestat_get", args: a(3, wasiRet), want: errnoBadf},
		{name: "ends at the end of memory", fn: "fd_filestat_get", args: a(2, uint64(wasiMemEnd-ns.filestatSize)), want: errnoSuccess},
		{name: "one byte past the end", fn: "fd_filestat_get", args: a(2, uint64(wasiMemEnd-ns.filestatSize+1)), want: errnoFault},

		// fd_read: stdin is at end of file.
		{name: "stdin is empty", fn: "fd_read", args: a(0, wasiIovs, 2, wasiRet),
			setup: func(c *wasiCaller) {
				c.iovs(wasiIovs, [2]uint32{wasiBuf, 16}, [2]uint32{wasiBuf + 16, 16})
				c.fill(wasiRet, 4)
			},
			want: errnoSuccess,
			check: func(t *testing.T, c *wasiCaller) {
				if c.u32(wasiRet) != 0 {
					t.Fatalf("nread %d", c.u32(wasiRet))
				}
			}},
		{name: "stdout is not readable", fn: "fd_read", args: a(1, wasiIovs, 1, wasiRet), want: errnoBadf},
		{name: "fd 3", fn: "fd_read", args: a(3, wasiIovs, 1, wasiRet), want: errnoBadf},
		{name: "bad iovec array", fn: "fd_read", args: a(0, wasiOOB, 1, wasiRet), want: errnoFault},
		{name: "bad buffer", fn: "fd_read", args: a(0, wasiIovs, 1, wasiRet),
			setup: func(c *wasiCaller) { c.iovs(wasiIovs, [2]uint32{wasiMemEnd - 4, 8}) }, want: errnoFault},
		{name: "bad nread", fn: "fd_read", args: a(0, wasiIovs, 1, wasiOOB),
			setup: func(c *wasiCaller) { c.iovs(wasiIovs, [2]uint32{wasiBuf, 8}) }, want: errnoFault},
		{name: "too many iovecs", fn: "fd_read", args: a(0, wasiIovs, 1025, wasiRet), want: errnoInval},

		// fd_renumber: the streams stay where they are.
		{name: "stdio to stdio", fn: "fd_renumber", args: a(1, 2), want: errnoNotsup},
		{name: "to fd 5", fn: "fd_renumber", args: a(1, 5), want: errnoBadf},
		{name: "from fd 5", fn: "fd_renumber", args: a(5, 1), want: errnoBadf},

		// No preopened directories.
		{name: "stdin", fn: "fd_prestat_get", args: a(0, wasiRet), want: errnoBadf},
		{name: "fd 3", fn: "fd_prestat_get", args: a(3, wasiRet), want: errnoBadf},
		{name: "fd 3, bad pointer", fn: "fd_prestat_get", args: a(3, wasiOOB), want: errnoBadf},
		{name: "fd 3", fn: "fd_prestat_dir_name", args: a(3, wasiBuf, 16), want: errnoBadf},
	}

	// Functions that only look at the fd.
	for _, f := range []struct {
		fn      string
		nargs   int
		onStdio uint32
	}{
		{"fd_advise", 4, errnoSpipe},
		{"fd_allocate", 3, errnoSpipe},
		{"fd_close", 1, errnoSuccess},
		{"fd_datasync", 1, errnoSuccess},
		{"fd_fdstat_set_flags", 2, errnoSuccess},
		{"fd_fdstat_set_rights", 3, errnoNotsup},
		{"fd_filestat_set_size", 2, errnoInval},
		{"fd_filestat_set_times", 4, errnoNotsup},
		{"fd_pread", 5, errnoSpipe},
		{"fd_pwrite", 5, errnoSpipe},
		{"fd_readdir", 5, errnoNotdir},
		{"fd_seek", 4, errnoSpipe},
		{"fd_sync", 1, errnoSuccess},
		{"fd_tell", 2, errnoSpipe},
		{"sock_accept", 3, errnoNotsock},
		{"sock_recv", 6, errnoNotsock},
		{"sock_send", 5, errnoNotsock},
		{"sock_shutdown", 2, errnoNotsock},
	} {
		cases = append(cases, wasiFdCases(f.fn, f.nargs, f.onStdio)...)
	}
	// Path functions: argument index of the directory fd.
	for _, f := range []struct {
		fn     string
		nargs  int
		dirArg int
	}{
		{"path_create_directory", 3, 0},
		{"path_filestat_get", 5, 0},
		{"path_filestat_set_times", 7, 0},
		{"path_link", 7, 0},
		{"path_open", 9, 0},
		{"path_readlink", 6, 0},
		{"path_remove_directory", 3, 0},
		{"path_rename", 6, 0},
		{"path_symlink", 5, 2},
		{"path_unlink_file", 3, 0},
	} {
		cases = append(cases, wasiPathCases(f.fn, f.nargs, f.dirArg)...)
	}
	return cases
}

// TestWASIFunctions calls every WASI function (but fd_write, poll_oneoff
// and proc_exit, which have their own tests) with good and bad arguments
// under both module names.
func TestWASIFunctions(t *testing.T) {
	for _, ns := range wasiNamespaces {
		t.Run(ns.module, func(t *testing.T) {
			c := newWASICaller(t, VMConfig{Env: []Field{{Key: "A", Value: "1"}, {Key: "BB", Value: "22"}}}, zapcore.InfoLevel)
			c.ns = ns
			for _, tc := range wasiCases(ns) {
				t.Run(tc.fn+"/"+tc.name, func(t *testing.T) {
					c.t = t
					if tc.setup != nil {
						tc.setup(c)
					}
					if got := c.errno(tc.fn, tc.args...); got != tc.want {
						t.Fatalf("%s.%s%v = errno %d, want %d", ns.module, tc.fn, tc.args, got, tc.want)
					}
					if tc.check != nil {
						tc.check(t, c)
					}
				})
			}
		})
	}
}

// TestWASICoverage: the host links exactly the spec's functions under both
// module names, and every one is exercised by a test.
func TestWASICoverage(t *testing.T) {
	tested := map[string]bool{"fd_write": true, "poll_oneoff": true, "proc_exit": true}
	for _, tc := range wasiCases(wasiNamespaces[0]) {
		tested[tc.fn] = true
	}
	for _, ns := range wasiNamespaces {
		var linked []string
		for _, f := range wasiFuncs() {
			if f.module == ns.module {
				linked = append(linked, f.name)
			}
		}
		sort.Strings(linked)
		want := slices.Clone(wasiSpecFuncs)
		sort.Strings(want)
		if !slices.Equal(linked, want) {
			t.Errorf("%s links %v\nwant %v", ns.module, linked, want)
		}
	}
	for _, name := range wasiSpecFuncs {
		if !tested[name] {
			t.Errorf("%s has no test case", name)
		}
	}
	// calls.wasm imports every function under both names with the spec's
	// signatures; it loads only if the host's signatures are the same.
	c := newWASICaller(t, VMConfig{}, zapcore.InfoLevel)
	imported := 0
	for _, def := range c.vm.mod.compiled.ImportedFunctions() {
		if mod, _, _ := def.Import(); mod != "env" {
			imported++
		}
	}
	if imported != 2*len(wasiSpecFuncs) {
		t.Fatalf("calls.wasm imports %d WASI functions, want %d", imported, 2*len(wasiSpecFuncs))
	}
	for _, f := range wasiFuncs() {
		if f.name == "proc_exit" {
			if len(f.results) != 0 {
				t.Errorf("%s.proc_exit returns %v", f.module, f.results)
			}
		} else if !slices.Equal(f.results, []api.ValueType{api.ValueTypeI32}) {
			t.Errorf("%s.%s returns %v, want an errno", f.module, f.name, f.results)
		}
	}
}

// TestWASIFdWrite: stdout and stderr are the plugin's log.
func TestWASIFdWrite(t *testing.T) {
	for _, ns := range wasiNamespaces {
		t.Run(ns.module, func(t *testing.T) {
			c := newWASICaller(t, VMConfig{MemoryLimitPages: 128}, zapcore.DebugLevel)
			c.ns = ns
			hello := uint32(wasiBuf)
			c.write(hello, []byte("hello world\n"))
			type logged struct {
				lvl zapcore.Level
				msg string
			}
			cases := []struct {
				name  string
				fd    uint64
				vec   [][2]uint32
				nvec  uint64 // 0: len(vec)
				iovs  uint32 // 0: wasiIovs
				ret   uint32 // 0: wasiRet
				want  uint32
				n     uint32
				lines []logged
			}{
				{name: "stdout, two iovecs", fd: 1, vec: [][2]uint32{{hello, 6}, {hello + 6, 6}},
					want: errnoSuccess, n: 12, lines: []logged{{zapcore.InfoLevel, "hello world"}}},
				{name: "stderr", fd: 2, vec: [][2]uint32{{hello, 5}},
					want: errnoSuccess, n: 5, lines: []logged{{zapcore.ErrorLevel, "hello"}}},
				{name: "only one trailing newline goes", fd: 1, vec: [][2]uint32{{hello, 12}, {hello + 11, 1}},
					want: errnoSuccess, n: 13, lines: []logged{{zapcore.InfoLevel, "hello world\n"}}},
				{name: "empty iovecs log nothing", fd: 1, vec: [][2]uint32{{wasiOOB, 0}, {hello, 0}},
					want: errnoSuccess, n: 0},
				{name: "a newline alone logs nothing", fd: 1, vec: [][2]uint32{{hello + 11, 1}},
					want: errnoSuccess, n: 1},
				{name: "no iovecs", fd: 1, nvec: 0, iovs: wasiOOB, want: errnoSuccess, n: 0},
				{name: "stdin", fd: 0, vec: [][2]uint32{{hello, 5}}, want: errnoBadf},
				{name: "fd 3", fd: 3, vec: [][2]uint32{{hello, 5}}, want: errnoBadf},
				{name: "bad iovec array", fd: 1, nvec: 1, iovs: wasiOOB, want: errnoFault},
				{name: "iovec array across the end", fd: 1, nvec: 2, iovs: wasiMemEnd - 12, want: errnoFault},
				{name: "second buffer out of bounds logs nothing", fd: 1,
					vec: [][2]uint32{{hello, 5}, {wasiMemEnd - 2, 4}}, want: errnoFault},
				{name: "buffer wraps", fd: 2, vec: [][2]uint32{{wasiOOB, 100}}, want: errnoFault},
				{name: "bad nwritten logs nothing", fd: 1, vec: [][2]uint32{{hello, 5}}, ret: wasiOOB, want: errnoFault},
				{name: "more than 1024 iovecs", fd: 1, nvec: 1025, want: errnoInval},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c.t = t
					c.logs.TakeAll()
					iovs, ret, nvec := uint32(wasiIovs), uint32(wasiRet), uint64(len(tc.vec))
					if tc.iovs != 0 {
						iovs = tc.iovs
					}
					if tc.ret != 0 {
						ret = tc.ret
					}
					if tc.nvec != 0 || tc.vec == nil {
						nvec = tc.nvec
					}
					if len(tc.vec) > 0 {
						c.iovs(iovs, tc.vec...)
					}
					c.fill(wasiRet, 4)
					if got := c.errno("fd_write", tc.fd, uint64(iovs), nvec, uint64(ret)); got != tc.want {
						t.Fatalf("errno %d, want %d", got, tc.want)
					}
					if tc.want == errnoSuccess && c.u32(wasiRet) != tc.n {
						t.Fatalf("nwritten %d, want %d", c.u32(wasiRet), tc.n)
					}
					var lines []logged
					for _, e := range c.logs.TakeAll() {
						lines = append(lines, logged{e.Level, e.Message})
						if wasiLogField(e, "vm_id") != "wasi" {
							t.Errorf("line without vm_id: %+v", e)
						}
					}
					if !slices.Equal(lines, tc.lines) {
						t.Fatalf("logged %v, want %v", lines, tc.lines)
					}
				})
			}

			t.Run("long line is truncated, fully written", func(t *testing.T) {
				c.t = t
				c.logs.TakeAll()
				const size = maxLogMessageBytes + 1000
				p := c.mallocBuf(size, 'x')
				for _, vec := range [][][2]uint32{
					{{p, size}},
					{{p, 1000}, {p, size - 1000}},
				} {
					c.iovs(wasiIovs, vec...)
					if e := c.errno("fd_write", 1, wasiIovs, uint64(len(vec)), wasiRet); e != 0 || c.u32(wasiRet) != size {
						t.Fatalf("errno %d nwritten %d", e, c.u32(wasiRet))
					}
					lines := c.logs.TakeAll()
					if len(lines) != 1 || len(lines[0].Message) != maxLogMessageBytes || strings.Trim(lines[0].Message, "x") != "" {
						t.Fatalf("%d lines, first %d bytes", len(lines), len(lines[0].Message))
					}
				}
			})

			t.Run("more than 2 GiB in total", func(t *testing.T) {
				c.t = t
				const size = 3 << 20 // 3 MiB, 1024 times
				p := c.mallocBuf(size, 'y')
				vec := make([][2]uint32, 1024)
				for k := range vec {
					vec[k] = [2]uint32{p, size}
				}
				c.iovs(wasiIovs, vec...)
				if e := c.errno("fd_write", 1, wasiIovs, 1024, wasiRet); e != errnoInval {
					t.Fatalf("errno %d, want INVAL", e)
				}
			})
		})
	}
}

// mallocBuf allocates size bytes in the guest and fills them with b.
func (c *wasiCaller) mallocBuf(size uint32, b byte) uint32 {
	c.t.Helper()
	c.inst.mu.Lock()
	p, ok := c.inst.allocate(size)
	c.inst.mu.Unlock()
	if !ok {
		c.t.Fatalf("malloc(%d) failed", size)
	}
	c.write(p, []byte(strings.Repeat(string(b), int(size))))
	return p
}

// TestWASILogLevel: a disabled level logs nothing and still reports the
// bytes written.
func TestWASILogLevel(t *testing.T) {
	c := newWASICaller(t, VMConfig{}, zapcore.ErrorLevel)
	c.write(wasiBuf, []byte("quiet\n"))
	c.iovs(wasiIovs, [2]uint32{wasiBuf, 6})
	if e := c.errno("fd_write", 1, wasiIovs, 1, wasiRet); e != 0 || c.u32(wasiRet) != 6 {
		t.Fatalf("errno %d nwritten %d", e, c.u32(wasiRet))
	}
	if e := c.errno("fd_write", 2, wasiIovs, 1, wasiRet); e != 0 {
		t.Fatalf("errno %d", e)
	}
	if got := c.logs.All(); len(got) != 1 || got[0].Message != "quiet" || got[0].Level != zapcore.ErrorLevel {
		t.Fatalf("logged %v", got)
	}
}

// subscription builds one poll_oneoff subscription for ns.
func (ns wasiNS) clockSub(userdata uint64, clock uint32, timeout uint64, abstime bool) []byte {
	b := make([]byte, ns.subSize)
	binary.LittleEndian.PutUint64(b, userdata)
	b[8] = 0
	binary.LittleEndian.PutUint32(b[ns.clockOff:], clock)
	binary.LittleEndian.PutUint64(b[ns.clockOff+8:], timeout)
	if abstime {
		binary.LittleEndian.PutUint16(b[ns.clockOff+24:], 1)
	}
	return b
}

func (ns wasiNS) fdSub(userdata uint64, typ byte, fd uint32) []byte {
	b := make([]byte, ns.subSize)
	binary.LittleEndian.PutUint64(b, userdata)
	b[8] = typ
	binary.LittleEndian.PutUint32(b[16:], fd)
	return b
}

type wasiEvent struct {
	userdata uint64
	errno    uint16
	typ      byte
}

func TestWASIPollOneoff(t *testing.T) {
	const in, out = 0x1000, 0x3000
	for _, ns := range wasiNamespaces {
		t.Run(ns.module, func(t *testing.T) {
			c := newWASICaller(t, VMConfig{CallTimeout: 5 * time.Second}, zapcore.InfoLevel)
			c.ns = ns
			mono := func() uint64 {
				if e := c.errno("clock_time_get", 1, 0, wasiRet2); e != 0 {
					t.Fatalf("clock_time_get: %d", e)
				}
				return c.u64(wasiRet2)
			}
			ms := uint64(time.Millisecond)
			cases := []struct {
				name string
				subs func() [][]byte
				n    uint64 // 0: len(subs)
				in   uint32
				out  uint32
				ret  uint32
				want uint32
				// events expected, in order; minimum and maximum time taken.
				events   []wasiEvent
				min, max time.Duration
			}{
				{name: "relative clock sleeps", subs: func() [][]byte { return [][]byte{ns.clockSub(7, 1, 30*ms, false)} },
					events: []wasiEvent{{7, 0, 0}}, min: 30 * time.Millisecond, max: 2 * time.Second},
				{name: "realtime relative clock", subs: func() [][]byte { return [][]byte{ns.clockSub(8, 0, 20*ms, false)} },
					events: []wasiEvent{{8, 0, 0}}, min: 20 * time.Millisecond, max: 2 * time.Second},
				{name: "absolute monotonic clock", subs: func() [][]byte { return [][]byte{ns.clockSub(9, 1, mono()+25*ms, true)} },
					events: []wasiEvent{{9, 0, 0}}, min: 20 * time.Millisecond, max: 2 * time.Second},
				{name: "absolute realtime clock in the past", subs: func() [][]byte {
					return [][]byte{ns.clockSub(10, 0, uint64(wasiFixedNow.UnixNano())-1, true)}
				}, events: []wasiEvent{{10, 0, 0}}, max: time.Second},
				{name: "zero timeout", subs: func() [][]byte { return [][]byte{ns.clockSub(11, 1, 0, false)} },
					events: []wasiEvent{{11, 0, 0}}, max: time.Second},
				{name: "earliest of two clocks", subs: func() [][]byte {
					return [][]byte{ns.clockSub(1, 1, uint64(time.Hour), false), ns.clockSub(2, 1, 15*ms, false)}
				}, events: []wasiEvent{{2, 0, 0}}, min: 15 * time.Millisecond, max: 2 * time.Second},
				{name: "stdin is ready at once", subs: func() [][]byte {
					return [][]byte{ns.clockSub(1, 1, uint64(time.Hour), false), ns.fdSub(3, 1, 0)}
				}, events: []wasiEvent{{3, 0, 1}}, max: time.Second},
				{name: "stdout and stderr writable, others BADF", subs: func() [][]byte {
					return [][]byte{ns.fdSub(1, 2, 1), ns.fdSub(2, 2, 2), ns.fdSub(3, 2, 0), ns.fdSub(4, 1, 1), ns.fdSub(5, 1, 9)}
				}, events: []wasiEvent{{1, 0, 2}, {2, 0, 2}, {3, errnoBadf, 2}, {4, errnoBadf, 1}, {5, errnoBadf, 1}}, max: time.Second},
				{name: "unknown clock", subs: func() [][]byte {
					return [][]byte{ns.clockSub(6, 2, uint64(time.Hour), false), ns.clockSub(7, 99, 1, false)}
				}, events: []wasiEvent{{6, errnoInval, 0}, {7, errnoInval, 0}}, max: time.Second},
				{name: "unknown subscription type", subs: func() [][]byte {
					return [][]byte{ns.fdSub(1, 1, 0), ns.fdSub(2, 3, 0)}
				}, want: errnoInval},
				{name: "no subscriptions", subs: func() [][]byte { return nil }, want: errnoInval},
				{name: "subscriptions out of bounds", subs: func() [][]byte { return [][]byte{ns.clockSub(1, 1, 0, false)} },
					in: wasiMemEnd - 8, want: errnoFault},
				{name: "events out of bounds", subs: func() [][]byte { return [][]byte{ns.clockSub(1, 1, 0, false)} },
					out: wasiMemEnd - 31, want: errnoFault},
				{name: "nevents out of bounds", subs: func() [][]byte { return [][]byte{ns.clockSub(1, 1, uint64(time.Hour), false)} },
					ret: wasiOOB, want: errnoFault, max: time.Second},
				{name: "huge count", subs: func() [][]byte { return [][]byte{ns.clockSub(1, 1, 0, false)} },
					n: math.MaxUint32, want: errnoFault},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c.t = t
					subs := tc.subs()
					var buf []byte
					for _, s := range subs {
						buf = append(buf, s...)
					}
					if len(buf) > 0 {
						c.write(in, buf)
					}
					c.fill(out, 8*32)
					c.fill(wasiRet, 4)
					inP, outP, retP, n := uint32(in), uint32(out), uint32(wasiRet), uint64(len(subs))
					if tc.in != 0 {
						inP = tc.in
					}
					if tc.out != 0 {
						outP = tc.out
					}
					if tc.ret != 0 {
						retP = tc.ret
					}
					if tc.n != 0 {
						n = tc.n
					}
					start := time.Now()
					got := c.errno("poll_oneoff", uint64(inP), uint64(outP), n, uint64(retP))
					took := time.Since(start)
					if got != tc.want {
						t.Fatalf("errno %d, want %d", got, tc.want)
					}
					if took < tc.min || (tc.max > 0 && took > tc.max) {
						t.Fatalf("took %v, want between %v and %v", took, tc.min, tc.max)
					}
					if tc.want != errnoSuccess {
						if c.u32(wasiRet) != 0xaaaaaaaa {
							t.Fatal("nevents written on failure")
						}
						return
					}
					nev := c.u32(wasiRet)
					var evs []wasiEvent
					for k := uint32(0); k < nev; k++ {
						e := c.bytes(out+32*k, 32)
						evs = append(evs, wasiEvent{binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint16(e[8:]), e[10]})
						if !slices.Equal(e[11:], make([]byte, 21)) {
							t.Fatalf("event %d has stray bytes %x", k, e)
						}
					}
					if !slices.Equal(evs, tc.events) {
						t.Fatalf("events %+v, want %+v", evs, tc.events)
					}
				})
			}
		})
	}
}

// TestWASIPollOneoffDeadline: a sleep longer than the callback deadline ends
// as a timeout within the deadline plus the watchdog's margin. Like Go's
// runtime, the test polls again after an early wake-up with no event.
func TestWASIPollOneoffDeadline(t *testing.T) {
	const deadline = 150 * time.Millisecond
	for _, ns := range wasiNamespaces {
		t.Run(ns.module, func(t *testing.T) {
			c := newWASICaller(t, VMConfig{CallTimeout: deadline}, zapcore.InfoLevel)
			c.ns = ns
			c.write(0x1000, ns.clockSub(1, 1, uint64(time.Hour), false))
			start := time.Now()
			var err error
			for err == nil && time.Since(start) < 10*time.Second {
				var errno uint32
				errno, err = c.call("poll_oneoff", 0x1000, 0x2000, 1, wasiRet)
				if err == nil && (errno != 0 || c.u32(wasiRet) != 0) {
					t.Fatalf("an hour's sleep returned errno %d with %d events", errno, c.u32(wasiRet))
				}
			}
			took := time.Since(start)
			var f *InstanceFailure
			if !errors.As(err, &f) || f.Kind != FailureTimeout {
				t.Fatalf("err %v, want a timeout", err)
			}
			if took < deadline || took > deadline+2*time.Second {
				t.Fatalf("an hour's sleep with a %v deadline took %v", deadline, took)
			}
			if c.rt.Failures().Get(FailureTimeout) != 1 {
				t.Fatalf("failures %v", c.rt.Failures().Snapshot())
			}
		})
	}
}

// TestWASIProcExit: proc_exit ends the instance (wazero's exit error), is
// counted as proc_exit, and the VM replaces the instance.
func TestWASIProcExit(t *testing.T) {
	for _, ns := range wasiNamespaces {
		t.Run(ns.module, func(t *testing.T) {
			c := newWASICaller(t, VMConfig{}, zapcore.InfoLevel)
			c.ns = ns
			_, err := c.call("proc_exit", 3)
			var f *InstanceFailure
			var exit *sys.ExitError
			if !errors.As(err, &f) || f.Kind != FailureExit || !errors.As(err, &exit) || exit.ExitCode() != 3 {
				t.Fatalf("err %v, want proc_exit with code 3", err)
			}
			if !c.inst.dead.Load() {
				t.Fatal("the instance lives on")
			}
			if _, err := c.call("sched_yield"); err == nil {
				t.Fatal("a call after proc_exit succeeded")
			}
			if got := c.rt.Failures().Get(FailureExit); got != 1 {
				t.Fatalf("proc_exit failures %d", got)
			}
			wasiWaitFor(t, 5*time.Second, func() bool { return c.vm.LiveInstances() == 1 })
		})
	}
}

// TestWASIStdioFilter runs testdata/wasi/stdio.wasm: a filter writing to
// stdout and stderr through wasi_unstable and exiting on demand.
func TestWASIStdioFilter(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile("testdata/wasi/stdio.wasm")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	rt, err := NewRuntime(ctx, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	vm, err := rt.VM(ctx, VMConfig{ID: "stdio", Code: code, Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(ctx)
	p, err := vm.NewPlugin(ctx, PluginConfig{Name: "stdio-plugin"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)

	s := p.NewHTTPStream(StreamOptions{})
	h := NewHeaders(":path", "/")
	if a := s.OnRequestHeaders(h, true); a != ActionContinue {
		t.Fatalf("action %d: %v", a, s.Failure())
	}
	s.Close()
	if v, _ := h.Get("x-wasi-errnos"); v != "00,00,21,08" {
		t.Fatalf("x-wasi-errnos=%q", v)
	}
	for _, want := range []struct {
		lvl zapcore.Level
		msg string
	}{{zapcore.InfoLevel, "hello stdout"}, {zapcore.ErrorLevel, "oops"}} {
		lines := wasiLogLines(logs, want.lvl, want.msg)
		if len(lines) != 1 || lines[0].Message != want.msg || wasiLogField(lines[0], "plugin") != "stdio-plugin" {
			t.Fatalf("want one %s line %q with the plugin, got %+v", want.lvl, want.msg, lines)
		}
	}

	// proc_exit in a stream: the stream gets the failure policy (503), the
	// instance is replaced, the next stream works.
	s = p.NewHTTPStream(StreamOptions{})
	if a := s.OnRequestHeaders(NewHeaders(":path", "/", "x-exit", "1"), true); a != ActionPause ||
		s.LocalResponse() == nil || s.LocalResponse().StatusCode != 503 {
		t.Fatalf("proc_exit: action %d local %+v", a, s.LocalResponse())
	}
	s.Close()
	if got := rt.Failures().Get(FailureExit); got != 1 {
		t.Fatalf("proc_exit failures %d (%v)", got, rt.Failures().Snapshot())
	}
	wasiWaitFor(t, 5*time.Second, func() bool { return vm.LiveInstances() == 1 })
	s = p.NewHTTPStream(StreamOptions{})
	h = NewHeaders(":path", "/")
	if a := s.OnRequestHeaders(h, true); a != ActionContinue {
		t.Fatalf("after the replacement: action %d: %v", a, s.Failure())
	}
	s.Close()
	if v, _ := h.Get("x-wasi-errnos"); v != "00,00,21,08" {
		t.Fatalf("after the replacement: x-wasi-errnos=%q", v)
	}
}

// FuzzWASIFdWrite feeds fd_write arbitrary iovec arrays, pointers and
// counts. The host must never fail the instance, and must answer exactly
// what a reference model of the checks says.
func FuzzWASIFdWrite(f *testing.F) {
	le := binary.LittleEndian
	vec := func(pairs ...uint32) []byte {
		b := make([]byte, 4*len(pairs))
		for k, v := range pairs {
			le.PutUint32(b[4*k:], v)
		}
		return b
	}
	const table = 0x1000
	f.Add(uint32(1), uint32(table), uint32(1), uint32(wasiRet), vec(wasiBuf, 5))
	f.Add(uint32(2), uint32(table), uint32(2), uint32(wasiRet), vec(wasiBuf, 5, 0, 0))
	f.Add(uint32(1), uint32(table), uint32(1), uint32(wasiRet), vec(wasiOOB, 100))
	f.Add(uint32(1), uint32(table), uint32(1), uint32(wasiRet), vec(wasiMemEnd-1, 2))
	f.Add(uint32(1), uint32(table), uint32(3), uint32(wasiOOB), vec(wasiBuf, 1, wasiBuf, 2, wasiBuf, 3))
	f.Add(uint32(1), uint32(wasiMemEnd-4), uint32(1), uint32(wasiRet), []byte{})
	f.Add(uint32(1), uint32(table), uint32(1025), uint32(wasiRet), []byte{})
	f.Add(uint32(1), uint32(table), uint32(0xFFFFFFFF), uint32(wasiRet), []byte{})
	f.Add(uint32(0), uint32(table), uint32(1), uint32(wasiRet), vec(wasiBuf, 5))
	f.Add(uint32(1), uint32(table), uint32(2), uint32(wasiMemEnd-4), vec(0, wasiMemEnd, 0, 0))

	c := newWASICaller(f, VMConfig{}, zapcore.WarnLevel)
	f.Fuzz(func(t *testing.T, fd, iovs, n, ret uint32, data []byte) {
		if len(data) > 8*64 {
			data = data[:8*64]
		}
		c.t = t
		c.write(table, data)
		mem := c.bytes(0, wasiMemEnd)
		inBounds := func(p, size uint32) bool { return size == 0 || uint64(p)+uint64(size) <= wasiMemEnd }
		want := func() uint32 {
			if fd != 1 && fd != 2 {
				return errnoBadf
			}
			if n > 1024 {
				return errnoInval
			}
			if !inBounds(iovs, 8*n) {
				return errnoFault
			}
			var total uint64
			for k := uint32(0); k < n; k++ {
				p, size := le.Uint32(mem[iovs+8*k:]), le.Uint32(mem[iovs+8*k+4:])
				if !inBounds(p, size) {
					return errnoFault
				}
				total += uint64(size)
			}
			if total > math.MaxInt32 {
				return errnoInval
			}
			if !inBounds(ret, 4) {
				return errnoFault
			}
			return errnoSuccess
		}()
		var total uint32
		if want == errnoSuccess {
			for k := uint32(0); k < n; k++ {
				total += le.Uint32(mem[iovs+8*k+4:])
			}
		}
		got, err := c.call("fd_write", uint64(fd), uint64(iovs), uint64(n), uint64(ret))
		if err != nil {
			t.Fatalf("fd_write failed the instance: %v", err)
		}
		if got != want {
			t.Fatalf("fd_write(%d, %#x, %d, %#x) = %d, want %d", fd, iovs, n, ret, got, want)
		}
		if want == errnoSuccess && c.u32(ret) != total {
			t.Fatalf("nwritten %d, want %d", c.u32(ret), total)
		}
	})
}
