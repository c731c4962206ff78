package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/server"
)

// wasmConfigVars starts the upstreams of wasm_config.yaml and returns its
// template values; sha overrides the remote code's checksum when set.
func wasmConfigVars(t *testing.T, sha string) (vars, *upstream) {
	as := asFilter(t)
	code, err := os.ReadFile(as)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := os.ReadFile(filepath.Join(repoRoot(t), "wasm/testdata/harness/ctl.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	codeServer := startUpstream(t, "code", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/filter.wasm" {
			http.NotFound(w, r)
			return
		}
		w.Write(code)
	}))
	if sha == "" {
		sum := sha256.Sum256(code)
		sha = hex.EncodeToString(sum[:])
	}
	return vars{
		"Echo": startUpstream(t, "echo", nil).Port, "Code": codeServer.Port, "ASFilter": as,
		"RemoteSHA": sha, "CtlBase64": base64.StdEncoding.EncodeToString(ctl),
	}, codeServer
}

// TestWasmPluginConfig: configuration as BytesValue and Struct, code from
// code.remote (fetched through a cluster, sha256 checked) and
// code.local.inline_bytes, failure_policy FAIL_CLOSED and fail_open on a
// trapping filter, vm_config.environment_variables, two plugins on one
// vm_id each with its own root context.
func TestWasmPluginConfig(t *testing.T) {
	t.Parallel()
	v, codeServer := wasmConfigVars(t, "")
	p := startProxy(t, "wasm_config.yaml", v, "--component-log-level", "wasm:info")
	if codeServer.Hits.Load() == 0 {
		t.Error("code.remote was not fetched from the code_server cluster")
	}
	c := h1Client()

	t.Run("bytes-value", func(t *testing.T) {
		resp, _ := get(t, c, p.url("cfg", "/bytes"))
		if got := resp.Header.Get("X-As-Filter"); got != "bytes-config" {
			t.Errorf("x-as-filter %q", got)
		}
	})
	t.Run("struct", func(t *testing.T) {
		resp, _ := get(t, c, p.url("cfg", "/struct"))
		var got map[string]any
		if err := json.Unmarshal([]byte(resp.Header.Get("X-As-Filter")), &got); err != nil {
			t.Fatalf("x-as-filter %q is not JSON: %v", resp.Header.Get("X-As-Filter"), err)
		}
		want := map[string]any{"greeting": "hi", "count": 1.0, "nested": map[string]any{"ok": true}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("configuration as seen by the filter %v, want %v", got, want)
		}
	})
	t.Run("remote-code", func(t *testing.T) {
		resp, body := get(t, c, p.url("cfg", "/remote"))
		if got := resp.Header.Get("X-As-Filter"); got != "remote-config" || parseEcho(t, body).header("x-as-request") != "1" {
			t.Errorf("x-as-filter %q", got)
		}
	})
	t.Run("other-routes-untouched", func(t *testing.T) {
		resp, body := get(t, c, p.url("cfg", "/plain"))
		if resp.Header.Get("X-As-Filter") != "" || resp.Header.Get("X-Ctl-Resp") != "" || parseEcho(t, body).has("x-ctl") {
			t.Errorf("a disabled filter ran: %v", resp.Header)
		}
	})
	t.Run("fail-closed", func(t *testing.T) {
		resp, body := get(t, c, p.url("cfg", "/closed"))
		if resp.StatusCode != 200 || resp.Header.Get("X-Ctl-Resp") != "ok" || parseEcho(t, body).header("x-ctl") != "ok" {
			t.Fatalf("healthy filter: %d %v", resp.StatusCode, resp.Header)
		}
		resp, body = get(t, c, p.url("cfg", "/closed"), "x-trap", "1")
		if resp.StatusCode != 503 {
			t.Fatalf("trap with FAIL_CLOSED: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("fail-open-inline-bytes", func(t *testing.T) {
		resp, body := get(t, c, p.url("cfg", "/open"))
		if resp.StatusCode != 200 || parseEcho(t, body).header("x-ctl") != "ok" {
			t.Fatalf("inline_bytes filter did not run: %d %q", resp.StatusCode, body)
		}
		resp, body = get(t, c, p.url("cfg", "/open"), "x-trap", "1")
		if resp.StatusCode != 200 {
			t.Fatalf("trap with fail_open: %d %q", resp.StatusCode, body)
		}
		if parseEcho(t, body).has("x-ctl") {
			t.Error("the trapped filter's header reached the upstream")
		}
	})
	t.Run("shared-vm-own-root-contexts", func(t *testing.T) {
		// Two plugins on one vm_id and code: as in Envoy's host, each
		// plugin's root context gets proxy_on_vm_start and
		// proxy_on_configure on every instance (--concurrency 2), with
		// its own root_id and configuration.
		log := p.logText()
		for _, tc := range []struct {
			msg, plugin, root string
		}{
			{"hostcalls: vm_config: shared-vm", "hostcalls", "root1"},
			{"hostcalls: vm_config: shared-vm", "hostcalls-2", "root2"},
			{"hostcalls: configure: ticks=1001", "hostcalls", "root1"},
			{"hostcalls: configure: ticks=1002", "hostcalls-2", "root2"},
		} {
			n := 0
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, tc.msg) && strings.Contains(l, `"plugin": "`+tc.plugin+`"`) &&
					strings.Contains(l, `"root_id": "`+tc.root+`"`) && strings.Contains(l, `"vm_id": "hostcalls"`) {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d log lines %q from plugin %s root %s, want 2\n%s", n, tc.msg, tc.plugin, tc.root, grepLines(log, "hostcalls: "))
			}
		}
	})
	t.Run("environment-variables", func(t *testing.T) {
		resp, body := get(t, c, p.url("cfg", "/t/wasi/getenv"), "x-env", "E2E_GREETING")
		if resp.StatusCode != 200 || body != "hello-env" {
			t.Errorf("getenv: %d %q", resp.StatusCode, body)
		}
	})
}

// TestWasmRemoteCodeBadSHA256: remote code whose sha256 does not match is
// a start-up error naming the field.
func TestWasmRemoteCodeBadSHA256(t *testing.T) {
	t.Parallel()
	v, _ := wasmConfigVars(t, strings.Repeat("ab", 32))
	err := newProxyError(t, "wasm_remote.yaml", v)
	if err == nil || !strings.Contains(err.Error(), `http_filters[0] "as-remote"`) || !strings.Contains(err.Error(), "vm_config.code.remote.sha256: mismatch") {
		t.Fatalf("error %v does not name the filter and sha256", err)
	}
	t.Log(err)
}

// newProxyError renders a bootstrap and returns server.New's error (the
// server, if it compiled, is closed at once).
func newProxyError(t *testing.T, name string, v vars) error {
	t.Helper()
	cfg := renderBootstrap(t, name, v, t.TempDir())
	o, err := server.ParseFlags([]string{"-c", cfg, "-l", "off", "--concurrency", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := server.LoadBootstrap(o)
	if err != nil {
		return err
	}
	s, err := server.New(context.Background(), o, b, nil)
	if err == nil {
		s.Close(context.Background())
	}
	return err
}
