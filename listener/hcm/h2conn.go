package hcm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/reqtarget"
	"github.com/wasmesh/wasmesh/internal/streamctx"
)

// h2Settings are the HTTP/2 settings the codec announces
// (http2_protocol_options).
type h2Settings struct {
	maxStreams   uint32
	streamWindow uint32
	connWindow   uint32
}

// Defaults where http2_protocol_options says nothing. Envoy announces
// 2^31-1 streams and 256 MiB windows; the codec buffers what a window
// allows, so it announces less.
const (
	defaultH2MaxStreams   = 1024
	defaultH2StreamWindow = 1 << 20
	defaultH2ConnWindow   = 4 << 20
)

func h2SettingsOf(o *corev3.Http2ProtocolOptions) h2Settings {
	s := h2Settings{maxStreams: defaultH2MaxStreams, streamWindow: defaultH2StreamWindow, connWindow: defaultH2ConnWindow}
	if v := o.GetMaxConcurrentStreams(); v != nil && v.GetValue() > 0 {
		s.maxStreams = v.GetValue()
	}
	if v := o.GetInitialStreamWindowSize(); v != nil && v.GetValue() >= 65535 {
		s.streamWindow = min(v.GetValue(), 1<<31-1)
	}
	if v := o.GetInitialConnectionWindowSize(); v != nil && v.GetValue() >= 65535 {
		s.connWindow = min(v.GetValue(), 1<<31-1)
	}
	return s
}

// h2conn is one downstream HTTP/2 connection served by the codec: the
// connection's goroutine reads frames; each stream's request runs on a
// worker; writes from all of them go through one lock and are flushed
// when a response ends or the reader has nothing buffered.
type h2conn struct {
	srv *H1Server
	c   *h1conn
	nc  net.Conn
	br  *bufio.Reader
	rfr *http2.Framer
	set h2Settings

	ctx *streamctx.Context

	wmu        sync.Mutex
	wcond      *sync.Cond
	bw         *bufio.Writer
	wfr        *http2.Framer
	enc        *hpack.Encoder
	encBuf     bytes.Buffer
	sendWindow int64 // connection send window
	peerWindow int64 // peer's initial stream window
	peerFrame  uint32
	wclosed    bool
	dirty      bool

	mu        sync.Mutex
	streams   map[uint32]*h2stream
	lastID    uint32
	active    int
	goingAway bool
	recvOwed  int64 // connection window consumed, not yet returned
	idleTimer *time.Timer
	// streamIdle times stream_idle_timeout for all streams.
	streamIdle sharedIdleClock

	wg sync.WaitGroup
}

type h2stream struct {
	cc   *h2conn
	id   uint32
	ctx  *streamctx.Context
	body *h2Body
	// sendWindow is guarded by cc.wmu.
	sendWindow int64
	reset      atomic.Bool
}

var errStreamReset = errors.New("http2: stream reset")

// serveH2 serves an HTTP/2 connection whose preface is next in br.
func (c *h1conn) serveH2() {
	s := c.srv
	cc := &h2conn{srv: s, c: c, nc: c.nc, br: c.br, set: s.m.h2, streams: map[uint32]*h2stream{},
		sendWindow: 65535, peerWindow: 65535, peerFrame: 16384}
	cc.ctx = streamctx.New(c.ctx)
	defer cc.ctx.Cancel(nil)
	cc.wcond = sync.NewCond(&cc.wmu)
	cc.bw = bufio.NewWriterSize(c.nc, 16<<10)
	cc.wfr = http2.NewFramer(cc.bw, nil)
	cc.enc = hpack.NewEncoder(&cc.encBuf)
	cc.rfr = http2.NewFramer(nil, c.br)
	cc.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.rfr.MaxHeaderListSize = uint32(c.headerLimit())
	if ci, ok := c.ctx.Value(ConnInfoKey{}).(*ConnInfo); ok {
		ci.HTTP2.Store(true)
	}
	c.h2.Store(cc)
	var pre [len(h2Preface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != h2Preface {
		return
	}
	if s.m.RequestHeadersTimeout > 0 || s.m.IdleTimeout > 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	cc.wmu.Lock()
	_ = cc.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: cc.set.maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: cc.set.streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.headerLimit())},
	)
	if d := int64(cc.set.connWindow) - 65535; d > 0 {
		_ = cc.wfr.WriteWindowUpdate(0, uint32(d))
	}
	err := cc.bw.Flush()
	cc.wmu.Unlock()
	if err != nil {
		return
	}
	cc.armIdle()
	cc.readLoop()
	cc.close()
	cc.wg.Wait()
}

