package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/wasmesh/wasmesh/header"
)

// Writing requests for the lean HTTP/1.1 client.

// h1SmallBody is the largest body of known length written with the head
// on the caller's goroutine; larger ones and those of unknown length
// stream from a goroutine.
const h1SmallBody = 64 << 10

// errH1BodyRead marks a failure to read the request body (the caller's
// side), as opposed to a failure to write it upstream.
var errH1BodyRead = errors.New("reading the request body")

// h1ReqBody is how a request's body goes on the wire.
type h1ReqBody struct {
	r       io.Reader // nil: no body
	n       int64     // length when known, -1: chunked
	trailer http.Header
}

// newH1ReqBody decides the framing as net/http does: a nil or NoBody body
// is empty; ContentLength > 0 is that length; otherwise the body is read
// once to tell an empty one from one of unknown length (sent chunked).
func newH1ReqBody(req *http.Request) (h1ReqBody, error) {
	b := req.Body
	switch {
	case b == nil || b == http.NoBody:
		return h1ReqBody{}, nil
	case req.ContentLength > 0:
		return h1ReqBody{r: b, n: req.ContentLength}, nil
	case req.ContentLength == 0:
		var one [1]byte
		n, err := b.Read(one[:])
		switch {
		case n == 0 && err == io.EOF:
			return h1ReqBody{}, nil
		case err != nil && err != io.EOF:
			return h1ReqBody{}, fmt.Errorf("%w: %w", errH1BodyRead, err)
		case n == 0:
			return h1ReqBody{r: b, n: -1, trailer: req.Trailer}, nil
		}
		return h1ReqBody{r: io.MultiReader(bytesReaderOf(one[:1]), b), n: -1, trailer: req.Trailer}, nil
	}
	return h1ReqBody{r: b, n: -1, trailer: req.Trailer}, nil
}

type bytesReader []byte

func (b *bytesReader) Read(p []byte) (int, error) {
	if len(*b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, *b)
	*b = (*b)[n:]
	return n, nil
}

func bytesReaderOf(p []byte) *bytesReader { b := bytesReader(p); return &b }

// async reports whether the body streams from its own goroutine.
func (rb *h1ReqBody) async() bool { return rb.r != nil && (rb.n < 0 || rb.n > h1SmallBody) }

// retryable reports whether a request that failed at stage on a reused
// connection may go again on a new one, with net/http's rules: nothing was
// answered, and either nothing of the body can have been processed (a
// write failed and the body is empty or can be replayed) or the request is
// replayable (no body, or GetBody) and idempotent.
func (rb *h1ReqBody) retryable(req *http.Request, fields *header.Map, stage int) bool {
	switch stage {
	case failWrite:
		return rb.r == nil || req.GetBody != nil
	case failReadEmpty:
		if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
			return false
		}
		switch req.Method {
		case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
			return true
		}
		if fields != nil {
			_, a := fields.Get("idempotency-key")
			_, b := fields.Get("x-idempotency-key")
			return a || b
		}
		_, a := req.Header["Idempotency-Key"]
		_, b := req.Header["X-Idempotency-Key"]
		return a || b
	}
	return false
}

// rewind prepares the body for a second attempt.
func (rb h1ReqBody) rewind(req *http.Request) (h1ReqBody, error) {
	if rb.r == nil {
		return rb, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return rb, err
	}
	r2 := *req
	r2.Body = body
	return newH1ReqBody(&r2)
}

// asksToClose reports whether the request's Connection header says close.
func asksToClose(req *http.Request, fields *header.Map) bool {
	if fields == nil {
		return hasToken(req.Header["Connection"], "close")
	}
	for _, f := range fields.Fields() {
		if f.Key == "connection" && hasToken([]string{f.Value}, "close") {
			return true
		}
	}
	return false
}

