package hcm

import (
	crand0 "crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/streamctx"
	"github.com/wasmesh/wasmesh/route"
)

// chunkSize is how much body a filter sees per callback when streaming.
const chunkSize = 32 << 10

// ConnInfoKey is the request context key under which the listener stores
// the connection's facts (*ConnInfo).
type ConnInfoKey struct{}

// ConnInfo are the downstream connection's facts the listener knows.
type ConnInfo struct {
	// HTTP2 is set by the connection manager once the connection carries
	// HTTP/2 (a drain then relies on GOAWAY instead of Connection: close).
	HTTP2 atomic.Bool

	ID          uint64
	Local       netip.AddrPort
	Remote      netip.AddrPort
	OriginalDst netip.AddrPort
	TLS         bool
	SNI         string
	PeerCert    bool
}

// stream is one request's state; it is the filters' Controller.
type stream struct {
	m   *Manager
	w   codecWriter
	r   *http.Request
	ctx *streamctx.Context
	fs  *filterchain.Stream

	// mu serialises filter callbacks of the stream (request body and
	// response directions may run on different goroutines).
	mu sync.Mutex

	sig        chan struct{}
	ctlMu      sync.Mutex
	continued  [2]int
	local      *filterchain.LocalReply
	reset      bool
	clearRoute bool

	headersSent bool

	// upstreamHead receives the upstream response's head from the
	// HTTP/1.1 pool (router.Request.ResponseHeaders): it becomes the
	// response header map, without an http.Header in between.
	upstreamHead header.Map
	touchR       touchReader

	// Stream timers (stream_idle_timeout, request_timeout) fire on their
	// own goroutines; these flags are what they may read.
	responseStarted atomic.Bool
	requestDone     atomic.Bool
	idleFired       atomic.Bool
	idle            streamIdleTimer
	requestTimer    *time.Timer
}

// streamState is what a stream allocates, in one piece.
type streamState struct {
	s       stream
	info    filterchain.StreamInfo
	fs      filterchain.Stream
	bytesIn countingReader
}

// startTimers arms stream_idle_timeout and request_timeout.
func (s *stream) startTimers() {
	m := s.m
	if m.StreamIdleTimeout > 0 {
		s.idle = s.w.idleClock()
		s.idle.arm(s, m.StreamIdleTimeout)
	}
	if m.RequestTimeout > 0 {
		s.requestTimer = time.AfterFunc(m.RequestTimeout, s.onRequestTimeout)
	}
}

func (s *stream) stopTimers() {
	if s.idle != nil {
		s.idle.disarm(s)
	}
	if s.requestTimer != nil {
		s.requestTimer.Stop()
	}
}

// touch records activity on the stream (bytes either way, headers).
func (s *stream) touch() {
	if s.idle != nil {
		s.idle.touch()
	}
}

// onIdleTimeout is stream_idle_timeout: before the response starts, a
// local 504 (408 while the request is incomplete) "stream timeout"; after,
// the stream is reset. The upstream request is cancelled either way.
func (s *stream) onIdleTimeout() {
	s.idleFired.Store(true)
	if !s.responseStarted.Load() {
		code := http.StatusGatewayTimeout
		if !s.requestDone.Load() {
			code = http.StatusRequestTimeout
		}
		s.SendLocalReply(filterchain.LocalReply{Status: code, Body: []byte("stream timeout"), Details: "stream_idle_timeout", GRPCStatus: 4})
	}
	s.Reset()
	s.abortRequestBody()
}

// onRequestTimeout is request_timeout: the whole request was not received
// in time; before the response starts, a local 408 "request timeout".
func (s *stream) onRequestTimeout() {
	if s.requestDone.Load() || s.responseStarted.Load() {
		return
	}
	s.SendLocalReply(filterchain.LocalReply{Status: http.StatusRequestTimeout, Body: []byte("request timeout"), Details: "request_overall_timeout", GRPCStatus: 4})
	s.ctx.Cancel(nil)
	s.abortRequestBody()
	s.notify()
}

// abortRequestBody stops a read of the request body that waits for the
// client (the upstream transport may be blocked in it), so the stream can
// answer now; the connection then carries no further request.
func (s *stream) abortRequestBody() {
	if s.requestDone.Load() || s.r.Body == nil || s.r.Body == http.NoBody {
		return
	}
	_ = s.r.Body.Close()
}

