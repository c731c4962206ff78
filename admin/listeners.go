package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// handleListeners answers /listeners: "name::address" lines, one per bound
// address, or envoy.admin.v3.Listeners with ?format=json.
func (a *Admin) handleListeners(w http.ResponseWriter, r *http.Request) {
	var ls []ListenerStatus
	if a.o.Listeners != nil {
		ls = a.o.Listeners.ListenerStatuses()
	}
	if r.URL.Query().Get("format") == "json" {
		out := &adminv3.Listeners{}
		for _, l := range ls {
			st := &adminv3.ListenerStatus{Name: l.Name}
			if len(l.Addresses) > 0 {
				st.LocalAddress = l.Addresses[0]
				st.AdditionalLocalAddresses = l.Addresses[1:]
			}
			out.ListenerStatuses = append(out.ListenerStatuses, st)
		}
		writeJSON(w, out, false)
		return
	}
	var b strings.Builder
	for _, l := range ls {
		for _, addr := range l.Addresses {
			b.WriteString(l.Name + "::" + FormatAddress(addr) + "\n")
		}
	}
	w.Write([]byte(b.String()))
}

// handleDrainListeners answers POST /drain_listeners[?inboundonly][&graceful[&skip_exit]].
func (a *Admin) handleDrainListeners(w http.ResponseWriter, r *http.Request) {
	q := requestParams(r)
	o := DrainOptions{InboundOnly: q.Has("inboundonly"), Graceful: q.Has("graceful"), SkipExit: q.Has("skip_exit")}
	if o.SkipExit && !o.Graceful {
		writeText(w, http.StatusBadRequest, "skip_exit requires graceful\n")
		return
	}
	if a.o.Listeners != nil {
		if err := a.o.Listeners.DrainListeners(o); err != nil {
			writeText(w, http.StatusInternalServerError, err.Error()+"\n")
			return
		}
	}
	w.Write([]byte("OK\n"))
}

// AddressFromNet converts a bound address to Envoy's Address: TCP and UDP
// addresses to a socket_address, Unix sockets to a pipe.
func AddressFromNet(addr net.Addr) *corev3.Address {
	socket := func(proto corev3.SocketAddress_Protocol, ap netip.AddrPort) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      proto,
			Address:       ap.Addr().Unmap().String(),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
		}}}
	}
	switch a := addr.(type) {
	case *net.TCPAddr:
		return socket(corev3.SocketAddress_TCP, a.AddrPort())
	case *net.UDPAddr:
		return socket(corev3.SocketAddress_UDP, a.AddrPort())
	case *net.UnixAddr:
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: a.Name}}}
	case nil:
		return nil
	}
	if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		proto := corev3.SocketAddress_TCP
		if strings.HasPrefix(addr.Network(), "udp") {
			proto = corev3.SocketAddress_UDP
		}
		return socket(proto, ap)
	}
	return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: addr.String()}}}
}

// FormatAddress prints an address as Envoy's Address::asString does:
// "10.0.0.1:80", "[::1]:80", a pipe's path, or
// "envoy://<listener>/<endpoint_id>" for an internal address.
func FormatAddress(addr *corev3.Address) string {
	switch {
	case addr.GetSocketAddress() != nil:
		sa := addr.GetSocketAddress()
		port := strconv.FormatUint(uint64(sa.GetPortValue()), 10)
		if sa.GetNamedPort() != "" {
			port = sa.GetNamedPort()
		}
		host := sa.GetAddress()
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.Unmap().String()
		}
		return net.JoinHostPort(host, port)
	case addr.GetPipe() != nil:
		return addr.GetPipe().GetPath()
	case addr.GetEnvoyInternalAddress() != nil:
		ia := addr.GetEnvoyInternalAddress()
		return "envoy://" + ia.GetServerListenerName() + "/" + ia.GetEndpointId()
	}
	return ""
}
