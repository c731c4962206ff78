package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"

	"github.com/wasmesh/wasmesh/header"
)

// Response framing and bodies of the lean HTTP/1.1 client, with net/http's
// semantics (RFC 9112 section 6): HEAD, 1xx, 204 and 304 have no body;
// Transfer-Encoding chunked wins over Content-Length; without either the
// body runs to the end of the connection.

var (
	errH1BodyClosed = errors.New("read on a closed response body")
	errH1BodyBusy   = errors.New("concurrent reads of a response body")
)

// h1Resp is what a response allocates.
type h1Resp struct {
	resp http.Response
	body h1Body
	head h1Head
}

// newResponse builds the response from its head and sets up its body.
func (pc *h1Conn) newResponse(req *http.Request, r *h1Resp) (*http.Response, error) {
	hd := &r.head
	h := hd.header // nil when the head went to hd.fields
	resp := &r.resp
	*resp = http.Response{
		Status:     hd.status,
		StatusCode: hd.code,
		Proto:      hd.proto,
		ProtoMajor: hd.major,
		ProtoMinor: hd.minor,
		Header:     h,
		Request:    req,
		TLS:        pc.tlsState,
	}
	if cv, ok := hd.values("Connection", "connection"); ok {
		closeTok := hasToken(cv, "close")
		if hd.minor == 0 {
			resp.Close = closeTok || !hasToken(cv, "keep-alive")
		} else if closeTok {
			resp.Close = true
			hd.del("Connection", "connection")
		}
	} else if hd.minor == 0 {
		resp.Close = true
	}
	if hd.code == http.StatusSwitchingProtocols {
		if hd.fields != nil {
			// The tunnel's head goes back as an http.Header.
			h = responseHeaderOfFields(hd.fields)
			resp.Header = h
			hd.fields.Adopt(nil)
			hd.fields, hd.header = nil, h
		}
		// The connection now belongs to the caller: a two-way stream,
		// no longer bound to the request's context.
		pc.keepAlive = false
		if !pc.unwatch() {
			return nil, pc.ioErr(errH1BodyClosed)
		}
		resp.Body = &h1Tunnel{pc: pc}
		return resp, nil
	}

	chunked := false
	if te, ok := hd.values("Transfer-Encoding", "transfer-encoding"); ok {
		hd.del("Transfer-Encoding", "transfer-encoding")
		if hd.minor >= 1 {
			if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
				return nil, fmt.Errorf("unsupported transfer encoding %q", te)
			}
			chunked = true
		}
	}
	cl := int64(-1)
	if first, ok, err := hd.contentLength(); err != nil {
		return nil, err
	} else if ok {
		n, ok := parseContentLength(first)
		if !ok {
			return nil, fmt.Errorf("bad Content-Length %q", clip(first))
		}
		cl = n
	}
	bodyAllowed := !(hd.code/100 == 1 || hd.code == http.StatusNoContent || hd.code == http.StatusNotModified)
	head := req.Method == http.MethodHead
	length := cl
	switch {
	case head || !bodyAllowed:
		length = 0
	case chunked:
		hd.del("Content-Length", "content-length")
		length = -1
	}
	resp.ContentLength = length
	if head {
		resp.ContentLength = cl
	}
	if chunked {
		resp.TransferEncoding = []string{"chunked"}
		if tv, ok := hd.values("Trailer", "trailer"); ok {
			hd.del("Trailer", "trailer")
			resp.Trailer = http.Header{}
			for _, v := range tv {
				for _, k := range strings.Split(v, ",") {
					if k = trimOWS(k); k == "" {
						continue
					}
					k = http.CanonicalHeaderKey(k)
					switch k {
					case "Transfer-Encoding", "Trailer", "Content-Length":
						return nil, fmt.Errorf("bad trailer key %q", k)
					}
					resp.Trailer[k] = nil
				}
			}
		}
	}
	if length == -1 && !chunked && bodyAllowed {
		resp.Close = true // the body ends with the connection
	}
	if resp.Close {
		pc.keepAlive = false
	}
	switch {
	case chunked && !head && bodyAllowed:
		r.body = h1Body{pc: pc, resp: resp, kind: h1Chunked, cr: httputil.NewChunkedReader(pc.br)}
		resp.Body = &r.body
	case length > 0:
		r.body = h1Body{pc: pc, resp: resp, kind: h1Fixed, n: length}
		resp.Body = &r.body
	case length < 0 && resp.Close && !chunked:
		r.body = h1Body{pc: pc, resp: resp, kind: h1UntilClose}
		resp.Body = &r.body
	default:
		resp.Body = http.NoBody
		pc.release()
	}
	return resp, nil
}

// responseHeaderOfFields is the http.Header of a response head's fields.
func responseHeaderOfFields(f *header.Map) http.Header {
	return headerOf(f, func(k string) bool { return k != "" && k[0] != ':' })
}

// values returns a field's values, by its canonical name in the
// http.Header or its lower-case name in the fields.
func (hd *h1Head) values(canon, lower string) ([]string, bool) {
	if hd.fields == nil {
		v, ok := hd.header[canon]
		return v, ok
	}
	v := hd.fields.Values(lower)
	return v, len(v) > 0
}

func (hd *h1Head) del(canon, lower string) {
	if hd.fields == nil {
		delete(hd.header, canon)
		return
	}
	hd.fields.Del(lower)
}

