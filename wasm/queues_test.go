package wasm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// enqueue calls proxy_enqueue_shared_queue(id, item) from the guest.
func (g shGuest) enqueue(id uint32, item string) Status {
	g.t.Helper()
	p, l := g.str(shScratch+0x800, item)
	return g.status("t_enqueue_shared_queue", uint64(id), p, l)
}

// dequeue calls proxy_dequeue_shared_queue(id) from the guest.
func (g shGuest) dequeue(id uint32) (string, Status) {
	g.t.Helper()
	s := g.status("t_dequeue_shared_queue", uint64(id), shRet, shRet+4)
	if s != StatusOK {
		return "", s
	}
	return string(g.bytes(g.u32(shRet), g.u32(shRet+4))), s
}

// register calls proxy_register_shared_queue(name) from the guest.
func (g shGuest) register(name string) (uint32, Status) {
	g.t.Helper()
	p, l := g.str(shScratch, name)
	s := g.status("t_register_shared_queue", p, l, shRet)
	return g.u32(shRet), s
}

// resolve calls proxy_resolve_shared_queue(vmID, name) from the guest.
func (g shGuest) resolve(vmID, name string) (uint32, Status) {
	g.t.Helper()
	g.write(shRet, []byte{0, 0, 0, 0})
	vp, vl := g.str(shScratch, vmID)
	np, nl := g.str(shScratch+0x400, name)
	s := g.status("t_resolve_shared_queue", vp, vl, np, nl, shRet)
	return g.u32(shRet), s
}

func (g shGuest) readyCount() uint32 { return g.call("t_ready_count") }

func TestQueueRegisterResolve(t *testing.T) {
	e := newShEnv(t)
	a := shGuests(t, e.plugin(e.vm("a", 2), "p", "jobs"))
	b := shGuests(t, e.plugin(e.vm("b", 1), "p", ""))[0]

	id := a[0].call("t_queue")
	if id == 0 || a[1].call("t_queue") != id {
		t.Fatalf("instances registered ids %d and %d", id, a[1].call("t_queue"))
	}
	cases := []struct {
		name   string
		g      shGuest
		vmID   string
		queue  string
		want   Status
		wantID uint32
	}{
		{"other vm_id", b, "a", "jobs", StatusOK, id},
		{"own vm_id spelled out", a[1], "a", "jobs", StatusOK, id},
		{"empty vm_id is the caller's", a[0], "", "jobs", StatusOK, id},
		{"empty vm_id from another vm", b, "", "jobs", StatusNotFound, 0},
		{"unknown name", b, "a", "nope", StatusNotFound, 0},
		{"unknown vm_id", b, "c", "jobs", StatusNotFound, 0},
		{"names are exact", b, "a", "Jobs", StatusNotFound, 0},
	}
	for _, c := range cases {
		got, s := c.g.resolve(c.vmID, c.queue)
		if s != c.want || (s == StatusOK && got != c.wantID) {
			t.Errorf("%s: id %d status %v, want %d %v", c.name, got, s, c.wantID, c.want)
		}
	}
	// Registering again opens the same queue; another vm_id's name is a
	// different queue.
	if again, s := a[0].register("jobs"); s != StatusOK || again != id {
		t.Fatalf("register again: %d %v", again, s)
	}
	bid, s := b.register("jobs")
	if s != StatusOK || bid == id || bid == 0 {
		t.Fatalf("vm b's jobs: %d %v (vm a's is %d)", bid, s, id)
	}
	infos := e.rt.queues.Queues()
	if len(infos) != 2 || infos[0].VMID != "a" || infos[1].VMID != "b" || infos[1].Name != "jobs" {
		t.Fatalf("queues %+v", infos)
	}
}

