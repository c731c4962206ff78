package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/stats"
)

// Options wire the admin to the rest of the process. Server is required;
// every other part may be nil.
type Options struct {
	// Logger is the "admin" component's logger.
	Logger *zap.Logger
	// Server answers /server_info and /ready.
	Server Server
	// Stats answers /stats, /stats/prometheus and /reset_counters, and
	// receives the http.admin.* counters.
	Stats *stats.Store
	// Logging and ParseLevel answer /logging. ParseLevel reads Envoy's
	// level names (server.ParseLevel); it is required with Logging.
	Logging    Logging
	ParseLevel func(string) (zapcore.Level, error)
	// Listeners answers /listeners and /drain_listeners.
	Listeners Listeners
	// Clusters answers /clusters.
	Clusters Clusters
	// ConfigDumpers answer /config_dump.
	ConfigDumpers ConfigDumpers
	// Runtime answers /runtime and /runtime_modify.
	Runtime Runtime
	// Certificates answers /certs.
	Certificates Certificates
	// Quit is called by POST /quitquitquit after the answer is written. It
	// must return promptly (it usually cancels the server's context).
	Quit func()
	// Wrap, when set, wraps the admin's handler in Serve (the bootstrap's
	// admin access logs).
	Wrap func(http.Handler) http.Handler
	// AccessLog receives one entry per request (admin.access_log).
	AccessLog AccessLog
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context ends (5s when zero).
	ShutdownTimeout time.Duration
}

// Admin is the admin endpoint set. It is safe for concurrent use and may
// serve several listeners.
type Admin struct {
	o        Options
	log      *zap.Logger
	now      func() time.Time
	handlers []*endpoint
	byPath   map[string]*endpoint
	hcFailed atomic.Bool
	st       *adminStats
}

// endpoint is one admin path.
type endpoint struct {
	path    string
	help    string
	mutates bool
	params  []param
	serve   func(w http.ResponseWriter, r *http.Request)
}

// param documents one query parameter in /help.
type param struct {
	name    string
	help    string
	choices []string
}

// New builds the admin from its options.
func New(o Options) (*Admin, error) {
	if o.Server == nil {
		return nil, errors.New("admin: Options.Server is required")
	}
	if o.Logging != nil && o.ParseLevel == nil {
		return nil, errors.New("admin: Options.ParseLevel is required with Options.Logging")
	}
	a := &Admin{o: o, log: o.Logger, now: o.Now}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if o.Stats != nil {
		a.st = newAdminStats(o.Stats)
	}
	a.handlers = a.endpoints()
	sort.Slice(a.handlers, func(i, j int) bool { return a.handlers[i].path < a.handlers[j].path })
	a.byPath = make(map[string]*endpoint, len(a.handlers))
	for _, h := range a.handlers {
		a.byPath[h.path] = h
	}
	return a, nil
}

// HealthCheckFailed reports whether POST /healthcheck/fail is in effect.
// The server's health check filter and drain logic read it.
func (a *Admin) HealthCheckFailed() bool { return a.hcFailed.Load() }

// SetHealthCheckFailed sets the flag /healthcheck/fail and /healthcheck/ok
// toggle (the server sets it when it starts draining on its own).
func (a *Admin) SetHealthCheckFailed(failed bool) { a.hcFailed.Store(failed) }

// Handler is the admin as an http.Handler (for embedding and tests).
func (a *Admin) Handler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

// served is the handler Serve uses: Handler, wrapped by Options.Wrap.
func (a *Admin) served() http.Handler {
	if a.o.Wrap != nil {
		return a.o.Wrap(a.Handler())
	}
	return a.Handler()
}

