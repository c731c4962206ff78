package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	asOnce sync.Once
	asPath string
	asErr  error
)

// asFilter builds the AssemblyScript filter (wasm/testdata/asfilter) once
// and returns its path; without npm (scripts/deps.sh installs it) the test
// fails rather than pass unrun.
func asFilter(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: cannot build the AssemblyScript filter (wasm/testdata/asfilter/build.sh); scripts/deps.sh installs it")
	}
	asOnce.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(repoRoot(t), "wasm/testdata/asfilter/build.sh"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			asErr = err
			asPath = stderr.String()
			return
		}
		asPath = strings.TrimSpace(string(out))
	})
	if asErr != nil {
		t.Fatalf("wasm/testdata/asfilter/build.sh: %v\n%s", asErr, asPath)
	}
	return asPath
}

type wasmFixture struct {
	p    *proxy
	echo *upstream
}

// startWasm starts wasm.yaml with the service's singleton flag and
// --concurrency n.
func startWasm(t *testing.T, singleton bool, concurrency string) *wasmFixture {
	f := &wasmFixture{echo: startUpstream(t, "echo", nil)}
	callee := startUpstream(t, "callee", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "1")
		io.WriteString(w, "hi from "+r.URL.Path)
	}))
	f.p = startProxy(t, "wasm.yaml", vars{
		"Echo": f.echo.Port, "Callee": callee.Port, "TCPEcho": tcpEcho(t),
		"ASFilter": asFilter(t), "Singleton": singleton, "GRPC": startGRPCUpstream(t),
	}, "--component-log-level", "wasm:info", "--concurrency", concurrency)
	return f
}

// TestWasm runs the Proxy-Wasm checks that can share one proxy
// (wasm.yaml, --concurrency 2): HTTP filters with per-route configuration,
// callouts, filter-defined metrics and the network filter.
func TestWasm(t *testing.T) {
	t.Parallel()
	f := startWasm(t, true, "2")
	t.Run("http-filters", func(t *testing.T) { testWasmHTTPFilters(t, f) })
	t.Run("callouts", func(t *testing.T) { testWasmCallouts(t, f) })
	t.Run("metrics", func(t *testing.T) { testWasmMetrics(t, f) })
	t.Run("network-filter", func(t *testing.T) { testWasmNetworkFilter(t, f) })
}

// testWasmHTTPFilters: the C filter (my-filter) and the AssemblyScript
// filter as HTTP filters, with per-route filter configuration: my-filter
// is disabled in http_filters and enabled only on /c by an empty
// FilterConfig; the AssemblyScript filter is enabled and disabled on
// /no-as.
func testWasmHTTPFilters(t *testing.T, f *wasmFixture) {
	for _, tc := range []struct {
		path           string
		greeting, asRs string // response headers x-greeting, x-as-filter
		asRq           bool   // upstream saw x-as-request
	}{
		{"/c", "hello from C", "as-config", true},
		{"/", "", "as-config", true},
		{"/no-as", "", "", false},
	} {
		t.Run("path"+strings.ReplaceAll(tc.path, "/", "-"), func(t *testing.T) {
			for _, c := range []*http.Client{h1Client(), h2cClient()} {
				resp, body := get(t, c, f.p.url("http", tc.path))
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if got := resp.Header.Get("X-Greeting"); got != tc.greeting {
					t.Errorf("%s: x-greeting %q, want %q", resp.Proto, got, tc.greeting)
				}
				if got := resp.Header.Get("X-As-Filter"); got != tc.asRs {
					t.Errorf("%s: x-as-filter %q, want %q", resp.Proto, got, tc.asRs)
				}
				if e := parseEcho(t, body); (e.header("x-as-request") == "1") != tc.asRq {
					t.Errorf("%s: upstream x-as-request %q", resp.Proto, e.header("x-as-request"))
				}
			}
		})
	}
}