func (s *stream) Continue(d filterchain.Direction) {
	s.ctlMu.Lock()
	s.continued[d]++
	s.ctlMu.Unlock()
	s.notify()
}

func (s *stream) SendLocalReply(r filterchain.LocalReply) {
	s.ctlMu.Lock()
	if s.local == nil {
		s.local = &r
	}
	s.ctlMu.Unlock()
	s.notify()
}

func (s *stream) Reset() {
	s.ctlMu.Lock()
	s.reset = true
	s.ctlMu.Unlock()
	s.ctx.Cancel(nil)
	s.notify()
}

func (s *stream) ClearRouteCache() {
	s.ctlMu.Lock()
	s.clearRoute = true
	s.ctlMu.Unlock()
}

// notify wakes a wait. The channel exists once a wait needed it (made
// under ctlMu, so a notify after wait's check finds it).
func (s *stream) notify() {
	s.ctlMu.Lock()
	sig := s.sig
	s.ctlMu.Unlock()
	if sig == nil {
		return
	}
	select {
	case sig <- struct{}{}:
	default:
	}
}

func (s *stream) pendingLocal() *filterchain.LocalReply {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	return s.local
}

// arm forgets earlier continues of direction d before a callback.
func (s *stream) arm(d filterchain.Direction) {
	s.ctlMu.Lock()
	s.continued[d] = 0
	s.ctlMu.Unlock()
}

// wait blocks until direction d is continued, a local reply is sent, the
// stream is reset, or the stream idle timeout passes. It reports whether
// processing should go on.
func (s *stream) wait(d filterchain.Direction) bool {
	for {
		s.ctlMu.Lock()
		done, local, reset := s.continued[d] > 0, s.local != nil, s.reset
		if done {
			s.continued[d]--
		}
		if s.sig == nil {
			s.sig = make(chan struct{}, 1)
		}
		sig := s.sig
		s.ctlMu.Unlock()
		switch {
		case reset:
			return false
		case local:
			return false
		case done:
			return true
		}
		select {
		case <-sig:
		case <-s.ctx.Done():
			// Reset, or stream_idle_timeout (onIdleTimeout has answered).
			return false
		}
	}
}

