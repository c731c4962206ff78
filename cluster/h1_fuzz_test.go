package cluster

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/header"
)

// FuzzH1ResponseHead feeds arbitrary bytes to the response head parser: it
// must not panic; a head it accepts has a three-digit status, canonical
// header names and values without control characters, and agrees with
// net/http's parser on the status and the headers when that accepts it too;
// the header-map form starts with :status and has lower-case names.
func FuzzH1ResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nconnection: keep-alive\r\n\r\n",
		"HTTP/1.1 204\r\nx-a: 1\r\nX-A: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n\n",
		"HTTP/1.1 99 x\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := findHeadEnd(b)
		if end < 0 {
			return
		}
		var hd, hdm h1Head
		var m header.Map
		err := parseH1Head(b[:end], &hd, nil)
		merr := parseH1Head(b[:end], &hdm, &m)
		if (err == nil) != (merr == nil) {
			t.Fatalf("http.Header parse: %v, header map parse: %v", err, merr)
		}
		if err != nil {
			return
		}
		if st, _ := m.Get(":status"); st != strconv.Itoa(hd.code) {
			t.Fatalf(":status %q, code %d", st, hd.code)
		}
		if m.Len() == 0 || m.Fields()[0].Key != ":status" {
			t.Fatalf("header map %v does not start with :status", m.Fields())
		}
		for _, f := range m.Fields()[1:] {
			if f.Key != strings.ToLower(f.Key) || !validToken(f.Key) {
				t.Fatalf("header map name %q not lower-case", f.Key)
			}
		}
		if hd.code < 100 || hd.code > 999 || hd.major != 1 {
			t.Fatalf("accepted status %d version %d.%d", hd.code, hd.major, hd.minor)
		}
		for k, vv := range hd.header {
			if http.CanonicalHeaderKey(k) != k || !validToken(k) {
				t.Fatalf("header name %q not canonical", k)
			}
			for _, v := range vv {
				if !validFieldValue(v) || trimOWS(v) != v {
					t.Fatalf("header %q value %q", k, v)
				}
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b[:end])), nil)
		if err != nil {
			return
		}
		if resp.StatusCode != hd.code || resp.Status != hd.status && resp.Status != hd.status[:3] {
			t.Fatalf("status %q, net/http %q", hd.status, resp.Status)
		}
		// net/http moves these into the framing fields.
		for _, k := range []string{"Transfer-Encoding", "Trailer", "Content-Length", "Connection"} {
			delete(resp.Header, k)
			delete(hd.header, k)
		}
		if len(resp.Header) != len(hd.header) {
			t.Fatalf("headers %q, net/http %q", hd.header, resp.Header)
		}
		for k, vv := range resp.Header {
			got := hd.header[k]
			if len(got) != len(vv) {
				t.Fatalf("%s: %q, net/http %q", k, got, vv)
			}
			for i := range vv {
				// net/http keeps the space before an empty
				// continuation line.
				if got[i] != trimOWS(vv[i]) {
					t.Fatalf("%s: %q, net/http %q", k, got, vv)
				}
			}
		}
	})
}
