package listener

import "bytes"

// helloStatus is the outcome of looking at the first bytes of a
// connection for a TLS ClientHello.
type helloStatus int

const (
	helloNeedMore helloStatus = iota
	helloNotTLS
	helloDone
	helloTooLarge
)

// clientHello is what the tls_inspector takes from a ClientHello.
type clientHello struct {
	sni  string
	alpn []string
}

const (
	recordHeaderLen     = 5
	maxRecordLen        = 16384 + 2048
	recordTypeHandshake = 0x16
	handshakeClientHelo = 1
	extServerName       = 0
	extALPN             = 16
)

// parseClientHello looks for a complete ClientHello at the start of b (one
// or more TLS handshake records) without consuming anything. With
// helloNeedMore, need is how many bytes it must see to go on; a hello
// whose handshake message is longer than max is helloTooLarge.
func parseClientHello(b []byte, max int) (st helloStatus, need int, h clientHello) {
	var hs []byte
	off := 0
	for {
		if len(b) < off+recordHeaderLen {
			return helloNeedMore, off + recordHeaderLen, h
		}
		rec := b[off : off+recordHeaderLen]
		if rec[0] != recordTypeHandshake || rec[1] != 3 {
			return helloNotTLS, 0, h
		}
		n := int(rec[3])<<8 | int(rec[4])
		if n == 0 || n > maxRecordLen {
			return helloNotTLS, 0, h
		}
		if len(b) < off+recordHeaderLen+n {
			// The first record tells the message size: refuse early.
			if len(hs) == 0 && n >= 4 && len(b) >= off+recordHeaderLen+4 {
				if st := checkHandshakeHeader(b[off+recordHeaderLen:], max); st != helloNeedMore {
					return st, 0, h
				}
			}
			return helloNeedMore, off + recordHeaderLen + n, h
		}
		hs = append(hs, b[off+recordHeaderLen:off+recordHeaderLen+n]...)
		off += recordHeaderLen + n
		if len(hs) < 4 {
			continue
		}
		if st := checkHandshakeHeader(hs, max); st != helloNeedMore {
			return st, 0, h
		}
		msgLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
		if len(hs) >= 4+msgLen {
			var ok bool
			h, ok = parseHelloBody(hs[4 : 4+msgLen])
			if !ok {
				return helloNotTLS, 0, clientHello{}
			}
			return helloDone, 0, h
		}
	}
}

// checkHandshakeHeader checks the handshake type and size: helloNeedMore
// means "fine so far".
func checkHandshakeHeader(hs []byte, max int) helloStatus {
	if hs[0] != handshakeClientHelo {
		return helloNotTLS
	}
	msgLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if msgLen > max {
		return helloTooLarge
	}
	return helloNeedMore
}

