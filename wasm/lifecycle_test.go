package wasm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// contextLines returns, in order, the callbacks ctl logged for one context
// ("request_headers 2" -> "request_headers").
func contextLines(h *wasmtest.Harness, plugin string, id uint32) []string {
	var out []string
	for _, e := range h.Logs().Plugin(plugin) {
		fields := strings.Fields(e.Message)
		if len(fields) >= 2 && fields[1] == itoa(id) {
			out = append(out, fields[0])
		}
	}
	return out
}

func TestLifecycleOrder(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:   ctlPath,
		VM:     wasm.VMConfig{Configuration: []byte("vm-config")},
		Plugin: wasm.PluginConfig{Name: "ctl", Configuration: []byte("plugin-config")},
	})
	// Root context: create (no parent), vm_start, configure with the
	// configuration's size.
	want := []string{"create 1 0", "vm_start 1", "configure 1 13"}
	if got := h.PluginLogs().Messages(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("plugin start: %q, want %q", got, want)
	}

	r := h.Run(wasmtest.Exchange{
		RequestBody: []byte("q"), RequestTrailers: []string{"t", "1"},
		ResponseBody: []byte("r"), ResponseTrailers: []string{"t", "2"},
	})
	id := r.Stream.ContextID()
	if id != 2 {
		t.Fatalf("stream context id %d, want 2", id)
	}
	if h.PluginLogs().Message("create 2 1") == nil {
		t.Fatalf("stream context not created under root 1:\n%s", h.PluginLogs())
	}
	got := contextLines(h, "ctl", id)
	want = []string{"create", "request_headers", "request_body", "request_trailers",
		"response_headers", "response_body", "response_trailers", "done", "log", "delete"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stream callbacks %v, want %v", got, want)
	}

	// An explicit access-log phase runs proxy_on_log once, before done.
	s := h.HTTP()
	s.RequestHeadersEnd(":path", "/")
	s.ResponseHeadersEnd(":status", "200")
	s.Log()
	s.Done()
	got = contextLines(h, "ctl", s.ContextID())
	want = []string{"create", "request_headers", "response_headers", "log", "done", "delete"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("with Log: callbacks %v, want %v", got, want)
	}

	// Closing the plugin finishes its root context: proxy_on_done and
	// proxy_on_delete; proxy_on_log is for stream contexts only (Envoy).
	h.Plugin().Close(context.Background())
	if got := contextLines(h, "ctl", 1)[3:]; strings.Join(got, ",") != "done,delete" {
		t.Fatalf("root context after close: %v", contextLines(h, "ctl", 1))
	}
	// A stream on a closed plugin gets the failure policy; nothing runs.
	r = h.Run(wasmtest.Exchange{})
	if r.Failure == nil || r.Local == nil || r.Local.StatusCode != 503 {
		t.Fatalf("stream on a closed plugin: failure %v local %+v", r.Failure, r.Local)
	}
	h.Plugin().Close(context.Background()) // twice is fine
}

// TestLifecycleDeferredDone: proxy_on_done returning false keeps the
// context until the guest calls proxy_done (here from proxy_on_tick, 1 ms
// later); then proxy_on_log and proxy_on_delete run.
func TestLifecycleDeferredDone(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: ctlPath, Plugin: wasm.PluginConfig{Name: "ctl"}})
	r := h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-defer-done", "1"}})
	id := itoa(r.Stream.ContextID())
	del := h.WaitLog("delete "+id, 5*time.Second)
	done := h.Logs().Message("done " + id)
	logs := h.Logs().Message("log " + id)
	if len(done) != 1 || len(logs) != 1 {
		t.Fatalf("done %v log %v", done, logs)
	}
	got := contextLines(h, "ctl", r.Stream.ContextID())
	want := []string{"create", "request_headers", "response_headers", "done", "log", "delete"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("callbacks %v, want %v", got, want)
	}
	// The log phase waited for the tick: at least its 1 ms period.
	if gap := logs[0].Time.Sub(done[0].Time); gap < time.Millisecond {
		t.Fatalf("proxy_on_log %v after proxy_on_done: it did not wait for proxy_done", gap)
	}
	if del.Time.Before(logs[0].Time) {
		t.Fatal("delete before log")
	}
}

