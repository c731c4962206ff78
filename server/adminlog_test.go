package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdminAccessLog: the bootstrap's admin.access_log (file logger, a
// format) and the deprecated admin.access_log_path (default format) get a
// line per admin request.
func TestAdminAccessLog(t *testing.T) {
	dir := t.TempDir()
	custom, legacy := filepath.Join(dir, "admin.log"), filepath.Join(dir, "legacy.log")
	adm := freePort(t)
	cfg := filepath.Join(dir, "bootstrap.yaml")
	y := fmt.Sprintf(`
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %d}}
  access_log_path: %s
  access_log:
  - name: envoy.access_loggers.file
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
      path: %s
      log_format: {text_format_source: {inline_string: "admin %%REQ(:METHOD)%% %%REQ(:PATH)%% %%RESPONSE_CODE%%\n"}}
`, adm, legacy, custom)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", adm)
	runMain(t, base+"/ready", "-c", cfg)
	get(t, base+"/server_info")
	want := map[string]string{custom: "admin GET /server_info 200", legacy: `"GET /server_info HTTP/1.1" 200`}
	deadline := time.Now().Add(5 * time.Second)
	for path, line := range want {
		for {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), line) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q has no %q", filepath.Base(path), b, line)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestAdminAccessLogRejected: an admin access log wasmesh cannot write is
// a start-up error naming the field.
func TestAdminAccessLogRejected(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bootstrap.yaml")
	y := fmt.Sprintf(`
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %d}}
  access_log:
  - name: envoy.access_loggers.file
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
      path: %s
      log_format: {text_format_source: {inline_string: "%%NOT_A_COMMAND%%"}}
`, freePort(t), filepath.Join(dir, "a.log"))
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Main(t.Context(), "wasmesh", []string{"-c", cfg, "--mode", "validate"}, &strings.Builder{}, &strings.Builder{})
	if err == nil {
		// validate does not start the admin; start for real instead.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = Main(ctx, "wasmesh", []string{"-c", cfg}, &strings.Builder{}, &strings.Builder{})
	}
	if err == nil || !strings.Contains(err.Error(), "admin.access_log[0]") {
		t.Fatalf("err %v, want one naming admin.access_log[0]", err)
	}
}
