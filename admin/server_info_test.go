package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestServerInfo(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start.Add(90*time.Second + 400*time.Millisecond)
	opts := &adminv3.CommandLineOptions{
		ConfigPath:  "envoy.yaml",
		Concurrency: 4,
		LogLevel:    "info",
		Mode:        adminv3.CommandLineOptions_Serve,
		DrainTime:   durationpb.New(600 * time.Second),
	}
	node := &corev3.Node{Id: "node1", Cluster: "cluster1", UserAgentName: "envoy"}
	srv := &fakeServer{state: adminv3.ServerInfo_LIVE, start: start, opts: opts, node: node}
	ta := startAdmin(t, Options{Server: srv, Now: func() time.Time { return now }})

	var info adminv3.ServerInfo
	ta.getJSON(t, "/server_info", &info)
	if info.GetVersion() != srv.Version() {
		t.Errorf("version %q", info.GetVersion())
	}
	if info.GetState() != adminv3.ServerInfo_LIVE {
		t.Errorf("state %v", info.GetState())
	}
	if got := info.GetUptimeCurrentEpoch().AsDuration(); got != 90*time.Second {
		t.Errorf("uptime_current_epoch %v, want 90s (whole seconds)", got)
	}
	if got := info.GetUptimeAllEpochs().AsDuration(); got != 90*time.Second {
		t.Errorf("uptime_all_epochs %v", got)
	}
	if info.GetHotRestartVersion() != "disabled" {
		t.Errorf("hot_restart_version %q", info.GetHotRestartVersion())
	}
	if !proto.Equal(info.GetCommandLineOptions(), opts) {
		t.Errorf("command_line_options %v", info.GetCommandLineOptions())
	}
	if !proto.Equal(info.GetNode(), node) {
		t.Errorf("node %v", info.GetNode())
	}

	// Envoy prints primitive fields with their defaults, in proto names.
	_, body := ta.get(t, "/server_info")
	for _, want := range []string{`"hot_restart_version"`, `"command_line_options"`, `"base_id"`, `"uptime_current_epoch": "90s"`} {
		if !containsNormalized(body, want) {
			t.Errorf("/server_info lacks %s:\n%s", want, body)
		}
	}

	ta.SetHealthCheckFailed(true)
	ta.getJSON(t, "/server_info", &info)
	if info.GetState() != adminv3.ServerInfo_DRAINING {
		t.Errorf("state with health check failed: %v, want DRAINING", info.GetState())
	}
}

func TestReady(t *testing.T) {
	srv := &fakeServer{}
	ta := startAdmin(t, Options{Server: srv})
	for _, tc := range []struct {
		state    adminv3.ServerInfo_State
		hcFailed bool
		code     int
		body     string
	}{
		{adminv3.ServerInfo_LIVE, false, 200, "LIVE\n"},
		{adminv3.ServerInfo_LIVE, true, 503, "DRAINING\n"},
		{adminv3.ServerInfo_PRE_INITIALIZING, false, 503, "PRE_INITIALIZING\n"},
		{adminv3.ServerInfo_INITIALIZING, false, 503, "INITIALIZING\n"},
		{adminv3.ServerInfo_INITIALIZING, true, 503, "INITIALIZING\n"},
		{adminv3.ServerInfo_DRAINING, false, 503, "DRAINING\n"},
	} {
		srv.setState(tc.state)
		ta.SetHealthCheckFailed(tc.hcFailed)
		code, body := ta.get(t, "/ready")
		if code != tc.code || body != tc.body {
			t.Errorf("state %v hc failed %v: /ready = %d %q, want %d %q", tc.state, tc.hcFailed, code, body, tc.code, tc.body)
		}
	}
}

func TestHealthcheckFailAndOK(t *testing.T) {
	ta := startAdmin(t, Options{})
	steps := []struct {
		path      string
		wantFlag  bool
		wantReady int
	}{
		{"/healthcheck/fail", true, 503},
		{"/healthcheck/fail", true, 503},
		{"/healthcheck/ok", false, 200},
		{"/healthcheck/ok", false, 200},
	}
	for _, s := range steps {
		code, body := ta.post(t, s.path)
		if code != 200 || body != "OK\n" {
			t.Fatalf("POST %s = %d %q", s.path, code, body)
		}
		if ta.HealthCheckFailed() != s.wantFlag {
			t.Errorf("after %s HealthCheckFailed = %v", s.path, !s.wantFlag)
		}
		if code, _ := ta.get(t, "/ready"); code != s.wantReady {
			t.Errorf("after %s /ready = %d, want %d", s.path, code, s.wantReady)
		}
	}
}

func TestQuitQuitQuit(t *testing.T) {
	quit := make(chan struct{}, 1)
	ta := startAdmin(t, Options{Quit: func() { quit <- struct{}{} }})
	code, body := ta.post(t, "/quitquitquit")
	if code != 200 || body != "OK\n" {
		t.Errorf("POST /quitquitquit = %d %q", code, body)
	}
	select {
	case <-quit:
	default:
		t.Error("Quit was not called")
	}
	if code, _ := ta.get(t, "/quitquitquit"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /quitquitquit = %d", code)
	}
	select {
	case <-quit:
		t.Error("GET /quitquitquit called Quit")
	default:
	}

	noQuit := startAdmin(t, Options{})
	if code, _ := noQuit.post(t, "/quitquitquit"); code != http.StatusNotImplemented {
		t.Errorf("POST /quitquitquit without Quit = %d, want 501", code)
	}
}

func TestMemory(t *testing.T) {
	ta := startAdmin(t, Options{})
	var m adminv3.Memory
	ta.getJSON(t, "/memory", &m)
	if m.GetAllocated() == 0 || m.GetHeapSize() == 0 || m.GetTotalPhysicalBytes() == 0 {
		t.Errorf("memory fields are zero: %v", &m)
	}
	if m.GetAllocated() > m.GetHeapSize() {
		t.Errorf("allocated %d > heap_size %d", m.GetAllocated(), m.GetHeapSize())
	}
	if m.GetPageheapFree()+m.GetPageheapUnmapped() > m.GetHeapSize() {
		t.Errorf("free %d + unmapped %d > heap_size %d", m.GetPageheapFree(), m.GetPageheapUnmapped(), m.GetHeapSize())
	}
	// Every field is printed, zero or not.
	_, body := ta.get(t, "/memory")
	for _, f := range []string{"allocated", "heap_size", "pageheap_unmapped", "pageheap_free", "total_thread_cache", "total_physical_bytes"} {
		if !strings.Contains(body, `"`+f+`"`) {
			t.Errorf("/memory lacks %s:\n%s", f, body)
		}
	}
}
