package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRouting drives every route matcher and action of routing.yaml with
// real requests; each row would fail without the field it names.
func TestRouting(t *testing.T) {
	t.Parallel()
	echoUp := startUpstream(t, "echo", nil)
	second := startUpstream(t, "second", nil)
	slow := startUpstream(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	p := startProxy(t, "routing.yaml", vars{"Echo": echoUp.Port, "Second": second.Port, "Slow": slow.Port})
	c := h1Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	type check func(t *testing.T, resp *http.Response, body string)
	body := func(want string) check {
		return func(t *testing.T, resp *http.Response, got string) {
			if got != want {
				t.Errorf("body %q, want %q", got, want)
			}
		}
	}
	upstream := func(f func(t *testing.T, e *echoed)) check {
		return func(t *testing.T, resp *http.Response, got string) { f(t, parseEcho(t, got)) }
	}
	cases := []struct {
		name   string
		path   string
		hdr    []string // pairs; "host" sets the authority (default routing.test)
		status int
		check  check
	}{
		// Virtual hosts by domain: exact beats *, suffix and prefix
		// wildcards.
		{"vhost-exact", "/exact", nil, 200, body("path exact")},
		{"vhost-catch-all", "/exact", []string{"host", "unknown.test"}, 200, body("catch-all vhost")},
		{"vhost-suffix", "/", []string{"host", "a.wild.test"}, 200, body("suffix vhost")},
		{"vhost-prefix", "/", []string{"host", "prefixhost.example"}, 200, body("prefix vhost")},
		{"vhost-port-domain", "/exact", []string{"host", "routing.test:8080"}, 200, body("path exact")},
		// Matchers.
		{"path-exact-only", "/exact/more", nil, 200, upstream(func(t *testing.T, e *echoed) {})},
		{"case-insensitive", "/caseless/x", nil, 200, body("case insensitive")},
		{"path-separated-prefix", "/sep/x", nil, 200, body("path separated")},
		{"path-separated-prefix-exact", "/sep", nil, 200, body("path separated")},
		{"path-separated-prefix-not-segment", "/sepx", nil, 200, upstream(func(t *testing.T, e *echoed) {})},
		{"safe-regex", "/regex/123", nil, 200, body("regex")},
		{"safe-regex-no-match", "/regex/12a", nil, 200, upstream(func(t *testing.T, e *echoed) {})},
		{"header-exact", "/hdr", []string{"x-variant", "b"}, 200, body("header exact")},
		{"header-regex", "/hdr", []string{"x-variant", "c7"}, 200, body("header regex")},
		{"header-present", "/hdr", []string{"x-variant", "zz", "x-present", ""}, 200, body("header present")},
		{"header-inverted", "/hdr", []string{"x-variant", "a"}, 200, body("header inverted")},
		{"header-fallback", "/hdr", []string{"x-variant", "zebra"}, 200, body("header fallback")},
		{"header-range", "/mhdr", []string{"x-n", "15"}, 200, body("header range")},
		{"header-range-end-exclusive", "/mhdr", []string{"x-n", "20"}, 200, body("mhdr fallback")},
		{"header-suffix", "/mhdr", []string{"x-s", "the-end"}, 200, body("header suffix")},
		{"header-contains-ignore-case", "/mhdr", []string{"x-c", "aMIDb"}, 200, body("header contains")},
		{"headers-all-must-match", "/mhdr", []string{"x-a", "1", "x-b", "2"}, 200, body("headers all")},
		{"headers-one-missing", "/mhdr", []string{"x-a", "1"}, 200, body("mhdr fallback")},
		{"query-exact", "/query?debug=1", nil, 200, body("query exact")},
		{"query-exact-mismatch", "/query?debug=2", nil, 200, body("query fallback")},
		{"query-present", "/query?a=b&trace", nil, 200, body("query present")},
		// Actions.
		{"prefix-rewrite", "/prefix/a/b?q=1", nil, 200, upstream(func(t *testing.T, e *echoed) {
			if e.Path != "/rewritten/a/b?q=1" || e.header("x-envoy-original-path") != "/prefix/a/b?q=1" {
				t.Errorf("upstream path %q, x-envoy-original-path %q", e.Path, e.header("x-envoy-original-path"))
			}
		})},
		{"regex-rewrite", "/rx/one/two", nil, 200, upstream(func(t *testing.T, e *echoed) {
			if e.Path != "/swapped/two/one" {
				t.Errorf("upstream path %q", e.Path)
			}
		})},
		{"host-rewrite-literal", "/host-literal", nil, 200, upstream(func(t *testing.T, e *echoed) {
			// append_x_forwarded_host is off: no x-forwarded-host.
			if e.Host != "rewritten.test" || e.has("x-forwarded-host") {
				t.Errorf("upstream host %q x-forwarded-host %q", e.Host, e.header("x-forwarded-host"))
			}
		})},
		{"auto-host-rewrite", "/host-auto", nil, 200, upstream(func(t *testing.T, e *echoed) {
			if e.Host != "named.upstream" {
				t.Errorf("upstream host %q", e.Host)
			}
		})},
		{"no-host-rewrite", "/plain", nil, 200, upstream(func(t *testing.T, e *echoed) {
			if e.Host != "routing.test" {
				t.Errorf("upstream host %q", e.Host)
			}
		})},
		{"redirect", "/redirect?x=1", nil, 301, func(t *testing.T, resp *http.Response, _ string) {
			if loc := resp.Header.Get("Location"); loc != "http://new.test/moved?x=1" {
				t.Errorf("location %q", loc)
			}
		}},
		{"redirect-https-308", "/redirect-https/p", nil, 308, func(t *testing.T, resp *http.Response, _ string) {
			if loc := resp.Header.Get("Location"); loc != "https://routing.test/redirect-https/p" {
				t.Errorf("location %q", loc)
			}
		}},
		{"direct-response", "/direct", nil, 418, body("teapot")},
		{"timeout", "/slow", nil, 504, body("upstream request timeout")},
		{"cluster-header", "/by-header", []string{"x-cluster", "second"}, 200, upstream(func(t *testing.T, e *echoed) {
			if e.Upstream != "second" {
				t.Errorf("cluster_header sent to %q", e.Upstream)
			}
		})},
		{"cluster-header-unknown", "/by-header", []string{"x-cluster", "nope"}, 503, nil},
		{"cluster-header-missing", "/by-header", nil, 503, nil},
		// Header mutations: request headers are added route, then
		// virtual host, then route configuration (so the route
		// configuration's overwrite wins and appends come in that order);
		// removals at each level; response headers likewise.
		{"headers-all-levels", "/headers", []string{"x-route-drop", "1", "x-vh-drop", "1", "x-rc-drop", "1", "x-keep", "1"}, 200,
			func(t *testing.T, resp *http.Response, got string) {
				e := parseEcho(t, got)
				for k, v := range map[string]string{"x-route-req": "route", "x-vh-req": "vh", "x-rc-req": "rc", "x-over": "rc", "x-keep": "1", "x-client-addr": "127.0.0.1"} {
					if e.header(k) != v {
						t.Errorf("upstream request header %s=%q, want %q", k, e.header(k), v)
					}
				}
				if got := strings.Join(e.Headers["x-append"], ","); got != "route,vh,rc" {
					t.Errorf("x-append values %q, want route,vh,rc", got)
				}
				for _, k := range []string{"x-route-drop", "x-vh-drop", "x-rc-drop"} {
					if e.has(k) {
						t.Errorf("request header %s not removed", k)
					}
				}
				for k, v := range map[string]string{"X-Route-Resp": "route", "X-Vh-Resp": "vh", "X-Rc-Resp": "rc"} {
					if resp.Header.Get(k) != v {
						t.Errorf("response header %s=%q", k, resp.Header.Get(k))
					}
				}
				for _, k := range []string{"X-Upstream", "X-Upstream-Remove-Me"} {
					if resp.Header.Get(k) != "" {
						t.Errorf("response header %s not removed", k)
					}
				}
			}},
		{"headers-vhost-level-only", "/plain", nil, 200, func(t *testing.T, resp *http.Response, got string) {
			e := parseEcho(t, got)
			if e.has("x-route-req") || e.header("x-vh-req") != "vh" || e.header("x-rc-req") != "rc" {
				t.Errorf("headers %v", e.Headers)
			}
			if resp.Header.Get("X-Upstream") != "echo" || resp.Header.Get("X-Upstream-Remove-Me") != "" {
				t.Errorf("response headers %v", resp.Header)
			}
		}},
		{"headers-on-direct-response", "/direct", nil, 418, func(t *testing.T, resp *http.Response, _ string) {
			if resp.Header.Get("X-Vh-Resp") != "vh" || resp.Header.Get("X-Rc-Resp") != "rc" {
				t.Errorf("direct response headers %v", resp.Header)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.hdr
			if len(hdr) == 0 || hdr[0] != "host" {
				hdr = append([]string{"host", "routing.test"}, hdr...)
			}
			resp, got := get(t, c, p.url("routing", tc.path), hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, got)
			}
			if tc.check != nil {
				tc.check(t, resp, got)
			}
		})
	}
	t.Run("timeout-flag", func(t *testing.T) {
		if line := findLog(t, accessLog(p), "/slow"); line != "504 UT /slow" {
			t.Errorf("access log %q", line)
		}
	})
	t.Run("cluster-header-flag", func(t *testing.T) {
		if line := findLog(t, accessLog(p), "/by-header"); !strings.HasPrefix(line, "503 NC ") && !strings.HasPrefix(line, "200 ") {
			t.Errorf("access log %q", line)
		}
		n := 0
		for _, l := range readLines(accessLog(p)) {
			if l == "503 NC /by-header" {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d access log lines '503 NC /by-header', want 2", n)
		}
	})
	t.Run("weighted-clusters", func(t *testing.T) {
		got := map[string]int{}
		for i := 0; i < 60; i++ {
			resp, b := get(t, c, p.url("routing", "/split"), "host", "routing.test")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			e := parseEcho(t, b)
			if e.header("x-split") != e.Upstream {
				t.Fatalf("per-cluster header x-split=%q on upstream %s", e.header("x-split"), e.Upstream)
			}
			got[e.Upstream]++
		}
		if got["echo"] < 10 || got["second"] < 10 {
			t.Fatalf("weights 1:1 over 60 requests: %v", got)
		}
	})
}
