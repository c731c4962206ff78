package admin

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AccessLogEntry describes one admin request.
type AccessLogEntry struct {
	StartTime     time.Time
	Method        string
	Path          string // path and query as requested
	Protocol      string // "HTTP/1.1", "HTTP/2.0"
	ResponseCode  int
	BytesReceived int64 // request body bytes (-1 when unknown)
	BytesSent     int64 // response body bytes
	Duration      time.Duration
	RemoteAddress string
	Authority     string
	UserAgent     string
	ForwardedFor  string
	RequestID     string
}

// NewWriterAccessLog returns an AccessLog writing Envoy's default access
// log format, one line per request, to w (a file opened by the server for
// admin.access_log). Writes are serialised.
//
//	[2016-04-15T20:17:00.310Z] "GET /stats HTTP/1.1" 200 - 0 512 1 - "-" "curl/8.5.0" "-" "127.0.0.1:9901" "-"
func NewWriterAccessLog(w io.Writer) AccessLog {
	return &writerAccessLog{w: w}
}

type writerAccessLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *writerAccessLog) Log(e *AccessLogEntry) {
	line := FormatAccessLogEntry(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

// FormatAccessLogEntry formats an entry in Envoy's default access log
// format. Fields an admin request has no value for (response flags,
// upstream service time, upstream host) print "-", as do empty headers.
func FormatAccessLogEntry(e *AccessLogEntry) string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	proto := e.Protocol
	if proto == "HTTP/2.0" {
		proto = "HTTP/2"
	}
	received := e.BytesReceived
	if received < 0 {
		received = 0
	}
	var b strings.Builder
	b.WriteString("[" + e.StartTime.UTC().Format("2006-01-02T15:04:05.000Z") + "] ")
	b.WriteString(`"` + dash(e.Method) + " " + dash(e.Path) + " " + dash(proto) + `" `)
	b.WriteString(strconv.Itoa(e.ResponseCode) + " - ")
	b.WriteString(strconv.FormatInt(received, 10) + " " + strconv.FormatInt(e.BytesSent, 10) + " ")
	b.WriteString(strconv.FormatInt(e.Duration.Milliseconds(), 10) + " - ")
	b.WriteString(`"` + dash(e.ForwardedFor) + `" "` + dash(e.UserAgent) + `" "` + dash(e.RequestID) + `" "` +
		dash(e.Authority) + `" "-"` + "\n")
	return b.String()
}
