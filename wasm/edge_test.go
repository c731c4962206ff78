package wasm_test

// Tests for every module in testdata/edge: each asserts the outcome its
// README row names, and the failure counter of the kind it provokes.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

func edgePath(stem string) string { return filepath.Join("testdata", "edge", stem+".wasm") }

// replaceTimeout bounds how long a test waits for a failed instance's
// replacement (asynchronous, normally a few milliseconds).
const replaceTimeout = 10 * time.Second

// failureCounts returns every counter, for failure messages.
func failureCounts(h *wasmtest.Harness) string { return fmt.Sprint(h.Failures().Snapshot()) }

// mustOnly fails unless the only non-zero failure counter is kind, at want.
func mustOnly(t *testing.T, h *wasmtest.Harness, kind wasm.FailureKind, want uint64) {
	t.Helper()
	snap := h.Failures().Snapshot()
	for k, v := range snap {
		if k != kind && v != 0 {
			t.Errorf("failure counter %s = %d, want 0 (all: %v)", k, v, snap)
		}
	}
	if snap[kind] != want {
		t.Errorf("failure counter %s = %d, want %d (all: %v)", kind, snap[kind], want, snap)
	}
}

func TestEdgeABIv010(t *testing.T) {
	for _, cfg := range []string{`{"any": "bytes"} \x00 ok`, ""} {
		t.Run(fmt.Sprintf("config=%q", cfg), func(t *testing.T) {
			h := wasmtest.New(t, wasmtest.Options{
				Path:   edgePath("abi_v010"),
				Plugin: wasm.PluginConfig{Name: "v010", Configuration: []byte(cfg)},
			})
			if got := h.VM().ABI(); got != wasm.ABI010 {
				t.Fatalf("ABI %s, want 0.1.0", got)
			}
			lines := h.PluginLogs().Message("v010 config: " + cfg)
			if len(lines) != 1 || lines[0].Level != zapcore.InfoLevel {
				t.Fatalf("config lines %v; all:\n%s", lines, h.Logs())
			}
			r := h.Run(wasmtest.Exchange{})
			if r.Failure != nil {
				t.Fatalf("failure: %v", r.Failure)
			}
			if got := r.Request.Header("x-abi"); got != "0.1.0" {
				t.Errorf("request x-abi %q (headers %s)", got, r.Request.Headers)
			}
			if got := r.Response.Header("x-abi"); got != "0.1.0" {
				t.Errorf("response x-abi %q (headers %s)", got, r.Response.Headers)
			}
			mustOnly(t, h, wasm.FailureTrap, 0)
		})
	}
}

func TestEdgeNoABI(t *testing.T) {
	h, err := wasmtest.Start(t, wasmtest.Options{Path: edgePath("no_abi")})
	if err == nil {
		t.Fatal("no_abi loaded")
	}
	if !strings.Contains(err.Error(), "proxy_abi_version_") || !strings.Contains(err.Error(), "no Proxy-Wasm ABI marker") {
		t.Fatalf("error does not say the ABI marker is missing: %v", err)
	}
	if h.VM() != nil {
		t.Fatal("a VM exists for a module without an ABI marker")
	}
	if n := len(h.Logs().Filter(func(e wasmtest.LogEntry) bool { return e.String("vm_id") != "" })); n != 0 {
		t.Fatalf("%d lines from a VM that must not exist:\n%s", n, h.Logs())
	}
}

func TestEdgeMissingImports(t *testing.T) {
	_, err := wasmtest.Start(t, wasmtest.Options{Path: edgePath("missing_import")})
	var mi *wasm.MissingImportsError
	if !errors.As(err, &mi) {
		t.Fatalf("error %v, want a *wasm.MissingImportsError", err)
	}
	want := []string{"env.proxy_does_not_exist", "wasi_snapshot_preview1.not_a_wasi_function", "unknown_module.some_function"}
	if strings.Join(mi.Missing, "|") != strings.Join(want, "|") {
		t.Fatalf("missing %q, want %q", mi.Missing, want)
	}
	if mi.ABI != wasm.ABI020 {
		t.Errorf("ABI %s, want 0.2.0", mi.ABI)
	}
	msg := err.Error()
	last := -1
	for _, name := range want {
		k := strings.Index(msg, name)
		if k <= last {
			t.Errorf("error does not list %s in order: %s", name, msg)
		}
		last = k
	}
	if strings.Contains(msg, "env.proxy_log") {
		t.Errorf("error names env.proxy_log, which the host provides: %s", msg)
	}
}

