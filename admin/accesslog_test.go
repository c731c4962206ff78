package admin

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	ta := startAdmin(t, Options{AccessLog: NewWriterAccessLog(&buf)})
	req, _ := http.NewRequest(http.MethodGet, ta.base+"/ready?x=1", nil)
	req.Header.Set("User-Agent", "probe/1.0")
	req.Header.Set("X-Request-Id", "abc")
	resp, err := ta.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ta.get(t, "/healthcheck/fail")

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d access log lines:\n%s", len(lines), buf.String())
	}
	host := strings.TrimPrefix(ta.base, "http://")
	for i, re := range []string{
		`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /ready\?x=1 HTTP/1\.1" 200 - 0 5 \d+ - "-" "probe/1\.0" "abc" "` + regexp.QuoteMeta(host) + `" "-"$`,
		`^\[.*\] "GET /healthcheck/fail HTTP/1\.1" 405 - 0 38 \d+ - "-" "Go-http-client/1\.1" "-" "` + regexp.QuoteMeta(host) + `" "-"$`,
	} {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d:\n%s\ndoes not match\n%s", i, lines[i], re)
		}
	}
}

func TestFormatAccessLogEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    AccessLogEntry
		want string
	}{
		{"empty fields are dashes", AccessLogEntry{
			StartTime: time.Date(2016, 4, 15, 20, 17, 0, 310e6, time.UTC), ResponseCode: 404, BytesReceived: -1,
		}, `[2016-04-15T20:17:00.310Z] "- - -" 404 - 0 0 0 - "-" "-" "-" "-" "-"` + "\n"},
		{"http2 and a local start time", AccessLogEntry{
			StartTime: time.Date(2016, 4, 15, 22, 17, 0, 0, time.FixedZone("CEST", 2*3600)),
			Method:    "POST", Path: "/logging?level=debug", Protocol: "HTTP/2.0", ResponseCode: 200,
			BytesReceived: 12, BytesSent: 345, Duration: 1500 * time.Microsecond,
			ForwardedFor: "10.0.0.1", UserAgent: "curl/8", RequestID: "r1", Authority: "localhost:9901",
		}, `[2016-04-15T20:17:00.000Z] "POST /logging?level=debug HTTP/2" 200 - 12 345 1 - "10.0.0.1" "curl/8" "r1" "localhost:9901" "-"` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatAccessLogEntry(&tc.e); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
