package hcm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/reqtarget"
)

// h1Error is a malformed request: the connection answers status with
// details as the body and closes.
type h1Error struct {
	status  int
	details string
}

func (e *h1Error) Error() string { return fmt.Sprintf("http1: %d %s", e.status, e.details) }

var (
	errHeadersTooLarge = &h1Error{http.StatusRequestHeaderFieldsTooLarge, "http1.headers_too_large"}
	errTooManyHeaders  = &h1Error{http.StatusRequestHeaderFieldsTooLarge, "http1.too_many_headers"}
)

func badRequest(details string) *h1Error {
	return &h1Error{http.StatusBadRequest, details}
}

// h1Head is a parsed request head.
type h1Head struct {
	method, target, proto string
	major, minor          int
	header                http.Header
	host                  string
	hasHost               bool
	// fields are the header fields in order with lower-case names (Host
	// excluded: it becomes :authority); header keeps only the fields the
	// codec and the upgrade logic read (framing, Connection, Upgrade,
	// Expect), in net/http's canonical form.
	fields    *header.Map
	fieldsMap header.Map // fields points here
	// fieldBytes is the size of names and values, as Envoy counts it
	// against max_request_headers_kb.
	fieldBytes int
}

// readLine reads one line of the head (without its line end), adding its
// length to *n and failing once *n passes limit. A line longer than the
// reader's buffer is assembled in a copy.
func readLine(br *bufio.Reader, n *int, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if *n+len(long) > limit {
				return nil, errHeadersTooLarge
			}
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	*n += len(line)
	if *n > limit {
		return nil, errHeadersTooLarge
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// readHead reads a request line and header fields. limit bounds the head's
// bytes, maxHeaders the number of fields (0: no bound). An I/O error before
// the first byte is returned as is; afterwards io.EOF becomes
// io.ErrUnexpectedEOF.
func readHead(br *bufio.Reader, limit, maxHeaders int) (*h1Head, error) {
	n := 0
	var line []byte
	var err error
	// Robustness (RFC 9112 2.2): empty lines before a request line are
	// ignored.
	for {
		line, err = readLine(br, &n, limit)
		if err != nil {
			return nil, err
		}
		if len(line) > 0 {
			break
		}
	}
	h := &h1Head{}
	if err := h.parseRequestLine(line); err != nil {
		return nil, err
	}
	h.header = make(http.Header, 2)
	// Pseudo-headers first; the codec fills in :path, :authority and
	// :scheme once the target is parsed.
	h.fields = &h.fieldsMap
	h.fields.Adopt(append(make([]header.Field, 0, 20),
		header.Field{Key: ":method", Value: h.method}, header.Field{Key: ":path"},
		header.Field{Key: ":authority"}, header.Field{Key: ":scheme"}))
	count := 0
	for {
		line, err = readLine(br, &n, limit)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, badRequest("http1.invalid_characters")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, badRequest("http1.codec_error")
		}
		name := line[:colon]
		for _, c := range name {
			if !validHeaderNameByte(c) {
				return nil, badRequest("http1.invalid_characters")
			}
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, badRequest("http1.invalid_characters")
			}
		}
		count++
		if maxHeaders > 0 && count > maxHeaders {
			return nil, errTooManyHeaders
		}
		lower := lowerName(name)
		h.fieldBytes += len(name) + len(value)
		if lower == "host" {
			if h.hasHost {
				return nil, badRequest("http1.multiple_host_headers")
			}
			h.hasHost = true
			h.host = string(value)
			continue
		}
		v := string(value)
		if !hopByHop(lower) {
			h.fields.AddLower(lower, v)
		}
		if key := codecKey(lower); key != "" {
			h.header[key] = append(h.header[key], v)
		}
	}
	return h, nil
}

func (h *h1Head) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return badRequest("http1.codec_error")
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return badRequest("http1.codec_error")
	}
	method, target, proto := line[:sp1], rest[:sp2], rest[sp2+1:]
	for _, c := range method {
		if !validHeaderNameByte(c) {
			return badRequest("http1.codec_error")
		}
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return badRequest("http1.codec_error")
		}
	}
	switch string(proto) {
	case "HTTP/1.1":
		h.proto, h.major, h.minor = "HTTP/1.1", 1, 1
	case "HTTP/1.0":
		h.proto, h.major, h.minor = "HTTP/1.0", 1, 0
	default:
		return badRequest("http1.codec_error")
	}
	h.method = internMethod(method)
	h.target = string(target)
	return nil
}

