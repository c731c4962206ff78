package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// flaky is an upstream that fails on purpose, per key (request header
// x-key): the first x-fail-count requests answer x-fail-status, or, with
// x-slow, hang until the client goes away or 3 s pass. Later requests are
// echoed.
type flaky struct {
	mu    sync.Mutex
	count map[string]int
}

func newFlaky() *flaky { return &flaky{count: map[string]int{}} }

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("X-Key")
	f.mu.Lock()
	f.count[key]++
	n := f.count[key]
	f.mu.Unlock()
	fails, _ := strconv.Atoi(r.Header.Get("X-Fail-Count"))
	if n <= fails {
		if r.Header.Get("X-Reset") != "" {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if r.Header.Get("X-Slow") != "" {
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
			return
		}
		code, _ := strconv.Atoi(r.Header.Get("X-Fail-Status"))
		w.WriteHeader(code)
		fmt.Fprintf(w, "failure %d", n)
		return
	}
	echo("flaky")(w, r)
}

func (f *flaky) hits(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[key]
}

// TestRetries: retry_on 5xx, gateway-error, retriable-status-codes and
// connect-failure with num_retries against upstreams that fail the first
// N requests on purpose; per_try_timeout; response flags URX and UF in the
// access log; x-envoy-upstream-service-time.
func TestRetries(t *testing.T) {
	t.Parallel()
	f := newFlaky()
	up := startUpstream(t, "flaky", f)
	dead := closedPort(t)
	p := startProxy(t, "retry.yaml", vars{"Up": up.Port, "Dead": dead})
	c := h1Client()
	deadAddr := fmt.Sprintf("%s:%d", deadHost, dead)
	upHost := up.Addr()

	cases := []struct {
		name, path          string
		failStatus, fails   int
		slow, reset         bool
		wantStatus, wantHit int
		wantLog             string // access log line without the path
	}{
		{"5xx-recovers", "/5xx/a", 503, 2, false, false, 200, 3, "200 - " + upHost},
		{"5xx-500-recovers", "/5xx/b", 500, 1, false, false, 200, 2, "200 - " + upHost},
		{"5xx-exhausted", "/5xx/c", 503, 5, false, false, 503, 3, "503 URX " + upHost},
		{"gateway-error-502", "/gateway-error/a", 502, 1, false, false, 200, 2, "200 - " + upHost},
		{"gateway-error-not-500", "/gateway-error/b", 500, 1, false, false, 500, 1, "500 - " + upHost},
		{"status-codes-418", "/status-codes/a", 418, 1, false, false, 200, 2, "200 - " + upHost},
		{"status-codes-not-503", "/status-codes/b", 503, 1, false, false, 503, 1, "503 - " + upHost},
		{"no-policy", "/no-retry/a", 503, 1, false, false, 503, 1, "503 - " + upHost},
		{"per-try-timeout-recovers", "/per-try/a", 0, 1, true, false, 200, 2, "200 - " + upHost},
		{"per-try-timeout-exhausted", "/per-try/b", 0, 2, true, false, 504, 2, "504 UT,URX " + upHost},
		{"reset-recovers", "/reset/a", 0, 1, false, true, 200, 2, "200 - " + upHost},
		{"reset-no-policy-fresh-connection", "/fresh/reset", 0, 1, false, true, 503, 1, "503 UC " + upHost},
		{"reset-no-policy-reused-connection", "/no-retry/reset", 0, 1, false, true, 503, 1, "503 UC " + upHost},
		{"retriable-4xx-409", "/retriable-4xx/a", 409, 1, false, false, 200, 2, "200 - " + upHost},
		{"retriable-4xx-not-404", "/retriable-4xx/b", 404, 1, false, false, 404, 1, "404 - " + upHost},
		{"connect-failure-exhausted", "/connect-failure/dead/a", 0, 0, false, false, 503, 0, "503 UF,URX " + deadAddr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, body := get(t, c, p.url("retry", tc.path), "x-key", tc.path,
				"x-fail-count", strconv.Itoa(tc.fails), "x-fail-status", strconv.Itoa(tc.failStatus), "x-slow", map[bool]string{true: "1"}[tc.slow], "x-reset", map[bool]string{true: "1"}[tc.reset])
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := f.hits(tc.path); got != tc.wantHit {
				t.Errorf("upstream attempts %d, want %d", got, tc.wantHit)
			}
			if tc.wantStatus == 200 {
				if _, err := strconv.Atoi(resp.Header.Get("X-Envoy-Upstream-Service-Time")); err != nil {
					t.Errorf("x-envoy-upstream-service-time %q", resp.Header.Get("X-Envoy-Upstream-Service-Time"))
				}
			}
			if tc.slow && time.Since(start) > 2*time.Second {
				t.Errorf("per_try_timeout did not cut the slow attempt: %v", time.Since(start))
			}
			line := findLog(t, accessLog(p), tc.path)
			if want := tc.wantLog + " " + tc.path; line != want {
				t.Errorf("access log %q, want %q", line, want)
			}
		})
	}

	t.Run("connect-failure-recovers", func(t *testing.T) {
		// Half the picks land on the dead host; each is retried on the
		// other host. Without a policy the same pattern fails (UF).
		for i := 0; i < 6; i++ {
			path := fmt.Sprintf("/connect-failure/half/%d", i)
			resp, body := get(t, c, p.url("retry", path))
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
		}
		failed := 0
		for i := 0; i < 6; i++ {
			path := fmt.Sprintf("/no-retry/half/%d", i)
			resp, _ := get(t, c, p.url("retry", path))
			if resp.StatusCode == 503 {
				failed++
				if line := findLog(t, accessLog(p), path); line != "503 UF "+deadAddr+" "+path {
					t.Errorf("access log %q", line)
				}
			}
		}
		if failed == 0 {
			t.Error("without retry_policy no request hit the dead host")
		}
	})
}

func accessLog(p *proxy) string { return p.Dir + "/access.log" }

// findLog waits for the access log line ending with " "+suffix.
func findLog(t testing.TB, path, suffix string) string {
	t.Helper()
	var found string
	waitFor(t, "access log line for "+suffix, 5*time.Second, func() bool {
		for _, l := range readLines(path) {
			if strings.HasSuffix(l, " "+suffix) || l == suffix {
				found = l
				return true
			}
		}
		return false
	})
	return found
}
