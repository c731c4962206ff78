package wasm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// Logging, time, ticks, contexts, configuration and buffers (README §2, §3
// and the first two tables of §4).

func TestHostcallsLogging(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{LogLevel: zapcore.DebugLevel})
	levelsAt := func(lvl zapcore.Level, want []hcLine, absent []string) hcCase {
		return hcCase{
			name: "log/levels at " + lvl.String(), path: "/t/log/levels",
			status: 200, body: "ok", logs: want,
			absent: append(absent, "hostcalls: log/levels: bad"),
		}
	}
	// proxy_log levels map to zap's: trace and debug are Debug (trace is
	// marked with a field), critical is Error (marked critical: a DPanic
	// line must not panic a development logger).
	all := []hcLine{
		{zapcore.DebugLevel, "hostcalls: log/levels: trace"},
		{zapcore.DebugLevel, "hostcalls: log/levels: debug"},
		hcInfo("hostcalls: log/levels: info"),
		{zapcore.WarnLevel, "hostcalls: log/levels: warn"},
		hcError("hostcalls: log/levels: error"),
		hcError("hostcalls: log/levels: critical"),
	}
	hcRun(t, h, []hcCase{levelsAt(zapcore.DebugLevel, all, nil)})
	for _, name := range []string{"trace", "critical"} {
		e := h.Logs().Message("hostcalls: log/levels: " + name)
		if len(e) != 1 || e[0].Fields[name] != true || e[0].Plugin() != "hostcalls" {
			t.Errorf("%s line %+v, want one with field %s=true and plugin hostcalls", name, e, name)
		}
	}

	// Below the host's level proxy_log still returns OK; nothing is printed.
	h.SetLogLevel(zapcore.WarnLevel)
	hcRun(t, h, []hcCase{levelsAt(zapcore.WarnLevel, all[3:], []string{"log/levels: trace", "log/levels: debug", "log/levels: info"})})

	// proxy_get_log_level reports the host's level. zap has no trace level:
	// at Debug the host reports trace (0), because trace lines are printed
	// then; zap's levels above Error are critical (5).
	for _, c := range []struct {
		lvl  zapcore.Level
		want string
	}{
		{zapcore.DebugLevel, "0"},
		{zapcore.InfoLevel, "2"},
		{zapcore.WarnLevel, "3"},
		{zapcore.ErrorLevel, "4"},
		{zapcore.DPanicLevel, "5"},
	} {
		h.SetLogLevel(c.lvl)
		hcRun(t, h, []hcCase{{name: "log/get_level at " + c.lvl.String(), path: "/t/log/get_level", status: 200, body: c.want}})
	}
}

func TestHostcallsTime(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	h := hcHarness(t, wasmtest.Options{Runtime: wasm.Options{Now: func() time.Time { return now }}})
	hcRun(t, h, []hcCase{
		// The runtime's clock (Options.Now), in nanoseconds since the epoch.
		{path: "/t/time/now", status: 200, body: "1714979289123456789"},
	})

	// The real clock by default.
	h2 := hcHarness(t, wasmtest.Options{})
	before := time.Now().UnixNano()
	r := h2.Run(wasmtest.Exchange{RequestHeaders: hcRequest("/t/time/now")})
	after := time.Now().UnixNano()
	if r.Local == nil || r.Local.StatusCode != 200 {
		t.Fatalf("time/now: %+v", r.Local)
	}
	var got int64
	for _, c := range r.Local.Body {
		got = got*10 + int64(c-'0')
	}
	if got < before || got > after {
		t.Fatalf("time/now %s outside [%d, %d]", r.Local.Body, before, after)
	}
}