// readLoop reads and dispatches frames until the connection fails.
func (cc *h2conn) readLoop() {
	first := true
	for {
		f, err := cc.rfr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				cc.goAwayAndClose(http2.ErrCode(ce))
			}
			return
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				cc.goAwayAndClose(http2.ErrCodeProtocol)
				return
			}
			first = false
		}
		if err := cc.handle(f); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				cc.goAwayAndClose(http2.ErrCode(ce))
			}
			return
		}
		if cc.br.Buffered() == 0 {
			cc.flushDirty()
		}
	}
}

func (cc *h2conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		cc.wmu.Lock()
		err := f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				if s.Val > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				delta := int64(s.Val) - cc.peerWindow
				cc.peerWindow = int64(s.Val)
				cc.mu.Lock()
				for _, st := range cc.streams {
					st.sendWindow += delta
				}
				cc.mu.Unlock()
			case http2.SettingMaxFrameSize:
				cc.peerFrame = s.Val
			case http2.SettingHeaderTableSize:
				cc.enc.SetMaxDynamicTableSizeLimit(s.Val)
			}
			return nil
		})
		if err == nil {
			err = cc.wfr.WriteSettingsAck()
			cc.dirty = true
		}
		cc.wcond.Broadcast()
		cc.wmu.Unlock()
		return err
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		cc.wmu.Lock()
		err := cc.wfr.WritePing(true, f.Data)
		cc.dirty = true
		cc.wmu.Unlock()
		return err
	case *http2.WindowUpdateFrame:
		cc.wmu.Lock()
		defer cc.wmu.Unlock()
		if f.StreamID == 0 {
			cc.sendWindow += int64(f.Increment)
			if cc.sendWindow > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		} else if st := cc.stream(f.StreamID); st != nil {
			st.sendWindow += int64(f.Increment)
		}
		cc.wcond.Broadcast()
		return nil
	case *http2.RSTStreamFrame:
		if st := cc.stream(f.StreamID); st != nil {
			st.abort(errStreamReset)
		}
		return nil
	case *http2.GoAwayFrame:
		cc.mu.Lock()
		cc.goingAway = true
		cc.mu.Unlock()
		return nil
	case *http2.MetaHeadersFrame:
		return cc.onHeaders(f)
	case *http2.DataFrame:
		return cc.onData(f)
	}
	return nil
}

func (cc *h2conn) stream(id uint32) *h2stream {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.streams[id]
}

func (cc *h2conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	cc.mu.Lock()
	st := cc.streams[f.StreamID]
	cc.mu.Unlock()
	if st == nil || st.body == nil {
		// Closed or unknown stream: the data still counts against the
		// connection window, which is returned at once.
		cc.returnConnWindow(n)
		if f.StreamID > cc.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		cc.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		return nil
	}
	data := f.Data()
	// Padding is consumed at once.
	if pad := n - int64(len(data)); pad > 0 {
		cc.returnConnWindow(pad)
	}
	if !st.body.push(data, f.StreamEnded(), int64(cc.set.streamWindow)) {
		cc.returnConnWindow(int64(len(data)))
		cc.resetStream(st.id, http2.ErrCodeFlowControl)
		st.abort(errStreamReset)
	}
	return nil
}

