package health_test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/wasmesh/wasmesh/cluster/health"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type counter struct{ n atomic.Int64 }

func (c *counter) Inc()         { c.n.Add(1) }
func (c *counter) Set(v uint64) { c.n.Store(int64(v)) }

type recorder struct {
	mu     sync.Mutex
	states map[string][]health.State
}

func (r *recorder) on(key string, s health.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states == nil {
		r.states = map[string][]health.State{}
	}
	r.states[key] = append(r.states[key], s)
}

func (r *recorder) last(key string) (health.State, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.states[key]
	if len(s) == 0 {
		return health.State{}, 0
	}
	return s[len(s)-1], len(s)
}

func compileProto(t testing.TB, y string) *corev3.HealthCheck {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	hc := &corev3.HealthCheck{}
	if err := protojson.Unmarshal(j, hc); err != nil {
		t.Fatal(err)
	}
	return hc
}

func compile(t *testing.T, y string) *health.Config {
	t.Helper()
	hc := compileProto(t, y)
	if err := hc.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	cfg, errs := health.Compile(hc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

func dial(ctx context.Context, network, addr string, _ bool) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

type stats struct{ attempt, success, failure, network, healthy counter }

func newChecker(t *testing.T, cfg *health.Config, rec *recorder, mod func(*health.Options)) (*health.Checker, *stats) {
	t.Helper()
	st := &stats{}
	opts := health.Options{
		Cluster:  "backend",
		Dial:     dial,
		OnChange: rec.on,
		Stats:    health.Stats{Attempt: &st.attempt, Success: &st.success, Failure: &st.failure, NetworkFailure: &st.network, Healthy: &st.healthy},
	}
	if mod != nil {
		mod(&opts)
	}
	c := health.NewChecker(context.Background(), []*health.Config{cfg}, opts)
	t.Cleanup(c.Close)
	return c, st
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type hcServer struct {
	srv    *httptest.Server
	status atomic.Int64
	mu     sync.Mutex
	last   *http.Request
	hits   atomic.Int64
}

func startHC(t *testing.T) *hcServer {
	s := &hcServer{}
	s.status.Store(200)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.last = r.Clone(context.Background())
		s.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(s.status.Load()))
		w.Write([]byte("status: ok"))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func TestHTTPStateMachine(t *testing.T) {
	srv := startHC(t)
	cfg := compile(t, `
timeout: 1s
interval: 0.005s
unhealthy_threshold: 3
healthy_threshold: 2
http_health_check:
  path: /healthz
  request_headers_to_add: [{header: {key: x-hc, value: "1"}}]
`)
	rec := &recorder{}
	c, st := newChecker(t, cfg, rec, nil)
	addr := srv.srv.Listener.Addr().String()
	c.Update([]health.Target{{Key: "h", Network: "tcp", Address: addr}})
	// The first success makes the host healthy at once.
	eventually(t, "healthy", func() bool { s, _ := rec.last("h"); return s.Healthy && s.Checked })
	srv.mu.Lock()
	r := srv.last
	srv.mu.Unlock()
	if r.Host != "backend" || r.Header.Get("User-Agent") != "Envoy/HC" || r.Header.Get("X-Hc") != "1" || r.URL.Path != "/healthz" || r.Method != "GET" {
		t.Fatalf("request: host %q ua %q path %q", r.Host, r.Header.Get("User-Agent"), r.URL.Path)
	}
	// A 503 (not expected, not retriable) fails the host at once, whatever
	// unhealthy_threshold says.
	srv.status.Store(503)
	eventually(t, "unhealthy", func() bool { s, _ := rec.last("h"); return !s.Healthy })
	f := st.failure.n.Load()
	if f < 1 || f > 2 {
		t.Fatalf("%d failures before unhealthy, want 1", f)
	}
	// Back to 200: healthy_threshold successes are needed.
	hits := srv.hits.Load()
	srv.status.Store(200)
	eventually(t, "healthy again", func() bool { s, _ := rec.last("h"); return s.Healthy })
	if n := srv.hits.Load() - hits; n < 2 {
		t.Fatalf("healthy after %d checks, want at least 2", n)
	}
	if st.healthy.n.Load() != 1 || st.attempt.n.Load() == 0 || st.success.n.Load() == 0 {
		t.Fatal("stats")
	}
}

func TestHTTPRetriableAndNetworkFailures(t *testing.T) {
	srv := startHC(t)
	cfg := compile(t, `
timeout: 1s
interval: 0.005s
unhealthy_threshold: 3
healthy_threshold: 1
http_health_check:
  path: /h
  host: hc.example
  expected_statuses: [{start: 200, end: 300}]
  retriable_statuses: [{start: 429, end: 430}]
`)
	rec := &recorder{}
	c, st := newChecker(t, cfg, rec, nil)
	c.Update([]health.Target{{Key: "h", Network: "tcp", Address: srv.srv.Listener.Addr().String()}})
	eventually(t, "healthy", func() bool { s, _ := rec.last("h"); return s.Healthy })
	srv.mu.Lock()
	host := srv.last.Host
	srv.mu.Unlock()
	if host != "hc.example" {
		t.Fatalf("host header %q", host)
	}
	// Retriable statuses count toward unhealthy_threshold.
	f0 := st.failure.n.Load()
	srv.status.Store(429)
	eventually(t, "unhealthy", func() bool { s, _ := rec.last("h"); return !s.Healthy })
	if n := st.failure.n.Load() - f0; n < 3 {
		t.Fatalf("unhealthy after %d retriable failures, want 3", n)
	}
	srv.status.Store(204)
	eventually(t, "healthy", func() bool { s, _ := rec.last("h"); return s.Healthy })
	// Connection failures count too.
	srv.srv.Close()
	eventually(t, "unhealthy after network failures", func() bool { s, _ := rec.last("h"); return !s.Healthy })
	if st.network.n.Load() < 3 {
		t.Fatalf("network failures %d", st.network.n.Load())
	}
}

func TestHTTPBodyMatchMethodAndTargetHost(t *testing.T) {
	srv := startHC(t)
	cfg := compile(t, `
timeout: 1s
interval: 0.005s
unhealthy_threshold: 1
healthy_threshold: 1
http_health_check:
  path: /h
  method: POST
  send: {text: "70696e67"}
  receive: [{text: "6f6b"}]
  request_headers_to_remove: [user-agent]
`)
	rec := &recorder{}
	c, _ := newChecker(t, cfg, rec, nil)
	c.Update([]health.Target{{Key: "h", Network: "tcp", Address: srv.srv.Listener.Addr().String(), Host: "endpoint.example"}})
	eventually(t, "healthy", func() bool { s, _ := rec.last("h"); return s.Healthy })
	srv.mu.Lock()
	r := srv.last
	srv.mu.Unlock()
	if r.Method != "POST" || r.Host != "endpoint.example" || r.Header.Get("User-Agent") != "" {
		t.Fatalf("method %s host %s ua %q", r.Method, r.Host, r.Header.Get("User-Agent"))
	}
}

func TestTCPChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reply atomic.Value
	reply.Store("pong")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
					return
				}
				c.Write([]byte("xx" + reply.Load().(string) + "yy"))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	cfg := compile(t, `
timeout: 0.5s
interval: 0.005s
unhealthy_threshold: 1
healthy_threshold: 1
tcp_health_check:
  send: {text: "`+hex.EncodeToString([]byte("ping"))+`"}
  receive: [{text: "`+hex.EncodeToString([]byte("po"))+`"}, {binary: "bmc="}]
`)
	rec := &recorder{}
	c, _ := newChecker(t, cfg, rec, nil)
	c.Update([]health.Target{{Key: "t", Network: "tcp", Address: ln.Addr().String()}})
	eventually(t, "healthy", func() bool { s, _ := rec.last("t"); return s.Healthy })
	reply.Store("nope")
	eventually(t, "unhealthy on a wrong reply", func() bool { s, _ := rec.last("t"); return !s.Healthy })

	// Connect-only.
	cfg2 := compile(t, "timeout: 0.5s\ninterval: 0.005s\nunhealthy_threshold: 1\nhealthy_threshold: 1\ntcp_health_check: {}\n")
	rec2 := &recorder{}
	c2, _ := newChecker(t, cfg2, rec2, nil)
	c2.Update([]health.Target{{Key: "t", Network: "tcp", Address: ln.Addr().String()}})
	eventually(t, "connect-only healthy", func() bool { s, _ := rec2.last("t"); return s.Healthy })
}

func TestNoTrafficIntervalAndUpdates(t *testing.T) {
	srv := startHC(t)
	// interval is an hour, no_traffic_interval 5ms: with no traffic yet
	// the checks keep coming.
	cfg := compile(t, `
timeout: 1s
interval: 3600s
no_traffic_interval: 0.005s
unhealthy_threshold: 1
healthy_threshold: 1
http_health_check: {path: /h}
`)
	rec := &recorder{}
	var traffic atomic.Bool
	c, st := newChecker(t, cfg, rec, func(o *health.Options) { o.HasTraffic = traffic.Load })
	addr := srv.srv.Listener.Addr().String()
	c.Update([]health.Target{{Key: "a", Network: "tcp", Address: addr}, {Key: "b", Network: "tcp", Address: addr}})
	eventually(t, "several checks", func() bool { return st.attempt.n.Load() >= 6 })
	eventually(t, "both healthy", func() bool { return st.healthy.n.Load() == 2 })
	// Dropping a target stops its checks and its healthy count.
	c.Update([]health.Target{{Key: "a", Network: "tcp", Address: addr}})
	if st.healthy.n.Load() != 1 {
		t.Fatalf("healthy gauge %d after removal", st.healthy.n.Load())
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct{ y, want string }{
		{"timeout: 1s\ninterval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\nhttp_health_check: {path: /h, service_name_matcher: {exact: x}}\n", "http_health_check.service_name_matcher: field is not supported"},
		{"timeout: 1s\ninterval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\nevent_log_path: /tmp/x\ntcp_health_check: {}\n", "event_log_path: field is not supported"},
		{"timeout: 1s\ninterval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\ntcp_health_check: {send: {text: zz}}\n", "tcp_health_check.send.text: not hex"},
		{"timeout: 1s\ninterval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\nhttp_health_check: {path: /h, codec_client_type: HTTP3}\n", "http_health_check.codec_client_type: HTTP3 is not supported"},
	} {
		j, _ := yaml.YAMLToJSON([]byte(c.y))
		hc := &corev3.HealthCheck{}
		if err := protojson.Unmarshal(j, hc); err != nil {
			t.Fatal(err)
		}
		_, errs := health.Compile(hc)
		found := false
		for _, e := range errs {
			found = found || e.Error() == c.want || (len(e.Error()) >= len(c.want) && e.Error()[:len(c.want)] == c.want)
		}
		if !found {
			t.Errorf("errors %v, want %q", errs, c.want)
		}
	}
}
