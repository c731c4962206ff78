package cluster_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/cluster/dns"
	"github.com/wasmesh/wasmesh/cluster/dns/dnstest"
)

// startUpstreamsSamePort starts one upstream per loopback IP, all on one
// port, as DNS-discovered hosts share the configured port.
func startUpstreamsSamePort(t *testing.T, ips ...string) (string, []*upstream) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		lns := []net.Listener{ln}
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		if !ok {
			for _, l := range lns {
				l.Close()
			}
			continue
		}
		var ups []*upstream
		for i, l := range lns {
			u := &upstream{name: ips[i]}
			srv := httptest.NewUnstartedServer(u)
			srv.Listener.Close()
			srv.Listener = l
			srv.Start()
			u.srv, u.addr = srv, l.Addr().String()
			t.Cleanup(srv.Close)
			ups = append(ups, u)
		}
		return port, ups
	}
	t.Fatal("no common free port")
	return "", nil
}

func dnsCluster(name, kind, port, server, extra string) string {
	if !strings.Contains(extra, "dns_lookup_family") {
		extra += "\ndns_lookup_family: V4_ONLY"
	}
	_, serverPort, _ := net.SplitHostPort(server)
	return fmt.Sprintf(`
name: %s
type: %s
connect_timeout: 1s
%s
typed_dns_resolver_config:
  name: envoy.network.dns_resolver.cares
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
    resolvers: [{socket_address: {address: 127.0.0.1, port_value: %s}}]
    dns_resolver_options: {no_default_search_domain: true}
load_assignment:
  cluster_name: %s
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: svc.test, port_value: %s}}}
`, name, kind, extra, serverPort, name, port)
}

func addrsOf(cl *cluster.Cluster) []string {
	var out []string
	for _, h := range cl.Hosts() {
		out = append(out, h.Address())
	}
	return out
}

func TestStrictDNSFollowsAnswers(t *testing.T) {
	srv := dnstest.Start(t)
	port, ups := startUpstreamsSamePort(t, "127.0.0.1", "127.0.0.2")
	srv.SetA("svc.test", time.Hour, "127.0.0.1")
	e := newEnv(t, nil)
	cl := e.add(dnsCluster("dns", "STRICT_DNS", port, srv.Addr, "dns_refresh_rate: 0.03s"))
	// Add returns after the first resolution: the host is there.
	if got := addrsOf(cl); len(got) != 1 || got[0] != ups[0].addr {
		t.Fatalf("hosts after Add: %v", got)
	}
	if h := cl.Hosts()[0]; h.Hostname() != "svc.test" {
		t.Fatalf("hostname %q", h.Hostname())
	}
	first := cl.Hosts()[0]
	srv.SetA("svc.test", time.Hour, "127.0.0.1", "127.0.0.2")
	eventually(t, 5*time.Second, "two hosts", func() bool { return len(cl.Hosts()) == 2 })
	if cl.Hosts()[0] != first {
		t.Fatal("the surviving host was replaced")
	}
	seen := map[string]bool{}
	for range 4 {
		name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
		if err != nil {
			t.Fatal(err)
		}
		seen[name] = true
	}
	if !seen["127.0.0.1"] || !seen["127.0.0.2"] {
		t.Fatalf("requests reached %v", seen)
	}
	// A server failure keeps the hosts.
	srv.SetRcode("svc.test", mdns.RcodeServerFailure)
	eventually(t, 5*time.Second, "a failed update", func() bool { return e.stats.value("cluster.dns.update_failure") > 0 })
	if len(cl.Hosts()) != 2 {
		t.Fatal("hosts dropped on a resolution failure")
	}
	srv.SetRcode("svc.test", mdns.RcodeSuccess)
	// The name going away empties the cluster, as in Envoy.
	srv.SetA("svc.test", time.Hour)
	eventually(t, 5*time.Second, "no hosts", func() bool { return len(cl.Hosts()) == 0 })
	if e.stats.value("cluster.dns.update_empty") == 0 {
		t.Fatal("update_empty")
	}
	if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); err == nil {
		t.Fatal("request with no hosts succeeded")
	}
	srv.SetA("svc.test", time.Hour, "127.0.0.2")
	eventually(t, 5*time.Second, "host back", func() bool { return len(cl.Hosts()) == 1 })
	if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "127.0.0.2" {
		t.Fatalf("went to %s", name)
	}
	eventually(t, 5*time.Second, "update_no_rebuild for unchanged answers", func() bool {
		return e.stats.value("cluster.dns.update_no_rebuild") > 0
	})
}

func TestStrictDNSRespectsTTL(t *testing.T) {
	srv := dnstest.Start(t)
	port, ups := startUpstreamsSamePort(t, "127.0.0.1", "127.0.0.2")
	srv.SetA("svc.test", time.Second, "127.0.0.1")
	srv.SetA("other.test", time.Second, "127.0.0.1")
	e := newEnv(t, nil)
	// The refresh rate alone would not look again for an hour; the 1s TTL
	// makes it. A twin cluster without respect_dns_ttl, on another name,
	// must not look again meanwhile.
	cl := e.add(dnsCluster("ttl", "STRICT_DNS", port, srv.Addr, "dns_refresh_rate: 3600s\nrespect_dns_ttl: true"))
	noTTL := e.add(strings.ReplaceAll(dnsCluster("nottl", "STRICT_DNS", port, srv.Addr, "dns_refresh_rate: 3600s"), "svc.test", "other.test"))
	srv.SetA("svc.test", time.Second, "127.0.0.2")
	srv.SetA("other.test", time.Second, "127.0.0.2")
	start := time.Now()
	eventually(t, 5*time.Second, "TTL refresh", func() bool {
		a := addrsOf(cl)
		return len(a) == 1 && a[0] == ups[1].addr
	})
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("refresh took %v with a 1s TTL", el)
	}
	if q := srv.Queries("svc.test", "A"); q < 2 || q > 6 {
		t.Fatalf("%d queries", q)
	}
	if q := srv.Queries("other.test", "A"); q != 1 {
		t.Fatalf("cluster without respect_dns_ttl queried %d times", q)
	}
	if a := addrsOf(noTTL); len(a) != 1 || a[0] != ups[0].addr {
		t.Fatalf("refreshed before dns_refresh_rate: %v", a)
	}
}