// onHeaders starts a stream, or ends one with trailers.
func (cc *h2conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 != 1 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := cc.stream(id); st != nil {
		if st.body == nil || !f.StreamEnded() {
			cc.resetStream(id, http2.ErrCodeProtocol)
			st.abort(errStreamReset)
			return nil
		}
		t := http.Header{}
		for _, hf := range f.RegularFields() {
			t[http.CanonicalHeaderKey(hf.Name)] = append(t[http.CanonicalHeaderKey(hf.Name)], hf.Value)
		}
		st.body.finishWithTrailers(t)
		return nil
	}
	cc.mu.Lock()
	if id <= cc.lastID {
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	cc.lastID = id
	if cc.goingAway || cc.active >= int(cc.set.maxStreams) {
		cc.mu.Unlock()
		cc.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	// The stream counts as active from the moment its id is accepted, so
	// a GOAWAY naming it as the last stream never closes the connection
	// under it.
	cc.active++
	if cc.idleTimer != nil {
		cc.idleTimer.Stop()
	}
	cc.mu.Unlock()
	if f.Truncated {
		cc.answerDirect(id, http.StatusRequestHeaderFieldsTooLarge)
		cc.releaseSlot()
		return nil
	}
	req, fields, size, ok := cc.newRequest(f)
	if !ok {
		cc.resetStream(id, http2.ErrCodeProtocol)
		cc.releaseSlot()
		return nil
	}
	st := &h2stream{cc: cc, id: id}
	st.ctx = streamctx.New(cc.ctx)
	cc.wmu.Lock()
	st.sendWindow = cc.peerWindow
	cc.wmu.Unlock()
	if f.StreamEnded() {
		req.Body = http.NoBody
		req.ContentLength = 0
	} else {
		st.body = &h2Body{st: st, req: req}
		st.body.cond = sync.NewCond(&st.body.mu)
		req.Body = st.body
	}
	req = req.WithContext(st.ctx)
	if st.body != nil {
		st.body.req = req
	}
	cc.mu.Lock()
	cc.streams[id] = st
	cc.mu.Unlock()
	w := &h2Writer{st: st, req: req, reqFields: fields, reqBytes: size}
	w.idle.c = &cc.streamIdle
	cc.wg.Add(1)
	cc.srv.workers.run(func() { cc.runStream(st, w, req) })
	return nil
}

// connSpecific are fields HTTP/2 forbids (RFC 9113 8.2.2).
func connSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

func (cc *h2conn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, *header.Map, int, bool) {
	method, path := f.PseudoValue("method"), f.PseudoValue("path")
	scheme, authority := f.PseudoValue("scheme"), f.PseudoValue("authority")
	if method == "" || method != http.MethodConnect && (path == "" || scheme == "") {
		return nil, nil, 0, false
	}
	regular := f.RegularFields()
	if cc.srv.m.MaxHeadersCount > 0 && len(regular) > int(cc.srv.m.MaxHeadersCount) {
		return nil, nil, 0, false
	}
	hdr := make(http.Header, 2)
	size := len(method) + len(path) + len(authority)
	fields := header.NewCap(len(regular)+4, ":method", method, ":path", "", ":authority", authority, ":scheme", scheme)
	for _, hf := range regular {
		size += len(hf.Name) + len(hf.Value)
		switch {
		case connSpecific(hf.Name):
			return nil, nil, 0, false
		case hf.Name == "te":
			if hf.Value != "trailers" {
				return nil, nil, 0, false
			}
			continue
		case hf.Name == "host":
			if authority == "" {
				authority = hf.Value
				fields.Set(":authority", authority)
			}
			continue
		case hf.Name == "content-length":
			hdr["Content-Length"] = append(hdr["Content-Length"], hf.Value)
		}
		fields.AddLower(hf.Name, hf.Value)
	}
	r := &http.Request{
		Method: method, Proto: "HTTP/2.0", ProtoMajor: 2, ProtoMinor: 0,
		Header: hdr, Host: authority, RequestURI: path, RemoteAddr: cc.c.remoteAddr, TLS: cc.c.tlsState,
		ContentLength: -1,
	}
	var u *url.URL
	var err error
	if method == http.MethodConnect && path == "" {
		u = &url.URL{Host: authority}
	} else if u, err = reqtarget.Parse(path); err != nil {
		return nil, nil, 0, false
	}
	r.URL = u
	fields.Set(":path", u.RequestURI())
	if v := hdr["Content-Length"]; len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			return nil, nil, 0, false
		}
		r.ContentLength = n
	}
	return r, fields, size, true
}

