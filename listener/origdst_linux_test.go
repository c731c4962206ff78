//go:build linux

package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// recordingDialer remembers the original destinations it was asked for and
// dials one address.
type recordingDialer struct {
	addr string
	mu   sync.Mutex
	seen []netip.AddrPort
}

func (d *recordingDialer) Dial(ctx context.Context, _ string, od netip.AddrPort) (net.Conn, string, error) {
	d.mu.Lock()
	d.seen = append(d.seen, od)
	d.mu.Unlock()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.addr)
	return c, d.addr, err
}

// enterNetns moves the calling goroutine's thread into a fresh network
// namespace for the rest of the test (the thread is locked and dies with
// the test's goroutine). Sockets created on this goroutine live there.
func enterNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("original_dst test needs root for a network namespace and iptables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip (iproute2) is not installed: cannot create a network namespace; scripts/deps.sh installs it")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatal("iptables is not installed: cannot redirect connections; scripts/deps.sh installs it")
	}
	name := fmt.Sprintf("wasmesh-lst-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns is unavailable here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	runtime.LockOSThread() // never unlocked: the thread ends with the test
	f, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("setns: %v", err)
	}
	return name
}

func nsRun(t *testing.T, ns string, args ...string) error {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// TestOriginalDstWithIptables redirects connections for 10.9.9.9 (and
// fd00::9) with iptables REDIRECT to a listener in a network namespace: the
// original_dst listener filter recovers the destination (SO_ORIGINAL_DST /
// IP6T_SO_ORIGINAL_DST), destination matching uses it, tcp_proxy hands it
// to the cluster manager, and use_original_dst hands the connection to the
// listener bound to that address.
func TestOriginalDstWithIptables(t *testing.T) {
	// The echo server lives in the test's original namespace: tcp_proxy
	// dials from goroutines that do not run in the namespace.
	echoAddr := echoServer(t, "tcp", "127.0.0.1:0")
	ns := enterNetns(t)
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", "10.9.9.9/32", "dev", "lo"},
	} {
		if err := nsRun(t, ns, args...); err != nil {
			t.Fatal(err)
		}
	}
	v6 := nsRun(t, ns, "ip", "addr", "add", "fd00::9/128", "dev", "lo", "nodad") == nil

	e := newEnv(t)
	dialer := &recordingDialer{addr: echoAddr}
	e.deps.Dialer = dialer
	idx := NewIndex()
	e.deps.Redirect = idx
	outbound := func(addr string) string {
		return fmt.Sprintf(`
name: outbound-%s
address: {socket_address: {address: %q, port_value: 0}}
use_original_dst: true
listener_filters:
- name: envoy.filters.listener.original_dst
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}
filter_chains:
- filter_chain_match:
    destination_port: 80
    prefix_ranges: [{address_prefix: 10.9.9.9, prefix_len: 32}, {address_prefix: "fd00::9", prefix_len: 128}]
  filters:`+directFilter("port 80 of 10.9.9.9")+`
- filter_chain_match: {destination_port: 82}
  filters:`+tcpProxyFilter("echo")+`
- filters:`+directFilter("passthrough"), strings.Trim(addr, ":"), addr)
	}
	out4 := e.start(outbound("0.0.0.0"))
	idx.Set(out4)
	// A virtual listener: not bound, reached only by hand-off.
	virtual := e.start(`
name: virtual
address: {socket_address: {address: 10.9.9.9, port_value: 81}}
bind_to_port: false
filter_chains:
- filters:` + directFilter("virtual 10.9.9.9:81"))
	idx.Set(virtual)

	_, port4, _ := net.SplitHostPort(out4.Addr().String())
	if err := nsRun(t, ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.9.9.9/32", "-j", "REDIRECT", "--to-ports", port4); err != nil {
		t.Skipf("iptables nat is unavailable here: %v", err)
	}
	cases := []struct{ dst, want string }{
		{"10.9.9.9:80", "port 80 of 10.9.9.9"},
		{"10.9.9.9:81", "virtual 10.9.9.9:81"},
		{"10.9.9.9:82", "through the proxy"},
		{"10.9.9.9:83", "passthrough"},
	}
	if v6 {
		out6 := e.start(outbound("::"))
		idx.Set(out6)
		_, port6, _ := net.SplitHostPort(out6.Addr().String())
		if err := nsRun(t, ns, "ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "fd00::9/128", "-j", "REDIRECT", "--to-ports", port6); err != nil {
			t.Logf("IPv6 part skipped: %v", err)
		} else {
			cases = append(cases, struct{ dst, want string }{"[fd00::9]:80", "port 80 of 10.9.9.9"}, struct{ dst, want string }{"[fd00::9]:82", "through the proxy"})
		}
	}
	for _, tc := range cases {
		msg := ""
		if tc.want == "through the proxy" {
			msg = tc.want
		}
		if got := rawExchange(t, tc.dst, msg); got != tc.want {
			t.Errorf("connect %s: got %q, want %q", tc.dst, got, tc.want)
		}
	}
	t.Logf("checked %d redirected destinations (IPv6: %v)", len(cases), v6)
	dialer.mu.Lock()
	defer dialer.mu.Unlock()
	if len(dialer.seen) == 0 || dialer.seen[0] != netip.MustParseAddrPort("10.9.9.9:82") {
		t.Errorf("tcp_proxy original destinations: %v", dialer.seen)
	}
	if v6 && len(dialer.seen) == 2 && dialer.seen[1] != netip.MustParseAddrPort("[fd00::9]:82") {
		t.Errorf("IPv6 original destination: %v", dialer.seen[1])
	}
}
