package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
)

// TestListenerSwapsUnderLoad swaps the listener configuration 1,000 times
// while clients send requests over keep-alive connections: no request may
// fail.
func TestListenerSwapsUnderLoad(t *testing.T) {
	in, up, adm := freePort(t), freePort(t), freePort(t)
	cfgPath := exampleConfig(t, "../examples/envoy/greeting.yaml", map[string]int{"10000": in, "10001": up, "9901": adm})
	o, err := ParseFlags([]string{"-c", cfgPath, "-l", "off", "--drain-time-s", "2", "--concurrency", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadBootstrap(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := New(ctx, o, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", in))
				if err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && resp.Header.Get("X-Greeting") != "" {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	listeners := b.GetStaticResources().GetListeners()
	swaps := 1000
	if testing.Short() {
		swaps = 100
	}
	for i := 0; i < swaps; i++ {
		next := make([]*listenerv3.Listener, len(listeners))
		for k, l := range listeners {
			next[k] = proto.Clone(l).(*listenerv3.Listener)
		}
		if err := s.UpdateListeners(ctx, next); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed, %d succeeded across %d swaps", failed.Load(), ok.Load(), swaps)
	}
	t.Logf("%d requests succeeded across %d swaps", ok.Load(), swaps)
}
