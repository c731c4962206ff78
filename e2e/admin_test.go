package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestAdmin exercises the admin endpoints of a running proxy after one
// proxied request.
func TestAdmin(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "backend", nil)
	p := startProxy(t, "admin.yaml", vars{"Up": up.Port})
	if resp, _ := get(t, h1Client(), p.url("ingress", "/x")); resp.StatusCode != 200 {
		t.Fatalf("proxied request: %d", resp.StatusCode)
	}
	host := up.Addr()

	t.Run("ready", func(t *testing.T) {
		code, body := p.admin("/ready")
		if code != 200 || !strings.EqualFold(strings.TrimSpace(body), "LIVE") {
			t.Fatalf("/ready %d %q", code, body)
		}
	})
	t.Run("server_info", func(t *testing.T) {
		code, body := p.admin("/server_info")
		var info struct {
			Version    string `json:"version"`
			State      string `json:"state"`
			Node       struct{ ID, Cluster string }
			CmdLine    map[string]any `json:"command_line_options"`
			UptimeCurr string         `json:"uptime_current_epoch"`
		}
		if err := json.Unmarshal([]byte(body), &info); code != 200 || err != nil {
			t.Fatalf("/server_info %d %v: %s", code, err, body)
		}
		if info.State != "LIVE" || info.Node.ID != "e2e-node" || info.Node.Cluster != "e2e-cluster" ||
			!strings.HasSuffix(info.Version, "/1.36.0/Clean/RELEASE/BoringSSL") || fmt.Sprint(info.CmdLine["concurrency"]) != "2" {
			t.Fatalf("/server_info %+v", info)
		}
	})
	t.Run("listeners", func(t *testing.T) {
		_, text := p.admin("/listeners")
		if want := "ingress::" + p.addr("ingress"); !strings.Contains(text, want) {
			t.Errorf("/listeners %q lacks %q", text, want)
		}
		_, js := p.admin("/listeners?format=json")
		var doc struct {
			Statuses []struct {
				Name         string `json:"name"`
				LocalAddress struct {
					SocketAddress struct {
						Address   string `json:"address"`
						PortValue int    `json:"port_value"`
					} `json:"socket_address"`
				} `json:"local_address"`
			} `json:"listener_statuses"`
		}
		if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Statuses) != 1 {
			t.Fatalf("/listeners?format=json %v: %s", err, js)
		}
		s := doc.Statuses[0]
		if got := fmt.Sprintf("%s::%s:%d", s.Name, s.LocalAddress.SocketAddress.Address, s.LocalAddress.SocketAddress.PortValue); got != "ingress::"+p.addr("ingress") {
			t.Errorf("/listeners?format=json: %s", got)
		}
	})
	t.Run("clusters", func(t *testing.T) {
		_, text := p.admin("/clusters")
		for _, want := range []string{
			"backend::" + host + "::rq_total::1",
			"backend::" + host + "::rq_success::1",
			"backend::" + host + "::health_flags::healthy",
			"backend::" + host + "::weight::1",
			"spare::" + host + "::rq_total::0",
			"backend::default_priority::max_connections::1024",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/clusters lacks %q", want)
			}
		}
		_, js := p.admin("/clusters?format=json")
		var doc struct {
			Statuses []struct {
				Name string `json:"name"`
			} `json:"cluster_statuses"`
		}
		if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Statuses) != 2 {
			t.Errorf("/clusters?format=json %v: %.300s", err, js)
		}
	})
	t.Run("config_dump", func(t *testing.T) {
		_, all := p.admin("/config_dump")
		for _, want := range []string{
			"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
			"type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
			"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
			"type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
			`"admin_routes"`,
		} {
			if !strings.Contains(all, want) {
				t.Errorf("/config_dump lacks %s", want)
			}
		}
		_, body := p.admin("/config_dump?resource=static_clusters")
		var doc struct {
			Configs []struct {
				Type    string `json:"@type"`
				Cluster struct {
					Name string `json:"name"`
				} `json:"cluster"`
			} `json:"configs"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Configs) != 2 {
			t.Fatalf("?resource=static_clusters %v: %.400s", err, body)
		}
		for i, want := range []string{"backend", "spare"} {
			c := doc.Configs[i]
			if c.Type != "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster" || c.Cluster.Name != want {
				t.Errorf("configs[%d] = %+v", i, c)
			}
		}
	})
	t.Run("stats", func(t *testing.T) {
		_, text := p.admin("/stats")
		for _, want := range []string{
			"http.admin_e2e.downstream_rq_2xx: 1",
			"http.admin_e2e.downstream_rq_total: 1",
			"cluster.backend.upstream_rq_total: 1",
			"cluster.backend.upstream_rq_200: 1",
			"cluster.spare.upstream_rq_total: 0",
		} {
			if !strings.Contains(text, want+"\n") {
				t.Errorf("/stats lacks %q", want)
			}
		}
		// As in Envoy, listener stats are named after the configured
		// address (port 0 here), not the bound one.
		ingress := "127.0.0.1_0"
		for name, want := range map[string]int64{
			"listener." + ingress + ".downstream_cx_total": 1,
			"cluster.backend.membership_healthy":           1,
			"cluster.backend.membership_total":             1,
			"http.admin_e2e.downstream_rq_http1_total":     1,
		} {
			if got := p.stat(name); got != want {
				t.Errorf("%s = %d, want %d", name, got, want)
			}
		}
		_, filtered := p.admin("/stats?filter=upstream_rq_total")
		if strings.Contains(filtered, "downstream") || !strings.Contains(filtered, "cluster.backend.upstream_rq_total: 1") {
			t.Errorf("/stats?filter=upstream_rq_total:\n%s", filtered)
		}
		if n := p.stat("cluster.backend.upstream_rq_total"); n != 1 {
			t.Errorf("/stats?format=json upstream_rq_total %d", n)
		}
	})
	t.Run("other-endpoints", func(t *testing.T) {
		if _, body := p.admin("/config_dump?include_eds"); !strings.Contains(body, "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump") {
			t.Errorf("/config_dump?include_eds lacks the endpoints dump")
		}
		if _, body := p.admin("/config_dump"); strings.Contains(body, "EndpointsConfigDump") {
			t.Errorf("/config_dump without include_eds has the endpoints dump")
		}
		for path, want := range map[string]string{
			"/runtime": `"layers"`,
			"/memory":  `"allocated"`,
			"/certs":   `"certificates"`,
		} {
			if code, body := p.admin(path); code != 200 || !strings.Contains(body, want) {
				t.Errorf("%s: %d %.200q", path, code, body)
			}
		}
	})
	t.Run("prometheus", func(t *testing.T) {
		_, text := p.admin("/stats/prometheus")
		for _, want := range []string{
			"# TYPE envoy_cluster_upstream_rq_total counter\n",
			`envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"} 1` + "\n",
			`envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="admin_e2e"} 1` + "\n",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/stats/prometheus lacks %q", want)
			}
		}
	})
	t.Run("logging", func(t *testing.T) {
		if resp, _ := get(t, h1Client(), p.adminURL("/logging?level=debug")); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /logging?level=debug: %d, want 405 (mutations need POST)", resp.StatusCode)
		}
		code, body := p.adminPost("/logging?level=debug")
		if code != 200 || !strings.Contains(body, "http: debug") || !strings.Contains(body, "upstream: debug") {
			t.Fatalf("POST /logging?level=debug %d:\n%s", code, body)
		}
		// One component (trace is shown as debug: zap has no lower level).
		code, body = p.adminPost("/logging?router=warning")
		if code != 200 || !strings.Contains(body, "router: warning") || !strings.Contains(body, "http: debug") {
			t.Fatalf("POST /logging?router=warning %d:\n%s", code, body)
		}
		if code, body = p.adminPost("/logging?nosuch=debug"); code != 400 {
			t.Errorf("POST /logging?nosuch=debug: %d %q", code, body)
		}
		// Debug logs now flow for proxied requests.
		get(t, h1Client(), p.url("ingress", "/after-logging"))
		waitFor(t, "debug log lines after POST /logging", 5e9, func() bool {
			return strings.Contains(p.logText(), "debug")
		})
		p.adminPost("/logging?level=error")
	})
	t.Run("healthcheck-fail", func(t *testing.T) {
		if code, _ := p.adminPost("/healthcheck/fail"); code != 200 {
			t.Fatalf("POST /healthcheck/fail: %d", code)
		}
		code, body := p.admin("/ready")
		if code != 503 || !strings.EqualFold(strings.TrimSpace(body), "DRAINING") {
			t.Errorf("/ready after /healthcheck/fail: %d %q", code, body)
		}
		var info struct{ State string }
		if _, body := p.admin("/server_info"); json.Unmarshal([]byte(body), &info) != nil || info.State != "DRAINING" {
			t.Errorf("/server_info state after /healthcheck/fail: %.200s", body)
		}
		// The listener keeps serving.
		resp, _ := get(t, h1Client(), p.url("ingress", "/while-failing"))
		if resp.StatusCode != 200 {
			t.Errorf("proxying while health checks fail: %d", resp.StatusCode)
		}
		t.Run("drain-close", func(t *testing.T) {
			if !resp.Close {
				t.Errorf("HTTP/1.1 response while health checks fail lacks connection: close")
			}
		})
		if code, _ := p.adminPost("/healthcheck/ok"); code != 200 {
			t.Fatalf("POST /healthcheck/ok: %d", code)
		}
		if code, _ := p.admin("/ready"); code != 200 {
			t.Errorf("/ready after /healthcheck/ok: %d", code)
		}
	})
}
