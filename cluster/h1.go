package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/streamctx"
)

// h1Transport is a cluster's lean HTTP/1.1 client: a pool of keep-alive
// connections per host (a mutex and a LIFO stack of idle connections).
// A request is written and its response head read on the caller's
// goroutine; only a request body of unknown or large size is written from
// a goroutine of its own, so that the response can arrive while the body is
// still being sent.
//
// Connections come from Cluster.dial, so connect_timeout, the transport
// socket (UpstreamTlsContext), connection tracking, upstream_cx_* stats and
// the max_connections accounting apply as for every other upstream
// connection.
type h1Transport struct {
	c           *Cluster
	tls         *tls.Config // nil: plaintext
	idleTimeout time.Duration
	maxIdle     int // per host

	mu   sync.Mutex
	idle map[*Host]*h1Stack
}

// h1Stack is one host's idle connections, the most recently used last.
type h1Stack struct{ conns []*h1Conn }

func (c *Cluster) newH1Transport(tc *tls.Config) *h1Transport {
	return &h1Transport{
		c:           c,
		tls:         tc,
		idleTimeout: c.cfg.idleTimeout,
		maxIdle:     int(min(c.cfg.breakers[0].maxConnections, 1<<20)),
		idle:        map[*Host]*h1Stack{},
	}
}

// h1Conn is one upstream connection.
type h1Conn struct {
	t        *h1Transport
	h        *Host
	addr     string        // the address dialed (a LOGICAL_DNS host may move)
	conn     net.Conn      // trackedConn, or tls.Conn over it
	peek     *socketPeeker // the liveness check of an idle connection; may be nil
	isTLS    bool
	tlsState *tls.ConnectionState // responses' TLS, as net/http sets it
	br       *bufio.Reader
	bw       *bufio.Writer
	rw       *replyWriter // what bw flushes into on a plaintext socket; nil otherwise

	reused bool   // served a request before the current one
	served uint32 // requests started on the connection

	// Guarded by t.mu.
	inIdle    bool
	idleSince time.Time
	timer     *time.Timer // idle_timeout; armed while idle (lazily re-armed)
	armed     bool

	// The current request.
	ctx        context.Context
	stopCancel func() bool // stops the context.AfterFunc; nil when none
	// deadlineSet: the request has a deadline on the connection's
	// deadline clock.
	deadlineSet bool
	dl          deadlineClock
	abortFn     func()             // pc.abort, made once
	hookedOn    *streamctx.Context // the request's context pc is a hook of
	respOut     *header.Map        // where the exchange's response head goes, if not to an http.Header
	hookFired   bool               // the context was cancelled before watch
	keepAlive   bool               // the exchange allows reuse (no Connection: close either way)
	wstate      atomic.Int32
	werr        error // set by the body writer before wstate becomes wFailed
	closed      atomic.Bool
}

// States of the request body writer goroutine (wstate).
const (
	wDone    = iota // no writer, or it finished the body
	wRunning        // writing
	wFailed         // failed; werr says why
	wHandoff        // the response ended first: the writer releases the connection
)

// aLongTimeAgo is a deadline in the past: it aborts blocked reads and
// writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// dialH1 opens a connection to h for the HTTP/1.1 pool.
func (t *h1Transport) dial(ctx context.Context, h *Host) (*h1Conn, error) {
	c := t.c
	addr := h.Address()
	conn, err := c.dial(ctx, h, h.network, addr, t.tls)
	if err != nil {
		return nil, err
	}
	c.stats.cxHTTP1Total().Inc()
	pc := &h1Conn{t: t, h: h, addr: addr, conn: conn, isTLS: t.tls != nil}
	if tc, ok := conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		pc.tlsState = &cs
	}
	if tc := trackedOf(conn); tc != nil {
		f := pc.connClosed
		tc.onClose.Store(&f)
		if tc.closed.Load() { // closed before the hook was in place
			pc.closed.Store(true)
		}
	}
	var w io.Writer = conn
	if rc := rawConnOf(conn); rc != nil {
		pc.peek = newSocketPeeker(rc)
		if tc, ok := conn.(*trackedConn); ok {
			pc.rw = newReplyWriter(tc, rc)
			w = pc.rw
		}
	}
	pc.br = bufio.NewReaderSize(conn, 4096)
	pc.bw = bufio.NewWriterSize(w, 4096)
	return pc, nil
}

