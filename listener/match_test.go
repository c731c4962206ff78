package listener

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/redis_proxy/v3"
)

// compileMatches reads filter_chain_match entries (YAML list items).
func compileMatches(t *testing.T, items ...string) []*chainMatch {
	t.Helper()
	var ms []*chainMatch
	for i, y := range items {
		m := &listenerv3.FilterChainMatch{}
		if y != "" {
			if err := parseYAML(y, m); err != nil {
				t.Fatalf("%s: %v", y, err)
			}
		}
		cm, errs := compileMatch("m", i, m)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", y, errs)
		}
		ms = append(ms, cm)
	}
	if err := checkDuplicates(ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestSelectChain(t *testing.T) {
	base := facts{local: ap("10.0.0.1:443"), remote: ap("192.168.1.7:5555"), direct: ap("192.168.1.7:5555"), transport: "raw_buffer"}
	with := func(f func(*facts)) facts { c := base; f(&c); return c }
	for _, tc := range []struct {
		name   string
		chains []string
		f      facts
		want   int
	}{
		{"catch-all", []string{""}, base, 0},
		{"port exact beats any", []string{"", "destination_port: 443"}, base, 1},
		{"port mismatch falls to any", []string{"", "destination_port: 80"}, base, 0},
		{"exact port wins even when later criteria fail (no backtracking)",
			[]string{"server_names: [x.com]", "destination_port: 443\nserver_names: [y.com]"}, with(func(f *facts) { f.sni = "x.com" }), -1},
		{"longest destination prefix", []string{"prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]", "prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 24}]", ""}, base, 1},
		{"destination /0 and none tie (then later criteria)", []string{"prefix_ranges: [{address_prefix: 0.0.0.0, prefix_len: 0}]\ntransport_protocol: raw_buffer", ""}, base, 0},
		{"destination ranges of the other family do not match", []string{"prefix_ranges: [{address_prefix: \"::\", prefix_len: 0}]"}, base, -1},
		{"original destination drives matching", []string{"prefix_ranges: [{address_prefix: 10.9.9.9, prefix_len: 32}]", ""}, with(func(f *facts) { f.local = ap("10.9.9.9:80") }), 0},
		{"exact server name", []string{"server_names: [\"*.example.com\"]", "server_names: [www.example.com]", ""}, with(func(f *facts) { f.sni = "www.example.com" }), 1},
		{"most specific wildcard", []string{"server_names: [\"*.com\"]", "server_names: [\"*.example.com\"]", ""}, with(func(f *facts) { f.sni = "a.b.example.com" }), 1},
		{"wildcard does not match the bare domain", []string{"server_names: [\"*.example.com\"]", ""}, with(func(f *facts) { f.sni = "example.com" }), 1},
		{"no SNI takes the chain without names", []string{"server_names: [a.com]", ""}, base, 1},
		{"no SNI and only named chains", []string{"server_names: [a.com]"}, base, -1},
		{"transport exact", []string{"transport_protocol: tls", "transport_protocol: raw_buffer", ""}, with(func(f *facts) { f.transport = "tls" }), 0},
		{"transport any", []string{"transport_protocol: tls", ""}, base, 1},
		{"ALPN: the client's first listed protocol wins", []string{"application_protocols: [http/1.1]", "application_protocols: [h2]", ""}, with(func(f *facts) { f.alpn = []string{"h2", "http/1.1"} }), 1},
		{"ALPN none", []string{"application_protocols: [h2]", ""}, base, 1},
		{"direct source prefix", []string{"direct_source_prefix_ranges: [{address_prefix: 192.168.0.0, prefix_len: 16}]", ""}, base, 0},
		{"source type external", []string{"source_type: SAME_IP_OR_LOOPBACK", "source_type: EXTERNAL"}, base, 1},
		{"source type local (loopback)", []string{"source_type: SAME_IP_OR_LOOPBACK", "source_type: EXTERNAL"}, with(func(f *facts) { f.remote = ap("127.0.0.1:1") }), 0},
		{"source type local (same IP)", []string{"source_type: SAME_IP_OR_LOOPBACK", ""}, with(func(f *facts) { f.remote = ap("10.0.0.1:1") }), 0},
		{"source type falls back to ANY", []string{"source_type: SAME_IP_OR_LOOPBACK", ""}, base, 1},
		{"source prefix longest", []string{"source_prefix_ranges: [{address_prefix: 192.168.1.0, prefix_len: 24}]", "source_prefix_ranges: [{address_prefix: 192.168.1.7, prefix_len: 32}]"}, base, 1},
		{"source prefix miss", []string{"source_prefix_ranges: [{address_prefix: 172.16.0.0, prefix_len: 12}]"}, base, -1},
		{"source port exact beats any", []string{"", "source_ports: [5555, 6666]"}, base, 1},
		{"source port miss falls to any", []string{"", "source_ports: [6666]"}, base, 0},
		{"criteria order: port before server name", []string{"server_names: [a.com]", "destination_port: 443"}, with(func(f *facts) { f.sni = "a.com" }), 1},
		{"IPv6", []string{"prefix_ranges: [{address_prefix: \"2001:db8::\", prefix_len: 32}]", ""}, with(func(f *facts) { f.local = ap("[2001:db8::1]:443") }), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := compileMatches(t, tc.chains...)
			if got := selectChain(ms, &tc.f); got != tc.want {
				t.Fatalf("selectChain = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSourceMatchingOnSockets picks chains by the client's address on real
// connections (127.0.0.2 is a loopback address on Linux).
func TestSourceMatchingOnSockets(t *testing.T) {
	e := newEnv(t)
	l := e.start(`
name: src
address: {socket_address: {address: 0.0.0.0, port_value: 0}}
filter_chains:
- filter_chain_match: {source_prefix_ranges: [{address_prefix: 127.0.0.2, prefix_len: 32}]}
  filters:` + directFilter("from .2") + `
- filter_chain_match: {destination_port: 1}
  filters:` + directFilter("port 1") + `
- filters:` + directFilter("other"))
	_, port, _ := net.SplitHostPort(l.Addr().String())
	dial := func(src string) string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := make([]byte, 64)
		n, _ := c.Read(b)
		return string(b[:n])
	}
	if got := dial("127.0.0.2"); got != "from .2" {
		t.Errorf("from 127.0.0.2: %q", got)
	}
	if got := dial("127.0.0.1"); got != "other" {
		t.Errorf("from 127.0.0.1: %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	const addr = "\nname: bad\naddress: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
	for _, tc := range []struct{ name, y, want string }{
		{"partial wildcard", `filter_chains:
- filter_chain_match: {server_names: ["www.*.com"]}
  filters:` + directFilter("x"), `listener "bad".filter_chains[0].filter_chain_match.server_names[0]: partial wildcards are not supported`},
		{"bare star", `filter_chains:
- filter_chain_match: {server_names: ["a.com", "*"]}
  filters:` + directFilter("x"), `filter_chains[0].filter_chain_match.server_names[1]: partial wildcards`},
		{"duplicate chains", `filter_chains:
- filter_chain_match: {server_names: [a.com, b.com]}
  filters:` + directFilter("x") + `
- filter_chain_match: {server_names: [b.com]}
  filters:` + directFilter("y"), `filter_chains[1]: multiple filter chains with the same matching rules are defined (also filter_chains[0])`},
		{"empty and /0 destination are the same", `filter_chains:
- filter_chain_match: {prefix_ranges: [{address_prefix: 0.0.0.0, prefix_len: 0}]}
  filters:` + directFilter("x") + `
- filters:` + directFilter("y"), `multiple filter chains with the same matching rules`},
		{"filter_chain_matcher", `filter_chain_matcher: {matcher_tree: {input: {name: x, typed_config: {"@type": type.googleapis.com/google.protobuf.Empty}}, exact_match_map: {map: {a: {action: {name: x, typed_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: x}}}}}}}
filter_chains:
- filters:` + directFilter("x"), `filter_chain_matcher: not implemented by wasmesh`},
		{"unimplemented listener field", `transparent: true
filter_chains:
- filters:` + directFilter("x"), `listener "bad".transparent: not implemented by wasmesh`},
		{"unknown listener filter", `listener_filters:
- name: proxy_protocol
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol}
filter_chains:
- filters:` + directFilter("x"), `listener_filters[0]: unsupported listener filter type "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"`},
		{"unknown network filter", `filter_chains:
- filters:
  - name: redis
    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy, stat_prefix: r, settings: {op_timeout: 1s}}`, `filter_chains[0].filters[0]: unsupported network filter type`},
		{"terminal not last", `filter_chains:
- filters:` + directFilter("x") + directFilter("y"), `listener "bad".filter_chains[0].filters[0] (envoy.filters.network.direct_response): a terminal filter must be the last in the chain`},
		{"hcm not last", `filter_chains:
- filters:` + hcmFilter("x") + directFilter("y"), `filter_chains[0].filters[0]: http_connection_manager must be the last filter`},
		{"unknown cipher", `filter_chains:
- filters:` + directFilter("x") + `
  transport_socket:
    name: tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      common_tls_context:
        tls_params: {cipher_suites: ["ECDHE-RSA-AES128-GCM-SHA256", "PSK-AES128-CBC-SHA"]}
        tls_certificates: [{certificate_chain: {inline_string: x}, private_key: {inline_string: k}}]`,
			`filter_chains[0].transport_socket.typed_config.common_tls_context.tls_params.cipher_suites[1]: unknown or unsupported cipher suite "PSK-AES128-CBC-SHA"`},
		{"missing secret", `filter_chains:
- filters:` + directFilter("x") + `
  transport_socket:
    name: tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: nope}]`, `common_tls_context.tls_certificate_sds_secret_configs[0]: secret "nope"`},
		{"tcp_proxy unimplemented field", `filter_chains:
- filters:
  - name: tcp
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: t
      cluster: c
      max_downstream_connection_duration: 1s`, `filter_chains[0].filters[0] (tcp): max_downstream_connection_duration: not implemented by wasmesh`},
		{"udp", "filter_chains:\n- filters:" + directFilter("x"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := addr + tc.y
			if tc.name == "udp" {
				y = "\nname: bad\naddress: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: 0}}\n" + tc.y
				tc.want = "address.socket_address.protocol: UDP listeners are not supported"
			}
			_, err := Compile(context.Background(), parseListener(t, y), newEnv(t).deps)
			if err == nil {
				t.Fatal("compiled")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}