// serve runs one request through the connection manager; w is the
// writer of the codec (HTTP/1.1 or HTTP/2) that parsed r.
func (m *Manager) serve(w codecWriter, r *http.Request) {
	start := m.now()
	m.stats.rqTotal.Inc()
	if r.ProtoMajor == 2 {
		m.stats.rqHTTP2.Inc()
	} else {
		m.stats.rqHTTP1.Inc()
	}
	m.stats.rqActive.Inc()
	defer m.stats.rqActive.Dec()

	// The stream's context: cancelled with the codec's (the client went
	// away), by Reset, or when the stream ends.
	ctx := streamctx.New(r.Context())
	defer ctx.Cancel(nil)
	// The stream's state, its info for logs and filters, its filter
	// stream and its readers: one allocation.
	st := &streamState{}
	info := &st.info
	*info = filterchain.StreamInfo{StartTime: start, Protocol: r.Proto}
	if ci, ok := r.Context().Value(ConnInfoKey{}).(*ConnInfo); ok {
		if r.ProtoMajor == 2 && !ci.HTTP2.Load() {
			ci.HTTP2.Store(true)
		}
		info.ConnectionID = ci.ID
		info.DownstreamLocal = ci.Local
		info.DownstreamRemote = ci.Remote
		info.DownstreamTLS = ci.TLS
		info.RequestedServerName = ci.SNI
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		info.DownstreamRemote = ap
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			info.DownstreamLocal, _ = netip.ParseAddrPort(la.String())
		}
		info.DownstreamTLS = r.TLS != nil
		if r.TLS != nil {
			info.RequestedServerName = r.TLS.ServerName
		}
	}
	s := &st.s
	s.m, s.w, s.r, s.ctx = m, w, r, ctx
	fs := &st.fs
	fs.Init(ctx, s, info)
	s.fs = fs
	reqHeaders, size := w.requestFields()
	if size > int(m.MaxRequestHeadersKB)*1024 {
		// The codecs read a little past the limit (the request line and
		// line ends); Envoy's limit on names and values is exact.
		info.ResponseCode = http.StatusRequestHeaderFieldsTooLarge
		info.ResponseCodeDetails = "http1.headers_too_large"
		w.WriteHeaderMap(info.ResponseCode, header.New(":status", "431", "content-type", "text/plain; charset=utf-8",
			"x-content-type-options", "nosniff"), nil)
		_, _ = io.WriteString(w, "Request Header Fields Too Large\n")
		m.stats.rqCompleted.Inc()
		m.stats.codes.Inc(info.ResponseCode)
		return
	}
	fs.RequestHeaders = reqHeaders
	m.prepareRequestHeaders(fs, r)

	rnd := rand.Uint64()
	match := m.routes.Match(fs.RequestHeaders, route.RequestInfo{Random: rnd, RemoteAddr: info.DownstreamRemote.Addr(), PeerCertPresented: r.TLS != nil && len(r.TLS.PeerCertificates) > 0})
	plan := m.planFor(match.Route)
	if match.Route != nil {
		info.RouteName = match.Route.Name
	}
	n := plan.Len() - 1
	filters := make([]filterchain.Filter, n)
	for i := 0; i < n; i++ {
		filters[i] = plan.Configs[i].NewFilter(fs)
	}
	defer func() {
		for _, f := range filters {
			f.OnDestroy(fs)
		}
	}()
	term, _ := plan.Terminal().(*router.Config)

	bytesIn := &st.bytesIn
	bytesIn.s = s
	if r.Body == nil || r.Body == http.NoBody {
		s.requestDone.Store(true)
	} else if r.ProtoMajor == 1 {
		// The request body streams upstream while the response may
		// already come back (as with Envoy): net/http must not wait for
		// the whole request body before answering.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	s.startTimers()
	s.process(filters, plan, term, &match, rnd, bytesIn)
	s.stopTimers()
	if s.idleFired.Load() {
		info.ResponseFlags |= filterchain.FlagStreamIdleTimeout
	}

	end := m.now()
	info.Duration = end.Sub(start)
	info.BytesReceived = bytesIn.n
	m.stats.rqCompleted.Inc()
	if info.ResponseCode > 0 {
		m.stats.codes.Inc(info.ResponseCode)
	}
	m.stats.rqTime.Record(uint64(info.Duration.Milliseconds()))
	s.mu.Lock()
	for _, f := range filters {
		f.OnLog(fs)
	}
	s.mu.Unlock()
	if len(m.accessLogs) == 0 {
		return
	}
	entry := &logEntry{info: info, req: fs.RequestHeaders, resp: fs.ResponseHeaders, trailers: fs.ResponseTrailers, end: end}
	if entry.resp == nil {
		entry.resp = &header.Map{}
	}
	if entry.trailers == nil {
		entry.trailers = &header.Map{}
	}
	for _, al := range m.accessLogs {
		al.out.write(func(w io.Writer) { al.format.Write(w, entry) })
	}
}

// process runs the request and response phases.
func (s *stream) process(filters []filterchain.Filter, plan *filterchain.Plan, term *router.Config, match *route.Match, rnd uint64, bytesIn *countingReader) {
	fs, r := s.fs, s.r
	endStream := r.Body == nil || r.Body == http.NoBody
	// Request headers, in order.
	for _, f := range filters {
		s.arm(filterchain.Request)
		s.mu.Lock()
		st := f.OnRequestHeaders(fs, endStream)
		s.mu.Unlock()
		if s.pendingLocal() != nil {
			s.finishLocal(filters, match)
			return
		}
		if st == filterchain.StopIteration && !s.wait(filterchain.Request) {
			s.finishStopped(filters, match)
			return
		}
	}
	if s.takeClearRoute() {
		*match = s.m.routes.Match(fs.RequestHeaders, route.RequestInfo{Random: rnd, RemoteAddr: fs.Info.DownstreamRemote.Addr()})
	}

	// Request body.
	req := &router.Request{Stream: fs, Match: match, ContentLength: -1, Random: rnd, Formatter: s.formatter(),
		ResponseHeaders: &s.upstreamHead}
	if !endStream {
		bytesIn.r = r.Body
		if plan.WantsBody(filterchain.Request) {
			body, ok := s.decodeBody(filters, bytesIn)
			if !ok {
				if s.pendingLocal() != nil {
					s.finishLocal(filters, match)
				} else {
					s.finishStopped(filters, match)
				}
				return
			}
			req.BufferedBody, req.Buffered = body, true
			fs.RequestHeaders.Del("content-length")
		} else {
			req.Reader = bytesIn
			req.ContentLength = r.ContentLength
		}
	}
	if term == nil {
		s.SendLocalReply(filterchain.LocalReply{Status: http.StatusInternalServerError, Details: "no_router", GRPCStatus: -1})
		s.finishLocal(filters, match)
		return
	}
	if upgradeType(s.r) != "" {
		// proxyUpgrade answers 403 when neither the route nor
		// upgrade_configs enable this upgrade.
		s.proxyUpgrade(term, req, filters, match)
		return
	}
	resp, lr := term.Forward(req)
	if lr != nil {
		if s.pendingLocal() == nil && s.r.Context().Err() != nil {
			// The client went away while the upstream was being asked:
			// nothing to answer (Envoy's DC, no response code).
			s.fs.Info.ResponseFlags |= filterchain.FlagDownstreamConnectionTermination
			return
		}
		s.SendLocalReply(*lr)
		s.finishLocal(filters, match)
		return
	}
	defer resp.Body.Close()
	s.respond(filters, plan, match, resp)
}