// TestQueueCrossVMStream: a stream on vm_id b resolves vm_id a's queue and
// enqueues; vm a's registrant root context is notified and drains it.
func TestQueueCrossVMStream(t *testing.T) {
	e := newShEnv(t)
	e.plugin(e.vm("a", 2), "consumer", "jobs")
	producer := e.plugin(e.vm("b", 2), "producer", "")

	cases := []struct {
		vm, queue, item string
		header, want    string
	}{
		{"a", "jobs", "hello from b", "x-enqueue-status", "0"},
		{"a", "missing", "lost", "x-resolve-status", "1"},
		{"b", "jobs", "lost", "x-resolve-status", "1"},
	}
	for _, c := range cases {
		s := producer.NewHTTPStream(StreamOptions{})
		h := NewHeaders(":path", "/", "x-enqueue", c.item, "x-queue-vm", c.vm, "x-queue-name", c.queue)
		if a := s.OnRequestHeaders(h, true); a != ActionContinue {
			t.Fatalf("action %d: %v", a, s.Failure())
		}
		if v, _ := h.Get(c.header); v != c.want {
			t.Errorf("%s/%s: %s=%q, want %q (headers %s)", c.vm, c.queue, c.header, v, c.want, h)
		}
		s.Close()
	}
	waitFor(t, "queue_ready log on vm a", func() bool {
		return e.logs.FilterMessage("queue_ready: hello from b").Len() == 1
	})
	entry := e.logs.FilterMessage("queue_ready: hello from b").All()[0]
	if got := entry.ContextMap()["vm_id"]; got != "a" {
		t.Fatalf("logged by vm_id %v, want a", got)
	}
	if n := e.logs.FilterMessageSnippet("lost").Len(); n != 0 {
		t.Fatalf("%d unexpected items", n)
	}
}

// TestQueueReadyGoesToLastRegistrant: the root context that registered last
// is notified, once per enqueue, never inside the enqueuer's callback.
func TestQueueReadyGoesToLastRegistrant(t *testing.T) {
	e := newShEnv(t)
	gs := shGuests(t, e.plugin(e.vm("reg", 3), "p", "q"))
	id := gs[0].call("t_queue")
	counts := func() []uint32 {
		out := make([]uint32, len(gs))
		for k, g := range gs {
			out[k] = g.readyCount()
		}
		return out
	}
	expect := func(step string, want ...uint32) {
		t.Helper()
		waitFor(t, step, func() bool { return fmt.Sprint(counts()) == fmt.Sprint(want) })
	}

	// proxy_on_configure ran on instances 0, 1, 2 in that order.
	if s := gs[0].enqueue(id, "one"); s != StatusOK {
		t.Fatal(s)
	}
	expect("instance 2 notified", 0, 0, 1)

	// Instance 1 registers again, from a stream context: its root context
	// becomes the registrant.
	var stream *HTTPStream
	for stream == nil || stream.inst != gs[1].inst {
		if stream != nil {
			stream.Close()
		}
		stream = gs[1].root.plugin.NewHTTPStream(StreamOptions{})
	}
	if _, s := (shGuest{t: t, inst: stream.inst, root: stream.ctx}).register("q"); s != StatusOK {
		t.Fatal(s)
	}
	stream.Close()
	if s := gs[0].enqueue(id, "two"); s != StatusOK {
		t.Fatal(s)
	}
	expect("instance 1 notified", 0, 1, 1)

	// The enqueuer itself is the registrant: notified after its callback.
	if _, s := gs[0].register("q"); s != StatusOK {
		t.Fatal(s)
	}
	p, l := gs[0].str(shScratch+0x800, "three")
	if during := gs[0].call("t_enqueue_probe", uint64(id), p, l); during != 0 {
		t.Fatalf("proxy_on_queue_ready ran inside the enqueuing callback (count %d)", during)
	}
	// Deferred work runs before the instance lock is released.
	if got := counts(); fmt.Sprint(got) != "[1 1 1]" {
		t.Fatalf("counts %v right after the callback", got)
	}
	if got := gs[0].call("t_last_ready_root"); got != gs[0].root.id {
		t.Fatalf("notified root %d, want %d", got, gs[0].root.id)
	}
	if got := gs[0].call("t_last_ready_q"); got != id {
		t.Fatalf("notified queue %d, want %d", got, id)
	}

	// One call per enqueue, from many goroutines and instances.
	const n = 60
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := gs[k%len(gs)]
			if s := g.enqueue(id, fmt.Sprintf("item-%d", k)); s != StatusOK {
				t.Errorf("enqueue: %v", s)
			}
		}()
	}
	wg.Wait()
	expect("every enqueue notified", 1+n, 1, 1)
	if items := gs[0].call("t_ready_items") + gs[1].call("t_ready_items") + gs[2].call("t_ready_items"); items != n+3 {
		t.Fatalf("%d items drained, want %d", items, n+3)
	}
	if q := e.rt.queues.Queues(); q[0].Items != 0 || q[0].Bytes != 0 {
		t.Fatalf("queue left with %+v", q[0])
	}
}