func TestHostcallsTicks(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	hcRun(t, h, []hcCase{
		{path: "/t/tick/set", status: 400, body: "missing request header x-tick-ms"},
		{path: "/t/tick/set", hdrs: []string{"x-tick-ms", "5ms"}, status: 400, body: "bad request header x-tick-ms"},
		{path: "/t/tick/set", hdrs: []string{"x-tick-ms", "4294967296"}, status: 400, body: "bad request header x-tick-ms"},
		// Set from a stream context, the period is its root's (Envoy).
		{path: "/t/tick/set", hdrs: []string{"x-tick-ms", "2"}, status: 200, body: "ok"},
	})
	first := hcWaitLine(t, h, hcInfo("hostcalls: tick 1"))
	third := hcWaitLine(t, h, hcInfo("hostcalls: tick 3"))
	if third.Time.Sub(first.Time) < 2*time.Millisecond {
		t.Errorf("ticks 1 and 3 %v apart with a 2 ms period", third.Time.Sub(first.Time))
	}
	if e := h.Logs().Message("hostcalls: tick 1"); len(e) != 1 || e[0].Plugin() != "hostcalls" {
		t.Errorf("tick line %+v, want one line of plugin hostcalls", e)
	}

	// 0 stops ticking.
	hcRun(t, h, []hcCase{{path: "/t/tick/set", hdrs: []string{"x-tick-ms", "0"}, status: 200, body: "ok"}})
	n := len(h.Logs().Containing("hostcalls: tick "))
	time.Sleep(30 * time.Millisecond) // 15 periods: only absence is checked
	if m := len(h.Logs().Containing("hostcalls: tick ")); m != n {
		t.Errorf("%d tick lines after the period was set to 0", m-n)
	}

	// ticks=n: after the n-th tick the module stops its own timer.
	p, err := h.NewPlugin(wasm.PluginConfig{Name: "limited", Configuration: []byte("tick=1,ticks=3")})
	if err != nil {
		t.Fatal(err)
	}
	hcWaitLine(t, h, hcInfo("hostcalls: tick stopped status=0"))
	time.Sleep(20 * time.Millisecond) // only absence is checked
	ticks := h.Logs().Plugin("limited").Containing("hostcalls: tick ").Messages()
	if strings.Join(ticks, ",") != "hostcalls: tick 1,hostcalls: tick 2,hostcalls: tick 3,hostcalls: tick stopped status=0" {
		t.Errorf("limited plugin ticks %q", ticks)
	}
	p.Close(context.Background())
}

func TestHostcallsContexts(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	hcRun(t, h, []hcCase{
		{path: "/t/context/set_effective", status: 200, body: "ok"},
		{path: "/t/done/not_pending", status: 200, body: "ok"},
		{path: "/t/done/defer", status: 400, body: "done/defer requires a tick period (tick= in the plugin configuration)"},
	})
}

// TestHostcallsDeferredDone: a stream whose proxy_on_done returns false
// lives until proxy_done (called from the root's next tick), then gets
// proxy_on_log and proxy_on_delete.
func TestHostcallsDeferredDone(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{Plugin: wasm.PluginConfig{Configuration: []byte("tick=2")}})
	var id uint32
	hcRun(t, h, []hcCase{{
		path: "/t/done/defer",
		x:    wasmtest.Exchange{ResponseHeaders: []string{":status", "200", "x-up", "1"}, ResponseBody: []byte("upstream")},
		logs: []hcLine{hcInfo("hostcalls: done/defer: on_done deferred")},
		check: func(t *testing.T, r wasmtest.Result) {
			id = r.Stream.ContextID()
			for _, a := range r.Actions {
				if a.Action != wasm.ActionContinue {
					t.Errorf("%v returned %v", a.Phase, a.Action)
				}
			}
			if string(r.Response.Body) != "upstream" || r.Response.Header("x-up") != "1" {
				t.Errorf("response %q %s did not pass through", r.Response.Body, r.Response.Headers)
			}
		},
	}})
	del := hcWaitLine(t, h, hcInfo("hostcalls: done/defer: on_delete"))
	var order []string
	for _, e := range h.Logs() {
		if strings.HasPrefix(e.Message, "hostcalls: done/defer: ") && !e.Time.After(del.Time) {
			order = append(order, strings.TrimPrefix(e.Message, "hostcalls: done/defer: "))
		}
	}
	// This host calls proxy_on_log after proxy_done (the spec's order), not
	// before proxy_on_done as Envoy does for HTTP streams.
	want := "on_done deferred,proxy_done status=0,on_log,on_delete"
	if strings.Join(order, ",") != want {
		t.Fatalf("stream %d: %q, want %s", id, order, want)
	}
}

// TestHostcallsDeferredRootDone: a root context whose proxy_on_done
// returns false (done=defer) keeps ticking until it calls proxy_done.
func TestHostcallsDeferredRootDone(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{Plugin: wasm.PluginConfig{Configuration: []byte("tick=2,done=defer")}})
	h.Plugin().Close(context.Background())
	deferred := hcWaitLine(t, h, hcInfo("hostcalls: on_done root deferred"))
	done := hcWaitLine(t, h, hcInfo("hostcalls: proxy_done root status=0"))
	if done.Time.Before(deferred.Time) {
		t.Fatal("proxy_done before proxy_on_done")
	}
	if n := hcCount(h, "hostcalls: on_done root deferred"); n != 1 {
		t.Fatalf("proxy_on_done ran %d times", n)
	}
}

