package e2e

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoed is what the echo upstream reports about the request it got.
type echoed struct {
	Upstream string              `json:"upstream"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Host     string              `json:"host"`
	Proto    string              `json:"proto"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
	SNI      string              `json:"sni,omitempty"`
}

// header returns the first value of a request header the upstream got.
func (e *echoed) header(name string) string {
	if v := e.Headers[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (e *echoed) has(name string) bool { _, ok := e.Headers[strings.ToLower(name)]; return ok }

// parseEcho decodes an echo upstream's body.
func parseEcho(t testing.TB, body string) *echoed {
	t.Helper()
	e := &echoed{}
	if err := json.Unmarshal([]byte(body), e); err != nil {
		t.Fatalf("not an echo response: %v: %q", err, body)
	}
	return e
}

// echo answers 200 with the request as JSON and x-upstream: name.
func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if ms, err := strconv.Atoi(r.Header.Get("X-Delay-Ms")); err == nil {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Duration(ms) * time.Millisecond):
			}
		}
		e := echoed{Upstream: name, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Proto: r.Proto,
			Headers: map[string][]string{}, Body: string(b)}
		for k, v := range r.Header {
			e.Headers[strings.ToLower(k)] = v
		}
		if r.TLS != nil {
			e.SNI = r.TLS.ServerName
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		w.Header().Set("X-Upstream-Remove-Me", "1")
		if s := r.Header.Get("X-Respond-Status"); s != "" {
			code, _ := strconv.Atoi(s)
			w.WriteHeader(code)
		}
		_ = json.NewEncoder(w).Encode(e)
	}
}

// upstream is a real HTTP server on 127.0.0.1.
type upstream struct {
	Name string
	Port int
	srv  *httptest.Server
	Hits atomic.Int64
}

// Addr is host:port.
func (u *upstream) Addr() string { return u.srv.Listener.Addr().String() }

type upstreamOpt func(*httptest.Server)

// withH2C serves HTTP/2 with prior knowledge next to HTTP/1.1.
func withH2C() upstreamOpt {
	return func(s *httptest.Server) { s.Config.Protocols = protocols(true, false, true) }
}

// startUpstream serves h (echo(name) when nil) and counts requests.
func startUpstream(t testing.TB, name string, h http.Handler, opts ...upstreamOpt) *upstream {
	t.Helper()
	if h == nil {
		h = echo(name)
	}
	u := &upstream{Name: name}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.Hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	u.srv.Config.Protocols = protocols(true, false, false)
	for _, o := range opts {
		o(u.srv)
	}
	u.srv.Start()
	u.Port = u.srv.Listener.Addr().(*net.TCPAddr).Port
	t.Cleanup(u.srv.Close)
	return u
}

// startTLSUpstream serves h over TLS with cert (ALPN h2 and http/1.1).
func startTLSUpstream(t testing.TB, name string, cert tls.Certificate, h http.Handler) *upstream {
	t.Helper()
	if h == nil {
		h = echo(name)
	}
	u := &upstream{Name: name}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.Hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	u.srv.EnableHTTP2 = true
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	u.srv.StartTLS()
	u.Port = u.srv.Listener.Addr().(*net.TCPAddr).Port
	t.Cleanup(u.srv.Close)
	return u
}

// tcpEcho is a raw TCP server that writes back what it reads.
func tcpEcho(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// WebSocket (RFC 6455), just enough for an echo: the handshake and
// unfragmented frames.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEcho upgrades and echoes every frame back (unmasked, same opcode)
// until a close frame or EOF.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		echo("ws")(w, r)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "no hijack", 500)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	rw.Flush()
	for {
		op, payload, err := wsRead(rw.Reader)
		if err != nil {
			return
		}
		if err := wsWrite(conn, op, payload, false); err != nil || op == 8 {
			return
		}
	}
}

// wsRead reads one unfragmented frame and unmasks it.
func wsRead(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err = io.ReadFull(r, mask[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return
}

// wsWrite writes one final frame; clients mask.
func wsWrite(w io.Writer, op byte, payload []byte, mask bool) error {
	b := []byte{0x80 | op}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := payload
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		b = append(b, key[:]...)
		p = make([]byte, len(payload))
		for i := range payload {
			p[i] = payload[i] ^ key[i%4]
		}
	}
	_, err := w.Write(append(b, p...))
	return err
}
