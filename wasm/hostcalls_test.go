package wasm_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
	"github.com/wasmesh/wasmesh/wasm/wasmtest"
)

// The hostcalls tests drive wasm/testdata/hostcalls/hostcalls.wasm, a C
// filter whose request path selects a case, through the real host (package
// wasm, through wasmtest). Its README is the contract: every case listed
// there has at least one row in a table of these files, which
// TestHostcallsCoverage checks. One test per ABI area:
//
//	hostcalls_basic_test.go     logging, time, ticks, contexts, configuration, buffers
//	hostcalls_http_test.go      bodies, header maps, stream control, local responses, lifecycle
//	hostcalls_callouts_test.go  HTTP and gRPC callouts against real servers on 127.0.0.1
//	hostcalls_props_test.go     properties, foreign functions, WASI, and what the
//	                            package's own shared data/queue/metric tests leave out
//
// Shared data, queues and metrics are driven through the same module by
// shareddata_test.go, queues_test.go and metrics_test.go (package wasm).

const (
	hcWasm   = "testdata/hostcalls/hostcalls.wasm"
	hcReadme = "testdata/hostcalls/README.md"
	// hcWait bounds every wait for an asynchronous event (tick, callout).
	hcWait = 5 * time.Second
)

// hcLine is a log line a case must produce: its level and exact message.
type hcLine struct {
	level zapcore.Level
	msg   string
}

func hcInfo(msg string) hcLine  { return hcLine{zapcore.InfoLevel, msg} }
func hcError(msg string) hcLine { return hcLine{zapcore.ErrorLevel, msg} }

// hcCase is one request through the module and what must come out of it.
type hcCase struct {
	// name names the subtest; empty means the path and headers.
	name string
	// path is the request :path; hdrs are extra request headers (the
	// case's inputs), added after :method GET, :path, :authority
	// example.com and :scheme http.
	path string
	hdrs []string
	// x gives the request body and trailers and the upstream response
	// (RequestHeaders is ignored: it is built from path and hdrs).
	x wasmtest.Exchange

	// status is the wanted local response status (0: no local response)
	// and body its exact body, or bodyRE a pattern the whole body matches.
	status int
	body   string
	bodyRE string
	// grpc is the wanted grpc_status of the local response; 0 means none
	// (-1), which is what every case sends but local/grpc_status.
	grpc int32

	// logs must be logged by the case, in this order (other lines may come
	// in between); an ERROR line of the module that is not listed fails
	// the case.
	logs []hcLine
	// absent must not be a substring of any line the case logs.
	absent []string
	// check makes further assertions.
	check func(t *testing.T, r wasmtest.Result)
}

func (c hcCase) label() string {
	if c.name != "" {
		return c.name
	}
	l := strings.TrimPrefix(c.path, "/t/")
	for k := 0; k+1 < len(c.hdrs); k += 2 {
		l += " " + c.hdrs[k] + "=" + c.hdrs[k+1]
	}
	return l
}

// hcRequest is the request header list of a case.
func hcRequest(path string, hdrs ...string) []string {
	return append([]string{":method", "GET", ":path", path, ":authority", "example.com", ":scheme", "http"}, hdrs...)
}

// hcHarness starts the module with the harness's defaults for these tests:
// plugin and VM named "hostcalls", log lines kept but not copied to the
// test output (they are printed when the test fails).
func hcHarness(t *testing.T, o wasmtest.Options) *wasmtest.Harness {
	t.Helper()
	h, err := hcStart(t, o)
	if err != nil {
		t.Fatalf("hostcalls: %v\nlog lines:\n%s", err, h.Logs())
	}
	return h
}

func hcStart(t *testing.T, o wasmtest.Options) (*wasmtest.Harness, error) {
	t.Helper()
	o.Path = hcWasm
	o.Quiet = true
	if o.Plugin.Name == "" {
		o.Plugin.Name = "hostcalls"
	}
	if o.VM.ID == "" {
		o.VM.ID = "hostcalls"
	}
	h, err := wasmtest.Start(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log lines:\n%s", h.Logs())
		}
	})
	return h, err
}

// hcRun runs each case as a subtest, one after the other, on h.
func hcRun(t *testing.T, h *wasmtest.Harness, cases []hcCase, opts ...wasmtest.StreamOption) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.label(), func(t *testing.T) {
			before := len(h.Logs())
			x := c.x
			x.RequestHeaders = hcRequest(c.path, c.hdrs...)
			r := h.Run(x, opts...)
			hcCheck(t, c, r, h.Logs()[before:])
		})
	}
}

