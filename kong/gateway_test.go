package kong

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// walkDir lays out Kong's walk-through: filters/my-filter.wasm and
// config/kong.yml whose service points at upstream.
func walkDir(t *testing.T, upstream string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	wasm, err := os.ReadFile("../examples/filters/my-filter/my-filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"filters", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "filters", "my-filter.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "kong.yml"), []byte(walkConfig(upstream, "Hello from wasmesh using WebAssembly!")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func walkConfig(upstream, greeting string) string {
	return fmt.Sprintf(`_format_version: "3.0"
services:
- name: my-wasm-service
  url: %s
  routes:
  - name: my-wasm-route
    paths: ["/"]
    filter_chains:
    - filters:
      - name: my-filter
        config: '{"my_greeting": %q}'
`, upstream, greeting)
}

// startWalk starts the gateway from KONG_* variables as the walk-through
// sets them, on ephemeral ports.
func startWalk(t *testing.T, extraEnv ...string) (g *Gateway, proxy, admin string, upstream *httptest.Server) {
	t.Helper()
	upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the upstream\n")
	}))
	t.Cleanup(upstream.Close)
	dir := walkDir(t, upstream.URL)
	env := append([]string{
		"KONG_WASM=on",
		"KONG_WASM_FILTERS_PATH=" + filepath.Join(dir, "filters"),
		"KONG_DECLARATIVE_CONFIG=" + filepath.Join(dir, "config", "kong.yml"),
		"KONG_DATABASE=off",
		"KONG_PROXY_LISTEN=127.0.0.1:0",
		"KONG_ADMIN_LISTEN=127.0.0.1:0",
		"KONG_LOG_LEVEL=error",
		"KONG_NGINX_WORKER_PROCESSES=2",
		"PATH=/usr/bin",
	}, extraEnv...)
	s, warns, err := LoadSettings(Sources{Env: env, NumCPU: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Fatalf("warnings: %v", warns)
	}
	g, err = Start(context.Background(), Options{Settings: s, DrainTime: time.Second, Warn: io.Discard, Hostname: "test-host"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, "http://" + g.ProxyAddr(0).String(), "http://" + g.AdminAddrs()[0].String(), upstream
}

func do(t *testing.T, method, u, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func getJSON(t *testing.T, u string, want int) map[string]any {
	t.Helper()
	resp, b := do(t, "GET", u, "", nil)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", u, resp.StatusCode, want, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
	return m
}

// greeting asks the proxy on a new connection: a connection opened before
// a swap finishes on the configuration it started with while it drains.
func greeting(t *testing.T, proxy string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(proxy + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from the upstream\n" {
		t.Fatalf("proxy: status %d body %q", resp.StatusCode, body)
	}
	return resp.Header.Get("X-Greeting")
}

// TestWalkThrough is issue 5's walk-through: KONG_* variables, filters/,
// config/kong.yml, a request to the proxy comes back with X-Greeting.
func TestWalkThrough(t *testing.T) {
	_, proxy, _, _ := startWalk(t)
	if g := greeting(t, proxy); g != "Hello from wasmesh using WebAssembly!" {
		t.Fatalf("X-Greeting = %q", g)
	}
	resp, body := do(t, "GET", proxy+"/", "", nil)
	if resp.Header.Get("Via") != "1.1 kong/"+Version || resp.StatusCode != 200 {
		t.Fatalf("status %d Via %q body %q", resp.StatusCode, resp.Header.Get("Via"), body)
	}
	// Kong passes the upstream's Server header on (this upstream sends
	// none) and names itself only in the responses it makes.
	if s := resp.Header.Values("Server"); len(s) != 0 {
		t.Errorf("proxied response Server %q, want none (the upstream sent none)", s)
	}
}

func TestAdminAPI(t *testing.T) {
	g, proxy, admin, _ := startWalk(t)
	svcID := StableID("service", "my-wasm-service")
	rtID := StableID("route", "my-wasm-route")
	fcID := StableID("filter_chain", "route:"+rtID)

	root := getJSON(t, admin+"/", 200)
	if root["version"] != Version || root["hostname"] != "test-host" || root["node_id"] != g.nodeID {
		t.Fatalf("GET /: %v", root)
	}
	conf := root["configuration"].(map[string]any)
	mods := conf["wasm_modules_parsed"].([]any)
	if conf["database"] != "off" || conf["wasm"] != true || len(mods) != 1 || mods[0].(map[string]any)["name"] != "my-filter" {
		t.Fatalf("GET / configuration: %v", conf)
	}
	greeting(t, proxy)
	st := getJSON(t, admin+"/status", 200)
	if st["database"].(map[string]any)["reachable"] != true || st["configuration_hash"] == "" ||
		st["server"].(map[string]any)["total_requests"].(float64) < 1 {
		t.Fatalf("GET /status: %v", st)
	}

	data := func(m map[string]any) []any {
		t.Helper()
		if n, ok := m["next"]; !ok || n != nil {
			t.Fatalf("next = %v", m["next"])
		}
		return m["data"].([]any)
	}
	one := func(path string, field string, want any) {
		t.Helper()
		m := getJSON(t, admin+path, 200)
		d := data(m)
		if len(d) != 1 || d[0].(map[string]any)[field] != want {
			t.Fatalf("GET %s: %v", path, m)
		}
	}
	one("/services", "id", svcID)
	one("/routes", "id", rtID)
	one("/filter-chains", "id", fcID)
	one("/routes/my-wasm-route/filter-chains", "id", fcID)
	one("/routes/"+rtID+"/filter-chains", "id", fcID)
	one("/services/my-wasm-service/routes", "id", rtID)
	if d := data(getJSON(t, admin+"/services/"+svcID+"/filter-chains", 200)); len(d) != 0 {
		t.Fatalf("service chains: %v", d)
	}
	if d := data(getJSON(t, admin+"/upstreams", 200)); len(d) != 0 {
		t.Fatalf("upstreams: %v", d)
	}
	for _, p := range []string{"/services/my-wasm-service", "/services/" + svcID} {
		if m := getJSON(t, admin+p, 200); m["id"] != svcID || m["protocol"] != "http" || m["name"] != "my-wasm-service" {
			t.Fatalf("GET %s: %v", p, m)
		}
	}
	for _, p := range []string{"/routes/my-wasm-route", "/routes/" + rtID} {
		m := getJSON(t, admin+p, 200)
		if m["id"] != rtID || m["service"].(map[string]any)["id"] != svcID {
			t.Fatalf("GET %s: %v", p, m)
		}
	}
	plan := getJSON(t, admin+"/routes/my-wasm-route/filters/enabled", 200)
	fs := plan["filters"].([]any)
	if len(fs) != 1 || fs[0].(map[string]any)["name"] != "my-filter" || fs[0].(map[string]any)["from"] != "route" ||
		fs[0].(map[string]any)["filter_chain"].(map[string]any)["id"] != fcID {
		t.Fatalf("filters/enabled: %v", plan)
	}
	for _, p := range []string{"/services/nope", "/routes/nope", "/upstreams/nope/targets", "/routes/nope/filters/enabled", "/nope"} {
		if m := getJSON(t, admin+p, 404); m["message"] != "Not found" {
			t.Fatalf("GET %s: %v", p, m)
		}
	}
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/services", "cannot create 'services' entities when not using a database"},
		{"PATCH", "/routes/my-wasm-route", "cannot create or update 'routes'"},
		{"DELETE", "/services/x/filter-chains/y", "cannot delete 'filter_chains'"},
		{"POST", "/upstreams/u/targets", "cannot create 'targets'"},
	} {
		resp, b := do(t, c.method, admin+c.path, "application/json", []byte("{}"))
		if resp.StatusCode != 405 || !strings.Contains(string(b), c.want) {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, b)
		}
	}
	cfg := getJSON(t, admin+"/config", 200)
	if !strings.Contains(cfg["config"].(string), "my-wasm-service") {
		t.Fatalf("GET /config: %v", cfg)
	}
}

// TestAdminUpstreamsAndPaging covers upstreams, targets, a service chain in
// the execution plan before the route's, and pagination.
func TestAdminUpstreamsAndPaging(t *testing.T) {
	_, proxy, admin, up := startWalk(t)
	host := strings.TrimPrefix(up.URL, "http://")
	body := fmt.Sprintf(`_format_version: "3.0"
upstreams:
- name: backend
  targets:
  - target: %s
    weight: 50
services:
- name: a
  host: backend
  filter_chains:
  - name: svc-chain
    filters:
    - name: my-filter
      config: '{"my_greeting": "from the service"}'
  routes:
  - name: r1
    paths: ["/"]
    filter_chains:
    - filters:
      - name: my-filter
        config: '{"my_greeting": "from the route"}'
      - name: my-filter
        enabled: false
- name: b
  url: http://%s
- name: c
  url: http://%s
`, host, host, host)
	resp, b := do(t, "POST", admin+"/config", "application/yaml", []byte(body))
	if resp.StatusCode != 201 {
		t.Fatalf("POST /config: %d %s", resp.StatusCode, b)
	}
	upID := StableID("upstream", "backend")
	m := getJSON(t, admin+"/upstreams/backend/targets", 200)
	d := m["data"].([]any)
	if len(d) != 1 || d[0].(map[string]any)["target"] != host || d[0].(map[string]any)["weight"] != 50.0 ||
		d[0].(map[string]any)["upstream"].(map[string]any)["id"] != upID {
		t.Fatalf("targets: %v", m)
	}
	if m := getJSON(t, admin+"/upstreams/"+upID, 200); m["name"] != "backend" || m["algorithm"] != "round-robin" {
		t.Fatalf("upstream: %v", m)
	}
	plan := getJSON(t, admin+"/routes/r1/filters/enabled", 200)["filters"].([]any)
	if len(plan) != 2 || plan[0].(map[string]any)["from"] != "service" || plan[1].(map[string]any)["from"] != "route" ||
		plan[0].(map[string]any)["filter_chain"].(map[string]any)["name"] != "svc-chain" {
		t.Fatalf("plan: %v", plan)
	}
	if d := getJSON(t, admin+"/services/a/filter-chains", 200)["data"].([]any); len(d) != 1 {
		t.Fatalf("service chains: %v", d)
	}
	// Both chains run (service then route on the request path); the
	// filter sets X-Greeting on the response, where Envoy runs filters in
	// reverse order, so the service's instance writes last.
	if g := greeting(t, proxy); g != "from the service" {
		t.Fatalf("X-Greeting = %q", g)
	}
	p1 := getJSON(t, admin+"/services?size=2", 200)
	if len(p1["data"].([]any)) != 2 || p1["next"] == nil {
		t.Fatalf("page 1: %v", p1)
	}
	p2 := getJSON(t, admin+p1["next"].(string), 200)
	if len(p2["data"].([]any)) != 1 || p2["next"] != nil || p2["data"].([]any)[0].(map[string]any)["name"] != "c" {
		t.Fatalf("page 2: %v", p2)
	}
}

func TestPostConfig(t *testing.T) {
	_, proxy, admin, up := startWalk(t)
	good := walkConfig(up.URL, "second")
	forms := []struct {
		name, ctype string
		body        []byte
	}{
		{"yaml", "application/yaml", []byte(good)},
		{"form", "application/x-www-form-urlencoded", []byte("config=" + url.QueryEscape(walkConfig(up.URL, "form")))},
		{"json wrapper", "application/json", mustJSON(t, map[string]string{"config": walkConfig(up.URL, "wrapped")})},
		{"json", "application/json", []byte(fmt.Sprintf(`{"_format_version":"3.0","services":[{"name":"s","url":%q,"routes":[{"name":"r","paths":["/"],"filter_chains":[{"filters":[{"name":"my-filter","config":{"my_greeting":"json"}}]}]}]}]}`, up.URL))},
	}
	for _, f := range forms {
		resp, b := do(t, "POST", admin+"/config", f.ctype, f.body)
		if resp.StatusCode != 201 {
			t.Fatalf("%s: POST /config: %d %s", f.name, resp.StatusCode, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m["services"] == nil || m["filter_chains"] == nil {
			t.Fatalf("%s: answer %s", f.name, b)
		}
		want := map[string]string{"yaml": "second", "form": "form", "json wrapper": "wrapped", "json": "json"}[f.name]
		if g := greeting(t, proxy); g != want {
			t.Fatalf("%s: X-Greeting = %q, want %q", f.name, g, want)
		}
	}
	bad := []struct{ name, body, want string }{
		{"schema", `_format_version: "3.0"
services:
- name: x
  port: 99999999
  host: example.com
`, `"name":"invalid declarative configuration"`},
		{"unknown filter", fmt.Sprintf(`_format_version: "3.0"
services:
- name: x
  url: %s
  routes:
  - paths: ["/"]
    filter_chains:
    - filters:
      - name: nope
`, up.URL), `no such filter`},
		{"not yaml", "{{{", `"code":14`},
	}
	for _, c := range bad {
		resp, b := do(t, "POST", admin+"/config", "application/yaml", []byte(c.body))
		if resp.StatusCode != 400 || !strings.Contains(string(b), c.want) || !strings.Contains(string(b), `"fields"`) {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, b)
		}
		if g := greeting(t, proxy); g != "json" {
			t.Fatalf("%s: the old configuration stopped serving: X-Greeting %q", c.name, g)
		}
	}
	if m := getJSON(t, admin+"/services", 200); m["data"].([]any)[0].(map[string]any)["name"] != "s" {
		t.Fatalf("services after rejected configs: %v", m)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPostConfigUnderLoad swaps the configuration many times while clients
// keep sending requests: none may fail, and every answer carries one of
// the two greetings.
func TestPostConfigUnderLoad(t *testing.T) {
	swaps := 1000 // about 10 s
	if raceEnabled || testing.Short() {
		swaps = 200
	}
	_, proxy, admin, up := startWalk(t)
	loadSwaps(t, proxy, admin, swaps, []byte(walkConfig(up.URL, "A")), []byte(walkConfig(up.URL, "B")))
}

// TestPostConfigRenameUnderLoad renames the service (so its cluster) at
// every swap: requests still draining on the old listener keep their
// cluster until the drain time has passed.
func TestPostConfigRenameUnderLoad(t *testing.T) {
	g, proxy, admin, up := startWalk(t)
	a := strings.Replace(walkConfig(up.URL, "A"), "my-wasm-service", "svc-a", 1)
	b := strings.Replace(walkConfig(up.URL, "B"), "my-wasm-service", "svc-b", 1)
	loadSwaps(t, proxy, admin, 100, []byte(a), []byte(b))
	// The last swap installed b: svc-a (and the first configuration's
	// cluster) go once nothing can still be draining.
	deadline := time.Now().Add(20 * time.Second)
	for {
		names := g.srv.Clusters.Names()
		if len(names) == 1 && names[0] == "svc-b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clusters %v, want [svc-b]", names)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the delayed removal
	}
}

func loadSwaps(t *testing.T, proxy, admin string, swaps int, configs ...[]byte) {
	t.Helper()
	var stop atomic.Bool
	var requests, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer client.CloseIdleConnections()
			for !stop.Load() {
				resp, err := client.Get(proxy + "/load")
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				g := resp.Header.Get("X-Greeting")
				if resp.StatusCode != 200 || g != "A" && g != "B" && g != "Hello from wasmesh using WebAssembly!" {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d greeting %q body %q", resp.StatusCode, g, body))
				}
			}
		}()
	}
	start := time.Now()
	for i := range swaps {
		resp, b := do(t, "POST", admin+"/config", "application/yaml", configs[i%2])
		if resp.StatusCode != 201 {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("swap %d: %d %s", i, resp.StatusCode, b)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d swaps in %v, %d requests", swaps, time.Since(start), requests.Load())
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", f, requests.Load(), firstErr.Load())
	}
	if requests.Load() == 0 {
		t.Fatal("no requests were sent")
	}
}

// TestDeclarativeConfigString: KONG_DECLARATIVE_CONFIG_STRING wins over
// the file, as in Kong.
func TestDeclarativeConfigString(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the upstream\n")
	}))
	defer up.Close()
	_, proxy, admin, _ := startWalk(t, "KONG_DECLARATIVE_CONFIG_STRING="+walkConfig(up.URL, "from the string"))
	if g := greeting(t, proxy); g != "from the string" {
		t.Fatalf("X-Greeting = %q", g)
	}
	if c := getJSON(t, admin+"/config", 200)["config"].(string); !strings.Contains(c, "from the string") {
		t.Fatalf("GET /config: %s", c)
	}
}