func TestQueueStatuses(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("st", 1), "p", ""))[0]
	g.call("t_set_drain", 0)
	reg := e.rt.queues
	id, s := g.register("fifo")
	if s != StatusOK || id == 0 {
		t.Fatalf("register: %d %v", id, s)
	}

	if s := g.enqueue(id+100, "x"); s != StatusNotFound {
		t.Errorf("enqueue on unknown id: %v", s)
	}
	if _, s := g.dequeue(id + 100); s != StatusNotFound {
		t.Errorf("dequeue on unknown id: %v", s)
	}
	if _, s := g.dequeue(id); s != StatusEmpty {
		t.Errorf("dequeue empty: %v", s)
	}
	for _, item := range []string{"1", "", "3"} {
		if s := g.enqueue(id, item); s != StatusOK {
			t.Fatalf("enqueue %q: %v", item, s)
		}
	}
	for _, want := range []string{"1", "", "3"} {
		if got, s := g.dequeue(id); s != StatusOK || got != want {
			t.Fatalf("dequeue: %q %v, want %q", got, s, want)
		}
	}
	if _, s := g.dequeue(id); s != StatusEmpty {
		t.Errorf("dequeue drained: %v", s)
	}
	if got := g.readyCount(); got != 3 {
		t.Errorf("%d notifications, want 3", got)
	}

	def := DefaultQueueLimits
	if s := g.status("t_enqueue_shared_queue", uint64(id), shBig, uint64(def.MaxItemBytes)); s != StatusOK {
		t.Errorf("item at the cap: %v", s)
	}
	if s := g.status("t_enqueue_shared_queue", uint64(id), shBig, uint64(def.MaxItemBytes+1)); s != StatusBadArgument {
		t.Errorf("item past the cap: %v", s)
	}
	if s := g.status("t_register_shared_queue", shBig, uint64(def.MaxNameBytes+1), shRet); s != StatusBadArgument {
		t.Errorf("name past the cap: %v", s)
	}
	if got, s := g.dequeue(id); s != StatusOK || len(got) != def.MaxItemBytes {
		t.Fatalf("dequeue big item: %d bytes %v", len(got), s)
	}

	reg.SetLimits(QueueLimits{MaxQueues: 2, MaxNameBytes: 8, MaxItems: 2, MaxItemBytes: 8, MaxTotalBytes: 100})
	defer reg.SetLimits(def)
	g.enqueue(id, "a")
	g.enqueue(id, "b")
	if s := g.enqueue(id, "c"); s != StatusBadArgument {
		t.Errorf("enqueue on a full queue: %v", s)
	}
	if got, _ := g.dequeue(id); got != "a" {
		t.Errorf("full queue lost its head: %q", got)
	}
	if s := g.enqueue(id, "c"); s != StatusOK {
		t.Errorf("enqueue after a dequeue: %v", s)
	}
	if _, s := g.register("second"); s != StatusOK {
		t.Errorf("second queue: %v", s)
	}
	if _, s := g.register("third"); s != StatusBadArgument {
		t.Errorf("queue past MaxQueues: %v", s)
	}
	if _, s := g.register("fifo"); s != StatusOK {
		t.Errorf("reopening at MaxQueues: %v", s)
	}
}

