package kong

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Kong's defaults (kong/templates/kong_defaults.lua) for the keys wasmesh
// reads. database defaults to "off": wasmesh is DB-less only.
const (
	DefaultProxyListen = "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"
	DefaultAdminListen = "127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384"
)

var defaults = map[string]string{
	"prefix":                    "",
	"wasm":                      "off",
	"wasm_filters_path":         "",
	"wasm_filters":              "bundled,user",
	"declarative_config":        "",
	"declarative_config_string": "",
	"database":                  "off",
	"proxy_listen":              DefaultProxyListen,
	"admin_listen":              DefaultAdminListen,
	"log_level":                 "notice",
	"proxy_access_log":          "off",
	"proxy_error_log":           "/dev/stderr",
	"headers":                   "server_tokens, latency_tokens",
	"nginx_worker_processes":    "auto",
	"ssl_cert":                  "",
	"ssl_cert_key":              "",
	"real_ip_header":            "X-Real-IP",
	"trusted_ips":               "",
	"role":                      RoleTraditional,
	"cluster_listen":            "0.0.0.0:8005",
	"cluster_control_plane":     "127.0.0.1:8005",
	"cluster_mtls":              "shared",
	"cluster_cert":              "",
	"cluster_cert_key":          "",
}

// unsupported are Kong keys wasmesh reads and cannot honour: setting one to
// anything but its default is an error naming it.
var unsupported = map[string]string{
	"stream_listen":    "off",
	"status_listen":    "off",
	"admin_gui_listen": "",
	"router_flavor":    "traditional_compatible",
	"plugins":          "bundled",
	"admin_ssl_cert":   "",
	"dns_resolver":     "",
	// Hybrid mode settings beyond cluster_mtls = shared.
	"cluster_ca_cert":     "",
	"cluster_server_name": "",
	"cluster_ocsp":        "off",
	"cluster_use_proxy":   "off",
	"cluster_dp_labels":   "",
	"cluster_max_payload": "16777216",
}

// Listen is one entry of proxy_listen or admin_listen.
type Listen struct {
	Address   string // host:port
	SSL       bool
	HTTP2     bool
	ReusePort bool
	Backlog   int
}

// String is the entry in Kong's syntax (flags without effect dropped).
func (l Listen) String() string {
	s := l.Address
	if l.SSL {
		s += " ssl"
	}
	if l.HTTP2 {
		s += " http2"
	}
	if l.ReusePort {
		s += " reuseport"
	}
	if l.Backlog > 0 {
		s += " backlog=" + strconv.Itoa(l.Backlog)
	}
	return s
}

// Settings are the kong.conf settings wasmesh runs with.
type Settings struct {
	Wasm              bool
	WasmFiltersPath   string
	WasmFilters       []string
	DeclarativeConfig string
	// DeclarativeConfigString is declarative_config_string: the
	// configuration itself, which wins over DeclarativeConfig as in Kong.
	DeclarativeConfigString string
	ProxyListen             []Listen
	AdminListen             []Listen
	LogLevel                string // Kong's level name
	ProxyAccessLog          string // "" when off
	ProxyErrorLog           string // "" for stderr
	Headers                 []string
	WorkerProcesses         int
	SSLCert                 string
	SSLCertKey              string
	RealIPHeader            string
	TrustedIPs              []string
	// Hybrid mode (see hybrid.go): Role is traditional, control_plane or
	// data_plane; ClusterListen is the control plane's xDS address,
	// ClusterControlPlane the data plane's; ClusterCert and
	// ClusterCertKey, when set, secure the xDS connection with mTLS
	// (cluster_mtls = shared).
	Role                string
	ClusterListen       string
	ClusterControlPlane string
	ClusterCert         string
	ClusterCertKey      string
	// proxyListenSet: a data plane's own proxy_listen, sent to the
	// control plane in the node metadata.
	proxyListenSet bool
	// Values are every key's final value (defaults filled), for GET /.
	Values map[string]string
}

// Sources are the inputs of LoadSettings: the environment (KEY=VALUE
// entries, as os.Environ returns them), the text of kong.conf (nil when
// there is none) and the CPU count for nginx_worker_processes = auto.
type Sources struct {
	Env      []string
	ConfFile []byte
	ConfPath string
	NumCPU   int
}

