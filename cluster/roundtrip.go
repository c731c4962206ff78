package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/wasmesh/wasmesh/header"
)

// RoundTrip sends req to a host of the cluster and returns the response
// headers, with the body still streaming, and the host it went to.
//
// The host is picked by the cluster's load balancer (lbc supplies the hash,
// the original destination, the downstream protocol and hosts to avoid).
// req's URL scheme and host are set for the chosen host on a shallow copy;
// req.Host (the :authority) is left as the caller set it. The circuit
// breakers apply; the response status, or the failure, is recorded for the
// outlier detector and counted in the cluster's stats (upstream_rq_total,
// upstream_rq_<code>, upstream_rq_<class>xx, ...), so the router must not
// count those again.
//
// The caller must read the response body to EOF or Close it: the request
// holds its circuit breaker slots and counts as active until then.
//
// Errors are *UpstreamError matching ErrNoHealthyUpstream (UH), ErrOverflow
// (UO), ErrConnectFailure (UF) or ErrUpstreamReset (UC); a context deadline
// that ends the request is in the chain as context.DeadlineExceeded (UT).
func (c *Cluster) RoundTrip(req *http.Request, lbc LoadBalancerContext) (*http.Response, *Host, error) {
	if !c.traffic.Load() {
		c.traffic.Store(true)
	}
	if lbc.Fields != nil && req.Header != nil {
		lbc.Fields = nil
	}
	if lbc.Fields != nil && c.needsHTTPHeader(req, &lbc) {
		r2 := *req
		r2.Header = HeaderOfFields(lbc.Fields)
		req, lbc.Fields = &r2, nil
	}
	h := c.pick(&lbc, req)
	if h == nil {
		c.stats.cxNoneHealthy().Inc()
		return nil, nil, &UpstreamError{Cluster: c.name, Kind: ErrNoHealthyUpstream}
	}
	b := c.breaker(&lbc)
	if !b.acquireRequest() {
		c.stats.rqPendingOverflow().Inc()
		return nil, h, &UpstreamError{Cluster: c.name, Host: h, Kind: ErrOverflow, Err: &OverflowError{Resource: "max_requests"}}
	}
	pool := c.tr.forRequest(req, &lbc)
	slot := pool != poolH2
	if slot {
		if err := b.acquireSlot(req.Context()); err != nil {
			b.releaseRequest()
			var oe *OverflowError
			if errors.As(err, &oe) {
				c.stats.rqPendingOverflow().Inc()
				return nil, h, &UpstreamError{Cluster: c.name, Host: h, Kind: ErrOverflow, Err: err}
			}
			return nil, h, &UpstreamError{Cluster: c.name, Host: h, Kind: ErrUpstreamReset, Err: err}
		}
	}
	c.stats.rqTotal().Inc()
	c.stats.rqActive().Inc()
	h.rqTotal.Add(1)
	h.rqActive.Add(1)
	c.active.Add(1)
	if c.origDst != nil {
		h.touch(c.m.opts.now())
	}

	// One allocation for the request copy, its URL and the completion
	// bookkeeping together.
	st := &rtState{req: *req, url: *req.URL, body: body{done: completion{c: c, h: h, b: b, slot: slot}}}
	out, done := &st.req, &st.body.done
	st.url.Scheme, st.url.Host = c.tr.scheme, h.urlHost()
	out.URL = &st.url
	if lbc.AutoHostRewrite {
		if hn := h.Hostname(); hn != "" {
			out.Host = hn
		}
	}
	if out.Host == "" {
		out.Host = req.URL.Host
	}
	var resp *http.Response
	var err error
	switch pool {
	case poolH1:
		resp, err = c.tr.h1Pool().roundTrip(out, lbc.Fields, lbc.Response, h)
	case poolALPN:
		resp, err = c.tr.alpn.RoundTrip(out)
	default:
		resp, err = c.tr.h2.RoundTrip(out)
	}
	if err != nil {
		done.finish()
		return nil, h, c.failed(req.Context(), h, err)
	}
	status := resp.StatusCode
	c.stats.code(status)
	if status >= 500 {
		h.rqError.Add(1)
	} else {
		h.rqSuccess.Add(1)
	}
	if c.outlier != nil {
		c.outlier.reportConnectOK(h)
		c.outlier.reportCode(h, status)
	}
	switch {
	case resp.Body == nil || resp.Body == http.NoBody:
		done.finish()
	case status == http.StatusSwitchingProtocols:
		if rw, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = &upgradeBody{rw: rw, done: done}
			break
		}
		st.body.rc = resp.Body
		resp.Body = &st.body
	default:
		st.body.rc = resp.Body
		resp.Body = &st.body
	}
	return resp, h, nil
}

// needsHTTPHeader reports whether a request given as Fields needs its
// http.Header: for net/http's pools, and for an ORIGINAL_DST cluster that
// reads a header.
func (c *Cluster) needsHTTPHeader(req *http.Request, lbc *LoadBalancerContext) bool {
	if c.origDst != nil && c.origDst.cfg.useHeader {
		return true
	}
	return c.tr.forRequest(req, lbc) != poolH1
}

// HeaderOfFields is the http.Header of a request's fields: every field but
// pseudo-headers, host and the framing fields, under its canonical name,
// in order.
func HeaderOfFields(f *header.Map) http.Header { return headerOf(f, forwardedField) }