func (s *stream) takeClearRoute() bool {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	c := s.clearRoute
	s.clearRoute = false
	return c
}

// decodeBody reads the whole request body through the filters that want
// body callbacks, buffering for each filter while it asks to stop, as Envoy
// does for StopIterationAndBuffer. It returns the body to forward.
func (s *stream) decodeBody(filters []filterchain.Filter, body io.Reader) ([]byte, bool) {
	fs := s.fs
	pending := make([][]byte, len(filters))
	var out []byte
	buf := make([]byte, chunkSize)
	for {
		n, err := body.Read(buf)
		eos := err != nil
		if err != nil && !errors.Is(err, io.EOF) {
			s.Reset()
			return nil, false
		}
		if n == 0 && !eos {
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		for i, f := range filters {
			if bf, ok := f.(filterchain.BodyFilter); ok && !bf.WantsBody(filterchain.Request) {
				continue
			}
			pending[i] = append(pending[i], data...)
			s.arm(filterchain.Request)
			s.mu.Lock()
			res, st := f.OnRequestBody(fs, pending[i], eos)
			s.mu.Unlock()
			if s.pendingLocal() != nil {
				return nil, false
			}
			if st == filterchain.StopIteration {
				pending[i] = res
				if !eos {
					data = nil
					break
				}
				if !s.wait(filterchain.Request) {
					return nil, false
				}
				res = pending[i]
			}
			pending[i] = nil
			data = res
		}
		out = append(out, data...)
		if eos {
			break
		}
	}
	if len(r(s).Trailer) > 0 {
		fs.RequestTrailers = header.New()
		for k, vs := range s.r.Trailer {
			for _, v := range vs {
				fs.RequestTrailers.Add(k, v)
			}
		}
		for _, f := range filters {
			s.arm(filterchain.Request)
			s.mu.Lock()
			st := f.OnRequestTrailers(fs)
			s.mu.Unlock()
			if s.pendingLocal() != nil {
				return nil, false
			}
			if st == filterchain.StopIteration && !s.wait(filterchain.Request) {
				return nil, false
			}
		}
	}
	return out, true
}

func r(s *stream) *http.Request { return s.r }

// respond runs the response through the filters (reverse order) and writes it.
func (s *stream) respond(filters []filterchain.Filter, plan *filterchain.Plan, match *route.Match, resp *http.Response) {
	fs := s.fs
	s.responseStarted.Store(true)
	s.touch()
	var h *header.Map
	if resp.Header == nil && s.upstreamHead.Len() > 0 {
		// The pool parsed the head into the map: drop the hop-by-hop
		// fields in place.
		h = &s.upstreamHead
		fields := h.Fields()
		kept := fields[:0]
		for _, f := range fields {
			if !hopByHop(f.Key) {
				kept = append(kept, f)
			}
		}
		clear(fields[len(kept):])
		h.Adopt(kept)
	} else {
		h = header.NewCap(4+len(resp.Header), ":status", statusString(resp.StatusCode))
		for k, vs := range resp.Header {
			if hopByHop(k) {
				continue
			}
			for _, v := range vs {
				h.Add(k, v)
			}
		}
	}
	fs.ResponseHeaders = h
	if match.Route != nil {
		match.FinalizeResponseHeaders(h, s.formatter())
	}
	endStream := resp.Body == http.NoBody || resp.ContentLength == 0 && len(resp.Trailer) == 0
	for i := len(filters) - 1; i >= 0; i-- {
		s.arm(filterchain.Response)
		s.mu.Lock()
		st := filters[i].OnResponseHeaders(fs, endStream)
		s.mu.Unlock()
		if s.pendingLocal() != nil {
			s.writeLocal(*s.pendingLocal())
			return
		}
		if st == filterchain.StopIteration && !s.wait(filterchain.Response) {
			s.abortResponse()
			return
		}
	}
	wantsBody := plan.WantsBody(filterchain.Response) && !endStream
	if wantsBody && resp.ContentLength >= 0 && resp.ContentLength <= maxBufferedBody && len(resp.Trailer) == 0 {
		// A small body of known length goes through the filters whole, and
		// the response keeps an exact Content-Length (Envoy keeps it when
		// filters buffer the body).
		var out []byte
		if !s.encodeBody(filters, resp.Body, func(b []byte) { out = append(out, b...) }) {
			return
		}
		h.Set("content-length", strconv.Itoa(len(out)))
		s.writeHeaders(h, nil)
		n, _ := s.w.Write(out)
		fs.Info.BytesSent += uint64(n)
		return
	}
	if wantsBody {
		h.Del("content-length")
	}
	s.writeHeaders(h, resp.Trailer)
	if endStream {
		s.writeTrailers(resp, filters)
		return
	}
	if wantsBody {
		if !s.encodeBody(filters, resp.Body, func(b []byte) {
			n, _ := s.w.Write(b)
			fs.Info.BytesSent += uint64(n)
			s.w.Flush()
		}) {
			return
		}
	} else {
		s.touchR = touchReader{r: resp.Body, s: s}
		n, err := copyBody(s.w, &s.touchR, s.streaming(resp))
		fs.Info.BytesSent += uint64(n)
		if err != nil {
			// The upstream body broke off (or the stream was reset): the
			// client must see the response end abnormally.
			if s.ctx.Err() != nil {
				fs.Info.ResponseFlags |= filterchain.FlagStreamIdleTimeout
			} else {
				fs.Info.ResponseFlags |= filterchain.FlagUpstreamRemoteReset
			}
			s.abortResponse()
		}
	}
	s.writeTrailers(resp, filters)
}

// touchReader reports activity on the stream for every read.
type touchReader struct {
	r io.Reader
	s *stream
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.s.touch()
	}
	return n, err
}

