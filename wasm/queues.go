package wasm

import (
	"context"
	"sort"
	"sync"

	"go.uber.org/zap"
)

// Shared queues are host-wide FIFO queues of byte strings, named by the
// registering VM's vm_id and a name, as in proxy-wasm-cpp-host's
// SharedQueue:
//
//   - proxy_register_shared_queue(name) creates the queue (vm_id of the
//     caller, name) or opens it if it exists, keeping its items, and makes
//     the caller's root context (a stream context's root) the one notified.
//     A plugin's root context exists once per instance, so the root context
//     that registered last is notified: the instance whose
//     proxy_on_configure ran last, or whichever registered after it.
//   - proxy_resolve_shared_queue(vm_id, name) finds a queue of any vm_id (an
//     empty vm_id means the caller's own) without changing who is notified.
//   - Any instance of any VM holding a queue id may enqueue and dequeue.
//   - Every successful enqueue calls proxy_on_queue_ready(root_context_id,
//     queue_id) once on the registrant, never inside the enqueuer's
//     callback: when the registrant lives in the enqueuing instance the call
//     runs right after the current callback returns (instance.deferLocked);
//     for another instance a per-queue goroutine delivers the calls in order,
//     taking only that instance's lock. A registrant whose instance died, or
//     whose plugin was closed, is skipped and forgotten: its items stay
//     queued until someone dequeues them, and the next registration names
//     the new registrant (a replacement instance registers again in its
//     proxy_on_configure). Delivery goroutines exit as soon as no calls are
//     pending, so they end with the runtime's instances.

// QueueLimits caps what guests can hold in shared queues.
type QueueLimits struct {
	// MaxQueues caps the number of queues; registering one more answers
	// BAD_ARGUMENT.
	MaxQueues int
	// MaxNameBytes caps a queue name; BAD_ARGUMENT past it.
	MaxNameBytes int
	// MaxItems caps the items waiting in one queue; enqueueing on a full
	// queue answers BAD_ARGUMENT.
	MaxItems int
	// MaxItemBytes caps one item; BAD_ARGUMENT past it.
	MaxItemBytes int
	// MaxTotalBytes caps the bytes waiting in all queues together (items
	// plus names); BAD_ARGUMENT past it.
	MaxTotalBytes int64
}

// DefaultQueueLimits are the limits of a new Runtime.
var DefaultQueueLimits = QueueLimits{
	MaxQueues:     10000,
	MaxNameBytes:  64 << 10,
	MaxItems:      10000,
	MaxItemBytes:  1 << 20,
	MaxTotalBytes: 64 << 20,
}

// queueRegistry holds the host-wide shared queues.
type queueRegistry struct {
	mu     sync.Mutex
	limits QueueLimits
	byName map[queueKey]uint32
	byID   map[uint32]*sharedQueue
	lastID uint32
	total  int64
	closed bool
	// workers counts running delivery goroutines.
	workers sync.WaitGroup
}

type queueKey struct{ vmID, name string }

// sharedQueue is one queue; all fields are guarded by the registry's mu.
type sharedQueue struct {
	id    uint32
	key   queueKey
	items [][]byte
	head  int // items[:head] are already dequeued
	bytes int64
	// root is the root context notified on enqueue (nil: nobody).
	root *contextState
	// pending counts notifications the delivery goroutine still owes;
	// delivering is set while that goroutine runs.
	pending    int
	delivering bool
	removed    bool
}

func newQueueRegistry() *queueRegistry {
	return &queueRegistry{
		limits: DefaultQueueLimits,
		byName: map[queueKey]uint32{},
		byID:   map[uint32]*sharedQueue{},
	}
}

// SetLimits replaces the limits; queues past new limits keep their items.
func (r *queueRegistry) SetLimits(l QueueLimits) {
	r.mu.Lock()
	r.limits = l
	r.mu.Unlock()
}

// Limits returns the registry's limits.
func (r *queueRegistry) Limits() QueueLimits {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limits
}

func (q *sharedQueue) len() int { return len(q.items) - q.head }

// register opens or creates the queue (vmID, name) and, when root is not
// nil, makes it the notified root context.
func (r *queueRegistry) register(vmID, name string, root *contextState) (uint32, Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(name) > r.limits.MaxNameBytes {
		return 0, StatusBadArgument
	}
	key := queueKey{vmID, name}
	if id, ok := r.byName[key]; ok {
		if root != nil {
			r.byID[id].root = root
		}
		return id, StatusOK
	}
	if len(r.byID) >= r.limits.MaxQueues || r.total+int64(len(name)) > r.limits.MaxTotalBytes {
		return 0, StatusBadArgument
	}
	id := r.nextIDLocked()
	r.byName[key] = id
	r.byID[id] = &sharedQueue{id: id, key: key, root: root}
	r.total += int64(len(name))
	return id, StatusOK
}

