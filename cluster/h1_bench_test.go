package cluster

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// fastUpstream answers every GET with the same 100-byte body, reading and
// writing raw bytes, so a benchmark measures the client rather than the
// server.
func fastUpstream(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nServer: fast\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() {
				br := bufio.NewReader(c)
				for {
					// Requests have no body: a head ends with a blank line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(bytes.TrimRight(line, "\r\n")) == 0 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// BenchmarkRoundTripH1 compares the HTTP/1.1 upstream clients on one
// keep-alive upstream: net/http's Transport as the cluster configured it
// before (nethttp) and the lean client (h1), alone and through
// Cluster.RoundTrip (host pick, breakers, stats, completion).
//
//	go test -run - -bench RoundTripH1 -benchmem -cpu 1,2 ./cluster/
func BenchmarkRoundTripH1(b *testing.B) {
	addr := fastUpstream(b)
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