// hcCheck asserts a case's outcome.
func hcCheck(t *testing.T, c hcCase, r wasmtest.Result, logs wasmtest.Logs) {
	t.Helper()
	if r.Failure != nil {
		t.Fatalf("filter failed: %v", r.Failure)
	}
	hcCheckLocal(t, c, r.Local)
	hcCheckLogs(t, c, logs)
	if c.check != nil {
		c.check(t, r)
	}
}

// hcCheckLocal asserts the local response a case wants (or that there is
// none).
func hcCheckLocal(t *testing.T, c hcCase, lr *wasm.LocalResponse) {
	t.Helper()
	if c.status == 0 {
		if lr != nil {
			t.Fatalf("unexpected local response %d %q", lr.StatusCode, lr.Body)
		}
		return
	}
	if lr == nil {
		t.Fatalf("no local response, want %d %q", c.status, c.body)
	}
	if int(lr.StatusCode) != c.status {
		t.Errorf("status %d, want %d (body %q)", lr.StatusCode, c.status, lr.Body)
	}
	if c.bodyRE != "" {
		if !regexp.MustCompile(`\A(?:` + c.bodyRE + `)\z`).Match(lr.Body) {
			t.Errorf("body %q does not match %s", lr.Body, c.bodyRE)
		}
	} else if string(lr.Body) != c.body {
		t.Errorf("body %q, want %q", lr.Body, c.body)
	}
	if lr.Details != "hostcalls" {
		t.Errorf("details %q, want hostcalls", lr.Details)
	}
	want := c.grpc
	if want == 0 {
		want = -1
	}
	if lr.GRPCStatus != want {
		t.Errorf("grpc_status %d, want %d", lr.GRPCStatus, want)
	}
}

// hcCheckLogs asserts that logs hold c.logs in order, nothing in
// c.absent, and no module ERROR line c.logs does not list.
func hcCheckLogs(t *testing.T, c hcCase, logs wasmtest.Logs) {
	t.Helper()
	k := 0
	for _, want := range c.logs {
		for k < len(logs) && (logs[k].Message != want.msg || logs[k].Level != want.level) {
			k++
		}
		if k == len(logs) {
			t.Errorf("no %s line %q (in order) among:\n%s", want.level.CapitalString(), want.msg, logs)
			return
		}
		k++
	}
	for _, e := range logs {
		for _, a := range c.absent {
			if strings.Contains(e.Message, a) {
				t.Errorf("unexpected line %q", e.Message)
			}
		}
		if e.Level >= zapcore.ErrorLevel && strings.HasPrefix(e.Message, "hostcalls: ") && !hcListed(c.logs, e) {
			t.Errorf("unexpected ERROR line %q", e.Message)
		}
	}
}

func hcListed(lines []hcLine, e wasmtest.LogEntry) bool {
	for _, l := range lines {
		if l.msg == e.Message && l.level == e.Level {
			return true
		}
	}
	return false
}

