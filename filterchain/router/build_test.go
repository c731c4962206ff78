package router

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"github.com/wasmesh/wasmesh/header"
)

func TestBuildRequestHeaders(t *testing.T) {
	h := header.New(":method", "POST", ":path", "/a?b=c", ":authority", "example.com", ":scheme", "http",
		"accept", "x", "x-dup", "1", "host", "ignored", "content-length", "3", "x-dup", "2", "user-agent", "u", "x-dup", "3")
	req, err := buildRequest(context.Background(), h, &Request{Buffered: true, BufferedBody: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Accept": {"x"}, "X-Dup": {"1", "2", "3"}, "User-Agent": {"u"}}
	if !reflect.DeepEqual(req.Header, want) {
		t.Fatalf("headers %v, want %v", req.Header, want)
	}
	// Appending to one key's values must not touch another's.
	req.Header["Accept"] = append(req.Header["Accept"], "y")
	if got := req.Header["X-Dup"][0]; got != "1" {
		t.Fatalf("X-Dup[0] = %q after an append to Accept", got)
	}
	if req.Method != "POST" || req.URL.Path != "/a" || req.URL.RawQuery != "b=c" || req.Host != "example.com" || req.ContentLength != 3 {
		t.Fatalf("request %s %v %s %d", req.Method, req.URL, req.Host, req.ContentLength)
	}
}

func TestServiceTime(t *testing.T) {
	for _, ms := range []int64{0, 7, 255, 256, 12345, -1} {
		v := serviceTime(ms)
		if len(v) != 1 || v[0] != strconv.FormatInt(ms, 10) {
			t.Errorf("serviceTime(%d) = %q", ms, v)
		}
		if cap(v) != 1 {
			t.Errorf("serviceTime(%d) has capacity %d: an append would write a shared array", ms, cap(v))
		}
	}
}