// reader is a bounds-checked cursor over a byte slice.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) take(n int) []byte {
	if !r.ok || n < 0 || len(r.b) < n {
		r.ok = false
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func parseHelloBody(body []byte) (clientHello, bool) {
	var h clientHello
	r := &reader{b: body, ok: true}
	r.take(2)  // legacy_version
	r.take(32) // random
	sid := r.u8()
	if sid > 32 {
		return h, false
	}
	r.take(sid)
	cs := r.u16()
	if cs%2 != 0 || cs == 0 {
		return h, false
	}
	r.take(cs)
	comp := r.u8()
	if comp == 0 {
		return h, false
	}
	r.take(comp)
	if !r.ok {
		return h, false
	}
	if len(r.b) == 0 {
		return h, true // no extensions
	}
	ext := &reader{b: r.take(r.u16()), ok: r.ok}
	if !r.ok || len(r.b) != 0 {
		return h, false
	}
	seen := map[int]bool{}
	for len(ext.b) > 0 {
		typ := ext.u16()
		data := ext.take(ext.u16())
		if !ext.ok {
			return h, false
		}
		if seen[typ] {
			return h, false // a repeated extension is a decode error
		}
		seen[typ] = true
		switch typ {
		case extServerName:
			d := &reader{b: data, ok: true}
			list := &reader{b: d.take(d.u16()), ok: d.ok}
			if !d.ok || len(d.b) != 0 || len(list.b) == 0 {
				return h, false
			}
			for len(list.b) > 0 {
				nt := list.u8()
				name := list.take(list.u16())
				if !list.ok {
					return h, false
				}
				if nt == 0 && h.sni == "" {
					if len(name) == 0 || bytes.IndexByte(name, 0) >= 0 {
						return h, false
					}
					h.sni = string(name)
				}
			}
		case extALPN:
			d := &reader{b: data, ok: true}
			list := &reader{b: d.take(d.u16()), ok: d.ok}
			if !d.ok || len(d.b) != 0 || len(list.b) == 0 {
				return h, false
			}
			for len(list.b) > 0 {
				p := list.take(list.u8())
				if !list.ok || len(p) == 0 {
					return h, false
				}
				h.alpn = append(h.alpn, string(p))
			}
		}
	}
	return h, true
}

// http2Preface is the client connection preface of cleartext HTTP/2.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// maxHTTPInspect is how many bytes the http_inspector looks at before it
// gives up on finding a request line.
const maxHTTPInspect = 8 << 10

// httpStatus is the outcome of sniffing for HTTP.
type httpStatus int

const (
	httpNeedMore httpStatus = iota
	httpNotHTTP
	httpFound
)

// sniffHTTP looks for the HTTP/2 connection preface or an HTTP/1.x request
// line at the start of b. It returns the protocol as Envoy names it for
// application_protocols: "h2c", "http/1.1" or "http/1.0".
func sniffHTTP(b []byte) (httpStatus, string) {
	if len(b) < len(http2Preface) && bytes.HasPrefix([]byte(http2Preface), b) {
		if len(b) == 0 {
			return httpNeedMore, ""
		}
		// Still a prefix of the preface, but also of "PRI ..." HTTP/1
		// lines: wait for the whole preface.
		return httpNeedMore, ""
	}
	if bytes.HasPrefix(b, []byte(http2Preface)) {
		return httpFound, "h2c"
	}
	// Method: one or more token characters, then a space.
	i := 0
	for i < len(b) && isToken(b[i]) {
		i++
	}
	if i == len(b) {
		return needOrGiveUp(b)
	}
	if i == 0 || b[i] != ' ' {
		return httpNotHTTP, ""
	}
	i++
	// Request target: visible characters up to a space.
	start := i
	for i < len(b) && b[i] > ' ' && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return needOrGiveUp(b)
	}
	if i == start || b[i] != ' ' {
		return httpNotHTTP, ""
	}
	i++
	// Version and the end of the line.
	rest := b[i:]
	for _, v := range []struct{ line, proto string }{{"HTTP/1.1", "http/1.1"}, {"HTTP/1.0", "http/1.0"}} {
		if len(rest) < len(v.line)+1 {
			if bytes.HasPrefix([]byte(v.line+"\r\n"), rest) {
				return needOrGiveUp(b)
			}
			continue
		}
		if bytes.HasPrefix(rest, []byte(v.line)) {
			switch {
			case rest[len(v.line)] == '\n':
				return httpFound, v.proto
			case rest[len(v.line)] == '\r':
				if len(rest) < len(v.line)+2 {
					return needOrGiveUp(b)
				}
				if rest[len(v.line)+1] == '\n' {
					return httpFound, v.proto
				}
			}
			return httpNotHTTP, ""
		}
	}
	return httpNotHTTP, ""
}

func needOrGiveUp(b []byte) (httpStatus, string) {
	if len(b) >= maxHTTPInspect {
		return httpNotHTTP, ""
	}
	return httpNeedMore, ""
}

// isToken reports whether c is an RFC 9110 token character.
func isToken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