// TestLifecycleContextIDs: contexts of two plugins on one VM get distinct
// ids, each stream under its own plugin's root.
func TestLifecycleContextIDs(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{Path: ctlPath, Plugin: wasm.PluginConfig{Name: "a"}})
	pb, err := h.NewPlugin(wasm.PluginConfig{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Logs().Plugin("b").Message("create 2 0") == nil {
		t.Fatalf("second root context:\n%s", h.Logs())
	}
	sa := h.Run(wasmtest.Exchange{}).Stream
	sb := wasmtest.RunStream(wasmtest.NewHTTPStream(pb), wasmtest.Exchange{}).Stream
	if sa.ContextID() == sb.ContextID() {
		t.Fatalf("same context id %d", sa.ContextID())
	}
	if h.Logs().Plugin("a").Message("create "+itoa(sa.ContextID())+" 1") == nil ||
		h.Logs().Plugin("b").Message("create "+itoa(sb.ContextID())+" 2") == nil {
		t.Fatalf("streams not under their roots:\n%s", h.Logs())
	}
}

func TestVMSharing(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile(ctlPath)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(myFilterPath)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	vm := func(id string, code []byte) *wasm.VM {
		t.Helper()
		v, err := rt.VM(ctx, wasm.VMConfig{ID: id, Code: code, Instances: 1})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a1 := vm("a", code)
	a2 := vm("a", code)
	if a1 != a2 {
		t.Fatal("same vm_id and code gave two VMs")
	}
	b := vm("b", code)
	if b == a1 {
		t.Fatal("another vm_id shares the VM")
	}
	if b.Module() != a1.Module() {
		t.Fatal("same code compiled twice")
	}
	c := vm("a", other)
	if c == a1 {
		t.Fatal("other code shares the VM")
	}
	// Each VM call holds a reference: the VM lives until the last Close.
	a1.Close(ctx)
	if a2.LiveInstances() != 1 {
		t.Fatal("VM closed while referenced")
	}
	if _, err := a2.NewPlugin(ctx, wasm.PluginConfig{Name: "p"}); err != nil {
		t.Fatalf("plugin on a shared VM after one Close: %v", err)
	}
	a2.Close(ctx)
	if _, err := a2.NewPlugin(ctx, wasm.PluginConfig{Name: "q"}); err == nil {
		t.Fatal("plugin started on a closed VM")
	}
	if a3 := vm("a", code); a3 == a1 {
		t.Fatal("a closed VM was handed out again")
	}
	b.Close(ctx)
	c.Close(ctx)
}

func TestCompileCache(t *testing.T) {
	ctx := context.Background()
	code, err := os.ReadFile(ctlPath)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m1, err := rt.Compile(ctx, code, 0)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := rt.Compile(ctx, append([]byte(nil), code...), 0)
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Fatal("same bytes compiled twice")
	}
	sum := sha256.Sum256(code)
	if m1.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("module key %s, want the code's sha256", m1.SHA256)
	}
	if m1.ABI != wasm.ABI021 {
		t.Fatalf("ABI %s", m1.ABI)
	}
	// A memory limit is per wazero runtime: another limit compiles again.
	m3, err := rt.Compile(ctx, code, 64)
	if err != nil {
		t.Fatal(err)
	}
	if m3 == m1 || m3.SHA256 != m1.SHA256 {
		t.Fatalf("other memory limit: same module %v, key %s", m3 == m1, m3.SHA256)
	}
	vm, err := rt.VM(ctx, wasm.VMConfig{ID: "v", Code: code, Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close(ctx)
	if vm.Module() != m1 {
		t.Fatal("VM compiled its own copy")
	}
}

// TestDiskCompilationCache: a runtime with CacheDir writes compiled code
// there; a second runtime with the same directory reuses it (writes no new
// files) and serves streams.
func TestDiskCompilationCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	code, err := os.ReadFile(myFilterPath)
	if err != nil {
		t.Fatal(err)
	}
	files := func() map[string]int64 {
		out := map[string]int64{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				info, _ := d.Info()
				out[p] = info.ModTime().UnixNano()
			}
			return nil
		})
		return out
	}
	load := func() time.Duration {
		rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: zap.NewNop(), CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(ctx)
		start := time.Now()
		if _, err := rt.Compile(ctx, code, 0); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		h := wasmtest.New(t, wasmtest.Options{Code: code, Runtime: wasm.Options{CacheDir: dir}, SkipLeakCheck: true, Quiet: true})
		if r := h.Run(wasmtest.Exchange{}); r.Response.Header("x-greeting") == "" {
			t.Fatalf("no greeting: %v", r.Failure)
		}
		h.Close()
		return d
	}
	cold := load()
	first := files()
	if len(first) == 0 {
		t.Fatalf("no compiled code written to %s", dir)
	}
	warm := load()
	second := files()
	t.Logf("compile: cold %v, from the disk cache %v; %d cache files", cold, warm, len(first))
	for p, mt := range second {
		if first[p] != mt {
			t.Errorf("cache file %s written again", p)
		}
	}
	if len(second) != len(first) {
		t.Errorf("cache files %d, then %d", len(first), len(second))
	}
}
