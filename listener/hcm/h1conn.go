package hcm

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/internal/streamctx"
)

// H1Server serves a connection manager's connections with the manager's
// own codecs. HTTP/1.1: a request is parsed, handed to the manager and
// answered on the connection's goroutine, without the per-request
// goroutines and hand-offs of net/http's server. HTTP/2 (ALPN h2, or the
// preface with prior knowledge when codec_type allows it): see h2conn.go.
type H1Server struct {
	m   *Manager
	log *zap.Logger

	// ConnState and ConnContext are called like http.Server's.
	ConnState   func(net.Conn, http.ConnState)
	ConnContext func(context.Context, net.Conn) context.Context

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	conns    map[*h1conn]struct{}
	closed   bool
	shutdown atomic.Bool
	wg       sync.WaitGroup

	dateCache atomic.Pointer[cachedDate]
	// workers run HTTP/2 streams.
	workers *workerPool
}

type cachedDate struct {
	sec int64
	b   []byte
}

// NewH1Server returns the HTTP/1.1 server of the manager.
func (m *Manager) NewH1Server(log *zap.Logger) *H1Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &H1Server{m: m, log: log, ctx: ctx, cancel: cancel, conns: map[*h1conn]struct{}{}, workers: newWorkerPool(ctx, workerIdle)}
}

// date is the Date header value, formatted once a second.
func (s *H1Server) date() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := s.dateCache.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &cachedDate{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	s.dateCache.Store(d)
	return d.b
}

func (s *H1Server) setState(c net.Conn, st http.ConnState) {
	if s.ConnState != nil {
		s.ConnState(c, st)
	}
}