func TestHostcallsConfig(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{
		VM:     wasm.VMConfig{Configuration: []byte("vm-settings")},
		Plugin: wasm.PluginConfig{Configuration: []byte("\tqueue=hc-first,,\r\nticks=100 queue=hc-cfg ")},
	})
	for _, want := range []hcLine{
		hcInfo("hostcalls: vm_config: vm-settings"),
		hcInfo("hostcalls: configure: \tqueue=hc-first,,\r\nticks=100 queue=hc-cfg "),
		// A later item overrides an earlier one.
		hcInfo("hostcalls: configure: registered queue hc-cfg"),
	} {
		hcWaitLine(t, h, want)
	}
	if h.Logs().Containing("registered queue hc-first") != nil {
		t.Error("the overridden queue was registered")
	}
	hcRun(t, h, []hcCase{
		{path: "/t/config/plugin", status: 200, body: "\tqueue=hc-first,,\r\nticks=100 queue=hc-cfg "},
		{path: "/t/config/vm", status: 200, body: "vm-settings"},
		// The host runs proxy_on_vm_start and proxy_on_configure for every
		// root before any stream, so "not configured" and "not started"
		// cannot happen here.
		{path: "/t/config/checks", status: 200, body: "plugin=ok\nvm=ok"},
	})

	// Plugin configuration is per root context: a second plugin on the
	// same VM reads its own; the VM configuration is the VM's.
	for _, c := range []struct{ name, config string }{
		{"empty", ""},
		{"one byte", " "}, // no start=1 check below 2 bytes
	} {
		t.Run("second plugin "+c.name, func(t *testing.T) {
			p, err := h.NewPlugin(wasm.PluginConfig{Name: "p-" + c.name, Configuration: []byte(c.config)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			hcWaitLine(t, h, hcInfo("hostcalls: configure: "+c.config))
			for _, tc := range []hcCase{
				{path: "/t/config/plugin", status: 200, body: c.config},
				{path: "/t/config/vm", status: 200, body: "vm-settings"},
				{path: "/t/config/checks", status: 200, body: "plugin=ok\nvm=ok"},
			} {
				r := wasmtest.RunStream(wasmtest.NewHTTPStream(p), wasmtest.Exchange{RequestHeaders: hcRequest(tc.path)})
				hcCheckLocal(t, tc, r.Local)
			}
		})
	}

	// A configuration the module refuses fails the plugin (proxy_on_configure
	// returns false) with the module's reason in the log.
	for _, c := range []struct{ config, line string }{
		{"configure=fail", "hostcalls: configure: failing as requested"},
		{"tick=5 bogus", "hostcalls: configure: bad directive \"bogus\""},
		{"tick=0", "hostcalls: configure: bad directive \"tick=0\""},
		{"ticks=-1", "hostcalls: configure: bad directive \"ticks=-1\""},
		{"queue=", "hostcalls: configure: bad directive \"queue=\""},
		{"done=later", "hostcalls: configure: bad directive \"done=later\""},
		{"done=defer", "hostcalls: configure: done=defer requires tick= and no ticks="},
		{"tick=5,ticks=2,done=defer", "hostcalls: configure: done=defer requires tick= and no ticks="},
	} {
		t.Run("refused "+c.config, func(t *testing.T) {
			_, err := h.NewPlugin(wasm.PluginConfig{Name: "refused", Configuration: []byte(c.config)})
			if err == nil || !strings.Contains(err.Error(), "proxy_on_configure returned false") {
				t.Fatalf("NewPlugin: %v, want proxy_on_configure returned false", err)
			}
			if h.Logs().Level(zapcore.ErrorLevel).Message(c.line) == nil {
				t.Fatalf("no ERROR line %q", c.line)
			}
		})
	}

	// proxy_on_vm_start returns false iff the VM configuration is "fail".
	t.Run("vm configuration fail", func(t *testing.T) {
		h, err := hcStart(t, wasmtest.Options{VM: wasm.VMConfig{Configuration: []byte("fail")}})
		if err == nil || !strings.Contains(err.Error(), "proxy_on_vm_start returned false") {
			t.Fatalf("start: %v, want proxy_on_vm_start returned false", err)
		}
		if h.Logs().Level(zapcore.InfoLevel).Message("hostcalls: vm_config: fail") == nil {
			t.Fatal("no vm_config line")
		}
	})
	t.Run("empty configurations", func(t *testing.T) {
		h := hcHarness(t, wasmtest.Options{})
		hcWaitLine(t, h, hcInfo("hostcalls: vm_config: "))
		hcWaitLine(t, h, hcInfo("hostcalls: configure: "))
		hcRun(t, h, []hcCase{
			{path: "/t/config/plugin", status: 200, body: ""},
			{path: "/t/config/vm", status: 200, body: ""},
			{path: "/t/config/checks", status: 200, body: "plugin=ok\nvm=ok"},
		})
	})
}

// The root callbacks of README §3 that no case path reaches:
// proxy_on_queue_ready is driven by queues_test.go
// (TestQueueHostcallsContract), proxy_on_tick and proxy_on_done above.
// proxy_on_foreign_function has no test: the host never calls it (no host
// or data plane API delivers a foreign function call to a root context;
// instance.go only resolves the export).

func TestHostcallsBuffers(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	hcRun(t, h, []hcCase{
		{path: "/t/buffers/bad_id", status: 200, body: "ok"},
		{path: "/t/buffers/unavailable", status: 200, body: "ok"},
	})
}
