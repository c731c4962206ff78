package dns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Family is Envoy's dns_lookup_family.
type Family uint8

// The lookup families.
const (
	Auto Family = iota
	V4Only
	V6Only
	V4Preferred
	All
)

func (f Family) String() string {
	switch f {
	case Auto:
		return "AUTO"
	case V4Only:
		return "V4_ONLY"
	case V6Only:
		return "V6_ONLY"
	case V4Preferred:
		return "V4_PREFERRED"
	case All:
		return "ALL"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// Answer is one resolved address.
type Answer struct {
	Addr netip.Addr
	TTL  time.Duration
}

// Config configures a Resolver. The zero value reads /etc/resolv.conf and
// /etc/hosts.
type Config struct {
	// Servers are "ip:port" or "ip" (port 53) name servers; empty means
	// those of ResolvConf.
	Servers []string
	// ServersAsFallback uses Servers only when ResolvConf names none
	// (use_resolvers_as_fallback).
	ServersAsFallback bool
	// TCP sends every query over TCP (use_tcp_for_dns_lookups).
	TCP bool
	// NoSearch disables the search domains (no_default_search_domain).
	NoSearch bool
	// Timeout is the time one query may take; 0 means resolv.conf's timeout
	// or 5s.
	Timeout time.Duration
	// Tries is the number of rounds over all servers; 0 means resolv.conf's
	// attempts or 2.
	Tries int
	// ResolvConf is the resolv.conf path; "" means /etc/resolv.conf. A
	// missing file is fine when Servers is set.
	ResolvConf string
	// HostsFile is the hosts file path; "" means /etc/hosts, "-" none.
	HostsFile string
}

// Resolver resolves names. It is safe for concurrent use and holds no
// goroutines.
type Resolver struct {
	servers  []string
	search   []string
	ndots    int
	tcp      bool
	timeout  time.Duration
	tries    int
	hosts    map[string][]netip.Addr
	noSearch bool
}

// New builds a resolver from cfg.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{tcp: cfg.TCP, timeout: cfg.Timeout, tries: cfg.Tries, ndots: 1, noSearch: cfg.NoSearch}
	path := cfg.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	var sys *mdns.ClientConfig
	if len(cfg.Servers) == 0 || cfg.ServersAsFallback || !cfg.NoSearch {
		c, err := mdns.ClientConfigFromFile(path)
		if err != nil && (len(cfg.Servers) == 0) {
			return nil, fmt.Errorf("dns: %w", err)
		}
		sys = c
	}
	if sys != nil {
		r.search = sys.Search
		r.ndots = sys.Ndots
		if r.timeout == 0 && sys.Timeout > 0 {
			r.timeout = time.Duration(sys.Timeout) * time.Second
		}
		if r.tries == 0 && sys.Attempts > 0 {
			r.tries = sys.Attempts
		}
	}
	switch {
	case len(cfg.Servers) > 0 && !(cfg.ServersAsFallback && sys != nil && len(sys.Servers) > 0):
		for _, s := range cfg.Servers {
			hp, err := serverAddr(s)
			if err != nil {
				return nil, err
			}
			r.servers = append(r.servers, hp)
		}
	case sys != nil:
		for _, s := range sys.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, sys.Port))
		}
	}
	if len(r.servers) == 0 {
		return nil, errors.New("dns: no name servers")
	}
	if r.timeout == 0 {
		r.timeout = 5 * time.Second
	}
	if r.tries == 0 {
		r.tries = 2
	}
	if cfg.HostsFile != "-" {
		hp := cfg.HostsFile
		if hp == "" {
			hp = "/etc/hosts"
		}
		if b, err := os.ReadFile(hp); err == nil {
			r.hosts = parseHosts(b)
		} else if cfg.HostsFile != "" {
			return nil, fmt.Errorf("dns: hosts file: %w", err)
		}
	}
	return r, nil
}

func serverAddr(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("dns: bad name server address %q", s)
}

// Servers returns the name servers in the order they are asked.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

func parseHosts(b []byte) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		a = a.WithZone("")
		for _, name := range f[1:] {
			k := strings.ToLower(strings.TrimSuffix(name, "."))
			out[k] = append(out[k], a)
		}
	}
	return out
}

// ErrResolve is wrapped by resolution failures (as opposed to names that do
// not exist, which resolve to nothing).
var ErrResolve = errors.New("dns resolution failed")

// Resolve returns the addresses of name for the family. An empty result
// with a nil error means the name has no such addresses.
func (r *Resolver) Resolve(ctx context.Context, name string, fam Family) ([]Answer, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return filter([]Answer{{Addr: a.Unmap()}}, fam), nil
	}
	key := strings.ToLower(strings.TrimSuffix(name, "."))
	if addrs, ok := r.hosts[key]; ok {
		out := make([]Answer, 0, len(addrs))
		for _, a := range addrs {
			out = append(out, Answer{Addr: a.Unmap()})
		}
		return filter(out, fam), nil
	}
	for _, cand := range r.candidates(name) {
		ans, found, err := r.resolveFamily(ctx, cand, fam)
		if err != nil {
			return nil, err
		}
		if found {
			return ans, nil
		}
	}
	return nil, nil
}

