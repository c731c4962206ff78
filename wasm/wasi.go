package wasm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap/zapcore"
)

// WASI preview1 for guests.
//
// Proxy-Wasm modules are built with WASI toolchains (wasi-libc, Go's
// wasip1 port, TinyGo, AssemblyScript's WASI shim), so their runtimes import
// WASI functions even though a filter has no files, sockets or processes.
// The host links every wasi_snapshot_preview1 function, under that name and
// under the older "wasi_unstable" (which proxy-wasm-cpp-host also links), so
// that no module fails to load over an import it will never really use:
//
//   - fd 1 and 2 are the plugin's log: fd_write logs each call as one line
//     at info (stdout) or error (stderr). fd 0 is an empty stdin.
//   - fds 0-2 look like character devices to fd_fdstat_get and
//     fd_filestat_get, so libc's stdio and Go's os package accept them.
//   - there are no preopened directories (fd_prestat_get answers BADF, which
//     ends libc's preopen scan) and no other fds: every other fd is BADF.
//   - the environment is VMConfig.Env; there are no arguments.
//   - clocks: realtime is the runtime's clock (Options.Now), monotonic counts
//     from the runtime's creation. poll_oneoff really sleeps for a clock
//     subscription, bounded by the callback deadline (see pollOneoff).
//   - proc_exit ends the instance; the host replaces it.
//
// Nothing answers with a trap: an unsupported call gets its errno, a bad
// guest pointer gets FAULT. docs/proxy-wasm.md has the table per function.

// WASI preview1 errno values the host answers with.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNosys   = 52
	errnoNotdir  = 54
	errnoNotsock = 57
	errnoNotsup  = 58
	errnoSpipe   = 70
)

// WASI preview1 constants used by the host.
const (
	wasiClockRealtime     = 0
	wasiClockMonotonic    = 1
	wasiClockProcessCPU   = 2
	wasiClockThreadCPU    = 3
	wasiFiletypeCharDev   = 2
	wasiEventClock        = 0
	wasiEventFdRead       = 1
	wasiEventFdWrite      = 2
	wasiSubclockAbstime   = 1
	wasiEventSize         = 32
	wasiFdstatSize        = 24
	wasiMaxIovs           = 1024 // IOV_MAX, as in Linux and wasi-libc
	wasiMaxWriteBytes     = math.MaxInt32
	wasiClockResolutionNs = 1

	// Rights reported for the standard streams.
	wasiRightFdRead          = 1 << 1
	wasiRightFdFdstatSetFlag = 1 << 3
	wasiRightFdWrite         = 1 << 6
	wasiRightFdFilestatGet   = 1 << 21
	wasiRightPollFdReadwrite = 1 << 27
)

// wasiLayout holds what differs between the two WASI module names: the
// functions are the same, but wasi_unstable (snapshot 0) lays out a clock
// subscription and a filestat differently.
type wasiLayout struct {
	module string
	// subscriptionSize is the size of one poll_oneoff subscription;
	// clockOffset the offset of the clock id inside it (timeout, precision
	// and flags follow at +8, +16, +24).
	subscriptionSize uint32
	clockOffset      uint32
	// filestatSize is the size of a filestat; nlink is a u64 at 24 in
	// preview1 and a u32 at 20 in snapshot 0.
	filestatSize uint32
	snapshot0    bool
}

// wasiLayouts are the module names WASI is linked under.
var wasiLayouts = []wasiLayout{
	{module: "wasi_snapshot_preview1", subscriptionSize: 48, clockOffset: 16, filestatSize: 64},
	{module: "wasi_unstable", subscriptionSize: 56, clockOffset: 24, filestatSize: 56, snapshot0: true},
}

func wasiFuncs() []hostFunc {
	var out []hostFunc
	for k := range wasiLayouts {
		l := &wasiLayouts[k]
		for _, f := range wasiFuncsFor(l) {
			f.module = l.module
			out = append(out, f)
		}
	}
	return out
}

// wasiHandler implements a WASI function and returns its errno.
type wasiHandler func(ctx context.Context, i *instance, st []uint64) uint32

func wasiFunc(name string, params []api.ValueType, fn wasiHandler) hostFunc {
	return hostFunc{name: name, params: params, results: statusResult,
		fn: func(ctx context.Context, i *instance, st []uint64) { st[0] = uint64(fn(ctx, i, st)) }}
}

func sig(p ...api.ValueType) []api.ValueType { return p }

