package cluster

import (
	"context"
	"net/http"
	"testing"

	"github.com/wasmesh/wasmesh/internal/rawupstream"
)

// BenchmarkRoundTripH1 compares the HTTP/1.1 upstream clients on one
// keep-alive upstream: net/http's Transport as the cluster configured it
// before (nethttp) and the lean client (h1), alone and through
// Cluster.RoundTrip (host pick, breakers, stats, completion).
//
//	go test -run - -bench RoundTripH1 -benchmem -cpu 1,2 ./cluster/
func BenchmarkRoundTripH1(b *testing.B) {
	addr := rawupstream.Start(b, rawupstream.Small)
	run := func(b *testing.B, rt func(*http.Request) (*http.Response, error)) {
		b.ReportAllocs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			buf := make([]byte, 512)
			for pb.Next() {
				resp, err := rt(req)
				if err != nil {
					b.Error(err)
					return
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
			}
		})
	}
	b.Run("transport=nethttp", func(b *testing.B) {
		c := h1Cluster(b, addr, 0)
		t := c.newTransport(protoHTTP1)
		defer t.CloseIdleConnections()
		run(b, t.RoundTrip)
	})
	b.Run("transport=h1", func(b *testing.B) {
		c := h1Cluster(b, addr, 0)
		h := c.Hosts()[0]
		run(b, func(r *http.Request) (*http.Response, error) { return c.tr.h1Pool().roundTrip(r, nil, nil, h) })
	})
	b.Run("cluster=nethttp", func(b *testing.B) {
		c := h1Cluster(b, addr, 0)
		// The ALPN pool is net/http's Transport; forRequest prefers it.
		c.tr.alpn = c.newTransport(protoHTTP1)
		defer c.tr.alpn.CloseIdleConnections()
		run(b, func(r *http.Request) (*http.Response, error) {
			resp, _, err := c.RoundTrip(r, LoadBalancerContext{})
			return resp, err
		})
	})
	b.Run("cluster=h1", func(b *testing.B) {
		c := h1Cluster(b, addr, 0)
		run(b, func(r *http.Request) (*http.Response, error) {
			resp, _, err := c.RoundTrip(r, LoadBalancerContext{})
			return resp, err
		})
	})
}
