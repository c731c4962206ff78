package hcm

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/header"
)

// RequestLogger writes access log lines, with the connection manager's
// formats and files, for requests served outside a connection manager:
// the admin endpoints (the bootstrap's admin.access_log and
// admin.access_log_path).
type RequestLogger struct {
	logs []*accessLog
}

// CompileRequestLogger compiles file access logs; legacyPath (the
// deprecated access_log_path) adds one in the default format. Errors name
// the entry.
func CompileRequestLogger(logs []*accesslogv3.AccessLog, legacyPath string, files *LogFiles) (*RequestLogger, error) {
	l := &RequestLogger{}
	for i, al := range logs {
		c, err := compileAccessLog(al, files)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d].%w", i, err)
		}
		l.logs = append(l.logs, c)
	}
	if legacyPath != "" {
		f, err := CompileFormat(DefaultAccessLogFormat)
		if err != nil {
			return nil, err
		}
		if files == nil {
			files = NewLogFiles()
		}
		out, err := files.Open(legacyPath)
		if err != nil {
			return nil, fmt.Errorf("access_log_path: %w", err)
		}
		l.logs = append(l.logs, &accessLog{format: f, out: out})
	}
	return l, nil
}

// Wrap logs every request h serves; with no logs configured it returns h.
func (l *RequestLogger) Wrap(h http.Handler) http.Handler {
	if l == nil || len(l.logs) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		end := time.Now()
		info := &filterchain.StreamInfo{StartTime: start, Protocol: r.Proto, ResponseCode: rec.status,
			Duration: end.Sub(start), BytesSent: uint64(rec.n)}
		if r.ContentLength > 0 {
			info.BytesReceived = uint64(r.ContentLength)
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			info.DownstreamRemote = ap
		}
		req := header.New(":method", r.Method, ":path", r.URL.RequestURI(), ":authority", r.Host, ":scheme", "http")
		for k, vs := range r.Header {
			for _, v := range vs {
				req.Add(k, v)
			}
		}
		resp := header.New(":status", strconv.Itoa(rec.status))
		for k, vs := range w.Header() {
			for _, v := range vs {
				resp.Add(k, v)
			}
		}
		e := &logEntry{info: info, req: req, resp: resp, trailers: &header.Map{}, end: end}
		for _, al := range l.logs {
			al.out.write(func(out io.Writer) { al.format.Write(out, e) })
		}
	})
}

// recordingWriter notes the status and the body bytes of a response.
type recordingWriter struct {
	http.ResponseWriter
	status int
	n      int
}

func (w *recordingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += n
	return n, err
}

// Flush passes flushes on (streaming admin endpoints).
func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
