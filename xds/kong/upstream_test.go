package kong

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUpstreamTargetsThroughDataPlane runs an upstream with two targets:
// round-robin reaches both, consistent hashing on a header keeps a key on
// one target, and a weight-0 target gets nothing.
func TestUpstreamTargetsThroughDataPlane(t *testing.T) {
	var addrs []string
	for i := 0; i < 3; i++ {
		i := i
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "target-%d host=%s", i, r.Host)
		}))
		defer up.Close()
		addrs = append(addrs, strings.TrimPrefix(up.URL, "http://"))
	}
	cfg, err := Parse([]byte(fmt.Sprintf(`_format_version: "3.0"
services:
- name: rr
  host: rr-upstream
  routes: [{name: rr, paths: [/rr]}]
- name: hashed
  host: hash-upstream
  routes: [{name: hashed, paths: [/hash]}]
upstreams:
- name: rr-upstream
  targets:
  - {target: "%[1]s"}
  - {target: "%[2]s"}
  - {target: "%[3]s", weight: 0}
- name: hash-upstream
  algorithm: consistent-hashing
  hash_on: header
  hash_on_header: x-user
  targets:
  - {target: "%[1]s"}
  - {target: "%[2]s"}
`, addrs[0], addrs[1], addrs[2])))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(cfg, Options{ProxyListen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, res)
	s := startTranslated(t, res)
	proxy := "http://" + s.ListenerAddr("kong_proxy_0").String()

	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		resp, body := get(t, proxy+"/rr")
		if resp.StatusCode != 200 {
			t.Fatalf("rr: %d %q", resp.StatusCode, body)
		}
		target, host, _ := strings.Cut(body, " ")
		seen[target]++
		// preserve_host false: the Host is the target's host.
		if host != "host=127.0.0.1" {
			t.Errorf("upstream saw %s", host)
		}
	}
	if seen["target-0"] == 0 || seen["target-1"] == 0 || seen["target-2"] != 0 {
		t.Errorf("round robin spread %v", seen)
	}
	for _, user := range []string{"alice", "bob", "carol"} {
		first := ""
		for i := 0; i < 5; i++ {
			_, body := get(t, proxy+"/hash", "X-User", user)
			target, _, _ := strings.Cut(body, " ")
			if first == "" {
				first = target
			} else if target != first {
				t.Errorf("user %s moved from %s to %s", user, first, target)
			}
		}
	}
}
