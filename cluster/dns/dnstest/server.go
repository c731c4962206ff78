// Package dnstest runs a real DNS server on 127.0.0.1 for tests: a
// miekg/dns server on UDP and TCP (same port) answering A, AAAA and CNAME
// records from a table the test changes while it runs.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// Server is a DNS server for tests. All methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:<port>", for both UDP and TCP.
	Addr string

	udp, tcp *mdns.Server

	mu       sync.Mutex
	records  map[string][]mdns.RR // by lower-case fqdn
	rcode    map[string]int       // forced response codes by fqdn
	queries  map[string]int       // "fqdn TYPE" -> count
	truncUDP bool
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	// The UDP port chosen by the kernel may be taken for TCP: try again.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 50 {
			t.Fatal(err)
		}
	}
	s := &Server{
		Addr:    pc.LocalAddr().String(),
		records: map[string][]mdns.RR{},
		rcode:   map[string]int{},
		queries: map[string]int{},
	}
	started := make(chan struct{}, 2)
	s.udp = &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(s.serveUDP), NotifyStartedFunc: func() { started <- struct{}{} }}
	s.tcp = &mdns.Server{Listener: ln, Handler: mdns.HandlerFunc(s.serveTCP), NotifyStartedFunc: func() { started <- struct{}{} }}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.udp.ActivateAndServe() }()
	go func() { defer wg.Done(); _ = s.tcp.ActivateAndServe() }()
	<-started
	<-started
	t.Cleanup(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
		wg.Wait()
	})
	return s
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(b[n:])
}

// SetA replaces name's A and AAAA records with addrs (IPv4 or IPv6), all
// with the TTL. No addresses removes the name (NXDOMAIN).
func (s *Server) SetA(name string, ttl time.Duration, addrs ...string) {
	fq := strings.ToLower(mdns.Fqdn(name))
	var rrs []mdns.RR
	for _, a := range addrs {
		ip := netip.MustParseAddr(a)
		hdr := mdns.RR_Header{Name: fq, Class: mdns.ClassINET, Ttl: uint32(ttl / time.Second)}
		if ip.Is4() {
			hdr.Rrtype = mdns.TypeA
			rrs = append(rrs, &mdns.A{Hdr: hdr, A: ip.AsSlice()})
		} else {
			hdr.Rrtype = mdns.TypeAAAA
			rrs = append(rrs, &mdns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rrs) == 0 {
		delete(s.records, fq)
		return
	}
	s.records[fq] = rrs
}

// SetCNAME makes name an alias of target.
func (s *Server) SetCNAME(name, target string, ttl time.Duration) {
	fq := strings.ToLower(mdns.Fqdn(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[fq] = []mdns.RR{&mdns.CNAME{
		Hdr:    mdns.RR_Header{Name: fq, Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET, Ttl: uint32(ttl / time.Second)},
		Target: strings.ToLower(mdns.Fqdn(target)),
	}}
}

// SetRcode forces the response code for name (e.g. mdns.RcodeServerFailure);
// mdns.RcodeSuccess clears it.
func (s *Server) SetRcode(name string, rcode int) {
	fq := strings.ToLower(mdns.Fqdn(name))
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == mdns.RcodeSuccess {
		delete(s.rcode, fq)
		return
	}
	s.rcode[fq] = rcode
}

// TruncateUDP makes UDP answers truncated, so clients must retry over TCP.
func (s *Server) TruncateUDP(on bool) {
	s.mu.Lock()
	s.truncUDP = on
	s.mu.Unlock()
}

// Queries returns how many queries for name and type ("A", "AAAA") arrived.
func (s *Server) Queries(name, qtype string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[strings.ToLower(mdns.Fqdn(name))+" "+qtype]
}

func (s *Server) serveUDP(w mdns.ResponseWriter, r *mdns.Msg) { s.serve(w, r, true) }
func (s *Server) serveTCP(w mdns.ResponseWriter, r *mdns.Msg) { s.serve(w, r, false) }

func (s *Server) serve(w mdns.ResponseWriter, r *mdns.Msg, udp bool) {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries[name+" "+mdns.TypeToString[q.Qtype]]++
	trunc := s.truncUDP && udp
	rc, forced := s.rcode[name]
	// Follow CNAMEs within the table.
	var ans []mdns.RR
	exists := false
	for range 8 {
		rrs, ok := s.records[name]
		if !ok {
			break
		}
		exists = true
		if c, isC := rrs[0].(*mdns.CNAME); isC {
			ans = append(ans, c)
			name = c.Target
			continue
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				ans = append(ans, rr)
			}
		}
		break
	}
	s.mu.Unlock()
	switch {
	case forced:
		m.Rcode = rc
	case trunc:
		m.Truncated = true
	case !exists:
		m.Rcode = mdns.RcodeNameError
	default:
		m.Answer = ans
	}
	_ = w.WriteMsg(m)
}
