package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wasmesh/wasmesh/listener/network"
)

// socket is a bound listening socket and its accept loop. It outlives a
// listener version: Adopt moves it to the next version of the same
// listener, and the loop hands each accepted connection to whichever
// version is current.
type socket struct {
	ln     net.Listener
	cur    atomic.Pointer[Listener]
	closed atomic.Bool
	done   chan struct{}
}

func listen(ctx context.Context, network string, addr netip.AddrPort, reusePort bool) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil && reusePort {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(ctx, network, addr.String())
}

func (s *socket) acceptLoop(log *zap.Logger) {
	defer close(s.done)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		for {
			l := s.cur.Load()
			if l.admit(c, nil) {
				break
			}
			if l == s.cur.Load() {
				c.Close()
				break
			}
		}
	}
}

func (s *socket) close() {
	if s.closed.CompareAndSwap(false, true) {
		s.ln.Close()
		<-s.done
	}
}

// Addr is the bound address (the configured one when not bound).
func (l *Listener) Addr() net.Addr {
	l.mu.Lock()
	s := l.sock
	l.mu.Unlock()
	if s != nil {
		return s.ln.Addr()
	}
	return net.TCPAddrFromAddrPort(l.addr)
}

// Start binds the listener's address (unless bind_to_port is false: the
// listener then only gets connections handed over by use_original_dst)
// and starts serving.
func (l *Listener) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != stateCompiled {
		return fmt.Errorf("listener %q: already started", l.name)
	}
	if l.bind {
		ln, err := listen(ctx, l.network, l.addr, l.reuse)
		if err != nil {
			return fmt.Errorf("listener %q: bind %s: %w", l.name, l.addr, err)
		}
		s := &socket{ln: ln, done: make(chan struct{})}
		s.cur.Store(l)
		l.sock = s
		go s.acceptLoop(l.log)
	}
	l.activateLocked()
	l.log.Info("listener started", zap.Stringer("address", l.addrLocked()))
	return nil
}

func (l *Listener) addrLocked() net.Addr {
	if l.sock != nil {
		return l.sock.ln.Addr()
	}
	return net.TCPAddrFromAddrPort(l.addr)
}

// Adopt makes l serve old's bound socket: from now on new connections go
// to l, without the port ever closing. old keeps serving the connections
// it has; drain it (old.Drain) or stop it afterwards. Both must have the
// same address. Call Adopt instead of Start.
func (l *Listener) Adopt(old *Listener) error {
	if old == l {
		return nil
	}
	if old.addr != l.addr || old.network != l.network {
		return fmt.Errorf("listener %q: cannot adopt the socket of %s: address differs from %s", l.name, old.addr, l.addr)
	}
	old.mu.Lock()
	s := old.sock
	if s == nil || s.closed.Load() || s.cur.Load() != old {
		old.mu.Unlock()
		return fmt.Errorf("listener %q: the previous version has no socket to hand over", l.name)
	}
	l.mu.Lock()
	if l.state != stateCompiled {
		l.mu.Unlock()
		old.mu.Unlock()
		return fmt.Errorf("listener %q: already started", l.name)
	}
	l.sock = s
	l.activateLocked()
	l.mu.Unlock()
	s.cur.Store(l)
	old.mu.Unlock()
	return nil
}

// activateLocked marks the listener running; connections are served as
// they are accepted.
func (l *Listener) activateLocked() {
	l.state = stateRunning
}

func (l *Listener) allChains() []*filterChain {
	if l.def == nil {
		return l.chains
	}
	return append(append([]*filterChain(nil), l.chains...), l.def)
}

// ownsSocketLocked reports whether l is the socket's current version.
func (l *Listener) ownsSocketLocked() bool {
	return l.sock != nil && l.sock.cur.Load() == l
}