// maxBufferedBody is the largest response body of known length that body
// filters see whole.
const maxBufferedBody = 1 << 20

// streaming reports whether a response must be flushed as it arrives: no
// known length (chunked, server-sent events) or gRPC. A response of known
// length is left to net/http's buffering.
func (s *stream) streaming(resp *http.Response) bool {
	if resp.ContentLength < 0 {
		return true
	}
	var ct string
	if resp.Header != nil {
		ct = resp.Header.Get("Content-Type")
	} else if h := s.fs.ResponseHeaders; h != nil {
		ct, _ = h.Get("content-type")
	}
	return strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "text/event-stream")
}

// encodeBody runs a response body through the filters that want it (in
// reverse order), buffering for each filter while it asks to stop, and
// hands what passes to out. It reports false when the stream was aborted.
func (s *stream) encodeBody(filters []filterchain.Filter, body io.Reader, out func([]byte)) bool {
	fs := s.fs
	pending := make([][]byte, len(filters))
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		eos := err != nil
		if err != nil && !errors.Is(err, io.EOF) {
			fs.Info.ResponseFlags |= filterchain.FlagUpstreamRemoteReset
			s.abortResponse()
			return false
		}
		data := append([]byte(nil), buf[:n]...)
		for i := len(filters) - 1; i >= 0 && data != nil; i-- {
			f := filters[i]
			if bf, ok := f.(filterchain.BodyFilter); ok && !bf.WantsBody(filterchain.Response) {
				continue
			}
			pending[i] = append(pending[i], data...)
			s.arm(filterchain.Response)
			s.mu.Lock()
			res, st := f.OnResponseBody(fs, pending[i], eos)
			s.mu.Unlock()
			if st == filterchain.StopIteration {
				pending[i] = res
				if !eos {
					data = nil
					break
				}
				if !s.wait(filterchain.Response) {
					s.abortResponse()
					return false
				}
				res = pending[i]
			}
			pending[i] = nil
			data = res
		}
		if len(data) > 0 {
			out(data)
		}
		if eos {
			return true
		}
	}
}