// nextIDLocked returns an unused queue id; ids are not 0 and not reused
// until the counter wraps.
func (r *queueRegistry) nextIDLocked() uint32 {
	for {
		r.lastID++
		if r.lastID == 0 {
			continue
		}
		if _, used := r.byID[r.lastID]; !used {
			return r.lastID
		}
	}
}

// resolve finds the queue (vmID, name).
func (r *queueRegistry) resolve(vmID, name string) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.byName[queueKey{vmID, name}]
	return id, ok
}

// enqueue appends item (kept, not copied) and returns the root context to
// notify; when that root lives in caller, the caller must notify it itself
// (the registry's delivery goroutine handles every other instance).
func (r *queueRegistry) enqueue(id uint32, item []byte, caller *instance) (*contextState, Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.byID[id]
	if !ok {
		return nil, StatusNotFound
	}
	if len(item) > r.limits.MaxItemBytes || q.len() >= r.limits.MaxItems ||
		r.total+int64(len(item)) > r.limits.MaxTotalBytes {
		return nil, StatusBadArgument
	}
	q.items = append(q.items, item)
	q.bytes += int64(len(item))
	r.total += int64(len(item))
	root := q.root
	if root == nil {
		return nil, StatusOK
	}
	if root.inst == caller {
		return root, StatusOK
	}
	if r.closed {
		return nil, StatusOK
	}
	q.pending++
	if !q.delivering {
		q.delivering = true
		r.workers.Add(1)
		go r.deliverLoop(q)
	}
	return nil, StatusOK
}

// dequeue removes the oldest item.
func (r *queueRegistry) dequeue(id uint32) ([]byte, Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.byID[id]
	if !ok {
		return nil, StatusNotFound
	}
	if q.len() == 0 {
		return nil, StatusEmpty
	}
	item := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.bytes -= int64(len(item))
	r.total -= int64(len(item))
	return item, StatusOK
}

// unshift puts back an item dequeue returned (the guest could not take it).
func (r *queueRegistry) unshift(id uint32, item []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.byID[id]
	if !ok {
		return
	}
	if q.head > 0 {
		q.head--
		q.items[q.head] = item
	} else {
		q.items = append([][]byte{item}, q.items...)
	}
	q.bytes += int64(len(item))
	r.total += int64(len(item))
}

// deliverLoop calls proxy_on_queue_ready once per pending notification, on
// whichever root context is registered at delivery time.
func (r *queueRegistry) deliverLoop(q *sharedQueue) {
	defer r.workers.Done()
	for {
		r.mu.Lock()
		if q.pending == 0 || q.removed || r.closed {
			q.pending = 0
			q.delivering = false
			r.mu.Unlock()
			return
		}
		q.pending--
		root := q.root
		r.mu.Unlock()
		if root != nil {
			root.inst.mu.Lock()
			gone := root.inst.queueReadyLocked(root, q.id)
			root.inst.mu.Unlock()
			if gone {
				r.forget(q.id, root)
			}
		}
	}
}

// queueReadyLocked calls proxy_on_queue_ready on root unless its instance
// died or its plugin's root context is gone; gone reports those cases.
func (i *instance) queueReadyLocked(root *contextState, id uint32) (gone bool) {
	if i.dead.Load() || root.finished || i.roots[root.plugin] != root {
		return true
	}
	if i.fns.onQueueReady == nil {
		return false
	}
	if err := i.enterLocked(root, i.fns.onQueueReady, uint64(root.id), uint64(id)); err != nil {
		i.log.Debug("proxy_on_queue_ready failed",
			zap.String("plugin", root.plugin.cfg.Name), zap.Uint32("queue_id", id), zap.Error(err))
		return true
	}
	return false
}

// forget drops root as the queue's registrant (its instance died or its
// plugin closed), so the queue does not keep a dead instance reachable.
// Items stay; the next registration names a new registrant.
func (r *queueRegistry) forget(id uint32, root *contextState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q, ok := r.byID[id]; ok && q.root == root {
		q.root = nil
	}
}

// SharedQueues gives access to the host-wide shared queues (limits and the
// admin listing).
func (r *Runtime) SharedQueues() *queueRegistry { return r.queues }

