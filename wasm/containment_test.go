package wasm_test

// Containment across streams and instances: a failed instance never holds
// up another stream, streams pinned to it get their policy at once, the
// other instances keep serving while it is replaced.

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// ctlPath is the controllable filter of testdata/harness (see ctl.wat):
// x-trap traps, x-ctl: ok is added otherwise; proxy_on_configure fails
// while the host clock reads the Unix epoch.
var ctlPath = filepath.Join("testdata", "harness", "ctl.wasm")

// clock is a host clock a test can set to the epoch, which makes ctl's
// proxy_on_configure fail (and so a replacement instance fail to start),
// or to 1 ns, which makes it slow for a plugin with a configuration.
type clock struct{ zero, slow atomic.Bool }

func (c *clock) now() time.Time {
	switch {
	case c.zero.Load():
		return time.Unix(0, 0)
	case c.slow.Load():
		return time.Unix(0, 1)
	}
	return time.Now()
}

// TestContainmentPinnedStreamGetsPolicyAtOnce: stream A is pinned to the
// only instance; stream B kills that instance; A's next callback gets A's
// failure policy at once, without running the guest, and ending A does not
// wait for anything.
func TestContainmentPinnedStreamGetsPolicyAtOnce(t *testing.T) {
	for _, pc := range policyCases {
		t.Run(pc.policy.String(), func(t *testing.T) {
			h := wasmtest.New(t, wasmtest.Options{
				Path:   ctlPath,
				Plugin: wasm.PluginConfig{Name: "ctl", FailurePolicy: pc.policy},
				Quiet:  true,
			})
			a := h.HTTP()
			if act := a.RequestHeadersEnd(":path", "/a"); act != wasm.ActionContinue || a.Request().Header("x-ctl") != "ok" {
				t.Fatalf("stream A before the failure: action %d, request %s", act, a.Request().Headers)
			}
			b := h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/b", "x-trap", "1"}})
			checkFailed(t, b, pc.open, "x-ctl")
			mustOnly(t, h, wasm.FailureTrap, 1)

			start := time.Now()
			act := a.ResponseHeadersEnd(":status", "200")
			a.Done()
			elapsed := time.Since(start)
			if elapsed > 250*time.Millisecond {
				t.Errorf("stream A took %v to get its policy and end", elapsed)
			}
			var f *wasm.InstanceFailure
			if !errors.As(a.Failure(), &f) || f.Kind != wasm.FailureTrap {
				t.Fatalf("stream A failure %v, want the instance's trap", a.Failure())
			}
			if pc.open {
				if act != wasm.ActionContinue || !a.Skipped() || a.LocalResponse() != nil || a.Response().HasHeader("x-ctl-resp") {
					t.Fatalf("fail open: action %d skipped %v local %+v response %s",
						act, a.Skipped(), a.LocalResponse(), a.Response().Headers)
				}
			} else {
				lr := a.LocalResponse()
				if act != wasm.ActionPause || lr == nil || lr.StatusCode != 503 {
					t.Fatalf("fail closed: action %d local %+v", act, lr)
				}
				if _, ok := a.Recorder().Wait(wasmtest.EventLocalResponse, 0); !ok {
					t.Fatalf("no local response event: %v", a.Events())
				}
			}
			// Only B's trap counted; A's policy is not another failure.
			mustOnly(t, h, wasm.FailureTrap, 1)
			// The guest never saw A again.
			if n := len(h.PluginLogs().Message("response_headers " + itoa(a.ContextID()))); n != 0 {
				t.Fatalf("the dead instance ran A's response headers")
			}
			h.MustLiveInstances(1, replaceTimeout)
		})
	}
}

