package admin

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testAdmin is an admin serving on a real 127.0.0.1 socket.
type testAdmin struct {
	*Admin
	base   string
	client *http.Client
}

// startAdmin builds an admin from o (a fakeServer when o.Server is nil)
// and serves it until the test ends.
func startAdmin(t *testing.T, o Options) *testAdmin {
	t.Helper()
	if o.Server == nil {
		o.Server = &fakeServer{state: adminv3.ServerInfo_LIVE}
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testAdmin{Admin: a, base: "http://" + l.Addr().String(), client: &http.Client{Transport: tr}}
}

// do sends one request and returns the status, the body and the headers.
func (ta *testAdmin) do(t *testing.T, method, pathQuery string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ta.base+pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ta.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func (ta *testAdmin) get(t *testing.T, pathQuery string) (int, string) {
	t.Helper()
	code, body, _ := ta.do(t, http.MethodGet, pathQuery)
	return code, body
}

func (ta *testAdmin) post(t *testing.T, pathQuery string) (int, string) {
	t.Helper()
	code, body, _ := ta.do(t, http.MethodPost, pathQuery)
	return code, body
}

// getJSON fetches a JSON endpoint, checks its status and content type, and
// unmarshals it into m with protojson (unknown fields are errors).
func (ta *testAdmin) getJSON(t *testing.T, pathQuery string, m proto.Message) {
	t.Helper()
	code, body, h := ta.do(t, http.MethodGet, pathQuery)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", pathQuery, code, body)
	}
	if ct := h.Get("Content-Type"); ct != contentTypeJSON {
		t.Errorf("GET %s: content-type %q", pathQuery, ct)
	}
	if err := protojson.Unmarshal([]byte(body), m); err != nil {
		t.Fatalf("GET %s: %v\n%s", pathQuery, err, body)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// fakeServer implements Server.
type fakeServer struct {
	mu    sync.Mutex
	state adminv3.ServerInfo_State
	start time.Time
	opts  *adminv3.CommandLineOptions
	node  *corev3.Node
}

func (s *fakeServer) State() adminv3.ServerInfo_State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}
func (s *fakeServer) setState(st adminv3.ServerInfo_State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = st
}
func (s *fakeServer) Version() string {
	return "0000000000000000000000000000000000000000/1.36.0/Clean/RELEASE/BoringSSL"
}
func (s *fakeServer) StartTime() time.Time                            { return s.start }
func (s *fakeServer) CommandLineOptions() *adminv3.CommandLineOptions { return s.opts }
func (s *fakeServer) Node() *corev3.Node                              { return s.node }

// fakeLogging implements Logging over a map.
type fakeLogging struct {
	mu     sync.Mutex
	levels map[string]zapcore.Level
}

func newFakeLogging(components ...string) *fakeLogging {
	l := &fakeLogging{levels: map[string]zapcore.Level{}}
	for _, c := range components {
		l.levels[c] = zapcore.InfoLevel
	}
	return l
}

func (l *fakeLogging) Levels() [][2]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][2]string
	for c, lv := range l.levels {
		out = append(out, [2]string{c, fakeLevelName(lv)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func (l *fakeLogging) Set(c string, lv zapcore.Level) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.levels[c]; !ok {
		return false
	}
	l.levels[c] = lv
	return true
}

func (l *fakeLogging) SetAll(lv zapcore.Level) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.levels {
		l.levels[c] = lv
	}
}

// fakeParseLevel reads Envoy's level names the way server.ParseLevel does
// (trace is debug to zap; critical is DPanic; off is above Fatal).
func fakeParseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "trace", "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	case "warning", "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	case "critical":
		return zapcore.DPanicLevel, nil
	case "off":
		return zapcore.FatalLevel + 1, nil
	}
	return 0, errors.New("unknown level " + s)
}

func fakeLevelName(l zapcore.Level) string {
	switch l {
	case zapcore.DebugLevel:
		return "debug"
	case zapcore.InfoLevel:
		return "info"
	case zapcore.WarnLevel:
		return "warning"
	case zapcore.ErrorLevel:
		return "error"
	case zapcore.DPanicLevel:
		return "critical"
	}
	return "off"
}

func TestNewRequiresServerAndParseLevel(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without Server: want an error")
	}
	if _, err := New(Options{Server: &fakeServer{}, Logging: newFakeLogging("admin")}); err == nil {
		t.Error("New with Logging but no ParseLevel: want an error")
	}
}

