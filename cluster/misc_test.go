package cluster_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/wasmesh/wasmesh/cluster"
)

func TestPipeEndpoint(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "up.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets: %v", err)
	}
	u := &upstream{name: "pipe"}
	srv := httptest.NewUnstartedServer(u)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	e := newEnv(t, nil)
	cl := e.add(fmt.Sprintf(`
name: pipe
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: pipe
  endpoints: [{lb_endpoints: [{endpoint: {address: {pipe: {path: %s}}}}]}]
`, sock))
	for range 3 {
		name, _, err := get(t, cl, "/", cluster.LoadBalancerContext{})
		if err != nil || name != "pipe" {
			t.Fatalf("pipe request: %q %v", name, err)
		}
	}
	h := cl.Hosts()[0]
	if h.Network() != "unix" || h.Address() != sock || h.Stats().CxTotal != 1 {
		t.Fatalf("host %s %s %+v", h.Network(), h.Address(), h.Stats())
	}
}

func TestUpstreamBindConfig(t *testing.T) {
	var remote atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote.Store(r.RemoteAddr)
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, nil)
	cl := e.add(staticCluster(t, "bind", "upstream_bind_config: {source_address: {address: 127.0.0.2, port_value: 0}}", srv.Listener.Addr().String()))
	if _, _, err := get(t, cl, "/", cluster.LoadBalancerContext{}); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := net.SplitHostPort(remote.Load().(string)); h != "127.0.0.2" {
		t.Fatalf("source address %s, want 127.0.0.2", h)
	}
}
