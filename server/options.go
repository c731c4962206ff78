package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// EnvoyAPIVersion is the Envoy release whose API and command line wasmesh
// matches; --version reports it where Envoy reports its own version.
const EnvoyAPIVersion = "1.36.0"

// Options are Envoy's command-line options.
type Options struct {
	ConfigPath            string
	ConfigYAML            string
	Mode                  string // serve | validate | init_only
	Concurrency           int
	LogLevel              string
	ComponentLogLevel     string
	LogFormat             string
	LogPath               string
	ServiceCluster        string
	ServiceNode           string
	ServiceZone           string
	DrainTime             time.Duration
	ParentShutdownTime    time.Duration
	DrainStrategy         string // gradual | immediate
	AllowUnknownStatic    bool
	RejectUnknownDynamic  bool
	IgnoreUnknownDynamic  bool
	LocalAddressIPVersion string // v4 | v6
	FileFlushInterval     time.Duration
	SkipDeprecatedLogs    bool
	Version               bool
	HotRestartVersion     bool
	// Accepted and ignored: hot restart and shared memory do not exist in
	// wasmesh (see docs).
	BaseID            uint64
	RestartEpoch      uint64
	DisableHotRestart bool
	UseDynamicBaseID  bool
	BaseIDPath        string
	CPUSetThreads     bool
}

// ParseFlags parses Envoy's flags. An unknown flag is an error naming it.
func ParseFlags(args []string, stderr io.Writer) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("wasmesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, def, usage string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, def, usage)
		}
	}
	str(&o.ConfigPath, "", "path to the v3 bootstrap (YAML or JSON)", "c", "config-path")
	fs.StringVar(&o.ConfigYAML, "config-yaml", "", "YAML bootstrap merged over --config-path")
	fs.StringVar(&o.Mode, "mode", "serve", "serve | validate | init_only")
	fs.IntVar(&o.Concurrency, "concurrency", runtime.NumCPU(), "worker count (Wasm instances per VM)")
	str(&o.LogLevel, "info", "trace|debug|info|warning|warn|error|critical|off", "l", "log-level")
	fs.StringVar(&o.ComponentLogLevel, "component-log-level", "", "comp:level,... per-component log levels")
	fs.StringVar(&o.LogFormat, "log-format", "[%Y-%m-%d %T.%e][%t][%l][%n] %v", "log line format (Envoy's spdlog format; JSON when it starts with '{')")
	fs.StringVar(&o.LogPath, "log-path", "", "write logs to this file instead of stderr")
	fs.StringVar(&o.ServiceCluster, "service-cluster", "", "node.cluster")
	fs.StringVar(&o.ServiceNode, "service-node", "", "node.id")
	fs.StringVar(&o.ServiceZone, "service-zone", "", "node.locality.zone")
	drain := fs.Int("drain-time-s", 600, "seconds to drain connections on shutdown or listener update")
	parent := fs.Int("parent-shutdown-time-s", 900, "accepted; hot restart does not exist (no-op)")
	fs.StringVar(&o.DrainStrategy, "drain-strategy", "gradual", "gradual | immediate")
	fs.Uint64Var(&o.BaseID, "base-id", 0, "accepted; no shared memory (no-op)")
	fs.Uint64Var(&o.RestartEpoch, "restart-epoch", 0, "accepted; no hot restart (no-op)")
	fs.BoolVar(&o.DisableHotRestart, "disable-hot-restart", false, "accepted (no-op)")
	fs.BoolVar(&o.UseDynamicBaseID, "use-dynamic-base-id", false, "accepted (no-op)")
	fs.StringVar(&o.BaseIDPath, "base-id-path", "", "accepted (no-op)")
	fs.StringVar(&o.LocalAddressIPVersion, "local-address-ip-version", "v4", "v4 | v6")
	fs.BoolVar(&o.CPUSetThreads, "cpuset-threads", false, "derive --concurrency from the CPU set (Go already does)")
	fs.BoolVar(&o.AllowUnknownStatic, "allow-unknown-static-fields", false, "ignore unknown fields in the bootstrap")
	fs.BoolVar(&o.RejectUnknownDynamic, "reject-unknown-dynamic-fields", false, "reject unknown fields in xDS resources")
	fs.BoolVar(&o.IgnoreUnknownDynamic, "ignore-unknown-dynamic-fields", false, "ignore unknown fields in xDS resources")
	flush := fs.Int("file-flush-interval-msec", 10000, "access log flush interval")
	fs.BoolVar(&o.SkipDeprecatedLogs, "skip-deprecated-logs", false, "do not log deprecated-field warnings")
	fs.BoolVar(&o.HotRestartVersion, "hot-restart-version", false, "print the hot restart compatibility version")
	fs.BoolVar(&o.Version, "version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.DrainTime = time.Duration(*drain) * time.Second
	o.ParentShutdownTime = time.Duration(*parent) * time.Second
	o.FileFlushInterval = time.Duration(*flush) * time.Millisecond
	switch o.Mode {
	case "serve", "validate", "init_only":
	default:
		return nil, fmt.Errorf("--mode: %q is not one of serve, validate, init_only", o.Mode)
	}
	switch o.DrainStrategy {
	case "gradual", "immediate":
	default:
		return nil, fmt.Errorf("--drain-strategy: %q is not one of gradual, immediate", o.DrainStrategy)
	}
	switch o.LocalAddressIPVersion {
	case "v4", "v6":
	default:
		return nil, fmt.Errorf("--local-address-ip-version: %q is not v4 or v6", o.LocalAddressIPVersion)
	}
	if o.Concurrency < 1 {
		return nil, errors.New("--concurrency: must be at least 1")
	}
	if _, err := ParseLevel(o.LogLevel); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if _, err := ParseComponentLevels(o.ComponentLogLevel); err != nil {
		return nil, fmt.Errorf("--component-log-level: %w", err)
	}
	if o.RejectUnknownDynamic && o.IgnoreUnknownDynamic {
		return nil, errors.New("--reject-unknown-dynamic-fields and --ignore-unknown-dynamic-fields are exclusive")
	}
	return o, nil
}

// VersionLine is Envoy's --version output, which agents that launch Envoy
// (kuma-dp, pilot-agent) parse: "<binary>  version: <rev>/<ver>/Clean/RELEASE/BoringSSL".
func VersionLine(binary, revision string) string {
	if revision == "" {
		revision = strings.Repeat("0", 40)
	}
	return fmt.Sprintf("\n%s  version: %s/%s/Clean/RELEASE/BoringSSL\n", binary, revision, EnvoyAPIVersion)
}
