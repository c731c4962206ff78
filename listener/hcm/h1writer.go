package hcm

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/header"
)

// h1Writer is the http.ResponseWriter of one HTTP/1.1 request served by
// the connection manager's own codec. The response head is held until
// the first flush or the end of the handler, so a short body of unknown
// length still goes out with a Content-Length and in one write.
type h1Writer struct {
	c      *h1conn
	req    *http.Request
	header http.Header
	// hmap, when set, holds the response head instead of header (the
	// connection manager's header map, written as it is: lower-case names,
	// in order, as Envoy's HTTP/1 codec does).
	hmap *header.Map
	// reqFields are the request's headers as the connection manager
	// wants them (pseudo-headers first, hop-by-hop fields dropped), built
	// by the codec; reqBytes counts them against max_request_headers_kb.
	reqFields *header.Map
	reqBytes  int

	status        int
	wroteHeader   bool
	headerFlushed bool
	cl            int64 // declared or computed Content-Length; -1 unknown
	chunked       bool
	noBody        bool
	closeAfter    bool
	hijacked      bool
	written       int64
	pending       []byte
	trailers      []string
	discard       bool
	err           error
}

// maxHeldBody is how much body of unknown length is held back to send a
// Content-Length instead of chunks.
const maxHeldBody = 4096

var errHijacked = errors.New("http: connection has been hijacked")

func (w *h1Writer) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *h1Writer) requestFields() (*header.Map, int) { return w.reqFields, w.reqBytes }

// idleClock is the connection's: its requests come one at a time.
func (w *h1Writer) idleClock() streamIdleTimer {
	if w.c.streamIdle == nil {
		w.c.streamIdle = &idleClock{}
	}
	return w.c.streamIdle
}

// WriteHeaderMap starts the response with the fields of h (pseudo-headers
// skipped) and the trailer names to declare; it replaces Header and
// WriteHeader for the connection manager.
func (w *h1Writer) WriteHeaderMap(code int, h *header.Map, trailers []string) {
	if w.hijacked || w.wroteHeader {
		return
	}
	w.hmap = h
	w.wroteHeader = true
	w.status = code
	w.cl = -1
	if he := w.c.bodyCodecError(); he != nil {
		w.replaceWithCodecError(he)
		return
	}
	if v, ok := h.Get("content-length"); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			h.Del("content-length")
		}
	}
	w.noBody = w.req.Method == http.MethodHead || !bodyAllowed(code)
	if v, ok := h.Get("connection"); ok && hasToken([]string{v}, "close") {
		w.closeAfter = true
	}
	for _, k := range trailers {
		w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
	}
}

func (w *h1Writer) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	h, declared := mapOfHeader(code, w.header)
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code, h)
		return
	}
	w.WriteHeaderMap(code, h, declared)
}

// mapOfHeader is a response head given as net/http's Header: a header map
// with :status and lower-case names, and the trailer names it declares.
func mapOfHeader(code int, hdr http.Header) (*header.Map, []string) {
	h := header.NewCap(len(hdr)+1, ":status", strconv.Itoa(code))
	var declared []string
	for k, vs := range hdr {
		switch {
		case k == "Trailer":
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					if t = strings.TrimSpace(t); t != "" {
						declared = append(declared, t)
					}
				}
			}
			continue
		case strings.HasPrefix(k, http.TrailerPrefix):
			continue
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return h, declared
}

// replaceWithCodecError turns the response into the codec's error reply;
// what the handler writes afterwards is dropped.
func (w *h1Writer) replaceWithCodecError(he *h1Error) {
	text := http.StatusText(he.status)
	w.status = he.status
	w.hmap = header.New("content-type", "text/plain", "server", w.c.srv.m.serverName)
	w.header = nil
	w.pending = append(w.pending[:0], text...)
	w.cl = int64(len(text))
	w.written = w.cl
	w.discard = true
	w.closeAfter = true
}

func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