// Drain stops accepting (unless the socket was adopted by a newer
// version) and lets in-flight work finish: HTTP servers shut down
// gracefully (idle connections close, HTTP/2 gets GOAWAY, requests
// finish), TCP sessions go on. After drainTime, or when ctx is done,
// whatever is left is closed (Stop). It returns when the listener is
// stopped.
func (l *Listener) Drain(ctx context.Context, drainTime time.Duration) error {
	l.mu.Lock()
	if l.state != stateRunning {
		st := l.state
		l.mu.Unlock()
		if st == stateCompiled {
			return l.Stop()
		}
		return nil
	}
	l.state = stateDraining
	owns := l.ownsSocketLocked()
	s := l.sock
	l.mu.Unlock()
	if owns {
		s.close()
	}
	dctx, cancel := context.WithTimeout(ctx, drainTime)
	defer cancel()
	// HTTP/1 responses from now on carry "Connection: close", so clients
	// leave on their next request, as Envoy's drain does. Idle connections
	// are not closed yet: closing one races a client that is just reusing
	// it, and that request would be lost.
	for _, fc := range l.allChains() {
		if fc.hcm != nil {
			fc.hcm.StartDrain()
		}
	}
	// Connections accepted just before are still in their listener
	// filters: let them reach their chain first, then let the newest
	// ones send their first request (net/http would drop a request it
	// reads after Shutdown began).
	waitCtx(dctx, &l.pending)
	for dctx.Err() == nil {
		n := 0
		for _, fc := range l.allChains() {
			if fc.h1 != nil {
				n += fc.freshConns()
			}
		}
		if n == 0 {
			break
		}
		select {
		case <-dctx.Done():
		case <-time.After(2 * time.Millisecond):
		}
	}
	// Wait (up to half the drain time) for HTTP/1 clients to take their
	// Connection: close; HTTP/2 connections get GOAWAY from Shutdown.
	half := time.Now().Add(drainTime / 2)
	for dctx.Err() == nil && time.Now().Before(half) {
		n := 0
		for _, fc := range l.allChains() {
			if fc.h1 != nil {
				n += fc.http1Conns()
			}
		}
		if n == 0 {
			break
		}
		select {
		case <-dctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	var wg sync.WaitGroup
	for _, fc := range l.allChains() {
		if fc.h1 == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = fc.h1.Shutdown(dctx)
		}()
	}
	wg.Wait()
	// TCP sessions: wait for them to end by themselves.
	for dctx.Err() == nil {
		l.mu.Lock()
		n := len(l.conns)
		l.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-dctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return l.Stop()
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Stop closes the socket (unless a newer version adopted it), every
// connection and server, waits for the connection goroutines, and
// releases the filters' resources.
func (l *Listener) Stop() error {
	l.mu.Lock()
	if l.state == stateStopped {
		l.mu.Unlock()
		return nil
	}
	l.state = stateStopped
	owns := l.ownsSocketLocked()
	s := l.sock
	l.mu.Unlock()
	if owns {
		s.close()
	}
	if l.cancel != nil {
		l.cancel()
	}
	for _, fc := range l.allChains() {
		if fc.h1 != nil {
			_ = fc.h1.Close()
		}
	}
	l.mu.Lock()
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
	l.release()
	return nil
}

// admit takes an accepted (or handed over) connection; false when the
// listener no longer takes connections.
func (l *Listener) admit(nc net.Conn, handed *conn) bool {
	c := handed
	if c == nil {
		c = &conn{Conn: nc, start: time.Now()}
		c.info.Local = addrPort(nc.LocalAddr())
		c.info.Remote = addrPort(nc.RemoteAddr())
	}
	l.mu.Lock()
	if l.state != stateRunning {
		l.mu.Unlock()
		return false
	}
	if handed == nil {
		c.info.ID = l.connIDs.Add(1)
	}
	c.owner.Store(l)
	l.conns[c] = struct{}{}
	l.pending.Add(1)
	l.wg.Add(1)
	l.mu.Unlock()
	l.stats.cxTotal.Inc()
	l.stats.cxActive.Inc()
	go l.process(c, handed != nil)
	return true
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// connClosed is the listener's side of a connection's Close.
func (l *Listener) connClosed(c *conn) {
	l.mu.Lock()
	_, ok := l.conns[c]
	delete(l.conns, c)
	l.mu.Unlock()
	if !ok {
		return
	}
	l.stats.cxActive.Dec()
	l.stats.cxDestroy.Inc()
	l.stats.cxLength.Record(uint64(time.Since(c.start).Milliseconds()))
}

// release from this listener's books without closing (hand-off).
func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	_, ok := l.conns[c]
	delete(l.conns, c)
	l.mu.Unlock()
	if ok {
		l.stats.cxActive.Dec()
	}
}

// process runs the listener filters, picks the filter chain, terminates
// TLS and serves the connection.
func (l *Listener) process(c *conn, handed bool) {
	defer l.wg.Done()
	dispatched := false
	defer func() {
		if !dispatched {
			l.pending.Done()
		}
	}()
	done := func() {
		dispatched = true
		l.pending.Done()
	}

	if len(l.lfs) > 0 {
		if !l.runListenerFilters(c) {
			c.Close()
			return
		}
	}
	if c.proto == "" {
		c.proto = "raw_buffer"
	}
	if l.useOrigDst && !handed && c.restore && l.deps.Redirect != nil {
		if t := l.deps.Redirect.Lookup(c.info.Local); t != nil && t != l {
			l.forget(c)
			done()
			if !t.admit(c.Conn, c) {
				c.owner.Store(l)
				c.Close()
			}
			return
		}
	}
	f := facts{local: c.info.Local, remote: c.info.Remote, direct: c.info.Remote, sni: c.sni, transport: c.proto, alpn: c.alpn}
	var fc *filterChain
	if i := selectChain(l.matches, &f); i >= 0 {
		fc = l.chainAt(i)
	}
	if fc == nil {
		fc = l.def
	}
	if fc == nil {
		l.stats.noChain.Inc()
		l.log.Debug("closing connection: no matching filter chain",
			zap.Uint64("connection_id", c.info.ID), zap.Stringer("local", c.info.Local), zap.Stringer("remote", c.info.Remote),
			zap.String("sni", c.sni), zap.String("transport", c.proto), zap.Strings("alpn", c.alpn))
		c.Close()
		return
	}
	var nc net.Conn = c
	if fc.tls != nil {
		tc := tls.Server(c, fc.tls.Config)
		timeout := fc.connectTimeout
		if timeout == 0 {
			timeout = defaultHandshakeTimeout
		}
		_ = c.Conn.SetDeadline(time.Now().Add(timeout))
		err := tc.HandshakeContext(l.ctx)
		cs := tc.ConnectionState()
		fc.tls.CountHandshake(err, cs)
		if err != nil {
			l.log.Debug("TLS handshake failed", zap.Uint64("connection_id", c.info.ID), zap.Error(err))
			tc.Close()
			c.Close()
			return
		}
		_ = c.Conn.SetDeadline(time.Time{})
		c.info.TLS = true
		c.info.SNI = cs.ServerName
		c.info.PeerCert = len(cs.PeerCertificates) > 0
		nc = tc
	} else {
		c.info.SNI = c.sni
	}
	if fc.h1 != nil {
		// HTTP/1.1 and HTTP/2: served by the manager's codecs, starting
		// on this goroutine.
		fc.freshMu.Lock()
		fc.fresh[nc] = true
		fc.freshMu.Unlock()
		done()
		fc.h1.ServeConn(nc)
		return
	}
	done()
	fc.net.Serve(l.ctx, nc, network.Info{
		ID: c.info.ID, Local: c.info.Local, Remote: c.info.Remote, OriginalDst: c.info.OriginalDst,
		TLS: c.info.TLS, SNI: c.info.SNI, FilterChain: fc.name,
	})
}

func (l *Listener) chainAt(i int) *filterChain {
	for k, m := range l.matches {
		if m.index == i {
			return l.chains[k]
		}
	}
	return nil
}

// runListenerFilters runs the listener filters in order under
// listener_filters_timeout; false closes the connection.
func (l *Listener) runListenerFilters(c *conn) bool {
	if l.lfTimeout > 0 {
		c.setDeadline(l.lfTimeout)
		defer c.setDeadline(0)
	}
	for _, f := range l.lfs {
		err := l.runListenerFilter(c, f)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if l.continueOnTimeout {
				return true
			}
			l.stats.preTimeout.Inc()
			return false
		}
		if errors.Is(err, errFilterReject) {
			l.stats.lfError.Inc()
		}
		l.log.Debug("listener filter closed the connection", zap.Uint64("connection_id", c.info.ID), zap.Error(err))
		return false
	}
	return true
}

var errFilterReject = errors.New("listener filter rejected the connection")

func (l *Listener) runListenerFilter(c *conn, f listenerFilter) error {
	switch f.kind {
	case lfOriginalDst:
		if od, err := originalDst(c.Conn); err == nil && od.IsValid() {
			od = netip.AddrPortFrom(od.Addr().Unmap(), od.Port())
			c.info.OriginalDst = od
			if od != c.info.Local {
				c.restore = true
			}
			c.info.Local = od
		}
		return nil
	case lfTLSInspector:
		limit := f.maxHello + 64*recordHeaderLen
		for {
			st, need, h := parseClientHello(c.buf, f.maxHello)
			switch st {
			case helloDone:
				c.proto = "tls"
				c.sni = h.sni
				c.alpn = h.alpn
				l.stats.tlsFound.Inc()
				if h.sni != "" {
					l.stats.sniFound.Inc()
				} else {
					l.stats.sniNotFound.Inc()
				}
				if len(h.alpn) > 0 {
					l.stats.alpnFound.Inc()
				} else {
					l.stats.alpnNotFound.Inc()
				}
				return nil
			case helloNotTLS:
				l.stats.tlsNotFound.Inc()
				if f.closeOnErr && len(c.buf) > 0 && c.buf[0] == recordTypeHandshake {
					return fmt.Errorf("%w: malformed ClientHello", errFilterReject)
				}
				return nil
			case helloTooLarge:
				l.stats.helloTooLarge.Inc()
				if f.closeOnErr {
					return fmt.Errorf("%w: ClientHello larger than %d bytes", errFilterReject, f.maxHello)
				}
				return nil
			}
			if need > limit {
				l.stats.helloTooLarge.Inc()
				return fmt.Errorf("%w: ClientHello too large", errFilterReject)
			}
			if _, err := c.peek(need); err != nil {
				return err
			}
		}
	case lfHTTPInspector:
		if c.proto != "" && c.proto != "raw_buffer" {
			return nil
		}
		for {
			st, proto := sniffHTTP(c.buf)
			switch st {
			case httpFound:
				c.alpn = []string{proto}
				switch proto {
				case "h2c":
					l.stats.http2.Inc()
				case "http/1.0":
					l.stats.http10.Inc()
				default:
					l.stats.http11.Inc()
				}
				return nil
			case httpNotHTTP:
				l.stats.httpNotFound.Inc()
				return nil
			}
			if err := c.readMore(1024); err != nil {
				return err
			}
		}
	}
	return nil
}
