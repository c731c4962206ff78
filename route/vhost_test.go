package route

import (
	"strings"
	"testing"
)

const domainsYAML = `
name: domains
virtual_hosts:
- name: exact
  domains: ["www.foo.com", "www.foo.com:8080", "EXACT.upper.com"]
  routes: [{name: exact, match: {prefix: /}, route: {cluster: c}}]
- name: suffix-short
  domains: ["*.foo.com"]
  routes: [{name: suffix-short, match: {prefix: /}, route: {cluster: c}}]
- name: suffix-long
  domains: ["*-bar.foo.com"]
  routes: [{name: suffix-long, match: {prefix: /}, route: {cluster: c}}]
- name: prefix-short
  domains: ["foo.*"]
  routes: [{name: prefix-short, match: {prefix: /}, route: {cluster: c}}]
- name: prefix-long
  domains: ["foo-bar.*"]
  routes: [{name: prefix-long, match: {prefix: /}, route: {cluster: c}}]
- name: default
  domains: ["*"]
  routes: [{name: default, match: {prefix: /}, route: {cluster: c}}]
`

func TestVirtualHostDomains(t *testing.T) {
	tbl := mustCompile(t, domainsYAML)
	cases := []struct{ host, want string }{
		{"www.foo.com", "exact"},
		{"WWW.Foo.COM", "exact"},           // hosts are case-insensitive
		{"exact.upper.com", "exact"},       // so are domains
		{"www.foo.com:8080", "exact"},      // a domain may carry a port
		{"www.foo.com:9090", "default"},    // by default the port takes part in matching
		{"baz-bar.foo.com", "suffix-long"}, // longest suffix first
		{"baz.foo.com", "suffix-short"},    // shorter suffix
		{"-bar.foo.com", "suffix-short"},   // a wildcard never matches the empty string
		{".foo.com", "default"},            // "*.foo.com" does not match ".foo.com"
		{"foo-bar.com", "prefix-long"},     // longest prefix first
		{"foo.org", "prefix-short"},        // prefix wildcard
		{"foo-bar.", "default"},            // "foo-bar.*" needs at least one more character
		{"x.foo.org", "default"},           // suffix is tried before prefix but neither matches
		{"foo.foo.com", "suffix-short"},    // suffix wildcards beat prefix wildcards
		{"unknown.example", "default"},     // "*"
		{"www.foo.com.", "default"},        // no trailing-dot normalisation here (the HCM's job)
	}
	for _, c := range cases {
		if got := routeName(tbl, req(c.host, "/"), RequestInfo{}); got != c.want {
			t.Errorf("host %q: got %q, want %q", c.host, got, c.want)
		}
	}
}

func TestVirtualHostPortMatching(t *testing.T) {
	base := `
virtual_hosts:
- name: plain
  domains: ["example.com", "[::1]"]
  routes: [{name: plain, match: {prefix: /}, route: {cluster: c}}]
- name: with-port
  domains: ["example.com:8443"]
  routes: [{name: with-port, match: {prefix: /}, route: {cluster: c}}]
`
	cases := []struct {
		ignore     bool
		host, want string
	}{
		{false, "example.com", "plain"},
		{false, "example.com:8443", "with-port"},
		{false, "example.com:80", ""}, // no "*": no virtual host
		{false, "[::1]", "plain"},
		{true, "example.com:80", "plain"},
		{true, "example.com:8443", "plain"}, // the port is stripped before matching
		{true, "[::1]:8080", "plain"},
		{true, "[::1]", "plain"}, // brackets are not a port
	}
	for _, c := range cases {
		y := base
		if c.ignore {
			y = "ignore_port_in_host_matching: true\n" + base
		}
		tbl := mustCompile(t, y)
		if got := routeName(tbl, req(c.host, "/"), RequestInfo{}); got != c.want {
			t.Errorf("ignore_port=%v host %q: got %q, want %q", c.ignore, c.host, got, c.want)
		}
	}
}

func TestVirtualHostHeader(t *testing.T) {
	tbl := mustCompile(t, `
vhost_header: x-vhost
virtual_hosts:
- name: a
  domains: ["a"]
  routes: [{name: a, match: {prefix: /}, route: {cluster: c}}]
- name: b
  domains: ["b"]
  routes: [{name: b, match: {prefix: /}, route: {cluster: c}}]
`)
	if got := routeName(tbl, req("a", "/", "x-vhost", "b"), RequestInfo{}); got != "b" {
		t.Errorf("vhost_header: got %q, want b", got)
	}
	if got := routeName(tbl, req("a", "/"), RequestInfo{}); got != "" {
		t.Errorf("vhost_header absent: got %q, want no match", got)
	}
}

func TestVirtualHostOnlyDefault(t *testing.T) {
	tbl := mustCompile(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]
`)
	h := req("", "/")
	h.Del(":authority")
	if got := routeName(tbl, h, RequestInfo{}); got != "r" {
		t.Errorf("only a default virtual host matches without :authority: got %q", got)
	}
	tbl2 := mustCompile(t, domainsYAML)
	if got := routeName(tbl2, h, RequestInfo{}); got != "" {
		t.Errorf("without :authority and with named virtual hosts: got %q, want none", got)
	}
}

func TestVirtualHostDomainErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{`
virtual_hosts:
- {name: a, domains: ["*"]}
- {name: b, domains: ["*"]}`, `virtual_hosts[1].domains[0]: only a single wildcard domain`},
		{`
virtual_hosts:
- {name: a, domains: ["x.com"]}
- {name: b, domains: ["X.com"]}`, `virtual_hosts[1].domains[0]: only unique values for domains`},
		{`
virtual_hosts:
- {name: a, domains: ["*.x.com", "*.x.com"]}`, `virtual_hosts[0].domains[1]: only unique values`},
		{`
virtual_hosts:
- {name: a, domains: ["x.*"]}
- {name: b, domains: ["x.*"]}`, `virtual_hosts[1].domains[0]: only unique values`},
	}
	for _, c := range cases {
		err := compileErr(t, c.yaml)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}