func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return http.MethodGet
	case "POST":
		return http.MethodPost
	case "HEAD":
		return http.MethodHead
	case "PUT":
		return http.MethodPut
	case "DELETE":
		return http.MethodDelete
	case "OPTIONS":
		return http.MethodOptions
	case "PATCH":
		return http.MethodPatch
	case "CONNECT":
		return http.MethodConnect
	}
	return string(b)
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validHeaderNameByte reports whether c is a token character (RFC 9110).
func validHeaderNameByte(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// codecKey is the canonical name of the fields the codec and the upgrade
// logic read from http.Request.Header, or "".
func codecKey(lower string) string {
	switch lower {
	case "content-length":
		return "Content-Length"
	case "transfer-encoding":
		return "Transfer-Encoding"
	case "connection":
		return "Connection"
	case "upgrade":
		return "Upgrade"
	case "expect":
		return "Expect"
	}
	return ""
}

// lowerName is a header name in lower case, without an allocation for
// common names.
func lowerName(name []byte) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return strings.ToLower(string(name))
	}
	b := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return header.Intern(b)
}

// newRequestFromHead builds the *http.Request the connection manager
// serves. The body is set by the caller.
func newRequestFromHead(ctx context.Context, h *h1Head) (*http.Request, error) {
	// A template on the stack: WithContext, at the end, makes the one
	// copy that escapes (net/http has no other way to set the context).
	r := &http.Request{
		Method:     h.method,
		Proto:      h.proto,
		ProtoMajor: h.major,
		ProtoMinor: h.minor,
		Header:     h.header,
		RequestURI: h.target,
		Host:       h.host,
	}
	var u *url.URL
	var err error
	switch {
	case h.method == http.MethodConnect && !strings.HasPrefix(h.target, "/"):
		u = &url.URL{Host: h.target}
	case h.target == "*":
		u = &url.URL{Path: "*"}
	default:
		u, err = reqtarget.Parse(h.target)
		if err != nil {
			return nil, badRequest("http1.invalid_url")
		}
	}
	r.URL = u
	if u.Host != "" {
		// Absolute form: the target's authority wins over Host.
		r.Host = u.Host
	}
	if !h.hasHost && u.Host == "" && h.minor == 1 {
		return nil, badRequest("missing_host_header")
	}
	h.fields.Set(":path", u.RequestURI())
	h.fields.Set(":authority", r.Host)
	return r.WithContext(ctx), nil
}

// bodyFraming reads Content-Length and Transfer-Encoding: the body's
// length, -1 for chunked; 0 without a body.
func bodyFraming(hdr http.Header) (int64, bool, error) {
	te := hdr["Transfer-Encoding"]
	cl := hdr["Content-Length"]
	if len(te) > 0 {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return 0, false, &h1Error{http.StatusNotImplemented, "http1.invalid_transfer_encoding"}
		}
		if len(cl) > 0 {
			// Request smuggling guard (RFC 9112 6.3): both framings.
			return 0, false, badRequest("http1.content_length_and_chunked_not_allowed")
		}
		return -1, true, nil
	}
	if len(cl) == 0 {
		return 0, false, nil
	}
	v := strings.TrimSpace(cl[0])
	for _, o := range cl[1:] {
		if strings.TrimSpace(o) != v {
			return 0, false, badRequest("http1.content_length_not_allowed")
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || v == "" || v[0] == '+' {
		return 0, false, badRequest("http1.invalid_content_length")
	}
	return n, false, nil
}

// h1Body is a request body read from the connection: Content-Length or
// chunked framing, with trailers into req.Trailer. It is read by one
// goroutine at a time (the handler's, or the upstream transport's); the
// lock guards its state, not the reads. After the handler returns it is
// closed and reads fail.
type h1Body struct {
	c       *h1conn
	req     *http.Request
	chunked bool
	remain  int64 // bytes left: of the body (length) or of the chunk
	inChunk bool

	mu          sync.Mutex
	eof         bool
	err         error
	closed      bool
	reading     bool
	interrupted bool
	continue_   bool // a 100 Continue is owed on the first read
}

var errBodyClosed = errors.New("http: invalid Read on closed Body")

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return 0, errBodyClosed
	case b.err != nil:
		b.mu.Unlock()
		return 0, b.err
	case b.eof:
		b.mu.Unlock()
		return 0, io.EOF
	}
	if b.continue_ {
		b.continue_ = false
		b.c.writeContinue()
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.read(p)
	b.mu.Lock()
	b.reading = false
	eof := errors.Is(err, io.EOF)
	if b.interrupted {
		err = errBodyClosed
	} else if err != nil && !eof {
		b.err = err
	}
	b.eof = b.eof || eof
	b.mu.Unlock()
	if eof {
		b.c.bodyDone(b)
	}
	return n, err
}