// hcWaitLine waits for a line with exactly this level and message.
func hcWaitLine(t *testing.T, h *wasmtest.Harness, l hcLine) wasmtest.LogEntry {
	t.Helper()
	deadline := time.Now().Add(hcWait)
	for {
		for _, e := range h.Logs() {
			if e.Message == l.msg && e.Level == l.level {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s line %q after %v", l.level.CapitalString(), l.msg, hcWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// hcCount counts the lines with exactly this message.
func hcCount(h *wasmtest.Harness, msg string) int { return len(h.Logs().Message(msg)) }

// TestHostcallsGeneral covers the module's general rules (README §1): case
// selection, unknown cases, pass-through of other paths.
func TestHostcallsGeneral(t *testing.T) {
	h := hcHarness(t, wasmtest.Options{})
	passThrough := func(t *testing.T, r wasmtest.Result) {
		for _, a := range r.Actions {
			if a.Action != wasm.ActionContinue {
				t.Errorf("%v returned %v, want CONTINUE", a.Phase, a.Action)
			}
		}
		if len(r.Actions) != 6 {
			t.Errorf("phases %v, want all six", r.Actions)
		}
		if string(r.Request.Body) != "req" || string(r.Response.Body) != "resp" {
			t.Errorf("bodies %q %q changed", r.Request.Body, r.Response.Body)
		}
	}
	full := wasmtest.Exchange{
		RequestBody: []byte("req"), RequestTrailers: []string{"x-rt", "1"},
		ResponseHeaders: []string{":status", "200"}, ResponseBody: []byte("resp"), ResponseTrailers: []string{"x-st", "1"},
	}
	hcRun(t, h, []hcCase{
		{name: "other path passes through", path: "/", x: full, absent: []string{"hostcalls: "}, check: passThrough},
		{name: "prefix without slash passes through", path: "/tx/log/get_level", x: full, absent: []string{"hostcalls: "}, check: passThrough},
		{name: "unknown case", path: "/t/no/such_case", status: 404, body: "unknown case no/such_case"},
		{name: "unknown case stops at the query", path: "/t/nope?x=/t/log/levels", status: 404, body: "unknown case nope"},
		{name: "query is not part of the case", path: "/t/log/get_level?x=1", status: 200, body: "2"},
	})

	// After a local response the module ignores the stream's later
	// callbacks: a response map case answered 400 in proxy_on_request_headers
	// does not act on the response headers.
	t.Run("callbacks after a local response", func(t *testing.T) {
		before := len(h.Logs())
		s := h.HTTP()
		s.RequestHeadersEnd(hcRequest("/t/response_headers/get")...)
		s.ResponseHeadersEnd(":status", "200")
		s.ResponseTrailers("x-t", "1")
		s.Done()
		hcCheckLocal(t, hcCase{status: 400, body: "missing request header x-name"}, s.LocalResponse())
		if l := h.Logs()[before:].Containing("hostcalls: response_headers/"); len(l) > 0 {
			t.Fatalf("the module acted after its local response:\n%s", l)
		}
	})
}

// TestHostcallsCoverage fails when a case path listed in the README's
// case tables (§4, with the header map cases expanded) is not exercised by
// a test table in this directory, or when a test of these files uses a
// path the README does not list: the contract and the tests cannot drift.
func TestHostcallsCoverage(t *testing.T) {
	readme, err := os.ReadFile(hcReadme)
	if err != nil {
		t.Fatal(err)
	}
	listed := hcReadmeCases(t, string(readme))
	if len(listed) < 100 {
		t.Fatalf("only %d cases parsed from the README; has its layout changed?", len(listed))
	}

	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	// A path counts when it appears as a Go string literal, alone or
	// followed by a query: "/t/log/levels" or "/t/log/levels?x=1".
	lit := regexp.MustCompile(`"/t/([A-Za-z0-9_]+/[A-Za-z0-9_]+)[?"]`)
	used := map[string]bool{}
	ours := map[string][]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			used[m[1]] = true
			if strings.HasPrefix(f, "hostcalls") {
				ours[m[1]] = append(ours[m[1]], f)
			}
		}
	}
	var missing []string
	for _, c := range listed {
		if !used[c] {
			missing = append(missing, "/t/"+c)
		}
	}
	if len(missing) > 0 {
		t.Errorf("README cases no test exercises (%d of %d):\n%s", len(missing), len(listed), strings.Join(missing, "\n"))
	} else {
		t.Logf("%d README cases, all exercised", len(listed))
	}
	known := map[string]bool{"no/such_case": true} // TestHostcallsGeneral's unknown case
	for _, c := range listed {
		known[c] = true
	}
	var extra []string
	for c, fs := range ours {
		if !known[c] {
			extra = append(extra, "/t/"+c+" in "+strings.Join(fs, ", "))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("paths the README does not list:\n%s", strings.Join(extra, "\n"))
	}
}

// hcReadmeCases parses the case names of README §4: the first column of
// every table row that starts with a /t/ path, plus /t/<map>/<op> for the
// maps named in the header map section and every op of its op table.
func hcReadmeCases(t *testing.T, readme string) []string {
	t.Helper()
	start := strings.Index(readme, "## 4. Test cases")
	end := strings.Index(readme, "## 5.")
	if start < 0 || end < start {
		t.Fatal("README has no section 4")
	}
	sec := readme[start:end]
	seen := map[string]bool{}
	var out []string
	add := func(c string) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	row := regexp.MustCompile("(?m)^\\| `/t/([a-z0-9_]+/[a-z0-9_]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		add(m[1])
	}

	ms := strings.Index(sec, "### Header maps")
	me := strings.Index(sec, "### Stream control")
	if ms < 0 || me < ms {
		t.Fatal("README has no header map section")
	}
	maps := sec[ms:me]
	intro := maps[:strings.Index(maps, "| Op |")]
	var mapNames []string
	for _, m := range regexp.MustCompile("`((?:request|response)_(?:headers|trailers))`").FindAllStringSubmatch(intro, -1) {
		if !hcContains(mapNames, m[1]) {
			mapNames = append(mapNames, m[1])
		}
	}
	ops := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| `proxy_").FindAllStringSubmatch(maps, -1)
	if len(mapNames) != 4 || len(ops) != 7 {
		t.Fatalf("header map section: maps %v, %d ops; has its layout changed?", mapNames, len(ops))
	}
	for _, m := range mapNames {
		for _, op := range ops {
			add(m + "/" + op[1])
		}
	}
	return out
}

func hcContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
