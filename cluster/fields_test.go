package cluster

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/wasmesh/wasmesh/header"
)

func TestHeaderOfFields(t *testing.T) {
	h := header.New(":method", "POST", ":path", "/a", ":authority", "example.com", ":scheme", "http",
		"accept", "x", "x-dup", "1", "host", "ignored", "content-length", "3", "x-dup", "2", "user-agent", "u",
		"transfer-encoding", "chunked", "x-dup", "3")
	got := HeaderOfFields(h)
	want := http.Header{"Accept": {"x"}, "X-Dup": {"1", "2", "3"}, "User-Agent": {"u"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("headers %v, want %v", got, want)
	}
	// Appending to one key's values must not touch another's.
	got["Accept"] = append(got["Accept"], "y")
	if v := got["X-Dup"][0]; v != "1" {
		t.Fatalf("X-Dup[0] = %q after an append to Accept", v)
	}
}