func (b *h1Body) read(p []byte) (int, error) {
	if b.chunked {
		return b.readChunked(p)
	}
	return b.readLength(p)
}

func (b *h1Body) readLength(p []byte) (int, error) {
	if b.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		return n, io.EOF
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	return n, nil
}

// maxChunkLine bounds a chunk-size line (with extensions).
const maxChunkLine = 4096

func (b *h1Body) readChunked(p []byte) (int, error) {
	br := b.c.br
	for !b.inChunk {
		line, err := readChunkLine(br)
		if err != nil {
			return 0, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = trimOWS(line)
		size, err := strconv.ParseUint(string(line), 16, 63)
		if err != nil || len(line) == 0 {
			return 0, badRequest("http1.invalid_chunk_size")
		}
		if size == 0 {
			if err := b.readTrailers(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		b.remain, b.inChunk = int64(size), true
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.inChunk = false
		if crlfErr := readCRLF(br); crlfErr != nil {
			return n, crlfErr
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	return n, nil
}

func readChunkLine(br *bufio.Reader) ([]byte, error) {
	n := 0
	line, err := readLine(br, &n, maxChunkLine)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		if err == errHeadersTooLarge {
			return nil, badRequest("http1.invalid_chunk_size")
		}
		return nil, err
	}
	return line, nil
}

func readCRLF(br *bufio.Reader) error {
	c, err := br.ReadByte()
	if err == nil && c == '\r' {
		c, err = br.ReadByte()
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if c != '\n' {
		return badRequest("http1.invalid_chunk")
	}
	return nil
}

// readTrailers reads the trailer section after the last chunk.
func (b *h1Body) readTrailers() error {
	n := 0
	limit := b.c.headerLimit()
	for {
		line, err := readLine(b.c.br, &n, limit)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("http1.codec_error")
		}
		key := header.Canonical(lowerName(line[:colon]))
		switch key {
		case "Content-Length", "Transfer-Encoding", "Host", "Trailer":
			continue
		}
		if b.req.Trailer == nil {
			b.req.Trailer = http.Header{}
		}
		b.req.Trailer[key] = append(b.req.Trailer[key], string(trimOWS(line[colon+1:])))
	}
}

// Close ends the body for the handler. A read blocked on the connection
// is interrupted; the connection then carries no further request.
func (b *h1Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.reading && !b.interrupted {
		b.interrupted = true
		_ = b.c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

// finish ends the body once the handler returned: it reports whether the
// connection can read the next request, draining up to max bytes of an
// unread rest.
func (b *h1Body) finish(max int64) bool {
	b.mu.Lock()
	b.closed = true
	if b.reading && !b.interrupted {
		// The upstream transport still reads it: interrupt, and give up
		// the connection.
		b.interrupted = true
		_ = b.c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	eof, ok := b.eof, !b.interrupted && !b.reading && b.err == nil && !b.continue_
	b.mu.Unlock()
	if eof {
		return !b.interrupted
	}
	if !ok || max <= 0 {
		return false
	}
	// No reader is left (closed, not reading): the rest is read here.
	var buf [4096]byte
	var total int64
	for total <= max {
		n, err := b.read(buf[:])
		total += int64(n)
		if errors.Is(err, io.EOF) {
			b.mu.Lock()
			b.eof = true
			b.mu.Unlock()
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