// Shutdown stops serving gracefully: idle connections close now, busy
// ones after their current response (which says Connection: close). It
// returns when all are gone, or with ctx's error when ctx ends first.
func (s *H1Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	for {
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			if h2 := c.h2.Load(); h2 != nil {
				h2.goAway()
			} else if c.idle.Load() {
				c.nc.Close()
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Close closes every connection at once and waits for their goroutines.
func (s *H1Server) Close() error {
	s.shutdown.Store(true)
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Conns counts the connections being served.
func (s *H1Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// h1conn is one downstream HTTP/1.1 connection.
type h1conn struct {
	srv *H1Server
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	// streamIdle is the stream_idle_timeout clock of the connection's
	// requests.
	streamIdle *idleClock

	// ctx is the connection's; each request's stream context is made
	// from it (streamctx hooks, no per-request registration cost).
	ctx *streamctx.Context

	remoteAddr string
	tlsState   *tls.ConnectionState
	// idle is set between requests (Shutdown closes idle connections).
	idle atomic.Bool
	// epoch is when the connection was accepted: the clocks below keep
	// monotonic offsets from it.
	epoch time.Time
	// idleClock is idle_timeout while waiting for a request.
	idleClock connIdleClock
	// readDeadlineSet: a handler set a read deadline (ResponseController),
	// cleared before the connection waits for its next request.
	readDeadlineSet bool

	// The background read that notices a client going away while its
	// request is being answered (net/http's backgroundRead, started only
	// for requests that last backgroundReadDelay). A request records when
	// it started in bgState; the timer is armed only when it is not
	// already (bgPending), and when it fires it starts the read for a
	// request that has lasted, waits for the rest of a younger one, and
	// stops when no request runs. So a request costs no timer operation.
	//
	// bgState is bgOff, bgRunning, or when the request started
	// (nanoseconds since epoch, plus one).
	bgState   atomic.Int64
	bgPending atomic.Bool
	// bgBodyWait: the request's body is still being read; its end arms
	// the read (connection goroutine only).
	bgBodyWait bool
	bgMu       sync.Mutex // bgTimer, bgClosed, bgBody, bgDone
	bgTimer    *time.Timer
	bgClosed   bool
	// bgBody is the body whose end arms the read: a body reader finishing
	// after its request ended must not arm the next request's.
	bgBody *h1Body
	bgDone chan struct{}
	bgByte [1]byte
	bgHave atomic.Bool // bgByte holds a byte the connection's reader has not taken
	bgErr  error

	body     *h1Body
	hijacked bool
	// h2 is set once the connection turned out to carry HTTP/2.
	h2 atomic.Pointer[h2conn]
}

// backgroundReadDelay is how long a request runs before the connection
// watches for the client going away.
const backgroundReadDelay = 2 * time.Millisecond

// Read feeds the buffered reader: a byte the background read took, then
// the connection.
func (c *h1conn) Read(p []byte) (int, error) {
	if c.bgHave.Load() {
		c.bgHave.Store(false)
		p[0] = c.bgByte[0]
		return 1, nil
	}
	if c.bgErr != nil {
		err := c.bgErr
		c.bgErr = nil
		return 0, err
	}
	return c.nc.Read(p)
}

func (c *h1conn) closing() bool { return c.srv.shutdown.Load() }

func (c *h1conn) headerLimit() int {
	kb := int(c.srv.m.MaxRequestHeadersKB)
	if kb <= 0 {
		kb = 60
	}
	// Room for the request line and line ends; the connection manager
	// checks Envoy's exact limit on the parsed head.
	return kb*1024 + 4096
}

// ServeConn serves nc until it closes; it blocks.
func (s *H1Server) ServeConn(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	c := &h1conn{srv: s, nc: nc, epoch: time.Now()}
	c.idleClock = connIdleClock{nc: nc, timeout: s.m.IdleTimeout, epoch: c.epoch}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	s.setState(nc, http.StateNew)
	ctx := s.ctx
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, nc)
	}
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, nc.LocalAddr())
	c.ctx = streamctx.New(ctx)
	defer c.ctx.Cancel(nil)
	c.remoteAddr = nc.RemoteAddr().String()
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	c.br = bufio.NewReaderSize(c, 4096)
	c.bw = bufio.NewWriterSize(nc, 4096)
	defer func() {
		c.stopBackgroundRead()
		c.closeBackgroundRead()
		c.idleClock.close()
		if !c.hijacked {
			nc.Close()
			s.setState(nc, http.StateClosed)
		} else {
			s.setState(nc, http.StateHijacked)
		}
	}()
	first := true
	for {
		if !c.waitRequest() {
			return
		}
		if first && c.speaksH2() {
			c.idleClock.close() // HTTP/2 has its own
			c.serveH2()
			return
		}
		first = false
		keep := c.serveOne()
		if !keep || s.shutdown.Load() {
			return
		}
		c.idle.Store(true)
		s.setState(nc, http.StateIdle)
	}
}

// waitRequest waits for the first byte of the next request, within the
// idle timeout (idleClock), then arms request_headers_timeout. It reports
// false when the connection ended or idled out.
func (c *h1conn) waitRequest() bool {
	m := c.srv.m
	if c.br.Buffered() == 0 {
		if c.readDeadlineSet {
			c.readDeadlineSet = false
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		if m.IdleTimeout > 0 {
			c.idleClock.wait()
		}
		// Let the goroutines that are ready run first: on a busy
		// server the client's next request has often arrived by then,
		// and the read below finds it instead of finding nothing and
		// parking (one system call and one wake-up less per request).
		// With nothing else ready this returns at once.
		runtime.Gosched()
		_, err := c.br.Peek(1)
		if m.IdleTimeout > 0 && !c.idleClock.wake() {
			return false
		}
		if err != nil {
			return false
		}
	}
	c.idle.Store(false)
	c.srv.setState(c.nc, http.StateActive)
	if m.RequestHeadersTimeout > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(m.RequestHeadersTimeout))
	}
	return true
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// speaksH2 reports whether the connection carries HTTP/2: negotiated by
// ALPN, the only codec allowed, or (AUTO) the client's first bytes are
// the HTTP/2 preface.
func (c *h1conn) speaksH2() bool {
	if c.tlsState != nil && c.tlsState.NegotiatedProtocol == "h2" {
		return true
	}
	switch c.srv.m.Codec {
	case CodecHTTP2:
		return true
	case CodecHTTP1:
		return false
	}
	return c.hasH2Preface()
}

func (c *h1conn) hasH2Preface() bool {
	b, err := c.br.Peek(3)
	if err != nil || string(b) != "PRI" {
		return false
	}
	b, err = c.br.Peek(len(h2Preface))
	return err == nil && string(b) == h2Preface
}

// serveOne reads one request, serves it and reports whether the
// connection can carry another.
func (c *h1conn) serveOne() bool {
	m := c.srv.m
	head, err := readHead(c.br, c.headerLimit(), int(m.MaxHeadersCount))
	if err != nil {
		c.headError(err)
		return false
	}
	if m.RequestHeadersTimeout > 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	req, err := newRequestFromHead(c.ctx, head)
	var length int64
	var chunked bool
	if err == nil {
		length, chunked, err = bodyFraming(head.header)
	}
	if err != nil {
		c.headError(err)
		return false
	}
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tlsState
	req.Close = shouldClose(head)
	// The request's body reader and response writer: one allocation.
	x := &h1Exchange{}
	body := &x.body
	*body = h1Body{c: c, req: req, remain: length, chunked: chunked}
	c.body = body
	switch {
	case chunked:
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		delete(req.Header, "Transfer-Encoding")
		req.Body = body
	case length > 0:
		req.ContentLength = length
		req.Body = body
	default:
		body.eof = true
		req.Body = http.NoBody
	}
	if req.Body != http.NoBody && head.minor >= 1 && hasToken(req.Header["Expect"], "100-continue") {
		body.continue_ = true
	}
	scheme := "http"
	if c.tlsState != nil {
		scheme = "https"
	}
	head.fields.Set(":scheme", scheme)
	if upgradeType(req) != "" {
		// The upgrade's own hop-by-hop fields go upstream.
		for _, v := range req.Header["Upgrade"] {
			head.fields.AddLower("upgrade", v)
		}
		for _, v := range req.Header["Connection"] {
			head.fields.AddLower("connection", v)
		}
	}
	w := &x.w
	*w = h1Writer{c: c, req: req, cl: -1, reqFields: head.fields,
		reqBytes: head.fieldBytes + len(head.method) + len(head.target) + len(req.Host)}
	if body.eof {
		c.armBackgroundRead()
	} else {
		c.awaitBodyEnd(body)
	}
	ok := c.runHandler(w, req)
	c.stopBackgroundRead()
	if w.hijacked {
		c.hijacked = true
		return false
	}
	if !ok {
		return false
	}
	w.finish()
	if w.err != nil {
		body.finish(0)
		return false
	}
	drain := int64(256 << 10)
	if w.closeAfter {
		drain = 0
	}
	consumed := body.finish(drain)
	keep := consumed && !w.closeAfter && c.bgErr == nil
	if c.br.Buffered() == 0 || !keep {
		if err := c.bw.Flush(); err != nil {
			return false
		}
	}
	return keep
}

// h1Exchange is what serving one request allocates in the codec.
type h1Exchange struct {
	body h1Body
	w    h1Writer
}

// runHandler calls the manager; it reports false when the handler
// panicked (http.ErrAbortHandler: the response is cut off).
func (c *h1conn) runHandler(w *h1Writer, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.srv.log.Error("panic serving request", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			}
			ok = false
		}
	}()
	c.srv.m.serve(w, r)
	return true
}

