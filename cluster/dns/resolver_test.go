package dns_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/wasmesh/wasmesh/cluster/dns"
	"github.com/wasmesh/wasmesh/cluster/dns/dnstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newResolver(t *testing.T, srv *dnstest.Server, mod func(*dns.Config)) *dns.Resolver {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("search svc.local corp.local\noptions ndots:2 timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.9.9.9 pinned.example # comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := dns.Config{Servers: []string{srv.Addr}, ResolvConf: conf, HostsFile: hosts, Timeout: 500 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	r, err := dns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func addrs(ans []dns.Answer) string {
	var s []string
	for _, a := range ans {
		s = append(s, a.Addr.String())
	}
	return fmt.Sprint(s)
}

func TestResolveFamilies(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetA("both.example", 30*time.Second, "10.0.0.1", "10.0.0.2", "fd00::1")
	srv.SetA("v4.example", 30*time.Second, "10.0.0.3")
	srv.SetA("v6.example", 30*time.Second, "fd00::2")
	r := newResolver(t, srv, nil)
	cases := []struct {
		name string
		fam  dns.Family
		want string
	}{
		{"both.example", dns.V4Only, "[10.0.0.1 10.0.0.2]"},
		{"both.example", dns.V6Only, "[fd00::1]"},
		{"both.example", dns.Auto, "[fd00::1]"},
		{"v4.example", dns.Auto, "[10.0.0.3]"},
		{"both.example", dns.V4Preferred, "[10.0.0.1 10.0.0.2]"},
		{"v6.example", dns.V4Preferred, "[fd00::2]"},
		{"both.example", dns.All, "[10.0.0.1 10.0.0.2 fd00::1]"},
		{"v4.example", dns.V6Only, "[]"},
		{"missing.example", dns.V4Only, "[]"},
		{"192.0.2.7", dns.Auto, "[192.0.2.7]"},
		{"192.0.2.7", dns.V6Only, "[]"},
		{"pinned.example", dns.V4Only, "[10.9.9.9]"},
		{"localhost", dns.V4Only, "[127.0.0.1]"},
		{"localhost", dns.Auto, "[::1]"},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.fam.String(), func(t *testing.T) {
			ans, err := r.Resolve(context.Background(), c.name, c.fam)
			if err != nil {
				t.Fatal(err)
			}
			if got := addrs(ans); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestResolveTTLAlongCNAME(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetCNAME("alias.example", "real.example", 7*time.Second)
	srv.SetA("real.example", 60*time.Second, "10.1.1.1")
	r := newResolver(t, srv, nil)
	ans, err := r.Resolve(context.Background(), "alias.example", dns.V4Only)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans) != 1 || ans[0].Addr.String() != "10.1.1.1" || ans[0].TTL != 7*time.Second {
		t.Fatalf("got %+v, want 10.1.1.1 with the CNAME's 7s TTL", ans)
	}
}

func TestResolveSearchDomains(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetA("backend.corp.local", time.Minute, "10.2.0.1")
	srv.SetA("a.b.example", time.Minute, "10.2.0.2")
	r := newResolver(t, srv, nil)
	// One dot < ndots 2: search list first; svc.local misses, corp.local hits.
	ans, err := r.Resolve(context.Background(), "backend", dns.V4Only)
	if err != nil || addrs(ans) != "[10.2.0.1]" {
		t.Fatalf("backend: %v %v", addrs(ans), err)
	}
	if srv.Queries("backend.svc.local", "A") != 1 || srv.Queries("backend.corp.local", "A") != 1 {
		t.Fatal("search domains were not tried in order")
	}
	// Two dots: tried as given first.
	ans, err = r.Resolve(context.Background(), "a.b.example", dns.V4Only)
	if err != nil || addrs(ans) != "[10.2.0.2]" || srv.Queries("a.b.example.svc.local", "A") != 0 {
		t.Fatalf("a.b.example: %v %v", addrs(ans), err)
	}
	// no_default_search_domain.
	r2 := newResolver(t, srv, func(c *dns.Config) { c.NoSearch = true })
	ans, err = r2.Resolve(context.Background(), "backend", dns.V4Only)
	if err != nil || len(ans) != 0 {
		t.Fatalf("no search: %v %v", addrs(ans), err)
	}
}

func TestResolveFailures(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetA("flaky.example", time.Minute, "10.3.0.1")
	srv.SetRcode("flaky.example", mdns.RcodeServerFailure)
	r := newResolver(t, srv, func(c *dns.Config) { c.NoSearch = true })
	_, err := r.Resolve(context.Background(), "flaky.example", dns.V4Only)
	if !errors.Is(err, dns.ErrResolve) {
		t.Fatalf("SERVFAIL: err = %v, want ErrResolve", err)
	}
	srv.SetRcode("flaky.example", mdns.RcodeSuccess)
	if ans, err := r.Resolve(context.Background(), "flaky.example", dns.V4Only); err != nil || len(ans) != 1 {
		t.Fatalf("after recovery: %v %v", ans, err)
	}
	// A dead server times out.
	dead := newResolver(t, srv, func(c *dns.Config) {
		c.Servers = []string{"127.0.0.1:1"}
		c.Timeout = 100 * time.Millisecond
		c.Tries = 1
		c.NoSearch = true
	})
	if _, err := dead.Resolve(context.Background(), "flaky.example", dns.V4Only); !errors.Is(err, dns.ErrResolve) {
		t.Fatalf("dead server: err = %v", err)
	}
	// Truncated UDP answers are retried over TCP.
	srv.TruncateUDP(true)
	if ans, err := r.Resolve(context.Background(), "flaky.example", dns.V4Only); err != nil || len(ans) != 1 {
		t.Fatalf("truncated: %v %v", ans, err)
	}
	srv.TruncateUDP(false)
	// TCP only.
	tcp := newResolver(t, srv, func(c *dns.Config) { c.TCP = true; c.NoSearch = true })
	if ans, err := tcp.Resolve(context.Background(), "flaky.example", dns.V4Only); err != nil || len(ans) != 1 {
		t.Fatalf("tcp: %v %v", ans, err)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := dns.New(dns.Config{Servers: []string{"not an address"}, HostsFile: "-"}); err == nil {
		t.Fatal("bad server address accepted")
	}
	if _, err := dns.New(dns.Config{ResolvConf: filepath.Join(t.TempDir(), "missing"), HostsFile: "-"}); err == nil {
		t.Fatal("missing resolv.conf and no servers accepted")
	}
	r, err := dns.New(dns.Config{Servers: []string{"127.0.0.1"}, ResolvConf: filepath.Join(t.TempDir(), "missing"), HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); len(got) != 1 || got[0] != "127.0.0.1:53" {
		t.Fatalf("servers %v", got)
	}
}

func FuzzResolveName(f *testing.F) {
	f.Add("backend")
	f.Add("a.b.c.")
	f.Add("10.0.0.1")
	f.Add("::1")
	f.Add("")
	dir := f.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	_ = os.WriteFile(conf, []byte("nameserver 127.0.0.1\nsearch x.local\n"), 0o644)
	r, err := dns.New(dns.Config{Servers: []string{"127.0.0.1:1"}, ResolvConf: conf, HostsFile: "-", Timeout: time.Millisecond, Tries: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, _ = r.Resolve(ctx, name, dns.All)
	})
}