// policyCases are the three failure policies with what a failed stream
// must see.
var policyCases = []struct {
	policy wasm.FailurePolicy
	// open: the filter is skipped, the stream goes on unmodified;
	// otherwise it is answered with a local 503.
	open bool
}{
	{wasm.FailClosed, false},
	{wasm.FailOpen, true},
	{wasm.FailReload, false},
}

// checkFailed asserts a stream's outcome after its filter failed.
func checkFailed(t *testing.T, r wasmtest.Result, open bool, marker string) {
	t.Helper()
	if r.Failure == nil {
		t.Fatalf("stream has no failure; request %s", r.Request.Headers)
	}
	if open {
		if !r.Skipped || r.Local != nil {
			t.Fatalf("fail open: skipped %v local %+v", r.Skipped, r.Local)
		}
		if a, _ := r.Action(wasmtest.PhaseRequestHeaders); a != wasm.ActionContinue {
			t.Fatalf("fail open: request headers action %d", a)
		}
		if r.Status() != 200 || r.Request.HasHeader(marker) {
			t.Fatalf("fail open: status %d, request %s", r.Status(), r.Request.Headers)
		}
		if len(r.Actions) != 2 {
			t.Fatalf("fail open: phases %v, want both header phases", r.Actions)
		}
		return
	}
	if r.Local == nil || r.Local.StatusCode != 503 || r.Local.Details != "wasm_fail_stream" {
		t.Fatalf("fail closed: local response %+v", r.Local)
	}
	if len(r.Events) != 1 || r.Events[0].Kind != wasmtest.EventLocalResponse || r.Events[0].Local != r.Local {
		t.Fatalf("fail closed: events %v, want the local response once", r.Events)
	}
	if len(r.Actions) != 1 {
		t.Fatalf("fail closed: phases %v ran after the local response", r.Actions)
	}
}

// TestEdgeGuestFailures: trap, infinite loop and memory bomb, under each
// failure policy: the stream that fails gets its policy at once, the right
// counter moves by one, the process survives, the next stream runs on a
// fresh instance.
func TestEdgeGuestFailures(t *testing.T) {
	cases := []struct {
		stem, header, okHeader string
		kind                   wasm.FailureKind
		vm                     wasm.VMConfig
		check                  func(t *testing.T, h *wasmtest.Harness, elapsed time.Duration)
	}{
		{
			stem: "trap", header: "x-trap", okHeader: "x-trap-ok", kind: wasm.FailureTrap,
			check: func(t *testing.T, h *wasmtest.Harness, _ time.Duration) {
				e := h.WaitLog("wasm instance failed", time.Second)
				if e.Level != zapcore.ErrorLevel || !strings.Contains(e.String("error"), "wasm error: unreachable") ||
					!strings.Contains(e.String("error"), "trap.proxy_on_request_headers") {
					t.Errorf("trap log %q %v", e.Message, e.Fields)
				}
			},
		},
		{
			stem: "infinite_loop", header: "x-loop", okHeader: "x-loop-ok", kind: wasm.FailureTimeout,
			vm: wasm.VMConfig{CallTimeout: 100 * time.Millisecond},
			check: func(t *testing.T, h *wasmtest.Harness, elapsed time.Duration) {
				if elapsed < 100*time.Millisecond {
					t.Errorf("loop stopped after %v, before its 100ms deadline", elapsed)
				}
				// Deadline plus the watchdog's tick and scheduling slack
				// (generous: -race on a loaded two-core machine).
				if elapsed > 2*time.Second {
					t.Errorf("loop stopped after %v, deadline 100ms", elapsed)
				}
				t.Logf("infinite loop stopped after %v (deadline 100ms)", elapsed)
			},
		},
		{
			stem: "memory_bomb", header: "x-bomb", okHeader: "x-bomb-ok", kind: wasm.FailureMemoryLimit,
			vm: wasm.VMConfig{MemoryLimitPages: 64},
			check: func(t *testing.T, h *wasmtest.Harness, _ time.Duration) {
				e := h.WaitLog("memory_bomb: memory.grow failed, pages=", time.Second)
				n, err := strconv.Atoi(strings.TrimPrefix(e.Message, "memory_bomb: memory.grow failed, pages="))
				if err != nil || n <= 64-16 || n > 64 || e.Level != zapcore.ErrorLevel {
					t.Errorf("memory bomb line %s %q: want ERROR with 48 < pages <= 64", e.Level, e.Message)
				}
			},
		},
	}
	for _, tc := range cases {
		for _, pc := range policyCases {
			t.Run(tc.stem+"/"+pc.policy.String(), func(t *testing.T) {
				h := wasmtest.New(t, wasmtest.Options{
					Path:   edgePath(tc.stem),
					VM:     tc.vm,
					Plugin: wasm.PluginConfig{Name: tc.stem, FailurePolicy: pc.policy},
					Quiet:  true,
				})
				start := time.Now()
				r := runWithin(t, 20*time.Second, h, wasmtest.Exchange{
					RequestHeaders: []string{":method", "GET", ":path", "/", tc.header, "1"},
				})
				elapsed := time.Since(start)
				checkFailed(t, r, pc.open, tc.okHeader)
				var f *wasm.InstanceFailure
				if !errors.As(r.Failure, &f) || f.Kind != tc.kind {
					t.Fatalf("failure %v, want an InstanceFailure of kind %s", r.Failure, tc.kind)
				}
				mustOnly(t, h, tc.kind, 1)
				tc.check(t, h, elapsed)

				h.MustLiveInstances(1, replaceTimeout)
				r = runWithin(t, 20*time.Second, h, wasmtest.Exchange{})
				if r.Failure != nil || r.Request.Header(tc.okHeader) != "1" {
					t.Fatalf("stream after the failure: failure %v, request %s", r.Failure, r.Request.Headers)
				}
				mustOnly(t, h, tc.kind, 1)
				h.WaitLog("wasm instance replaced", time.Second)
			})
		}
	}
}

