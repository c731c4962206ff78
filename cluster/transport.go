package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// transports are the cluster's connection pools: the lean HTTP/1.1 client
// (h1.go) for HTTP/1.1, net/http for HTTP/2 and for protocol selection by
// ALPN over TLS (auto_config), which the lean client does not do.
type transports struct {
	h1     atomic.Pointer[h1Transport] // made on first use (h1Pool): most clusters of a large config see no request
	alpn   *http.Transport             // auto_config over TLS: HTTP/2 or HTTP/1.1 by ALPN
	h2     *http.Transport
	scheme string
	c      *Cluster
}

// Pools a request can go to (transports.forRequest).
const (
	poolH1 = iota
	poolALPN
	poolH2
)

func (t *transports) closeIdle() {
	if h1 := t.h1.Load(); h1 != nil {
		h1.closeIdle()
	}
	if t.alpn != nil {
		t.alpn.CloseIdleConnections()
	}
	if t.h2 != nil {
		t.h2.CloseIdleConnections()
	}
}

// forRequest picks the pool: HTTP/2 for h2 clusters (and downstream h2 with
// use_downstream_protocol_config), HTTP/1.1 otherwise and for upgrades,
// which HTTP/2 cannot carry.
func (t *transports) forRequest(req *http.Request, lbc *LoadBalancerContext) int {
	switch t.c.cfg.protocol {
	case protoHTTP2:
		if isUpgrade(req, lbc) {
			return poolH1
		}
		return poolH2
	case protoDownstream:
		if lbc.DownstreamHTTP2 && !isUpgrade(req, lbc) {
			return poolH2
		}
	}
	if t.alpn != nil {
		return poolALPN
	}
	return poolH1
}

func isUpgrade(req *http.Request, lbc *LoadBalancerContext) bool {
	if req.Header == nil && lbc.Fields != nil {
		v, _ := lbc.Fields.Get("upgrade")
		return v != ""
	}
	return req.Header.Get("Upgrade") != ""
}

func (c *Cluster) buildTransports() {
	c.tr.c = c
	c.tr.scheme = "http"
	if c.cfg.tls != nil {
		c.tr.scheme = "https"
	}
	// An HTTP/1.1 pool exists for every cluster (upgrades on HTTP/2
	// clusters use it), made by h1 on the first request.
	switch c.cfg.protocol {
	case protoHTTP2, protoDownstream:
		c.tr.h2 = c.newTransport(protoHTTP2)
	case protoAuto:
		if c.cfg.tls != nil {
			c.tr.alpn = c.newTransport(protoAuto)
		}
	}
}

// h1Pool returns the HTTP/1.1 pool, making it on first use.
func (t *transports) h1Pool() *h1Transport {
	if h := t.h1.Load(); h != nil {
		return h
	}
	c := t.c
	var tc *tls.Config
	if c.cfg.tls != nil {
		tc = c.cfg.tls.config(nil)
	}
	h := c.newH1Transport(tc)
	if !t.h1.CompareAndSwap(nil, h) {
		return t.h1.Load()
	}
	return h
}

func (c *Cluster) newTransport(p protocolMode) *http.Transport {
	maxConns := int(min(c.cfg.breakers[0].maxConnections, 1<<20))
	t := &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     c.cfg.idleTimeout,
		ForceAttemptHTTP2:   p != protoHTTP1,
		HTTP2:               c.cfg.h2,
	}
	t.Protocols = new(http.Protocols)
	tlsOn := c.cfg.tls != nil
	switch p {
	case protoHTTP1:
		t.Protocols.SetHTTP1(true)
	case protoHTTP2:
		if tlsOn {
			t.Protocols.SetHTTP2(true)
		} else {
			t.Protocols.SetUnencryptedHTTP2(true)
		}
		// For HTTP/2 this bounds concurrent dials, not connections:
		// concurrent first requests share one connection, as in Envoy.
		t.MaxConnsPerHost = 1
	case protoAuto:
		t.Protocols.SetHTTP1(true)
		if tlsOn {
			t.Protocols.SetHTTP2(true)
		}
	}
	kind := p
	if p == protoAuto && !tlsOn {
		kind = protoHTTP1
	}
	if tlsOn {
		var alpn []string
		switch p {
		case protoHTTP2:
			alpn = []string{"h2"}
		case protoAuto:
			alpn = []string{"h2", "http/1.1"}
		}
		tc := c.cfg.tls.config(alpn)
		t.TLSClientConfig = tc
		t.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return c.dialURL(ctx, addr, tc, kind)
		}
	} else {
		t.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return c.dialURL(ctx, addr, nil, kind)
		}
	}
	return t
}