// writeInterim sends a 1xx response (103 Early Hints and the like) at once.
func (w *h1Writer) writeInterim(code int, h *header.Map) {
	bw := w.c.bw
	writeStatusLine(bw, code)
	writeMapFields(bw, h)
	bw.WriteString("\r\n")
	w.err = bw.Flush()
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, errHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.discard {
		return len(p), nil
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headerFlushed {
		if w.cl < 0 && len(w.trailers) == 0 && len(w.pending)+len(p) <= maxHeldBody {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.writeHead()
		if len(w.pending) > 0 {
			w.writeBody(w.pending)
			w.pending = w.pending[:0]
		}
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *h1Writer) writeBody(p []byte) {
	bw := w.c.bw
	if w.chunked {
		if len(p) == 0 {
			return
		}
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, w.err = bw.WriteString("\r\n")
		return
	}
	_, w.err = bw.Write(p)
}

// Flush sends the head and what was written so far.
func (w *h1Writer) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the write error (http.ResponseController).
func (w *h1Writer) FlushError() error {
	if w.hijacked {
		return errHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerFlushed {
		w.writeHead()
		if len(w.pending) > 0 {
			w.writeBody(w.pending)
			w.pending = w.pending[:0]
		}
	}
	if w.err != nil {
		return w.err
	}
	w.err = w.c.bw.Flush()
	return w.err
}

// EnableFullDuplex is a no-op: the codec reads the request body while the
// response is written.
func (w *h1Writer) EnableFullDuplex() error { return nil }

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *h1Writer) SetReadDeadline(t time.Time) error {
	w.c.readDeadlineSet = true
	return w.c.nc.SetReadDeadline(t)
}
func (w *h1Writer) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// Hijack hands the connection to the handler (upgrades).
func (w *h1Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, errHijacked
	}
	w.hijacked = true
	w.c.stopBackgroundRead()
	return w.c.nc, bufio.NewReadWriter(w.c.br, w.c.bw), nil
}

// writeHead decides the framing and writes the status line and headers
// into the connection's buffer.
func (w *h1Writer) writeHead() {
	w.headerFlushed = true
	if !w.noBody && w.cl < 0 {
		if w.req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			// HTTP/1.0 has no chunks: the body ends with the connection.
			w.closeAfter = true
		}
	}
	if w.c.closing() || w.req.Close {
		w.closeAfter = true
	}
	bw := w.c.bw
	writeStatusLine(bw, w.status)
	w.writeMapHead(bw)
}

// writeMapHead is writeHead's field part for a header map.
func (w *h1Writer) writeMapHead(bw *bufio.Writer) {
	h := w.hmap
	if _, ok := h.Get("date"); !ok {
		bw.WriteString("date: ")
		bw.Write(w.c.srv.date())
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && !w.noBody {
		if _, ok := h.Get("content-length"); !ok {
			bw.WriteString("content-length: ")
			bw.WriteString(strconv.FormatInt(w.cl, 10))
			bw.WriteString("\r\n")
		}
	}
	if w.chunked {
		bw.WriteString("transfer-encoding: chunked\r\n")
	}
	_, closeSent := h.Get("connection")
	writeMapFields(bw, h)
	for i, k := range w.trailers {
		if i == 0 {
			bw.WriteString("trailer: ")
		} else {
			bw.WriteString(", ")
		}
		bw.WriteString(k)
		if i == len(w.trailers)-1 {
			bw.WriteString("\r\n")
		}
	}
	switch {
	case w.closeAfter && !closeSent:
		bw.WriteString("connection: close\r\n")
	case !w.closeAfter && w.req.ProtoMinor == 0 && !closeSent:
		bw.WriteString("connection: keep-alive\r\n")
	}
	_, w.err = bw.WriteString("\r\n")
}

// writeMapFields writes h's fields in order (pseudo-headers and
// transfer-encoding, which the codec writes itself, left out).
func writeMapFields(bw *bufio.Writer, h *header.Map) {
	for _, f := range h.Fields() {
		if f.Key == "" || f.Key[0] == ':' || f.Key == "transfer-encoding" {
			continue
		}
		bw.WriteString(f.Key)
		bw.WriteString(": ")
		writeFieldValue(bw, f.Value)
		bw.WriteString("\r\n")
	}
}

func writeFieldValue(bw *bufio.Writer, v string) {
	if strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0 {
		bw.WriteString(strings.TrimSpace(v))
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

func writeStatusLine(bw *bufio.Writer, code int) {
	switch code {
	case 200:
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	case 404:
		bw.WriteString("HTTP/1.1 404 Not Found\r\n")
		return
	}
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	if t := http.StatusText(code); t != "" {
		bw.WriteString(t)
	} else {
		bw.WriteString("status code ")
		bw.WriteString(strconv.Itoa(code))
	}
	bw.WriteString("\r\n")
}

// finish completes the response after the handler returned: the held
// body with its length, or the last chunk and the trailers.
func (w *h1Writer) finish() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerFlushed {
		if w.cl < 0 && !w.noBody && len(w.trailers) == 0 {
			w.cl = int64(len(w.pending))
		}
		w.writeHead()
		if len(w.pending) > 0 {
			w.writeBody(w.pending)
			w.pending = w.pending[:0]
		}
	}
	if w.chunked {
		bw := w.c.bw
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				bw.WriteString(k)
				bw.WriteString(": ")
				writeFieldValue(bw, v)
				bw.WriteString("\r\n")
			}
		}
		for k, vs := range w.header {
			if !strings.HasPrefix(k, http.TrailerPrefix) {
				continue
			}
			name := k[len(http.TrailerPrefix):]
			for _, v := range vs {
				bw.WriteString(name)
				bw.WriteString(": ")
				writeFieldValue(bw, v)
				bw.WriteString("\r\n")
			}
		}
		_, w.err = bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		// Shorter than announced: the client cannot find the next
		// response on this connection.
		w.closeAfter = true
	}
}

// hasToken reports whether a comma-separated header contains tok.
func hasToken(values []string, tok string) bool {
	for _, v := range values {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(part), tok) {
				return true
			}
		}
	}
	return false
}