// Serve answers admin requests on l until ctx ends, then stops accepting,
// lets in-flight requests finish (up to ShutdownTimeout) and returns nil.
// It closes l. An accept error ends it early with that error.
func (a *Admin) Serve(ctx context.Context, l net.Listener) error {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           a.served(),
		Protocols:         &protos,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          zap.NewStdLog(a.log),
		ConnState:         a.connState,
	}
	a.log.Info("admin address", zap.String("address", l.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("admin: serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	timeout := a.o.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}

func (a *Admin) connState(_ net.Conn, s http.ConnState) {
	if a.st == nil {
		return
	}
	switch s {
	case http.StateNew:
		a.st.cxTotal.Inc()
		a.st.cxActive.Inc()
	case http.StateClosed, http.StateHijacked:
		a.st.cxActive.Dec()
	}
}

// serveHTTP routes a request on its exact path, as Envoy's admin does.
func (a *Admin) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := a.now()
	rw := &recorder{ResponseWriter: w, status: http.StatusOK}
	h := rw.Header()
	h.Set("Content-Type", contentTypeText)
	h.Set("Cache-Control", "no-cache, max-age=0")
	h.Set("X-Content-Type-Options", "nosniff")

	ep := a.byPath[r.URL.Path]
	switch {
	case ep == nil:
		rw.WriteHeader(http.StatusNotFound)
		rw.Write([]byte("invalid path. " + a.helpText()))
	case ep.mutates && r.Method != http.MethodPost && !(ep.path == "/logging" && readOnlyLogging(r)):
		a.log.Error("admin path mutates state, method is not POST",
			zap.String("path", ep.path), zap.String("method", r.Method))
		rw.WriteHeader(http.StatusMethodNotAllowed)
		fmt.Fprintf(rw, "Method %s not allowed, POST required.", r.Method)
	default:
		ep.serve(rw, r)
	}
	if a.st != nil {
		a.st.rqTotal.Inc()
		a.st.codes.Class(rw.status).Inc()
	}
	if a.o.AccessLog != nil {
		a.o.AccessLog.Log(&AccessLogEntry{
			StartTime:     start,
			Method:        r.Method,
			Path:          r.URL.RequestURI(),
			Protocol:      r.Proto,
			ResponseCode:  rw.status,
			BytesReceived: r.ContentLength,
			BytesSent:     rw.bytes,
			Duration:      a.now().Sub(start),
			RemoteAddress: r.RemoteAddr,
			Authority:     r.Host,
			UserAgent:     r.Header.Get("User-Agent"),
			ForwardedFor:  r.Header.Get("X-Forwarded-For"),
			RequestID:     r.Header.Get("X-Request-Id"),
		})
	}
}

const (
	contentTypeText = "text/plain; charset=UTF-8"
	contentTypeJSON = "application/json"
	contentTypeHTML = "text/html; charset=UTF-8"
)

// recorder keeps the status and the byte count for stats and access logs.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if r.wroteHeader {
		return
	}
	r.wroteHeader = true
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets handlers push the answer out before a side effect (quit).
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// adminStats are Envoy's http.admin.* statistics.
type adminStats struct {
	rqTotal  *stats.Counter
	codes    *stats.CodeCounters
	cxTotal  *stats.Counter
	cxActive *stats.Gauge
}

func newAdminStats(s *stats.Store) *adminStats {
	sc := s.Scope("http.admin.")
	return &adminStats{
		rqTotal:  sc.Counter("downstream_rq_total"),
		codes:    stats.NewCodeCounters(sc, "downstream_rq_"),
		cxTotal:  sc.Counter("downstream_cx_total"),
		cxActive: sc.Gauge("downstream_cx_active", stats.Accumulate),
	}
}

// endpoints is the table of admin paths.
func (a *Admin) endpoints() []*endpoint {
	format := param{name: "format", help: "output format", choices: []string{"text", "json"}}
	return []*endpoint{
		{path: "/", help: "Admin home page", serve: a.handleHome},
		{path: "/certs", help: "print certs on machine", serve: a.handleCerts},
		{path: "/clusters", help: "upstream cluster status", serve: a.handleClusters,
			params: []param{format}},
		{path: "/config_dump", help: "dump current Envoy configs (experimental)", serve: a.handleConfigDump,
			params: []param{
				{name: "resource", help: "dump only the items of this repeated field of the config dumps"},
				{name: "mask", help: "field mask (comma-separated paths) applied to each dump, or to each item with resource"},
				{name: "name_regex", help: "dump only the resources whose name fully matches this RE2 regex"},
				{name: "include_eds", help: "also dump the endpoints of the clusters"},
			}},
		{path: "/drain_listeners", help: "drain listeners", mutates: true, serve: a.handleDrainListeners,
			params: []param{
				{name: "graceful", help: "enter the graceful drain period before the listeners close"},
				{name: "skip_exit", help: "keep running after the drain period (with graceful)"},
				{name: "inboundonly", help: "drain only listeners whose traffic_direction is INBOUND"},
			}},
		{path: "/healthcheck/fail", help: "cause the server to fail health checks", mutates: true, serve: a.handleHealthcheckFail},
		{path: "/healthcheck/ok", help: "cause the server to pass health checks", mutates: true, serve: a.handleHealthcheckOK},
		{path: "/help", help: "print out list of admin commands", serve: a.handleHelp},
		{path: "/hot_restart_version", help: "print the hot restart compatibility version", serve: a.handleHotRestartVersion},
		{path: "/listeners", help: "print listener info", serve: a.handleListeners, params: []param{format}},
		{path: "/logging", help: "query/change logging levels", mutates: true, serve: a.handleLogging,
			params: []param{
				{name: "paths", help: "set several loggers at once: <name1>:<level1>,<name2>:<level2>"},
				{name: "level", help: "set every logger to this level", choices: levelNames},
			}},
		{path: "/memory", help: "print current allocation/heap usage", serve: a.handleMemory},
		{path: "/quitquitquit", help: "exit the server", mutates: true, serve: a.handleQuit},
		{path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", serve: a.handleReady},
		{path: "/reset_counters", help: "reset all counters to zero", mutates: true, serve: a.handleResetCounters},
		{path: "/runtime", help: "print runtime values", serve: a.handleRuntime},
		{path: "/runtime_modify", help: "set runtime values in the admin layer: ?key1=value1&key2=value2 (an empty value removes the key)",
			mutates: true, serve: a.handleRuntimeModify},
		{path: "/server_info", help: "print server version/status information", serve: a.handleServerInfo},
		{path: "/stats", help: "print server stats", serve: a.handleStats,
			params: []param{
				{name: "usedonly", help: "only stats that were written since the server started"},
				{name: "filter", help: "RE2 regular expression the stat names must match"},
				{name: "format", help: "output format", choices: []string{"text", "json", "prometheus"}},
				{name: "type", help: "stat types to list", choices: []string{"All", "Counters", "Histograms", "Gauges"}},
				{name: "histogram_buckets", help: "histogram bucket mode", choices: []string{"cumulative", "disjoint", "summary", "none"}},
			}},
		{path: "/stats/prometheus", help: "print server stats in prometheus format", serve: a.handlePrometheus,
			params: []param{
				{name: "usedonly", help: "only stats that were written since the server started"},
				{name: "filter", help: "RE2 regular expression the stat names must match"},
				{name: "histogram_buckets", help: "histogram bucket mode", choices: []string{"cumulative", "summary"}},
			}},
	}
}

// helpText is /help's answer: the endpoints in path order, "(POST)" after
// the mutating ones, then one indented line per parameter.
func (a *Admin) helpText() string {
	var b strings.Builder
	b.WriteString("admin commands are:\n")
	for _, h := range a.handlers {
		post := ""
		if h.mutates {
			post = " (POST)"
		}
		fmt.Fprintf(&b, "  %s%s: %s\n", h.path, post, h.help)
		for _, p := range h.params {
			fmt.Fprintf(&b, "      %s: %s", p.name, p.help)
			if len(p.choices) > 0 {
				fmt.Fprintf(&b, "; One of (%s)", strings.Join(p.choices, ", "))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (a *Admin) handleHelp(w http.ResponseWriter, _ *http.Request) {
	w.Write([]byte(a.helpText()))
}

// writeText answers with a status and a text body.
func writeText(w http.ResponseWriter, code int, body string) {
	w.WriteHeader(code)
	w.Write([]byte(body))
}