// wasiFuncsFor lists every wasi_snapshot_preview1 function with its exact
// wasm signature (the module name is filled in by the caller).
func wasiFuncsFor(l *wasiLayout) []hostFunc {
	return []hostFunc{
		// Arguments and environment.
		wasiFunc("args_get", sig(i32, i32), wasiArgsGet),
		wasiFunc("args_sizes_get", sig(i32, i32), wasiArgsSizesGet),
		wasiFunc("environ_get", sig(i32, i32), wasiEnvironGet),
		wasiFunc("environ_sizes_get", sig(i32, i32), wasiEnvironSizesGet),

		// Clocks, randomness, scheduling.
		wasiFunc("clock_res_get", sig(i32, i32), wasiClockResGet),
		wasiFunc("clock_time_get", sig(i32, i64, i32), wasiClockTimeGet),
		wasiFunc("random_get", sig(i32, i32), wasiRandomGet),
		wasiFunc("sched_yield", nil, wasiConst(errnoSuccess)),
		wasiFunc("poll_oneoff", sig(i32, i32, i32, i32), l.pollOneoff),

		// Processes.
		{name: "proc_exit", params: sig(i32), fn: wasiProcExit},
		wasiFunc("proc_raise", sig(i32), wasiConst(errnoNosys)),

		// File descriptors: only the standard streams exist.
		wasiFunc("fd_advise", sig(i32, i64, i64, i32), wasiStdio(errnoSpipe)),
		wasiFunc("fd_allocate", sig(i32, i64, i64), wasiStdio(errnoSpipe)),
		wasiFunc("fd_close", sig(i32), wasiStdio(errnoSuccess)),
		wasiFunc("fd_datasync", sig(i32), wasiStdio(errnoSuccess)),
		wasiFunc("fd_fdstat_get", sig(i32, i32), wasiFdFdstatGet),
		wasiFunc("fd_fdstat_set_flags", sig(i32, i32), wasiStdio(errnoSuccess)),
		wasiFunc("fd_fdstat_set_rights", sig(i32, i64, i64), wasiStdio(errnoNotsup)),
		wasiFunc("fd_filestat_get", sig(i32, i32), l.fdFilestatGet),
		wasiFunc("fd_filestat_set_size", sig(i32, i64), wasiStdio(errnoInval)),
		wasiFunc("fd_filestat_set_times", sig(i32, i64, i64, i32), wasiStdio(errnoNotsup)),
		wasiFunc("fd_pread", sig(i32, i32, i32, i64, i32), wasiStdio(errnoSpipe)),
		wasiFunc("fd_prestat_get", sig(i32, i32), wasiConst(errnoBadf)),
		wasiFunc("fd_prestat_dir_name", sig(i32, i32, i32), wasiConst(errnoBadf)),
		wasiFunc("fd_pwrite", sig(i32, i32, i32, i64, i32), wasiStdio(errnoSpipe)),
		wasiFunc("fd_read", sig(i32, i32, i32, i32), wasiFdRead),
		wasiFunc("fd_readdir", sig(i32, i32, i32, i64, i32), wasiStdio(errnoNotdir)),
		wasiFunc("fd_renumber", sig(i32, i32), wasiFdRenumber),
		wasiFunc("fd_seek", sig(i32, i64, i32, i32), wasiStdio(errnoSpipe)),
		wasiFunc("fd_sync", sig(i32), wasiStdio(errnoSuccess)),
		wasiFunc("fd_tell", sig(i32, i32), wasiStdio(errnoSpipe)),
		wasiFunc("fd_write", sig(i32, i32, i32, i32), wasiFdWrite),

		// Paths: there is no directory to resolve them against.
		wasiFunc("path_create_directory", sig(i32, i32, i32), wasiDirFd(0)),
		wasiFunc("path_filestat_get", sig(i32, i32, i32, i32, i32), wasiDirFd(0)),
		wasiFunc("path_filestat_set_times", sig(i32, i32, i32, i32, i64, i64, i32), wasiDirFd(0)),
		wasiFunc("path_link", sig(i32, i32, i32, i32, i32, i32, i32), wasiDirFd(0)),
		wasiFunc("path_open", sig(i32, i32, i32, i32, i32, i64, i64, i32, i32), wasiDirFd(0)),
		wasiFunc("path_readlink", sig(i32, i32, i32, i32, i32, i32), wasiDirFd(0)),
		wasiFunc("path_remove_directory", sig(i32, i32, i32), wasiDirFd(0)),
		wasiFunc("path_rename", sig(i32, i32, i32, i32, i32, i32), wasiDirFd(0)),
		wasiFunc("path_symlink", sig(i32, i32, i32, i32, i32), wasiDirFd(2)),
		wasiFunc("path_unlink_file", sig(i32, i32, i32), wasiDirFd(0)),

		// Sockets: none exist.
		wasiFunc("sock_accept", sig(i32, i32, i32), wasiStdio(errnoNotsock)),
		wasiFunc("sock_recv", sig(i32, i32, i32, i32, i32, i32), wasiStdio(errnoNotsock)),
		wasiFunc("sock_send", sig(i32, i32, i32, i32, i32), wasiStdio(errnoNotsock)),
		wasiFunc("sock_shutdown", sig(i32, i32), wasiStdio(errnoNotsock)),
	}
}