// writeH1Head writes the request line and headers: req.Header's, or the
// fields when not nil (lower-case, in order, as Envoy's codec writes
// them).
func writeH1Head(w *bufio.Writer, req *http.Request, fields *header.Map, rb *h1ReqBody) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		return fmt.Errorf("invalid method %q", clip(method))
	}
	u := req.URL
	w.WriteString(method)
	w.WriteByte(' ')
	if u.Opaque != "" {
		w.WriteString(u.RequestURI())
	} else {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		w.WriteString(p)
		if u.ForceQuery || u.RawQuery != "" {
			w.WriteByte('?')
			w.WriteString(u.RawQuery)
		}
	}
	lower := fields != nil
	if lower {
		w.WriteString(" HTTP/1.1\r\nhost: ")
	} else {
		w.WriteString(" HTTP/1.1\r\nHost: ")
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !validHostValue(host) {
		return fmt.Errorf("invalid Host %q", clip(host))
	}
	w.WriteString(host)
	w.WriteString("\r\n")
	if lower {
		if err := writeH1Fields(w, fields); err != nil {
			return err
		}
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !validToken(k) {
			return fmt.Errorf("invalid header field name %q", clip(k))
		}
		for _, v := range vv {
			if !validFieldValue(v) {
				return fmt.Errorf("invalid header field value for %q", k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(trimOWS(v))
			w.WriteString("\r\n")
		}
	}
	switch {
	case rb.r != nil && rb.n >= 0:
		var num [20]byte
		if lower {
			w.WriteString("content-length: ")
		} else {
			w.WriteString("Content-Length: ")
		}
		w.Write(strconv.AppendInt(num[:0], rb.n, 10))
		w.WriteString("\r\n")
	case rb.r != nil:
		if lower {
			w.WriteString("transfer-encoding: chunked\r\n")
		} else {
			w.WriteString("Transfer-Encoding: chunked\r\n")
		}
		if len(rb.trailer) > 0 {
			w.WriteString("Trailer: ")
			first := true
			for k := range rb.trailer {
				if !validToken(k) {
					return fmt.Errorf("invalid trailer name %q", clip(k))
				}
				if !first {
					w.WriteByte(',')
				}
				first = false
				w.WriteString(k)
			}
			w.WriteString("\r\n")
		}
	case method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
		// Many servers expect a length for these methods.
		if lower {
			w.WriteString("content-length: 0\r\n")
		} else {
			w.WriteString("Content-Length: 0\r\n")
		}
	}
	if req.Close && !asksToClose(req, fields) {
		if lower {
			w.WriteString("connection: close\r\n")
		} else {
			w.WriteString("Connection: close\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// writeH1Fields writes a request's fields as header lines, skipping
// pseudo-headers, host, the framing fields and trailer (written by
// writeH1Head).
func writeH1Fields(w *bufio.Writer, fields *header.Map) error {
	for _, f := range fields.Fields() {
		k := f.Key
		if !forwardedField(k) || k == "trailer" {
			continue
		}
		if !validToken(k) {
			return fmt.Errorf("invalid header field name %q", clip(k))
		}
		if !validFieldValue(f.Value) {
			return fmt.Errorf("invalid header field value for %q", k)
		}
		w.WriteString(k)
		w.WriteString(": ")
		w.WriteString(trimOWS(f.Value))
		w.WriteString("\r\n")
	}
	return nil
}

// writeSmall writes a body of known small length behind the head, in the
// same buffer (one flush for both when they fit).
func (rb *h1ReqBody) writeSmall(w *bufio.Writer) error {
	if rb.r == nil {
		return nil
	}
	n, err := io.CopyN(w, readerOnly{rb.r}, rb.n)
	if err != nil {
		if re, ok := err.(bodyReadError); ok {
			return fmt.Errorf("%w: %w", errH1BodyRead, re.err)
		}
		if err == io.EOF {
			return fmt.Errorf("%w: body ended after %d of %d bytes", errH1BodyRead, n, rb.n)
		}
		return err
	}
	return nil
}

// writeStream writes a large or unknown-length body, flushing as it goes
// so a streaming body is not held back.
func (rb *h1ReqBody) writeStream(w *bufio.Writer) error {
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		want := len(buf)
		if rb.n >= 0 {
			want = int(min(int64(want), rb.n-sent))
			if want == 0 {
				return w.Flush()
			}
		}
		n, rerr := rb.r.Read(buf[:want])
		if n > 0 {
			sent += int64(n)
			if rb.n < 0 {
				var hx [20]byte
				w.Write(strconv.AppendUint(hx[:0], uint64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write(buf[:n])
			if rb.n < 0 {
				w.WriteString("\r\n")
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			if rb.n >= 0 {
				if sent < rb.n {
					return fmt.Errorf("%w: body ended after %d of %d bytes", errH1BodyRead, sent, rb.n)
				}
				return w.Flush()
			}
			w.WriteString("0\r\n")
			for k, vv := range rb.trailer {
				for _, v := range vv {
					if !validToken(k) || !validFieldValue(v) {
						return fmt.Errorf("invalid trailer %q", clip(k))
					}
					w.WriteString(k)
					w.WriteString(": ")
					w.WriteString(v)
					w.WriteString("\r\n")
				}
			}
			w.WriteString("\r\n")
			return w.Flush()
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", errH1BodyRead, rerr)
		}
	}
}

// readerOnly hides a reader's WriterTo (so io.CopyN reads through our
// wrapper) and marks its errors as the body's.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyReadError{err}
	}
	return n, err
}

type bodyReadError struct{ err error }

func (e bodyReadError) Error() string { return e.err.Error() }
func (e bodyReadError) Unwrap() error { return e.err }

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// validHostValue rejects what would break the request head: controls,
// spaces and an empty host.
func validHostValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
