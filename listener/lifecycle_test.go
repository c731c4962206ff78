package listener

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/filterchain/router"
)

// TestAdoptUnderLoad swaps listener versions while clients (HTTP/1.1
// keep-alive, h2c, and fresh connections) run: no request fails and the
// port never refuses a connection.
func TestAdoptUnderLoad(t *testing.T) {
	e := newEnv(t)
	e.deps.Logger = nil // quiet: thousands of connections
	cfg := func(v int) string {
		return `
name: swap
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:` + hcmFilter(fmt.Sprintf("v%d", v))
	}
	cur := e.start(cfg(0))
	addr := cur.Addr().String()
	url := "http://" + addr + "/"

	var (
		mu       sync.Mutex
		seen     = map[string]int{}
		failures []error
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		requests atomic.Int64
	)
	record := func(body string, err error) {
		mu.Lock()
		defer mu.Unlock()
		requests.Add(1)
		if err != nil {
			failures = append(failures, err)
			return
		}
		seen[body]++
	}
	client := func(name string, c *http.Client) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var info httptrace.GotConnInfo
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { info = i }}), "GET", url, nil)
			resp, err := c.Do(req)
			if err != nil {
				record("", fmt.Errorf("%s (reused %v, local %v): %w", name, info.Reused, info.Conn.LocalAddr(), err))
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			record(string(b), err)
		}
	}
	h1 := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go client("http/1.1", h1)
	}
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go client("h2c", h2cClient())
	}
	// Fresh connections: the port must never refuse one.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				record("", fmt.Errorf("dial: %w", err))
				continue
			}
			c.Close()
		}
	}()

	var drains sync.WaitGroup
	const versions = 30
	for v := 1; v <= versions; v++ {
		next, err := Compile(context.Background(), parseListener(t, cfg(v)), e.deps)
		if err != nil {
			t.Fatal(err)
		}
		if err := next.Adopt(cur); err != nil {
			t.Fatal(err)
		}
		old := cur
		cur = next
		drains.Add(1)
		go func() {
			defer drains.Done()
			old.Drain(context.Background(), 5*time.Second)
		}()
		want := fmt.Sprintf("v%d", v)
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return seen[want] > 0 })
	}
	close(stop)
	wg.Wait()
	drains.Wait()
	t.Cleanup(func() { cur.Stop() })
	h1.CloseIdleConnections()
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", len(failures), requests.Load(), failures[0])
	}
	t.Logf("%d requests over %d versions", requests.Load(), versions+1)
}

// slowClusters is a router Clusters with one upstream.
type slowClusters struct{ addr string }

func (c *slowClusters) Has(string) bool { return true }

func (c *slowClusters) RoundTrip(_ string, req *http.Request, lb router.LBContext) (*http.Response, string, error) {
	if req.Header == nil {
		req.Header = cluster.HeaderOfFields(lb.Fields)
	}
	req.URL.Scheme, req.URL.Host = "http", c.addr
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, c.addr, &router.UpstreamError{Kind: router.FailureConnect, Err: err}
	}
	return resp, c.addr, nil
}

func TestDrainLetsInFlightRequestsFinish(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "slow answer")
	}))
	t.Cleanup(up.Close)
	e.deps.HCM.Env.Values[router.EnvKeyClusters] = &slowClusters{addr: up.Listener.Addr().String()}
	l, err := Compile(context.Background(), parseListener(t, `
name: drain
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: drain
      route_config:
        virtual_hosts:
        - name: all
          domains: ["*"]
          routes: [{match: {prefix: "/"}, route: {cluster: slow}}]
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`), e.deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-arrived
	drained := make(chan error, 1)
	go func() { drained <- l.Drain(context.Background(), 10*time.Second) }()
	// The port closes at once.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-drained:
		t.Fatal("drain returned with a request in flight")
	default:
	}
	close(release)
	r := <-res
	if r.err != nil || r.body != "slow answer" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

func TestDrainClosesTCPSessionsAfterDrainTime(t *testing.T) {
	e := newEnv(t)
	e.dialer.addrs["echo"] = echoServer(t, "tcp", "127.0.0.1:0")
	l := e.start(`
name: tcpdrain
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:` + tcpProxyFilter("echo"))
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	echo := func(s string) error {
		if _, err := io.WriteString(c, s); err != nil {
			return err
		}
		b := make([]byte, len(s))
		_, err := io.ReadFull(c, b)
		return err
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}
	drained := make(chan error, 1)
	start := time.Now()
	go func() { drained <- l.Drain(context.Background(), 300*time.Millisecond) }()
	// The session keeps working while the listener drains...
	if err := echo("during"); err != nil {
		t.Fatalf("during drain: %v", err)
	}
	// ...and is closed when the drain time is over.
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatalf("drain returned after %v", time.Since(start))
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("session still open after the drain time")
	}
}

func TestAdoptRejectsOtherAddress(t *testing.T) {
	e := newEnv(t)
	a := e.start("\nname: a\naddress: {socket_address: {address: 127.0.0.1, port_value: 0}}\nfilter_chains:\n- filters:" + directFilter("a"))
	b, err := Compile(context.Background(), parseListener(t, "\nname: a\naddress: {socket_address: {address: \"::1\", port_value: 0}}\nfilter_chains:\n- filters:"+directFilter("b")), e.deps)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	if err := b.Adopt(a); err == nil {
		t.Fatal("adopted a socket of another address")
	}
}
