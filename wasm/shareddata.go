package wasm

import (
	"context"
	"sort"
	"sync"
)

// Shared data is the host-wide key-value store behind proxy_get_shared_data
// and proxy_set_shared_data. As in Envoy (proxy-wasm-cpp-host's SharedData),
// keys are scoped by vm_id: every instance of every VM with the same vm_id,
// and every plugin on them, sees the same keys; another vm_id never does.
// Values carry a compare-and-swap number: one counter for the whole store,
// never 0, increasing on every successful set (it wraps after 2^32-1 sets,
// skipping 0).

// SharedDataLimits caps what guests can store in shared data. A set past a
// cap answers BAD_ARGUMENT and changes nothing.
type SharedDataLimits struct {
	// MaxKeyBytes caps one key.
	MaxKeyBytes int
	// MaxValueBytes caps one value.
	MaxValueBytes int
	// MaxTotalBytes caps the whole store, over every vm_id: each entry
	// counts len(key)+len(value)+SharedDataEntryOverhead.
	MaxTotalBytes int64
}

// SharedDataEntryOverhead is what each entry counts towards
// SharedDataLimits.MaxTotalBytes besides its key and value, so that many
// tiny entries cannot hide their cost.
const SharedDataEntryOverhead = 64

// DefaultSharedDataLimits are the limits of a new Runtime.
var DefaultSharedDataLimits = SharedDataLimits{
	MaxKeyBytes:   64 << 10,
	MaxValueBytes: 1 << 20,
	MaxTotalBytes: 64 << 20,
}

// sharedData is the host-wide key-value store; see the comment at the top of
// this file. Stored values are never mutated, so readers may use them after
// releasing the lock.
type sharedData struct {
	mu     sync.Mutex
	limits SharedDataLimits
	byVM   map[string]map[string]sharedEntry
	total  int64
	cas    uint32 // last compare-and-swap number handed out
	// refs counts live VMs per vm_id (retainVMID/releaseVMID).
	refs map[string]int
}

type sharedEntry struct {
	value []byte
	cas   uint32
}

func newSharedData() *sharedData {
	return &sharedData{
		limits: DefaultSharedDataLimits,
		byVM:   map[string]map[string]sharedEntry{},
		refs:   map[string]int{},
	}
}

func entryCost(key string, value []byte) int64 {
	return int64(len(key)) + int64(len(value)) + SharedDataEntryOverhead
}

// SetLimits replaces the store's limits. Entries already stored stay even if
// they are past the new limits.
func (s *sharedData) SetLimits(l SharedDataLimits) {
	s.mu.Lock()
	s.limits = l
	s.mu.Unlock()
}

// Limits returns the store's limits.
func (s *sharedData) Limits() SharedDataLimits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// nextCASLocked returns a fresh compare-and-swap number (never 0).
func (s *sharedData) nextCASLocked() uint32 {
	s.cas++
	if s.cas == 0 {
		s.cas = 1
	}
	return s.cas
}

// get returns the stored value (not a copy: never mutate it) and its cas.
func (s *sharedData) get(vmID, key string) ([]byte, uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byVM[vmID][key]
	return e.value, e.cas, ok
}

// Get returns a copy of the value under key for vm_id, and its cas.
func (s *sharedData) Get(vmID, key string) (value []byte, cas uint32, ok bool) {
	v, cas, ok := s.get(vmID, key)
	if !ok {
		return nil, 0, false
	}
	return append([]byte{}, v...), cas, true
}

// Set stores value under key for vm_id with the guest's semantics: cas 0
// sets unconditionally, another cas must match the stored one
// (StatusCASMismatch otherwise). Like Envoy, a cas given for a key that does
// not exist is ignored and the key is created. StatusBadArgument means a
// limit was exceeded.
func (s *sharedData) Set(vmID, key string, value []byte, cas uint32) Status {
	return s.set(vmID, key, append([]byte{}, value...), cas)
}