// shouldClose reports whether the request asks to close the connection
// after its response.
func shouldClose(h *h1Head) bool {
	conn := h.header["Connection"]
	if h.minor == 0 {
		return !hasToken(conn, "keep-alive")
	}
	return hasToken(conn, "close")
}

// headError answers a request whose head could not be read, then the
// connection closes: 408 after request_headers_timeout, 400/431/501 for
// malformed heads; nothing when the client went away.
func (c *h1conn) headError(err error) {
	status, details := 0, ""
	var he *h1Error
	var ne net.Error
	switch {
	case errors.As(err, &he):
		status, details = he.status, he.details
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		if c.srv.m.RequestHeadersTimeout <= 0 {
			return
		}
		status, details = http.StatusRequestTimeout, "request header timeout"
		c.srv.m.stats.headerTimeout.Inc()
	default:
		return
	}
	body := details
	if status != http.StatusRequestTimeout {
		body = http.StatusText(status)
	}
	m := c.srv.m
	m.stats.rqTotal.Inc()
	m.stats.rqHTTP1.Inc()
	m.stats.rqCompleted.Inc()
	m.stats.codes.Inc(status)
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	bw := c.bw
	writeStatusLine(bw, status)
	bw.WriteString("Content-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	bw.WriteString("\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: ")
	bw.Write(c.srv.date())
	bw.WriteString("\r\nServer: ")
	bw.WriteString(m.serverName)
	bw.WriteString("\r\n\r\n")
	bw.WriteString(body)
	_ = bw.Flush()
	c.srv.log.Debug("bad request head", zap.String("details", details), zap.Error(err))
}

// bodyCodecError is the protocol error the request body ended with, if
// any.
func (c *h1conn) bodyCodecError() *h1Error {
	b := c.body
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	he, _ := b.err.(*h1Error)
	return he
}

// writeContinue sends "100 Continue" before the first body read of a
// request that expects it.
func (c *h1conn) writeContinue() {
	// Straight to the connection: the body is read on another goroutine
	// than the one writing the response.
	_, _ = io.WriteString(c.nc, "HTTP/1.1 100 Continue\r\n\r\n")
}

// now is the time since the connection started, never zero (the clocks'
// unit).
func (c *h1conn) now() int64 { return int64(time.Since(c.epoch)) + 1 }

const bgOff, bgRunning = 0, -1

// awaitBodyEnd has the end of the request's body arm the background read.
func (c *h1conn) awaitBodyEnd(b *h1Body) {
	c.bgMu.Lock()
	c.bgBody = b
	c.bgMu.Unlock()
	c.bgBodyWait = true
}

// bodyDone is called when the request body b was read to its end (on
// the goroutine reading it).
func (c *h1conn) bodyDone(b *h1Body) {
	c.bgMu.Lock()
	if c.bgBody == b {
		c.bgBody = nil
		c.bgState.Store(c.now())
		c.armBgTimerLocked()
	}
	c.bgMu.Unlock()
}

// armBackgroundRead starts watching for the client going away once the
// request has lasted backgroundReadDelay. Short requests never pay for it.
func (c *h1conn) armBackgroundRead() {
	c.bgState.Store(c.now())
	// bgFire clears bgPending before it reads bgState: either it sees
	// this request, or this sees the timer stopped.
	if !c.bgPending.Load() {
		c.bgMu.Lock()
		c.armBgTimerLocked()
		c.bgMu.Unlock()
	}
}

func (c *h1conn) armBgTimerLocked() {
	if c.bgPending.Load() || c.bgClosed {
		return
	}
	if c.bgTimer == nil {
		c.bgTimer = time.AfterFunc(backgroundReadDelay, c.bgFire)
	} else {
		c.bgTimer.Reset(backgroundReadDelay)
	}
	c.bgPending.Store(true)
}

// bgFire starts the background read for a request that has lasted
// backgroundReadDelay, or waits for the rest of a younger one's. With no
// request running the timer stops; the next request arms it.
func (c *h1conn) bgFire() {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	c.bgPending.Store(false)
	for {
		v := c.bgState.Load()
		// bgHave: an earlier background read holds the next request's
		// first byte (a pipelining client), which the connection's
		// reader has not taken yet; another read would overwrite it.
		if v <= bgOff || c.bgClosed || c.bgHave.Load() {
			return
		}
		ran := time.Duration(c.now() - v)
		if ran < backgroundReadDelay {
			c.bgTimer.Reset(backgroundReadDelay - ran)
			c.bgPending.Store(true)
			return
		}
		if c.bgState.CompareAndSwap(v, bgRunning) {
			c.startBackgroundReadLocked()
			return
		}
		// The request ended, or the next one started, meanwhile.
	}
}

func (c *h1conn) startBackgroundReadLocked() {
	done := make(chan struct{})
	c.bgDone = done
	go func() {
		defer close(done)
		n, err := c.nc.Read(c.bgByte[:])
		c.bgMu.Lock()
		defer c.bgMu.Unlock()
		if n == 1 {
			c.bgHave.Store(true)
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		if err != nil {
			// The client closed or reset the connection: whatever is
			// still being done for it is abandoned.
			c.bgErr = err
			if errors.Is(err, io.EOF) {
				c.bgErr = io.EOF
			}
			c.ctx.Cancel(c.bgErr)
		}
	}()
}

// stopBackgroundRead ends the request's watch: a running background read
// is ended (by an expired read deadline); the connection's reader is then
// the only one again. A pending timer is left for the next request.
func (c *h1conn) stopBackgroundRead() {
	if c.bgBodyWait {
		c.bgBodyWait = false
		c.bgMu.Lock()
		c.bgBody = nil
		c.bgMu.Unlock()
	}
	if c.bgState.Swap(bgOff) != bgRunning {
		return
	}
	c.bgMu.Lock()
	done := c.bgDone
	c.bgMu.Unlock()
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	<-done
	_ = c.nc.SetReadDeadline(time.Time{})
}

// closeBackgroundRead stops the timer for good once the connection ended.
func (c *h1conn) closeBackgroundRead() {
	c.bgMu.Lock()
	c.bgClosed = true
	if c.bgTimer != nil {
		c.bgTimer.Stop()
	}
	c.bgMu.Unlock()
}
