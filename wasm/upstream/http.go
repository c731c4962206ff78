package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/wasm"
)

// hopByHop are request headers a callout never forwards: they describe one
// connection, and HTTP/2 forbids them.
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"transfer-encoding": true,
	"upgrade":           true,
	"te":                true,
	"host":              true, // :authority is the host
	"content-length":    true, // from the body
}

// HTTPCall sends req to the cluster on a goroutine of its own and calls done
// with the buffered response. An unknown cluster or a request that cannot
// be built (bad method or path) fails at once.
func (s *Static) HTTPCall(ctx context.Context, clusterName string, req *wasm.HTTPCallRequest, timeout time.Duration, done func(*wasm.HTTPCallResponse, error)) (func(), error) {
	c, err := s.lookup(clusterName)
	if err != nil {
		return nil, err
	}
	if !s.begin() {
		return nil, ErrClosed
	}
	cctx, cancel := s.callContext(ctx, timeout)
	hreq, err := c.newRequest(cctx, req)
	if err != nil {
		cancel()
		s.calls.Done()
		return nil, err
	}
	go func() {
		defer s.calls.Done()
		defer cancel()
		resp, err := s.roundTrip(c, hreq)
		if err != nil {
			s.log.Debug("http callout failed", zap.String("cluster", c.name), zap.Error(err))
		}
		done(resp, err)
	}()
	return cancel, nil
}

// newRequest turns a callout request into an *http.Request for the cluster.
func (c *cluster) newRequest(ctx context.Context, req *wasm.HTTPCallRequest) (*http.Request, error) {
	// The cluster decides the scheme; :scheme is not forwarded.
	var method, path, authority string
	hdr := http.Header{}
	for _, f := range req.Headers {
		switch f.Key {
		case ":method":
			method = f.Value
		case ":path":
			path = f.Value
		case ":authority":
			authority = f.Value
		default:
			if strings.HasPrefix(f.Key, ":") || hopByHop[f.Key] {
				continue
			}
			hdr[http.CanonicalHeaderKey(f.Key)] = append(hdr[http.CanonicalHeaderKey(f.Key)], f.Value)
		}
	}
	if path == "" {
		return nil, fmt.Errorf("upstream: cluster %q: empty :path", c.name)
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf("upstream: cluster %q: bad :path %q: %w", c.name, path, err)
	}
	u.Scheme, u.Host = c.scheme, c.Address
	if u.Host == "" {
		// A data-plane cluster picks the host itself.
		u.Host = "cluster.invalid"
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("upstream: cluster %q: %w", c.name, err)
	}
	hreq.Header = hdr
	hreq.Host = authority
	if len(req.Body) > 0 || len(req.Trailers) > 0 {
		body := req.Body
		hreq.Body = io.NopCloser(bytes.NewReader(body))
		hreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		hreq.ContentLength = int64(len(body))
	}
	if len(req.Trailers) > 0 {
		// Trailers need a body of unknown length: chunked in HTTP/1.1.
		hreq.ContentLength = -1
		hreq.Trailer = http.Header{}
		for _, f := range req.Trailers {
			k := http.CanonicalHeaderKey(f.Key)
			hreq.Trailer[k] = append(hreq.Trailer[k], f.Value)
		}
	}
	return hreq, nil
}

// roundTrip sends hreq and buffers the response.
func (s *Static) roundTrip(c *cluster, hreq *http.Request) (*wasm.HTTPCallResponse, error) {
	rt := http.RoundTripper(c.transport)
	if c.RoundTripper != nil {
		rt = c.RoundTripper
	}
	resp, err := rt.RoundTrip(hreq)
	if err != nil {
		return nil, fmt.Errorf("upstream: cluster %q: %w", c.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("upstream: cluster %q: read response body: %w", c.name, err)
	}
	if int64(len(body)) > s.maxBody {
		return nil, fmt.Errorf("upstream: cluster %q: %w (over %d bytes)", c.name, ErrResponseTooLarge, s.maxBody)
	}
	out := &wasm.HTTPCallResponse{
		Headers:  append([]wasm.Field{{Key: ":status", Value: strconv.Itoa(resp.StatusCode)}}, fields(resp.Header)...),
		Body:     body,
		Trailers: fields(resp.Trailer),
	}
	return out, nil
}

// fields converts a net/http header to lower-case fields, keys sorted and
// values in order. Announced trailers that never came (no values) are left
// out.
func fields(h http.Header) []wasm.Field {
	keys := make([]string, 0, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []wasm.Field
	for _, k := range keys {
		lk := header.Lower(k)
		for _, v := range h[k] {
			out = append(out, wasm.Field{Key: lk, Value: v})
		}
	}
	return out
}
