package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordConn captures what a client writes and fails every read.
type recordConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordConn) Write(b []byte) (int, error) { return c.buf.Write(b) }
func (c *recordConn) Read([]byte) (int, error)    { return 0, errors.New("no server") }
func (c *recordConn) Close() error                { return nil }
func (c *recordConn) SetDeadline(time.Time) error { return nil }
func (c *recordConn) SetWriteDeadline(time.Time) error {
	return nil
}
func (c *recordConn) SetReadDeadline(time.Time) error { return nil }

// clientHelloBytes returns the ClientHello crypto/tls sends for cfg.
func clientHelloBytes(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	rc := &recordConn{}
	_ = tls.Client(rc, cfg).HandshakeContext(context.Background())
	if rc.buf.Len() == 0 {
		t.Fatal("no ClientHello written")
	}
	return rc.buf.Bytes()
}

func TestParseClientHello(t *testing.T) {
	hello := clientHelloBytes(t, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}})
	for _, tc := range []struct {
		name string
		b    []byte
		max  int
		want helloStatus
		sni  string
		alpn []string
	}{
		{"full hello", hello, 16 << 10, helloDone, "www.example.com", []string{"h2", "http/1.1"}},
		{"header only", hello[:5], 16 << 10, helloNeedMore, "", nil},
		{"half", hello[:len(hello)/2], 16 << 10, helloNeedMore, "", nil},
		{"too large", hello, 64, helloTooLarge, "", nil},
		{"plain text", []byte("GET / HTTP/1.1\r\n"), 16 << 10, helloNotTLS, "", nil},
		{"SSLv2-style", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, 16 << 10, helloNotTLS, "", nil},
		{"alert record", []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}, 16 << 10, helloNotTLS, "", nil},
		{"not a ClientHello", []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}, 16 << 10, helloNotTLS, "", nil},
		{"no SNI", clientHelloBytes(t, &tls.Config{InsecureSkipVerify: true}), 16 << 10, helloDone, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, h := parseClientHello(tc.b, tc.max)
			if st != tc.want || h.sni != tc.sni || !slices.Equal(h.alpn, tc.alpn) {
				t.Fatalf("got %v %q %v, want %v %q %v", st, h.sni, h.alpn, tc.want, tc.sni, tc.alpn)
			}
		})
	}
	// A ClientHello split over several records.
	split := splitRecords(hello, 7)
	st, _, h := parseClientHello(split, 16<<10)
	if st != helloDone || h.sni != "www.example.com" {
		t.Fatalf("split records: %v %q", st, h.sni)
	}
	// Each prefix asks for more, never for less than it has.
	for i := 0; i < len(split); i++ {
		st, need, _ := parseClientHello(split[:i], 16<<10)
		if st != helloNeedMore || need <= i {
			t.Fatalf("prefix %d: %v need %d", i, st, need)
		}
	}
}

// splitRecords re-frames the handshake in b as records of n bytes.
func splitRecords(b []byte, n int) []byte {
	body := b[5 : 5+int(b[3])<<8|int(b[4])]
	var out []byte
	for len(body) > 0 {
		k := min(n, len(body))
		out = append(out, 0x16, 0x03, 0x01, byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return out
}

func TestSniffHTTP(t *testing.T) {
	for _, tc := range []struct {
		in    string
		st    httpStatus
		proto string
	}{
		{"GET / HTTP/1.1\r\n", httpFound, "http/1.1"},
		{"POST /x?y=1 HTTP/1.0\r\n", httpFound, "http/1.0"},
		{"OPTIONS * HTTP/1.1\n", httpFound, "http/1.1"},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", httpFound, "h2c"},
		{"PRI * HTTP/2.0\r\n", httpNeedMore, ""},
		{"", httpNeedMore, ""},
		{"GE", httpNeedMore, ""},
		{"GET /long/path", httpNeedMore, ""},
		{"GET / HTTP/1.", httpNeedMore, ""},
		{"GET / HTTP/1.1\r", httpNeedMore, ""},
		{"GET / HTTP/2.0\r\n", httpNotHTTP, ""},
		{"GET / HTTP/1.1x\r\n", httpNotHTTP, ""},
		{"hello\n", httpNotHTTP, ""},
		{"\x16\x03\x01", httpNotHTTP, ""},
		{"GET  / HTTP/1.1\r\n", httpNotHTTP, ""},
		{"SSH-2.0-OpenSSH_9.2\r\n", httpNotHTTP, ""},
	} {
		st, proto := sniffHTTP([]byte(tc.in))
		if st != tc.st || proto != tc.proto {
			t.Errorf("sniffHTTP(%q) = %v %q, want %v %q", tc.in, st, proto, tc.st, tc.proto)
		}
	}
	if st, _ := sniffHTTP(bytes.Repeat([]byte("A"), maxHTTPInspect)); st != httpNotHTTP {
		t.Errorf("a long token gives %v", st)
	}
}

// FuzzParseClientHello checks the parser never panics, never asks for
// fewer bytes than it has, and agrees with crypto/tls on every hello that
// crypto/tls accepts.
func FuzzParseClientHello(f *testing.F) {
	f.Add(clientHelloBytes(f, &tls.Config{ServerName: "a.example.com", NextProtos: []string{"h2"}}))
	f.Add(clientHelloBytes(f, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}))
	f.Add(splitRecords(clientHelloBytes(f, &tls.Config{ServerName: "x"}), 3))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, need, h := parseClientHello(b, 16<<10)
		if st == helloNeedMore && need <= len(b) {
			t.Fatalf("needs %d bytes but has %d", need, len(b))
		}
		info, ok := goParse(b)
		if !ok || st == helloNeedMore || st == helloTooLarge {
			return
		}
		if st != helloDone {
			t.Fatalf("crypto/tls parsed a hello (SNI %q) that we call %v", info.ServerName, st)
		}
		if h.sni != info.ServerName || !slices.Equal(h.alpn, info.SupportedProtos) {
			t.Fatalf("SNI/ALPN: ours %q %v, crypto/tls %q %v", h.sni, h.alpn, info.ServerName, info.SupportedProtos)
		}
	})
}

// goParse hands b to a crypto/tls server and returns the ClientHelloInfo
// it saw, if it got that far.
func goParse(b []byte) (*tls.ClientHelloInfo, bool) {
	var info *tls.ClientHelloInfo
	var mu sync.Mutex
	srv := tls.Server(&replayConn{data: b}, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		info = h
		mu.Unlock()
		return nil, errors.New("stop")
	}})
	_ = srv.Handshake()
	mu.Lock()
	defer mu.Unlock()
	return info, info != nil
}

// replayConn reads b, then EOF; writes are dropped.
type replayConn struct {
	recordConn
	data []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, errors.New("EOF")
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *replayConn) Write(b []byte) (int, error) { return len(b), nil }

func FuzzSniffHTTP(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "POST /a HTTP/1.0\n", "\x16\x03\x01\x00", "G"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, proto := sniffHTTP(b)
		switch st {
		case httpFound:
			if proto != "h2c" && proto != "http/1.1" && proto != "http/1.0" {
				t.Fatalf("protocol %q", proto)
			}
			// A decision is stable when more bytes arrive.
			if st2, p2 := sniffHTTP(append(bytes.Clone(b), "more"...)); st2 != st || p2 != proto {
				t.Fatalf("decision changed with more data: %v %q", st2, p2)
			}
		case httpNotHTTP:
			if st2, _ := sniffHTTP(append(bytes.Clone(b), "\r\n"...)); st2 != httpNotHTTP {
				t.Fatalf("not-HTTP became %v with more data", st2)
			}
		}
	})
}
