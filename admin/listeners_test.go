package admin

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
)

type fakeListeners struct {
	mu       sync.Mutex
	statuses []ListenerStatus
	drains   []DrainOptions
	err      error
}

func (f *fakeListeners) ListenerStatuses() []ListenerStatus { return f.statuses }

func (f *fakeListeners) DrainListeners(o DrainOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, o)
	return f.err
}

func (f *fakeListeners) lastDrain() (DrainOptions, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.drains) == 0 {
		return DrainOptions{}, 0
	}
	return f.drains[len(f.drains)-1], len(f.drains)
}

func TestListeners(t *testing.T) {
	// Real bound sockets, as the listener manager will report them.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer tcp6.Close()
	fl := &fakeListeners{statuses: []ListenerStatus{
		{Name: "ingress", Addresses: []*corev3.Address{AddressFromNet(tcp.Addr()), AddressFromNet(tcp6.Addr())}},
		{Name: "uds", Addresses: []*corev3.Address{AddressFromNet(&net.UnixAddr{Name: "/run/envoy.sock", Net: "unix"})}},
	}}
	ta := startAdmin(t, Options{Listeners: fl})
	tcpPort := tcp.Addr().(*net.TCPAddr).Port
	tcp6Port := tcp6.Addr().(*net.TCPAddr).Port

	code, body := ta.get(t, "/listeners")
	want := "ingress::" + tcp.Addr().String() + "\n" +
		"ingress::" + tcp6.Addr().String() + "\n" +
		"uds::/run/envoy.sock\n"
	if code != 200 || body != want {
		t.Errorf("/listeners = %d\n%s\nwant\n%s", code, body, want)
	}

	var ls adminv3.Listeners
	ta.getJSON(t, "/listeners?format=json", &ls)
	st := ls.GetListenerStatuses()
	if len(st) != 2 {
		t.Fatalf("%d listener statuses", len(st))
	}
	if st[0].GetName() != "ingress" ||
		st[0].GetLocalAddress().GetSocketAddress().GetAddress() != "127.0.0.1" ||
		st[0].GetLocalAddress().GetSocketAddress().GetPortValue() != uint32(tcpPort) {
		t.Errorf("ingress: %v", st[0])
	}
	if add := st[0].GetAdditionalLocalAddresses(); len(add) != 1 ||
		add[0].GetSocketAddress().GetAddress() != "::1" || add[0].GetSocketAddress().GetPortValue() != uint32(tcp6Port) {
		t.Errorf("ingress additional addresses: %v", add)
	}
	if st[1].GetLocalAddress().GetPipe().GetPath() != "/run/envoy.sock" {
		t.Errorf("uds: %v", st[1])
	}
}

func TestAddressConversions(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   net.Addr
		text string
		want *corev3.Address
	}{
		{"tcp4", &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 80}, "10.1.2.3:80", sockAddr("10.1.2.3", 80)},
		{"tcp6", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443}, "[fe80::1]:443", sockAddr("fe80::1", 443)},
		{"udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, "127.0.0.1:53",
			&corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol: corev3.SocketAddress_UDP, Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 53}}}}},
		{"unix", &net.UnixAddr{Name: "@abstract", Net: "unix"}, "@abstract",
			&corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "@abstract"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AddressFromNet(tc.in)
			if !proto.Equal(got, tc.want) {
				t.Errorf("AddressFromNet = %v, want %v", got, tc.want)
			}
			if s := FormatAddress(got); s != tc.text {
				t.Errorf("FormatAddress = %q, want %q", s, tc.text)
			}
		})
	}
	internal := &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "inner"}, EndpointId: "e1"}}}
	if s := FormatAddress(internal); s != "envoy://inner/e1" {
		t.Errorf("internal address %q", s)
	}
	if s := FormatAddress(nil); s != "" {
		t.Errorf("nil address %q", s)
	}
	if AddressFromNet(nil) != nil {
		t.Error("AddressFromNet(nil) != nil")
	}
}

func TestDrainListeners(t *testing.T) {
	fl := &fakeListeners{}
	ta := startAdmin(t, Options{Listeners: fl})
	n := 0
	for _, tc := range []struct {
		query string
		code  int
		want  DrainOptions
	}{
		{"", 200, DrainOptions{}},
		{"?inboundonly", 200, DrainOptions{InboundOnly: true}},
		{"?graceful", 200, DrainOptions{Graceful: true}},
		{"?graceful&skip_exit&inboundonly", 200, DrainOptions{Graceful: true, SkipExit: true, InboundOnly: true}},
		{"?skip_exit", 400, DrainOptions{}},
	} {
		code, body := ta.post(t, "/drain_listeners"+tc.query)
		if code != tc.code {
			t.Errorf("POST /drain_listeners%s = %d %q, want %d", tc.query, code, body, tc.code)
			continue
		}
		if code != 200 {
			if _, m := fl.lastDrain(); m != n {
				t.Errorf("%s: drained although refused", tc.query)
			}
			continue
		}
		n++
		if body != "OK\n" {
			t.Errorf("%s: body %q", tc.query, body)
		}
		got, m := fl.lastDrain()
		if m != n || got != tc.want {
			t.Errorf("%s: drain %+v (call %d), want %+v", tc.query, got, m, tc.want)
		}
	}
	// Form values are read like query values.
	code, _ := ta.postForm(t, "/drain_listeners", url.Values{"graceful": {""}})
	if got, _ := fl.lastDrain(); code != 200 || !got.Graceful {
		t.Errorf("form graceful: %d %+v", code, got)
	}
	fl.err = errors.New("listener manager stopped")
	if code, body := ta.post(t, "/drain_listeners"); code != 500 || body != "listener manager stopped\n" {
		t.Errorf("drain error = %d %q", code, body)
	}
}