// TestQueueSkipsDeadAndClosedRegistrants: notifications for a registrant
// whose plugin closed or whose instance died are dropped, the items stay.
func TestQueueSkipsDeadAndClosedRegistrants(t *testing.T) {
	e := newShEnv(t)
	vm := e.vm("skip", 2)
	consumer := e.plugin(vm, "consumer", "q")
	producer := shGuests(t, e.plugin(vm, "producer", ""))
	gs := shGuests(t, consumer)
	id := gs[0].call("t_queue")

	// The registrant (instance 1's root of consumer) goes away with its
	// plugin; enqueueing still works and nobody is called.
	consumer.Close(context.Background())
	for _, g := range producer {
		if s := g.enqueue(id, "kept"); s != StatusOK {
			t.Fatal(s)
		}
	}
	if got := gs[0].readyCount() + gs[1].readyCount(); got != 0 {
		t.Fatalf("closed plugin notified %d times", got)
	}
	// The gone registrant is forgotten, not kept reachable. Wait for the
	// delivery of those enqueues to end too: a pending notification left
	// over would go to the next registrant, which is right, but would
	// drain the items this test counts below.
	waitFor(t, "closed registrant forgotten and deliveries done", func() bool {
		e.rt.queues.mu.Lock()
		defer e.rt.queues.mu.Unlock()
		q := e.rt.queues.byID[id]
		return q.root == nil && !q.delivering
	})

	// A registrant whose instance is dead. (Marked dead by hand: a real
	// failure would start a replacement that registers again at once.)
	gs2 := shGuests(t, e.plugin(vm, "consumer2", "q"))
	victim := gs2[1]
	victim.inst.dead.Store(true)
	if s := gs2[0].enqueue(id, "kept"); s != StatusOK {
		t.Fatal(s)
	}
	// Wait until the delivery has seen the dead registrant and forgotten
	// it (waiting for "not delivering" alone can pass before the delivery
	// goroutine has even started).
	waitFor(t, "dead registrant skipped and forgotten", func() bool {
		e.rt.queues.mu.Lock()
		defer e.rt.queues.mu.Unlock()
		q := e.rt.queues.byID[id]
		return q.root == nil && !q.delivering
	})
	victim.inst.dead.Store(false)
	if got := victim.readyCount(); got != 0 {
		t.Fatalf("dead instance notified %d times", got)
	}
	if q := e.rt.queues.Queues(); q[0].Items != 3 {
		t.Fatalf("queue %+v, want the 3 items kept", q[0])
	}
	// Whoever registers next gets the next notification and drains.
	if _, s := gs2[0].register("q"); s != StatusOK {
		t.Fatal(s)
	}
	if s := producer[0].enqueue(id, "last"); s != StatusOK {
		t.Fatal(s)
	}
	waitFor(t, "new registrant to drain", func() bool {
		return e.logs.FilterMessageSnippet("queue_ready: ").Len() == 4
	})
	if got := e.logs.FilterMessage("queue_ready: kept").Len(); got != 3 {
		t.Fatalf("%d kept items drained", got)
	}
}