// LoadSettings merges kong.conf and KONG_* variables (the environment wins)
// over Kong's defaults. Unknown keys are returned as warnings, as Kong
// logs them; every bad value or unsupported key is returned at once, each
// naming its key.
func LoadSettings(src Sources) (*Settings, []string, error) {
	var warnings []string
	var errs []error
	vals := map[string]string{}
	origin := map[string]string{}
	known := func(k string) bool {
		_, a := defaults[k]
		_, b := unsupported[k]
		return a || b
	}
	if src.ConfFile != nil {
		kv, err := parseConf(src.ConfFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src.ConfPath, err))
		}
		for _, e := range kv {
			if !known(e.key) {
				warnings = append(warnings, fmt.Sprintf("%s:%d: unknown property %q ignored", src.ConfPath, e.line, e.key))
				continue
			}
			vals[e.key] = e.value
			origin[e.key] = fmt.Sprintf("%s:%d", src.ConfPath, e.line)
		}
	}
	for _, kv := range src.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "KONG_") {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(k, "KONG_"))
		if !known(key) {
			warnings = append(warnings, fmt.Sprintf("environment: unknown property %s (%q) ignored", k, key))
			continue
		}
		vals[key] = strings.TrimSpace(v)
		origin[key] = k
	}
	name := func(key string) string {
		if o, ok := origin[key]; ok {
			return fmt.Sprintf("%s (%s)", key, o)
		}
		return key
	}
	keys := make([]string, 0, len(unsupported))
	for k := range unsupported {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v, ok := vals[k]; ok && v != unsupported[k] {
			if k == "plugins" && v == "off" || k == "router_flavor" && v == "traditional" {
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %q is not supported by wasmesh (only %q)", name(k), v, unsupported[k]))
		}
	}
	get := func(k string) string {
		if v, ok := vals[k]; ok {
			return v
		}
		return defaults[k]
	}
	s := &Settings{Values: map[string]string{}}
	for k := range defaults {
		s.Values[k] = get(k)
	}
	var err error
	if s.Wasm, err = parseBool(get("wasm")); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name("wasm"), err))
	}
	prefix := get("prefix")
	s.WasmFiltersPath = get("wasm_filters_path")
	s.WasmFilters = list(get("wasm_filters"))
	s.DeclarativeConfig = get("declarative_config")
	s.DeclarativeConfigString = get("declarative_config_string")
	if db := get("database"); db != "off" {
		errs = append(errs, fmt.Errorf("%s: %q is not supported: wasmesh runs DB-less only (database = off)", name("database"), db))
	}
	if s.ProxyListen, err = parseListens(get("proxy_listen")); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name("proxy_listen"), err))
	}
	if s.AdminListen, err = parseListens(get("admin_listen")); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name("admin_listen"), err))
	}
	s.LogLevel = get("log_level")
	if _, err := EnvoyLogLevel(s.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name("log_level"), err))
	}
	s.ProxyAccessLog = logPath(prefix, get("proxy_access_log"))
	s.ProxyErrorLog = logPath(prefix, get("proxy_error_log"))
	if s.ProxyErrorLog == "/dev/stderr" {
		s.ProxyErrorLog = ""
	}
	if get("proxy_error_log") == "off" {
		errs = append(errs, fmt.Errorf("%s: off is not supported (use a path or /dev/stderr)", name("proxy_error_log")))
	}
	s.Headers = list(get("headers"))
	for _, h := range s.Headers {
		switch h {
		case "off", "server_tokens", "latency_tokens":
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not supported (server_tokens, latency_tokens or off)", name("headers"), h))
		}
	}
	switch w := get("nginx_worker_processes"); w {
	case "auto":
		s.WorkerProcesses = max(src.NumCPU, 1)
	default:
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive number or auto", name("nginx_worker_processes"), w))
		}
		s.WorkerProcesses = n
	}
	s.SSLCert, s.SSLCertKey = get("ssl_cert"), get("ssl_cert_key")
	if (s.SSLCert == "") != (s.SSLCertKey == "") {
		errs = append(errs, fmt.Errorf("%s: ssl_cert and ssl_cert_key must be set together", name("ssl_cert")))
	}
	if len(list(s.SSLCert)) > 1 || len(list(s.SSLCertKey)) > 1 {
		errs = append(errs, fmt.Errorf("%s: only one certificate is supported", name("ssl_cert")))
	}
	s.RealIPHeader = get("real_ip_header")
	s.TrustedIPs = list(get("trusted_ips"))
	if len(s.TrustedIPs) > 0 {
		errs = append(errs, fmt.Errorf("%s: trusted_ips is not supported yet (the client address is always the peer's)", name("trusted_ips")))
	} else if !strings.EqualFold(s.RealIPHeader, "X-Real-IP") {
		// Without trusted_ips Kong never reads real_ip_header.
		warnings = append(warnings, fmt.Sprintf("%s: has no effect without trusted_ips", name("real_ip_header")))
	}
	errs = append(errs, s.loadHybrid(get, name, func(k string) bool { _, ok := vals[k]; return ok })...)
	if len(errs) > 0 {
		return nil, warnings, fmt.Errorf("kong: configuration: %w", errors.Join(errs...))
	}
	return s, warnings, nil
}