// runStream serves one request on a worker.
func (cc *h2conn) runStream(st *h2stream, w *h2Writer, r *http.Request) {
	defer cc.wg.Done()
	defer cc.endStream(st)
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				cc.srv.log.Error("panic serving request", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			}
			cc.resetStream(st.id, http2.ErrCodeInternal)
		}
	}()
	cc.srv.m.serve(w, r)
	w.finish()
}

// endStream forgets a finished stream; what its body did not read goes
// back to the connection window.
func (cc *h2conn) endStream(st *h2stream) {
	st.ctx.Cancel(nil)
	if b := st.body; b != nil {
		if unread, done := b.close(); unread > 0 || !done {
			cc.returnConnWindow(unread)
			if !done && !st.reset.Load() {
				// The response is complete; the client need not send the
				// rest of its request.
				cc.resetStream(st.id, http2.ErrCodeNo)
			}
		}
	}
	cc.mu.Lock()
	delete(cc.streams, st.id)
	cc.mu.Unlock()
	cc.releaseSlot()
}

// releaseSlot ends an accepted stream's claim on the connection: the last
// one of a connection going away closes it (after what it wrote is
// flushed); the last one otherwise starts the idle timeout.
func (cc *h2conn) releaseSlot() {
	cc.mu.Lock()
	cc.active--
	idle := cc.active == 0
	closeNow := idle && cc.goingAway
	cc.mu.Unlock()
	if !idle {
		// Other streams are running: let those that are ready (their
		// upstream answered) write first, so one write carries several
		// responses. The flush below then finds nothing left to send when
		// a later stream's flush took this one's frames along.
		runtime.Gosched()
	}
	cc.flushDirty()
	if closeNow {
		cc.closeSoon()
	} else if idle {
		cc.armIdle()
	}
}