// dialError marks a connect failure (TCP or TLS handshake) so RoundTrip
// can tell it from failures on established connections.
type dialError struct {
	err     error
	timeout bool
}

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialURL connects for a transport; addr is the URL's host.
func (c *Cluster) dialURL(ctx context.Context, addr string, tc *tls.Config, p protocolMode) (net.Conn, error) {
	h := c.hostForURL(addr)
	network, target := "tcp", addr
	if h != nil {
		network, target = h.network, h.Address()
	}
	conn, err := c.dial(ctx, h, network, target, tc)
	if err != nil {
		return nil, err
	}
	if p == protoHTTP2 {
		c.stats.cxHTTP2Total().Inc()
	} else {
		c.stats.cxHTTP1Total().Inc()
	}
	return conn, nil
}

// dial opens one upstream connection: TCP within connect_timeout, then the
// TLS handshake within what is left of it.
func (c *Cluster) dial(ctx context.Context, h *Host, network, addr string, tc *tls.Config) (net.Conn, error) {
	c.stats.cxTotal().Inc()
	if h != nil {
		h.cxTotal.Add(1)
	}
	d := net.Dialer{Timeout: c.cfg.connectTimeout}
	if c.cfg.keepAlive != nil {
		d.KeepAliveConfig = *c.cfg.keepAlive
	}
	if c.cfg.localAddr != nil && network == "tcp" {
		d.LocalAddr = c.cfg.localAddr
	}
	deadline := time.Now().Add(c.cfg.connectTimeout)
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, c.connectFailed(h, err)
	}
	conn := c.track(raw, h)
	if tc == nil {
		return conn, nil
	}
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tconn := tls.Client(conn, tc)
	if err := tconn.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, c.connectFailed(h, err)
	}
	return tconn, nil
}

func (c *Cluster) connectFailed(h *Host, err error) error {
	c.stats.cxConnectFail().Inc()
	timeout := false
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		timeout = true
		c.stats.cxConnectTimeout().Inc()
	}
	if h != nil {
		h.cxConnectFail.Add(1)
	}
	return &dialError{err: err, timeout: timeout}
}

// dialHealthCheck connects for a health check: the cluster's transport
// socket, with ALPN h2 for HTTP/2 checks. Health check connections are not
// counted as upstream connections, as in Envoy.
func (c *Cluster) dialHealthCheck(ctx context.Context, network, addr string, h2 bool) (net.Conn, error) {
	d := net.Dialer{Timeout: c.cfg.connectTimeout}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if c.cfg.tls == nil {
		return raw, nil
	}
	alpn := []string(nil)
	if h2 {
		alpn = []string{"h2"}
	}
	tconn := tls.Client(raw, c.cfg.tls.config(alpn))
	hctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
	defer cancel()
	if err := tconn.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return tconn, nil
}

// trackedConn counts an upstream connection and its bytes, and lets the
// cluster close it when its host goes away or the cluster drains.
type trackedConn struct {
	net.Conn
	c       *Cluster
	h       *Host
	closed  atomic.Bool
	onClose atomic.Pointer[func()] // run once when the connection closes
}

func (c *Cluster) track(raw net.Conn, h *Host) *trackedConn {
	tc := &trackedConn{Conn: raw, c: c, h: h}
	c.stats.cxActiveG().Inc()
	c.breaker0.conns.Add(1)
	if h != nil {
		h.cxActive.Add(1)
	}
	c.conns.add(tc)
	return tc
}

func (t *trackedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.c.stats.cxRxBytes().Add(uint64(n))
	}
	return n, err
}

func (t *trackedConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.c.stats.cxTxBytes().Add(uint64(n))
	}
	return n, err
}

func (t *trackedConn) Close() error {
	if t.closed.CompareAndSwap(false, true) {
		c := t.c
		c.stats.cxActiveG().Dec()
		c.stats.cxDestroy().Inc()
		c.breaker0.conns.Add(-1)
		if t.h != nil {
			t.h.cxActive.Add(-1)
		}
		c.conns.remove(t)
		if f := t.onClose.Load(); f != nil {
			(*f)()
		}
	}
	return t.Conn.Close()
}

// connSet is the registry of a cluster's open upstream connections.
type connSet struct {
	mu sync.Mutex
	m  map[*trackedConn]struct{}
}

func (s *connSet) add(t *trackedConn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*trackedConn]struct{}{}
	}
	s.m[t] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(t *trackedConn) {
	s.mu.Lock()
	delete(s.m, t)
	s.mu.Unlock()
}

// closeAll closes the connections to h, or all of them when h is nil.
func (s *connSet) closeAll(h *Host) {
	s.mu.Lock()
	var list []*trackedConn
	for t := range s.m {
		if h == nil || t.h == h {
			list = append(list, t)
		}
	}
	s.mu.Unlock()
	for _, t := range list {
		_ = t.Close()
	}
}
