package server

import (
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsEnvoyForms(t *testing.T) {
	o, err := ParseFlags([]string{"-c", "envoy.yaml", "--config-yaml", "node: {id: x}", "--mode", "validate",
		"--concurrency", "3", "-l", "debug", "--component-log-level", "upstream:debug,wasm:trace",
		"--service-cluster", "c", "--service-node", "n", "--service-zone", "z", "--drain-time-s", "5",
		"--base-id", "7", "--restart-epoch", "0", "--disable-hot-restart", "--use-dynamic-base-id",
		"--base-id-path", "/tmp/x", "--parent-shutdown-time-s", "9", "--drain-strategy", "immediate",
		"--local-address-ip-version", "v6", "--cpuset-threads", "--allow-unknown-static-fields",
		"--reject-unknown-dynamic-fields", "--file-flush-interval-msec", "100", "--skip-deprecated-logs",
		"--log-format", "%v", "--log-path", "/tmp/wasmesh.log"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.ConfigPath != "envoy.yaml" || o.Mode != "validate" || o.Concurrency != 3 || o.DrainTime != 5*time.Second ||
		o.ServiceNode != "n" || o.DrainStrategy != "immediate" || o.LocalAddressIPVersion != "v6" ||
		!o.AllowUnknownStatic || o.FileFlushInterval != 100*time.Millisecond || o.BaseID != 7 {
		t.Fatalf("options: %+v", o)
	}
}

func TestParseFlagsErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--mode", "bogus"}, "--mode"},
		{[]string{"-l", "loud"}, "--log-level"},
		{[]string{"--component-log-level", "wasm"}, "--component-log-level"},
		{[]string{"--drain-strategy", "fast"}, "--drain-strategy"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--reject-unknown-dynamic-fields", "--ignore-unknown-dynamic-fields"}, "exclusive"},
		{[]string{"stray"}, `"stray"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := ParseFlags(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not name %q", err, tc.want)
			}
		})
	}
}

// kuma-dp and pilot-agent parse Envoy's version line with a regexp like this.
func TestVersionLineParsesLikeEnvoys(t *testing.T) {
	line := VersionLine("wasmesh", "")
	re := regexp.MustCompile(`version: ([0-9a-f]{40})/([0-9]+\.[0-9]+\.[0-9]+)/(Clean|Modified)/(RELEASE|DEBUG)/([a-zA-Z-]+)`)
	m := re.FindStringSubmatch(line)
	if m == nil || m[2] != EnvoyAPIVersion {
		t.Fatalf("version line %q does not parse", line)
	}
}