// deleteVMID drops vm_id's queues; their ids answer NOT_FOUND afterwards.
func (r *queueRegistry) deleteVMID(vmID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, id := range r.byName {
		if key.vmID != vmID {
			continue
		}
		q := r.byID[id]
		q.removed = true
		r.total -= q.bytes + int64(len(key.name))
		delete(r.byName, key)
		delete(r.byID, id)
	}
}

// close stops notifications to other instances and waits for the delivery
// goroutines. Runtime.Close should call it after closing its VMs; without it
// the goroutines still end once the instances are closed, since deliveries
// to closed instances are skipped.
func (r *queueRegistry) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.workers.Wait()
}

// QueueInfo describes a shared queue for the admin API and tests.
type QueueInfo struct {
	ID    uint32
	VMID  string
	Name  string
	Items int
	Bytes int64
}

// Queues lists the shared queues, by id.
func (r *queueRegistry) Queues() []QueueInfo {
	r.mu.Lock()
	out := make([]QueueInfo, 0, len(r.byID))
	for _, q := range r.byID {
		out = append(out, QueueInfo{ID: q.id, VMID: q.key.vmID, Name: q.key.name, Items: q.len(), Bytes: q.bytes})
	}
	r.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

func queueFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_register_shared_queue", 3, hostRegisterSharedQueue),
		proxyFunc("proxy_resolve_shared_queue", 5, hostResolveSharedQueue),
		proxyFunc("proxy_enqueue_shared_queue", 3, hostEnqueueSharedQueue),
		proxyFunc("proxy_dequeue_shared_queue", 3, hostDequeueSharedQueue),
	}
}

// proxy_register_shared_queue(name_data, name_size, return_queue_id)
func hostRegisterSharedQueue(_ context.Context, i *instance, st []uint64) Status {
	name, ok := i.readString(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	ret := u32(st, 2)
	if _, ok := i.mem.Read(ret, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	// Outside any context (start functions) the queue is opened but who is
	// notified does not change.
	root := i.effective
	if root != nil && root.root != nil {
		root = root.root
	}
	id, s := i.vm.rt.queues.register(i.vm.cfg.ID, name, root)
	if s != StatusOK {
		return s
	}
	i.writeU32(ret, id)
	return StatusOK
}

// proxy_resolve_shared_queue(vm_id_data, vm_id_size, name_data, name_size,
// return_queue_id)
func hostResolveSharedQueue(_ context.Context, i *instance, st []uint64) Status {
	vmID, ok := i.readString(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	name, ok := i.readString(u32(st, 2), u32(st, 3))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	if vmID == "" {
		vmID = i.vm.cfg.ID
	}
	id, found := i.vm.rt.queues.resolve(vmID, name)
	if !found {
		return StatusNotFound
	}
	if !i.writeU32(u32(st, 4), id) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

// proxy_enqueue_shared_queue(queue_id, value_data, value_size)
func hostEnqueueSharedQueue(_ context.Context, i *instance, st []uint64) Status {
	value, ok := i.read(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	reg := i.vm.rt.queues
	if len(value) > reg.Limits().MaxItemBytes {
		return StatusBadArgument
	}
	id := u32(st, 0)
	root, s := reg.enqueue(id, append([]byte{}, value...), i)
	if root != nil {
		// The registrant is this instance: notify it after the current
		// callback, never re-entrantly.
		i.deferLocked(func() {
			if i.queueReadyLocked(root, id) {
				reg.forget(id, root)
			}
		})
	}
	return s
}

// proxy_dequeue_shared_queue(queue_id, return_value_data, return_value_size)
func hostDequeueSharedQueue(_ context.Context, i *instance, st []uint64) Status {
	id, retPtr, retSize := u32(st, 0), u32(st, 1), u32(st, 2)
	reg := i.vm.rt.queues
	if !reg.exists(id) {
		return StatusNotFound
	}
	// Check the return slots before taking an item, so that a bad pointer
	// loses nothing.
	if _, ok := i.mem.Read(retPtr, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	if _, ok := i.mem.Read(retSize, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	item, s := reg.dequeue(id)
	if s != StatusOK {
		return s
	}
	if s := i.copyOut(item, retPtr, retSize); s != StatusOK {
		// The guest could not allocate: keep the item for the next try.
		reg.unshift(id, item)
		return s
	}
	return StatusOK
}

// exists reports whether a queue id exists.
func (r *queueRegistry) exists(id uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.byID[id]
	return ok
}