func (s *stream) writeTrailers(resp *http.Response, filters []filterchain.Filter) {
	if len(resp.Trailer) == 0 {
		return
	}
	fs := s.fs
	t := header.New()
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			t.Add(k, v)
		}
	}
	fs.ResponseTrailers = t
	for i := len(filters) - 1; i >= 0; i-- {
		s.mu.Lock()
		filters[i].OnResponseTrailers(fs)
		s.mu.Unlock()
	}
	for _, f := range t.Fields() {
		s.w.Header().Add(http.TrailerPrefix+f.Key, f.Value)
	}
}

// writeHeaders writes the response status and headers downstream.
func (s *stream) writeHeaders(h *header.Map, trailer http.Header) {
	if s.headersSent {
		return
	}
	s.headersSent = true
	s.writeMapHeaders(s.w, h, trailer)
}

// codecWriter is the response writer of the manager's own codecs
// (HTTP/1.1 and HTTP/2): the request's header map comes ready from the
// codec, and the response head goes out from the header map.
type codecWriter interface {
	http.ResponseWriter
	http.Flusher
	requestFields() (*header.Map, int)
	WriteHeaderMap(code int, h *header.Map, trailers []string)
	// idleClock is the stream_idle_timeout clock of the request's stream
	// slot.
	idleClock() streamIdleTimer
}

// writeMapHeaders is writeHeaders for the manager's codecs: the header map
// goes to the wire as it is, with the connection manager's additions
// (server, x-request-id, via, connection) made in the map itself.
func (s *stream) writeMapHeaders(hw codecWriter, h *header.Map, trailer http.Header) {
	m := s.m
	status := 200
	if v, ok := h.Get(":status"); ok {
		status, _ = strconv.Atoi(v)
	}
	if v, ok := h.Get("server"); m.setServer(ok && v != "") {
		h.Set("server", m.serverName)
	}
	if m.alwaysSetRID {
		if rid, ok := s.fs.RequestHeaders.Get("x-request-id"); ok {
			h.Set("x-request-id", rid)
		}
	}
	if m.via != "" {
		h.Add("via", m.via)
	}
	if s.r.ProtoMajor == 1 && (m.draining.Load() || m.hcFailed != nil && m.hcFailed()) {
		h.Set("connection", "close")
	}
	var names []string
	for k := range trailer {
		names = append(names, k)
	}
	if status < 100 || status > 999 {
		status = 502
	}
	s.fs.Info.ResponseCode = status
	hw.WriteHeaderMap(status, h, names)
}

// finishLocal answers with the pending local reply, running it through the
// response filters like Envoy does for replies sent during the request.
func (s *stream) finishLocal(filters []filterchain.Filter, match *route.Match) {
	lr := *s.pendingLocal()
	fs := s.fs
	fs.Info.ResponseCodeDetails = lr.Details
	h := localReplyHeaders(fs, lr)
	fs.ResponseHeaders = h
	if match.Route != nil && (match.Route.Kind == route.ActionDirectResponse || match.Route.Kind == route.ActionRedirect) {
		match.FinalizeResponseHeaders(h, s.formatter())
	}
	body := lr.Body
	if !isGRPC(fs.RequestHeaders) && len(body) > 0 {
		h.Set("content-length", strconv.Itoa(len(body)))
		if _, ok := h.Get("content-type"); !ok {
			h.Set("content-type", "text/plain")
		}
	}
	s.responseStarted.Store(true)
	end := len(body) == 0
	for i := len(filters) - 1; i >= 0; i-- {
		s.mu.Lock()
		st := filters[i].OnResponseHeaders(fs, end)
		s.mu.Unlock()
		if st == filterchain.StopIteration {
			// A filter cannot hold a local reply; Envoy continues it too.
			continue
		}
	}
	incomplete := !s.requestDone.Load() && s.r.ProtoMajor == 1
	if incomplete {
		// The request body was not all received: this connection cannot
		// carry another request.
		h.Set("connection", "close")
	}
	s.writeHeaders(h, nil)
	if len(body) > 0 && !isGRPC(fs.RequestHeaders) && s.r.Method != http.MethodHead {
		n, _ := s.w.Write(body)
		fs.Info.BytesSent += uint64(n)
	}
	if incomplete {
		// Send it now, not after the rest of the request body.
		s.w.Flush()
	}
}