// wasiConst answers every call with errno.
func wasiConst(errno uint32) wasiHandler {
	return func(context.Context, *instance, []uint64) uint32 { return errno }
}

// isStdio reports whether fd is one of the standard streams.
func isStdio(fd uint32) bool { return fd <= 2 }

// wasiStdio answers onStdio when the first argument is a standard stream and
// BADF for any other fd. It serves functions that touch no guest memory.
func wasiStdio(onStdio uint32) wasiHandler {
	return func(_ context.Context, _ *instance, st []uint64) uint32 {
		if isStdio(u32(st, 0)) {
			return onStdio
		}
		return errnoBadf
	}
}

// wasiDirFd serves the path_* functions, whose argument arg is the directory
// fd the path is resolved against: a standard stream is not a directory,
// and no other fd exists.
func wasiDirFd(arg int) wasiHandler {
	return func(_ context.Context, _ *instance, st []uint64) uint32 {
		if isStdio(u32(st, arg)) {
			return errnoNotdir
		}
		return errnoBadf
	}
}

// args_get(argv, argv_buf): there are no arguments, so nothing is written.
func wasiArgsGet(context.Context, *instance, []uint64) uint32 { return errnoSuccess }

// args_sizes_get(ret_argc, ret_argv_buf_size)
func wasiArgsSizesGet(_ context.Context, i *instance, st []uint64) uint32 {
	if !i.writeU32(u32(st, 0), 0) || !i.writeU32(u32(st, 1), 0) {
		return errnoFault
	}
	return errnoSuccess
}

// environSize is the size of environ_get's buffer: "KEY=VALUE\x00" each.
func environSize(env []Field) uint64 {
	var n uint64
	for _, e := range env {
		n += uint64(len(e.Key)) + uint64(len(e.Value)) + 2
	}
	return n
}

// environ_sizes_get(ret_count, ret_buf_size)
func wasiEnvironSizesGet(_ context.Context, i *instance, st []uint64) uint32 {
	env := i.vm.cfg.Env
	size := environSize(env)
	if size > math.MaxUint32 {
		return errnoInval
	}
	if !i.writeU32(u32(st, 0), uint32(len(env))) || !i.writeU32(u32(st, 1), uint32(size)) {
		return errnoFault
	}
	return errnoSuccess
}

// environ_get(environ, environ_buf): both areas are checked before anything
// is written.
func wasiEnvironGet(_ context.Context, i *instance, st []uint64) uint32 {
	env := i.vm.cfg.Env
	size := environSize(env)
	if size > math.MaxUint32 || uint64(len(env))*4 > math.MaxUint32 {
		return errnoInval
	}
	ptrs, ok1 := i.read(u32(st, 0), uint32(len(env))*4)
	buf, ok2 := i.read(u32(st, 1), uint32(size))
	if !ok1 || !ok2 {
		return errnoFault
	}
	addr, off := u32(st, 1), 0
	for k, e := range env {
		binary.LittleEndian.PutUint32(ptrs[4*k:], addr+uint32(off))
		off += copy(buf[off:], e.Key)
		buf[off] = '='
		off++
		off += copy(buf[off:], e.Value)
		buf[off] = 0
		off++
	}
	return errnoSuccess
}

// monotonicNow is the monotonic clock: nanoseconds since the runtime was
// created, plus one so it is never zero.
func (i *instance) monotonicNow() uint64 {
	return uint64(time.Since(i.vm.rt.monoEpoch).Nanoseconds()) + 1
}