// TestQueueNotificationsStopWithRuntime: pending notifications to another
// instance do not outlive the runtime.
func TestQueueNotificationsStopWithRuntime(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newShEnv(t)
	ctx := context.Background()
	vm, err := e.rt.VM(ctx, VMConfig{ID: "leak", Code: e.code, Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	p, err := vm.NewPlugin(ctx, PluginConfig{Name: "p", Configuration: []byte("q")})
	if err != nil {
		t.Fatal(err)
	}
	gs := shGuests(t, p)
	id := gs[0].call("t_queue")
	// Hold the registrant (instance 1) so that every notification is still
	// pending when the runtime closes.
	gs[1].inst.mu.Lock()
	for range 500 {
		if s := gs[0].enqueue(id, strings.Repeat("x", 100)); s != StatusOK {
			t.Fatal(s)
		}
	}
	gs[1].inst.mu.Unlock()
	vm.Close(ctx)
	if err := e.rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !gs[1].inst.dead.Load() {
		t.Fatal("instance alive after close")
	}
}

func TestQueueOutOfBounds(t *testing.T) {
	e := newShEnv(t)
	g := shGuests(t, e.plugin(e.vm("oob", 1), "p", ""))[0]
	g.call("t_set_drain", 0)
	id, _ := g.register("q")
	np, nl := g.str(shScratch, "q")
	vp, vl := g.str(shScratch+0x100, "oob")
	ip, il := g.str(shScratch+0x200, "item")
	r := uint64(shRet)
	q := uint64(id)
	fill := func(g shGuest) {
		if s := g.enqueue(id, "item"); s != StatusOK {
			t.Fatal(s)
		}
	}
	cases := []shOOB{
		{"register name ptr wraps", "t_register_shared_queue", []uint64{shWrap, 0x20, r}, nil},
		{"register name size huge", "t_register_shared_queue", []uint64{np, shHuge, r}, nil},
		{"register ret slot", "t_register_shared_queue", []uint64{np, nl, shEdge}, nil},
		{"resolve vm_id ptr past end", "t_resolve_shared_queue", []uint64{shPast, vl, np, nl, r}, nil},
		{"resolve vm_id size huge", "t_resolve_shared_queue", []uint64{vp, shHuge, np, nl, r}, nil},
		{"resolve name ptr wraps", "t_resolve_shared_queue", []uint64{vp, vl, shWrap, 0x20, r}, nil},
		{"resolve name size huge", "t_resolve_shared_queue", []uint64{vp, vl, np, shHuge, r}, nil},
		{"resolve ret slot", "t_resolve_shared_queue", []uint64{vp, vl, np, nl, shPast}, nil},
		{"enqueue value ptr wraps", "t_enqueue_shared_queue", []uint64{q, shWrap, 0x20}, nil},
		{"enqueue value size huge", "t_enqueue_shared_queue", []uint64{q, ip, shHuge}, nil},
		{"dequeue ptr slot", "t_dequeue_shared_queue", []uint64{q, shEdge, r + 4}, fill},
		{"dequeue size slot", "t_dequeue_shared_queue", []uint64{q, r, shWrap}, fill},
	}
	runOOB(t, g, cases)
	_ = il
	// No item was lost to a bad return pointer.
	if q := e.rt.queues.Queues()[0]; q.Items != 2 {
		t.Fatalf("queue %+v, want the 2 items kept", q)
	}
	if got, s := g.dequeue(id); s != StatusOK || got != "item" {
		t.Fatalf("dequeue %q %v", got, s)
	}
}

// TestQueueCloseStopsDelivery: after queueRegistry.close, enqueueing still
// works but starts no delivery goroutine.
func TestQueueCloseStopsDelivery(t *testing.T) {
	e := newShEnv(t)
	gs := shGuests(t, e.plugin(e.vm("closed", 2), "p", "q"))
	id := gs[0].call("t_queue")
	e.rt.queues.close()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	if s := gs[0].enqueue(id, "after close"); s != StatusOK {
		t.Fatal(s)
	}
	if got := gs[1].readyCount(); got != 0 {
		t.Fatalf("notified %d times after close", got)
	}
}

func TestQueueHostcallsContract(t *testing.T) {
	e := newShEnv(t)
	p := e.hostcalls("hc", "queue=jobs", 2)
	other := e.hostcalls("hc-other", "", 1)
	runHostcalls(t, p, []hcCase{
		{"/t/queue/enqueue", []string{"x-queue", "jobs", "x-value", "v1"}, 200, "ok"},
		{"/t/queue/register", []string{"x-queue", "side"}, 200, "ok"},
		{"/t/queue/enqueue", []string{"x-queue", "side", "x-value", "s1"}, 200, "ok"},
		{"/t/queue/dequeue", []string{"x-queue", "side"}, 200, "s1"},
		{"/t/queue/dequeue", []string{"x-queue", "side"}, 500, "proxy_dequeue_shared_queue status=7"},
		{"/t/queue/empty", nil, 200, "ok"},
		{"/t/queue/unknown_id", nil, 200, "ok"},
		{"/t/queue/resolve_missing", nil, 200, "ok"},
		{"/t/queue/resolve_missing", []string{"x-vm-id", "hc-other"}, 200, "ok"},
	})
	runHostcalls(t, other, []hcCase{
		{"/t/queue/enqueue", []string{"x-queue", "jobs", "x-vm-id", "hc", "x-value", "v2"}, 200, "ok"},
		{"/t/queue/enqueue", []string{"x-queue", "jobs", "x-value", "v3"}, 500, "proxy_resolve_shared_queue status=1"},
	})
	for _, item := range []string{"v1", "v2"} {
		waitFor(t, "queue_ready "+item, func() bool {
			return e.logs.FilterMessage("hostcalls: queue_ready jobs: "+item).Len() == 1
		})
	}
	if n := e.logs.FilterMessage("hostcalls: queue_ready: not a configured queue").Len(); n != 1 {
		t.Errorf("%d notifications for the side queue, want 1", n)
	}
}