func TestHelpGolden(t *testing.T) {
	ta := startAdmin(t, Options{})
	code, body := ta.get(t, "/help")
	if code != http.StatusOK {
		t.Fatalf("/help: %d", code)
	}
	golden(t, "help.golden", body)
}

func TestRouting(t *testing.T) {
	ta := startAdmin(t, Options{Quit: func() {}})
	for _, tc := range []struct {
		name, method, path string
		code               int
		bodyPrefix         string
		contentType        string
	}{
		{"unknown path", "GET", "/nope", 404, "invalid path. admin commands are:\n", contentTypeText},
		{"path with trailing slash is another path", "GET", "/ready/", 404, "invalid path.", contentTypeText},
		{"prefix of a path is not the path", "GET", "/stat", 404, "invalid path.", contentTypeText},
		{"query is ignored for routing", "GET", "/ready?x=1", 200, "LIVE\n", contentTypeText},
		{"GET on a mutating endpoint", "GET", "/healthcheck/fail", 405, "Method GET not allowed, POST required.", contentTypeText},
		{"PUT on a mutating endpoint", "PUT", "/quitquitquit", 405, "Method PUT not allowed, POST required.", contentTypeText},
		{"GET reset_counters", "GET", "/reset_counters", 405, "Method GET not allowed", contentTypeText},
		{"GET runtime_modify", "GET", "/runtime_modify?a=b", 405, "Method GET not allowed", contentTypeText},
		{"GET drain_listeners", "GET", "/drain_listeners", 405, "Method GET not allowed", contentTypeText},
		{"GET logging that changes a level", "GET", "/logging?level=debug", 405, "Method GET not allowed", contentTypeText},
		{"POST on a read endpoint", "POST", "/ready", 200, "LIVE\n", contentTypeText},
		{"home page", "GET", "/", 200, "<!DOCTYPE html>", contentTypeHTML},
		{"hot restart version", "GET", "/hot_restart_version", 200, "disabled", contentTypeText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := ta.do(t, tc.method, tc.path)
			if code != tc.code || !strings.HasPrefix(body, tc.bodyPrefix) {
				t.Errorf("%s %s = %d %q, want %d %q...", tc.method, tc.path, code, body, tc.code, tc.bodyPrefix)
			}
			if got := h.Get("Content-Type"); got != tc.contentType {
				t.Errorf("content-type %q, want %q", got, tc.contentType)
			}
			if got := h.Get("Cache-Control"); got != "no-cache, max-age=0" {
				t.Errorf("cache-control %q", got)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("x-content-type-options %q", got)
			}
		})
	}
	if ta.HealthCheckFailed() {
		t.Error("a refused GET /healthcheck/fail changed the flag")
	}
}

func TestHomePageListsEveryEndpoint(t *testing.T) {
	ta := startAdmin(t, Options{})
	_, body := ta.get(t, "/")
	for _, h := range ta.handlers {
		if h.path == "/" {
			continue
		}
		want := `<a href="` + h.path + `">`
		if h.mutates {
			want = `<form action="` + h.path + `" method="post">`
		}
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %s", want)
		}
	}
}

func TestHTTP2PriorKnowledge(t *testing.T) {
	ta := startAdmin(t, Options{})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(ta.base + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "LIVE\n" {
		t.Errorf("h2c /ready: %s %d %q", resp.Proto, resp.StatusCode, b)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	a, err := New(Options{Server: &fakeServer{state: adminv3.ServerInfo_LIVE}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l) }()
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + l.Addr().String() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	tr.CloseIdleConnections()
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

func TestServeReportsAcceptErrors(t *testing.T) {
	a, err := New(Options{Server: &fakeServer{}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := a.Serve(context.Background(), l); err == nil || !strings.Contains(err.Error(), "admin:") {
		t.Errorf("Serve on a closed listener = %v, want an admin error", err)
	}
}

// formBody posts form values (Envoy's admin reads them like query values).
func (ta *testAdmin) postForm(t *testing.T, path string, v url.Values) (int, string) {
	t.Helper()
	resp, err := ta.client.PostForm(ta.base+path, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// containsNormalized reports whether s contains sub once runs of spaces are
// collapsed (protojson varies its whitespace on purpose).
func containsNormalized(s, sub string) bool {
	collapse := func(x string) string { return strings.Join(strings.Fields(x), " ") }
	return strings.Contains(collapse(s), collapse(sub))
}