// clockNow reads a clock; errno is NOTSUP for the CPU-time clocks and INVAL
// for an unknown id.
func (i *instance) clockNow(id uint32) (uint64, uint32) {
	switch id {
	case wasiClockRealtime:
		return uint64(i.now().UnixNano()), errnoSuccess
	case wasiClockMonotonic:
		return i.monotonicNow(), errnoSuccess
	case wasiClockProcessCPU, wasiClockThreadCPU:
		return 0, errnoNotsup
	}
	return 0, errnoInval
}

// clock_res_get(id, ret_resolution)
func wasiClockResGet(_ context.Context, i *instance, st []uint64) uint32 {
	if _, errno := i.clockNow(u32(st, 0)); errno != errnoSuccess {
		return errno
	}
	if !i.writeU64(u32(st, 1), wasiClockResolutionNs) {
		return errnoFault
	}
	return errnoSuccess
}

// clock_time_get(id, precision i64, ret_time); precision is ignored.
func wasiClockTimeGet(_ context.Context, i *instance, st []uint64) uint32 {
	v, errno := i.clockNow(u32(st, 0))
	if errno != errnoSuccess {
		return errno
	}
	if !i.writeU64(u32(st, 2), v) {
		return errnoFault
	}
	return errnoSuccess
}

// random_get(buf, len): crypto/rand, at most maxRandomBytes per call.
func wasiRandomGet(_ context.Context, i *instance, st []uint64) uint32 {
	size := u32(st, 1)
	if size > maxRandomBytes {
		return errnoInval
	}
	buf, ok := i.read(u32(st, 0), size)
	if !ok {
		return errnoFault
	}
	_, _ = rand.Read(buf) // never fails (Go 1.24+)
	return errnoSuccess
}

// proc_exit(code) ends the instance with wazero's own idiom: close the
// module with the exit code, then panic with a sys.ExitError, which wazero
// returns from the guest call as the error (nothing after proc_exit runs).
// The host classifies it as FailureExit, discards the instance and starts a
// replacement; streams on it get their failure policy.
func wasiProcExit(ctx context.Context, i *instance, st []uint64) {
	code := u32(st, 0)
	_ = i.mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}

// iovecs checks an iovec array and every buffer it points to and returns
// the array and the total length. errno is FAULT for anything out of
// bounds, INVAL for more than wasiMaxIovs entries or more than
// wasiMaxWriteBytes in total.
func (i *instance) iovecs(ptr, n uint32) (vec []byte, total uint64, errno uint32) {
	if n > wasiMaxIovs {
		return nil, 0, errnoInval
	}
	vec, ok := i.read(ptr, 8*n)
	if !ok {
		return nil, 0, errnoFault
	}
	for k := uint32(0); k < n; k++ {
		bptr := binary.LittleEndian.Uint32(vec[8*k:])
		size := binary.LittleEndian.Uint32(vec[8*k+4:])
		if _, ok := i.read(bptr, size); !ok {
			return nil, 0, errnoFault
		}
		total += uint64(size)
	}
	if total > wasiMaxWriteBytes {
		return nil, 0, errnoInval
	}
	return vec, total, errnoSuccess
}

// fd_write(fd, iovs, iovs_len, ret_nwritten): stdout logs at info, stderr
// at error, one line per call (one trailing newline removed), named with
// the plugin. Every pointer is checked before anything is logged. The whole
// length is reported written even when the line is truncated at
// maxLogMessageBytes.
func wasiFdWrite(_ context.Context, i *instance, st []uint64) uint32 {
	var lvl zapcore.Level
	switch u32(st, 0) {
	case 1:
		lvl = zapcore.InfoLevel
	case 2:
		lvl = zapcore.ErrorLevel
	default:
		return errnoBadf
	}
	vec, total, errno := i.iovecs(u32(st, 1), u32(st, 2))
	if errno != errnoSuccess {
		return errno
	}
	if _, ok := i.read(u32(st, 3), 4); !ok {
		return errnoFault
	}
	if total > 0 && i.vm.rt.levelEnabled(lvl) {
		if msg := gatherIovecs(i, vec); len(msg) > 0 {
			i.guestLog(lvl, msg, false)
		}
	}
	i.writeU32(u32(st, 3), uint32(total))
	return errnoSuccess
}

