package router

import (
	"context"
	"strconv"
	"testing"

	"github.com/wasmesh/wasmesh/header"
)

func TestBuildRequest(t *testing.T) {
	h := header.New(":method", "POST", ":path", "/a?b=c", ":authority", "example.com", ":scheme", "http",
		"accept", "x", "content-length", "3")
	req, err := buildRequest(context.Background(), h, &Request{Buffered: true, BufferedBody: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URL.Path != "/a" || req.URL.RawQuery != "b=c" || req.Host != "example.com" || req.ContentLength != 3 {
		t.Fatalf("request %s %v %s %d", req.Method, req.URL, req.Host, req.ContentLength)
	}
	if req.Header != nil {
		t.Fatalf("the request has an http.Header %v; its headers are the map", req.Header)
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
