package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// exampleConfig rewrites an example's fixed ports to free ones and its
// relative paths to the repository root.
func exampleConfig(t *testing.T, path string, ports map[string]int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, p := range ports {
		s = strings.ReplaceAll(s, "port_value: "+old, fmt.Sprintf("port_value: %d", p))
	}
	s = strings.ReplaceAll(s, "filename: examples/", "filename: ../examples/")
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	stdout *strings.Builder
}

// runMain starts the proxy through its command line and waits for url to
// answer.
func runMain(t *testing.T, url string, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), stdout: &strings.Builder{}}
	go func() { r.done <- Main(ctx, "wasmesh", args, io.Discard, io.Discard) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-r.done:
			t.Fatalf("proxy exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not answer on %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	return r
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestExampleGreeting runs examples/envoy/greeting.yaml as a user would.
func TestExampleGreeting(t *testing.T) {
	in, up, adm := freePort(t), freePort(t), freePort(t)
	cfg := exampleConfig(t, "../examples/envoy/greeting.yaml", map[string]int{"10000": in, "10001": up, "9901": adm})
	runMain(t, fmt.Sprintf("http://127.0.0.1:%d/ready", adm), "-c", cfg, "-l", "error", "--drain-time-s", "1", "--concurrency", "2")
	resp, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/hello", in))
	if resp.StatusCode != 200 || resp.Header.Get("X-Greeting") != "Hello from wasmesh using WebAssembly!" || !strings.Contains(body, "embedded upstream") {
		t.Fatalf("status %d greeting %q body %q", resp.StatusCode, resp.Header.Get("X-Greeting"), body)
	}
	_, stats := get(t, fmt.Sprintf("http://127.0.0.1:%d/stats?filter=ingress_http.downstream_rq_2xx", adm))
	if !strings.Contains(stats, "http.ingress_http.downstream_rq_2xx: 1") {
		t.Fatalf("stats: %s", stats)
	}
	_, clusters := get(t, fmt.Sprintf("http://127.0.0.1:%d/clusters", adm))
	if !strings.Contains(clusters, fmt.Sprintf("backend::127.0.0.1:%d::rq_total::1", up)) {
		t.Fatalf("/clusters lacks the host's request count:\n%s", clusters)
	}
}

func TestQuitQuitQuitDrainsAndExits(t *testing.T) {
	in, up, adm := freePort(t), freePort(t), freePort(t)
	cfg := exampleConfig(t, "../examples/envoy/greeting.yaml", map[string]int{"10000": in, "10001": up, "9901": adm})
	r := runMain(t, fmt.Sprintf("http://127.0.0.1:%d/ready", adm), "-c", cfg, "-l", "error", "--drain-time-s", "1")
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/quitquitquit", adm), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
		r.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after /quitquitquit")
	}
}

func TestValidateNamesTheFieldForBrokenBootstraps(t *testing.T) {
	want, err := os.ReadFile("testdata/broken/want.txt")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(want)))
	for sc.Scan() {
		file, substr, _ := strings.Cut(sc.Text(), "\t")
		t.Run(file+"/"+substr, func(t *testing.T) {
			err := Main(context.Background(), "wasmesh", []string{"-c", "testdata/broken/" + file, "--mode", "validate", "-l", "off"}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), substr) {
				t.Fatalf("validate error %v does not name %q", err, substr)
			}
		})
	}
}
