package wasm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"
)

// This file holds what HTTP and gRPC callouts share (the per-instance table
// of pending callouts, id allocation, ordered delivery of completions into
// the guest) and proxy_http_call itself. callouts_grpc.go has the gRPC calls.
//
// Like Envoy (proxy-wasm-cpp-host), a callout belongs to the root context of
// the context that made it: the callbacks receive that root context's id,
// which is what every SDK expects (the Go SDK traps on any other id). The
// context that made the call is the effective context during the callback,
// so a guest that skips proxy_set_effective_context still resumes the right
// stream. Unlike Envoy, a callout dies with the context that made it: when a
// stream context is removed its pending callouts are cancelled and no
// callback runs.

// ErrUnknownCluster is returned by Upstreams when the named cluster does not
// exist. proxy_http_call answers BAD_ARGUMENT, proxy_grpc_call and
// proxy_grpc_stream PARSE_FAILURE.
var ErrUnknownCluster = errors.New("unknown cluster")

// maxPendingCallouts caps the callouts one instance may have in flight; past
// it the callout functions answer INTERNAL_FAILURE.
const maxPendingCallouts = 4096

// Status codes and messages proxy_get_status reports for a failed HTTP
// callout (Envoy: BROKEN_CONNECTION and "reset").
const (
	httpCalloutFailedMsg  = "reset"
	httpCalloutTimeoutMsg = "timeout"
)

// calloutKind is the type of a callout, kept in the two low bits of its id
// like proxy-wasm-cpp-host: HTTP calls are 4, 8, ..., gRPC calls 5, 9, ...,
// gRPC streams 6, 10, ...
type calloutKind uint32

const (
	kindHTTPCall    calloutKind = 0
	kindGRPCCall    calloutKind = 1
	kindGRPCStream  calloutKind = 2
	calloutKindMask             = 3
)

// callout is one pending HTTP call, gRPC call or gRPC stream. Its fields are
// guarded by the instance's lock, except q.
type callout struct {
	id   uint32
	kind calloutKind
	// ctx made the call; root is its root context (ctx itself for a root).
	ctx, root *contextState

	// cancelCtx ends the context.Context given to Upstreams; cancel is the
	// HTTP call's cancel function; stream the gRPC stream.
	cancelCtx context.CancelFunc
	cancel    func()
	stream    GRPCStream
	timer     *time.Timer

	// gRPC state: the reply of a unary call (delivered at close, like
	// Envoy), and which sides of a stream are closed.
	reply        []byte
	hasReply     bool
	localClosed  bool
	remoteClosed bool

	// q delivers completions in order on a goroutine of its own, so an
	// Upstreams implementation may call back from any goroutine, even from
	// inside HTTPCall or Send.
	q serialQueue
}

// release stops the callout's timer and tells the upstream to stop.
func (co *callout) release() {
	if co.timer != nil {
		co.timer.Stop()
	}
	if co.cancel != nil {
		co.cancel()
	}
	if co.stream != nil && !co.remoteClosed {
		co.stream.Cancel()
	}
	if co.cancelCtx != nil {
		co.cancelCtx()
	}
}

// calloutTable is an instance's pending callouts, guarded by the instance's
// lock. The zero value is ready.
type calloutTable struct {
	byID  map[uint32]*callout
	byCtx map[*contextState]map[uint32]*callout
	// seq is the last sequence number used per kind.
	seq [3]uint32
}

// allocLocked reserves a fresh id of kind k; false when the instance has too
// many callouts in flight.
func (t *calloutTable) allocLocked(k calloutKind) (uint32, bool) {
	if len(t.byID) >= maxPendingCallouts {
		return 0, false
	}
	for {
		t.seq[k] = (t.seq[k] + 1) & (math.MaxUint32 >> 2)
		id := t.seq[k]<<2 | uint32(k)
		if id == 0 {
			continue
		}
		if _, used := t.byID[id]; !used {
			return id, true
		}
	}
}

func (t *calloutTable) addLocked(co *callout) {
	if t.byID == nil {
		t.byID = map[uint32]*callout{}
		t.byCtx = map[*contextState]map[uint32]*callout{}
	}
	t.byID[co.id] = co
	m := t.byCtx[co.ctx]
	if m == nil {
		m = map[uint32]*callout{}
		t.byCtx[co.ctx] = m
	}
	m[co.id] = co
}

// removeLocked forgets co; it reports whether co was still pending.
func (t *calloutTable) removeLocked(co *callout) bool {
	if t.byID[co.id] != co {
		return false
	}
	delete(t.byID, co.id)
	if m := t.byCtx[co.ctx]; m != nil {
		delete(m, co.id)
		if len(m) == 0 {
			delete(t.byCtx, co.ctx)
		}
	}
	return true
}