// localReplyHeaders builds the response headers of a local reply; gRPC
// requests get a trailers-only gRPC response, as Envoy sends.
func localReplyHeaders(fs *filterchain.Stream, lr filterchain.LocalReply) *header.Map {
	h := header.New(":status", strconv.Itoa(lr.Status))
	for _, f := range lr.Headers {
		h.Add(f.Key, f.Value)
	}
	if isGRPC(fs.RequestHeaders) {
		h.Set(":status", "200")
		h.Set("content-type", "application/grpc")
		g := lr.GRPCStatus
		if g < 0 {
			g = httpToGRPC(lr.Status)
		}
		h.Set("grpc-status", strconv.Itoa(g))
		msg := string(lr.Body)
		if msg == "" {
			msg = http.StatusText(lr.Status)
		}
		h.Set("grpc-message", msg)
	}
	return h
}

// httpToGRPC maps an HTTP status to a gRPC status as Envoy does.
func httpToGRPC(code int) int {
	switch code {
	case 400:
		return 13
	case 401:
		return 16
	case 403:
		return 7
	case 404:
		return 12
	case 429, 502, 503, 504:
		return 14
	}
	return 2
}

func isGRPC(h *header.Map) bool {
	ct, _ := h.Get("content-type")
	return strings.HasPrefix(ct, "application/grpc")
}

// finishStopped ends a stream that a filter stopped and never continued
// (reset, or idle timeout turned into a local reply).
func (s *stream) finishStopped(filters []filterchain.Filter, match *route.Match) {
	if s.pendingLocal() != nil {
		s.finishLocal(filters, match)
		return
	}
	s.fs.Info.ResponseFlags |= filterchain.FlagLocalReset
	s.abortResponse()
}

func (s *stream) writeLocal(lr filterchain.LocalReply) {
	if s.headersSent {
		s.abortResponse()
		return
	}
	h := localReplyHeaders(s.fs, lr)
	if len(lr.Body) > 0 && !isGRPC(s.fs.RequestHeaders) {
		h.Set("content-length", strconv.Itoa(len(lr.Body)))
		h.Set("content-type", "text/plain")
	}
	s.fs.ResponseHeaders = h
	s.fs.Info.ResponseCodeDetails = lr.Details
	s.writeHeaders(h, nil)
	if len(lr.Body) > 0 && !isGRPC(s.fs.RequestHeaders) {
		n, _ := s.w.Write(lr.Body)
		s.fs.Info.BytesSent += uint64(n)
	}
}

// abortResponse resets the downstream stream: an HTTP/2 RST_STREAM, or
// closing an HTTP/1 connection.
func (s *stream) abortResponse() {
	if !s.headersSent {
		s.fs.Info.ResponseCode = 0
	} else {
		// What was already answered reaches the client before the reset,
		// as in Envoy (headers are forwarded at once there).
		s.w.Flush()
	}
	panic(http.ErrAbortHandler)
}

// formatter evaluates header formatters (%...%) against the stream.
func (s *stream) formatter() route.Formatter { return s }

// Format implements route.Formatter.
func (s *stream) Format(cmd *route.FormatCommand) string {
	p, err := parseCommand(cmd.String()[1 : len(cmd.String())-1])
	if err != nil {
		return ""
	}
	v := evalCommand(p, &logEntry{info: s.fs.Info, req: s.fs.RequestHeaders, resp: orEmpty(s.fs.ResponseHeaders), trailers: &header.Map{}, end: s.m.now()})
	if v == "-" {
		return ""
	}
	return v
}

func orEmpty(h *header.Map) *header.Map {
	if h == nil {
		return &header.Map{}
	}
	return h
}

func hopByHop(k string) bool {
	switch len(k) {
	case 2:
		return strings.EqualFold(k, "te")
	case 7:
		return strings.EqualFold(k, "upgrade") || strings.EqualFold(k, "trailer")
	case 10:
		return strings.EqualFold(k, "connection") || strings.EqualFold(k, "keep-alive")
	case 16:
		return strings.EqualFold(k, "proxy-connection")
	case 17:
		return strings.EqualFold(k, "transfer-encoding")
	}
	return false
}