func trackedOf(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}

func rawConnOf(c net.Conn) syscall.RawConn {
	if tc := trackedOf(c); tc != nil {
		c = tc.Conn
	}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// get pops the most recently used idle connection to h that is still
// open, or returns nil.
func (t *h1Transport) get(h *Host) *h1Conn {
	for {
		t.mu.Lock()
		st := t.idle[h]
		if st == nil || len(st.conns) == 0 {
			t.mu.Unlock()
			return nil
		}
		n := len(st.conns) - 1
		pc := st.conns[n]
		st.conns[n] = nil
		st.conns = st.conns[:n]
		pc.inIdle = false
		t.mu.Unlock()
		if pc.alive() {
			pc.reused = true
			return pc
		}
		pc.close()
	}
}

// h1PeekAfter is how long a connection must have been idle before a
// reuse checks its socket (a syscall, ~5% of a request's cost on a busy
// pool): an upstream rarely closes a connection it just answered on
// without saying so (Connection: close); when it does, the request fails
// as on a stale connection (and is retried when that is safe).
const h1PeekAfter = time.Millisecond

// alive reports whether an idle connection can carry a request: the
// upstream has not closed it (or reset it, or sent something unasked)
// while it sat in the pool.
func (pc *h1Conn) alive() bool {
	if pc.closed.Load() || pc.br.Buffered() > 0 || pc.addr != pc.h.Address() {
		return false
	}
	if pc.peek == nil || time.Since(pc.idleSince) < h1PeekAfter {
		return true
	}
	switch pc.peek.check() {
	case peekIdle:
		return true
	case peekData:
		if !pc.isTLS {
			return false
		}
		// TLS: a post-handshake message (a session ticket) is harmless,
		// an alert or application data is not. Let crypto/tls read
		// without blocking to tell.
		_ = pc.conn.SetReadDeadline(aLongTimeAgo)
		_, err := pc.br.Peek(1)
		_ = pc.conn.SetReadDeadline(time.Time{})
		var ne net.Error
		return pc.br.Buffered() == 0 && errors.As(err, &ne) && ne.Timeout()
	}
	return false
}

// put returns a connection whose exchange ended cleanly to the pool, or
// closes it when the pool cannot take it.
func (t *h1Transport) put(pc *h1Conn) {
	if pc.closed.Load() || pc.br.Buffered() > 0 || pc.h.removed.Load() || t.c.closed.Load() {
		pc.close()
		return
	}
	now := time.Now()
	t.mu.Lock()
	st := t.idle[pc.h]
	if st == nil {
		st = &h1Stack{}
		t.idle[pc.h] = st
	}
	if len(st.conns) >= t.maxIdle || pc.closed.Load() {
		t.mu.Unlock()
		pc.close()
		return
	}
	st.conns = append(st.conns, pc)
	pc.inIdle = true
	pc.idleSince = now
	if t.idleTimeout > 0 && !pc.armed {
		pc.armed = true
		if pc.timer == nil {
			pc.timer = time.AfterFunc(t.idleTimeout, pc.idleExpired)
		} else {
			pc.timer.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
}

// idleExpired runs when the idle timer fires: a connection idle for
// idle_timeout closes; one used since gets the rest of its time.
func (pc *h1Conn) idleExpired() {
	t := pc.t
	t.mu.Lock()
	if !pc.inIdle {
		pc.armed = false
		t.mu.Unlock()
		return
	}
	if left := t.idleTimeout - time.Since(pc.idleSince); left > 0 {
		pc.timer.Reset(left)
		t.mu.Unlock()
		return
	}
	pc.armed = false
	t.removeIdleLocked(pc)
	t.mu.Unlock()
	pc.close()
}

func (t *h1Transport) removeIdleLocked(pc *h1Conn) {
	pc.inIdle = false
	st := t.idle[pc.h]
	if st == nil {
		return
	}
	for i, x := range st.conns {
		if x == pc {
			copy(st.conns[i:], st.conns[i+1:])
			st.conns[len(st.conns)-1] = nil
			st.conns = st.conns[:len(st.conns)-1]
			break
		}
	}
	if len(st.conns) == 0 {
		delete(t.idle, pc.h)
	}
}

// closeIdle closes every idle connection.
func (t *h1Transport) closeIdle() {
	t.mu.Lock()
	var list []*h1Conn
	for h, st := range t.idle {
		for _, pc := range st.conns {
			pc.inIdle = false
			list = append(list, pc)
		}
		delete(t.idle, h)
	}
	t.mu.Unlock()
	for _, pc := range list {
		pc.close()
	}
}

func (pc *h1Conn) close() {
	if pc.closed.CompareAndSwap(false, true) {
		_ = pc.conn.Close()
	}
}

// connClosed runs when the connection closes, by us or by the cluster
// (its host went away, the cluster drained): an idle connection leaves
// the pool at once, and its timer stops.
func (pc *h1Conn) connClosed() {
	pc.closed.Store(true)
	t := pc.t
	t.mu.Lock()
	if pc.inIdle {
		t.removeIdleLocked(pc)
	}
	if pc.timer != nil {
		pc.timer.Stop()
		pc.armed = false
	}
	t.mu.Unlock()
	pc.dl.stop()
}

// deadlineContext is a context that only adds a deadline to another (the
// router's route and per-try timeouts): the pool puts the deadline on the
// connection and watches the parent for cancellation, so the context never
// has to make a timer and a channel of its own.
type deadlineContext interface {
	context.Context
	DeadlineParent() context.Context
}

// watch makes the request's context abort blocked reads and writes on the
// connection: its deadline, when it only adds one, is the connection's;
// its cancellation runs abort.
func (pc *h1Conn) watch(ctx context.Context) {
	pc.ctx = ctx
	pc.stopCancel = nil
	pc.hookedOn = nil
	pc.hookFired = false
	pc.deadlineSet = false
	if dc, ok := ctx.(deadlineContext); ok {
		if d, ok := dc.Deadline(); ok {
			pc.dl.set(d, pc)
			pc.deadlineSet = true
		}
		ctx = dc.DeadlineParent()
		for {
			dc, ok := ctx.(deadlineContext)
			if !ok {
				break
			}
			ctx = dc.DeadlineParent()
		}
	}
	switch sc := ctx.(type) {
	case *streamctx.Context:
		// The connection managers' stream context: a hook, no
		// allocation.
		if sc.Notify(pc) {
			pc.hookedOn = sc
		} else {
			pc.abort()
			pc.hookFired = true
		}
	default:
		if ctx.Done() != nil {
			if pc.abortFn == nil {
				pc.abortFn = pc.abort
			}
			pc.stopCancel = context.AfterFunc(ctx, pc.abortFn)
		}
	}
}

// OnCancel is the stream context's hook: the request was cancelled.
func (pc *h1Conn) OnCancel() { pc.abort() }

func (pc *h1Conn) abort() { _ = pc.conn.SetDeadline(aLongTimeAgo) }

// unwatch detaches the context; false when it already fired (the
// connection's deadline is spent and it cannot be reused).
func (pc *h1Conn) unwatch() bool {
	ok := !pc.hookFired
	pc.hookFired = false
	if pc.stopCancel != nil {
		ok = pc.stopCancel()
		pc.stopCancel = nil
	}
	if pc.hookedOn != nil {
		ok = pc.hookedOn.Stop(pc)
		pc.hookedOn = nil
	}
	if pc.deadlineSet {
		pc.deadlineSet = false
		if pc.dl.clear() {
			// The deadline passed: the connection's is spent.
			ok = false
		}
	}
	return ok
}

// release ends the exchange on pc: back to the pool when the exchange
// allows it, else closed.
func (pc *h1Conn) release() {
	if !pc.unwatch() || !pc.keepAlive {
		pc.close()
		return
	}
	if pc.wstate.Load() == wDone {
		pc.t.put(pc)
		return
	}
	// The request body is still being written: its writer puts the
	// connection back when it is done.
	if pc.wstate.CompareAndSwap(wRunning, wHandoff) {
		return
	}
	if pc.wstate.Load() == wDone {
		pc.t.put(pc)
		return
	}
	pc.close()
}

// fail ends the exchange on pc after an error: the connection closes.
func (pc *h1Conn) fail() {
	pc.unwatch()
	pc.close()
}

// ioErr turns an I/O error on the connection into the request's: the
// context's error when it ended the request.
func (pc *h1Conn) ioErr(err error) error {
	if pc.ctx != nil {
		if cerr := pc.ctx.Err(); cerr != nil {
			return cerr
		}
	}
	return err
}

// roundTrip sends req to h over a pooled connection, or a new one. A
// request that fails on a reused connection before any byte of the
// response arrived is sent again, once, on a new connection when that is
// safe (see retryable).
//
// fields, when not nil, are the request's headers (req.Header is then
// not used): see LoadBalancerContext.Fields; respOut, when not nil, gets
// the response's (see LoadBalancerContext.Response).
func (t *h1Transport) roundTrip(req *http.Request, fields, respOut *header.Map, h *Host) (*http.Response, error) {
	ctx := req.Context()
	rb, err := newH1ReqBody(req)
	if err != nil {
		closeReqBody(req)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			closeReqBody(req)
			return nil, err
		}
		var pc *h1Conn
		if attempt == 0 {
			pc = t.get(h)
		}
		if pc == nil {
			pc, err = t.dial(ctx, h)
			if err != nil {
				closeReqBody(req)
				return nil, err
			}
		}
		pc.respOut = respOut
		resp, stage, err := pc.exchange(req, fields, &rb)
		if err == nil {
			return resp, nil
		}
		if attempt == 0 && pc.reused && ctx.Err() == nil && rb.retryable(req, fields, stage) {
			if nb, rerr := rb.rewind(req); rerr == nil {
				rb = nb
				continue
			}
		}
		closeReqBody(req)
		return nil, err
	}
}

// Where an exchange failed, for the decision to send it again.
const (
	failNone      = iota
	failWrite     // writing the request; no response byte arrived
	failReadEmpty // the connection ended before any response byte
	failLate      // after response bytes arrived, or otherwise unsafe
)

// exchange writes req on pc and reads the response head.
func (pc *h1Conn) exchange(req *http.Request, fields *header.Map, rb *h1ReqBody) (*http.Response, int, error) {
	pc.watch(req.Context())
	pc.keepAlive = !req.Close && !asksToClose(req, fields)
	pc.served++
	if m := pc.t.c.cfg.maxRequestsPerConn; m > 0 && pc.served >= m {
		// max_requests_per_connection: this is the connection's last.
		pc.keepAlive = false
	}
	pc.wstate.Store(wDone)
	pc.werr = nil

	err := writeH1Head(pc.bw, req, fields, rb)
	if err != nil {
		// A request we cannot encode: nothing was sent, but the
		// connection's buffer holds part of it.
		pc.fail()
		return nil, failLate, err
	}
	async := rb.async()
	if async {
		if err := pc.bw.Flush(); err != nil {
			return pc.writeFailed(req, err)
		}
		pc.wstate.Store(wRunning)
		// The writer gets its own copy: a retry may rewind rb while a
		// failed writer is still returning.
		wb := *rb
		go pc.writeBody(req, &wb)
	} else {
		err := rb.writeSmall(pc.bw)
		if err != nil && errors.Is(err, errH1BodyRead) {
			pc.fail()
			return nil, failLate, pc.ioErr(err)
		}
		if err == nil {
			// The request is complete and nothing else is sent: the
			// flush waits for the reply (see replyWriter).
			if pc.rw != nil && pc.br.Buffered() == 0 {
				pc.rw.armed = true
				err = pc.bw.Flush()
				pc.rw.armed = false
			} else {
				err = pc.bw.Flush()
			}
		}
		if err != nil {
			return pc.writeFailed(req, err)
		}
		closeReqBody(req)
	}
	resp, stage, err := pc.readResponse(req)
	if err != nil {
		if async && pc.wstate.Load() == wFailed && pc.werr != nil && pc.ctx.Err() == nil {
			err = pc.werr
		}
		pc.fail()
		return nil, stage, err
	}
	return resp, failNone, nil
}

// writeFailed handles a failed write of the request: the upstream may
// have answered and closed before taking all of it (a 413, say), and that
// answer wins, as in net/http; else the write error is the exchange's.
func (pc *h1Conn) writeFailed(req *http.Request, werr error) (*http.Response, int, error) {
	pc.keepAlive = false
	if pc.ctx.Err() == nil {
		if resp, _, err := pc.readResponse(req); err == nil {
			closeReqBody(req)
			return resp, failNone, nil
		}
	}
	pc.fail()
	return nil, failWrite, pc.ioErr(werr)
}

// writeBody sends a streaming request body (from its own goroutine). When
// reading the body fails, the connection closes, which ends the exchange;
// when writing it fails, the response read goes on (the upstream may have
// answered before it closed) and the connection is not reused.
func (pc *h1Conn) writeBody(req *http.Request, rb *h1ReqBody) {
	err := rb.writeStream(pc.bw)
	closeReqBody(req)
	if err != nil {
		pc.werr = pc.ioErr(err)
		if !pc.wstate.CompareAndSwap(wRunning, wFailed) || errors.Is(err, errH1BodyRead) {
			pc.close()
		}
		return
	}
	if !pc.wstate.CompareAndSwap(wRunning, wDone) {
		// wHandoff: the response already ended; the connection is ours.
		pc.wstate.Store(wDone)
		pc.t.put(pc)
	}
}

func closeReqBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// readResponse reads the response head (skipping 1xx informational
// responses other than 101) and sets up its body.
func (pc *h1Conn) readResponse(req *http.Request) (*http.Response, int, error) {
	r := new(h1Resp) // the response, its body and its head in one allocation
	for n1xx := 0; ; n1xx++ {
		got, err := pc.readHead(&r.head)
		if err != nil {
			stage := failLate
			if got == 0 && isConnEnd(err) {
				stage = failReadEmpty
			}
			return nil, stage, pc.ioErr(err)
		}
		if c := r.head.code; c >= 100 && c < 200 && c != http.StatusSwitchingProtocols {
			if n1xx >= max1xx {
				return nil, failLate, errors.New("too many 1xx informational responses")
			}
			continue
		}
		resp, err := pc.newResponse(req, r)
		if err != nil {
			return nil, failLate, err
		}
		return resp, failNone, nil
	}
}

// isConnEnd reports whether err is the connection ending (closed or reset
// by the upstream), as opposed to a timeout or a protocol error.
func isConnEnd(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// readHead reads and parses one response head; got is how many bytes of
// it arrived.
func (pc *h1Conn) readHead(hd *h1Head) (int, error) {
	br := pc.br
	// Fast path: the whole head is in the read buffer.
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := findHeadEnd(buf); end >= 0 {
			err := parseH1Head(buf[:end], hd, pc.respOut)
			_, _ = br.Discard(end)
			return end, err
		}
		if br.Buffered() == br.Size() {
			break
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			got := br.Buffered()
			if got > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return got, err
		}
	}
	// Slow path: a head larger than the buffer, line by line.
	var acc []byte
	lineStart := 0
	for {
		b, err := br.ReadSlice('\n')
		acc = append(acc, b...)
		if len(acc) > maxH1HeadBytes {
			return len(acc), errH1HeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return len(acc), err
		}
		if line := acc[lineStart:]; len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			err := parseH1Head(acc, hd, pc.respOut)
			return len(acc), err
		}
		lineStart = len(acc)
	}
}