// gatherIovecs returns the bytes of checked iovecs without the trailing
// newline. A single non-empty buffer is returned as a view of guest memory
// (guestLog copies it and reports the truncation); several are joined into
// at most maxLogMessageBytes.
func gatherIovecs(i *instance, vec []byte) []byte {
	var one []byte
	pieces := 0
	for k := 0; k+8 <= len(vec); k += 8 {
		b, _ := i.read(binary.LittleEndian.Uint32(vec[k:]), binary.LittleEndian.Uint32(vec[k+4:]))
		if len(b) > 0 {
			one = b
			pieces++
		}
	}
	msg := one
	if pieces > 1 {
		msg = make([]byte, 0, 256)
		for k := 0; k+8 <= len(vec) && len(msg) < maxLogMessageBytes; k += 8 {
			b, _ := i.read(binary.LittleEndian.Uint32(vec[k:]), binary.LittleEndian.Uint32(vec[k+4:]))
			if room := maxLogMessageBytes - len(msg); len(b) > room {
				b = b[:room]
			}
			msg = append(msg, b...)
		}
	}
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	return msg
}

// fd_read(fd, iovs, iovs_len, ret_nread): stdin is empty (end of file);
// stdout and stderr are not readable.
func wasiFdRead(_ context.Context, i *instance, st []uint64) uint32 {
	if u32(st, 0) != 0 {
		return errnoBadf
	}
	if _, _, errno := i.iovecs(u32(st, 1), u32(st, 2)); errno != errnoSuccess {
		return errno
	}
	if !i.writeU32(u32(st, 3), 0) {
		return errnoFault
	}
	return errnoSuccess
}

// fd_renumber(from, to): the standard streams cannot be moved.
func wasiFdRenumber(_ context.Context, _ *instance, st []uint64) uint32 {
	if isStdio(u32(st, 0)) && isStdio(u32(st, 1)) {
		return errnoNotsup
	}
	return errnoBadf
}

// stdioRights are the rights fd_fdstat_get reports for a standard stream.
func stdioRights(fd uint32) uint64 {
	r := uint64(wasiRightFdFdstatSetFlag | wasiRightFdFilestatGet | wasiRightPollFdReadwrite)
	if fd == 0 {
		return r | wasiRightFdRead
	}
	return r | wasiRightFdWrite
}

// fd_fdstat_get(fd, ret_fdstat): a standard stream is a character device
// without seek or tell rights, which libc takes for a terminal (so stdout
// is line buffered: one log line per line).
func wasiFdFdstatGet(_ context.Context, i *instance, st []uint64) uint32 {
	fd := u32(st, 0)
	if !isStdio(fd) {
		return errnoBadf
	}
	b, ok := i.read(u32(st, 1), wasiFdstatSize)
	if !ok {
		return errnoFault
	}
	clear(b)
	b[0] = wasiFiletypeCharDev
	binary.LittleEndian.PutUint64(b[8:], stdioRights(fd))
	return errnoSuccess
}

// fd_filestat_get(fd, ret_filestat): a character device with one link,
// every other field zero.
func (l *wasiLayout) fdFilestatGet(_ context.Context, i *instance, st []uint64) uint32 {
	if !isStdio(u32(st, 0)) {
		return errnoBadf
	}
	b, ok := i.read(u32(st, 1), l.filestatSize)
	if !ok {
		return errnoFault
	}
	clear(b)
	b[16] = wasiFiletypeCharDev
	if l.snapshot0 {
		binary.LittleEndian.PutUint32(b[20:], 1)
	} else {
		binary.LittleEndian.PutUint64(b[24:], 1)
	}
	return errnoSuccess
}