// headerOf is the http.Header of the fields keep accepts, under their
// canonical names, in order.
func headerOf(f *header.Map, keep func(string) bool) http.Header {
	fields := f.Fields()
	n := 0
	for _, fl := range fields {
		if keep(fl.Key) {
			n++
		}
	}
	hdr := make(http.Header, n)
	// One array holds every key's first value; a repeated key's slice
	// grows out of it (capacity 1).
	vals := make([]string, n)
	i := 0
	for _, fl := range fields {
		if !keep(fl.Key) {
			continue
		}
		k := header.Canonical(fl.Key)
		if vs, ok := hdr[k]; ok {
			hdr[k] = append(vs, fl.Value)
			continue
		}
		vals[i] = fl.Value
		hdr[k] = vals[i : i+1 : i+1]
		i++
	}
	return hdr
}

// forwardedField reports whether a request field goes upstream as a header
// line (pseudo-headers, host and framing are the request's own).
func forwardedField(k string) bool {
	return k != "" && k[0] != ':' && k != "host" && k != "content-length" && k != "transfer-encoding"
}

// rtState is what one RoundTrip allocates.
type rtState struct {
	req  http.Request
	url  url.URL
	body body
}

// failed classifies a transport error, reports it to the outlier detector
// and wraps it.
func (c *Cluster) failed(ctx context.Context, h *Host, err error) error {
	h.rqError.Add(1)
	var de *dialError
	switch {
	case errors.As(err, &de):
		if c.outlier != nil {
			if de.timeout {
				c.outlier.reportLocal(h, localTimeout)
			} else {
				c.outlier.reportLocal(h, localConnectFailed)
			}
		}
		return &UpstreamError{Cluster: c.name, Host: h, Kind: ErrConnectFailure, Err: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.rqTimeout.Add(1)
		c.stats.rqTimeout().Inc()
		if c.outlier != nil {
			c.outlier.reportLocal(h, localTimeout)
		}
		return &UpstreamError{Cluster: c.name, Host: h, Kind: ErrUpstreamReset, Err: context.DeadlineExceeded}
	case errors.Is(ctx.Err(), context.Canceled):
		// The downstream went away; not the host's fault.
		return &UpstreamError{Cluster: c.name, Host: h, Kind: ErrUpstreamReset, Err: context.Canceled}
	}
	if c.outlier != nil {
		c.outlier.reportLocal(h, localRequestFailed)
	}
	return &UpstreamError{Cluster: c.name, Host: h, Kind: ErrUpstreamReset, Err: err}
}

// completion releases what a request holds, exactly once.
type completion struct {
	c    *Cluster
	h    *Host
	b    *breaker
	slot bool
	done atomic.Bool
}

func (d *completion) finish() {
	if !d.done.CompareAndSwap(false, true) {
		return
	}
	c, h := d.c, d.h
	if d.slot {
		d.b.releaseSlot()
	}
	d.b.releaseRequest()
	c.stats.rqActive().Dec()
	c.stats.rqCompleted().Inc()
	if h.rqActive.Add(-1) == 0 && h.removed.Load() {
		c.conns.closeAll(h)
	}
	if c.active.Add(-1) == 0 && c.closed.Load() {
		c.tr.closeIdle()
		c.conns.closeAll(nil)
	}
}

// body is a response body that releases the request when it ends.
type body struct {
	rc   io.ReadCloser
	done completion
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.done.finish()
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.done.finish()
	return err
}

// upgradeBody is the two-way stream of a 101 response (WebSocket).
type upgradeBody struct {
	rw   io.ReadWriteCloser
	done *completion
}

func (b *upgradeBody) Read(p []byte) (int, error)  { return b.rw.Read(p) }
func (b *upgradeBody) Write(p []byte) (int, error) { return b.rw.Write(p) }
func (b *upgradeBody) Close() error {
	err := b.rw.Close()
	b.done.finish()
	return err
}

// Dial opens a connection to a host of the cluster for the TCP proxy:
// picked by the load balancer, through the cluster's transport socket
// (TLS when configured), within connect_timeout, checked against
// max_connections (ErrOverflow). Connect failures match ErrConnectFailure
// and go to the outlier detector. The connection counts in the cluster's
// upstream_cx_* stats until closed.
func (c *Cluster) Dial(ctx context.Context, lbc LoadBalancerContext) (net.Conn, *Host, error) {
	if !c.traffic.Load() {
		c.traffic.Store(true)
	}
	h := c.pick(&lbc, nil)
	if h == nil {
		c.stats.cxNoneHealthy().Inc()
		return nil, nil, &UpstreamError{Cluster: c.name, Kind: ErrNoHealthyUpstream}
	}
	b := c.breaker(&lbc)
	if !b.acquireConn(c.breaker0.conns.Load()) {
		c.stats.cxOverflow().Inc()
		return nil, h, &UpstreamError{Cluster: c.name, Host: h, Kind: ErrOverflow, Err: &OverflowError{Resource: "max_connections"}}
	}
	if c.origDst != nil {
		h.touch(c.m.opts.now())
	}
	conn, err := c.dial(ctx, h, h.network, h.Address(), c.tcpTLS())
	if err != nil {
		var de *dialError
		if c.outlier != nil && errors.As(err, &de) {
			if de.timeout {
				c.outlier.reportLocal(h, localTimeout)
			} else {
				c.outlier.reportLocal(h, localConnectFailed)
			}
		}
		return nil, h, &UpstreamError{Cluster: c.name, Host: h, Kind: ErrConnectFailure, Err: err}
	}
	if c.outlier != nil {
		c.outlier.reportConnectOK(h)
		c.outlier.reportLocal(h, localConnectSuccessFinal)
	}
	return conn, h, nil
}

func (c *Cluster) tcpTLS() *tls.Config {
	if c.cfg.tls == nil {
		return nil
	}
	return c.cfg.tls.config(nil)
}