// armIdle closes the connection after idle_timeout without streams.
func (cc *h2conn) armIdle() {
	d := cc.srv.m.IdleTimeout
	if d <= 0 {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.idleTimer == nil {
		cc.idleTimer = time.AfterFunc(d, func() {
			cc.mu.Lock()
			idle := cc.active == 0
			cc.mu.Unlock()
			if idle {
				cc.goAway()
			}
		})
		return
	}
	cc.idleTimer.Reset(d)
}

// goAway starts a graceful close: no new streams; the connection closes
// when the last one ends.
func (cc *h2conn) goAway() {
	cc.mu.Lock()
	if cc.goingAway {
		cc.mu.Unlock()
		return
	}
	cc.goingAway = true
	last, idle := cc.lastID, cc.active == 0
	cc.mu.Unlock()
	cc.wmu.Lock()
	if !cc.wclosed {
		_ = cc.wfr.WriteGoAway(last, http2.ErrCodeNo, nil)
		_ = cc.bw.Flush()
	}
	cc.wmu.Unlock()
	if idle {
		cc.closeSoon()
	}
}

// goAwayGrace is how long a connection that sent GOAWAY and has no
// streams left stays open for the client to close it first: closing at
// once could reset the connection under a request the client sent before
// it read the GOAWAY (the kernel answers unread data with RST, which can
// discard the GOAWAY on the client's side).
const goAwayGrace = time.Second

func (cc *h2conn) closeSoon() {
	time.AfterFunc(goAwayGrace, func() { cc.nc.Close() })
}

func (cc *h2conn) goAwayAndClose(code http2.ErrCode) {
	cc.mu.Lock()
	last := cc.lastID
	cc.goingAway = true
	cc.mu.Unlock()
	cc.wmu.Lock()
	if !cc.wclosed {
		_ = cc.wfr.WriteGoAway(last, code, nil)
		_ = cc.bw.Flush()
	}
	cc.wmu.Unlock()
	cc.nc.Close()
}

// close ends every stream and the writer.
func (cc *h2conn) close() {
	cc.ctx.Cancel(nil)
	cc.mu.Lock()
	sts := make([]*h2stream, 0, len(cc.streams))
	for _, st := range cc.streams {
		sts = append(sts, st)
	}
	if cc.idleTimer != nil {
		cc.idleTimer.Stop()
	}
	cc.mu.Unlock()
	cc.streamIdle.stop()
	for _, st := range sts {
		st.abort(io.ErrUnexpectedEOF)
	}
	cc.wmu.Lock()
	cc.wclosed = true
	cc.wcond.Broadcast()
	cc.wmu.Unlock()
}

func (st *h2stream) abort(err error) {
	st.reset.Store(true)
	st.ctx.Cancel(nil)
	if st.body != nil {
		st.body.fail(err)
	}
	st.cc.wmu.Lock()
	st.cc.wcond.Broadcast()
	st.cc.wmu.Unlock()
}

func (cc *h2conn) resetStream(id uint32, code http2.ErrCode) {
	cc.wmu.Lock()
	if !cc.wclosed {
		_ = cc.wfr.WriteRSTStream(id, code)
		cc.dirty = true
	}
	cc.wmu.Unlock()
}

func (cc *h2conn) returnConnWindow(n int64) {
	if n <= 0 {
		return
	}
	cc.mu.Lock()
	cc.recvOwed += n
	owed := cc.recvOwed
	if owed < int64(cc.set.connWindow)/4 {
		cc.mu.Unlock()
		return
	}
	cc.recvOwed = 0
	cc.mu.Unlock()
	cc.wmu.Lock()
	if !cc.wclosed {
		_ = cc.wfr.WriteWindowUpdate(0, uint32(owed))
		cc.dirty = true
	}
	cc.wmu.Unlock()
}

// flushDirty flushes frames written since the last flush.
func (cc *h2conn) flushDirty() {
	cc.wmu.Lock()
	if cc.dirty && !cc.wclosed {
		cc.dirty = false
		if err := cc.bw.Flush(); err != nil {
			cc.wclosed = true
			cc.wcond.Broadcast()
		}
	}
	cc.wmu.Unlock()
}

// answerDirect answers a stream the connection manager never sees.
func (cc *h2conn) answerDirect(id uint32, status int) {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if cc.wclosed {
		return
	}
	cc.encBuf.Reset()
	_ = cc.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
	_ = cc.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cc.encBuf.Bytes(), EndStream: true, EndHeaders: true})
	cc.dirty = true
}

// h2Body is a request body fed by DATA frames.
type h2Body struct {
	st   *h2stream
	req  *http.Request
	mu   sync.Mutex
	cond *sync.Cond
	buf  [][]byte
	n    int64 // bytes buffered
	owed int64 // stream window consumed, not yet returned
	eof  bool
	err  error
	done bool // closed by the stream's end
}

// push adds data; it reports false when the peer overran the window.
func (b *h2Body) push(data []byte, end bool, window int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done || b.eof {
		return !b.eof
	}
	if len(data) > 0 {
		if b.n+int64(len(data)) > window {
			return false
		}
		b.buf = append(b.buf, append([]byte(nil), data...))
		b.n += int64(len(data))
	}
	if end {
		b.eof = true
	}
	b.cond.Broadcast()
	return true
}

