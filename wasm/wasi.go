package wasm

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap/zapcore"
)

// WASI preview1 errno values used by the host.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNosys   = 52
	errnoNotsup  = 58
)

// wasiModules are the module names WASI preview1 is linked under.
var wasiModules = []string{"wasi_snapshot_preview1", "wasi_unstable"}

func wasiFuncs() []hostFunc {
	var out []hostFunc
	for _, m := range wasiModules {
		for _, f := range wasiFuncsFor() {
			f.module = m
			out = append(out, f)
		}
	}
	return out
}

func wasiFunc(name string, params []api.ValueType, fn func(ctx context.Context, i *instance, st []uint64) uint32) hostFunc {
	return hostFunc{name: name, params: params, results: statusResult,
		fn: func(ctx context.Context, i *instance, st []uint64) { st[0] = uint64(fn(ctx, i, st)) }}
}

// wasiFuncsFor lists the WASI functions (module name filled in by the caller).
// TODO(wasi helper): every preview1 function; this is the minimum C and
// AssemblyScript modules need.
func wasiFuncsFor() []hostFunc {
	return []hostFunc{
		wasiFunc("fd_write", i32s(4), wasiFdWrite),
		wasiFunc("environ_sizes_get", i32s(2), wasiEnvironSizesGet),
		wasiFunc("environ_get", i32s(2), wasiEnvironGet),
		wasiFunc("args_sizes_get", i32s(2), func(_ context.Context, i *instance, st []uint64) uint32 {
			if !i.writeU32(u32(st, 0), 0) || !i.writeU32(u32(st, 1), 0) {
				return errnoFault
			}
			return errnoSuccess
		}),
		wasiFunc("args_get", i32s(2), func(context.Context, *instance, []uint64) uint32 { return errnoSuccess }),
		wasiFunc("clock_time_get", []api.ValueType{i32, i64, i32}, wasiClockTimeGet),
		wasiFunc("random_get", i32s(2), wasiRandomGet),
		wasiFunc("fd_close", i32s(1), func(context.Context, *instance, []uint64) uint32 { return errnoBadf }),
		wasiFunc("fd_seek", []api.ValueType{i32, i64, i32, i32}, func(context.Context, *instance, []uint64) uint32 { return errnoBadf }),
		wasiFunc("fd_fdstat_get", i32s(2), func(context.Context, *instance, []uint64) uint32 { return errnoBadf }),
		{name: "proc_exit", params: i32s(1), fn: wasiProcExit},
	}
}

// fd_write(fd, iovs, iovs_len, return_written): stdout logs at info,
// stderr at error.
func wasiFdWrite(_ context.Context, i *instance, st []uint64) uint32 {
	fd := u32(st, 0)
	var lvl zapcore.Level
	switch fd {
	case 1:
		lvl = zapcore.InfoLevel
	case 2:
		lvl = zapcore.ErrorLevel
	default:
		return errnoBadf
	}
	iovs, n := u32(st, 1), u32(st, 2)
	if n > 1024 {
		return errnoInval
	}
	var msg []byte
	var total uint32
	for k := uint32(0); k < n; k++ {
		ptr, ok1 := i.mem.ReadUint32Le(iovs + 8*k)
		size, ok2 := i.mem.ReadUint32Le(iovs + 8*k + 4)
		if !ok1 || !ok2 {
			return errnoFault
		}
		b, ok := i.read(ptr, size)
		if !ok {
			return errnoFault
		}
		if len(msg) < maxLogMessageBytes {
			msg = append(msg, b...)
		}
		total += size
	}
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	if len(msg) > 0 {
		i.guestLog(lvl, msg, false)
	}
	if !i.writeU32(u32(st, 3), total) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiEnvironSizesGet(_ context.Context, i *instance, st []uint64) uint32 {
	env := i.vm.cfg.Env
	size := 0
	for _, e := range env {
		size += len(e.Key) + 1 + len(e.Value) + 1
	}
	if !i.writeU32(u32(st, 0), uint32(len(env))) || !i.writeU32(u32(st, 1), uint32(size)) {
		return errnoFault
	}
	return errnoSuccess
}

func wasiEnvironGet(_ context.Context, i *instance, st []uint64) uint32 {
	ptrs, buf := u32(st, 0), u32(st, 1)
	for k, e := range i.vm.cfg.Env {
		s := e.Key + "=" + e.Value + "\x00"
		if !i.writeU32(ptrs+uint32(4*k), buf) || !i.mem.WriteString(buf, s) {
			return errnoFault
		}
		buf += uint32(len(s))
	}
	return errnoSuccess
}

func wasiClockTimeGet(_ context.Context, i *instance, st []uint64) uint32 {
	var v uint64
	switch u32(st, 0) {
	case 0: // realtime
		v = uint64(i.now().UnixNano())
	case 1: // monotonic
		v = uint64(time.Since(processStart).Nanoseconds())
	default:
		return errnoNotsup
	}
	if !i.writeU64(u32(st, 2), v) {
		return errnoFault
	}
	return errnoSuccess
}

// processStart anchors the monotonic clock.
var processStart = time.Now()

func wasiRandomGet(_ context.Context, i *instance, st []uint64) uint32 {
	size := u32(st, 1)
	if size > maxRandomBytes {
		return errnoInval
	}
	buf, ok := i.read(u32(st, 0), size)
	if !ok {
		return errnoFault
	}
	_, _ = rand.Read(buf)
	return errnoSuccess
}

// proc_exit ends the instance: wazero closes the module with the exit code,
// which the host treats as a failure of the instance.
func wasiProcExit(ctx context.Context, i *instance, st []uint64) {
	code := u32(st, 0)
	_ = i.mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}
