package route

import "testing"

func TestSmoke(t *testing.T) {
	tbl := mustCompile(t, `
name: local
virtual_hosts:
- name: a
  domains: ["a.com"]
  routes:
  - name: api
    match: {prefix: /api}
    route: {cluster: api}
  - name: all
    match: {prefix: /}
    route: {cluster: web}
`)
	m := tbl.Match(req("a.com", "/api/x"), RequestInfo{})
	if m.Route == nil || m.Route.Name != "api" || m.Cluster != "api" {
		t.Fatalf("got %+v", m)
	}
}