// pendingLocked reports whether co is still in the table.
func (t *calloutTable) pendingLocked(co *callout) bool { return t.byID[co.id] == co }

// lookupLocked returns the callout id made under root, if pending.
func (t *calloutTable) lookupLocked(id uint32, root *contextState) *callout {
	co := t.byID[id]
	if co == nil || co.root != root {
		return nil
	}
	return co
}

// cancelCalloutsLocked cancels the pending callouts made by c (every
// callout when c is nil); no callback runs for them. Called when a context
// is removed and when the instance dies or closes.
func (i *instance) cancelCalloutsLocked(c *contextState) {
	t := &i.callouts
	if len(t.byID) == 0 {
		return
	}
	var victims []*callout
	if c == nil {
		for _, co := range t.byID {
			victims = append(victims, co)
		}
	} else {
		for _, co := range t.byCtx[c] {
			victims = append(victims, co)
		}
		if c.root == nil {
			// A root context going away takes its streams' callouts with it:
			// their callbacks would name a root the guest has deleted.
			for _, co := range t.byID {
				if co.root == c && co.ctx != c {
					victims = append(victims, co)
				}
			}
		}
	}
	for _, co := range victims {
		if t.removeLocked(co) {
			co.release()
		}
	}
}

// PendingCallouts counts the HTTP and gRPC callouts the VM's live instances
// track: those in flight, and gRPC streams the server ended that the guest
// has not closed yet (for the admin API and leak tests).
func (vm *VM) PendingCallouts() int {
	n := 0
	for _, inst := range vm.liveInstances() {
		inst.mu.Lock()
		n += len(inst.callouts.byID)
		inst.mu.Unlock()
	}
	return n
}

// callerLocked returns the context a callout is made for (the effective
// context) and its root, or nil outside any context.
func (i *instance) callerLocked() (ctx, root *contextState) {
	c := i.effective
	if c == nil || c.finished {
		return nil, nil
	}
	if c.root != nil {
		return c, c.root
	}
	return c, c
}

// aliveLocked reports whether c is still a context of the instance.
func (i *instance) aliveLocked(c *contextState) bool {
	return c != nil && !c.finished && i.contexts[c.id] == c
}

// deliverCallout runs one callout callback from a completion goroutine: it
// checks that the callout, its contexts and the instance are still there,
// exposes view to the guest for the duration of fn, and afterwards lets the
// calling stream act on what the guest asked for (continue, local response)
// or apply its failure policy if the guest trapped. prepare runs under the
// lock first and may end the callout (it returns false to skip the
// callback) or change what is delivered.
func (i *instance) deliverCallout(co *callout, prepare func() (fn api.Function, view *calloutView, args []uint64, ok bool)) {
	i.mu.Lock()
	if !i.callouts.pendingLocked(co) {
		i.mu.Unlock()
		return
	}
	if i.dead.Load() || !i.aliveLocked(co.ctx) || !i.aliveLocked(co.root) {
		if i.callouts.removeLocked(co) {
			co.release()
		}
		i.mu.Unlock()
		return
	}
	fn, view, args, ok := prepare()
	if !ok || fn == nil {
		i.mu.Unlock()
		return
	}
	prev := i.callout
	i.callout = view
	err := i.enterLocked(co.ctx, fn, append([]uint64{uint64(co.root.id), uint64(co.id)}, args...)...)
	i.callout = prev
	ctx := co.ctx
	closed := ctx.pendingDone
	if closed && ctx.http != nil {
		// The data plane closed the stream and the guest kept its context
		// (proxy_on_done returned false): nothing left to resume.
		ctx.http.events = nil
	} else if closed && ctx.tcp != nil {
		ctx.tcp.events = nil
	}
	i.mu.Unlock()
	if err != nil {
		i.log.Debug("wasm callout callback failed", zap.Uint32("callout_id", co.id), zap.Error(err))
	}
	if closed {
		return
	}
	switch {
	case ctx.http != nil:
		ctx.http.afterAsync(err)
	case ctx.tcp != nil:
		ctx.tcp.afterAsync(err)
	}
}

// serialQueue runs functions one at a time, in push order, on a goroutine
// that exists only while there is work.
type serialQueue struct {
	mu      sync.Mutex
	pending []func()
	running bool
}

func (q *serialQueue) push(f func()) {
	q.mu.Lock()
	q.pending = append(q.pending, f)
	if q.running {
		q.mu.Unlock()
		return
	}
	q.running = true
	q.mu.Unlock()
	go q.drain()
}

func (q *serialQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.pending = nil
			q.running = false
			q.mu.Unlock()
			return
		}
		f := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		q.mu.Unlock()
		f()
	}
}

