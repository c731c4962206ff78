package hcm

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"\r\n\r\nPOST /a?b=c HTTP/1.0\nContent-Length: 3\n\nabc",
		"GET http://h/p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"PUT * HTTP/1.1\r\nX: \t v \t\r\n\r\n",
		"GET / HTTP/1.1\r\n folded\r\n\r\n",
		"GET / HTTP/3\r\n\r\n",
		"G\x00T / HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readHead(bufio.NewReaderSize(bytes.NewReader(data), 64), 2048, 20)
		if err != nil {
			return
		}
		if h.method == "" || h.major != 1 || h.minor > 1 || h.target == "" {
			t.Fatalf("accepted a head without method/target/version: %+v", h)
		}
		for k, vs := range h.header {
			if k == "" || k == "Host" {
				t.Fatalf("bad key %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("value with a line break: %q", v)
				}
			}
		}
		if r, err := newRequestFromHead(context.Background(), h); err == nil {
			if _, _, err := bodyFraming(r.Header); err == nil && r.URL == nil {
				t.Fatal("request without URL")
			}
		}
	})
}

// FuzzChunkedBody feeds arbitrary chunked framing to the body reader: it
// must end with EOF or an error, never panic or loop.
func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"fffffffffffffff\r\n",
		"zz\r\n",
		"2\r\nabX",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &h1conn{srv: &H1Server{m: &Manager{MaxRequestHeadersKB: 1}}, br: bufio.NewReaderSize(bytes.NewReader(data), 64)}
		b := &h1Body{c: c, req: &http.Request{}, chunked: true, remain: -1}
		c.body = b
		buf := make([]byte, 7)
		for i := 0; i <= len(data)+2; i++ {
			n, err := b.read(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("read %d", n)
			}
			if err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return
				}
				return
			}
		}
		t.Fatalf("no end after %d reads of %d bytes", len(data)+3, len(data))
	})
}