func (b *h2Body) finishWithTrailers(t http.Header) {
	b.mu.Lock()
	b.req.Trailer = t
	b.eof = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *h2Body) fail(err error) {
	b.mu.Lock()
	if b.err == nil && !b.eof {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *h2Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) == 0 && !b.eof && b.err == nil && !b.done {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		defer b.mu.Unlock()
		switch {
		case b.done:
			return 0, errBodyClosed
		case b.eof:
			return 0, io.EOF
		}
		return 0, b.err
	}
	n := copy(p, b.buf[0])
	if n == len(b.buf[0]) {
		b.buf[0] = nil
		b.buf = b.buf[1:]
	} else {
		b.buf[0] = b.buf[0][n:]
	}
	b.n -= int64(n)
	b.owed += int64(n)
	owed := b.owed
	more := !b.eof
	send := more && owed >= int64(b.st.cc.set.streamWindow)/4
	if send {
		b.owed = 0
	}
	b.mu.Unlock()
	cc := b.st.cc
	if send {
		cc.wmu.Lock()
		if !cc.wclosed {
			_ = cc.wfr.WriteWindowUpdate(b.st.id, uint32(owed))
			cc.dirty = true
		}
		cc.wmu.Unlock()
	}
	cc.returnConnWindow(int64(n))
	if send {
		cc.flushDirty()
	}
	return n, nil
}

// Close ends the body for the handler.
func (b *h2Body) Close() error {
	b.mu.Lock()
	b.done = true
	b.cond.Broadcast()
	b.mu.Unlock()
	return nil
}

// close ends the body with its stream: the bytes left unread and whether
// the client had sent all of it.
func (b *h2Body) close() (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	unread := b.n
	b.buf, b.n = nil, 0
	b.cond.Broadcast()
	return unread, b.eof
}

// h2Writer is the http.ResponseWriter of one HTTP/2 stream.
type h2Writer struct {
	st        *h2stream
	idle      sharedIdleEntry
	req       *http.Request
	header    http.Header
	hmap      *header.Map
	status    int
	wrote     bool
	headSent  bool
	ended     bool
	noBody    bool
	pending   []byte
	trailers  []string
	reqFields *header.Map
	reqBytes  int
}

func (w *h2Writer) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *h2Writer) WriteHeader(code int) {
	if w.wrote || code >= 100 && code <= 199 {
		return
	}
	h, declared := mapOfHeader(code, w.header)
	w.WriteHeaderMap(code, h, declared)
}

// WriteHeaderMap starts the response from the connection manager's map.
func (w *h2Writer) WriteHeaderMap(code int, h *header.Map, trailers []string) {
	if w.wrote {
		return
	}
	w.hmap = h
	w.wrote, w.status = true, code
	w.noBody = w.req.Method == http.MethodHead || !bodyAllowed(code)
	for _, k := range trailers {
		w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
	}
}

func (w *h2Writer) requestFields() (*header.Map, int) { return w.reqFields, w.reqBytes }

// idleClock is the stream's place on the connection's clock.
func (w *h2Writer) idleClock() streamIdleTimer { return &w.idle }

func (w *h2Writer) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.st.reset.Load() {
		return 0, errStreamReset
	}
	if !w.headSent && len(w.pending)+len(p) <= 16<<10 {
		w.pending = append(w.pending, p...)
		return len(p), nil
	}
	if err := w.sendHead(false); err != nil {
		return 0, err
	}
	if err := w.sendData(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *h2Writer) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.sendHead(false) == nil {
		w.st.cc.wmu.Lock()
		w.st.cc.dirty = true
		w.st.cc.wmu.Unlock()
		w.st.cc.flushDirty()
	}
}