// logPath resolves Kong's log settings: off → "", relative paths under
// prefix.
func logPath(prefix, v string) string {
	if v == "off" || v == "" {
		return ""
	}
	if !filepath.IsAbs(v) && prefix != "" {
		return filepath.Join(prefix, v)
	}
	return v
}

// EnvoyLogLevel maps Kong's (nginx's) log levels onto Envoy's.
func EnvoyLogLevel(l string) (string, error) {
	switch l {
	case "debug":
		return "debug", nil
	case "info", "notice":
		return "info", nil
	case "warn":
		return "warn", nil
	case "error":
		return "error", nil
	case "crit", "alert", "emerg":
		return "critical", nil
	}
	return "", fmt.Errorf("%q is not a log level (debug, info, notice, warn, error, crit, alert, emerg)", l)
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (on, off, true, false)", v)
}

// list splits a Kong comma-separated list.
func list(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseListens parses Kong's listen syntax: "addr:port [flags...]", comma
// separated; "off" is none. Flags wasmesh cannot honour are errors.
func parseListens(v string) ([]Listen, error) {
	if strings.TrimSpace(v) == "off" {
		return nil, nil
	}
	var out []Listen
	var errs []error
	for i, e := range list(v) {
		f := strings.Fields(e)
		host, port, err := net.SplitHostPort(f[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d] %q: %w", i, f[0], err))
			continue
		}
		if pn, err := strconv.Atoi(port); err != nil || pn < 0 || pn > 65535 {
			errs = append(errs, fmt.Errorf("[%d] %q: invalid port", i, f[0]))
			continue
		}
		if host == "" || host == "*" {
			host = "0.0.0.0"
		}
		l := Listen{Address: net.JoinHostPort(host, port)}
		for _, flag := range f[1:] {
			k, val, _ := strings.Cut(flag, "=")
			switch k {
			case "ssl":
				l.SSL = true
			case "http2":
				l.HTTP2 = true
			case "reuseport":
				l.ReusePort = true
			case "backlog":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 {
					errs = append(errs, fmt.Errorf("[%d] %q: backlog: %q is not a positive number", i, f[0], val))
				}
				l.Backlog = n
			case "deferred", "bind":
				// Socket tuning without a visible effect on behaviour.
			default:
				errs = append(errs, fmt.Errorf("[%d] %q: flag %q is not supported (ssl, http2, reuseport, backlog=N, deferred, bind)", i, f[0], flag))
			}
		}
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}

type confEntry struct {
	key, value string
	line       int
}

// parseConf reads kong.conf: "key = value" lines, "#" comments (an escaped
// "\#" is a literal #), blank lines ignored.
func parseConf(data []byte) ([]confEntry, error) {
	var out []confEntry
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		var b strings.Builder
		for i := 0; i < len(line); i++ {
			if line[i] == '\\' && i+1 < len(line) && line[i+1] == '#' {
				b.WriteByte('#')
				i++
				continue
			}
			if line[i] == '#' {
				break
			}
			b.WriteByte(line[i])
		}
		text := strings.TrimSpace(b.String())
		if text == "" {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: expected key = value", n))
			continue
		}
		out = append(out, confEntry{key: strings.ToLower(strings.TrimSpace(k)), value: strings.TrimSpace(v), line: n})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// allowedFilters is the translation's wasm_filters list: none when wasm is
// off.
func (s *Settings) allowedFilters() []string {
	if !s.Wasm {
		return []string{"off"}
	}
	return slices.Clone(s.WasmFilters)
}
