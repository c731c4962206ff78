package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kongDir writes filters/my-filter.wasm, a kong.conf enabling it and a
// kong.yml whose service points at upstream.
func kongDir(t *testing.T, upstream, extraConf string) (conf, yml string) {
	t.Helper()
	dir := t.TempDir()
	wasm, err := os.ReadFile("../../examples/filters/my-filter/my-filter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "filters"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "filters", "my-filter.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "kong.conf")
	yml = filepath.Join(dir, "kong.yml")
	os.WriteFile(conf, []byte(fmt.Sprintf("wasm = on\nwasm_filters_path = %s\ndeclarative_config = %s\nlog_level = error\n%s",
		filepath.Join(dir, "filters"), yml, extraConf)), 0o644)
	os.WriteFile(yml, []byte(fmt.Sprintf(`_format_version: "3.0"
services:
- name: my-wasm-service
  url: %s
  routes:
  - name: my-wasm-route
    paths: ["/"]
    filter_chains:
    - filters:
      - name: my-filter
        config: '{"my_greeting": "Hello from wasmesh using WebAssembly!"}'
`, upstream)), 0o644)
	return conf, yml
}

func TestKongConfigParse(t *testing.T) {
	conf, yml := kongDir(t, "http://127.0.0.1:1", "")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"kong", "config", "parse", "-c", conf, yml}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if out.String() != "parse successful\n" {
		t.Fatalf("stdout %q", out.String())
	}
	bad := filepath.Join(filepath.Dir(yml), "bad.yml")
	os.WriteFile(bad, []byte("_format_version: \"3.0\"\nservices:\n- name: s\n  host: example.com\n  port: 0\n  retries: -1\n"), 0o644)
	out.Reset()
	errOut.Reset()
	err := run(context.Background(), []string{"kong", "config", "parse", "-c", conf, bad}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "declarative config is invalid") {
		t.Fatalf("err %v", err)
	}
	var ke struct {
		Code   int
		Name   string
		Fields map[string]any
	}
	body := strings.TrimPrefix(errOut.String(), "Error: Failed parsing:\n")
	if json.Unmarshal([]byte(body), &ke) != nil || ke.Code != 14 || ke.Fields["services"] == nil {
		t.Fatalf("stderr %q", errOut.String())
	}
	// A filter that wasm_filters does not allow.
	conf2, yml2 := kongDir(t, "http://127.0.0.1:1", "wasm_filters = other\n")
	if err := run(context.Background(), []string{"kong", "config", "parse", "-c", conf2, yml2}, &out, &errOut); err == nil ||
		!strings.Contains(err.Error(), "not allowed by wasm_filters") {
		t.Fatalf("err %v", err)
	}
}

func TestKongTranslate(t *testing.T) {
	conf, yml := kongDir(t, "http://127.0.0.1:1", "proxy_listen = 127.0.0.1:8000\n")
	for _, f := range []string{"json", "yaml"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"kong", "translate", "-c", conf, "--format", f, yml}, &out, &errOut); err != nil {
			t.Fatalf("%s: %v\n%s", f, err, errOut.String())
		}
		for _, want := range []string{"envoy.extensions.filters.http.wasm.v3.Wasm", "kong_proxy_0", "static_resources", "my-wasm-service"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%s: output lacks %q:\n%s", f, want, out.String())
			}
		}
		// The output is a bootstrap the Envoy command line accepts.
		file := filepath.Join(t.TempDir(), "envoy."+f)
		os.WriteFile(file, out.Bytes(), 0o644)
		var vout bytes.Buffer
		if err := run(context.Background(), []string{"--mode", "validate", "-c", file, "-l", "error"}, &vout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%s: validate: %v", f, err)
		}
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestKongStartAndHealth runs `wasmesh kong start` until its context ends
// and checks `wasmesh kong health` and the walk-through request meanwhile.
func TestKongStartAndHealth(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up")) }))
	defer up.Close()
	proxy, admin := freePort(t), freePort(t)
	conf, _ := kongDir(t, up.URL, fmt.Sprintf("proxy_listen = %s\nadmin_listen = %s\n", proxy, admin))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errOut bytes.Buffer
	go func() { done <- run(ctx, []string{"kong", "start", "-c", conf}, &out, &errOut) }()
	var health bytes.Buffer
	deadline := time.Now().Add(20 * time.Second)
	for {
		health.Reset()
		err := run(context.Background(), []string{"kong", "health", "-c", conf}, &health, &bytes.Buffer{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("health: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for start-up, not an assertion
	}
	if health.String() != "Kong is healthy at http://"+admin+"\n" {
		t.Errorf("health: %q", health.String())
	}
	resp, err := http.Get("http://" + proxy + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := resp.Header.Get("X-Greeting"); g != "Hello from wasmesh using WebAssembly!" {
		t.Errorf("X-Greeting %q", g)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("start: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "Kong started") {
		t.Errorf("stdout %q", out.String())
	}
}

func TestKongUnknownCommand(t *testing.T) {
	err := run(context.Background(), []string{"kong", "reload"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"reload"`) {
		t.Fatalf("err %v", err)
	}
}

// TestKongExample runs examples/kong (the README's walk-through) with
// --demo-upstream, on free ports instead of 8000/8001/8080.
func TestKongExample(t *testing.T) {
	yml, err := os.ReadFile("../../examples/kong/config/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	up, proxy, admin := freePort(t), freePort(t), freePort(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "kong.yml")
	os.WriteFile(cfgPath, []byte(strings.ReplaceAll(string(yml), "127.0.0.1:8080", up)), 0o644)
	filters, _ := filepath.Abs("../../examples/kong/filters")
	conf := filepath.Join(dir, "kong.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("wasm = on\ndatabase = off\nwasm_filters_path = %s\ndeclarative_config = %s\nproxy_listen = %s\nadmin_listen = %s\nlog_level = error\n",
		filters, cfgPath, proxy, admin)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"kong", "start", "-c", conf, "--demo-upstream", up}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("start: %v", err)
		}
	}()
	var resp *http.Response
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err = http.Get("http://" + proxy + "/")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // polling for start-up, not an assertion
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if g := resp.Header.Get("X-Greeting"); g != "Hello from wasmesh using WebAssembly!" || !strings.HasPrefix(body.String(), "hello from the demo upstream") {
		t.Fatalf("X-Greeting %q body %q", g, body.String())
	}
}
