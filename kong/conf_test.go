package kong

import (
	"reflect"
	"strings"
	"testing"
)

func TestLoadSettingsDefaults(t *testing.T) {
	s, warns, err := LoadSettings(Sources{NumCPU: 3})
	if err != nil || len(warns) != 0 {
		t.Fatalf("err %v warnings %v", err, warns)
	}
	wantProxy := []Listen{
		{Address: "0.0.0.0:8000", ReusePort: true, Backlog: 16384},
		{Address: "0.0.0.0:8443", SSL: true, HTTP2: true, ReusePort: true, Backlog: 16384},
	}
	wantAdmin := []Listen{
		{Address: "127.0.0.1:8001", ReusePort: true, Backlog: 16384},
		{Address: "127.0.0.1:8444", SSL: true, HTTP2: true, ReusePort: true, Backlog: 16384},
	}
	if !reflect.DeepEqual(s.ProxyListen, wantProxy) || !reflect.DeepEqual(s.AdminListen, wantAdmin) {
		t.Fatalf("listen: %+v %+v", s.ProxyListen, s.AdminListen)
	}
	if s.Wasm || s.WorkerProcesses != 3 || s.LogLevel != "notice" || s.ProxyAccessLog != "" || s.ProxyErrorLog != "" ||
		!reflect.DeepEqual(s.WasmFilters, []string{"bundled", "user"}) ||
		!reflect.DeepEqual(s.Headers, []string{"server_tokens", "latency_tokens"}) || s.RealIPHeader != "X-Real-IP" {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestLoadSettings(t *testing.T) {
	conf := `# kong.conf
wasm = on                 # enable
wasm_filters_path = /conf/filters
wasm_filters = user
declarative_config = /conf/kong.yml
proxy_listen = 127.0.0.1:9000, 127.0.0.1:9443 ssl http2
log_level = debug
headers = off
nginx_worker_processes = 7
prefix = /var/kong
proxy_access_log = logs/access.log
some_future_key = 1
`
	tests := []struct {
		name    string
		env     []string
		conf    string
		check   func(*Settings) bool
		warn    string
		wantErr []string
	}{
		{name: "env only", env: []string{"KONG_WASM=on", "KONG_WASM_FILTERS_PATH=./filters", "KONG_DECLARATIVE_CONFIG=./config/kong.yml", "KONG_DATABASE=off", "HOME=/root"},
			check: func(s *Settings) bool {
				return s.Wasm && s.WasmFiltersPath == "./filters" && s.DeclarativeConfig == "./config/kong.yml"
			}},
		{name: "conf file", conf: conf, warn: `unknown property "some_future_key"`,
			check: func(s *Settings) bool {
				return s.Wasm && s.WasmFiltersPath == "/conf/filters" && reflect.DeepEqual(s.WasmFilters, []string{"user"}) &&
					len(s.ProxyListen) == 2 && s.ProxyListen[1].SSL && s.ProxyListen[1].HTTP2 && s.LogLevel == "debug" &&
					reflect.DeepEqual(s.Headers, []string{"off"}) && s.WorkerProcesses == 7 && s.ProxyAccessLog == "/var/kong/logs/access.log"
			}},
		{name: "env wins over conf", conf: conf, env: []string{"KONG_LOG_LEVEL=error", "KONG_WASM=off"}, warn: "some_future_key",
			check: func(s *Settings) bool {
				return s.LogLevel == "error" && !s.Wasm && s.WasmFiltersPath == "/conf/filters"
			}},
		{name: "escaped hash", conf: `wasm_filters_path = /a\#b # comment`,
			check: func(s *Settings) bool { return s.WasmFiltersPath == "/a#b" }},
		{name: "declarative_config_string", env: []string{`KONG_DECLARATIVE_CONFIG_STRING={"_format_version":"3.0"}`},
			check: func(s *Settings) bool { return s.DeclarativeConfigString == `{"_format_version":"3.0"}` }},
		{name: "unknown env key warns", env: []string{"KONG_NOPE=1"}, warn: "KONG_NOPE"},
		{name: "admin off", env: []string{"KONG_ADMIN_LISTEN=off"}, check: func(s *Settings) bool { return len(s.AdminListen) == 0 }},
		{name: "database", env: []string{"KONG_DATABASE=postgres"}, wantErr: []string{"database (KONG_DATABASE)", `"postgres"`}},
		{name: "unsupported keys", conf: "stream_listen = 0.0.0.0:5555\nrouter_flavor = expressions\n", env: []string{"KONG_TRUSTED_IPS=0.0.0.0/0"},
			wantErr: []string{"stream_listen (kong.conf:1)", "router_flavor (kong.conf:2)", "trusted_ips (KONG_TRUSTED_IPS)"}},
		{name: "bad values", env: []string{"KONG_WASM=maybe", "KONG_LOG_LEVEL=loud", "KONG_NGINX_WORKER_PROCESSES=0", "KONG_HEADERS=X-Kong-Foo",
			"KONG_PROXY_LISTEN=127.0.0.1:80 proxy_protocol", "KONG_ADMIN_LISTEN=nope", "KONG_SSL_CERT=/a.pem"},
			wantErr: []string{"wasm (KONG_WASM)", "log_level", "nginx_worker_processes", "headers", `flag "proxy_protocol"`, "admin_listen", "ssl_cert_key"}},
		{name: "bad line", conf: "just words\n", wantErr: []string{"kong.conf: line 1: expected key = value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := Sources{Env: tc.env, NumCPU: 2, ConfPath: "kong.conf"}
			if tc.conf != "" {
				src.ConfFile = []byte(tc.conf)
			}
			s, warns, err := LoadSettings(src)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want %v", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(s) {
				t.Errorf("settings: %+v", s)
			}
			joined := strings.Join(warns, "\n")
			if tc.warn == "" && joined != "" || !strings.Contains(joined, tc.warn) {
				t.Errorf("warnings %q, want %q", joined, tc.warn)
			}
		})
	}
}

func FuzzLoadSettings(f *testing.F) {
	f.Add("wasm = on\nproxy_listen = 127.0.0.1:1 ssl\n", "KONG_LOG_LEVEL=debug")
	f.Add("a\\#b = #", "KONG_=")
	f.Fuzz(func(t *testing.T, conf, env string) {
		s, _, err := LoadSettings(Sources{ConfFile: []byte(conf), Env: strings.Split(env, "\n"), NumCPU: 1})
		if err == nil && s == nil {
			t.Fatal("nil settings without an error")
		}
	})
}

func TestStableID(t *testing.T) {
	a, b := StableID("service", "x"), StableID("service", "y")
	if a == b || a != StableID("service", "x") || len(a) != 36 || a[14] != '5' {
		t.Fatalf("%s %s", a, b)
	}
}