// poll_oneoff(in, out, nsubscriptions, ret_nevents).
//
// Go's wasip1 runtime sleeps through poll_oneoff: time.Sleep and timers in
// a callback reach its netpoll with one clock subscription, and its usleep
// calls it directly. Answering at once with no event would make such a
// guest spin on the CPU until its deadline, so the host really waits:
//
//   - fd subscriptions are answered at once: stdin is readable (end of
//     file), stdout and stderr writable, anything else an event with BADF.
//     When any event is ready, the call returns without sleeping.
//   - otherwise it sleeps until the earliest clock subscription (relative,
//     or absolute on the realtime or monotonic clock) and returns the
//     clock events that are due.
//   - a sleep never outlasts the callback deadline: when the watchdog
//     fires, the sleep and the call end as a timeout (the instance is
//     replaced, the stream gets its failure policy), exactly as for a
//     guest that spins. A guest that sleeps holds its instance (the host
//     serialises calls into it), so other streams of that instance wait.
//
// Unknown clock ids give their event INVAL; an unknown subscription type or
// zero subscriptions fail the call with INVAL; nothing is written or slept
// before every subscription has been read and every pointer checked.
func (l *wasiLayout) pollOneoff(_ context.Context, i *instance, st []uint64) uint32 {
	in, out, n, ret := u32(st, 0), u32(st, 1), u32(st, 2), u32(st, 3)
	if n == 0 {
		return errnoInval
	}
	inSize, outSize := uint64(n)*uint64(l.subscriptionSize), uint64(n)*wasiEventSize
	if inSize > math.MaxUint32 || outSize > math.MaxUint32 {
		return errnoFault
	}
	subs, ok1 := i.read(in, uint32(inSize))
	evs, ok2 := i.read(out, uint32(outSize))
	_, ok3 := i.read(ret, 4)
	if !ok1 || !ok2 || !ok3 {
		return errnoFault
	}
	start := time.Now()
	// First pass: validate, find the earliest clock and whether anything is
	// ready now.
	ready := false
	sleep := time.Duration(math.MaxInt64)
	for k := uint32(0); k < n; k++ {
		s := subs[k*l.subscriptionSize:]
		switch s[8] {
		case wasiEventClock:
			d, errno := l.clockDue(i, s, 0)
			if errno != errnoSuccess || d <= 0 {
				ready = true
			} else if d < sleep {
				sleep = d
			}
		case wasiEventFdRead, wasiEventFdWrite:
			ready = true
		default:
			return errnoInval
		}
	}
	if !ready {
		i.pollSleep(sleep)
	}
	// Second pass: write the events that are due. Events are written in
	// subscription order; event k never overlaps a subscription not yet
	// read unless the guest made the two arrays overlap.
	nev := uint32(0)
	elapsed := time.Since(start)
	for k := uint32(0); k < n; k++ {
		s := subs[k*l.subscriptionSize:]
		var userdata [8]byte
		copy(userdata[:], s[:8])
		typ := s[8]
		var errno uint32
		switch typ {
		case wasiEventClock:
			d, e := l.clockDue(i, s, elapsed)
			if e == errnoSuccess && d > 0 {
				continue
			}
			errno = e
		case wasiEventFdRead:
			if binary.LittleEndian.Uint32(s[16:]) != 0 {
				errno = errnoBadf
			}
		case wasiEventFdWrite:
			if fd := binary.LittleEndian.Uint32(s[16:]); fd != 1 && fd != 2 {
				errno = errnoBadf
			}
		}
		e := evs[nev*wasiEventSize : (nev+1)*wasiEventSize]
		clear(e)
		copy(e[0:8], userdata[:])
		binary.LittleEndian.PutUint16(e[8:], uint16(errno))
		e[10] = typ
		nev++
	}
	i.writeU32(ret, nev)
	return errnoSuccess
}

// clockDue returns how long until clock subscription s is due, for a
// relative timeout counted from elapsed ago; errno is INVAL for a clock the
// host does not have.
func (l *wasiLayout) clockDue(i *instance, s []byte, elapsed time.Duration) (time.Duration, uint32) {
	c := s[l.clockOffset:]
	id := binary.LittleEndian.Uint32(c)
	timeout := binary.LittleEndian.Uint64(c[8:])
	flags := binary.LittleEndian.Uint16(c[24:])
	if id != wasiClockRealtime && id != wasiClockMonotonic {
		return 0, errnoInval
	}
	if flags&wasiSubclockAbstime == 0 {
		if timeout > math.MaxInt64 {
			return time.Duration(math.MaxInt64), errnoSuccess
		}
		return time.Duration(timeout) - elapsed, errnoSuccess
	}
	now, _ := i.clockNow(id)
	if timeout <= now {
		return 0, errnoSuccess
	}
	d := timeout - now
	if d > math.MaxInt64 {
		d = math.MaxInt64
	}
	return time.Duration(d), errnoSuccess
}

// pollSleep sleeps for d, or until the watchdog ends the call: the
// watchdog closes the module, and when this host function returns wazero
// ends the guest call with the watchdog's exit error (a timeout). The sleep
// is also cut at twice the deadline in case the watchdog is late (then the
// guest sees an early wake-up with no event, which poll allows, and polls
// again).
func (i *instance) pollSleep(d time.Duration) {
	if limit := 2 * time.Duration(i.deadline.Load()); d > limit {
		d = limit
	}
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 || i.timedOut.Load() || i.dead.Load() {
			return
		}
		time.Sleep(min(left, watchdogTick))
	}
}