func (r *Resolver) candidates(name string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	abs := mdns.Fqdn(name)
	if r.noSearch || len(r.search) == 0 {
		return []string{abs}
	}
	var out []string
	withSearch := make([]string, 0, len(r.search))
	for _, s := range r.search {
		withSearch = append(withSearch, mdns.Fqdn(name+"."+strings.TrimSuffix(s, ".")))
	}
	if strings.Count(name, ".") >= r.ndots {
		out = append(out, abs)
		out = append(out, withSearch...)
	} else {
		out = append(out, withSearch...)
		out = append(out, abs)
	}
	return out
}

// filter applies the family to already known addresses.
func filter(in []Answer, fam Family) []Answer {
	var v4, v6 []Answer
	for _, a := range in {
		if a.Addr.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	switch fam {
	case V4Only:
		return v4
	case V6Only:
		return v6
	case Auto:
		if len(v6) > 0 {
			return v6
		}
		return v4
	case V4Preferred:
		if len(v4) > 0 {
			return v4
		}
		return v6
	}
	return append(v4, v6...)
}

// resolveFamily asks for one fully qualified name. found is false when the
// name does not exist or has no address of the asked families, so the
// search list continues.
func (r *Resolver) resolveFamily(ctx context.Context, fqdn string, fam Family) ([]Answer, bool, error) {
	switch fam {
	case V4Only:
		return r.query(ctx, fqdn, mdns.TypeA)
	case V6Only:
		return r.query(ctx, fqdn, mdns.TypeAAAA)
	case Auto, V4Preferred:
		first, second := mdns.TypeAAAA, mdns.TypeA
		if fam == V4Preferred {
			first, second = mdns.TypeA, mdns.TypeAAAA
		}
		ans, found, err := r.query(ctx, fqdn, first)
		if err != nil || found {
			return ans, found, err
		}
		return r.query(ctx, fqdn, second)
	}
	v4, f4, err := r.query(ctx, fqdn, mdns.TypeA)
	if err != nil {
		return nil, false, err
	}
	v6, f6, err := r.query(ctx, fqdn, mdns.TypeAAAA)
	if err != nil {
		return nil, false, err
	}
	return append(v4, v6...), f4 || f6, nil
}

func (r *Resolver) query(ctx context.Context, fqdn string, qtype uint16) ([]Answer, bool, error) {
	m := new(mdns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	var lastErr error
	for range r.tries {
		for _, srv := range r.servers {
			if err := ctx.Err(); err != nil {
				return nil, false, fmt.Errorf("%w: %s: %w", ErrResolve, fqdn, err)
			}
			resp, err := r.exchange(ctx, m, srv)
			if err != nil {
				lastErr = err
				continue
			}
			switch resp.Rcode {
			case mdns.RcodeSuccess:
			case mdns.RcodeNameError:
				return nil, false, nil
			default:
				lastErr = fmt.Errorf("server %s answered %s", srv, mdns.RcodeToString[resp.Rcode])
				continue
			}
			return answers(resp, qtype)
		}
	}
	return nil, false, fmt.Errorf("%w: %s %s: %w", ErrResolve, fqdn, mdns.TypeToString[qtype], lastErr)
}

func (r *Resolver) exchange(ctx context.Context, m *mdns.Msg, srv string) (*mdns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	netw := "udp"
	if r.tcp {
		netw = "tcp"
	}
	c := &mdns.Client{Net: netw, Timeout: r.timeout}
	resp, _, err := c.ExchangeContext(qctx, m, srv)
	if err == nil && resp.Truncated && netw == "udp" {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(qctx, m, srv)
	}
	return resp, err
}

func answers(resp *mdns.Msg, qtype uint16) ([]Answer, bool, error) {
	var out []Answer
	minTTL := ^uint32(0)
	for _, rr := range resp.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			if qtype != mdns.TypeA {
				continue
			}
			if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
				out = append(out, Answer{Addr: a})
			}
		case *mdns.AAAA:
			if qtype != mdns.TypeAAAA {
				continue
			}
			if a, ok := netip.AddrFromSlice(v.AAAA.To16()); ok {
				out = append(out, Answer{Addr: a})
			}
		case *mdns.CNAME:
		default:
			continue
		}
		minTTL = min(minTTL, rr.Header().Ttl)
	}
	if len(out) == 0 {
		return nil, false, nil
	}
	ttl := time.Duration(minTTL) * time.Second
	for i := range out {
		out[i].TTL = ttl
	}
	return out, true, nil
}