// sendHead writes HEADERS (with END_STREAM when end) and the held body.
func (w *h2Writer) sendHead(end bool) error {
	if w.headSent {
		return nil
	}
	w.headSent = true
	cc := w.st.cc
	headEnd := end && len(w.pending) == 0
	cc.wmu.Lock()
	if cc.wclosed {
		cc.wmu.Unlock()
		return net.ErrClosed
	}
	cc.encBuf.Reset()
	_ = cc.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusString(w.status)})
	_, hasDate := w.hmap.Get("date")
	for _, f := range w.hmap.Fields() {
		if f.Key == "" || f.Key[0] == ':' || connSpecific(f.Key) {
			continue
		}
		_ = cc.enc.WriteField(hpack.HeaderField{Name: f.Key, Value: f.Value})
	}
	if !hasDate {
		_ = cc.enc.WriteField(hpack.HeaderField{Name: "date", Value: string(cc.srv.date())})
	}
	err := cc.writeBlock(w.st.id, cc.encBuf.Bytes(), headEnd)
	cc.wmu.Unlock()
	if err != nil {
		return err
	}
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = nil
		return w.sendData(p, end)
	}
	return nil
}

// writeBlock writes a header block as HEADERS + CONTINUATION frames;
// cc.wmu is held.
func (cc *h2conn) writeBlock(id uint32, block []byte, end bool) error {
	max := int(cc.peerFrame)
	first := block
	if len(first) > max {
		first = first[:max]
	}
	rest := block[len(first):]
	err := cc.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(rest) == 0})
	for err == nil && len(rest) > 0 {
		chunk := rest
		if len(chunk) > max {
			chunk = chunk[:max]
		}
		rest = rest[len(chunk):]
		err = cc.wfr.WriteContinuation(id, len(rest) == 0, chunk)
	}
	cc.dirty = true
	return err
}

// sendData writes DATA frames within the flow-control windows, waiting
// for WINDOW_UPDATEs when they are spent.
func (w *h2Writer) sendData(p []byte, end bool) error {
	cc, st := w.st.cc, w.st
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	for {
		if cc.wclosed {
			return net.ErrClosed
		}
		if st.reset.Load() {
			return errStreamReset
		}
		if len(p) == 0 {
			if end {
				cc.dirty = true
				return cc.wfr.WriteData(st.id, true, nil)
			}
			return nil
		}
		n := min(int64(len(p)), int64(cc.peerFrame), cc.sendWindow, st.sendWindow)
		if n <= 0 {
			if cc.dirty {
				cc.dirty = false
				if err := cc.bw.Flush(); err != nil {
					return err
				}
			}
			cc.wcond.Wait()
			continue
		}
		last := end && int(n) == len(p)
		if err := cc.wfr.WriteData(st.id, last, p[:n]); err != nil {
			return err
		}
		cc.dirty = true
		cc.sendWindow -= n
		st.sendWindow -= n
		p = p[n:]
		if last {
			return nil
		}
	}
}

// finish ends the response after the handler returned.
func (w *h2Writer) finish() {
	if w.ended || w.st.reset.Load() {
		return
	}
	w.ended = true
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	var trailers []hpack.HeaderField
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			trailers = append(trailers, hpack.HeaderField{Name: header.Lower(k), Value: v})
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				trailers = append(trailers, hpack.HeaderField{Name: header.Lower(name), Value: v})
			}
		}
	}
	end := len(trailers) == 0
	if !w.headSent {
		if w.sendHead(end) != nil {
			return
		}
	} else if end {
		if w.sendData(nil, true) != nil {
			return
		}
	}
	if !end {
		cc := w.st.cc
		cc.wmu.Lock()
		if !cc.wclosed {
			cc.encBuf.Reset()
			for _, f := range trailers {
				_ = cc.enc.WriteField(f)
			}
			_ = cc.writeBlock(w.st.id, cc.encBuf.Bytes(), true)
		}
		cc.wmu.Unlock()
	}
}

var _ http.Flusher = (*h2Writer)(nil)
