package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/wasmesh/wasmesh/server"
)

// repoRoot is the repository's absolute path (the tests run in e2e/).
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// proxy is a running wasmesh started from a templated bootstrap.
type proxy struct {
	t   testing.TB
	srv *server.Server
	// Dir is the test's scratch directory (bootstrap, logs, certificates).
	Dir string
	// LogPath is the process log (--log-path).
	LogPath string
}

// vars are the template values every bootstrap sees, plus the test's own.
type vars map[string]any

// startProxy renders testdata/<name> with v (plus Dir, Repo and
// AccessLog), starts the proxy from it and stops it when the test ends.
// Listeners and admin use port 0 in the bootstraps; their bound addresses
// come from the server. Extra command-line flags follow the defaults.
func startProxy(t testing.TB, name string, v vars, flags ...string) *proxy {
	t.Helper()
	dir := t.TempDir()
	cfg := renderBootstrap(t, name, v, dir)
	p := &proxy{t: t, Dir: dir, LogPath: filepath.Join(dir, "wasmesh.log")}
	args := append([]string{"-c", cfg, "-l", "error", "--log-path", p.LogPath, "--concurrency", "2", "--drain-time-s", "1"}, flags...)
	o, err := server.ParseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := server.LoadBootstrap(o)
	if err != nil {
		t.Fatalf("bootstrap %s: %v", name, err)
	}
	logging, err := server.NewLogging(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := server.New(ctx, o, b, logging)
	if err != nil {
		logging.Close()
		t.Fatalf("server.New(%s): %v", name, err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close(ctx)
		logging.Close()
		t.Fatalf("Start(%s): %v", name, err)
	}
	p.srv = s
	t.Cleanup(func() {
		s.Close(context.Background())
		logging.Close()
	})
	return p
}

// renderBootstrap renders testdata/<name> with v plus Dir, Repo and
// AccessLog into dir and returns the file's path.
func renderBootstrap(t testing.TB, name string, v vars, dir string) string {
	t.Helper()
	all := vars{"Dir": dir, "Repo": repoRoot(t), "AccessLog": filepath.Join(dir, "access.log")}
	for k, val := range v {
		all[k] = val
	}
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, all); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, name)
	if err := os.WriteFile(cfg, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// addr is a listener's bound host:port.
func (p *proxy) addr(listener string) string {
	p.t.Helper()
	a := p.srv.ListenerAddr(listener)
	if a == nil {
		p.t.Fatalf("no listener %q", listener)
	}
	return a.String()
}

// url is http://<listener address><path>.
func (p *proxy) url(listener, path string) string { return "http://" + p.addr(listener) + path }

// adminURL is the admin endpoint's URL for path.
func (p *proxy) adminURL(path string) string {
	p.t.Helper()
	a := p.srv.AdminAddr()
	if a == nil {
		p.t.Fatal("no admin address")
	}
	return "http://" + a.String() + path
}

// admin GETs an admin path and returns status and body.
func (p *proxy) admin(path string) (int, string) {
	p.t.Helper()
	resp, body := do(p.t, http.DefaultClient, mustReq(p.t, "GET", p.adminURL(path), nil))
	return resp.StatusCode, body
}

// adminPost POSTs to an admin path.
func (p *proxy) adminPost(path string) (int, string) {
	p.t.Helper()
	resp, body := do(p.t, http.DefaultClient, mustReq(p.t, "POST", p.adminURL(path), nil))
	return resp.StatusCode, body
}

// stat reads one counter or gauge from /stats?format=json (0 if absent).
func (p *proxy) stat(name string) int64 {
	p.t.Helper()
	_, body := p.admin("/stats?format=json&filter=^" + strings.ReplaceAll(name, ".", `\.`) + "$")
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		p.t.Fatalf("stats json: %v\n%s", err, body)
	}
	for _, s := range doc.Stats {
		if s.Name == name {
			var n int64
			_ = json.Unmarshal(s.Value, &n)
			return n
		}
	}
	return 0
}

// logText returns the process log so far.
func (p *proxy) logText() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readLines returns the non-empty lines of a file (none if it is missing).
func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// waitLines waits until the file at path has n lines and returns them.
func waitLines(t testing.TB, path string, n int) []string {
	t.Helper()
	var lines []string
	waitFor(t, fmt.Sprintf("%d lines in %s", n, filepath.Base(path)), 5*time.Second, func() bool {
		lines = readLines(path)
		return len(lines) >= n
	})
	return lines
}

// Clients.

// h1Client speaks HTTP/1.1 only.
func h1Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols:           protocols(true, false, false),
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
}

// h2cClient speaks HTTP/2 with prior knowledge over cleartext.
func h2cClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols:          protocols(false, false, true),
		DisableCompression: true,
	}}
}

// tlsClient speaks TLS with ALPN (h2 when h2, else http/1.1).
func tlsClient(cfg *tls.Config, h2 bool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols:          protocols(!h2, h2, false),
		TLSClientConfig:    cfg,
		DisableCompression: true,
	}}
}

func protocols(h1, h2, h2c bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(h1)
	p.SetHTTP2(h2)
	p.SetUnencryptedHTTP2(h2c)
	return p
}

func mustReq(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends req and reads the whole body.
func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

// get is do for a GET with optional headers (pairs).
func get(t testing.TB, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := mustReq(t, "GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return do(t, c, req)
}

// deadHost is a loopback address nothing in these tests listens on (they
// bind 127.0.0.1 and 127.0.0.2 only), so connecting to any of its ports is
// refused, even while parallel tests take and release ports.
const deadHost = "127.0.0.3"

// closedPort returns a port for deadHost (bootstraps put dead endpoints
// on 127.0.0.3).
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