// contentLength returns the Content-Length value (trimmed), after checking
// that repeated ones agree; repeats are dropped.
func (hd *h1Head) contentLength() (string, bool, error) {
	if hd.fields == nil {
		cls, ok := hd.header["Content-Length"]
		if !ok {
			return "", false, nil
		}
		first := trimOWS(cls[0])
		for _, v := range cls[1:] {
			if trimOWS(v) != first {
				return "", false, fmt.Errorf("conflicting Content-Length values %q", cls)
			}
		}
		if len(cls) > 1 {
			hd.header["Content-Length"] = cls[:1]
		}
		return first, true, nil
	}
	first, n := "", 0
	for _, f := range hd.fields.Fields() {
		if f.Key != "content-length" {
			continue
		}
		n++
		if n == 1 {
			first = trimOWS(f.Value)
		} else if trimOWS(f.Value) != first {
			return "", false, fmt.Errorf("conflicting Content-Length values %q", hd.fields.Values("content-length"))
		}
	}
	if n > 1 {
		hd.fields.Set("content-length", first)
	}
	return first, n > 0, nil
}

func parseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Kinds of response body.
const (
	h1Fixed      = iota // Content-Length
	h1Chunked           // Transfer-Encoding: chunked, then trailers
	h1UntilClose        // to the end of the connection
)

// States of a response body.
const (
	bOpen    int32 = iota
	bReading       // a Read is in progress
	bDone          // read to the end; the connection was released
	bFailed        // a read failed (err); the connection was closed
	bClosed        // Close came first; the connection was closed or released
)

// h1Body is a response body. The connection goes back to the pool when
// the body was read to its end; Close before that closes it (or, when the
// rest is already buffered, skips it and keeps the connection). Close may
// run concurrently with a Read, to abort it.
type h1Body struct {
	pc    *h1Conn
	resp  *http.Response
	kind  int
	n     int64     // h1Fixed: bytes left
	cr    io.Reader // h1Chunked
	state atomic.Int32
	err   error // set before state becomes bFailed
}

func (b *h1Body) Read(p []byte) (int, error) {
	if !b.state.CompareAndSwap(bOpen, bReading) {
		switch b.state.Load() {
		case bDone:
			return 0, io.EOF
		case bFailed:
			return 0, b.err
		case bReading:
			return 0, errH1BodyBusy
		}
		return 0, errH1BodyClosed
	}
	n, err := b.read(p)
	switch err {
	case nil:
		if !b.state.CompareAndSwap(bReading, bOpen) {
			return n, errH1BodyClosed
		}
		return n, nil
	case io.EOF:
		if b.state.CompareAndSwap(bReading, bDone) {
			b.pc.release()
		}
		return n, io.EOF
	}
	b.err = b.pc.ioErr(err)
	if b.state.CompareAndSwap(bReading, bFailed) {
		b.pc.fail()
	}
	return n, b.err
}

func (b *h1Body) read(p []byte) (int, error) {
	br := b.pc.br
	switch b.kind {
	case h1Fixed:
		if b.n == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err := br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case h1Chunked:
		n, err := b.cr.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
		}
		return n, err
	}
	return br.Read(p)
}

// readTrailer reads the trailer section after the last chunk into
// resp.Trailer, as net/http does.
func (b *h1Body) readTrailer() error {
	br := b.pc.br
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err != nil {
			if err == io.EOF || err == bufio.ErrBufferFull {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if total > maxH1HeadBytes {
			return errH1HeadTooLarge
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return nil
		}
		k, v, ok := strings.Cut(s, ":")
		key, kok := lowerKey(k)
		if !ok || !kok {
			return fmt.Errorf("%w: trailer %q", errH1MalformedHeader, clip(s))
		}
		key = header.Canonical(key)
		v = trimOWS(v)
		if !validFieldValue(v) {
			return fmt.Errorf("%w: trailer %q has an invalid value", errH1MalformedHeader, key)
		}
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		b.resp.Trailer[key] = append(b.resp.Trailer[key], v)
	}
}

func (b *h1Body) Close() error {
	for {
		switch b.state.Load() {
		case bOpen:
			if !b.state.CompareAndSwap(bOpen, bClosed) {
				continue
			}
			// The rest of a fixed-length body already in the buffer:
			// skip it and keep the connection.
			if b.kind == h1Fixed && b.n <= int64(b.pc.br.Buffered()) {
				_, _ = b.pc.br.Discard(int(b.n))
				b.n = 0
				b.pc.release()
				return nil
			}
			b.pc.fail()
			return nil
		case bReading:
			if !b.state.CompareAndSwap(bReading, bClosed) {
				continue
			}
			// The reader is blocked on the connection: closing it ends
			// the read, and the reader leaves the connection alone.
			b.pc.close()
			return nil
		default:
			return nil
		}
	}
}

// h1Tunnel is the body of a 101 Switching Protocols response: the raw
// connection, both ways, starting with what was read past the head.
type h1Tunnel struct{ pc *h1Conn }

func (t *h1Tunnel) Read(p []byte) (int, error)  { return t.pc.br.Read(p) }
func (t *h1Tunnel) Write(p []byte) (int, error) { return t.pc.conn.Write(p) }
func (t *h1Tunnel) Close() error {
	t.pc.close()
	return nil
}
