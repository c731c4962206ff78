package route

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/header"
)

func TestParseFormat(t *testing.T) {
	cases := []struct {
		in    string
		parts []string // literal text, or the command's String()
		err   string
	}{
		{in: "plain", parts: []string{"plain"}},
		{in: "100%%", parts: []string{"100%"}},
		{in: "%DOWNSTREAM_REMOTE_ADDRESS%", parts: []string{"%DOWNSTREAM_REMOTE_ADDRESS%"}},
		{in: "a %REQ(x-foo)% b", parts: []string{"a ", "%REQ(x-foo)%", " b"}},
		{in: "%REQ(x-foo):5%", parts: []string{"%REQ(x-foo):5%"}},
		{in: "%START_TIME(%s.%3f)%", parts: []string{"%START_TIME(%s.%3f)%"}},
		{in: "%%%PROTOCOL%%%", parts: []string{"%", "%PROTOCOL%", "%"}},
		{in: "%UPSTREAM_METADATA([\"a\", \"b\"])%", parts: []string{`%UPSTREAM_METADATA(["a", "b"])%`}},
		{in: "%", err: "no valid command at position 0"},
		{in: "50% off", err: "no valid command at position 2"},
		{in: "%lower%", err: "no valid command"},
		{in: "%REQ(x", err: "no valid command"},
		{in: "%REQ(x)", err: "no valid command"},
		{in: "%REQ:x%", err: "no valid command"},
	}
	for _, c := range cases {
		fs, err := parseFormat(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var got []string
		if fs.static() {
			got = []string{fs.literal}
		}
		for _, p := range fs.parts {
			if p.cmd != nil {
				got = append(got, p.cmd.String())
			} else {
				got = append(got, p.lit)
			}
		}
		if !reflect.DeepEqual(got, c.parts) {
			t.Errorf("%q: parts %q, want %q", c.in, got, c.parts)
		}
	}
}

func TestFormatterExpansion(t *testing.T) {
	fs, err := parseFormat("ip=%DOWNSTREAM_REMOTE_ADDRESS% host=%REQ(:authority):3% none=%UPSTREAM_HOST% 100%%")
	if err != nil {
		t.Fatal(err)
	}
	f := FormatterFunc(func(c *FormatCommand) string {
		switch c.Name {
		case "DOWNSTREAM_REMOTE_ADDRESS":
			return "10.0.0.1:5000"
		case "REQ":
			return "example.com"
		}
		return ""
	})
	if got := fs.expand(f); got != "ip=10.0.0.1:5000 host=exa none= 100%" {
		t.Errorf("expand: %q", got)
	}
	if got := fs.expand(nil); got != "ip= host= none= 100%" {
		t.Errorf("expand without formatter: %q", got)
	}
}

func mutation(t *testing.T, add, remove string) *HeaderMutation {
	t.Helper()
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    request_headers_to_add: `+add+`
    request_headers_to_remove: `+remove+`
`)
	return tbl.VirtualHosts()[0].Routes()[0].requestHeaders
}

func TestHeaderMutationActions(t *testing.T) {
	cases := []struct {
		name        string
		add, remove string
		in, want    []string
	}{
		{"append default", `[{header: {key: x-a, value: "2"}}]`, `[]`,
			[]string{"x-a", "1"}, []string{"x-a", "1", "x-a", "2"}},
		{"append_action APPEND_IF_EXISTS_OR_ADD", `[{header: {key: x-a, value: "2"}, append_action: APPEND_IF_EXISTS_OR_ADD}]`, `[]`,
			nil, []string{"x-a", "2"}},
		{"ADD_IF_ABSENT present", `[{header: {key: x-a, value: "2"}, append_action: ADD_IF_ABSENT}]`, `[]`,
			[]string{"x-a", "1"}, []string{"x-a", "1"}},
		{"ADD_IF_ABSENT absent", `[{header: {key: x-a, value: "2"}, append_action: ADD_IF_ABSENT}]`, `[]`,
			[]string{"x-b", "1"}, []string{"x-b", "1", "x-a", "2"}},
		{"OVERWRITE_IF_EXISTS_OR_ADD present", `[{header: {key: x-a, value: "2"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]`, `[]`,
			[]string{"x-a", "1", "x-b", "b", "x-a", "3"}, []string{"x-a", "2", "x-b", "b"}},
		{"OVERWRITE_IF_EXISTS_OR_ADD absent", `[{header: {key: x-a, value: "2"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]`, `[]`,
			nil, []string{"x-a", "2"}},
		{"OVERWRITE_IF_EXISTS present", `[{header: {key: x-a, value: "2"}, append_action: OVERWRITE_IF_EXISTS}]`, `[]`,
			[]string{"x-a", "1"}, []string{"x-a", "2"}},
		{"OVERWRITE_IF_EXISTS absent", `[{header: {key: x-a, value: "2"}, append_action: OVERWRITE_IF_EXISTS}]`, `[]`,
			nil, nil},
		{"legacy append true", `[{header: {key: x-a, value: "2"}, append: true}]`, `[]`,
			[]string{"x-a", "1"}, []string{"x-a", "1", "x-a", "2"}},
		{"legacy append false", `[{header: {key: x-a, value: "2"}, append: false}]`, `[]`,
			[]string{"x-a", "1"}, []string{"x-a", "2"}},
		{"remove before add", `[{header: {key: x-a, value: "2"}, append_action: ADD_IF_ABSENT}]`, `[x-a]`,
			[]string{"x-a", "1"}, []string{"x-a", "2"}},
		{"remove is case-insensitive", `[]`, `[X-A]`,
			[]string{"x-a", "1", "x-b", "2"}, []string{"x-b", "2"}},
		{"empty value skipped", `[{header: {key: x-a, value: ""}}]`, `[]`,
			nil, nil},
		{"keep_empty_value", `[{header: {key: x-a, value: ""}, keep_empty_value: true}]`, `[]`,
			nil, []string{"x-a", ""}},
		{"overwrites before appends", `[{header: {key: x-a, value: "add"}}, {header: {key: x-a, value: "set"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]`, `[]`,
			[]string{"x-a", "old"}, []string{"x-a", "set", "x-a", "add"}},
		{"values see the headers before this level's adds", `[{header: {key: x-b, value: "1"}}, {header: {key: x-b, value: "2"}, append_action: ADD_IF_ABSENT}]`, `[]`,
			nil, []string{"x-b", "1", "x-b", "2"}},
		{"keys are lower-cased", `[{header: {key: X-Up, value: v}}]`, `[]`,
			nil, []string{"x-up", "v"}},
	}
	for _, c := range cases {
		m := mutation(t, c.add, c.remove)
		h := header.New(c.in...)
		m.Apply(h, nil)
		if want := header.New(c.want...); h.String() != want.String() {
			t.Errorf("%s:\n got  %s\n want %s", c.name, indent(h.String()), indent(want.String()))
		}
	}
}

const levelsYAML = `
request_headers_to_add:
- {header: {key: x-level, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
- {header: {key: x-trail, value: config}}
response_headers_to_add:
- {header: {key: x-level, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
response_headers_to_remove: [x-upstream]
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  - {header: {key: x-trail, value: vhost}}
  response_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  routes:
  - name: r
    match: {prefix: /r}
    route: {cluster: c}
    request_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-trail, value: route}}
    request_headers_to_remove: [x-remove-me]
    response_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  - name: w
    match: {prefix: /w}
    request_headers_to_add:
    - {header: {key: x-trail, value: route}}
    route:
      weighted_clusters:
        clusters:
        - name: a
          weight: 1
          request_headers_to_add:
          - {header: {key: x-level, value: cluster}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
          - {header: {key: x-trail, value: cluster}}
          response_headers_to_add:
          - {header: {key: x-level, value: cluster}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
`

func TestHeaderMutationLevels(t *testing.T) {
	cases := []struct {
		mostSpecificWins bool
		path             string
		level, trail     string
		respLevel        string
	}{
		// By default route, then virtual host, then route configuration:
		// the least specific is applied last and wins.
		{false, "/r", "config", "route,vhost,config", "config"},
		{true, "/r", "route", "config,vhost,route", "route"},
		// The weighted cluster's own mutations always come first.
		{false, "/w", "config", "cluster,route,vhost,config", "config"},
		{true, "/w", "vhost", "cluster,config,vhost,route", "vhost"},
	}
	for _, c := range cases {
		y := levelsYAML
		if c.mostSpecificWins {
			y = "most_specific_header_mutations_wins: true\n" + y
		}
		tbl := mustCompile(t, y)
		h := req("h", c.path, "x-remove-me", "1")
		m := tbl.Match(h, RequestInfo{})
		m.FinalizeRequestHeaders(h, nil, false)
		level, _ := h.Get("x-level")
		trail := strings.Join(h.Values("x-trail"), ",")
		if level != c.level || trail != c.trail {
			t.Errorf("wins=%v %s: x-level %q x-trail %q, want %q %q", c.mostSpecificWins, c.path, level, trail, c.level, c.trail)
		}
		if c.path == "/r" {
			if _, ok := h.Get("x-remove-me"); ok {
				t.Errorf("request_headers_to_remove")
			}
		}
		resp := header.New(":status", "200", "x-upstream", "secret")
		m.FinalizeResponseHeaders(resp, nil)
		if v, _ := resp.Get("x-level"); v != c.respLevel {
			t.Errorf("wins=%v %s: response x-level %q, want %q", c.mostSpecificWins, c.path, v, c.respLevel)
		}
		if _, ok := resp.Get("x-upstream"); ok {
			t.Errorf("response_headers_to_remove")
		}
	}
}

func TestHeaderMutationFormatter(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    request_headers_to_add:
    - {header: {key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}
    - {header: {key: x-pct, value: "100%%"}}
    - {header: {key: x-empty, value: "%UPSTREAM_HOST%"}}
`)
	h := req("h", "/")
	m := tbl.Match(h, RequestInfo{})
	var seen []string
	m.FinalizeRequestHeaders(h, FormatterFunc(func(c *FormatCommand) string {
		seen = append(seen, c.Name)
		if c.Name == "DOWNSTREAM_REMOTE_ADDRESS" {
			return "192.0.2.1:1234"
		}
		return ""
	}), false)
	if v, _ := h.Get("x-client"); v != "192.0.2.1:1234" {
		t.Errorf("x-client %q", v)
	}
	if v, _ := h.Get("x-pct"); v != "100%" {
		t.Errorf("x-pct %q", v)
	}
	if _, ok := h.Get("x-empty"); ok {
		t.Errorf("a header whose value formats to empty is not added")
	}
	if !reflect.DeepEqual(seen, []string{"DOWNSTREAM_REMOTE_ADDRESS", "UPSTREAM_HOST"}) {
		t.Errorf("commands %q", seen)
	}
}

func TestHeaderMutationErrors(t *testing.T) {
	check := func(cmd FormatCommand) error {
		if cmd.Name == "BOGUS" {
			return errNotKnown
		}
		return nil
	}
	cases := []struct{ frag, want string }{
		{`request_headers_to_add: [{header: {key: ":path", value: x}}]`, `routes[0].request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified`},
		{`request_headers_to_add: [{header: {key: Host, value: x}}]`, `request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified`},
		{`request_headers_to_remove: [":authority"]`, `routes[0].request_headers_to_remove[0]: :-prefixed or host headers may not be removed`},
		{`response_headers_to_remove: [host]`, `routes[0].response_headers_to_remove[0]: :-prefixed or host headers may not be removed`},
		{`request_headers_to_add: [{header: {key: x, value: x}, append: true, append_action: OVERWRITE_IF_EXISTS}]`, `request_headers_to_add[0]: both append and append_action are set`},
		{`response_headers_to_add: [{header: {key: x, value: "5%"}}]`, `response_headers_to_add[0].header.value: invalid header value "5%"`},
		{`request_headers_to_add: [{header: {key: x, value: "%BOGUS%"}}]`, `request_headers_to_add[0].header.value: %BOGUS%: unknown command`},
		{`request_headers_to_add: [{header: {key: x, raw_value: eA==}}]`, `request_headers_to_add[0].header.raw_value: field is not supported`},
	}
	for _, c := range cases {
		err := compileErr(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    `+c.frag+`
`, CompileOptions{CheckFormatCommand: check})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %q", c.frag, err, c.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

const errNotKnown = errString("unknown command")