// TestContainmentOtherInstancesServe: with two instances, one dies and its
// replacement keeps failing to start (the test's clock makes ctl's
// proxy_on_configure fail); every stream meanwhile runs on the live one,
// none fails and none waits. When the clock is fixed the slot comes back.
func TestContainmentOtherInstancesServe(t *testing.T) {
	var clk clock
	h := wasmtest.New(t, wasmtest.Options{
		Path:      ctlPath,
		Instances: 2,
		Runtime:   wasm.Options{Now: clk.now},
		Plugin:    wasm.PluginConfig{Name: "ctl"},
		Quiet:     true,
	})
	clk.zero.Store(true)
	r := h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-trap", "1"}})
	if r.Local == nil || r.Local.StatusCode != 503 {
		t.Fatalf("trapping stream: %+v", r.Local)
	}
	if h.VM().LiveInstances() != 1 {
		t.Fatalf("%d live instances right after the trap, want 1", h.VM().LiveInstances())
	}
	// Wait for a failed replacement, so the slot is known to be down.
	h.WaitLog("configure rejected: clock is zero", 5*time.Second)
	var slowest time.Duration
	for i := 0; i < 200; i++ {
		start := time.Now()
		r := h.Run(wasmtest.Exchange{})
		if d := time.Since(start); d > slowest {
			slowest = d
		}
		if r.Failure != nil || r.Request.Header("x-ctl") != "ok" || r.Response.Header("x-ctl-resp") != "ok" {
			t.Fatalf("stream %d while an instance is down: failure %v request %s", i, r.Failure, r.Request.Headers)
		}
	}
	if live := h.VM().LiveInstances(); live != 1 {
		t.Fatalf("%d live instances while the replacement fails, want 1", live)
	}
	if h.Failure(wasm.FailureStart) == 0 {
		t.Fatalf("no failed replacement counted: %s", failureCounts(h))
	}
	if h.Failure(wasm.FailureTrap) != 1 {
		t.Fatalf("trap counter %s", failureCounts(h))
	}
	t.Logf("slowest stream while an instance was down: %v", slowest)
	if slowest > 500*time.Millisecond {
		t.Errorf("a stream took %v while an instance was down", slowest)
	}
	clk.zero.Store(false)
	h.MustLiveInstances(2, replaceTimeout)
	h.WaitLog("wasm instance replaced", time.Second)
}

// TestContainmentNoLiveInstance: when the only instance is down, new
// streams get their failure policy at once instead of waiting for the
// replacement.
func TestContainmentNoLiveInstance(t *testing.T) {
	var clk clock
	h := wasmtest.New(t, wasmtest.Options{
		Path:    ctlPath,
		Runtime: wasm.Options{Now: clk.now},
		Plugin:  wasm.PluginConfig{Name: "ctl"},
		Quiet:   true,
	})
	clk.zero.Store(true)
	h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-trap", "1"}})
	h.WaitLog("configure rejected: clock is zero", 5*time.Second)
	start := time.Now()
	r := h.Run(wasmtest.Exchange{})
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("stream waited %v for a dead instance", d)
	}
	if !errors.Is(r.Failure, wasm.ErrNoInstance) || r.Local == nil || r.Local.StatusCode != 503 {
		t.Fatalf("failure %v local %+v, want ErrNoInstance answered with 503", r.Failure, r.Local)
	}
	clk.zero.Store(false)
	h.MustLiveInstances(1, replaceTimeout)
	if r := h.Run(wasmtest.Exchange{}); r.Failure != nil {
		t.Fatalf("after recovery: %v", r.Failure)
	}
}

