// Command goreactor is a Proxy-Wasm test filter built by the Go toolchain as
// a WASI reactor (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared), written
// directly against the Proxy-Wasm ABI 0.2.1 with //go:wasmimport and
// //go:wasmexport, without an SDK. It exercises the host's WASI layer the
// way Go's runtime uses it: _initialize, args and environment, clocks
// (time.Now, time.Sleep through poll_oneoff), crypto/rand (random_get) and
// stdout (fmt.Println through fd_write).
//
// Contract (wasm/goreactor_test.go asserts it):
//
//   - init logs "goreactor: init" on stdout (during _initialize, before any
//     plugin exists).
//   - proxy_on_configure logs "goreactor: configured with <configuration>"
//     at INFO through proxy_log. The configuration is the name of an
//     environment variable (the VM's environment_variables).
//   - proxy_on_request_headers adds request headers
//     x-go-reactor: <value of that variable, or "none" if unset or empty>
//     x-go-time: time.Now() in RFC 3339 with nanoseconds
//     x-go-random: 16 hex digits from crypto/rand
//     and, if request header x-go-sleep-ms is present, sleeps that many
//     milliseconds with time.Sleep and adds x-go-slept-ms: <measured ms>.
//     It prints "goreactor: request <context id>" on stdout.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"
	"unsafe"
)

func main() {}

func init() {
	fmt.Println("goreactor: init")
}

// Proxy-Wasm constants used here.
const (
	statusOK             = 0
	logInfo              = 2
	logError             = 4
	actionContinue       = 0
	bufferPluginConfig   = 7
	mapHTTPRequestHeader = 0
)

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion() {}

// The allocator. The host calls it (also from inside a host call, e.g.
// proxy_get_buffer_bytes) to place data in guest memory. Go's garbage
// collector does not move objects, so a pointer into a Go slice stays
// valid for as long as the slice is reachable: every allocation is kept in
// live until the code that asked the host for the data takes it back with
// take. An allocation the host made and nobody took would stay forever; the
// host only allocates for calls this module makes, and every such call
// takes its result.
var live = map[uintptr][]byte{}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) unsafe.Pointer {
	if size == 0 {
		size = 1
	}
	b := make([]byte, size)
	p := unsafe.Pointer(unsafe.SliceData(b))
	live[uintptr(p)] = b
	return p
}

// take returns the bytes the host placed at address ptr and releases them.
func take(ptr, size uint32) []byte {
	b, ok := live[uintptr(ptr)]
	if !ok || int(size) > len(b) {
		return nil
	}
	delete(live, uintptr(ptr))
	return b[:size]
}

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(typ, start, length uint32, retPtr *uint32, retSize *uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(typ uint32, key unsafe.Pointer, keySize uint32, retPtr *uint32, retSize *uint32) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(typ uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

func logf(level uint32, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	proxyLog(level, unsafe.Pointer(unsafe.StringData(s)), uint32(len(s)))
}

func addRequestHeader(k, v string) {
	if s := proxyAddHeaderMapValue(mapHTTPRequestHeader,
		unsafe.Pointer(unsafe.StringData(k)), uint32(len(k)),
		unsafe.Pointer(unsafe.StringData(v)), uint32(len(v))); s != statusOK {
		logf(logError, "goreactor: add header %s: status %d", k, s)
	}
}

func requestHeader(k string) (string, bool) {
	var ptr, size uint32
	if proxyGetHeaderMapValue(mapHTTPRequestHeader, unsafe.Pointer(unsafe.StringData(k)), uint32(len(k)), &ptr, &size) != statusOK {
		return "", false
	}
	return string(take(ptr, size)), true
}

// envName is the configuration: the environment variable to report.
var envName string

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(contextID, rootContextID uint32) {}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(rootContextID, vmConfigSize uint32) bool { return true }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(rootContextID, size uint32) bool {
	var ptr, n uint32
	if size > 0 {
		if s := proxyGetBufferBytes(bufferPluginConfig, 0, size, &ptr, &n); s != statusOK {
			logf(logError, "goreactor: proxy_get_buffer_bytes: status %d", s)
			return false
		}
	}
	envName = string(take(ptr, n))
	logf(logInfo, "goreactor: configured with %s", envName)
	return true
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(contextID, numHeaders uint32, endOfStream bool) uint32 {
	v := "none"
	if envName != "" {
		if e := os.Getenv(envName); e != "" {
			v = e
		}
	}
	addRequestHeader("x-go-reactor", v)
	addRequestHeader("x-go-time", time.Now().Format(time.RFC3339Nano))
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		logf(logError, "goreactor: crypto/rand: %v", err)
	}
	addRequestHeader("x-go-random", hex.EncodeToString(r[:]))
	if ms, ok := requestHeader("x-go-sleep-ms"); ok {
		n, _ := strconv.Atoi(ms)
		start := time.Now()
		time.Sleep(time.Duration(n) * time.Millisecond)
		addRequestHeader("x-go-slept-ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	}
	fmt.Println("goreactor: request", contextID)
	return actionContinue
}

//go:wasmexport proxy_on_done
func proxyOnDone(contextID uint32) bool { return true }

//go:wasmexport proxy_on_delete
func proxyOnDelete(contextID uint32) {}
