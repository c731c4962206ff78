package kong

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseWalkThrough(t *testing.T) {
	cfg, err := Parse([]byte(`_format_version: "3.0"
services:
- name: my-wasm-service
  url: http://127.0.0.1:8080
  routes:
  - name: my-wasm-route
    paths: ["/"]
    filter_chains:
    - filters:
      - name: my-filter
        config: '{"my_greeting": "Hello from wasmesh using WebAssembly!"}'
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	if s.Host != "127.0.0.1" || s.Port != 8080 || s.Protocol != "http" || s.Retries != 5 || s.ReadTimeout != 60000 || !s.Enabled {
		t.Fatalf("service %+v", s)
	}
	r := cfg.Routes[0]
	if r.Service != s || !r.StripPath || r.PathHandling != "v0" || r.HTTPSRedirectStatusCode != 426 || len(r.Protocols) != 2 {
		t.Fatalf("route %+v", r)
	}
	f := r.FilterChain.Filters[0]
	if f.Name != "my-filter" || !f.Enabled || !r.FilterChain.Enabled || f.Config != `{"my_greeting": "Hello from wasmesh using WebAssembly!"}` {
		t.Fatalf("filter %+v", f)
	}
}

func TestParseJSONAndReferences(t *testing.T) {
	cfg, err := Parse([]byte(`{"_format_version":"3.0","_transform":true,
 "services":[{"name":"a","id":"11111111-1111-1111-1111-111111111111","host":"up","port":81,"path":"/s"}],
 "routes":[{"name":"r","hosts":["example.com"],"service":{"id":"11111111-1111-1111-1111-111111111111"}}],
 "upstreams":[{"name":"up"}],
 "targets":[{"target":"10.0.0.1","upstream":{"name":"up"}}],
 "filter_chains":[{"name":"c","route":{"name":"r"},"filters":[{"name":"f","config":{"k":[1,2]}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Routes[0].Service != cfg.Services[0] || cfg.Services[0].Upstream() != cfg.Upstreams[0] {
		t.Fatal("references not resolved")
	}
	if tg := cfg.Upstreams[0].Targets[0]; tg.Port != 8000 || tg.Weight != 100 {
		t.Fatalf("target %+v", tg)
	}
	if c := cfg.Routes[0].FilterChain; c == nil || c.Filters[0].Config != `{"k":[1,2]}` {
		t.Fatalf("chain %+v", c)
	}
}

func TestParseErrorsAllAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		fields   string // the JSON of Error.Fields
		message  string
	}{
		{"kong's own example", `_format_version: "3.0"
services:
- port: -12
`, `{"services":[{"host":"required field missing","port":"value should be between 0 and 65535"}]}`,
			`declarative config is invalid: {services={{host="required field missing",port="value should be between 0 and 65535"}}}`},
		{"many entities", `_format_version: "3.0"
services:
- name: ok
  host: example.com
- name: bad
  host: example.com
  retries: x
  routes:
  - paths: [nope]
    protocols: [http, gopher]
    bogus: 1
`, `{"services":[null,{"retries":"expected an integer","routes":[{"bogus":"unknown field","paths":["should start with: / (fixed path) or ~/ (regex path)"],"protocols":[null,"expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss"]}]}]}`,
			`declarative config is invalid: {services={[2]={retries="expected an integer",routes={{bogus="unknown field",paths={"should start with: / (fixed path) or ~/ (regex path)"},protocols={[2]="expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss"}}}}}}`},
		{"second chain on a service and a route", `_format_version: "3.0"
services:
- name: s
  host: example.com
  filter_chains:
  - filters: [{name: a}]
  - name: two
    filters: [{name: b}]
  routes:
  - name: r
    paths: [/]
filter_chains:
- route: r
  filters: [{name: a}]
- route: {name: r}
  filters: [{name: b}]
`, `{"filter_chains":[null,{"@entity":"route 'r' already has a filter chain; a route has at most one"}],"services":[{"filter_chains":[null,{"@entity":"service 's' already has a filter chain; a service has at most one (filter chain 'two')"}]}]}`, ""},
		{"dangling references", `_format_version: "3.0"
routes:
- paths: [/]
  service: {name: missing}
targets:
- target: 1.2.3.4:80
  upstream: nowhere
`, `{"routes":[{"service":"could not find services with name or id 'missing'"}],"targets":[{"upstream":"could not find upstreams with name or id 'nowhere'"}]}`, ""},
		{"duplicate names", `_format_version: "3.0"
services:
- name: s
  host: a.example
  routes:
  - {name: r, paths: [/a]}
- name: s
  host: b.example
  routes:
  - {name: r, paths: [/b]}
`, `{"services":[null,{"@entity":"uniqueness violation: 'services' entity with name or id 's' already declared","routes":[{"@entity":"uniqueness violation: 'routes' entity with name or id 'r' already declared"}]}]}`, ""},
		{"format version", `services: []`, `{"_format_version":"required field missing"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v", err)
			}
			if ke.Code != 14 || ke.Name != "invalid declarative configuration" {
				t.Fatalf("code/name %d %q", ke.Code, ke.Name)
			}
			got, _ := json.Marshal(ke.Fields)
			if string(got) != tc.fields {
				t.Fatalf("fields\n got %s\nwant %s", got, tc.fields)
			}
			if tc.message != "" && ke.Message != tc.message {
				t.Fatalf("message\n got %s\nwant %s", ke.Message, tc.message)
			}
			all, _ := json.Marshal(ke)
			if !strings.Contains(string(all), `"code":14`) {
				t.Fatal(string(all))
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("_format_version: \"3.0\"\nservices:\n- url: http://a:1/x\n  routes:\n  - paths: [/, \"~/v\\\\d+\"]\n"))
	f.Add([]byte(`{"_format_version":"3.0","upstreams":[{"name":"u","targets":[{"target":"a:1"}]}]}`))
	f.Add([]byte("_format_version: \"3.0\"\nfilter_chains:\n- route: r\n  filters: [{name: a, config: {x: 1}}]\n"))
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err == nil {
			// Whatever parses translates without panicking, and what
			// translates passes the generated validators.
			res, terr := Translate(cfg, Options{FiltersPath: "/f", FileExists: func(string) bool { return true }})
			if terr == nil {
				for _, l := range res.Listeners {
					if verr := l.ValidateAll(); verr != nil {
						t.Fatalf("listener: %v", verr)
					}
				}
				for _, c := range res.Clusters {
					if verr := c.ValidateAll(); verr != nil {
						t.Fatalf("cluster: %v", verr)
					}
				}
			}
		}
		if err != nil {
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("error not *Error: %v", err)
			}
			if _, jerr := json.Marshal(ke); jerr != nil {
				t.Fatal(jerr)
			}
		}
	})
}