// TestContainmentPluginClosedDuringReplacement: a plugin closed while a
// failed instance's replacement is starting the VM's plugins must not come
// back on the replacement. Plugin "a" is started on the new instance, then
// plugin "b"'s slow proxy_on_configure gives the test time to close "a";
// afterwards "a" must serve no stream.
func TestContainmentPluginClosedDuringReplacement(t *testing.T) {
	var clk clock
	h := wasmtest.New(t, wasmtest.Options{
		Path:    ctlPath,
		Runtime: wasm.Options{Now: clk.now},
		Plugin:  wasm.PluginConfig{Name: "a"},
		Quiet:   true,
	})
	if _, err := h.NewPlugin(wasm.PluginConfig{Name: "b", Configuration: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	clk.slow.Store(true)
	h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-trap", "1"}})
	h.WaitLog("configure slow", 5*time.Second)
	h.Plugin().Close(context.Background())
	clk.slow.Store(false)
	h.MustLiveInstances(1, replaceTimeout)
	if r := h.Run(wasmtest.Exchange{}); r.Failure == nil {
		t.Fatalf("closed plugin served a stream on the replacement instance: request %s", r.Request.Headers)
	}
}

// TestContainmentLoopDoesNotStallOtherInstance: while one instance spins
// until its deadline, streams on the other instance are served. A stream
// that the VM pins to the spinning instance waits for it to be stopped
// (the instance is busy, not dead) and then gets its policy.
func TestContainmentLoopDoesNotStallOtherInstance(t *testing.T) {
	h := wasmtest.New(t, wasmtest.Options{
		Path:      edgePath("infinite_loop"),
		Instances: 2,
		VM:        wasm.VMConfig{CallTimeout: 300 * time.Millisecond},
		Plugin:    wasm.PluginConfig{Name: "loop"},
		Quiet:     true,
	})
	loopDone := make(chan wasmtest.Result, 1)
	go func() {
		loopDone <- h.Run(wasmtest.Exchange{RequestHeaders: []string{":path", "/", "x-loop", "1"}})
	}()
	// Wait until the loop is running: its instance's lock is held.
	time.Sleep(20 * time.Millisecond)
	var served, failed int
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		r := h.Run(wasmtest.Exchange{})
		if r.Failure == nil && r.Request.Header("x-loop-ok") == "1" {
			served++
		} else {
			failed++
		}
	}
	r := <-loopDone
	var f *wasm.InstanceFailure
	if !errors.As(r.Failure, &f) || f.Kind != wasm.FailureTimeout {
		t.Fatalf("looping stream: %v", r.Failure)
	}
	t.Logf("while one instance spun: %d streams served, %d failed", served, failed)
	if served == 0 {
		t.Fatal("no stream was served while the other instance spun")
	}
	mustOnly(t, h, wasm.FailureTimeout, 1)
	h.MustLiveInstances(2, replaceTimeout)
}

// TestContainmentConcurrentCloseAndFailure: closing the plugin, the VM and
// the runtime while streams fail and instances are replaced neither hangs
// nor leaks (the harness checks goroutines at the end).
func TestContainmentConcurrentCloseAndFailure(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	h := wasmtest.New(t, wasmtest.Options{
		Path:      ctlPath,
		Instances: 2,
		Plugin:    wasm.PluginConfig{Name: "ctl"},
		Quiet:     true,
		// Checked below, once the test's own goroutines are gone.
		SkipLeakCheck: true,
	})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req := []string{":path", "/"}
				if g == 0 {
					req = append(req, "x-trap", "1")
				}
				h.Run(wasmtest.Exchange{RequestHeaders: req})
			}
		}(g)
	}
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		h.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the runtime under load hung")
	}
	close(stop)
	wg.Wait()
	if h.Failure(wasm.FailureTrap) == 0 {
		t.Fatalf("no trap counted: %s", failureCounts(h))
	}
	goleak.VerifyNone(t, ignore)
}

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// TestContainmentTCPPolicies: a network filter that traps closes both
// directions (fail closed) or lets the bytes through unmodified (fail
// open), and a later connection works on a fresh instance.
func TestContainmentTCPPolicies(t *testing.T) {
	for _, pc := range policyCases {
		t.Run(pc.policy.String(), func(t *testing.T) {
			h := wasmtest.New(t, wasmtest.Options{
				Path:   filepath.Join("testdata", "harness", "tcp.wasm"),
				Plugin: wasm.PluginConfig{Name: "tcp", FailurePolicy: pc.policy},
				Quiet:  true,
			})
			c := h.TCP()
			c.NewConnection()
			act := c.DownstreamData([]byte("trap me"), false)
			if c.Failure() == nil {
				t.Fatal("no failure")
			}
			if pc.open {
				c.DownstreamData([]byte(" and more"), true)
				c.UpstreamData([]byte("reply"), true)
				if act != wasm.ActionContinue || !c.Skipped() || c.Closed() ||
					string(c.Downstream().Data) != "trap me and more" || string(c.Upstream().Data) != "reply" {
					t.Fatalf("fail open: action %d skipped %v closed %v down %q up %q",
						act, c.Skipped(), c.Closed(), c.Downstream().Data, c.Upstream().Data)
				}
			} else {
				evs := c.Events()
				if act != wasm.ActionPause || len(evs) != 2 || evs[0].Kind != wasmtest.EventClose || evs[1].Kind != wasmtest.EventClose ||
					evs[0].Stream == evs[1].Stream || len(c.Downstream().Data) != 0 {
					t.Fatalf("fail closed: action %d events %v down %q", act, evs, c.Downstream().Data)
				}
			}
			c.Done()
			mustOnly(t, h, wasm.FailureTrap, 1)
			h.MustLiveInstances(1, replaceTimeout)
			c2 := h.TCP()
			c2.NewConnection()
			c2.DownstreamData([]byte("hello"), true)
			if c2.Failure() != nil || string(c2.Downstream().Data) != ">hello" {
				t.Fatalf("connection after the failure: %v %q", c2.Failure(), c2.Downstream().Data)
			}
			c2.Done()
		})
	}
}
