package cluster_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmesh/wasmesh/cluster"
)

// BenchmarkRoundTrip compares a request through a cluster (host pick,
// circuit breakers, stats, outlier bookkeeping, completion tracking) with
// the same request on a bare net/http Transport, against one local
// upstream over keep-alive HTTP/1.1.
func BenchmarkRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	run := func(b *testing.B, rt func(*http.Request) (*http.Response, error)) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/", nil)
			for pb.Next() {
				resp, err := rt(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	b.Run("bare_transport", func(b *testing.B) {
		t := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
		defer t.CloseIdleConnections()
		run(b, t.RoundTrip)
	})
	b.Run("cluster", func(b *testing.B) {
		m := cluster.NewManager(context.Background(), cluster.Options{Stats: newMemStats()})
		defer m.Close()
		if err := m.Add(context.Background(), parseCluster(b, staticCluster(b, "bench", "outlier_detection: {}", addr))); err != nil {
			b.Fatal(err)
		}
		c := m.Get("bench")
		run(b, func(r *http.Request) (*http.Response, error) {
			resp, _, err := c.RoundTrip(r, cluster.LoadBalancerContext{})
			return resp, err
		})
	})
}