func TestLogicalDNS(t *testing.T) {
	srv := dnstest.Start(t)
	port, ups := startUpstreamsSamePort(t, "127.0.0.1", "127.0.0.2")
	srv.SetA("svc.test", time.Hour, "127.0.0.1", "127.0.0.2")
	e := newEnv(t, nil)
	cl := e.add(dnsCluster("logical", "LOGICAL_DNS", port, srv.Addr, "dns_refresh_rate: 0.03s"))
	hosts := cl.Hosts()
	if len(hosts) != 1 || hosts[0].Address() != ups[0].addr {
		t.Fatalf("logical hosts %v, want one at the first address", addrsOf(cl))
	}
	h := hosts[0]
	if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "127.0.0.1" {
		t.Fatalf("went to %s", name)
	}
	srv.SetA("svc.test", time.Hour, "127.0.0.2")
	eventually(t, 5*time.Second, "new address", func() bool { return h.Address() == ups[1].addr })
	if cl.Hosts()[0] != h {
		t.Fatal("logical host replaced instead of re-pointed")
	}
	if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "127.0.0.2" {
		t.Fatalf("went to %s after the address change", name)
	}
	// An empty answer keeps the last address.
	srv.SetA("svc.test", time.Hour)
	q := srv.Queries("svc.test", "A")
	eventually(t, 5*time.Second, "another query", func() bool { return srv.Queries("svc.test", "A") > q+1 })
	if len(cl.Hosts()) != 1 || h.Address() != ups[1].addr {
		t.Fatal("logical host lost on an empty answer")
	}
}

func TestDNSLookupFamilyAndResolvers(t *testing.T) {
	srv := dnstest.Start(t)
	port, ups := startUpstreamsSamePort(t, "127.0.0.1")
	srv.SetA("svc.test", time.Hour, "127.0.0.1", "::1")
	e := newEnv(t, nil)
	// AUTO prefers AAAA; V4_PREFERRED takes A.
	auto := e.add(fmt.Sprintf(`
name: auto
type: STRICT_DNS
connect_timeout: 1s
dns_resolution_config:
  resolvers: [{socket_address: {address: 127.0.0.1, port_value: %s}}]
  dns_resolver_options: {no_default_search_domain: true}
load_assignment: {cluster_name: auto, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: svc.test, port_value: %s}}}}]}]}
`, portOf(t, srv.Addr), port))
	if a := addrsOf(auto); len(a) != 1 || a[0] != "[::1]:"+port {
		t.Fatalf("AUTO: %v", a)
	}
	pref := e.add(fmt.Sprintf(`
name: pref
type: STRICT_DNS
connect_timeout: 1s
dns_lookup_family: V4_PREFERRED
use_tcp_for_dns_lookups: true
dns_resolvers: [{socket_address: {address: 127.0.0.1, port_value: %s}}]
load_assignment: {cluster_name: pref, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: svc.test, port_value: %s}}}}]}]}
`, portOf(t, srv.Addr), port))
	if a := addrsOf(pref); len(a) != 1 || a[0] != ups[0].addr {
		t.Fatalf("V4_PREFERRED: %v", a)
	}
	all := e.add(dnsCluster("all", "STRICT_DNS", port, srv.Addr, "dns_lookup_family: ALL"))
	if a := addrsOf(all); len(a) != 2 || a[0] != ups[0].addr || a[1] != "[::1]:"+port {
		t.Fatalf("ALL: %v", a)
	}
	v6 := e.add(dnsCluster("v6", "STRICT_DNS", port, srv.Addr, "dns_lookup_family: V6_ONLY"))
	if a := addrsOf(v6); len(a) != 1 || a[0] != "[::1]:"+port {
		t.Fatalf("V6_ONLY: %v", a)
	}
}

func TestManagerResolver(t *testing.T) {
	srv := dnstest.Start(t)
	port, ups := startUpstreamsSamePort(t, "127.0.0.1")
	srv.SetA("svc.test", time.Hour, "127.0.0.1")
	r := newTestResolver(t, srv.Addr)
	e := newEnv(t, func(o *cluster.Options) { o.Resolver = r })
	cl := e.add(fmt.Sprintf(`
name: m
type: STRICT_DNS
connect_timeout: 1s
dns_lookup_family: V4_ONLY
load_assignment: {cluster_name: m, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: svc.test, port_value: %s}}}}]}]}
`, port))
	if a := addrsOf(cl); len(a) != 1 || a[0] != ups[0].addr {
		t.Fatalf("hosts %v", a)
	}
	if name, _, _ := get(t, cl, "/", cluster.LoadBalancerContext{}); name != "127.0.0.1" {
		t.Fatal("request")
	}
	_ = http.MethodGet
}

func newTestResolver(t *testing.T, server string) cluster.Resolver {
	t.Helper()
	r, err := dns.New(dns.Config{Servers: []string{server}, NoSearch: true, HostsFile: "-", ResolvConf: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
