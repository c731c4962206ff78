package streamctx

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type countHook struct{ n atomic.Int32 }

func (h *countHook) OnCancel() { h.n.Add(1) }

func TestCancelReachesHooksAndChildren(t *testing.T) {
	errGone := errors.New("client went away")
	for _, tc := range []struct {
		name     string
		cancel   func(root *Context, rootStd context.CancelFunc)
		wantErr  error
		wantHook int32
	}{
		{"cancel the root", func(r *Context, _ context.CancelFunc) { r.Cancel(errGone) }, context.Canceled, 1},
		{"cancel the std parent", func(_ *Context, c context.CancelFunc) { c() }, context.Canceled, 1},
		{"cancel twice", func(r *Context, _ context.CancelFunc) { r.Cancel(errGone); r.Cancel(nil) }, context.Canceled, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			std, stdCancel := context.WithCancel(context.WithValue(context.Background(), "k", "v"))
			defer stdCancel()
			root := New(std)
			child := New(root)
			grandchild := New(child)
			h := &countHook{}
			if !grandchild.Notify(h) {
				t.Fatal("Notify on a live context failed")
			}
			if grandchild.Value("k") != "v" {
				t.Fatalf("Value = %v, want the parent's", grandchild.Value("k"))
			}
			if grandchild.Err() != nil {
				t.Fatal("Err before cancel")
			}
			done := child.Done()
			tc.cancel(root, stdCancel)
			waitFor(t, func() bool { return grandchild.Err() != nil })
			if !errors.Is(grandchild.Err(), tc.wantErr) {
				t.Errorf("Err = %v, want %v", grandchild.Err(), tc.wantErr)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed")
			}
			if got := h.n.Load(); got != tc.wantHook {
				t.Errorf("hook told %d times, want %d", got, tc.wantHook)
			}
			if grandchild.Notify(h) {
				t.Error("Notify on a cancelled context succeeded")
			}
		})
	}
}

func TestChildCancelLeavesParent(t *testing.T) {
	root := New(context.Background())
	for i := 0; i < 100; i++ {
		c := New(root)
		c.Cancel(nil)
	}
	root.mu.Lock()
	n := len(root.hooks)
	root.mu.Unlock()
	if n != 0 {
		t.Fatalf("root keeps %d hooks of cancelled children", n)
	}
	if root.Err() != nil {
		t.Fatal("a child's cancel reached the root")
	}
}

func TestStop(t *testing.T) {
	c := New(context.Background())
	h := &countHook{}
	c.Notify(h)
	if !c.Stop(h) {
		t.Fatal("Stop of a registered hook = false")
	}
	if c.Stop(h) {
		t.Fatal("second Stop = true")
	}
	c.Cancel(nil)
	if h.n.Load() != 0 {
		t.Fatal("a stopped hook was told")
	}
	h2 := &countHook{}
	c2 := New(context.Background())
	c2.Notify(h2)
	c2.Cancel(nil)
	if c2.Stop(h2) {
		t.Fatal("Stop after cancel = true")
	}
}

func TestStdlibDerivedContexts(t *testing.T) {
	c := New(context.Background())
	wc, wcancel := context.WithCancel(c)
	defer wcancel()
	ran := make(chan struct{})
	context.AfterFunc(c, func() { close(ran) })
	stopped := context.AfterFunc(c, func() { t.Error("stopped AfterFunc ran") })
	if !stopped() {
		t.Fatal("stop = false before cancel")
	}
	c.Cancel(nil)
	select {
	case <-wc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("WithCancel child not cancelled")
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc did not run")
	}
	late := make(chan struct{})
	context.AfterFunc(c, func() { close(late) })
	select {
	case <-late:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc on a cancelled context did not run")
	}
}

func TestAlreadyCancelledParent(t *testing.T) {
	std, cancel := context.WithCancel(context.Background())
	cancel()
	if New(std).Err() == nil {
		t.Fatal("child of a cancelled std context is live")
	}
	root := New(context.Background())
	root.Cancel(nil)
	if New(root).Err() == nil {
		t.Fatal("child of a cancelled Context is live")
	}
}

func TestConcurrentCancel(t *testing.T) {
	for i := 0; i < 200; i++ {
		std, cancel := context.WithCancel(context.Background())
		root := New(std)
		var wg sync.WaitGroup
		kids := make([]*Context, 8)
		for j := range kids {
			wg.Add(1)
			go func() { defer wg.Done(); kids[j] = New(root) }()
		}
		go cancel()
		wg.Wait()
		waitFor(t, func() bool { return root.Err() != nil })
		for _, k := range kids {
			waitFor(t, func() bool { return k.Err() != nil })
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkNewCancel(b *testing.B) {
	root := New(context.Background())
	h := &countHook{}
	b.ReportAllocs()
	for b.Loop() {
		c := New(root)
		c.Notify(h)
		c.Stop(h)
		c.Cancel(nil)
	}
}

func BenchmarkStdWithCancelAfterFunc(b *testing.B) {
	root, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := context.WithCancel(root)
		stop := context.AfterFunc(c, func() {})
		stop()
		cancel()
	}
}

// TestCause: context.Cause of a Context is nil while it lives and its
// error once cancelled, even under a live cancellable ancestor (net/http's
// Transport returns context.Cause(ctx) as a cancelled round trip's error).
func TestCause(t *testing.T) {
	std, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := New(std)
	if err := context.Cause(c); err != nil {
		t.Fatalf("Cause of a live context = %v", err)
	}
	c.Cancel(nil)
	if err := context.Cause(c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Cause after Cancel = %v, want context.Canceled", err)
	}
	if std.Err() != nil {
		t.Fatal("the ancestor was cancelled")
	}
}