// guestTimeout converts a guest timeout in milliseconds; 0 means none.
// Values that do not fit Envoy's signed int are refused.
func guestTimeout(ms uint32) (time.Duration, bool) {
	if ms > math.MaxInt32 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// isTimeout reports whether an Upstreams error is a deadline.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// errHostTimeout is what the host's own timer reports when an Upstreams
// implementation did not end the call in time.
var errHostTimeout = fmt.Errorf("callout timed out by the host: %w", context.DeadlineExceeded)

func httpCalloutFuncs() []hostFunc {
	return []hostFunc{proxyFunc("proxy_http_call", 10, hostHTTPCall)}
}

// proxy_http_call(upstream, upstream_size, headers, headers_size, body,
// body_size, trailers, trailers_size, timeout_ms, return_call_id)
func hostHTTPCall(_ context.Context, i *instance, st []uint64) Status {
	cluster, ok := i.readString(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	hdrs, ok := i.read(u32(st, 2), u32(st, 3))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	body, ok := i.read(u32(st, 4), u32(st, 5))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	trls, ok := i.read(u32(st, 6), u32(st, 7))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	retID := u32(st, 9)
	if _, ok := i.mem.Read(retID, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	timeout, ok := guestTimeout(u32(st, 8))
	if !ok {
		return StatusBadArgument
	}
	headers, err := ParsePairs(hdrs)
	if err != nil {
		return StatusBadArgument
	}
	trailers, err := ParsePairs(trls)
	if err != nil {
		return StatusBadArgument
	}
	lowerKeys(headers)
	lowerKeys(trailers)
	req := &HTTPCallRequest{Headers: headers, Body: append([]byte(nil), body...), Trailers: trailers}
	h := &Headers{}
	h.Reset(headers)
	for _, k := range []string{":method", ":path", ":authority"} {
		if _, ok := h.Get(k); !ok {
			return StatusBadArgument
		}
	}
	up := i.vm.rt.opts.Upstreams
	if up == nil {
		return StatusBadArgument
	}
	ctx, root := i.callerLocked()
	if ctx == nil {
		return StatusInternalFailure
	}
	id, ok := i.callouts.allocLocked(kindHTTPCall)
	if !ok {
		return StatusInternalFailure
	}
	co := &callout{id: id, kind: kindHTTPCall, ctx: ctx, root: root}
	cctx, cancelCtx := context.WithCancel(context.Background())
	co.cancelCtx = cancelCtx
	i.callouts.addLocked(co)
	cancel, err := up.HTTPCall(cctx, cluster, req, timeout, func(resp *HTTPCallResponse, err error) {
		co.q.push(func() { i.completeHTTPCall(co, resp, err) })
	})
	if err != nil {
		i.callouts.removeLocked(co)
		cancelCtx()
		if errors.Is(err, ErrUnknownCluster) {
			return StatusBadArgument
		}
		i.log.Warn("wasm http callout not sent", zap.String("cluster", cluster), zap.Error(err))
		return StatusInternalFailure
	}
	co.cancel = cancel
	if timeout > 0 {
		co.timer = time.AfterFunc(timeout, func() {
			co.q.push(func() { i.completeHTTPCall(co, nil, errHostTimeout) })
		})
	}
	i.writeU32(retID, id)
	return StatusOK
}

func lowerKeys(fields []Field) {
	for k := range fields {
		fields[k].Key = lowerASCII(fields[k].Key)
	}
}

// completeHTTPCall delivers an HTTP callout's response or failure:
// proxy_on_http_call_response(root_context_id, call_id, num_headers,
// body_size, num_trailers). A failure has no headers, body or trailers and
// proxy_get_status reports BROKEN_CONNECTION with "timeout" or "reset".
func (i *instance) completeHTTPCall(co *callout, resp *HTTPCallResponse, err error) {
	i.deliverCallout(co, func() (api.Function, *calloutView, []uint64, bool) {
		i.callouts.removeLocked(co)
		co.release()
		view := &calloutView{hasStatus: true}
		if err != nil || resp == nil {
			view.statusCode = uint32(StatusBrokenConnection)
			view.statusMsg = httpCalloutFailedMsg
			if err != nil && isTimeout(err) {
				view.statusMsg = httpCalloutTimeoutMsg
			}
			view.headers, view.trailers = &Headers{}, &Headers{}
			i.log.Debug("wasm http callout failed", zap.Uint32("callout_id", co.id), zap.Error(err))
			return i.fns.onHTTPCallResponse, view, []uint64{0, 0, 0}, true
		}
		view.headers = &Headers{}
		view.headers.Reset(resp.Headers)
		view.trailers = &Headers{}
		view.trailers.Reset(resp.Trailers)
		view.body = resp.Body
		return i.fns.onHTTPCallResponse, view, []uint64{
			uint64(view.headers.Len()), uint64(len(view.body)), uint64(view.trailers.Len()),
		}, true
	})
}