// testWasmCallouts: a filter calls clusters by name: an HTTP callout
// answered as a local response or continuing the request with its result,
// and a unary gRPC callout.
func testWasmCallouts(t *testing.T, f *wasmFixture) {
	c := h1Client()
	t.Run("http-respond", func(t *testing.T) {
		resp, body := get(t, c, f.p.url("http", "/t/http/call"), "x-cluster", "callout_target", "x-call-path", "/callee")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "status=200\nbody=hi from /callee\nheaders=") || !strings.Contains(body, "x-a=1") {
			t.Fatalf("respond: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("http-continue", func(t *testing.T) {
		resp, body := get(t, c, f.p.url("http", "/t/http/call"), "x-cluster", "callout_target", "x-call-path", "/second", "x-call-then", "continue")
		if resp.StatusCode != 200 {
			t.Fatalf("continue: %d %q", resp.StatusCode, body)
		}
		if e := parseEcho(t, body); e.header("x-callout-status") != "200" || e.header("x-callout-body") != "hi from /second" {
			t.Errorf("continued request headers %v", e.Headers)
		}
	})
	t.Run("http-unknown-cluster", func(t *testing.T) {
		resp, body := get(t, c, f.p.url("http", "/t/http/bad_cluster"))
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("unknown cluster: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("grpc-unary", func(t *testing.T) {
		resp, body := get(t, c, f.p.url("http", "/t/grpc/call"), "x-cluster", "grpc_up",
			"x-grpc-service", "grpc.health.v1.Health", "x-grpc-method", "Check")
		// HealthCheckResponse{status: SERVING} is the two bytes 08 01; as
		// in Envoy, a unary call delivers only the message.
		if resp.StatusCode != 200 || body != "message=\x08\x01" {
			t.Fatalf("grpc call: %d %q", resp.StatusCode, body)
		}
	})
}

// testWasmMetrics: metrics a filter defines appear in /stats and
// /stats/prometheus under the names it gave them.
func testWasmMetrics(t *testing.T, f *wasmFixture) {
	c := h1Client()
	for i, want := range []string{"3", "6"} {
		if _, body := get(t, c, f.p.url("http", "/t/metrics/counter"), "x-metric", "e2e_requests", "x-delta", "3"); body != want {
			t.Fatalf("counter after request %d: %q", i+1, body)
		}
	}
	if _, body := get(t, c, f.p.url("http", "/t/metrics/gauge"), "x-metric", "e2e_gauge", "x-value", "42"); body != "42" {
		t.Fatalf("gauge: %q", body)
	}
	_, stats := f.p.admin("/stats")
	for _, want := range []string{"e2e_requests: 6\n", "e2e_gauge: 42\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats lacks %q:\n%s", want, grepLines(stats, "e2e_"))
		}
	}
	_, prom := f.p.admin("/stats/prometheus")
	// Envoy exports custom (wasmcustom) metrics without the envoy_ prefix.
	for _, want := range []string{"# TYPE e2e_requests counter\ne2e_requests{} 6\n", "# TYPE e2e_gauge gauge\ne2e_gauge{} 42\n"} {
		if !strings.Contains(prom, want) {
			t.Errorf("/stats/prometheus lacks %q:\n%s", want, grepLines(prom, "e2e_"))
		}
	}
}

// testWasmNetworkFilter: envoy.filters.network.wasm in front of tcp_proxy
// sees and rewrites data both ways (">" prepended downstream, "<"
// appended upstream) and can close the connection.
func testWasmNetworkFilter(t *testing.T, f *wasmFixture) {
	conn, err := net.Dial("tcp", f.p.addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	want := ">hello<"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != want {
		t.Fatalf("echo through the filter %q (%v), want %q", got, err, want)
	}
	conn.Close()
	waitFor(t, "the filter's connection log lines", 5*time.Second, func() bool {
		l := f.p.logText()
		return strings.Contains(l, "new_connection") && strings.Contains(l, "downstream_close")
	})

	closing, err := net.Dial("tcp", f.p.addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer closing.Close()
	closing.SetDeadline(time.Now().Add(5 * time.Second))
	closing.Write([]byte("close please"))
	if b, err := io.ReadAll(closing); err != nil || len(b) != 0 {
		t.Fatalf("after proxy_close_stream: read %q, %v; want EOF", b, err)
	}
}

// TestWasmBootstrapService: an envoy.bootstrap.wasm WasmService with
// singleton: true runs one instance whatever --concurrency says, ticks,
// and receives what an HTTP filter (another VM) enqueues on its shared
// queue. Without singleton there is one instance per worker.
func TestWasmBootstrapService(t *testing.T) {
	t.Parallel()
	configured := "hostcalls: configure: tick=20,queue=e2e-jobs"
	for _, singleton := range []bool{true, false} {
		t.Run(map[bool]string{true: "singleton", false: "per-worker"}[singleton], func(t *testing.T) {
			t.Parallel()
			f := startWasm(t, singleton, "3")
			waitFor(t, "the service's ticks", 5*time.Second, func() bool {
				return strings.Contains(f.p.logText(), "hostcalls: tick 3")
			})
			want := 1
			if !singleton {
				want = 3
			}
			if n := strings.Count(f.p.logText(), configured); n != want {
				t.Errorf("%d instances configured, want %d", n, want)
			}
			if !singleton {
				return
			}
			resp, body := get(t, h1Client(), f.p.url("http", "/t/queue/enqueue"), "x-queue", "e2e-jobs", "x-value", "job-1", "x-vm-id", "svc")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("enqueue from the HTTP filter: %d %q", resp.StatusCode, body)
			}
			waitFor(t, "the service draining its queue", 5*time.Second, func() bool {
				return strings.Contains(f.p.logText(), "hostcalls: queue_ready e2e-jobs: job-1")
			})
			for _, l := range strings.Split(f.p.logText(), "\n") {
				if strings.Contains(l, "queue_ready e2e-jobs: job-1") && !(strings.Contains(l, "e2e-service") && strings.Contains(l, "svc")) {
					t.Errorf("service log line lacks plugin name / vm id: %s", l)
				}
			}
		})
	}
}