// runWithin runs an exchange and fails the test if it does not finish in
// time, so a hang fails instead of stalling the suite.
func runWithin(t *testing.T, limit time.Duration, h *wasmtest.Harness, x wasmtest.Exchange) wasmtest.Result {
	t.Helper()
	done := make(chan wasmtest.Result, 1)
	go func() { done <- h.Run(x) }()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("stream still running after %v", limit)
		return wasmtest.Result{}
	}
}

// TestEdgeOOB: every bad pointer or length answers an error status (or
// traps the guest); the host never claims success and never panics.
func TestEdgeOOB(t *testing.T) {
	h, err := wasmtest.Start(t, wasmtest.Options{Path: edgePath("oob"), Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ok   []string // allowed x-status values besides a trap
	}{
		{"log-ptr", []string{"6", "2"}},
		{"log-len", []string{"6", "2"}},
		{"get-header-ret", []string{"6", "2"}},
		{"add-header-key", []string{"6", "2"}},
		{"set-pairs", []string{"6", "2"}},
		{"set-pairs-lens", []string{"6", "2"}},
		{"buffer-ret", []string{"6", "2", "1"}},
		{"property-path", []string{"6", "2"}},
		{"shared-data-key", []string{"6", "2"}},
	}
	traps := uint64(0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := []string{":method", "GET", ":path", "/oob", ":authority", "example.com", "x-case", tc.name}
			r := h.Run(wasmtest.Exchange{RequestHeaders: req})
			if r.Failure != nil {
				// The host trapped the guest: allowed; a later stream works.
				var f *wasm.InstanceFailure
				if !errors.As(r.Failure, &f) {
					t.Fatalf("failure %v is not an instance failure", r.Failure)
				}
				traps++
				t.Logf("%s: guest trapped (%v)", tc.name, r.Failure)
				h.MustLiveInstances(1, replaceTimeout)
				if r2 := h.Run(wasmtest.Exchange{}); r2.Failure != nil || r2.Request.Header("x-oob-error") != "unknown-case" {
					t.Fatalf("stream after the trap: %v %s", r2.Failure, r2.Request.Headers)
				}
				return
			}
			got := r.Request.Header("x-status")
			t.Logf("%s: x-status %s", tc.name, got)
			allowed := false
			for _, s := range tc.ok {
				allowed = allowed || got == s
			}
			if !allowed {
				t.Fatalf("x-status %q, want one of %v (request %s)", got, tc.ok, r.Request.Headers)
			}
			// Only x-status was added; nothing else changed.
			want := append(append([]string(nil), req...), "x-status", got)
			if r.Request.Headers.String() != wasm.NewHeaders(want...).String() {
				t.Fatalf("request headers %s, want %s", r.Request.Headers, wasm.NewHeaders(want...))
			}
		})
	}
	if got := h.Failure(wasm.FailureTrap) + h.Failure(wasm.FailureMemoryLimit); got != traps {
		t.Errorf("trap counters %s, want %d traps", failureCounts(h), traps)
	}
}