// set is Set without copying value: the store keeps it.
func (s *sharedData) set(vmID, key string, value []byte, cas uint32) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(key) > s.limits.MaxKeyBytes || len(value) > s.limits.MaxValueBytes {
		return StatusBadArgument
	}
	m := s.byVM[vmID]
	old, exists := m[key]
	if exists && cas != 0 && cas != old.cas {
		return StatusCASMismatch
	}
	total := s.total + entryCost(key, value)
	if exists {
		total -= entryCost(key, old.value)
	}
	if total > s.limits.MaxTotalBytes {
		return StatusBadArgument
	}
	if m == nil {
		m = map[string]sharedEntry{}
		s.byVM[vmID] = m
	}
	m[key] = sharedEntry{value: value, cas: s.nextCASLocked()}
	s.total = total
	return StatusOK
}

// Keys returns vm_id's keys, sorted.
func (s *sharedData) Keys(vmID string) []string {
	s.mu.Lock()
	keys := make([]string, 0, len(s.byVM[vmID]))
	for k := range s.byVM[vmID] {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Strings(keys)
	return keys
}

// VMIDs returns the vm_ids that have keys, sorted.
func (s *sharedData) VMIDs() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.byVM))
	for id, m := range s.byVM {
		if len(m) > 0 {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	sort.Strings(ids)
	return ids
}

// Bytes is what the store counts against MaxTotalBytes.
func (s *sharedData) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// deleteVMID drops every key of vm_id.
func (s *sharedData) deleteVMID(vmID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.byVM[vmID] {
		s.total -= entryCost(k, e.value)
	}
	delete(s.byVM, vmID)
}

// retainVMID and releaseVMID count the live VMs of a vm_id. When the last
// one is released, the vm_id's shared data and shared queues are dropped,
// as Envoy does when the last Wasm with a vm_id goes away. The VM lifecycle
// calls them: retain when a VM is created, release when it is closed.
func (r *Runtime) retainVMID(vmID string) {
	s := r.shared
	s.mu.Lock()
	s.refs[vmID]++
	s.mu.Unlock()
}

func (r *Runtime) releaseVMID(vmID string) {
	s := r.shared
	s.mu.Lock()
	s.refs[vmID]--
	last := s.refs[vmID] <= 0
	if last {
		delete(s.refs, vmID)
	}
	s.mu.Unlock()
	if last {
		s.deleteVMID(vmID)
		r.queues.deleteVMID(vmID)
	}
}

func sharedDataFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_get_shared_data", 5, hostGetSharedData),
		proxyFunc("proxy_set_shared_data", 5, hostSetSharedData),
	}
}

// proxy_get_shared_data(key_data, key_size, return_value_data,
// return_value_size, return_cas)
func hostGetSharedData(_ context.Context, i *instance, st []uint64) Status {
	key, ok := i.read(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	value, cas, found := i.vm.rt.shared.get(i.vm.cfg.ID, string(key))
	if !found {
		return StatusNotFound
	}
	// Check the cas slot before copyOut allocates guest memory.
	casPtr := u32(st, 4)
	if _, ok := i.mem.Read(casPtr, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	if s := i.copyOut(value, u32(st, 2), u32(st, 3)); s != StatusOK {
		return s
	}
	if !i.writeU32(casPtr, cas) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

// proxy_set_shared_data(key_data, key_size, value_data, value_size, cas)
func hostSetSharedData(_ context.Context, i *instance, st []uint64) Status {
	key, ok := i.read(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	value, ok := i.read(u32(st, 2), u32(st, 3))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	s := i.vm.rt.shared
	lim := s.Limits()
	if len(key) > lim.MaxKeyBytes || len(value) > lim.MaxValueBytes {
		// Refuse before copying a huge value.
		return StatusBadArgument
	}
	return s.set(i.vm.cfg.ID, string(key), append([]byte{}, value...), u32(st, 4))
}