// prepareRequestHeaders applies Envoy's connection manager rules for
// x-forwarded-for, x-forwarded-proto, x-request-id and x-envoy-internal.
func (m *Manager) prepareRequestHeaders(fs *filterchain.Stream, r *http.Request) {
	h := fs.RequestHeaders
	info := fs.Info
	// The trusted client address (Envoy's rules): with use_remote_address
	// the Nth entry from the right of the incoming x-forwarded-for (N =
	// xff_num_trusted_hops; the peer when N is 0 or the list is shorter);
	// without it the (N+1)th.
	xff, _ := h.Get("x-forwarded-for")
	hops := splitXFF(xff)
	trusted := info.DownstreamRemote.Addr().Unmap()
	n := int(m.xffTrustedHops)
	if !m.useRemoteAddress {
		n++
	}
	if n > 0 && len(hops) >= n {
		if a, err := netip.ParseAddr(hops[len(hops)-n]); err == nil {
			trusted = a.Unmap()
		}
	}
	if m.useRemoteAddress {
		if !m.skipXFFAppend && info.DownstreamRemote.IsValid() {
			remote := info.DownstreamRemote.Addr().Unmap().String()
			if xff != "" {
				h.Set("x-forwarded-for", xff+","+remote)
			} else {
				h.Set("x-forwarded-for", remote)
			}
		}
		if _, ok := h.Get("x-forwarded-proto"); !ok || m.xffTrustedHops == 0 {
			proto := "http"
			if info.DownstreamTLS {
				proto = "https"
			}
			h.Set("x-forwarded-proto", proto)
		}
		if trusted.IsPrivate() || trusted.IsLoopback() {
			if _, ok := h.Get("x-forwarded-for"); ok {
				h.Set("x-envoy-internal", "true")
			}
		} else {
			// External request: strip the x-envoy-* headers a client must
			// not set, and name the trusted client.
			for _, k := range []string{"x-envoy-internal", "x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries",
				"x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-expected-rq-timeout-ms",
				"x-envoy-original-path", "x-envoy-force-trace", "x-envoy-downstream-service-cluster", "x-envoy-external-address"} {
				h.Del(k)
			}
			if trusted.IsValid() {
				h.Set("x-envoy-external-address", trusted.String())
			}
		}
	} else if _, ok := h.Get("x-forwarded-proto"); !ok {
		proto := "http"
		if info.DownstreamTLS {
			proto = "https"
		}
		h.Set("x-forwarded-proto", proto)
	}
	if m.generateRequestID {
		if rid, ok := h.Get("x-request-id"); !ok || rid == "" || (!m.preserveRequestID && m.useRemoteAddress && !isInternal(info)) {
			h.Set("x-request-id", newUUID())
		}
	}
	if rid, ok := h.Get("x-request-id"); ok {
		info.RequestID = rid
	}
	if m.via != "" {
		if v, ok := h.Get("via"); ok {
			h.Set("via", v+", "+m.via)
		} else {
			h.Set("via", m.via)
		}
	}
	_ = r
}

func isInternal(info *filterchain.StreamInfo) bool {
	a := info.DownstreamRemote.Addr()
	return a.IsPrivate() || a.IsLoopback()
}

// newUUID is a random (version 4) UUID, as Envoy's request ids.
func newUUID() string {
	var b [16]byte
	_, _ = crand(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

func crand(b []byte) (int, error) { return crand0.Read(b) }

// statusString is strconv.Itoa for status codes, without an allocation
// for the common ones.
func statusString(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// bufPool holds body copy buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// copyBody copies a response body downstream; a streaming response is
// flushed after each read so it is not held back.
func copyBody(w http.ResponseWriter, r io.Reader, flush bool) (int64, error) {
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			wn, werr := w.Write(buf[:n])
			total += int64(wn)
			if werr != nil {
				return total, werr
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

type countingReader struct {
	r io.Reader
	n uint64
	s *stream
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	if c.s != nil {
		if n > 0 {
			c.s.touch()
		}
		if err == io.EOF {
			c.s.requestDone.Store(true)
			if c.s.requestTimer != nil {
				c.s.requestTimer.Stop()
			}
		}
	}
	return n, err
}

var _ = zap.String

// splitXFF splits an x-forwarded-for value into trimmed addresses.
func splitXFF(v string) []string {
	if v == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