func TestEdgeHugeLog(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: edgePath("huge_log"), Plugin: wasm.PluginConfig{Name: "huge"}, Quiet: true})
	for i := 0; i < 2; i++ {
		r := h.Run(wasmtest.Exchange{})
		if r.Failure != nil {
			t.Fatalf("failure: %v", r.Failure)
		}
		status := r.Request.Header("x-log-status")
		if status != "0" && status != "2" {
			t.Fatalf("x-log-status %q, want 0 or 2", status)
		}
		lines := h.PluginLogs().Filter(func(e wasmtest.LogEntry) bool { return strings.HasPrefix(e.Message, "AAAA") })
		if status == "0" && len(lines) != i+1 {
			t.Fatalf("status 0 but %d lines logged after %d requests", len(lines), i+1)
		}
		for _, e := range lines {
			if strings.Trim(e.Message, "A") != "" {
				t.Fatalf("line is not all A's: %q", e.Message[:64])
			}
			if len(e.Message) > 64<<10 {
				t.Fatalf("line of %d bytes, above the documented 64 KiB maximum", len(e.Message))
			}
			if tb, _ := e.Fields["truncated_bytes"].(int64); tb != int64(16<<20-len(e.Message)) {
				t.Errorf("truncated_bytes %v for a %d-byte line", e.Fields["truncated_bytes"], len(e.Message))
			}
		}
	}
	mustOnly(t, h, wasm.FailureTrap, 0)
}

func TestEdgeOnConfigureFalse(t *testing.T) {
	h, err := wasmtest.Start(t, wasmtest.Options{
		Path:      edgePath("on_configure_false"),
		Instances: 2,
		Plugin:    wasm.PluginConfig{Name: "rejecter", RootID: "root-x"},
	})
	if err == nil {
		t.Fatal("plugin started")
	}
	if !strings.Contains(err.Error(), "proxy_on_configure returned false") || !strings.Contains(err.Error(), `"rejecter"`) {
		t.Fatalf("error %q does not say proxy_on_configure returned false for plugin rejecter", err)
	}
	warn := h.Logs().Message("on_configure_false: rejecting configuration")
	if len(warn) == 0 || warn[0].Level != zapcore.WarnLevel || warn[0].Plugin() != "rejecter" {
		t.Fatalf("WARN line %v; logs:\n%s", warn, h.Logs())
	}
	if h.Plugin() != nil {
		t.Fatal("a plugin exists")
	}
	// The VM is usable by another plugin, and no traffic ever reaches the
	// rejected one.
	if _, err := h.NewPlugin(wasm.PluginConfig{Name: "again"}); err == nil {
		t.Fatal("second plugin on the same module started")
	}
	if n := len(h.Logs().Containing("x-on-configure-false")); n != 0 {
		t.Fatalf("traffic ran through the rejected plugin")
	}
	mustOnly(t, h, wasm.FailureTrap, 0)
}

func TestEdgeStartOrder(t *testing.T) {
	for _, tc := range []struct{ stem, want string }{
		{"start_order", "start order: SIM"},
		{"start_only", "start order: S_"},
	} {
		t.Run(tc.stem, func(t *testing.T) {
			h := wasmtest.New(t, wasmtest.Options{Path: edgePath(tc.stem), Instances: 2})
			lines := h.PluginLogs().Containing("start order:")
			if len(lines) != 2 {
				t.Fatalf("lines %v, want one per instance", lines.Messages())
			}
			for _, e := range lines {
				if e.Message != tc.want || e.Level != zapcore.InfoLevel {
					t.Fatalf("line %s %q, want INFO %q", e.Level, e.Message, tc.want)
				}
			}
		})
	}
}

func TestEdgeAllocProxy(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:   edgePath("alloc_proxy"),
		Plugin: wasm.PluginConfig{Name: "alloc", Configuration: []byte("hello")},
	})
	if got := h.PluginLogs().Message("config: hello"); len(got) != 1 || got[0].Level != zapcore.InfoLevel {
		t.Fatalf("config lines %v; logs:\n%s", got, h.Logs())
	}
	if errs := h.Logs().AtLeast(zapcore.ErrorLevel); len(errs) != 0 {
		t.Fatalf("error lines:\n%s", errs)
	}
}
