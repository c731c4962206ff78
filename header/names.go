package header

import "net/textproto"

// commonNames are header names that most requests and responses carry.
// Converting them between the lower-case form of Map and the canonical
// form of net/http's Header costs a map look-up instead of an allocation.
var commonNames = []string{
	"accept", "accept-encoding", "accept-language", "accept-ranges", "access-control-allow-origin",
	"age", "authorization", "cache-control", "connection", "content-encoding", "content-language",
	"content-length", "content-type", "cookie", "date", "etag", "expect", "expires", "grpc-encoding",
	"grpc-message", "grpc-status", "grpc-timeout", "host", "if-modified-since", "if-none-match",
	"keep-alive", "last-modified", "location", "origin", "pragma", "referer", "server", "set-cookie",
	"te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "x-forwarded-for",
	"x-forwarded-host", "x-forwarded-proto", "x-request-id", "x-envoy-upstream-service-time",
	"x-envoy-expected-rq-timeout-ms", "x-envoy-internal", "x-envoy-external-address",
	"x-envoy-original-path", "x-content-type-options", "x-frame-options", "strict-transport-security",
}

// nameTables maps the common names both ways. It is built once and only
// read afterwards.
var nameTables = func() (t nameTablesT) {
	t.lower = make(map[string]string, len(commonNames))
	t.canonical = make(map[string]string, len(commonNames))
	t.self = make(map[string]string, len(commonNames))
	for _, n := range commonNames {
		c := textproto.CanonicalMIMEHeaderKey(n)
		t.lower[c] = n
		t.canonical[n] = c
		t.self[n] = n
	}
	return t
}()

// nameTablesT: canonical → lower, lower → canonical, lower → itself.
type nameTablesT struct{ lower, canonical, self map[string]string }

// Intern returns a lower-case name as a string, without an allocation
// when it is a common name.
func Intern(lower []byte) string {
	if n, ok := nameTables.self[string(lower)]; ok {
		return n
	}
	return string(lower)
}

// Canonical is the canonical (net/http) form of a header name, without an
// allocation for common names.
func Canonical(name string) string {
	if c, ok := nameTables.canonical[name]; ok {
		return c
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}
